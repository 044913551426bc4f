"""Log files of the window and the node: one format, rotated, in the platform's log folder
(``<data dir>/logs``), so the log viewer and a lab's support request read the same thing."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from . import paths

#: ``2026-11-30 18:32:24,615 INFO    sensorium_desktop.bus.embedded: message``
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_BYTES = 2_000_000
LOG_BACKUPS = 5
GUI_LOG = "sensorium-gui.log"
NODE_LOG = "sensorium-node.log"
#: what the node child prints outside logging (a crash before logging is set up)
NODE_CONSOLE = "sensorium-node-console.log"


def log_path(name: str) -> Path:
    """``<data dir>/logs/<name>``."""
    return paths.logs_dir() / name


def add_rotating_file(path: Path, level: int = logging.NOTSET) -> Path:
    """Also log to ``path`` (rotated at :data:`LOG_BYTES`, :data:`LOG_BACKUPS` kept); once per path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, logging.handlers.RotatingFileHandler) and Path(h.baseFilename) == path.resolve():
            return path
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(level)
    root.addHandler(handler)
    return path


def rotate_if_large(path: Path, limit: int = LOG_BYTES) -> None:
    """Keep one previous generation (``.1``) of a file a child process appends to."""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except OSError:
        pass
