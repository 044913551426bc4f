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
