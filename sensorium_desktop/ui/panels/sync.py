"""Sync panel: per-sensor clock offset, drift, uncertainty and residual trace; group rate;
breathing synchrony (Kuramoto R) between people."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ...viewmodel.lab import LabSnapshot, breathing_synchrony
from ..style import colour
from ..widgets import RowTable, empty_label
from . import PanelSpec

if TYPE_CHECKING:
    from ..main_window import MainWindow

HOLDER = "sync"
MAX_TRACES = 8


class SyncPanel(QtWidgets.QWidget):
    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.window = window
        self.model = window.model
        self.summary = empty_label("No clock states yet: the sync worker writes them once sensors stream.")
        self.table = RowTable(["sensor", "offset (s)", "drift (ppm)", "± σ (µs)", "resets", "rate (Hz)", "updated"])
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("residualPlot")
        self.plot.setLabel("left", "offset − trend", units="µs")
        self.plot.setLabel("bottom", "seconds ago")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.addLegend(offset=(5, 5), labelTextSize="7pt")
        self.plot.setMinimumHeight(120)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.kuramoto = float("nan")
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        self.model.lab.changed.connect(self.show)

    def _breathing(self) -> tuple[float, int]:
        resp = [s for s in self.model.devices.tree.sensors.values() if s.attribute == "respiration"]
        rings = []
        for info in resp:
            sub = self.model.live.subscribe(info, HOLDER)
            t, v = sub.ring.latest()
            rings.append((t, v[:, 0].astype(np.float64) if v.size else v.reshape(-1)))
        return breathing_synchrony(rings), len(resp)

    def show(self, snap: LabSnapshot) -> None:  # type: ignore[override]
        self.kuramoto, n_resp = self._breathing()
        if math.isnan(self.kuramoto):
            kura = f"breathing sync: needs ≥ 2 respiration sensors with 20 s of data ({n_resp} now)"
        else:
            kura = f"breathing sync (Kuramoto R): <b>{self.kuramoto * 100:.0f}</b> / 100 over {n_resp} people"
        if snap.error:
            self.summary.setText(f"⚠ {snap.error}")
        elif not snap.clocks:
            self.summary.setText(f"No clock states yet (the leader's sync worker writes them). {kura}")
        else:
            self.summary.setText(f"{len(snap.clocks)} clocks · groups {snap.group_rate:.2f}/s · {kura}")
        rows, colours = [], []
        for c in sorted(snap.clocks, key=lambda r: r.sensor_id):
            rows.append([
                c.sensor_id, f"{c.offset:+.6f}", f"{c.drift_ppm:+.2f}", f"{c.uncertainty * 1e6:.1f}",
                str(c.resets), f"{c.rate:.1f}", f"{c.updated_age:.1f} s ago" if math.isfinite(c.updated_age) else "",
            ])  # fmt: skip
            colours.append("#c62828" if c.uncertainty > 0.005 else None)
        self.table.set_rows(rows, colours)
        chosen = self.table.selected_key()
        ids = [chosen] if chosen else [c.sensor_id for c in snap.clocks if c.rate > 0][:MAX_TRACES]
        for sid in set(self.curves) - set(ids):
            self.plot.removeItem(self.curves.pop(sid))
        for i, sid in enumerate(ids):
            x, y = self.model.lab.residuals(sid)
            curve = self.curves.get(sid)
            if curve is None:
                curve = self.curves[sid] = self.plot.plot(pen=pg.mkPen(colour(i), width=1), name=sid)
            curve.setData(x, y)


PANEL = PanelSpec("sync", "Sync", QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, SyncPanel)
