"""Backpressure panel: each sensor's 8-field config as its node published it, and queue depths."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from ...viewmodel.lab import LabSnapshot
from ..style import attention_colour, roles
from ..widgets import RowTable, empty_label
from . import PanelSpec, render_while_visible

if TYPE_CHECKING:
    from ..host import WindowHost


class BackpressurePanel(QtWidgets.QWidget):
    def __init__(self, window: WindowHost) -> None:
        super().__init__()
        self.summary = empty_label("No backpressure configs yet.")
        self.table = RowTable(["sensor", "attention", "system load", "memory prot.", "paused", "window ms",
                               "batch size", "multiplier", "updated"])  # fmt: skip
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        render_while_visible(self, window.model.lab.changed, self.render_snapshot)

    def render_snapshot(self, snap: LabSnapshot) -> None:
        queues = ", ".join(
            f"{nid}: queue {t.queue_depth}, spilled {t.spilled}, load {t.state.system_load or '?'}"
            for nid, t in ((nid, n.telemetry) for nid, n in snap.status.nodes.items())
            if t is not None
        )
        self.summary.setText(f"⚠ {snap.error}" if snap.error else (queues or "No node telemetry yet."))
        rows, colours = [], []
        now_ms = time.time() * 1000
        for sid, cfg in sorted(snap.backpressure.items()):
            att = cfg.attention_level
            rows.append([
                sid, att, cfg.system_load, "yes" if cfg.memory_protection_active else "no",
                "PAUSED" if cfg.paused else "no", str(cfg.recommended_batch_window), str(cfg.recommended_batch_size),
                f"{cfg.load_multiplier:g}", f"{(now_ms - cfg.timestamp) / 1000:.0f} s ago",
            ])  # fmt: skip
            colours.append(roles().error if cfg.paused else attention_colour(att))
        self.table.set_rows(rows, colours)


PANEL = PanelSpec(
    "backpressure", "Backpressure", QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, BackpressurePanel, "sync", order=60
)
