"""What panels and dialogs may use of the main window: a narrow :class:`WindowHost`
contract, so that they depend on it instead of on :mod:`.main_window` (which builds them)."""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from PySide6 import QtGui, QtWidgets

from ..viewmodel.app import AppModel


class WindowHost(Protocol):
    """The main window as its panels see it (implemented by ``MainWindow``)."""

    model: AppModel

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a model coroutine on the app's event loop."""

    def export_recording(self, directory: Path | None = None) -> None:
        """Open the export dialog for ``directory`` (default: the last recording made here)."""

    def statusBar(self) -> QtWidgets.QStatusBar:
        """The window's status bar (transient messages)."""

    def screen(self) -> QtGui.QScreen:
        """The screen the window is on."""
