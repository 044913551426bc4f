"""Dockable panels. A panel is one module here defining ``PANEL = PanelSpec(...)``, plus its
name in ``PANEL_MODULES`` (one registration line per panel)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

if TYPE_CHECKING:
    from ..main_window import MainWindow

PANEL_MODULES = ("sessions", "gaze", "skeleton", "sync", "election", "backpressure")


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """``name`` (object name, settings key), ``title``, where it docks, and how to build it."""

    name: str
    title: str
    area: QtCore.Qt.DockWidgetArea
    build: Callable[[MainWindow], QtWidgets.QWidget]
    tab_with: str = ""


def panel_specs() -> list[PanelSpec]:
    """Every registered panel, in ``PANEL_MODULES`` order."""
    return [importlib.import_module(f"{__name__}.{m}").PANEL for m in PANEL_MODULES]
