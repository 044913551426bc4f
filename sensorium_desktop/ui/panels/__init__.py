"""Dockable panels of the main window (one module per panel)."""
