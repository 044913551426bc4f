"""Colours and small styling helpers shared by panels."""

from __future__ import annotations

from PySide6 import QtGui

#: Distinguishable line colours (Tableau 10 + extras).
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf",
)  # fmt: skip

STATE_COLOURS = {
    "streaming": "#2e7d32",
    "connecting": "#f9a825",
    "reconnecting": "#f9a825",
    "idle": "#757575",
    "stopped": "#757575",
    "lost": "#c62828",
    "error": "#c62828",
    "unavailable": "#8d6e63",
    "offline": "#c62828",
    "failed": "#c62828",
}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def state_brush(state: str) -> QtGui.QBrush:
    return QtGui.QBrush(QtGui.QColor(STATE_COLOURS.get(state, "#424242")))
