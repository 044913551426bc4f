"""Live plots: multi-channel time series of selected sensors on a rolling window."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ...core.samples import SensorInfo
from ...viewmodel.live import LiveStore
from ..style import colour

MAX_CHANNELS_PER_PLOT = 32
FRAME_MS = 16


class TimeAxis(pg.AxisItem):
    """Axis showing wall-clock time (HH:MM:SS) for x values relative to ``t0``."""

    def __init__(self, t0: float, **kw: object) -> None:
        super().__init__(orientation="bottom", **kw)
        self.t0 = t0

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        out = []
        for v in values:
            t = self.t0 + v
            frac = f"{t % 1:.1f}"[1:] if spacing < 1 else ""
            out.append(time.strftime("%H:%M:%S", time.localtime(t)) + frac)
        return out


@dataclass
class PlotEntry:
    info: SensorInfo
    item: pg.PlotItem
    curves: list[pg.PlotDataItem] = field(default_factory=list)
    version: int = -1


class LivePlotPanel(QtWidgets.QWidget):
    """One stacked plot per sensor, x-linked, scrolling on the host/global clock."""

    def __init__(self, live: LiveStore, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.live = live
        self.window_s = 10.0
        self.paused = False
        self.t0 = time.time()
        self.entries: dict[str, PlotEntry] = {}
        self.frames = 0
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("livePlots")
        self.graphics.setBackground("w")
        self.empty = QtWidgets.QLabel("Select sensors in the device tree to plot them.")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.window_box = QtWidgets.QDoubleSpinBox()
        self.window_box.setRange(1.0, 120.0)
        self.window_box.setValue(self.window_s)
        self.window_box.setSuffix(" s")
        self.window_box.valueChanged.connect(self._set_window)
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._set_paused)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Window"))
        bar.addWidget(self.window_box)
        bar.addWidget(self.pause_button)
        bar.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.empty)
        layout.addWidget(self.graphics, 1)
        self.graphics.hide()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def _set_window(self, value: float) -> None:
        self.window_s = float(value)
        for e in self.entries.values():
            e.version = -1

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setText("Resume" if paused else "Pause")

    def sensor_ids(self) -> list[str]:
        return list(self.entries)

    def set_sensors(self, infos: list[SensorInfo]) -> None:
        """Show exactly these sensors (subscribing to their streams)."""
        wanted = [i.sensor_id for i in infos]
        if wanted == list(self.entries):
            return
        for sid in list(self.entries):
            if sid not in wanted:
                self.live.unsubscribe(sid)
        self.graphics.clear()
        self.entries.clear()
        first: pg.PlotItem | None = None
        for row, info in enumerate(infos):
            self.live.subscribe(info)
            item = self.graphics.addPlot(row=row, col=0, axisItems={"bottom": TimeAxis(self.t0)})
            item.setDownsampling(auto=True, mode="peak")
            item.setClipToView(True)
            item.showGrid(x=True, y=True, alpha=0.2)
            unit = next((u for u in info.units if u), "")
            item.setLabel("left", info.attribute, units=unit)
            item.setTitle(f"{info.sensor_id}", size="9pt")
            if first is None:
                first = item
            else:
                item.setXLink(first)
            n = min(info.channel_count, MAX_CHANNELS_PER_PLOT)
            if n > 1 and n <= 8:
                item.addLegend(offset=(5, 5), labelTextSize="8pt")
            curves = [item.plot(pen=pg.mkPen(colour(ch), width=1), name=info.channel_names[ch]) for ch in range(n)]
            self.entries[info.sensor_id] = PlotEntry(info, item, curves)
        self.graphics.setVisible(bool(infos))
        self.empty.setVisible(not infos)

    def redraw(self) -> None:
        """Push changed ring buffers to their curves and scroll the window."""
        if self.paused or not self.entries:
            return
        now = time.time()
        x_max = now - self.t0
        for sid, e in self.entries.items():
            sub = self.live.subs.get(sid)
            if sub is None:
                continue
            ring = sub.ring
            if ring.version != e.version:
                e.version = ring.version
                t, v = ring.latest(now - self.window_s - 1.0)
                x = t - self.t0
                for ch, curve in enumerate(e.curves):
                    curve.setData(x, np.asarray(v[:, ch], dtype=np.float64))
            e.item.setXRange(x_max - self.window_s, x_max, padding=0)
        self.frames += 1
