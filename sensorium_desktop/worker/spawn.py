"""Starting our own processes the same way from a venv and from a frozen bundle."""

from __future__ import annotations

import sys


def self_command(*args: str) -> list[str]:
    """argv that runs ``sensorium <args>`` with the current interpreter or bundle."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "sensorium_desktop", *args]
