"""Colours and small styling helpers shared by the window, its panels and dialogs.

Every colour that carries meaning (error, warning, ok, accent, muted, marker) comes from one
:class:`Roles` palette, chosen for the light or the dark Qt palette the desktop uses: no panel
hard-codes a colour. Line colours of plots come from :data:`PALETTE`."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6 import QtGui, QtWidgets

#: Distinguishable line colours (Tableau 10 + extras).
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Roles:
    """Colours by meaning (``#rrggbb``)."""

    error: str
    warning: str
    ok: str
    accent: str
    muted: str
    marker: str
    neutral: str
    video_background: str


LIGHT = Roles(error="#c62828", warning="#ef6c00", ok="#2e7d32", accent="#1565c0", muted="#757575",
              marker="#ef6c00", neutral="#424242", video_background="#202020")  # fmt: skip
DARK = Roles(error="#ef5350", warning="#ffb74d", ok="#66bb6a", accent="#64b5f6", muted="#9e9e9e",
             marker="#ffb74d", neutral="#e0e0e0", video_background="#101010")  # fmt: skip


def is_dark() -> bool:
    """True when the application's palette has a dark window background."""
    app = QtWidgets.QApplication.instance()
    if not isinstance(app, QtWidgets.QApplication):
        return False
    return app.palette().color(QtGui.QPalette.ColorRole.Window).lightness() < 128


def roles() -> Roles:
    """The palette for the current light or dark theme."""
    return DARK if is_dark() else LIGHT


#: device/sensor state → role name
STATE_ROLES = {
    "streaming": "ok", "connecting": "warning", "reconnecting": "warning", "idle": "muted", "stopped": "muted",
    "lost": "error", "error": "error", "unavailable": "muted", "offline": "error", "failed": "error",
}  # fmt: skip


def state_colour(state: str) -> str:
    return str(getattr(roles(), STATE_ROLES.get(state, "neutral")))


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def state_brush(state: str) -> QtGui.QBrush:
    return QtGui.QBrush(QtGui.QColor(state_colour(state)))


def text_style(role: str, bold: bool = False) -> str:
    """A style sheet for a label coloured by ``role`` (error, warning, ok, …)."""
    return f"color: {getattr(roles(), role)}" + ("; font-weight: bold" if bold else "")


def attention_colour(level: str) -> str:
    """Colour of an attention level (high accent, medium ok, low warning, none muted)."""
    r = roles()
    return {"high": r.accent, "medium": r.ok, "low": r.warning}.get(level, r.muted)
