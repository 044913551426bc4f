"""Backpressure panel: each sensor's 8-field config as its node published it, and queue depths."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from ...viewmodel.lab import LabSnapshot
from ..widgets import RowTable, empty_label
from . import PanelSpec

if TYPE_CHECKING:
    from ..main_window import MainWindow

ATTENTION_COLOURS = {"high": "#1565c0", "medium": "#2e7d32", "low": "#f9a825", "none": "#757575"}


class BackpressurePanel(QtWidgets.QWidget):
    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.summary = empty_label("No backpressure configs yet.")
        self.table = RowTable(["sensor", "attention", "system load", "memory prot.", "paused", "window ms",
                               "batch size", "multiplier", "updated"])  # fmt: skip
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        window.model.lab.changed.connect(self.render)

    def render(self, snap: LabSnapshot) -> None:
        nodes = (snap.status.get("nodes") or {}).values()
        queues = ", ".join(
            f"{n['telemetry'].get('node', '?')}: queue {n['telemetry'].get('queue_depth', 0)}, "
            f"spilled {n['telemetry'].get('spilled', 0)}, load {n['telemetry'].get('system_load', '?')}"
            for n in nodes
            if n.get("telemetry")
        )
        self.summary.setText(f"⚠ {snap.error}" if snap.error else (queues or "No node telemetry yet."))
        rows, colours = [], []
        now_ms = time.time() * 1000
        for sid, cfg in sorted(snap.backpressure.items()):
            att = str(cfg.get("attention_level", "?"))
            ts = cfg.get("timestamp")
            age = f"{(now_ms - float(ts)) / 1000:.0f} s ago" if isinstance(ts, int | float) else ""
            rows.append([
                sid, att, str(cfg.get("system_load", "")), "yes" if cfg.get("memory_protection_active") else "no",
                "PAUSED" if cfg.get("paused") else "no", str(cfg.get("recommended_batch_window", "")),
                str(cfg.get("recommended_batch_size", "")), f"{float(cfg.get('load_multiplier', 1)):g}", age,
            ])  # fmt: skip
            colours.append("#c62828" if cfg.get("paused") else ATTENTION_COLOURS.get(att))
        self.table.set_rows(rows, colours)


PANEL = PanelSpec(
    "backpressure", "Backpressure", QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, BackpressurePanel, "sync", order=60)
