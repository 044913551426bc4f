"""Per-sensor clock models: map a device's local clock onto host time.

Transport delays are one-sided (a sample never arrives before it was taken), so the offset
``d = t_arrival - fixed_latency - t_local`` of every sample lies *above* the true offset line
``off(x) = alpha + beta * (x - x0)``. :class:`ClockModel` estimates that line as the lower
envelope of the points (x, d), the way Moon, Skelly & Towsley (1999) and Zhang, Liu & Xia
(2002) remove clock skew from one-way delays: the lower convex hull of the points, and the
hull edge that spans the (recency-weighted) mean x — which is the linear-programming optimum
``max sum(alpha + beta x_i) s.t. alpha + beta x_i <= d_i`` for those points.

Online and vectorized:

- samples are reduced to the minimum-residual sample per ``bin_width`` (0.25 s) of local
  time; an update that stays inside the open bin is a handful of numpy operations;
- closed bins extend an incrementally maintained lower hull; every ``block`` seconds the
  hull is rebuilt from the vertices of the blocks inside the sliding window (``window``),
  so drift that changes slowly is followed without ever looking at old samples again;
- a backward jump of ``t_local`` (device reboot) or a confirmed drop of the offset below the
  envelope (clock stepped forward) starts a new *epoch*; the drift of the old epoch is kept
  as the prior for the new one (same oscillator), so the offset is re-acquired in < 2 s;
- isolated samples below the envelope (glitches) are counted and ignored.

``t_global = t_local + off(t_local)``; ``drift = -beta / (1 + beta)`` (device seconds gained
per host second); ``uncertainty`` is a 1-sigma estimate from how well the envelope is pinned
(typical bin-minimum excess, number of bins, extrapolation distance).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Backward step of t_local (s) that counts as a clock reset.
RESET_BACKSTEP_S = 1e-3
#: A sample this far below the envelope (s, at least) is a violation (glitch or step).
STEP_MIN_S = 2e-3
#: Violating samples needed (within CONFIRM_S of local time) to accept a forward clock step.
STEP_CONFIRM = 3
CONFIRM_S = 1.0
#: Prior 1-sigma of an unknown drift (ppm-scale crystals): 100 ppm.
DRIFT_PRIOR_SIGMA = 100e-6
#: Drift-change check: every CHANGE_EVERY_S of local time compare a fit of the last
#: CHANGE_WINDOW_S with the long fit; CHANGE_CONFIRM disagreements beyond CHANGE_SIGMAS
#: shrink the window to the last CHANGE_KEEP_S.
CHANGE_EVERY_S = 1.0
CHANGE_WINDOW_S = 15.0
CHANGE_SIGMAS = 5.0
CHANGE_CONFIRM = 3
CHANGE_KEEP_S = 15.0
#: Typical excess delay of a bin minimum (s) assumed until 3 bins are seen.
SCALE_PRIOR_S = 5e-3
#: Calibration of the uncertainty (vertex excess = UNC_K * scale / bins), from
#: benchmarks/sync_accuracy.py: |error| <= 2 sigma for ~90 % of samples across scenarios.
UNC_K = 2.0


def _cross(ox: float, oy: float, ax: float, ay: float, bx: float, by: float) -> float:
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


def lower_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the lower convex hull of points sorted by x (monotone chain).

    Vectorized by repeatedly deleting every point that lies on or above the segment joining
    its neighbours; each pass is O(n) numpy and few passes are needed in practice.
    """
    idx = np.arange(x.size)
    while idx.size > 2:
        xa, ya = x[idx], y[idx]
        cross = (xa[1:-1] - xa[:-2]) * (ya[2:] - ya[:-2]) - (ya[1:-1] - ya[:-2]) * (xa[2:] - xa[:-2])
        # a point on or above the chord of its neighbours is above a segment between two
        # points of the set, so it is not a lower-hull vertex: all of them can go at once
        above = cross <= 0
        if not above.any():
            break
        keep = np.ones(idx.size, dtype=bool)
        keep[1:-1] = ~above
        idx = idx[keep]
    return idx


