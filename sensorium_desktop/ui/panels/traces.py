"""Stacked live traces kept as a picture of pixel columns: each frame draws only new columns.

A 32-channel EEG at 512 Hz over a 10 s window is a path of ~50 000 points; stroking all of it
60 times a second is most of a core. Here one device pixel column is ``dt`` seconds (the
window over the view's width); each column shows, per channel, the range of values the line
through the samples covers there (:func:`column_spans`), written into an opaque image with
numpy, and each frame the image is blitted 1:1 at the scroll position after the columns that
got samples since the last frame are written again. A column's pixels depend only on its
samples and the sample before it, so the picture equals drawing the whole window at once.
The whole picture is drawn again when the view's size, the window or the channel scale
changes, and when the image's right end is reached (every few windows).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from ...core.ring import RingBuffer
from ...viewmodel.plotdata import ChannelScaler, column_spans, paint_spans

#: the image holds this many view widths (plus the second of history before the window)
IMAGE_WIDTHS = 2


class StackedTraces(pg.GraphicsObject):
    """Channels of one stacked plot (channel k around y = −k, the view's y range
    [−n + 0.5, 0.5]) as an image; x in seconds since ``t0`` like the plot's data."""

    def __init__(self, channels: int, t0: float, pen: QtGui.QColor, background: QtGui.QColor) -> None:
        super().__init__()
        self.channels = channels
        self.t0 = t0
        self.colour = pen.rgba()
        self.background = background.rgba()
        self.pixels = np.zeros((0, 0), dtype=np.uint32)  # (rows, columns), shared with image
        self.image: QtGui.QImage | None = None
        self.dt = 1.0  # s per column (= per device pixel)
        self.first_column = 0  # global column index of the image's x = 0
        self.drawn_end = 0  # global column index after the last one drawn
        self.layout_key: tuple[int, int, float, float] = (0, 0, 0.0, 0.0)
        #: the channel scale the picture is drawn with
        self.drawn_scale = ChannelScaler()
        self.total_drawn = 0  # ring.total when last drawn
        self.newest_drawn = -math.inf  # newest sample time drawn (s)
        self.full_draws = 0
        self.column_draws = 0

    def invalidate(self) -> None:
        """Draw the whole picture on the next :meth:`advance`."""
        self.layout_key = (0, 0, 0.0, 0.0)

    def advance(self, ring: RingBuffer, scaler: ChannelScaler, x_max: float, window_s: float,
                width_px: float, height_px: float, dpr: float) -> bool:  # fmt: skip
        """Bring the picture up to the ring's newest sample for a view ``width_px`` × ``height_px``
        (logical px at ``dpr`` device pixels each) showing (x_max − window_s, x_max] (s since
        t0). Returns whether anything was drawn."""
        columns, rows = max(1, round(width_px * dpr)), max(1, round(height_px * dpr))
        key = (columns, rows, float(window_s), float(dpr))
        dt = window_s / max(width_px * dpr, 1.0)
        newest = ring.last_time()
        end_column = math.floor((x_max if newest is None else max(x_max, newest - self.t0)) / dt) + 1
        if (self.image is None or key != self.layout_key
                or scaler.differs(self.drawn_scale.centre, self.drawn_scale.half)
                or end_column - self.first_column > self.pixels.shape[1]):  # fmt: skip
            self._draw_all(ring, scaler, key, dt, x_max - window_s - 1.0)
        elif ring.total != self.total_drawn:
            self._draw_new(ring)
        else:
            return False
        self.total_drawn = ring.total
        self.update()
        return True

    def _draw_all(self, ring: RingBuffer, scaler: ChannelScaler, key: tuple[int, int, float, float],
                  dt: float, x_first: float) -> None:  # fmt: skip
        columns, rows, _window_s, dpr = key
        self.prepareGeometryChange()
        self.layout_key, self.dt = key, dt
        self.drawn_scale.centre = None if scaler.centre is None else scaler.centre.copy()
        self.drawn_scale.half = None if scaler.half is None else scaler.half.copy()
        self.first_column = math.floor(x_first / dt)
        width = IMAGE_WIDTHS * columns + math.ceil(1.0 / dt) + 2
        if self.pixels.shape != (rows, width):
            self.pixels = np.empty((rows, width), dtype=np.uint32)
            self.image = QtGui.QImage(self.pixels.data, width, rows, width * 4, QtGui.QImage.Format.Format_RGB32)
        assert self.image is not None
        self.image.setDevicePixelRatio(dpr)
        self.pixels[:] = self.background
        self.drawn_end = self.first_column
        t, v = ring.latest(self.t0 + self.first_column * dt, before=1)
        self.newest_drawn = -math.inf
        self._write(t, v, self.first_column)
        self.full_draws += 1

    def _draw_new(self, ring: RingBuffer) -> None:
        """Write again the columns from the one after the newest sample older than anything new
        (or than the newest sample drawn: its column was still filling) to the newest."""
        new_times = ring.newest_times(ring.total - self.total_drawn)
        oldest_new = float(new_times.min()) if new_times.size else self.newest_drawn
        if math.isfinite(self.newest_drawn):
            oldest_new = min(oldest_new, self.newest_drawn)
        first_changed = self._column(oldest_new)
        t, v = ring.latest(self.t0 + (first_changed - 0.5) * self.dt, before=1)
        older = np.flatnonzero(np.floor((t - self.t0) / self.dt) < first_changed)
        if older.size:  # the lead sample: its column keeps its pixels, the next ones are redone
            lead = int(older[-1])
            t, v = t[lead:], v[lead:]
            start = self._column(float(t[0])) + 1
        else:
            start = self._column(float(t[0])) if t.size else first_changed
        self._write(t, v, max(start, self.first_column))
        self.column_draws += 1

    def _write(self, t: np.ndarray, v: np.ndarray, start: int) -> None:
        """Write columns ``start``.. (global index) up to the newest sample of ``t`` (s, host)
        ``v`` (n, ch), and background over what was drawn beyond it."""
        stop = self._column(float(t[-1])) + 1 if t.size else start
        stop = min(stop, self.first_column + self.pixels.shape[1])
        lo, hi = column_spans(t, v[:, : self.channels], self.t0, self.dt, start, stop)
        rows = self.pixels.shape[0]
        top, bottom = self.drawn_scale.pixel_rows(hi, rows), self.drawn_scale.pixel_rows(lo, rows)
        paint_spans(self.pixels, start - self.first_column, top, bottom, self.colour, self.background)
        if self.drawn_end > stop:  # a clock step back: what was drawn ahead goes
            self.pixels[:, max(0, stop - self.first_column) : self.drawn_end - self.first_column] = self.background
        self.drawn_end = stop
        if t.size:
            self.newest_drawn = max(self.newest_drawn, float(t[-1]))

    def _column(self, t: float) -> int:
        """The global column index of host time ``t`` (s)."""
        return math.floor((t - self.t0) / self.dt)

    # -- QGraphicsItem ------------------------------------------------------------------------
    def boundingRect(self) -> QtCore.QRectF:
        if self.image is None:
            return QtCore.QRectF()
        return QtCore.QRectF(self.first_column * self.dt, -self.channels + 0.5,
                             self.pixels.shape[1] * self.dt, float(self.channels))  # fmt: skip

    def paint(self, p: QtGui.QPainter, *args: object) -> None:
        """Blit the image 1:1 at its place on the time axis (rounded to a device pixel)."""
        if self.image is None:
            return
        corner = p.worldTransform().map(QtCore.QPointF(self.first_column * self.dt, 0.5))
        dpr = self.image.devicePixelRatio()
        p.save()
        p.setWorldTransform(QtGui.QTransform())
        p.drawImage(QtCore.QPointF(round(corner.x() * dpr) / dpr, round(corner.y() * dpr) / dpr), self.image)
        p.restore()
