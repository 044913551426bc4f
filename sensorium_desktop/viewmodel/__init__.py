"""Headless view models: what the window shows, computed from Redis without any Qt.

Every Qt widget in ``ui/`` is a thin view over one of these (napari's split), so the same
logic runs in tests, in the CLI and in the GUI.
"""
