"""The review window: one recording (ours or any XDF file) on one timeline — plots, the camera
frame at the cursor with the gaze trail and the skeleton over it, markers as labelled lines,
playback 0.25×–4×, frame steps, marker jumps, zoom and pan, trim and export.

Keys: Space play/pause · ←/→ one frame (Shift: ten) · PgUp/PgDn previous/next marker ·
+/− zoom · Home/End start/end · [ / ] set the selection's start/end at the cursor.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ..core.envelope import stacked_raster
from ..core.pose import POSE_CONNECTIONS
from ..recording.review import ReviewCancelled, ReviewData, ReviewError, ReviewStream, open_review
from ..recording.video import VideoFrames
from ..viewmodel.review import SPEEDS, MarkerLine, ReviewModel
from .style import colour, roles
from .widgets import vertical_scroll

log = logging.getLogger(__name__)

MAX_PLOTS = 12
MAX_CHANNELS_DRAWN = 32
#: Streams with more channels are drawn stacked (a band per channel, as EEG viewers do),
#: rasterized from the envelope in numpy: one image per range, whatever the channel count.
STACK_ABOVE = 4
MAX_MARKER_LINES = 200
PLAY_TICK_MS = 30
#: a review plot is never squeezed below this (px); more streams than fit scroll
MIN_PLOT_PX = 110
#: a stacked plot's band per channel (px), and the height a channel's label needs
STACKED_CHANNEL_PX = 16
LABEL_PX = 13
#: marker labels are stacked in this many rows (a label that fits in none is left off: the
#: line and its tooltip stay); about 7 px per character of a label
MARKER_LABEL_ROWS = 5
LABEL_CHAR_PX = 7.0


def gapless(x: np.ndarray) -> np.ndarray:
    """Which points connect to the next: not across a gap of over 20 median spacings (a
    clock reset, a pause in the recording)."""
    if x.size < 3:
        return np.ones(x.size, dtype=bool)
    d = np.diff(x)
    step = np.median(d[d > 0]) if np.any(d > 0) else 0.0
    return np.append(d <= 20 * step, True) if step > 0 else np.ones(x.size, dtype=bool)


def zigzag(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(2m,) the envelope's line: each bin's min and max, in the order the signal passes them
    (max first where the next bin lies lower), so a slope stays a slope instead of a sawtooth."""
    mid = (lo + hi) / 2
    falling = np.append(mid[1:] < mid[:-1], False)
    return np.column_stack([np.where(falling, hi, lo), np.where(falling, lo, hi)]).ravel()


