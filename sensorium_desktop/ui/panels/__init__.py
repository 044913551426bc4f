"""Dockable panels. A panel is one module defining ``PANEL = PanelSpec(...)``, plus one entry
point naming it in the ``sensorium_desktop.panels`` group (see :mod:`sensorium_desktop.plugins`);
the built-ins here are registered the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from PySide6 import QtCore, QtWidgets

if TYPE_CHECKING:
    from ..host import WindowHost

from ...plugins import PluginRegistry
from ...viewmodel.base import Event


@dataclass(frozen=True, slots=True)
class PanelAction:
    """A command a panel puts into the window: ``run(panel widget)`` when ``text`` is chosen in
    the window menu ``menu`` (made if missing; "" = no menu, only the ``shortcut``). A shortcut
    without Ctrl/Alt (a digit) is ignored while the operator types into a text field."""

    menu: str
    text: str
    run: Callable[[Any], None]
    shortcut: str = ""
    tip: str = ""
    #: show and raise the panel's dock first
    reveal: bool = False


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """``name`` (object name, settings key), ``title``, where it docks, how to build it from the
    window (``build(window) -> QWidget``) and the ``actions`` it contributes to the window's
    menus. A panel showing lab state connects its ``render_snapshot(snapshot)`` to the model's
    signal in ``build`` through :func:`render_while_visible` (hidden, it costs nothing); it
    never overrides QWidget methods (``show``, ``render``, ``window``)."""

    name: str
    title: str
    area: QtCore.Qt.DockWidgetArea
    build: Callable[[WindowHost], QtWidgets.QWidget]
    tab_with: str = ""
    #: docks are added by (order, name): the built-ins use 10…60, a lab's panel 100 by default
    order: int = 100
    actions: tuple[PanelAction, ...] = ()


ValueT = TypeVar("ValueT")


class _ShowFilter(QtCore.QObject):
    """Calls ``on_show`` when the widget it filters is shown."""

    def __init__(self, widget: QtWidgets.QWidget, on_show: Callable[[], None]) -> None:
        super().__init__(widget)
        self.on_show = on_show
        widget.installEventFilter(self)

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:
        if ev.type() == QtCore.QEvent.Type.Show:
            self.on_show()
        return False


def render_while_visible(widget: QtWidgets.QWidget, signal: Event | QtCore.SignalInstance,
                         render: Callable[[ValueT], None]) -> None:  # fmt: skip
    """Connect ``render`` to ``signal`` so that a hidden panel (a tab behind another, a closed
    dock) costs nothing: while ``widget`` is hidden only the newest value is kept; it is
    rendered once when the widget shows again."""
    pending: list[ValueT] = []

    def on_value(value: ValueT) -> None:
        if widget.isVisible():
            pending.clear()
            render(value)
        else:
            pending[:] = [value]

    def on_show() -> None:
        if pending:
            render(pending.pop())

    signal.connect(on_value)
    _ShowFilter(widget, on_show)


def _check_panel(name: str, obj: object) -> PanelSpec:
    if not isinstance(obj, PanelSpec):
        raise TypeError(f"{obj!r} is not a PanelSpec")
    if obj.name != name:
        raise TypeError(f"PanelSpec.name is {obj.name!r}, its entry point says {name!r}")
    return obj


#: panel name → spec, from the ``sensorium_desktop.panels`` entry points
PANELS: PluginRegistry[PanelSpec] = PluginRegistry("panels", _check_panel)


def panel_specs() -> list[PanelSpec]:
    """Every panel that loads, by (order, name)."""
    return sorted(PANELS.load_all().values(), key=lambda spec: (spec.order, spec.name))
