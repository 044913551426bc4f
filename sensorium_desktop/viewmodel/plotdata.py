"""Turning ring-buffer windows into what a plot can draw fast (pure numpy, no Qt).

At 512 Hz a 10 s window has 5 120 samples per channel, several per screen pixel. Drawing all
of them (or asking pyqtgraph to downsample each of 32 curves separately, every frame) costs
more than the frame budget, so windows are reduced once for all channels to a min/max
envelope per pixel column (peaks stay visible), and many channels are drawn as one stacked,
per-channel-normalized path (EEG style).
"""

from __future__ import annotations

import numpy as np


def envelope(t: np.ndarray, v: np.ndarray, x_min: float, x_max: float, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max per pixel column of samples ``t`` (n,) ``v`` (n, ch) inside [x_min, x_max].

    Returns (x (m,), values (m, ch)) with m ≤ 2 * columns: each occupied column contributes
    its minimum then its maximum (the raw samples when there are fewer than two per column).
    """
    keep = (t >= x_min) & (t <= x_max)
    t, v = t[keep], v[keep]
    if t.size <= 2 * columns:
        return t, v
    col = ((t - x_min) * (columns / max(x_max - x_min, 1e-12))).astype(np.int64).clip(0, columns - 1)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    lo = np.minimum.reduceat(v, starts, axis=0)
    hi = np.maximum.reduceat(v, starts, axis=0)
    ends = np.r_[starts[1:], t.size] - 1
    x = np.column_stack([t[starts], t[ends]]).ravel()
    out = np.empty((2 * starts.size, v.shape[1]), dtype=v.dtype)
    out[0::2], out[1::2] = lo, hi
    return x, out


def column_spans(t: np.ndarray, v: np.ndarray, t_origin: float, dt: float, start: int,
                 stop: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The value range each pixel column ``start``..``stop``−1 of the line through samples ``t``
    (n,) s, in time order, ``v`` (n, ch) covers; column k holds [t_origin + k·dt, t_origin +
    (k+1)·dt) (``dt`` in s).

    A column covers its samples and the line into it from the sample before (a column without
    samples: its part of the straight line across it), so the result for a column depends only
    on its samples and the newest sample before it: drawing a tail again from there gives
    exactly what drawing everything gives. A NaN sample breaks the line. Returns (lo, hi), each
    (stop − start, ch), NaN where nothing is drawn.
    """
    count, channels = max(0, stop - start), v.shape[1]
    lo = np.full((count, channels), np.nan)
    hi = np.full((count, channels), np.nan)
    if t.size == 0 or count == 0:
        return lo, hi
    col = np.floor((t - t_origin) / dt).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    ends = np.r_[starts[1:], t.size] - 1
    occupied = col[starts]
    values = v.astype(np.float64, copy=False)
    low = np.fmin.reduceat(values, starts, axis=0)
    high = np.fmax.reduceat(values, starts, axis=0)
    first, last = values[starts], values[ends]
    # the line from the previous occupied column p's last sample to column c's first: its value
    # where it enters column c (the whole rise when p = c − 1)
    gap = np.diff(occupied)  # c − p ≥ 1
    entry = last[:-1] + ((gap - 1) / gap)[:, None] * (first[1:] - last[:-1])
    low[1:] = np.fmin(low[1:], entry)
    high[1:] = np.fmax(high[1:], entry)
    inside = (occupied >= start) & (occupied < stop)
    lo[occupied[inside] - start], hi[occupied[inside] - start] = low[inside], high[inside]
    wide = np.flatnonzero(gap > 1)  # columns the line crosses without a sample
    if wide.size:
        k = _steps(gap[wide])
        pair = np.repeat(wide, gap[wide] - 1)
        column = occupied[pair] + k
        keep = (column >= start) & (column < stop)
        pair, k, column = pair[keep], k[keep], column[keep]
        rise = (first[pair + 1] - last[pair]) / gap[pair][:, None]
        before = last[pair] + (k - 1)[:, None] * rise
        after = before + rise
        lo[column - start], hi[column - start] = np.fmin(before, after), np.fmax(before, after)
    return lo, hi


def _steps(lengths: np.ndarray) -> np.ndarray:
    """1..L−1 for each L in ``lengths``, concatenated (vectorized ``np.arange`` per entry)."""
    counts = lengths - 1
    total = int(counts.sum())
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - offsets + 1


def paint_spans(pixels: np.ndarray, x0: int, top: np.ndarray, bottom: np.ndarray, colour: int,
                background: int) -> None:  # fmt: skip
    """Fill pixel columns ``x0``.. of ``pixels`` (H, W) uint32 with ``background`` and, in each
    column j, ``colour`` on the rows from ``top[j, k]`` to ``bottom[j, k]`` (float rows, 0 = top;
    (m, ch); NaN: nothing) of every channel k."""
    height, width = pixels.shape
    m = min(top.shape[0], width - x0)
    if m <= 0:
        return
    top, bottom = top[:m], bottom[:m]
    ok = np.isfinite(top) & np.isfinite(bottom)
    first = np.clip(np.floor(np.where(ok, top, 0.0)), 0, height).astype(np.int64)
    end = np.clip(np.floor(np.where(ok, bottom, -1.0)) + 1, 0, height).astype(np.int64)
    use = ok & (end > first)
    column = np.broadcast_to(np.arange(m)[:, None], top.shape)[use]
    edges = np.bincount(first[use] * m + column, minlength=(height + 1) * m).astype(np.int32)
    edges -= np.bincount(end[use] * m + column, minlength=(height + 1) * m).astype(np.int32)
    covered = np.cumsum(edges.reshape(height + 1, m)[:height], axis=0) > 0
    pixels[:, x0 : x0 + m] = np.where(covered, np.uint32(colour), np.uint32(background))


class ChannelScaler:
    """Per-channel autoscale for stacked traces: centre (median) and half-range (1st–99th
    percentile), smoothed so traces do not jump from frame to frame."""

    def __init__(self, smoothing: float = 0.2) -> None:
        self.smoothing = smoothing
        self.centre: np.ndarray | None = None
        self.half: np.ndarray | None = None

    def update(self, v: np.ndarray) -> None:
        """Learn from a window ``v`` (n, ch)."""
        if v.shape[0] == 0:
            return
        ok = np.isfinite(v)
        if ok.all():  # the usual case: one vectorized partition for all channels
            p1, p50, p99 = np.percentile(v, [1, 50, 99], axis=0)
        else:  # nanpercentile loops over channels in Python: only when there are gaps
            if not ok.any():
                return
            p1, p50, p99 = np.nanpercentile(np.where(ok, v, np.nan), [1, 50, 99], axis=0)
        half = np.maximum((p99 - p1) / 2.0, 1e-12)
        if self.centre is None or self.half is None or self.centre.shape != p50.shape:
            self.centre, self.half = p50, half
        else:
            a = self.smoothing
            self.centre = (1 - a) * self.centre + a * p50
            self.half = (1 - a) * self.half + a * half

    def differs(self, centre: np.ndarray | None, half: np.ndarray | None, grow: float = 1.25,
                shrink: float = 0.6, shift: float = 0.25) -> bool:  # fmt: skip
        """Whether a picture drawn with (``centre``, ``half``) should be drawn again with this
        scale: a channel's half-range now more than ``grow`` times or less than ``shrink`` times
        the drawn one, or its centre moved by more than ``shift`` of the drawn half-range (the
        band between stays drawn as it is: a slow wave scrolling through does not redraw)."""
        if self.centre is None or self.half is None:
            return False
        if centre is None or half is None or centre.shape != self.centre.shape:
            return True
        ratio = self.half / half
        return bool(np.any((ratio > grow) | (ratio < shrink) | (np.abs(self.centre - centre) > shift * half)))

    def pixel_rows(self, v: np.ndarray, height_px: float, fill: float = 0.45) -> np.ndarray:
        """Pixel rows (float, 0 = top) of values ``v`` (m, ch) in a picture ``height_px`` high
        where channel k has the k-th of ``ch`` equal bands, scaled into ± ``fill`` of a band."""
        ch = v.shape[1]
        centre = self.centre if self.centre is not None else np.zeros(ch)
        half = self.half if self.half is not None else np.ones(ch)
        band = height_px / ch
        return (np.arange(ch) + 0.5 - (v - centre) / half * fill) * band

    def stack(
        self, x: np.ndarray, v: np.ndarray, spacing: float = 1.0, fill: float = 0.45
    ) -> tuple[np.ndarray, np.ndarray]:
        """One path for all channels: channel k drawn around y = -k * spacing (top to bottom),
        scaled into ± ``fill`` · spacing; NaN between channels breaks the path."""
        n, ch = v.shape
        centre = self.centre if self.centre is not None else np.zeros(ch)
        half = self.half if self.half is not None else np.ones(ch)
        y = (v - centre) / half * (fill * spacing) - np.arange(ch) * spacing
        xs = np.empty((ch, n + 1))
        ys = np.empty((ch, n + 1))
        xs[:, :n], ys[:, :n] = x, y.T
        xs[:, n], ys[:, n] = np.nan, np.nan
        return xs.ravel(), ys.ravel()