class VideoView(QtWidgets.QLabel):
    """The camera frame at the cursor (read from the session's video file), with the gaze
    trail and the skeleton drawn over it; a plain canvas when there is no video."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(320, 240)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setObjectName("reviewVideo")
        self._frames: VideoFrames | None = None
        self.frame_index: int | None = None
        self._image: QtGui.QImage | None = None

    def frame(self, path: Path | None, index: int | None) -> QtGui.QImage | None:
        """The frame ``index`` of ``path`` (random access, also while a camera still writes it)."""
        import cv2

        if path is None or index is None:
            return None
        if self._frames is None or self._frames.path != path:
            self._frames = VideoFrames(path)
            self._image = None
        if index == self.frame_index and self._image is not None:
            return self._image
        bgr = self._frames.frame(index)
        if bgr is None:
            return None
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w, _ = rgb.shape
        return QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()

    def show_at(self, model: ReviewModel) -> None:
        index = model.video_frame()
        path = model.video.video_path if model.video is not None else None
        image = self.frame(path, index)
        self.frame_index = index if image is not None else None
        self._image = image
        if image is None:
            image = QtGui.QImage(640, 480, QtGui.QImage.Format.Format_RGB888)
            image.fill(QtGui.QColor(roles().video_background))
        canvas = image.copy()
        painter = QtGui.QPainter(canvas)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        w, h = canvas.width(), canvas.height()
        heat = model.gaze_heat()
        if heat is not None and heat.max() > 0:  # where the eyes were over the last seconds
            rgba = np.zeros((heat.shape[1], heat.shape[0], 4), np.uint8)
            rgba[..., 0] = 255
            rgba[..., 1] = (200 * (1 - heat.T)).astype(np.uint8)
            rgba[..., 3] = (170 * heat.T).astype(np.uint8)
            overlay = QtGui.QImage(rgba.data, rgba.shape[1], rgba.shape[0], 4 * rgba.shape[1],
                                   QtGui.QImage.Format.Format_RGBA8888)  # fmt: skip
            painter.drawImage(QtCore.QRectF(0, 0, w, h), overlay)
        trail = model.gaze_trail()
        if trail.size:
            n = trail.shape[0]
            for k, (x, y, conf) in enumerate(trail):
                if not (np.isfinite(x) and np.isfinite(y)):
                    continue
                alpha = int(60 + 195 * (k + 1) / n)
                painter.setPen(QtCore.Qt.PenStyle.NoPen)
                painter.setBrush(QtGui.QColor(255, 80, 0, alpha if conf > 0.5 else alpha // 3))
                r = 10 if k == n - 1 else 4
                painter.drawEllipse(QtCore.QPointF(x * w, y * h), r, r)
        pose = model.skeleton_pose()
        if pose is not None:
            painter.setPen(QtGui.QPen(QtGui.QColor(0, 230, 118), 3))
            for a, b in POSE_CONNECTIONS:
                if pose[a, 2] > 0.3 and pose[b, 2] > 0.3:
                    painter.drawLine(QtCore.QPointF(pose[a, 0] * w, pose[a, 1] * h),
                                     QtCore.QPointF(pose[b, 0] * w, pose[b, 1] * h))  # fmt: skip
        if model.video is None and not trail.size and pose is None:
            painter.setPen(QtGui.QColor(roles().muted))
            painter.drawText(canvas.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "no video, gaze or skeleton")
        painter.end()
        self.setPixmap(QtGui.QPixmap.fromImage(canvas).scaled(
            self.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio,
            QtCore.Qt.TransformationMode.SmoothTransformation))  # fmt: skip


class ReviewWindow(QtWidgets.QMainWindow):
    """See the module docstring."""

    def __init__(self, data: ReviewData) -> None:
        super().__init__()
        self.data = data
        self.model = ReviewModel(data)
        #: plots draw seconds from the start (epoch-sized values lose precision in the view)
        self.x0 = self.model.start
        self.setWindowTitle(f"Review — {data.path.name}")
        self.setObjectName("reviewWindow")
        self.setAcceptDrops(True)
        self.plots: dict[str, pg.PlotItem] = {}
        #: stream → the tooltips of its recorded suspect/bad spells, shaded on its plot
        self.quality_shades: dict[str, list[str]] = {}
        self._curves: dict[str, list[pg.PlotDataItem]] = {}
        self._stacked: dict[str, pg.ImageItem] = {}  # stream → its stacked raster
        self._cursor_lines: list[pg.InfiniteLine] = []
        self._marker_pool: dict[str, list[pg.InfiniteLine]] = {}  # plot → its marker lines
        self._drawn_view: tuple[float, float] | None = None
        self._syncing = False
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.video = VideoView()
        self._build_plots()
        self.overview = pg.PlotWidget()
        self.overview.setMaximumHeight(90)
        self.overview.setMouseEnabled(x=False, y=False)
        self.overview.hideAxis("left")
        self.region = pg.LinearRegionItem(values=self._x(self.model.view), brush=(21, 101, 192, 40))
        self.region.sigRegionChanged.connect(self._region_moved)
        self.overview.addItem(self.region)
        self.overview_cursor = pg.InfiniteLine(self.model.cursor - self.x0, pen=pg.mkPen(roles().error, width=2))
        self.overview.addItem(self.overview_cursor)
        self._draw_overview()
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.clicked.connect(lambda: self.model.play())
        self.speed = QtWidgets.QComboBox()
        self.speed.addItems([f"{s:g}×" for s in SPEEDS])
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.currentIndexChanged.connect(lambda i: self.model.set_speed(SPEEDS[i]))
        buttons = []
        controls_spec = (
            ("◀◀ marker", "previous marker (PgUp)", lambda: self.model.jump_marker(-1)),
            ("◀", "one frame back (←)", lambda: self.model.step(-1)),
            ("▶", "one frame on (→)", lambda: self.model.step(1)),
            ("marker ▶▶", "next marker (PgDn)", lambda: self.model.jump_marker(1)),
            ("Export range…", "trim to the selection ([ and ]) and export", self.export_range),
        )
        for text, tip, action in controls_spec:
            b = QtWidgets.QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(action)
            buttons.append(b)
        self.time_label = QtWidgets.QLabel()
        self.time_label.setObjectName("reviewTime")
        self.clock_label = QtWidgets.QLabel(f"clock: {data.clock}")
        self.clock_label.setObjectName("reviewClock")
        self.clock_label.setToolTip("\n".join(data.warnings) or "read without warnings")
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.speed)
        for b in buttons:
            controls.addWidget(b)
        controls.addWidget(self.time_label, 1)
        if data.sync_check:
            verdicts = [row.get("verdict") for row in data.sync_check.get("sensors", {}).values()]
            passed = sum(v == "pass" for v in verdicts)
            self.sync_check_button = QtWidgets.QPushButton(f"Sync check: {passed} of {len(verdicts)} pass")
            self.sync_check_button.setObjectName("reviewSyncCheck")
            self.sync_check_button.setToolTip("the latencies this recording's sync check measured, per sensor")
            self.sync_check_button.clicked.connect(self.show_sync_check)
            controls.addWidget(self.sync_check_button)
        controls.addWidget(self.clock_label)
        self.plot_scroll = vertical_scroll(self.layout_widget, "reviewPlotScroll")
        split = QtWidgets.QSplitter()
        split.addWidget(self.plot_scroll)
        split.addWidget(self.video)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.video.setVisible(self.model.has_media())  # no half-empty pane without video, gaze or skeleton
        central = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(central)
        box.addWidget(split, 1)
        box.addWidget(self.overview)
        box.addLayout(controls)
        if data.warnings:
            warn = QtWidgets.QLabel("⚠ " + "; ".join(data.warnings[:3]) + (" …" if len(data.warnings) > 3 else ""))
            warn.setObjectName("reviewWarnings")
            warn.setWordWrap(True)
            warn.setToolTip("\n".join(data.warnings))
            box.addWidget(warn)
        self.setCentralWidget(central)
        self.timer = QtCore.QTimer(self, interval=PLAY_TICK_MS)
        self.timer.timeout.connect(self._tick)
        self._last_tick = time.monotonic()
        self.timer.start()
        self.model.changed.connect(self._changed)
        self.render_view()

    def show_sync_check(self) -> QtWidgets.QDialog:
        """The recording's sync check result (read-only)."""
        from .synccheck_dialog import SyncCheckDialog

        self.sync_check_dialog = SyncCheckDialog(self, None, self.data.sync_check, self.data.session_dir)
        self.sync_check_dialog.show()
        return self.sync_check_dialog

    # -- building ---------------------------------------------------------------------------
    def _build_plots(self) -> None:
        signals = self.model.signals()[:MAX_PLOTS]
        heights = [max(MIN_PLOT_PX, STACKED_CHANNEL_PX * min(s.values.shape[1], MAX_CHANNELS_DRAWN) + 30)
                   if s.values.shape[1] > STACK_ABOVE else MIN_PLOT_PX for s in signals]  # fmt: skip
        self.layout_widget.setMinimumHeight(sum(heights) + 30)
        for row, stream in enumerate(signals):
            plot = self.layout_widget.addPlot(row=row, col=0)
            self.layout_widget.ci.layout.setRowMinimumHeight(row, heights[row])
            unit = f" ({stream.units[0]})" if stream.units and stream.units[0] else ""
            plot.setLabel("left", f"{stream.attribute or stream.name}{unit}"[:28])
            plot.getAxis("left").setWidth(64)
            plot.setToolTip(f"{stream.name} · {stream.key}")
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setClipToView(True)
            plot.disableAutoRange()  # the model owns x; y is fitted to each range's envelope
            for axis in ("left", "bottom"):  # axes are drawn once per range, not per cursor move
                plot.getAxis(axis).setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            plot.getAxis("bottom").setStyle(maxTickLevel=1, maxTextLevel=0)  # labelled major ticks only
            plot.setXRange(*self._x(self.model.view), padding=0)
            if row == len(signals) - 1:
                plot.setLabel("bottom", "s from the start")
            vb = plot.getViewBox()
            vb.sigRangeChangedManually.connect(lambda _mask, vb=vb: self._plot_moved(vb))
            self.plots[stream.key] = plot
            n = min(stream.values.shape[1], MAX_CHANNELS_DRAWN)
            if stream.values.shape[1] > STACK_ABOVE:
                image = pg.ImageItem(axisOrder="row-major")
                image.setLookupTable(np.array([[0, 0, 0, 0], [100, 181, 246, 255]], dtype=np.uint8))
                plot.addItem(image)
                self._stacked[stream.key] = image
                names = stream.channel_names
                c = stream.values.shape[1]
                step = max(1, -(-c * LABEL_PX // (heights[row] - 30)))  # every label keeps LABEL_PX
                plot.getAxis("left").setTicks([[(c - i - 0.5, names[i]) for i in range(0, c, step)]])
                plot.setLabel("left", "")  # the channel names are the axis: the stream's name goes on top
                plot.setTitle(stream.name, size="8pt")
                plot.setYRange(0, c, padding=0)
                n = 0
            self._shade_quality(plot, stream)
            if stream.kind == "events":  # a stem per event at its code, not a line through them
                self._curves[stream.key] = [plot.plot(pen=pg.mkPen(colour(i), width=2)) for i in range(n)]
            else:
                self._curves[stream.key] = [plot.plot(pen=pg.mkPen(colour(i), width=1)) for i in range(n)]
            for curve in self._curves[stream.key]:  # drawn once per range: cursor moves only blit them
                curve.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            line = pg.InfiniteLine(self.model.cursor - self.x0, movable=True, pen=pg.mkPen(roles().error, width=2))
            line.sigPositionChanged.connect(self._cursor_dragged)
            plot.addItem(line)
            self._cursor_lines.append(line)
        if not signals:
            self.layout_widget.addLabel("no numeric streams", row=0, col=0)

    def _shade_quality(self, plot: pg.PlotItem, stream: ReviewStream) -> None:
        """The recorded suspect (amber) and bad (red) spells of ``stream`` behind its curves: on
        the channel's own band of a stacked plot, else the whole height; tooltip says why."""
        c = stream.values.shape[1]
        stacked = c > STACK_ABOVE
        tips = []
        for a, b, state, reason, ch in self.model.quality_spans(stream.key):
            rgb = (214, 39, 40) if state == 2 else (255, 160, 0)
            if stacked and 0 <= ch < c:
                item: QtWidgets.QGraphicsRectItem | pg.LinearRegionItem = QtWidgets.QGraphicsRectItem(
                    a - self.x0, float(c - ch - 1), max(b - a, 1e-3), 1.0
                )
                item.setBrush(pg.mkBrush(*rgb, 110))
                item.setPen(pg.mkPen(None))
            else:
                item = pg.LinearRegionItem((a - self.x0, b - self.x0), movable=False, brush=pg.mkBrush(*rgb, 45),
                                           pen=pg.mkPen(None))  # fmt: skip
            where = f" (channel {ch + 1})" if ch >= 0 else ""
            tip = f"{'bad' if state == 2 else 'suspect'}: {reason}{where}, {a - self.x0:.1f}–{b - self.x0:.1f} s"
            item.setToolTip(tip)
            item.setZValue(-10)
            plot.addItem(item, ignoreBounds=True)
            tips.append(tip)
        if tips:
            bad = sum(t.startswith("bad") for t in tips)
            plot.setToolTip(f"{stream.name} · {stream.key}\nsignal quality: {bad} bad, {len(tips) - bad} suspect "
                            "spell(s)\n" + "\n".join(tips[:20]))  # fmt: skip
            self.quality_shades[stream.key] = tips

    def _draw_overview(self) -> None:
        signals = self.model.signals()
        if signals:
            t, lo, hi = signals[0].envelope.view(self.model.start, self.model.end, 1500)
            x = np.repeat(t - self.x0, 2)
            y = np.column_stack([lo[:, 0], hi[:, 0]]).ravel()
            self.overview.plot(x, y, pen=pg.mkPen(roles().muted), connect=gapless(x))
        for t in self.data.marker_times[:2000]:
            self.overview.addItem(pg.InfiniteLine(float(t) - self.x0, pen=pg.mkPen(roles().marker, width=1)))
        self.overview.setXRange(0.0, self.model.end - self.x0, padding=0)
        if signals:
            with np.errstate(invalid="ignore"):
                y0, y1 = float(np.nanmin(lo[:, 0])), float(np.nanmax(hi[:, 0]))
            if np.isfinite(y0) and np.isfinite(y1) and y1 > y0:
                self.overview.setYRange(y0, y1, padding=0.05)
        self.overview.getPlotItem().disableAutoRange()  # hundreds of marker lines: no bounds to gather per paint
        self.overview.getPlotItem().getAxis("bottom").setCacheMode(
            QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)  # its range never changes  # fmt: skip

    def _x(self, span: tuple[float, float]) -> tuple[float, float]:
        """A (t0, t1) of global seconds as plot x (seconds from the start)."""
        return span[0] - self.x0, span[1] - self.x0

    def plotted_range(self, key: str) -> tuple[float, float]:
        """The global-time range a plot shows (s)."""
        lo, hi = self.plots[key].viewRange()[0]
        return lo + self.x0, hi + self.x0

    # -- following the model ----------------------------------------------------------------
    def _changed(self, _reason: str) -> None:
        self.render_view()

    def render_view(self) -> None:
        """Every view to the model's cursor and range."""
        m = self.model
        self._syncing = True
        try:
            if self._drawn_view != m.view:
                self._draw_signals()
                self._draw_markers()
                self.region.setRegion(self._x(m.view))
                self._drawn_view = m.view
            for line in self._cursor_lines:
                line.setValue(m.cursor - self.x0)
            self.overview_cursor.setValue(m.cursor - self.x0)
        finally:
            self._syncing = False
        self.video.show_at(m)
        self.play_button.setText("Pause" if m.playing else "Play")
        sel = f" · selection {m.time_text(m.selection[0])} – {m.time_text(m.selection[1])}" if m.selection else ""
        frame = f" · frame {self.video.frame_index}" if self.video.frame_index is not None else ""
        self.time_label.setText(f"{m.time_text()} of {m.end - m.start:.1f} s · {m.speed:g}×{frame}{sel}")

    def _draw_signals(self) -> None:
        m = self.model
        for stream in m.signals()[:MAX_PLOTS]:
            width_px = int(self.plots[stream.key].getViewBox().width()) or 800
            if stream.key in self._stacked:
                self._draw_stacked(stream, width_px)
                continue
            t, lo, hi = m.plot(stream, max(200, width_px))  # one min/max pair per pixel column
            if stream.kind == "events":
                self._draw_events(stream, t, hi)
                continue
            raw = lo is hi
            x = (t if raw else np.repeat(t, 2)) - self.x0
            # an envelope is drawn as one zigzag through each bin's min and max (continuous however
            # many bins fall on a pixel column), broken only across gaps in the recording
            connect = gapless(x)
            for i, curve in enumerate(self._curves[stream.key]):
                y = lo[:, i] if raw else zigzag(lo[:, i], hi[:, i])
                curve.setData(x, np.asarray(y, dtype=np.float64), connect=connect, skipFiniteCheck=True)
            plot = self.plots[stream.key]
            plot.setXRange(*self._x(m.view), padding=0)
            with np.errstate(invalid="ignore"):
                y0, y1 = float(np.nanmin(lo)) if lo.size else 0.0, float(np.nanmax(hi)) if hi.size else 1.0
            if np.isfinite(y0) and np.isfinite(y1):
                plot.setYRange(y0, y1 if y1 > y0 else y0 + 1.0, padding=0.05)

    def _draw_events(self, stream: ReviewStream, t: np.ndarray, v: np.ndarray) -> None:
        """Events (blinks, trigger codes) as stems from 0 to their value, each on its own."""
        x = np.repeat(t - self.x0, 2)
        for i, curve in enumerate(self._curves[stream.key]):
            y = np.column_stack([np.zeros(t.size), np.asarray(v[:, i], dtype=np.float64)]).ravel()
            curve.setData(x, y, connect="pairs", skipFiniteCheck=True)
        plot = self.plots[stream.key]
        plot.setXRange(*self._x(self.model.view), padding=0)
        with np.errstate(invalid="ignore"):
            top = float(np.nanmax(v)) if v.size else 1.0
            bottom = float(np.nanmin(v)) if v.size else 0.0
        top, bottom = (top if np.isfinite(top) else 1.0), (bottom if np.isfinite(bottom) else 0.0)
        plot.setYRange(min(0.0, bottom), max(top, 1.0), padding=0.1)

    def _draw_stacked(self, stream: ReviewStream, width_px: int) -> None:
        """Rasterize the visible range: one envelope bin per pixel column, a band per channel."""
        m = self.model
        plot = self.plots[stream.key]
        c = stream.values.shape[1]
        t0, t1 = m.view
        edges = np.linspace(t0, t1, max(width_px, 2) + 1)
        t, lo, hi = m.plot(stream, max(width_px, 2) * 2)
        col = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, edges.size - 2)
        cols = edges.size - 1
        lo_px = np.full((cols, c), np.nan)
        hi_px = np.full((cols, c), np.nan)
        np.fmin.at(lo_px, col, np.asarray(lo, dtype=np.float64))
        np.fmax.at(hi_px, col, np.asarray(hi, dtype=np.float64))
        rows = max(4, int(plot.getViewBox().height() or 400) // c)
        image = stacked_raster(lo_px, hi_px, rows)
        item = self._stacked[stream.key]
        item.setImage(image[::-1].astype(np.uint8), levels=(0, 1), autoLevels=False)
        item.setRect(QtCore.QRectF(t0 - self.x0, 0.0, t1 - t0, float(c)))
        plot.setXRange(*self._x(m.view), padding=0)

    def _draw_markers(self) -> None:
        """Marker lines in the visible range, reusing the line items (one pool per plot); the
        first plot labels them, each label in the highest row where it overlaps no other."""
        shown = self.model.markers_in_view()[:MAX_MARKER_LINES]
        texts = [f"{mk.label} ({mk.source})" for mk in shown]
        rows = self._label_rows(shown, texts)
        for j, (key, plot) in enumerate(self.plots.items()):
            pool = self._marker_pool.setdefault(key, [])
            while len(pool) < len(shown):
                pen = pg.mkPen(roles().marker, width=1, style=QtCore.Qt.PenStyle.DashLine)
                line = pg.InfiniteLine(0.0, pen=pen, label="" if j == 0 else None,
                                       labelOpts={"position": 0.9, "color": roles().marker})  # fmt: skip
                plot.addItem(line)
                pool.append(line)
            for k, line in enumerate(pool):
                if k < len(shown):
                    line.setValue(shown[k].t - self.x0)
                    line.setToolTip(texts[k])
                    if getattr(line, "label", None) is not None:
                        line.label.setFormat(texts[k] if rows[k] is not None else "")
                        line.label.setPosition(0.92 - 0.12 * (rows[k] or 0))
                line.setVisible(k < len(shown))

    def _label_rows(self, shown: list[MarkerLine], texts: list[str]) -> list[int | None]:
        """A row per marker label (0 = top) so that no two labels overlap on screen; None when
        every row is taken there (the line stays, its text in the tooltip)."""
        plot = next(iter(self.plots.values()), None)
        width_px = float(plot.getViewBox().width()) if plot is not None else 0.0
        t0, t1 = self.model.view
        px_per_s = (width_px or 800.0) / max(t1 - t0, 1e-9)
        row_end = [-np.inf] * MARKER_LABEL_ROWS  # right edge (px) of the last label in each row
        out: list[int | None] = []
        for mk, text in zip(shown, texts, strict=True):
            x = (mk.t - t0) * px_per_s
            free = next((r for r in range(MARKER_LABEL_ROWS) if row_end[r] < x - 2), None)
            if free is not None:
                row_end[free] = x + LABEL_CHAR_PX * len(text)
            out.append(free)
        return out

    # -- user input -------------------------------------------------------------------------
    def _cursor_dragged(self, line: pg.InfiniteLine) -> None:
        if not self._syncing:
            self.model.set_cursor(float(line.value()) + self.x0, follow=False)

    def _plot_moved(self, vb: pg.ViewBox) -> None:
        """The operator dragged or wheeled a plot: every view takes its range."""
        if not self._syncing:
            lo, hi = vb.viewRange()[0]
            self.model.set_view(lo + self.x0, hi + self.x0)

    def _region_moved(self) -> None:
        if not self._syncing:
            t0, t1 = self.region.getRegion()
            self.model.set_view(float(t0) + self.x0, float(t1) + self.x0)

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        if self.model.playing:
            self.model.advance(dt)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        m, key, shift = self.model, event.key(), bool(event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
        K = QtCore.Qt.Key
        actions = {
            K.Key_Space: lambda: m.play(), K.Key_Right: lambda: m.step(10 if shift else 1),
            K.Key_Left: lambda: m.step(-10 if shift else -1), K.Key_PageDown: lambda: m.jump_marker(1),
            K.Key_PageUp: lambda: m.jump_marker(-1), K.Key_Plus: lambda: m.zoom(0.5), K.Key_Equal: lambda: m.zoom(0.5),
            K.Key_Minus: lambda: m.zoom(2.0), K.Key_Home: lambda: m.set_cursor(m.start),
            K.Key_End: lambda: m.set_cursor(m.end),
            K.Key_BracketLeft: lambda: m.select(m.cursor, m.selection[1] if m.selection else m.end),
            K.Key_BracketRight: lambda: m.select(m.selection[0] if m.selection else m.start, m.cursor),
        }  # fmt: skip
        action = actions.get(QtCore.Qt.Key(key))
        if action is None:
            super().keyPressEvent(event)
            return
        action()

    def export_range(self) -> None:
        """Trim the session to the selection (or the visible range) and export it."""
        from .export_dialog import ExportDialog

        if self.data.session_dir is None:
            self.clock_label.setText("export: replay this XDF file (sensorium replay) and record it, then trim that")
            return
        t0, t1 = self.model.selection or self.model.view
        dialog = ExportDialog(self, self.data.session_dir, time_range=(t0, t1))
        dialog.show()
        self._export_dialog = dialog

    # -- drag a file onto the window to open it ---------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        for url in event.mimeData().urls():
            load_review_window(Path(url.toLocalFile()), self)


_OPEN: list[ReviewWindow] = []
_OPEN_ERRORS: list[QtWidgets.QMessageBox] = []


def open_review_window(path: Path, parent: QtWidgets.QWidget | None = None) -> ReviewWindow | None:
    """Open ``path`` in a new review window now (blocking); a clear message (no window) when it
    cannot be read. The window's own Open and drops use :class:`ReviewLoader` instead."""
    try:
        data = open_review(path)
    except ReviewError as exc:
        _cannot_open(str(exc), parent)
        return None
    return _show_review(data)


def _cannot_open(message: str, parent: QtWidgets.QWidget | None) -> None:
    log.error("%s", message)
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "Cannot open", message, parent=parent)
    box.setObjectName("reviewOpenError")
    box.open()  # not modal to the application: the operator reads it, nothing waits on it
    _OPEN_ERRORS.append(box)


def _show_review(data: ReviewData) -> ReviewWindow:
    win = ReviewWindow(data)
    win.resize(1400, 850)
    win.show()
    _OPEN.append(win)
    win.destroyed.connect(lambda *_: _OPEN.remove(win) if win in _OPEN else None)
    return win


class ReviewLoader(QtCore.QObject):
    """Reads a recording or XDF file in a thread behind a progress dialog with Cancel, then
    opens its review window; the window that asked stays responsive (plots keep moving).
    ``finished(window or None)`` says how it ended (None: cancelled or unreadable)."""

    finished = QtCore.Signal(object)
    _progress = QtCore.Signal(float, str)
    _done = QtCore.Signal(object)

    def __init__(self, path: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.parent_widget = parent
        self.cancel = threading.Event()
        self.window: ReviewWindow | None = None
        self.outcome = ""
        self.dialog = QtWidgets.QProgressDialog(f"Reading {self.path.name}…", "Cancel", 0, 1000, parent)
        self.dialog.setObjectName("reviewLoading")
        self.dialog.setWindowTitle("Opening a recording")
        self.dialog.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        self.dialog.setMinimumDuration(300)  # a quick read shows no dialog at all
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.canceled.connect(self.cancel.set)
        self._progress.connect(self._show_progress)
        self._done.connect(self._finish)
        self.reader = threading.Thread(target=self._read, name=f"review-{self.path.name}", daemon=True)
        _LOADING.append(self)

    def start(self) -> ReviewLoader:
        self.dialog.setValue(0)
        self.reader.start()
        return self

    def _read(self) -> None:
        try:
            outcome: object = open_review(self.path, self._progress.emit, self.cancel)
        except (ReviewError, ReviewCancelled) as exc:
            outcome = exc
        except Exception as exc:  # anything else must still end the dialog, with the reason
            outcome = ReviewError(f"{self.path.name}: {type(exc).__name__}: {exc}")
        self._done.emit(outcome)

    def _show_progress(self, frac: float, what: str) -> None:
        if not self.cancel.is_set():
            self.dialog.setValue(round(frac * 1000))
            self.dialog.setLabelText(what)

    def _finish(self, outcome: object) -> None:
        self.dialog.canceled.disconnect(self.cancel.set)  # closing a progress dialog says "canceled"
        self.dialog.close()
        if isinstance(outcome, ReviewData) and not self.cancel.is_set():
            self.dialog.setLabelText(f"drawing {len(outcome.streams)} streams…")
            self.window = _show_review(outcome)
            self.outcome = "opened"
        elif isinstance(outcome, ReviewError):
            self.outcome = str(outcome)
            _cannot_open(str(outcome), self.parent_widget)
        else:
            self.outcome = "cancelled"
            log.info("opening %s cancelled", self.path.name)
        if self in _LOADING:
            _LOADING.remove(self)
        self.finished.emit(self.window)


#: loaders while they read (kept alive until they finish)
_LOADING: list[ReviewLoader] = []


def load_review_window(path: Path, parent: QtWidgets.QWidget | None = None) -> ReviewLoader:
    """Open ``path`` for review without blocking the window that asked (see :class:`ReviewLoader`)."""
    return ReviewLoader(path, parent).start()
