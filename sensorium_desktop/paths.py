"""Where data lives: one data directory (platformdirs), overridable for tests and labs.

``SENSORIUM_DATA_DIR`` overrides the default (``~/.local/share/sensorium`` on Linux,
``%LOCALAPPDATA%\\Sensorium\\sensorium`` on Windows, ``~/Library/Application Support/sensorium``
on macOS). Inside: ``redis/`` (embedded server config, AOF, state), ``sessions/``
(recordings), ``spill/`` (offline queue while Redis is unreachable), ``logs/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "sensorium"
APP_AUTHOR = "Sensorium"


def data_dir() -> Path:
    """The application's data directory (created if missing)."""
    override = os.environ.get("SENSORIUM_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sub_dir(name: str) -> Path:
    """A subdirectory of the data directory (created if missing)."""
    path = data_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def redis_dir() -> Path:
    return sub_dir("redis")


def sessions_dir() -> Path:
    return sub_dir("sessions")


def spill_dir() -> Path:
    return sub_dir("spill")


def logs_dir() -> Path:
    return sub_dir("logs")
