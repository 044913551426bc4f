"""Desktop conventions for the window: Help → About (versions, endpoint, paths), the window's
own rotating log file, and a dialog for unexpected exceptions (with "Copy details")."""

from __future__ import annotations

import logging
import platform
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from .. import paths
from ..logfiles import GUI_LOG, NODE_LOG, add_rotating_file, log_path
from ..plugins import PluginRegistry, plugin_report
from ..version import __version__

log = logging.getLogger(__name__)


def log_file() -> Path:
    """Where the window logs (``<data dir>/logs/sensorium-gui.log``, rotated)."""
    return log_path(GUI_LOG)


def start_file_log() -> Path:
    """Log the window to :func:`log_file` as well (the windowed bundle has no stderr)."""
    return add_rotating_file(log_file())


def redis_server_version() -> str:
    """The version of the redis-server the app would start (embedded), or why it is unknown."""
    import subprocess

    try:
        from ..bus.embedded import find_redis_server

        binary, _ = find_redis_server()
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=5).stdout
        return out.split(" v=")[1].split()[0] if " v=" in out else out.strip() or "unknown"
    except Exception as exc:  # not installed, not runnable: say so, never fail the dialog
        return f"not found ({type(exc).__name__})"


def about_text(endpoint: str) -> str:
    """What Help → About says: versions, the Redis endpoint and every path a user looks for."""
    from ..config import config_path

    rows = [
        ("Sensorium Desktop", __version__),
        ("Python", platform.python_version()),
        ("Qt / PySide6", f"{QtCore.qVersion()} / {__import__('PySide6').__version__}"),
        ("redis-server", redis_server_version()),
        ("Redis endpoint", endpoint),
        ("Data folder", str(paths.data_dir())),
        ("Configuration", str(config_path())),
        ("Window log", str(log_file())),
        ("Node log", str(log_path(NODE_LOG))),
        ("Platform", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Plugins", plugin_summary()),
    ]
    return "\n".join(f"{k}: {v}" for k, v in rows)


def plugin_registries() -> list[PluginRegistry[Any]]:
    """The app's four plugin registries: transports, exporters, panels, node components."""
    from ..devices import TRANSPORTS
    from ..recording.export import EXPORTERS
    from ..worker.components import COMPONENTS
    from .panels import PANELS

    return [TRANSPORTS, EXPORTERS, PANELS, COMPONENTS]


def plugin_summary() -> str:
    """How many plugins of each kind are registered, and which failed to load (and why)."""
    counts, failed, refused = plugin_report(plugin_registries(), load=False)
    problems = failed + refused
    return counts + ("; FAILED: " + "; ".join(problems) if problems else "")


def show_about(parent: QtWidgets.QWidget, endpoint: str) -> QtWidgets.QMessageBox:
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Information, "About Sensorium Desktop",
                                about_text(endpoint), parent=parent)  # fmt: skip
    box.setObjectName("aboutDialog")
    box.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    box.open()
    return box


class ErrorDialogs(QtCore.QObject):
    """``sys.excepthook`` for the window: log the traceback and show it (Copy details), once
    per distinct error, instead of a window that silently stops doing something."""

    shown = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.seen: set[str] = set()
        self.dialogs: list[QtWidgets.QMessageBox] = []
        self._previous = sys.excepthook

    def install(self) -> None:
        sys.excepthook = self.hook

    def uninstall(self) -> None:
        if sys.excepthook == self.hook:
            sys.excepthook = self._previous

    def hook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        details = "".join(traceback.format_exception(kind, exc, tb))
        log.error("unexpected error in the window:\n%s", details)
        key = f"{kind.__name__}: {exc}"
        if key in self.seen:
            return
        self.seen.add(key)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, "Unexpected error",
                                    f"{key}\n\nThe window goes on; this is in the log ({log_file()}).",
                                    parent=self.parent_widget)  # fmt: skip
        box.setObjectName("errorDialog")
        box.setDetailedText(details)
        copy = box.addButton("Copy details", QtWidgets.QMessageBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QtGui.QGuiApplication.clipboard().setText(details))
        box.addButton(QtWidgets.QMessageBox.StandardButton.Close)
        box.open()
        self.dialogs.append(box)
        self.shown.emit(key)
