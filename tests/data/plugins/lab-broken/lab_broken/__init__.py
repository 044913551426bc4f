"""Names the wrong things on purpose (tests/test_plugins.py)."""

NotATransport = object()
