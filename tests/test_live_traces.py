"""Stacked live traces drawn column by column (offscreen Qt): what a frame adds must be exactly
what drawing the whole window at once shows, for any batching, rate, gap and NaN pattern."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6 import QtGui, QtWidgets

from sensorium_desktop.core.ring import RingBuffer
from sensorium_desktop.ui.panels.traces import StackedTraces
from sensorium_desktop.viewmodel.plotdata import ChannelScaler, column_spans

pytestmark = pytest.mark.gui

WIDTH, HEIGHT, WINDOW_S = 600.0, 240.0, 4.0
T0 = 1_000.0


def _pixels(item: StackedTraces) -> np.ndarray:
    """The picture as the view gets it (the QImage's own bytes)."""
    assert item.image is not None
    img = item.image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    buf = np.frombuffer(img.constBits(), dtype=np.uint32, count=img.width() * img.height())
    return buf.reshape(img.height(), img.width()).copy()


def _feed(rate: float, seconds: float, batch_sizes: list[int], nan_every: int = 0,
          gap: tuple[float, float] | None = None, seed: int = 0) -> tuple[StackedTraces, StackedTraces]:  # fmt: skip
    """Stream a signal into a ring in batches, advancing one picture after every batch; return
    it and a second picture drawn once from the same ring and scale."""
    _ = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = T0 + np.arange(n) / rate + rng.uniform(0, 0.2 / rate, n)
    if gap is not None:
        keep = (t < T0 + gap[0]) | (t >= T0 + gap[1])
        t = t[keep]
    v = np.sin(2 * np.pi * np.outer(t - T0, [0.7, 1.3, 2.9, 5.0, 11.0, 23.0])) + 0.2 * rng.standard_normal((t.size, 6))
    v = v.astype(np.float32)
    if nan_every:
        v[::nan_every, 2] = np.nan
        v[5 * nan_every : 9 * nan_every, 4] = np.nan
    ring = RingBuffer(int(rate * 60), 6)
    scaler = ChannelScaler()
    scaler.update(v)
    live = StackedTraces(6, T0, QtGui.QColor("#1f77b4"), QtGui.QColor("white"))
    i = k = 0
    while i < t.size:
        size = batch_sizes[k % len(batch_sizes)]
        ring.append(t[i : i + size], v[i : i + size])
        i += size
        k += 1
        live.advance(ring, scaler, float(t[min(i, t.size) - 1]) - T0, WINDOW_S, WIDTH, HEIGHT, 1.0)
    assert live.full_draws == 1 and live.column_draws > 3  # one picture, then columns only
    whole = StackedTraces(6, T0, QtGui.QColor("#1f77b4"), QtGui.QColor("white"))
    x_first = (live.first_column + 0.5) * live.dt + WINDOW_S + 1.0  # the same first column
    whole.advance(ring, scaler, x_first, WINDOW_S, WIDTH, HEIGHT, 1.0)
    assert whole.first_column == live.first_column and whole.dt == live.dt
    return live, whole


@pytest.mark.parametrize(
    ("rate", "batches", "nan_every", "gap"),
    [
        (512.0, [5, 13, 1, 40, 7], 0, None),  # several samples per column, ragged batches
        (512.0, [64], 97, None),  # NaN samples and a NaN stretch break the line
        (10.0, [1, 3, 2], 0, None),  # a column in ten or more has a sample
        (250.0, [9, 2, 30], 0, (1.5, 2.2)),  # no samples for 0.7 s
        (2000.0, [1, 250, 17], 0, None),  # many samples per column
    ],
)
def test_columns_drawn_as_data_arrives_equal_one_draw_of_it_all(rate, batches, nan_every, gap) -> None:
    live, whole = _feed(rate, 3.5, batches, nan_every, gap)
    a, b = _pixels(live), _pixels(whole)
    assert a.shape == b.shape
    differ = np.argwhere(a != b)
    assert differ.size == 0, f"{len(differ)} pixels differ, first at row/column {differ[:5].tolist()}"
    assert (a != a[0, -1]).sum() > 500  # something was drawn (the right end is background)


def test_the_picture_is_drawn_again_when_the_view_or_the_scale_changes() -> None:
    _ = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    ring = RingBuffer(10_000, 6)
    t = T0 + np.arange(2_000) / 500.0
    ring.append(t, np.tile(np.sin(t - T0)[:, None], (1, 6)).astype(np.float32))
    scaler = ChannelScaler()
    scaler.update(ring.latest()[1])
    item = StackedTraces(6, T0, QtGui.QColor("black"), QtGui.QColor("white"))
    x_max = float(t[-1] - T0)
    assert item.advance(ring, scaler, x_max, WINDOW_S, WIDTH, HEIGHT, 1.0) and item.full_draws == 1
    assert not item.advance(ring, scaler, x_max, WINDOW_S, WIDTH, HEIGHT, 1.0)  # nothing new: nothing drawn
    item.advance(ring, scaler, x_max, WINDOW_S, WIDTH + 50, HEIGHT, 1.0)  # resized
    item.advance(ring, scaler, x_max, 2 * WINDOW_S, WIDTH + 50, HEIGHT, 1.0)  # another window
    item.advance(ring, scaler, x_max, 2 * WINDOW_S, WIDTH + 50, HEIGHT, 2.0)  # another screen
    assert item.full_draws == 4 and item.image is not None and item.image.height() == 2 * HEIGHT
    scaler.half = scaler.half * 1.2  # a fifth: drawn as it is
    item.advance(ring, scaler, x_max, 2 * WINDOW_S, WIDTH + 50, HEIGHT, 2.0)
    assert item.full_draws == 4
    scaler.half = scaler.half * 1.5  # half again: the bands would be wrong
    item.advance(ring, scaler, x_max, 2 * WINDOW_S, WIDTH + 50, HEIGHT, 2.0)
    assert item.full_draws == 5
    end = math.floor(x_max / item.dt) - item.first_column  # far right of the image reached
    item.advance(ring, scaler, x_max + (item.image.width() - end + 2) * item.dt, 2 * WINDOW_S, WIDTH + 50, HEIGHT, 2.0)
    assert item.full_draws == 6


def test_column_spans_and_the_ring_tail() -> None:
    # columns of 10 ms: samples in 0, 1 (two) and 4; a NaN breaks the line into and out of it
    t = np.array([0.005, 0.012, 0.018, 0.045, 0.055])
    v = np.array([[0.0, 1.0], [2.0, 1.0], [-1.0, np.nan], [5.0, 3.0], [4.0, 3.0]])
    lo, hi = column_spans(t, v, 0.0, 0.01, 0, 6)
    assert lo[:, 0].tolist()[:5] == [0.0, -1.0, -1.0, 1.0, 3.0] and hi[:, 0].tolist()[:5] == [0.0, 2.0, 1.0, 3.0, 5.0]
    assert lo[5, 0] == 4.0 and hi[5, 0] == 5.0  # entered from the last sample of column 4
    assert lo[:, 1].tolist()[:2] == [1.0, 1.0] and np.isnan(lo[2:4, 1]).all() and lo[4, 1] == 3.0
    tail_lo, tail_hi = column_spans(t[2:], v[2:], 0.0, 0.01, 2, 6)  # from the sample before column 2
    assert np.array_equal(tail_lo, lo[2:], equal_nan=True) and np.array_equal(tail_hi, hi[2:], equal_nan=True)
    ring = RingBuffer(8, 1)
    ring.append(np.arange(11.0), np.arange(11.0)[:, None])  # wrapped: 3..10 held
    assert ring.latest(7.5)[0].tolist() == [8.0, 9.0, 10.0]
    assert ring.latest(7.5, before=2)[0].tolist() == [6.0, 7.0, 8.0, 9.0, 10.0]
    assert ring.latest(4.0, before=9)[0].tolist() == list(np.arange(3.0, 11.0))
    assert ring.latest(11.0)[0].size == 0 and ring.newest_times(3).tolist() == [8.0, 9.0, 10.0]
    assert ring.newest_times(100).tolist() == list(np.arange(3.0, 11.0))
