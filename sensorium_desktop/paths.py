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


#: Extra folders (``os.pathsep``-separated) that paths received through Redis may name; set
#: from ``allowed_roots`` in the configuration file of this PC.
ENV_ALLOWED_ROOTS = "SENSORIUM_ALLOWED_ROOTS"


class OutsideRootsError(ValueError):
    """A path received from Redis (another process or PC) leaves the folders this PC allows."""


def allowed_roots(extra: tuple[Path, ...] | list[Path] = ()) -> list[Path]:
    """Folders a path from Redis may name: the data directory, ``$SENSORIUM_ALLOWED_ROOTS`` and
    ``extra`` (folders the local operator chose, e.g. ``record --out``), resolved."""
    configured = [Path(p) for p in os.environ.get(ENV_ALLOWED_ROOTS, "").split(os.pathsep) if p]
    return [p.expanduser().resolve() for p in (data_dir(), *configured, *extra)]


def confine(path: str | Path, roots: list[Path], what: str) -> Path:
    """The resolved ``path`` when it is absolute and inside one of ``roots`` (symlinks and
    ``..`` resolved first); else :class:`OutsideRootsError` naming ``what``, the path and why."""
    raw = Path(path)
    if not raw.is_absolute():
        raise OutsideRootsError(f"{what} {str(path)!r} must be an absolute path")
    real = raw.resolve()
    if any(real.is_relative_to(root) for root in roots):
        return real
    traversal = " (path traversal)" if ".." in raw.parts else ""
    raise OutsideRootsError(
        f"{what} {str(path)!r}{traversal} is outside the folders this PC allows "
        f"({', '.join(map(str, roots))}); add its folder to allowed_roots in sensorium.toml on this PC"
    )
