"""Live plots: multi-channel time series of selected sensors on a rolling window."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ...core.attributes import EVENT_ATTRIBUTES
from ...core.samples import SensorInfo
from ...viewmodel.live import LiveStore
from ...viewmodel.plotdata import ChannelScaler, envelope
from ..style import colour
from ..widgets import vertical_scroll
from .traces import StackedTraces

MAX_CHANNELS_PER_PLOT = 32
STACK_ABOVE = 4  # more channels than this are drawn stacked (one path, EEG style): overlaid, they are a tangle
FRAME_MS = 16
#: A plot is never squeezed below this (px): more sensors than fit scroll instead of
#: flattening every trace and overlapping the axis labels.
MIN_PLOT_PX = 120
#: A stacked plot gets this much per channel (px), at least MIN_PLOT_PX; a channel's name
#: needs LABEL_PX (more channels than fit are labelled every few)
STACKED_CHANNEL_PX = 16
LABEL_PX = 13
#: The y axis of every plot is this wide (px), so the plots line up and labels never collide.
LEFT_AXIS_PX = 64
#: Stacked channels are scaled again this often (s) from the window's 1st–99th percentiles; a
#: scale that moved out of :meth:`ChannelScaler.differs`' tolerance redraws the picture
RESCALE_S = 0.25


class TimeAxis(pg.AxisItem):
    """Bottom axis showing wall-clock time (HH:MM:SS[.f]) for x values relative to ``t0``.

    It scrolls on every frame, so it paints itself directly (a dozen lines and labels)
    instead of pyqtgraph's generate-specs-then-record-a-QPicture path, which costs ~2 ms a
    frame; label strings and their widths are cached.
    """

    SPACINGS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
    MIN_LABEL_PX = 90.0
    TICK_PX = 5.0

    def __init__(self, t0: float, **kw: object) -> None:
        super().__init__(orientation="bottom", **kw)
        self.t0 = t0
        self.enableAutoSIPrefix(False)
        self._labels: dict[tuple[float, bool], str] = {}

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [self._label(v, spacing < 1) for v in values]

    def _label(self, v: float, fraction: bool) -> str:
        key = (round(v, 3), fraction)
        text = self._labels.get(key)
        if text is None:
            if len(self._labels) > 4096:
                self._labels.clear()
            t = self.t0 + v
            text = time.strftime("%H:%M:%S", time.localtime(t)) + (f"{t % 1:.1f}"[1:] if fraction else "")
            self._labels[key] = text
        return text

    def paint(self, p: QtGui.QPainter, opt: object, widget: object) -> None:
        view = self.linkedView()
        lo, hi = (float(x) for x in self.range)
        if view is None or not hi > lo or self.style.get("tickFont") is not None:
            super().paint(p, opt, widget)
            return
        span = self.mapRectFromItem(view, view.boundingRect())
        bounds = self.boundingRect()
        x0, x1 = span.left(), span.right()
        px_per_unit = (x1 - x0) / (hi - lo)
        spacing = next((s for s in self.SPACINGS if s * px_per_unit >= self.MIN_LABEL_PX), self.SPACINGS[-1])
        minor = spacing / 2.0
        top = bounds.top()
        p.setClipRect(bounds)
        p.setPen(self.pen())
        p.drawLine(QtCore.QPointF(x0, top), QtCore.QPointF(x1, top))
        first = np.ceil(lo / minor) * minor
        ticks = np.arange(first, hi + minor * 1e-6, minor)
        xs = x0 + (ticks - lo) * px_per_unit
        major = np.isclose(np.mod(ticks / spacing + 0.5, 1.0), 0.5, atol=1e-6)
        for x, is_major in zip(xs.tolist(), major.tolist(), strict=True):
            p.drawLine(QtCore.QPointF(x, top), QtCore.QPointF(x, top + (self.TICK_PX if is_major else 3.0)))
        p.setPen(self.textPen())
        metrics = p.fontMetrics()
        height = float(metrics.height())
        for value, x in zip(ticks[major].tolist(), xs[major].tolist(), strict=True):
            text = self._label(value, spacing < 1)
            width = float(metrics.horizontalAdvance(text))
            if x - width / 2 < bounds.left() or x + width / 2 > bounds.right():
                continue
            p.drawText(QtCore.QRectF(x - width / 2, top + self.TICK_PX + 2, width, height),
                       int(QtCore.Qt.AlignmentFlag.AlignCenter), text)  # fmt: skip


@dataclass
class PlotEntry:
    info: SensorInfo
    item: pg.PlotItem
    curves: list[pg.PlotDataItem] = field(default_factory=list)
    version: int = -1
    #: a stacked plot: its picture while live, its path while paused (zoom and pan redraw it)
    stacked: pg.PlotCurveItem | None = None
    traces: StackedTraces | None = None
    scaler: ChannelScaler = field(default_factory=ChannelScaler)
    scaled_at: float = -np.inf  # when the stacked scale was last learnt (s, wall clock)
    #: the quality shown: (state, reason, channel), and the shading drawn for it
    quality: tuple[str, str, int] = ("", "", -1)
    shade: pg.LinearRegionItem | None = None


class LivePlotPanel(QtWidgets.QWidget):
    """One stacked plot per sensor, x-linked, scrolling on this host's clock (device → host,
    causally: :mod:`sensorium_desktop.core.timemap`)."""

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
        self.plot_scroll = vertical_scroll(self.graphics, "livePlotScroll")
        layout.addLayout(bar)
        layout.addWidget(self.empty)
        layout.addWidget(self.plot_scroll, 1)
        self.plot_scroll.hide()
        self._set_frame_clock(True)
        # the view paints every pixel itself (its background brush): no cached background copy
        # and no fill of the viewport before it, per frame
        self.graphics.setCacheMode(QtWidgets.QGraphicsView.CacheModeFlag.CacheNone)
        self.graphics.viewport().setAutoFillBackground(False)
        self.graphics.viewport().setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._repaint_all = True  # titles or the layout changed: the next frame paints everything
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def _set_window(self, value: float) -> None:
        self.window_s = float(value)
        self._repaint_all = True
        for e in self.entries.values():
            e.version = -1

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setText("Resume" if paused else "Pause")
        self._set_frame_clock(not paused)
        now = time.time()
        for e in self.entries.values():
            if e.traces is None or e.stacked is None:
                continue
            e.traces.setVisible(not paused)
            e.stacked.setVisible(paused)
            if paused:  # zoom and pan need the samples, not a picture of a scroll position
                sub = self.live.subs.get(e.info.sensor_id)
                if sub is not None:
                    self._draw(e, sub.ring.latest(now - self.window_s - 1.0), now - self.t0, stacked_path=True)
            else:
                e.stacked.setData([], [])
                e.traces.invalidate()

    def _set_frame_clock(self, live: bool) -> None:
        """Live: the timer is the frame clock (one repaint per tick, however many items changed);
        paused: Qt repaints on interaction (zoom, pan, scroll back)."""
        mode = QtWidgets.QGraphicsView.ViewportUpdateMode
        self.graphics.setViewportUpdateMode(mode.NoViewportUpdate if live else mode.MinimalViewportUpdate)

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
        self._repaint_all = True
        first: pg.PlotItem | None = None
        heights = []
        for row, info in enumerate(infos):
            self.live.subscribe(info)
            last = row == len(infos) - 1
            item = self.graphics.addPlot(row=row, col=0, axisItems={"bottom": TimeAxis(self.t0)})
            item.setTitle(f"{info.sensor_id}", size="8pt")  # no grid: it is repainted on every scroll
            item.getAxis("left").setWidth(LEFT_AXIS_PX)
            for hidden in ("top", "right"):  # they follow every scroll: no label to re-typeset each frame
                item.getAxis(hidden).enableAutoSIPrefix(False)
            for still in (item.getAxis("left"), item.titleLabel):  # drawn once, not on every frame's repaint
                still.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            if not last:  # x-linked: one time axis, under the last plot, leaves the room to the traces
                item.getAxis("bottom").setStyle(showValues=False)
                item.getAxis("bottom").setHeight(4)
            if first is None:
                first = item
            else:
                item.setXLink(first)
            n = min(info.channel_count, MAX_CHANNELS_PER_PLOT)
            heights.append(max(MIN_PLOT_PX, STACKED_CHANNEL_PX * n) if n > STACK_ABOVE else MIN_PLOT_PX)
            entry = PlotEntry(info, item)
            if n > STACK_ABOVE:  # per-channel autoscale, one picture (paused: one path) for all channels
                entry.scaler = ChannelScaler(smoothing=0.5)
                entry.stacked = pg.PlotCurveItem(pen=pg.mkPen(colour(0), width=1), connect="finite")
                entry.stacked.setVisible(self.paused)
                item.addItem(entry.stacked)
                entry.traces = StackedTraces(n, self.t0, QtGui.QColor(colour(0)), QtGui.QColor("white"))
                entry.traces.setVisible(not self.paused)
                item.addItem(entry.traces, ignoreBounds=True)
                band = max(MIN_PLOT_PX, STACKED_CHANNEL_PX * n) - 40  # less the title and the margins
                step = max(1, -(-n * LABEL_PX // band))  # a channel name every LABEL_PX at least
                item.getAxis("left").setTicks([[(-k, info.channel_names[k]) for k in range(0, n, step)]])
                item.getAxis("left").enableAutoSIPrefix(False)
                item.disableAutoRange()
                item.setYRange(-n + 0.5, 0.5, padding=0)
                item.setMouseEnabled(y=False)
            else:
                unit = next((u for u in info.units if u), "")
                item.setLabel("left", info.attribute, units=unit, **{"font-size": "8pt"})
                if n > 1:
                    item.addLegend(offset=(5, 5), labelTextSize="8pt")
                entry.curves = [
                    item.plot(pen=pg.mkPen(colour(ch), width=1), name=info.channel_names[ch], skipFiniteCheck=True)
                    for ch in range(n)
                ]
            self.entries[info.sensor_id] = entry
        grid = self.graphics.ci.layout
        for row in range(max(len(heights), grid.rowCount())):  # rows of a previous set are reset
            grid.setRowMinimumHeight(row, heights[row] if row < len(heights) else 0)
        self.graphics.setMinimumHeight(sum(heights) + 30)  # + the last plot's time axis
        self.plot_scroll.setVisible(bool(infos))
        self.graphics.setVisible(bool(infos))
        self.empty.setVisible(not infos)

    def show_quality(self, quality: dict[str, dict[str, Any]]) -> None:
        """Shade what the quality scorer finds suspect (amber) or bad (red): the channel's band of
        a stacked plot, the whole plot otherwise; the title says why. Only changes are drawn."""
        for sid, e in self.entries.items():
            q = quality.get(sid, {})
            state = str(q.get("state", ""))
            key = (state, str(q.get("reason", "")), int(q.get("channel", -1)))
            if key == e.quality:
                continue
            e.quality = key
            self._repaint_all = True
            if e.shade is not None:
                e.item.removeItem(e.shade)
                e.shade = None
            if state not in ("suspect", "bad"):
                e.item.setTitle(sid, size="8pt")
                continue
            rgb = (214, 39, 40) if state == "bad" else (255, 160, 0)
            n = min(e.info.channel_count, MAX_CHANNELS_PER_PLOT)
            ch = key[2]
            if e.stacked is not None and 0 <= ch < n:
                span = (-ch - 0.5, -ch + 0.5)
            else:
                vb = e.item.getViewBox()
                lo, hi = vb.viewRange()[1]
                span = (lo - 1e9, hi + 1e9)  # the whole height, whatever the autoscale does
            e.shade = pg.LinearRegionItem(span, orientation="horizontal", movable=False,
                                          brush=pg.mkBrush(*rgb, 45), pen=pg.mkPen(None))  # fmt: skip
            e.shade.setZValue(10 if e.traces is not None else -10)  # over an opaque picture, under curves
            e.item.addItem(e.shade, ignoreBounds=True)
            colour_hex = "#{:02x}{:02x}{:02x}".format(*rgb)
            e.item.setTitle(f"{sid}  <span style='color:{colour_hex}'>⚠ {state}: {q.get('detail') or key[1]}</span>",
                            size="8pt")  # fmt: skip

    def redraw(self) -> None:
        """Push changed ring buffers to their curves and scroll the window."""
        if self.paused or not self.entries:
            return
        now = time.time()
        x_max = now - self.t0
        dpr = self.graphics.devicePixelRatioF()
        for sid, e in self.entries.items():
            sub = self.live.subs.get(sid)
            if sub is None:
                continue
            ring = sub.ring
            if e.traces is not None and e.item.vb is not None:
                if now - e.scaled_at >= RESCALE_S or (ring.version != e.version and e.scaler.centre is None):
                    e.scaled_at = now
                    e.version = ring.version
                    self._draw(e, ring.latest(now - self.window_s - 1.0), x_max)
                vb = e.item.vb
                e.traces.advance(ring, e.scaler, x_max, self.window_s, vb.width(), vb.height(), dpr)
            elif ring.version != e.version:
                e.version = ring.version
                self._draw(e, ring.latest(now - self.window_s - 1.0), x_max)
        if self.entries:  # the others follow the first (x-linked)
            next(iter(self.entries.values())).item.setXRange(x_max - self.window_s, x_max, padding=0)
        if self._repaint_all:
            self._repaint_all = False
            self.graphics.viewport().update()
        else:  # what scrolls or rescales: the traces, the time axes, the y axes of autoscaled plots
            self.graphics.viewport().update(self._moving_region())
        self.frames += 1

    def _moving_region(self) -> QtGui.QRegion:
        """The viewport's part that changes from frame to frame (titles and stacked channel
        names stay)."""
        view = self.graphics
        region = QtGui.QRegion()
        for e in self.entries.values():
            parts = [e.item.vb, e.item.getAxis("bottom")]
            if e.traces is None:
                parts.append(e.item.getAxis("left"))
            for part in parts:
                if part is not None:
                    rect = view.mapFromScene(part.sceneBoundingRect()).boundingRect()
                    region += rect.adjusted(-1, -1, 1, 1)
        return region

    def _draw(self, e: PlotEntry, data: tuple[np.ndarray, np.ndarray], x_max: float,
              stacked_path: bool = False) -> None:  # fmt: skip
        """Reduce the window to a min/max envelope per pixel column, then draw it (a stacked
        plot: learn its scale; its path only when ``stacked_path``)."""
        t, v = data
        x = t - self.t0
        # one min/max pair per 2 px keeps every peak visible at half the path length
        columns = max(100, int(e.item.vb.width()) // 2 if e.item.vb is not None else 500)
        if e.info.attribute in EVENT_ATTRIBUTES:  # a stem per event, from 0 to its value
            self._draw_events(e, x, v)
            return
        n = len(e.curves) or min(v.shape[1], MAX_CHANNELS_PER_PLOT)
        xe, ve = envelope(x, v[:, :n], x_max - self.window_s - 1.0, x_max, columns)
        if e.stacked is not None:
            e.scaler.update(ve)
            if stacked_path or e.traces is None:
                xs, ys = e.scaler.stack(xe, ve.astype(np.float64))
                e.stacked.setData(xs, ys, connect="finite")
            return
        for ch, curve in enumerate(e.curves):
            curve.setData(xe, np.asarray(ve[:, ch], dtype=np.float64))

    @staticmethod
    def _draw_events(e: PlotEntry, x: np.ndarray, v: np.ndarray) -> None:
        """Events (blinks, trigger codes) as stems: a few a second, drawn as they are."""
        xs = np.repeat(x, 2)
        for ch, curve in enumerate(e.curves):
            ys = np.column_stack([np.zeros(x.size), np.asarray(v[:, ch], dtype=np.float64)]).ravel()
            curve.setData(xs, ys, connect="pairs")