def bin_minima(t_local: np.ndarray, t_arrival: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The (t_local, t_arrival) pairs with the smallest ``t_arrival - t_local`` per ``width``
    seconds of local time (bins aligned to the first sample and to every clock reset), in
    arrival order. A :class:`ClockModel` fed these pairs sees the same bin minima, glitches
    and steps as one fed every sample when ``width`` divides its ``bin_width``; used to fit
    hour-long recordings in milliseconds. 1-D float64 arrays in, two 1-D arrays out."""
    x = np.asarray(t_local, dtype=np.float64)
    y = np.asarray(t_arrival, dtype=np.float64)
    if x.size < 2:
        return x, y
    reset = np.zeros(x.size, dtype=np.int64)
    reset[1:] = x[1:] < x[:-1] - RESET_BACKSTEP_S
    segment = np.cumsum(reset)
    seg_x0 = x[np.concatenate(([0], np.flatnonzero(reset)))]
    bins = np.floor((x - seg_x0[segment]) / width).astype(np.int64)
    new_group = np.ones(x.size, dtype=bool)
    new_group[1:] = (bins[1:] != bins[:-1]) | (segment[1:] != segment[:-1])
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    d = y - x
    lowest = np.minimum.reduceat(d, starts)
    at_min = np.flatnonzero(d == lowest[group])
    first = np.ones(at_min.size, dtype=bool)
    first[1:] = group[at_min[1:]] != group[at_min[:-1]]
    keep = at_min[first]
    return x[keep], y[keep]


@dataclass(slots=True)
class _Hull:
    """Lower hull of the window's bin minima with O(1) amortized append on the right."""

    x: list[float] = field(default_factory=list)
    d: list[float] = field(default_factory=list)

    def append(self, px: float, pd: float) -> None:
        hx, hd = self.x, self.d
        if hx and px <= hx[-1]:
            if pd < hd[-1]:
                hx.pop()
                hd.pop()
            else:
                return
        while len(hx) >= 2 and _cross(hx[-2], hd[-2], hx[-1], hd[-1], px, pd) <= 0:
            hx.pop()
            hd.pop()
        hx.append(px)
        hd.append(pd)

    def rebuild(self, px: np.ndarray, pd: np.ndarray) -> None:
        keep = lower_hull(px, pd)
        self.x = px[keep].tolist()
        self.d = pd[keep].tolist()

    def edge_at(self, xq: float) -> tuple[float, float, float, float] | None:
        """(offset at xq, slope, x of left vertex, x of right vertex) of the hull edge
        spanning ``xq``, or None with fewer than 2 vertices."""
        n = len(self.x)
        if n < 2:
            return None
        k = min(max(bisect_right(self.x, xq) - 1, 0), n - 2)
        x1, x2, d1, d2 = self.x[k], self.x[k + 1], self.d[k], self.d[k + 1]
        slope = (d2 - d1) / (x2 - x1)
        return d1 + slope * (xq - x1), slope, x1, x2


class _Growable:
    """Append-only float64 columns with amortized doubling."""

    def __init__(self, cols: int) -> None:
        self.a = np.empty((64, cols))
        self.n = 0

    def append(self, row: np.ndarray) -> None:
        k = row.shape[0]
        if self.n + k > self.a.shape[0]:
            grown = np.empty((max(2 * self.a.shape[0], self.n + k), self.a.shape[1]))
            grown[: self.n] = self.a[: self.n]
            self.a = grown
        self.a[self.n : self.n + k] = row
        self.n += k

    @property
    def data(self) -> np.ndarray:
        return self.a[: self.n]


@dataclass(slots=True)
class Epoch:
    """One continuous stretch of a device clock (between resets)."""

    index: int
    x0: float  # local time of the first sample (reference for beta)
    t_start: float  # host arrival time of the first sample
    bins: _Growable = field(default_factory=lambda: _Growable(2))  # (x - x0, d) of bin minima
    x_hi: float = -math.inf  # largest local time seen in this epoch
    changes: list[float] = field(default_factory=list)  # x (rel.) where the drift changed
    alpha: float = math.nan  # the epoch's last line (kept when a newer epoch starts)
    beta: float = 0.0


class ClockModel:
    """Causal lower-envelope clock model for one sensor (see module docstring).

    ``fixed_latency``: known constant transport delay (s), subtracted before estimation.
    ``jitter_prior``: 1-sigma (s) reported for a sensor without its own clock
    (``t_local == t_arrival``), whose per-sample jitter cannot be observed.
    """

    def __init__(
        self,
        fixed_latency: float = 0.0,
        *,
        bin_width: float = 0.25,
        window: float = 300.0,
        block: float = 5.0,
        min_span: float = 2.0,
        jitter_prior: float = 1e-3,
        drift_prior: float = 0.0,
    ) -> None:
        self.fixed_latency = float(fixed_latency)
        self.bin_width = float(bin_width)
        self.window = float(window)
        self.block = float(block)
        self.min_span = float(min_span)
        self.jitter_prior = float(jitter_prior)
        self._beta_prior = -float(drift_prior) / (1.0 + float(drift_prior))
        self._beta_prior_sigma = DRIFT_PRIOR_SIGMA
        self.epochs: list[Epoch] = []
        self.n = 0
        self.glitches = 0
        self.resets = 0
        self._reset_state()

    def _reset_state(self) -> None:
        self.alpha = math.nan
        self.beta = self._beta_prior
        self._x_last = -math.inf
        self._t_last = math.nan
        self._open_bin = -(1 << 62)
        self._open_x = math.nan
        self._open_d = math.inf
        self._open_r = math.inf
        self._hull = _Hull()
        self._blocks: list[tuple[int, np.ndarray, np.ndarray]] = []  # (block index, hull x, hull d)
        self._block_cur = 0
        self._block_start_bin = 0
        self._wsum = 0.0
        self._wxsum = 0.0
        self._wx_last = math.nan
        self._median_excess = math.nan
        self._unc = math.inf
        self._degenerate = True
        self._viol: list[tuple[float, float, float]] = []
        self._n_window_bins = 0
        self._span = 0.0
        self._bias = 0.0
        self._slope_unc = self._beta_prior_sigma
        self._window_start = -math.inf
        self._next_check = CHANGE_EVERY_S
        self._disagree = 0
        self.changes = getattr(self, "changes", 0)

    # -- public API ---------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Index of the current clock epoch (increments at every detected reset)."""
        return len(self.epochs) - 1

    @property
    def offset(self) -> float:
        """``to_global(t) - t`` at the latest sample, seconds."""
        if not self.epochs:
            return math.nan
        return self.alpha + self.beta * (self._x_last - self.epochs[-1].x0) - self._bias

    @property
    def drift(self) -> float:
        """Device clock rate error (dimensionless; 5e-5 == 50 ppm fast)."""
        return -self.beta / (1.0 + self.beta)

    @property
    def uncertainty(self) -> float:
        """1-sigma of ``to_global`` at the latest sample, seconds."""
        return self._unc

    @property
    def ready(self) -> bool:
        return bool(self.epochs) and math.isfinite(self.alpha)

    def update(self, t_local: np.ndarray, t_arrival: np.ndarray) -> None:
        """Feed samples in arrival order: 1-D float64 arrays of equal length (s)."""
        x = np.asarray(t_local, dtype=np.float64)
        y = np.asarray(t_arrival, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"t_local {x.shape} and t_arrival {y.shape} must be 1-D of equal length")
        if x.size == 0:
            return
        if not math.isfinite(float(x.sum()) + float(y.sum())):
            raise ValueError("t_local/t_arrival contain NaN or inf")
        if self.epochs:
            if x[0] < self._x_last - RESET_BACKSTEP_S:
                back = 0
            elif x.size > 1 and (x[1:] < x[:-1] - RESET_BACKSTEP_S).any():
                back = int(np.argmax(x[1:] < x[:-1] - RESET_BACKSTEP_S)) + 1
            else:
                back = -1
            if back >= 0:
                if back > 0:
                    self._update_epoch(x[:back], y[:back])
                self._new_epoch(float(x[back]), float(y[back]))
                self.update(x[back:], y[back:])
                return
        else:
            self._new_epoch(float(x[0]), float(y[0]))
        self._update_epoch(x, y)

    def to_global(self, t_local: np.ndarray | float) -> np.ndarray:
        """Host/global time of local times ``t_local`` (s) with the current (causal) estimate.

        After a clock reset, local times inside an older epoch's range (and outside the
        newer ones') are mapped with that epoch's last line.
        """
        x = np.asarray(t_local, dtype=np.float64)
        if not self.ready:
            return np.full_like(x, np.nan)
        cur = self.epochs[-1]
        out = x + self.alpha + self.beta * (x - cur.x0) - self._bias
        if len(self.epochs) > 1:
            claimed = (x >= cur.x0) & (x <= max(cur.x_hi, self._x_last))
            for ep in reversed(self.epochs[:-1]):
                mine = (x >= ep.x0) & (x <= ep.x_hi) & ~claimed
                if mine.any() and math.isfinite(ep.alpha):
                    out = np.where(mine, x + ep.alpha + ep.beta * (x - ep.x0), out)
                claimed |= mine
        return out

    # -- epochs -------------------------------------------------------------------------------
    def _new_epoch(self, x0: float, t_arrival: float) -> None:
        if self.epochs:
            old = self.epochs[-1]
            old.alpha, old.beta, old.x_hi = self.alpha - self._bias, self.beta, max(old.x_hi, self._x_last)
            self.resets += 1
            if not self._degenerate and self._span >= self.min_span:
                self._beta_prior = self.beta
                self._beta_prior_sigma = max(self._slope_sigma(), 1e-7)
        self.epochs.append(Epoch(len(self.epochs), x0, t_arrival))
        self._reset_state()

    # -- the data path --------------------------------------------------------------------------
    def _update_epoch(self, x: np.ndarray, y: np.ndarray) -> None:
        ep = self.epochs[-1]
        xr = x - ep.x0
        d = (y - x) - self.fixed_latency  # exact for clockless sensors (y == x)
        self.n += x.size
        self._x_last = float(x[-1])
        self._t_last = float(y[-1])
        ep.x_hi = max(ep.x_hi, self._x_last)
        if not math.isfinite(self.alpha):
            self.alpha = float(np.min(d - self.beta * xr))
        r = d - (self.alpha + self.beta * xr)
        i = int(np.argmin(r))
        step_tol = max(STEP_MIN_S, 10.0 * self._unc)
        if r[i] < -step_tol and self._n_window_bins >= 3:  # too few points: just a better minimum
            keep = self._handle_violations(x, y, r < -step_tol, r)
            if keep is None:
                return
            xr, d, r = xr[keep], d[keep], r[keep]
            if xr.size == 0:
                return
            i = int(np.argmin(r))
        w = self.bin_width
        b_first, b_last = math.floor(xr[0] / w), math.floor(xr[-1] / w)
        if b_first == b_last == self._open_bin:  # fast path: still inside the open bin
            if r[i] < self._open_r:
                self._open_r, self._open_x, self._open_d = float(r[i]), float(xr[i]), float(d[i])
            return
        bins = np.floor(xr / w).astype(np.int64)
        order = np.lexsort((r, bins))
        first = np.concatenate([[True], bins[order][1:] != bins[order][:-1]])
        sel = order[first]  # per-bin argmin, bins ascending
        rows = zip(bins[sel].tolist(), xr[sel].tolist(), d[sel].tolist(), r[sel].tolist(), strict=True)
        for b, px, pd_, pr in rows:
            if b == self._open_bin:
                if pr < self._open_r:
                    self._open_r, self._open_x, self._open_d = pr, px, pd_
                continue
            if math.isfinite(self._open_d):
                self._close_bin(ep)
            self._open_bin, self._open_r, self._open_x, self._open_d = b, pr, px, pd_
        self._refit(ep)

    def _handle_violations(self, x: np.ndarray, y: np.ndarray, viol: np.ndarray, r: np.ndarray) -> np.ndarray | None:
        """Samples far below the envelope: a confirmed run is a forward clock step (new
        epoch from the first of them), lone ones are glitches. Returns the samples to keep,
        or None when the batch was handed to a new epoch."""
        now_x = float(x[-1])
        self._viol = [v for v in self._viol if now_x - v[0] <= CONFIRM_S]
        idx = np.flatnonzero(viol)
        recent = len(self._viol) + idx.size
        if recent >= STEP_CONFIRM and (idx.size >= STEP_CONFIRM or idx[-1] == x.size - 1):
            held = [(vx, vy) for vx, vy, _ in self._viol]
            first_x, first_y = held[0] if held else (float(x[idx[0]]), float(y[idx[0]]))
            self._new_epoch(first_x, first_y)
            if held:
                hx, hy = np.array(held).T
                self._update_epoch(hx, hy)
            k = int(idx[0])
            self._update_epoch(x[k:], y[k:])
            return None
        self._viol.extend((float(x[i]), float(y[i]), float(r[i])) for i in idx)
        self.glitches += int(idx.size)
        return ~viol

    def _close_bin(self, ep: Epoch) -> None:
        px, pd_ = self._open_x, self._open_d
        ep.bins.append(np.array([[px, pd_]]))
        blk = int(px // self.block)
        if blk != self._block_cur and len(self._hull.x):
            self._finish_block(ep, blk)
        self._hull.append(px, pd_)
        w_decay = math.exp(-(px - self._wx_last) / (self.window / 3.0)) if math.isfinite(self._wx_last) else 0.0
        self._wsum = self._wsum * w_decay + 1.0
        self._wxsum = self._wxsum * w_decay + px
        self._wx_last = px
        self._open_d = math.inf
        self._open_r = math.inf
        if px >= self._next_check:
            self._next_check = px + CHANGE_EVERY_S
            self._check_drift_change(ep)

    def _finish_block(self, ep: Epoch, new_block: int) -> None:
        """Store the closed block's hull vertices; slide the window; rebuild the hull."""
        data = ep.bins.data
        start = self._block_start_bin
        bx, bd = data[start:-1, 0], data[start:-1, 1]
        if bx.size:
            keep = lower_hull(bx, bd)
            self._blocks.append((self._block_cur, bx[keep], bd[keep]))
        self._block_cur = new_block
        self._block_start_bin = ep.bins.n - 1
        oldest = new_block - math.ceil(self.window / self.block)
        while self._blocks and self._blocks[0][0] < oldest:
            self._blocks.pop(0)
        if self._blocks:
            hx = np.concatenate([b[1] for b in self._blocks])
            hd = np.concatenate([b[2] for b in self._blocks])
            self._hull.rebuild(hx, hd)
        else:
            self._hull = _Hull()

    def _check_drift_change(self, ep: Epoch) -> None:
        """Compare the long fit with a fit of the last CHANGE_WINDOW_S at the latest time;
        persistent disagreement means the drift changed: keep only recent data."""
        if self._span < 2 * CHANGE_WINDOW_S or not math.isfinite(self._unc):
            return
        data = ep.bins.data
        x_now = data[-1, 0]
        lo = int(np.searchsorted(data[:, 0], x_now - CHANGE_WINDOW_S))
        sx, sd = data[lo:, 0], data[lo:, 1]
        if sx.size < 8:
            return
        hull = lower_hull(sx, sd)
        hx, hd = sx[hull], sd[hull]
        if hx.size < 2:
            return
        xq = float(sx.mean())
        k = min(max(int(np.searchsorted(hx, xq, side="right")) - 1, 0), hx.size - 2)
        slope = (hd[k + 1] - hd[k]) / (hx[k + 1] - hx[k])
        short = hd[k] + slope * (x_now - hx[k])
        long = self.alpha + self.beta * x_now
        resid = sd - (hd[k] + slope * (sx - hx[k]))
        n = sx.size
        vertex = UNC_K * float(resid.mean()) * n / (n - 2) / n
        amp = (x_now - hx[k]) / (hx[k + 1] - hx[k])
        sigma_short = vertex * math.hypot(1.0 - amp, amp)
        if abs(short - long) > CHANGE_SIGMAS * math.hypot(sigma_short, self._unc):
            self._disagree += 1
        else:
            self._disagree = 0
        if self._disagree >= CHANGE_CONFIRM:
            self._disagree = 0
            self.changes += 1
            ep.changes.append(x_now - CHANGE_KEEP_S)
            self._shrink_window(ep, x_now - CHANGE_KEEP_S)

    def _shrink_window(self, ep: Epoch, x_from: float) -> None:
        """Forget bins before ``x_from`` (the drift changed): rebuild hull and weights."""
        data = ep.bins.data
        lo = int(np.searchsorted(data[:, 0], x_from))
        keep = data[lo:]
        first_block = int(keep[0, 0] // self.block) if keep.size else self._block_cur
        self._blocks = [b for b in self._blocks if b[0] >= first_block]
        self._blocks = [(bi, bx[bx >= x_from], bd[bx >= x_from]) for bi, bx, bd in self._blocks if (bx >= x_from).any()]
        self._block_start_bin = max(self._block_start_bin, lo)
        self._hull = _Hull()
        self._hull.rebuild(keep[:, 0], keep[:, 1])
        tau = self.window / 3.0
        w = np.exp(-(keep[-1, 0] - keep[:, 0]) / tau)
        self._wsum = float(w.sum())
        self._wxsum = float((w * keep[:, 0]).sum())
        self._window_start = x_from

    def _refit(self, ep: Epoch) -> None:
        """Choose the envelope line and its uncertainty from the current window."""
        data = ep.bins.data
        oldest_block = self._blocks[0][0] if self._blocks else self._block_cur
        start = max(oldest_block * self.block, self._window_start)
        lo = int(np.searchsorted(data[:, 0], start)) if data.shape[0] else 0
        win = data[lo:]
        if math.isfinite(self._open_d):
            open_pt = np.array([[self._open_x, self._open_d]])
            win = np.vstack([win, open_pt]) if win.size else open_pt
        if win.shape[0] == 0:
            return
        span = float(win[-1, 0] - win[0, 0])
        self._span = span
        self._degenerate = win.shape[0] >= 3 and bool(np.ptp(win[:, 1]) < 1e-12)
        edge = None
        if span >= self.min_span and len(self._hull.x) >= 2:
            xq = self._wxsum / self._wsum if self._wsum > 0 else float(np.mean(win[:, 0]))
            edge = self._hull.edge_at(xq)
            if edge is not None:
                off_q, slope, _, _ = edge
                self.beta = slope
                self.alpha = off_q - slope * xq
        if edge is None:
            self.beta = self._beta_prior
            self.alpha = float(np.min(win[:, 1] - self.beta * win[:, 0]))
        n = win.shape[0]
        resid = win[:, 1] - (self.alpha + self.beta * win[:, 0])
        self._n_window_bins = n
        # typical excess of a bin minimum above the envelope (the 2 points on the envelope
        # have none: correct the mean for those degrees of freedom)
        scale = float(resid.mean()) * n / (n - 2) if n > 2 else SCALE_PRIOR_S
        self._median_excess = scale
        vertex = UNC_K * scale / n
        # the envelope rests on the smallest excesses: subtract their expected size
        self._bias = vertex if edge is not None else 0.0
        x_now = self._x_last - ep.x0
        if self._degenerate:
            self._unc = self.jitter_prior
            self._slope_unc = 0.0
        elif edge is not None:
            _, _, x1, x2 = edge
            amp = (x_now - x1) / (x2 - x1)  # extrapolation factor of the edge to now
            self._unc = math.hypot(vertex * math.hypot(1.0 - amp, amp), 1e-6)
            self._slope_unc = vertex * math.sqrt(2.0) / (x2 - x1)
        else:
            i = int(np.argmin(resid))
            self._unc = math.hypot(vertex, self._beta_prior_sigma * (x_now - win[i, 0]), 1e-6)
            self._slope_unc = self._beta_prior_sigma

    def _slope_sigma(self) -> float:
        return self._slope_unc

    # -- seed-compatible state and persistence -------------------------------------------------
    def state(self) -> dict[str, Any]:
        """TimeOffsetModel-style fields (offset mean/variance, drift) plus the line itself."""
        ep = self.epochs[-1] if self.epochs else None
        return {
            "offset_mean": self.offset,
            "offset_variance": self._unc**2 if math.isfinite(self._unc) else math.inf,
            "drift": self.drift,
            "uncertainty": self._unc,
            "alpha": self.alpha,
            "beta": self.beta,
            "x0": ep.x0 if ep else math.nan,
            "epoch": self.epoch,
            "n": self.n,
            "resets": self.resets,
            "glitches": self.glitches,
            "t_local_last": self._x_last,
            "t_arrival_last": self._t_last,
            "fixed_latency": self.fixed_latency,
        }

    def refine(self) -> RefinedClock:
        """Non-causal fit over everything seen (for exports): per epoch, the LP envelope of
        a sliding window around each knot (every ``block`` s), interpolated linearly."""
        return RefinedClock.from_model(self)


@dataclass
class RefinedClock:
    """Piecewise-linear offset per epoch from a non-causal envelope fit (for exports)."""

    epochs: list[tuple[float, float, np.ndarray, np.ndarray]]  # (x0, t_start, knot x rel, knot offset)
    drift: float
    offset: float
    uncertainty: float

    @classmethod
    def from_model(cls, m: ClockModel) -> RefinedClock:
        out = []
        for ep in m.epochs:
            data = ep.bins.data
            if data.shape[0] == 0:
                out.append((ep.x0, ep.t_start, np.array([0.0]), np.array([np.nan])))
                continue
            bx, bd = data[:, 0], data[:, 1]
            hull = lower_hull(bx, bd)
            hx, hd = bx[hull], bd[hull]
            if hx.size < 2 or bx[-1] - bx[0] < m.min_span:
                beta = m.beta if ep is m.epochs[-1] else m._beta_prior
                off = float(np.min(bd - beta * bx))
                out.append(
                    (ep.x0, ep.t_start, np.array([bx[0], bx[-1] + 1e-9]), off + beta * np.array([bx[0], bx[-1]]))
                )
                continue
            half = m.window / 2.0
            knots = np.arange(bx[0], bx[-1] + m.block, m.block)
            values = np.empty_like(knots)
            cuts = np.array([-np.inf, *sorted(ep.changes), np.inf])
            for i, kx in enumerate(knots):
                seg = int(np.searchsorted(cuts, kx, side="right")) - 1  # never fit across a drift change
                lo, hi = np.searchsorted(bx, [max(kx - half, cuts[seg]), min(kx + half, cuts[seg + 1])])
                seg = lower_hull(bx[lo:hi], bd[lo:hi]) + lo
                sx, sd = bx[seg], bd[seg]
                if sx.size < 2:
                    sx, sd = hx, hd
                mean_x = float(np.mean(bx[lo:hi])) if hi > lo else kx
                k = min(max(int(np.searchsorted(sx, mean_x, side="right")) - 1, 0), sx.size - 2)
                slope = (sd[k + 1] - sd[k]) / (sx[k + 1] - sx[k])
                values[i] = sd[k] + slope * (kx - sx[k])
            out.append((ep.x0, ep.t_start, knots, values))
        return cls(out, m.drift, m.offset, m.uncertainty)

    def to_global(self, t_local: np.ndarray | float, epoch: int = -1) -> np.ndarray:
        """Global time of ``t_local`` on clock epoch ``epoch`` (default: the latest)."""
        x0, _, kx, kv = self.epochs[epoch]
        x = np.asarray(t_local, dtype=np.float64)
        xr = x - x0
        if kx.size == 1:
            return x + kv[0]
        slope_lo = (kv[1] - kv[0]) / (kx[1] - kx[0])
        slope_hi = (kv[-1] - kv[-2]) / (kx[-1] - kx[-2])
        off = np.interp(xr, kx, kv)
        off = np.where(xr < kx[0], kv[0] + slope_lo * (xr - kx[0]), off)
        off = np.where(xr > kx[-1], kv[-1] + slope_hi * (xr - kx[-1]), off)
        return x + off

    def epoch_starts(self) -> np.ndarray:
        """Host arrival time at which each epoch began (s)."""
        return np.array([e[1] for e in self.epochs])
