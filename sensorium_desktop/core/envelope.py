"""Decimated min/max envelopes (pure numpy): draw any range of a long signal in O(pixels).

:class:`Envelope` keeps a pyramid of per-block minima and maxima (block sizes 16, 64, 256, …
samples). :meth:`Envelope.view` answers a time range with at most about ``max_points``
points: the raw samples when at most ``RAW_FACTOR`` × that many lie in the range, else the
finest level that fits,
as (t, lo, hi) so a plot can fill between the two curves and no spike is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BASE_BLOCK = 16
FACTOR = 4
#: raw samples are drawn up to this many per requested point (a 16-sample block would be coarse)
RAW_FACTOR = 4


@dataclass(slots=True)
class Level:
    """One pyramid level: ``block`` samples per entry; (m,) start times, (m, c) lo/hi."""

    block: int
    t: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _reduce(values: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block nanmin/nanmax of (n, c) ``values``; the last block may be short."""
    n, c = values.shape
    full = n // block
    head = values[: full * block].reshape(full, block, c)
    with np.errstate(invalid="ignore"):
        lo, hi = np.fmin.reduce(head, axis=1), np.fmax.reduce(head, axis=1)
        if n > full * block:
            tail = values[full * block :]
            lo = np.vstack([lo, np.fmin.reduce(tail, axis=0, keepdims=True)])
            hi = np.vstack([hi, np.fmax.reduce(tail, axis=0, keepdims=True)])
    return lo, hi


@dataclass(slots=True)
class Envelope:
    """The pyramid of one signal: ``times`` (n,) s ascending, ``values`` (n, c) numeric."""

    times: np.ndarray
    values: np.ndarray
    levels: list[Level] = field(default_factory=list)

    @classmethod
    def build(cls, times: np.ndarray, values: np.ndarray) -> Envelope:
        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(values)
        if v.dtype.kind != "f":
            v = v.astype(np.float64)
        if v.ndim == 1:
            v = v.reshape(-1, 1)
        env = cls(t, v)
        block = BASE_BLOCK
        if t.size > block:
            lo, hi = _reduce(v, block)
            env.levels.append(Level(block, t[::block], lo, hi))
        while t.size > block * FACTOR:
            block *= FACTOR
            lo, hi = _reduce(lo, FACTOR)[0], _reduce(hi, FACTOR)[1]
            env.levels.append(Level(block, t[::block], lo, hi))
        return env

    def view(self, t0: float, t1: float, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, lo, hi) over [t0, t1] with ≤ ~``max_points`` rows (lo == hi for raw samples);
        one sample either side is included so lines reach the edges."""
        i0 = max(int(np.searchsorted(self.times, t0, side="left")) - 1, 0)
        i1 = min(int(np.searchsorted(self.times, t1, side="right")) + 1, self.times.size)
        if i1 - i0 <= RAW_FACTOR * max_points or not self.levels:
            v = self.values[i0:i1]
            return self.times[i0:i1], v, v
        for level in self.levels:
            j0, j1 = i0 // level.block, -(-i1 // level.block)
            if j1 - j0 <= max_points or level is self.levels[-1]:
                return level.t[j0:j1], level.lo[j0:j1], level.hi[j0:j1]
        raise AssertionError("unreachable")


def stacked_raster(lo: np.ndarray, hi: np.ndarray, rows_per_channel: int) -> np.ndarray:
    """A stacked multichannel view as an image: (c·rows, m) bool, channel 0 in the top band;
    each of the ``m`` columns filled from its ``lo`` to its ``hi`` (both (m, c)), scaled per
    channel to that channel's min..max over the columns. NaN columns stay empty.

    Vectorized (one broadcast comparison per band): O(image), no per-channel drawing calls.
    """
    m, c = lo.shape
    rows = max(int(rows_per_channel), 2)
    if m == 0 or c == 0:
        return np.zeros((c * rows, m), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        cmin, cmax = np.nanmin(lo, axis=0), np.nanmax(hi, axis=0)
        span = np.where(cmax > cmin, cmax - cmin, 1.0)
        top = np.floor((cmax - hi) / span * (rows - 1))
        bottom = np.floor((cmax - lo) / span * (rows - 1))
    bad = ~(np.isfinite(top) & np.isfinite(bottom))
    top = np.where(bad, rows, top).astype(np.int32)  # bad: an empty span
    bottom = np.where(bad, -1, bottom).astype(np.int32)
    r = np.arange(rows, dtype=np.int32)[None, :, None]
    band = (r >= top.T[:, None, :]) & (r <= bottom.T[:, None, :])  # (c, rows, m)
    return band.reshape(c * rows, m)
