"""Per-sensor clock models: map a device's local clock onto host time.

Transport delays are one-sided (a sample never arrives before it was taken), so the offset
``d = t_arrival - fixed_latency - t_local`` of every sample lies *above* the true offset line
``off(x) = alpha + beta * (x - x0)``. The envelope of the points (x, d) pins that line, as
in Moon, Skelly & Towsley (1999) and Zhang, Liu & Xia (2002) who remove clock skew from
one-way delays with the linear program ``max sum(alpha + beta x_i) s.t. alpha + beta x_i <= d_i``
(the lower convex hull's edge at the mean x).

:class:`ClockModel` goes one step further: with exponential excess delays that LP is the
maximum-likelihood line, and :func:`envelope_posterior` integrates the likelihood instead of
maximising it — the exact posterior of the line given the hull, the number of deliveries and
their mean x, in closed form. Its mean is the Pitman (minimum-risk equivariant) estimate:
at the newest sample, where a causal estimate is needed, the LP's hull edge extrapolates
badly and the posterior mean does not; its standard deviation is the reported uncertainty.

Online and vectorized:

- samples are reduced to the minimum-residual sample per ``bin_width`` (0.25 s) of local
  time, remembering how many deliveries (runs of equal arrival time: one BLE notification
  carries many samples, only its last one's excess is a fresh draw) each bin held; an
  update that stays inside the open bin is a handful of numpy operations;
- closed bins extend an incrementally maintained lower hull; every ``block`` seconds the
  hull is rebuilt from the vertices of the blocks inside the sliding window (``window``),
  so drift that changes slowly is followed without ever looking at old samples again; the
  posterior is refitted as bins close (every update while the epoch is young);
- the excess-delay scale is the median of (deliveries x bin-minimum excess) / ln 2, robust
  to delay spikes;
- a backward jump of ``t_local`` is a reboot only when later deliveries confirm it: the
  samples from the jump on are held until either one of them fits the current line, or lies
  ahead of the newest local time within ``LATE_FIT_MAX_S`` of it (then
  they were delivered late — batches reordered by the transport or several sensors of one
  clock domain interleaved — and update the line like any sample) or none has for
  ``RESET_CONFIRM_S`` and ``RESET_CONFIRM_DELIVERIES`` deliveries (then the clock was reset);
- a confirmed reset or a confirmed drop of the offset below the envelope (clock stepped
  forward) starts a new *epoch*; the old epoch's drift and delay
  scale are the new one's priors (same oscillator, same link), so the offset is re-acquired
  in < 1 s; a persistent disagreement of the last 15 s with the long fit (a drift change)
  shrinks the window;
- isolated samples below the envelope (glitches) are counted and ignored.

``t_host = t_local + off(t_local)``; ``drift = -beta / (1 + beta)`` (device seconds gained
per host second); ``uncertainty`` is the posterior 1-sigma of ``to_host`` at the latest
sample.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernels import native as _kernels  # None: built without a C compiler (the Python code runs)

#: Backward step of t_local (s) that makes a reset possible: the samples from there on are
#: held until later deliveries show whether the clock was reset (they never again fit the
#: current line) or they were delivered late (a later delivery fits it).
RESET_BACKSTEP_S = 1e-3
#: A backward step is confirmed as a reset when, for this long (s, arrival time) and for
#: at least RESET_CONFIRM_DELIVERIES deliveries, no sample fitted the current line.
RESET_CONFIRM_S = 0.25
RESET_CONFIRM_DELIVERIES = 3
#: A held sample "fits" the current line when its excess delay over it is below
#: max(STEP_MIN_S, 10 sigma + 8 delivery-delay scales), capped here (s).
LATE_FIT_MAX_S = 0.1
#: No delivery is this late (s): a sample further above the current line is not a late one
#: (it belongs to a reset clock), whatever arrives after it.
LATE_MAX_S = 1.0
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
#: Prior of the per-delivery excess-delay scale (s), until bins measure it.
SCALE_PRIOR_S = 5e-3
#: Weight of that prior, in bins, against the measured scale; the previous epoch's scale
#: becomes the prior of the next (same transport after a device reboot).
SCALE_PRIOR_BINS = 4
#: Bins in the window below which every update refits (no open-bin fast path).
YOUNG_BINS = 16
#: Once the epoch is older, the posterior is refitted every max(``refit_every``, this
#: fraction of the window's span): new data then change it by about that fraction.
REFIT_SPAN_FRACTION = 0.01
#: Point count up to which :func:`lower_hull` scans (in C, or in Python without the kernels)
#: rather than in numpy passes.
SMALL_HULL = 128 if _kernels is None else 4096
#: Smallest per-delivery excess-delay scale (s) the posterior works with.
SCALE_FLOOR_S = 1e-9
#: Floor of the reported uncertainty (s): float64 resolution of epoch timestamps is 0.24 us.
UNC_FLOOR_S = 2.5e-7


def _cross(ox: float, oy: float, ax: float, ay: float, bx: float, by: float) -> float:
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


def lower_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the lower convex hull of points sorted by strictly increasing x
    (monotone chain; callers keep the lowest point of tied x).

    Up to ``SMALL_HULL`` points, one monotone-chain scan (fewer interpreter steps than numpy
    calls); above, vectorized by repeatedly deleting every point that lies on or above the
    segment joining its neighbours: each pass is O(n) numpy, few passes are needed.
    """
    if x.size <= SMALL_HULL:
        return np.array(_scan_lower_hull(x.tolist(), y.tolist()), dtype=np.intp)
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


def _scan_lower_hull_py(xs: list[float], ys: list[float]) -> list[int]:
    """Monotone-chain scan of points sorted by strictly increasing x: the hull vertices'
    indices (the orientation test of :func:`push_lower_hull` written out, the last two
    vertices held in locals: no call and no lookup per point but the pops)."""
    hull: list[int] = []
    ax = ay = bx = by = 0.0  # the last vertex (a) and the one before it (b)
    n = 0
    for i, (px, py) in enumerate(zip(xs, ys, strict=True)):
        while n >= 2 and (ax - bx) * (py - by) - (ay - by) * (px - bx) <= 0:
            hull.pop()
            n -= 1
            ax, ay = bx, by
            if n >= 2:
                b = hull[-2]
                bx, by = xs[b], ys[b]
        if n:
            bx, by = ax, ay
        ax, ay = px, py
        hull.append(i)
        n += 1
    return hull


#: :func:`_scan_lower_hull_py`, in C when the kernels are built (the same vertices)
_scan_lower_hull: Callable[[list[float], list[float]], list[int]] = (
    _scan_lower_hull_py if _kernels is None else _kernels.scan_lower_hull
)


def _hull_of_union(
    ax: list[float], ay: list[float], bx: list[float], by: list[float]
) -> tuple[list[float], list[float]]:
    """The lower hull of two hulls' vertices, all of ``a`` left of ``b`` (the hull of the union
    of their point sets)."""
    xs, ys = ax + bx, ay + by
    keep = _scan_lower_hull(xs, ys)
    return [xs[i] for i in keep], [ys[i] for i in keep]


_Vertices = tuple[list[float], list[float]]


class _HullQueue:
    """The lower hull of a FIFO of x-ordered point sets, each given by its own hull: a
    two-stack queue (the hull of a union is the hull of the parts' hulls), so a window sliding
    over the sets costs a few short scans, not a pass over all their vertices."""

    def __init__(self) -> None:
        self._front: list[_Vertices] = []  # suffix hulls; the last starts at the oldest set
        self._back_sets: list[_Vertices] = []
        self._back: _Vertices = ([], [])

    def __len__(self) -> int:
        return len(self._front) + len(self._back_sets)

    def push(self, hx: list[float], hd: list[float]) -> None:
        """Append a set (its hull's vertices), right of all the others."""
        self._back_sets.append((hx, hd))
        self._back = _hull_of_union(*self._back, hx, hd)

    def pop(self) -> None:
        """Drop the oldest set."""
        if not self._front:  # the back's sets move over, each with the hull of it and all after it
            suffix: _Vertices = ([], [])
            for part in reversed(self._back_sets):
                suffix = _hull_of_union(*part, *suffix)
                self._front.append(suffix)
            self._back_sets, self._back = [], ([], [])
        self._front.pop()

    def hull(self) -> _Vertices:
        """The vertices of the hull of every set in the queue (new lists)."""
        return _hull_of_union(*(self._front[-1] if self._front else ([], [])), *self._back)


def sliding_lower_hulls(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Iterator[_Vertices]:
    """The lower hull (vertex x, y) of each window ``x[lo[i]:hi[i]]`` of points sorted by
    strictly increasing x, for windows whose ends never move back (``lo``, ``hi`` non-decreasing
    int arrays): each window is a run of pieces (between consecutive window ends) in a
    :class:`_HullQueue` (an hour's refined clock: 720 windows of ~1200 points)."""
    xs, ys = x.tolist(), y.tolist()
    bounds = np.unique(np.concatenate([lo, hi])).tolist()
    queue = _HullQueue()
    first = queued = 0  # pieces [first, queued) are in the queue
    for p_lo, p_hi in zip(np.searchsorted(bounds, lo).tolist(), np.searchsorted(bounds, hi).tolist(), strict=True):
        if p_lo >= queued:  # the window starts past everything queued: start afresh
            queue, first, queued = _HullQueue(), p_lo, p_lo
        while first < p_lo:
            queue.pop()
            first += 1
        while queued < p_hi:
            px, py = xs[bounds[queued] : bounds[queued + 1]], ys[bounds[queued] : bounds[queued + 1]]
            keep = _scan_lower_hull(px, py)
            queue.push([px[i] for i in keep], [py[i] for i in keep])
            queued += 1
        yield queue.hull()


def bin_minima(t_local: np.ndarray, t_arrival: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (t_local, t_arrival) pairs with the smallest ``t_arrival - t_local`` per ``width``
    seconds of local time (bins aligned to the first sample and to every clock reset), in
    arrival order, and how many deliveries (runs of equal arrival time) each bin held. A
    :class:`ClockModel` fed these (``update(x, y, packets)``) sees the same bin minima,
    delivery counts, glitches and steps as one fed every sample when ``width`` divides its
    ``bin_width``; used to fit hour-long recordings in milliseconds. The first sample after
    each backward step is kept too (0 deliveries), so an epoch starts where its data does.
    1-D float64 arrays in, three 1-D arrays out. In one pass in C when the kernels are built
    (the same arrays as :func:`_bin_minima_py`)."""
    x = np.ascontiguousarray(t_local, dtype=np.float64)
    y = np.ascontiguousarray(t_arrival, dtype=np.float64)
    if x.size < 2:
        return x, y, np.ones(x.size)
    if _kernels is not None and y.size == x.size:
        keep, counts = np.empty(x.size, dtype=np.int64), np.empty(x.size)
        m = _kernels.bin_minima(x, y, float(width), RESET_BACKSTEP_S, keep, counts)
        if m >= 0:
            return x[keep[:m]], y[keep[:m]], counts[:m].copy()
    return _bin_minima_py(x, y, width)


def _bin_minima_py(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bin_minima` in numpy (x, y: float64, at least two samples)."""
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
    ends = _packet_ends(y[1:] != y[:-1], False)
    counts = np.add.reduceat(ends, starts)
    seg_first = np.concatenate(([0], np.flatnonzero(reset)))
    extra = np.setdiff1d(seg_first, keep)
    if extra.size:  # a reset's first sample starts its epoch (counted in its bin's minimum)
        keep = np.concatenate([keep, extra])
        counts = np.concatenate([counts, np.zeros(extra.size)])
        order = np.argsort(keep, kind="stable")
        keep, counts = keep[order], counts[order]
    return x[keep], y[keep], counts


def _packet_ends(new_packet: np.ndarray, continued: bool) -> np.ndarray:
    """Per sample: 1.0 at the last sample of a delivery, else 0.0 (``new_packet[i]``: sample
    i+1 arrived at another time than sample i; ``continued``: the first packet was counted
    by the previous call)."""
    ends = np.empty(new_packet.size + 1)
    ends[:-1] = new_packet
    ends[-1] = 1.0
    if continued:
        ends[int(np.argmax(ends))] = 0.0
    return ends


@dataclass(frozen=True, slots=True)
class EnvelopePosterior:
    """Posterior of the envelope line at ``x_eval``: mean offset (s), slope (s/s) and 1-sigmas."""

    offset: float
    slope: float
    sigma: float
    slope_sigma: float


def _tilted_moment(z: float) -> tuple[float, float]:
    """Mean and variance, in units of the interval width, of a density proportional to
    ``exp(z t)`` on t in [0, 1] (stable for z near 0 and for |z| large)."""
    if abs(z) < 1e-3:
        return 0.5 + z / 12.0, 1.0 / 12.0 - z * z / 720.0
    zc = min(max(z, -700.0), 700.0)  # only inside the exponentials
    half = math.sinh(0.5 * zc)
    return 1.0 / -math.expm1(-zc) - 1.0 / z, 1.0 / (z * z) - 0.25 / (half * half)


def _bounded_interval(width: float, z: float, peak: float) -> tuple[float, float, float]:
    """(mass, mean, variance) of a bounded interval of the posterior: ``width`` wide, its
    exponent rising by ``z`` over it and peaking at ``peak`` (relative to the top); mean and
    variance in units of the width. libm's exponentials, so both paths give the same bits."""
    absz = abs(z) + 1e-300
    m_unit, v_unit = _tilted_moment(z)
    return math.exp(peak) * width * (-math.expm1(-absz) / absz), m_unit, v_unit  # (1 - e^-|z|) / |z| -> 1


def _sum_in_order(terms: np.ndarray) -> float:
    """The running sum of ``terms`` (n,), first to last (BLAS's dot order below 16 terms on
    the CPUs it unrolls the least, and the same on every CPU)."""
    return float(np.cumsum(terms)[-1]) if terms.size else 0.0


#: Hull vertex count up to which :func:`envelope_posterior` works on floats (in C, or on
#: Python floats without the kernels): the sums it needs are then taken in exactly the numpy
#: path's order (its mass total by numpy's eight-way pairwise sum, exact up to 128 terms, its
#: weighted sums in order) with the same libm exponentials, so all paths give the same bits
#: on every CPU.
SMALL_POSTERIOR = 14 if _kernels is None else 64


def _pairwise_sum(a: list[float]) -> float:
    """``np.add.reduce`` of up to 128 float64s, term for term (its unrolled pairwise sum)."""
    n = len(a)
    if n < 8:
        total = -0.0
        for v in a:
            total += v
        return total
    r = a[:8]
    i = 8
    full = n - n % 8
    while i < full:
        for j in range(8):
            r[j] += a[i + j]
        i += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for v in a[full:]:
        total += v
    return total


def _posterior_small_py(
    hx: list[float],
    hd: list[float],
    count: float,
    x_mean: float,
    scale: float,
    x_eval: float,
    slope_prior: float,
    slope_prior_sigma: float,
) -> EnvelopePosterior:
    """:func:`envelope_posterior` for a hull of up to ``SMALL_POSTERIOR`` vertices (sorted by
    strictly increasing x): every operation the same, on Python floats, fused into three
    passes over the intervals — the same bits, ~3× faster at 8 vertices (and the C kernel's
    reference: the same operations in C, ~20× faster again)."""
    k_count = len(hx)
    ref = hd[min(bisect.bisect_left(hx, x_mean), k_count - 1)]
    lam_data = count / scale
    inv_tau = math.sqrt(2.0) / slope_prior_sigma
    edges = [((hd[i + 1] - ref) - (hd[i] - ref)) / (hx[i + 1] - hx[i]) for i in range(k_count - 1)]
    split = bisect.bisect_left(edges, slope_prior)
    brk = [*edges[:split], slope_prior, *edges[split:]]
    u_v: list[float] = []
    hd_v: list[float] = []
    lam: list[float] = []
    e_brk: list[float] = []
    for i in range(k_count + 1):  # interval i: between breakpoints i-1 and i, on vertex v
        v = i if i <= split else i - 1
        ui, hi = hx[v] - x_mean, hd[v] - ref
        u_v.append(ui)
        hd_v.append(hi)
        lam.append((inv_tau if i <= split else -inv_tau) - lam_data * ui)
        if i < k_count:
            b = brk[i]
            e_brk.append(lam_data * (hi - b * ui) - abs(b - slope_prior) * inv_tau)
    top = max(e_brk)
    lam0, lam1 = lam[0], lam[-1]
    mass = [math.exp(e_brk[0] - top) / lam0]
    mean_b = [brk[0] - 1.0 / lam0]
    var_b = [1.0 / lam0**2]
    for j in range(k_count - 1):  # the bounded intervals
        width = brk[j + 1] - brk[j]
        mass_j, m_unit, v_unit = _bounded_interval(width, lam[j + 1] * width, max(e_brk[j], e_brk[j + 1]) - top)
        mass.append(mass_j)
        mean_b.append(brk[j] + width * m_unit)
        var_b.append(width * width * v_unit)
    mass.append(math.exp(e_brk[-1] - top) / -lam1)
    mean_b.append(brk[-1] - 1.0 / lam1)
    var_b.append(1.0 / lam1**2)
    total = _pairwise_sum(mass)
    shift = x_eval - x_mean
    slope = second = line_mean = line_second = 0.0
    for i in range(k_count + 1):  # the four dot products, each summed in order
        wi, mi, vi = mass[i] / total, mean_b[i], var_b[i]
        arm = shift - u_v[i]
        line = hd_v[i] + arm * mi
        slope += wi * mi
        second += wi * (vi + mi * mi)
        line_mean += wi * line
        line_second += wi * (arm * arm * vi + line * line)
    tail = scale / count
    return EnvelopePosterior(
        offset=ref + line_mean - tail,
        slope=slope,
        sigma=math.sqrt(max(line_second - line_mean**2, 0.0) + tail**2),
        slope_sigma=math.sqrt(max(second - slope**2, 0.0)),
    )


def _posterior_small(
    hx: list[float],
    hd: list[float],
    count: float,
    x_mean: float,
    scale: float,
    x_eval: float,
    slope_prior: float,
    slope_prior_sigma: float,
) -> EnvelopePosterior:
    """:func:`_posterior_small_py`, in C when the kernels are built (the same bits)."""
    if _kernels is None:
        return _posterior_small_py(hx, hd, count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma)
    return EnvelopePosterior(
        *_kernels.posterior_small(hx, hd, count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma)
    )


def envelope_posterior(
    hull_x: np.ndarray,
    hull_d: np.ndarray,
    count: float,
    x_mean: float,
    scale: float,
    x_eval: float,
    slope_prior: float = 0.0,
    slope_prior_sigma: float = DRIFT_PRIOR_SIGMA,
) -> EnvelopePosterior:
    """Exact posterior of the line ``off(x) = c + b (x - x_mean)`` under one-sided delays.

    Model: ``count`` points (x_i, d_i) lie above the line by independent Exp(``scale``)
    excesses; their lower convex hull is (``hull_x``, ``hull_d``) (sorted by x, K >= 1; other
    points are reduced to their hull first) and
    their mean x is ``x_mean``. The likelihood is ``exp(count c / scale)`` on the polygon
    of lines that stay under every hull vertex, so the marginal of b is
    ``exp(count g(b) / scale)`` with ``g(b) = min_j(d_j - b (x_j - x_mean))`` (piecewise
    linear, concave) and ``c | b = g(b) - Exp(scale / count)``. With a flat prior on c and a
    Laplace prior on b (mean ``slope_prior``, standard deviation ``slope_prior_sigma``) the
    posterior is piecewise exponential in b and integrates in closed form: this is the
    Pitman (minimum-risk equivariant) estimator of the envelope, the optimal causal
    estimate when the delays are exponential. Units: seconds and s/s.
    """
    hx = np.asarray(hull_x, dtype=np.float64)
    hd = np.asarray(hull_d, dtype=np.float64)
    if hx.size > 1 and not bool(np.all(hx[1:] > hx[:-1])):  # not a hull: sort, lowest per x, hull
        order = np.lexsort((hd, hx))
        hx, hd = hx[order], hd[order]
        first = np.concatenate(([True], hx[1:] != hx[:-1]))
        hx, hd = hx[first], hd[first]
        keep = lower_hull(hx, hd)
        hx, hd = hx[keep], hd[keep]
    k_count = hx.size
    if k_count <= SMALL_POSTERIOR:
        return _posterior_small(hx.tolist(), hd.tolist(), float(count), float(x_mean), float(scale),
                                float(x_eval), float(slope_prior), float(slope_prior_sigma))  # fmt: skip
    centre = int(np.searchsorted(hx, x_mean))
    ref = float(hd[min(centre, k_count - 1)])
    hd = hd - ref
    u = hx - x_mean
    lam_data = count / scale
    inv_tau = math.sqrt(2.0) / slope_prior_sigma
    # breakpoints of the exponent: the hull's edge slopes (ascending) and the prior's mean;
    # interval i runs from breakpoint i-1 to breakpoint i (the outer two are unbounded)
    edges = (hd[1:] - hd[:-1]) / (hx[1:] - hx[:-1])
    split = int(np.searchsorted(edges, slope_prior))
    brk = np.empty(k_count)
    brk[:split] = edges[:split]
    brk[split] = slope_prior
    brk[split + 1 :] = edges[split:]
    vert = np.arange(k_count + 1)
    vert[split + 1 :] -= 1  # the hull vertex active on each interval
    u_v = u[vert]
    hd_v = hd[vert]
    prior_slope = np.full(k_count + 1, inv_tau)
    prior_slope[split + 1 :] = -inv_tau
    lam = prior_slope - lam_data * u_v  # slope of the exponent on each interval
    e_brk = lam_data * (hd_v[:-1] - brk * u_v[:-1]) - np.abs(brk - slope_prior) * inv_tau
    top = float(e_brk.max())
    lam0, lam1 = float(lam[0]), float(lam[-1])
    mass = np.empty(k_count + 1)
    mean_b = np.empty(k_count + 1)
    var_b = np.empty(k_count + 1)
    # the unbounded outer intervals are exponential tails
    mass[0] = math.exp(e_brk[0] - top) / lam0
    mass[-1] = math.exp(e_brk[-1] - top) / -lam1
    mean_b[0], mean_b[-1] = brk[0] - 1.0 / lam0, brk[-1] - 1.0 / lam1
    var_b[0], var_b[-1] = 1.0 / lam0**2, 1.0 / lam1**2
    if k_count > 1:  # bounded intervals 1..K-1 (breakpoint k is the upper end of interval k)
        width = brk[1:] - brk[:-1]
        z = lam[1:-1] * width
        peak = np.maximum(e_brk[:-1], e_brk[1:]) - top
        # interval by interval with libm, as the small path: numpy's SIMD exp/expm1/sinh differ
        # from libm in the last bit on some CPUs (AVX-512)
        terms = map(_bounded_interval, width.tolist(), z.tolist(), peak.tolist())
        mass[1:-1], m_unit, v_unit = (np.array(col) for col in zip(*terms, strict=True))
        mean_b[1:-1] = brk[:-1] + width * m_unit
        var_b[1:-1] = width**2 * v_unit
    w = mass / mass.sum()
    tail = scale / count  # c sits an Exp(scale / count) below g(b)
    # the weighted sums in order (a running sum), not by BLAS's dot: the dot's order is the
    # kernel OpenBLAS picks for the CPU it runs on, so its last bits (and, through the
    # cancellation in a variance, more) differed from one lab PC to the next
    slope = _sum_in_order(w * mean_b)
    slope_var = _sum_in_order(w * (var_b + mean_b**2)) - slope**2
    arm = (x_eval - x_mean) - u_v
    line = hd_v + arm * mean_b
    line_mean = _sum_in_order(w * line)
    line_var = _sum_in_order(w * (arm**2 * var_b + line**2)) - line_mean**2
    return EnvelopePosterior(
        offset=ref + line_mean - tail,
        slope=slope,
        sigma=math.sqrt(max(line_var, 0.0) + tail**2),
        slope_sigma=math.sqrt(max(slope_var, 0.0)),
    )


def _window_posterior_py(
    bins: np.ndarray, lo: int, x_eval: float, scale: float, slope_prior: float, slope_prior_sigma: float
) -> EnvelopePosterior:
    """The posterior (:func:`envelope_posterior`) of the bin minima ``bins[lo:]`` (rows x, d,
    deliveries): their lower hull, delivery count and delivery-weighted mean x."""
    sx, sd, sn = bins[lo:, 0], bins[lo:, 1], bins[lo:, 2]
    count = float(sn.sum())
    x_mean = _sum_in_order(sn * sx) / count
    if sx.size <= SMALL_HULL:  # the scan's vertices straight to the posterior: no arrays between
        xs, ds = sx.tolist(), sd.tolist()
        hull_idx = _scan_lower_hull(xs, ds)
        if len(hull_idx) <= SMALL_POSTERIOR:
            hx, hd = [xs[i] for i in hull_idx], [ds[i] for i in hull_idx]
            return _posterior_small(hx, hd, count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma)
        hull = np.array(hull_idx, dtype=np.intp)
    else:
        hull = lower_hull(sx, sd)
    return envelope_posterior(sx[hull], sd[hull], count, x_mean, scale, x_eval, slope_prior, slope_prior_sigma)


def _window_posterior(
    bins: np.ndarray, lo: int, x_eval: float, scale: float, slope_prior: float, slope_prior_sigma: float
) -> EnvelopePosterior:
    """:func:`_window_posterior_py`, in one C call when the kernels are built (the same bits;
    ``bins``: C-contiguous float64 (n, 3), 0 <= lo < n)."""
    if _kernels is not None:
        got = _kernels.window_posterior(bins, lo, x_eval, scale, slope_prior, slope_prior_sigma)
        if got is not None:
            return EnvelopePosterior(*got)
    return _window_posterior_py(bins, lo, x_eval, scale, slope_prior, slope_prior_sigma)


def push_lower_hull(hx: list[float], hd: list[float], px: float, pd: float) -> None:
    """Append (px, pd) to the lower hull (hx, hd) in place (px not left of its last vertex)."""
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


@dataclass(slots=True)
class _Hull:
    """Lower hull of the window's bin minima with O(1) amortized append on the right."""

    x: list[float] = field(default_factory=list)
    d: list[float] = field(default_factory=list)

    def append(self, px: float, pd: float) -> None:
        push_lower_hull(self.x, self.d, px, pd)

    def rebuild(self, px: np.ndarray, pd: np.ndarray) -> None:
        keep = lower_hull(px, pd)
        self.x = px[keep].tolist()
        self.d = pd[keep].tolist()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.x), np.array(self.d)

    def arrays_with(self, px: float, pd: float) -> tuple[np.ndarray, np.ndarray]:
        """The hull's vertices with one more point on the right, leaving the hull as is."""
        hx, hd = list(self.x), list(self.d)
        push_lower_hull(hx, hd, px, pd)
        return np.array(hx), np.array(hd)


class _Growable:
    """Append-only float64 columns with amortized doubling; single rows are kept as Python
    tuples until the columns are read (one array write per read, not per row)."""

    def __init__(self, cols: int) -> None:
        self.a = np.empty((64, cols))
        self._n = 0
        self._rows: list[tuple[float, ...]] = []

    def append(self, row: np.ndarray) -> None:
        self._settle()
        k = row.shape[0]
        self._reserve(k)
        self.a[self._n : self._n + k] = row
        self._n += k

    def append_row(self, *row: float) -> None:
        self._rows.append(row)

    def _reserve(self, k: int) -> None:
        if self._n + k > self.a.shape[0]:
            grown = np.empty((max(2 * self.a.shape[0], self._n + k), self.a.shape[1]))
            grown[: self._n] = self.a[: self._n]
            self.a = grown

    def _settle(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self._reserve(len(rows))
            self.a[self._n : self._n + len(rows)] = rows
            self._n += len(rows)

    @property
    def n(self) -> int:
        return self._n + len(self._rows)

    @property
    def data(self) -> np.ndarray:
        self._settle()
        return self.a[: self._n]


@dataclass(slots=True)
class Epoch:
    """One continuous stretch of a device clock (between resets)."""

    index: int
    x0: float  # local time of the first sample (reference for beta)
    t_start: float  # host arrival time of the first sample
    bins: _Growable = field(default_factory=lambda: _Growable(3))  # (x - x0, d, deliveries) of bin minima
    x_hi: float = -math.inf  # largest local time seen in this epoch
    changes: list[float] = field(default_factory=list)  # x (rel.) where the drift changed
    alpha: float = math.nan  # the epoch's last line (kept when a newer epoch starts)
    beta: float = 0.0


_Pairs = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _take(x: np.ndarray, y: np.ndarray, packets: np.ndarray | None, mask: np.ndarray) -> _Pairs:
    """The (t_local, t_arrival, packets) rows where ``mask`` is True."""
    return x[mask], y[mask], None if packets is None else packets[mask]


class ClockModel:
    """Causal lower-envelope clock model for one sensor (see module docstring).

    ``fixed_latency``: known constant transport delay (s), subtracted before estimation.
    ``jitter_prior``: 1-sigma (s) reported for a sensor without its own clock
    (``t_local == t_arrival``), whose per-sample jitter cannot be observed.
    ``refit_every``: seconds of local time between posterior refits once the epoch has
    ``YOUNG_BINS`` bins (before that, every update refits).
    """

    def __init__(
        self,
        fixed_latency: float = 0.0,
        *,
        bin_width: float = 0.25,
        window: float = 300.0,
        block: float = 5.0,
        min_span: float = 2.0,
        refit_every: float = 0.25,
        jitter_prior: float = 1e-3,
        drift_prior: float = 0.0,
    ) -> None:
        self.fixed_latency = float(fixed_latency)
        self.bin_width = float(bin_width)
        self.window = float(window)
        self.block = float(block)
        self.min_span = float(min_span)
        self.refit_every = float(refit_every)
        self.jitter_prior = float(jitter_prior)
        self._beta_prior = -float(drift_prior) / (1.0 + float(drift_prior))
        self._beta_prior_sigma = DRIFT_PRIOR_SIGMA
        self._scale_prior = SCALE_PRIOR_S
        self.epochs: list[Epoch] = []
        self.n = 0
        self.glitches = 0
        self.resets = 0
        self.late = 0  # samples delivered after a later one (reordered), absorbed into the fit
        self._held: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._held_line = (math.nan, math.nan, math.nan)  # (x min, x ref, alpha) of held samples before the epoch
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
        self._open_n = 0.0
        self._clockless = True  # every sample of the epoch so far had t_local == t_arrival
        self._hull = _Hull()
        self._blocks: list[tuple[int, np.ndarray, np.ndarray]] = []  # (block index, hull x, hull d)
        self._queue = _HullQueue()  # the same blocks' hulls, for the window's hull
        self._queue_ok = True  # False: self._blocks changed otherwise than at a block's end
        self._block_cur = 0
        self._block_start_bin = 0
        self._wsum = 0.0
        self._wxsum = 0.0
        self._wx_last = math.nan
        self._delay_scale = math.nan
        self._unc = math.inf
        self._x_fit = 0.0  # local time (rel. to the epoch's x0) of the last refit
        self._degenerate = True
        self._viol: list[tuple[float, float, float]] = []
        self._n_window_bins = 0
        self._span = 0.0
        self._slope_unc = self._beta_prior_sigma
        self._window_start = -math.inf
        self._next_check = CHANGE_EVERY_S
        self._next_refit = -math.inf
        self._disagree = 0
        self.changes = getattr(self, "changes", 0)

    # -- public API ---------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Index of the current clock epoch (increments at every detected reset)."""
        return len(self.epochs) - 1

    @property
    def offset(self) -> float:
        """``to_host(t) - t`` at the latest sample, seconds."""
        if not self.epochs:
            return math.nan
        return self.alpha + self.beta * (self._x_last - self.epochs[-1].x0)

    @property
    def drift(self) -> float:
        """Device clock rate error (dimensionless; 5e-5 == 50 ppm fast)."""
        return -self.beta / (1.0 + self.beta)

    @property
    def uncertainty(self) -> float:
        """1-sigma of ``to_host`` at the latest sample, seconds: the last fit's, widened by
        its slope uncertainty over the local time since that fit."""
        ahead = self._x_last - self.epochs[-1].x0 - self._x_fit if self.epochs else 0.0
        return math.hypot(self._unc, self._slope_unc * ahead) if ahead > 0.0 else self._unc

    @property
    def latency(self) -> float:
        """Typical transport latency (s): the known fixed part plus the median excess delay
        of a delivery over the envelope (the minimum delay itself is inside the offset)."""
        scale = self._delay_scale if math.isfinite(self._delay_scale) else 0.0
        return self.fixed_latency + scale * math.log(2.0)

    @property
    def ready(self) -> bool:
        return bool(self.epochs) and math.isfinite(self.alpha)

    def update(self, t_local: np.ndarray, t_arrival: np.ndarray, packets: np.ndarray | None = None) -> None:
        """Feed samples in arrival order: 1-D float64 arrays of equal length (s).

        Samples with one arrival time are one delivery (packet). ``packets`` (optional, same
        length) says instead how many deliveries each pair stands for — e.g. the counts
        :func:`bin_minima` returns when it thins a recording.
        """
        x = np.asarray(t_local, dtype=np.float64)
        y = np.asarray(t_arrival, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"t_local {x.shape} and t_arrival {y.shape} must be 1-D of equal length")
        if packets is not None:
            packets = np.asarray(packets, dtype=np.float64)
            if packets.shape != x.shape:
                raise ValueError(f"packets {packets.shape} must match t_local {x.shape}")
        if x.size == 0:
            return
        if not math.isfinite(float(np.add.reduce(x)) + float(np.add.reduce(y))):
            raise ValueError("t_local/t_arrival contain NaN or inf")
        if not self.epochs:
            self._new_epoch(float(x[0]), float(y[0]))
        rest: _Pairs | None = (x, y, packets)
        while rest is not None and rest[0].size:
            rest = self._step(*rest)

    def _step(self, x: np.ndarray, y: np.ndarray, packets: np.ndarray | None) -> _Pairs | None:
        """Take what can be decided now; returns the samples still to be fed (or None)."""
        if self._held:
            self._held.append((x, y, packets))
            return self._resolve_held()
        if x[0] >= self._x_last and (x.size == 1 or float(np.minimum.reduce(x[1:] - x[:-1])) >= 0.0):
            # the usual batch: in order, after everything fed so far (nothing late, no step back)
            self._update_epoch(x, y, packets, in_order=True)
            return None
        if self.ready:
            # behind the newest local time, with a sample fitting the current line after it
            # in this batch (it may be itself): late deliveries, taken in one go
            ahead = np.maximum.accumulate(np.concatenate(([self._x_last], x[:-1])))
            behind = x < ahead - RESET_BACKSTEP_S
            if behind.any():
                r = self._residual(x, y)
                fit_after = np.logical_or.accumulate((r <= self._fit_tol())[::-1])[::-1]
                late = behind & fit_after & (r <= LATE_MAX_S)
                if late.any():
                    self._absorb_late(*_take(x, y, packets, late))
                    keep = ~late
                    if not keep.any():
                        return None
                    x, y, packets = _take(x, y, packets, keep)
        # a backward step of the device clock: a reboot or a late delivery, also inside a batch
        if x[0] < self._x_last - RESET_BACKSTEP_S:
            back = 0
        elif x.size > 1 and float(np.minimum.reduce(x[1:] - x[:-1])) < -RESET_BACKSTEP_S:
            back = int(np.argmax(x[1:] - x[:-1] < -RESET_BACKSTEP_S)) + 1
        else:
            back = -1
        if back < 0:
            self._update_epoch(x, y, packets)
            return None
        if back > 0:
            self._update_epoch(x[:back], y[:back], None if packets is None else packets[:back])
        rest = (x[back:], y[back:], None if packets is None else packets[back:])
        if not self.ready:  # no line to test the step against: take it as a reset
            self._new_epoch(float(rest[0][0]), float(rest[1][0]))
            return rest
        self._held = [rest]
        return self._resolve_held()

    @property
    def resolving(self) -> bool:
        """True while samples after a backward step are held (reset or late delivery?)."""
        return bool(self._held)

    def flush_held(self) -> None:
        """Decide held samples now (the data ended before the confirmation time): a reset if
        none fits the line over ``RESET_CONFIRM_DELIVERIES`` deliveries, else late ones."""
        if self._held:
            rest = self._resolve_held(final=True)
            if rest is not None:
                self.update(*rest)

    def _fit_tol(self) -> float:
        """Excess delay (s) over the current line below which a sample fits it."""
        scale = self._delay_scale if math.isfinite(self._delay_scale) else self._scale_prior
        unc = self._unc if math.isfinite(self._unc) else LATE_FIT_MAX_S
        return min(max(STEP_MIN_S, 10.0 * unc + 8.0 * scale), LATE_FIT_MAX_S)

    def _resolve_held(self, final: bool = False) -> _Pairs | None:
        """Decide what the samples held since a backward step are (see the module docstring);
        returns the samples to feed again once decided (None: all taken, or still held)."""
        x = np.concatenate([h[0] for h in self._held])
        y = np.concatenate([h[1] for h in self._held])
        have_packets = all(h[2] is not None for h in self._held)
        p = np.concatenate([h[2] for h in self._held]) if have_packets else None
        ep = self.epochs[-1]
        r = self._residual(x, y)
        # a held sample on the line but not ahead of the newest local time is a late delivery
        # of the old clock (another sensor of the domain delivering after it): it says nothing
        # of whether the step was a reset
        stale = (r <= self._fit_tol()) & (x <= self._x_last)
        if stale.any():
            self._absorb_late(*_take(x, y, p, stale))
            if stale.all():
                self._held = []
                self._held_line = (math.nan, math.nan, math.nan)
                return None
            x, y, p = _take(x, y, p, ~stale)
            r = r[~stale]
            self._held = [(x, y, p)]
        # a held sample ahead of the newest local time within a delivery's lateness of the line
        # fits it too: a reset clock (stepped back >= RESET_CONFIRM_S) is not back there yet
        ahead = (x > self._x_last) & (r <= LATE_FIT_MAX_S)
        fitting = np.flatnonzero((r <= self._fit_tol()) | ahead)
        if fitting.size:  # the current line still holds: what was held until that sample came late
            j = int(fitting[0])
            self._held = []
            self._held_line = (math.nan, math.nan, math.nan)
            late = np.zeros(x.size, dtype=bool)
            # every held sample behind the newest before it is taken as late (however far
            # above the line): fed again, it would be held again before the same sample
            late[: j + 1] = x[: j + 1] < self._x_last - RESET_BACKSTEP_S
            self._absorb_late(*_take(x, y, p, late))
            keep = ~late  # later samples (and forward ones) are judged again, in order
            return _take(x, y, p, keep) if keep.any() else None
        deliveries = float(p.sum()) if p is not None else float(np.count_nonzero(y[1:] != y[:-1]) + 1)
        plausible = bool((r <= LATE_MAX_S).all())  # could all be late deliveries
        enough = deliveries >= RESET_CONFIRM_DELIVERIES and (
            y[-1] - y[0] >= RESET_CONFIRM_S or (final and not plausible)
        )
        if not enough and not final:
            # until decided, local times before the current epoch map as a reset would map them
            before = x < ep.x0
            if before.any():
                xb, db = x[before], (y[before] - x[before]) - self.fixed_latency
                self._held_line = (float(xb.min()), float(xb[0]), float(np.min(db - self.beta * (xb - xb[0]))))
            return None
        self._held = []
        self._held_line = (math.nan, math.nan, math.nan)
        if not enough:  # the data ended before a reset was confirmed: late deliveries
            late = (x < self._x_last - RESET_BACKSTEP_S) & (r <= LATE_MAX_S)
            self._absorb_late(*_take(x, y, p, late))
            return _take(x, y, p, ~late) if (~late).any() else None
        # nothing fitted the line for long enough: the clock was reset. The reset clock's
        # deliveries (most of those held) share one excess over the old line, the step:
        # measured at each delivery's last sample (earlier ones waited for the packet); held
        # samples well below it are late deliveries of the old clock
        ends = np.append(y[1:] != y[:-1], True)
        new = r >= float(np.median(r[ends])) - self._fit_tol()
        old = ~new
        if old.any():
            self._absorb_late(*_take(x, y, p, old))
        x, y, p = _take(x, y, p, new)
        self._new_epoch(float(x[0]), float(y[0]))
        return (x, y, p)

    def _residual(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Excess delay (s) of samples over the current epoch's line (negative: below it)."""
        return (y - x - self.fixed_latency) - (self.alpha + self.beta * (x - self.epochs[-1].x0))

    def _absorb_late(self, x: np.ndarray, y: np.ndarray, packets: np.ndarray | None) -> None:
        """Late deliveries (local times behind the newest): counted, and where one lies lower
        than its bin's minimum it replaces it (hull rebuilt, refit at the next update)."""
        if x.size == 0:
            return
        ep = self.epochs[-1]
        self.n += x.size
        self.late += x.size
        xr = x - ep.x0
        d = (y - x) - self.fixed_latency
        r = d - (self.alpha + self.beta * xr)
        w = self.bin_width
        bins = np.floor(xr / w).astype(np.int64)
        ends = packets if packets is not None else _packet_ends(y[1:] != y[:-1], False)
        order = np.lexsort((r, bins))  # per bin: its lowest residual first
        first = np.concatenate([[True], bins[order][1:] != bins[order][:-1]])
        best = order[first]  # one sample per late bin, bins ascending
        counts = np.add.reduceat(ends[order], np.flatnonzero(first))
        ub = bins[best]
        in_open = ub == self._open_bin
        if in_open.any():
            k = int(best[in_open][0])
            self._open_n += float(counts[in_open][0])
            if r[k] < self._open_r:
                self._open_r, self._open_x, self._open_d = float(r[k]), float(xr[k]), float(d[k])
        data = ep.bins.data
        if data.shape[0] == 0:
            return
        closed = ~in_open
        best, counts, ub = best[closed], counts[closed], ub[closed]
        rows = np.searchsorted(data[:, 0], ub * w)  # rows are sorted by x, one per bin
        rows_ok = rows < data.shape[0]
        rows = np.where(rows_ok, rows, 0)
        found = rows_ok & (np.floor(data[rows, 0] / w).astype(np.int64) == ub)  # else: no row (gap, window)
        rows, best, counts = rows[found], best[found], counts[found]
        if rows.size == 0:
            return
        data[rows, 2] += counts
        lower = r[best] < data[rows, 1] - (self.alpha + self.beta * data[rows, 0])
        if lower.any():
            data[rows[lower], 0] = xr[best[lower]]
            data[rows[lower], 1] = d[best[lower]]
            self._rebuild_hull(ep)

    def _rebuild_hull(self, ep: Epoch) -> None:
        """Recompute the closed blocks' hull vertices and the window hull from the bins."""
        data = ep.bins.data
        oldest_block = self._blocks[0][0] if self._blocks else self._block_cur
        x_from = max(oldest_block * self.block, self._window_start)
        keep = data[int(np.searchsorted(data[:, 0], x_from)) :]
        blk = np.floor(keep[:, 0] / self.block).astype(np.int64)
        self._blocks = []
        self._queue_ok = False
        for b in np.unique(blk[blk < self._block_cur]).tolist():
            sel = keep[blk == b]
            h = lower_hull(sel[:, 0], sel[:, 1])
            self._blocks.append((b, sel[h, 0], sel[h, 1]))
        self._hull = _Hull()
        if keep.shape[0]:
            self._hull.rebuild(keep[:, 0], keep[:, 1])
        self._next_refit = -math.inf

    def to_host(self, t_local: np.ndarray | float) -> np.ndarray:
        """Host time (s) of device times ``t_local`` (s) with the current (causal) estimate.

        After a clock reset, local times inside an older epoch's range (and outside the
        newer ones') are mapped with that epoch's last line.
        """
        x = np.asarray(t_local, dtype=np.float64)
        if not self.ready:
            return np.full_like(x, np.nan)
        cur = self.epochs[-1]
        out = x + self.alpha + self.beta * (x - cur.x0)
        if self._held and math.isfinite(self._held_line[2]):
            lo, hx0, halpha = self._held_line
            pending = (x < cur.x0) & (x >= lo - self.bin_width)
            if pending.any():
                out = np.where(pending, x + halpha + self.beta * (x - hx0), out)
        if len(self.epochs) > 1:
            # the current clock's range: up to its newest sample, held ones included (while a
            # step back is resolved, samples ahead of the newest continue the current clock)
            newest = max([cur.x_hi, self._x_last] + [float(np.max(h[0])) for h in self._held if h[0].size])
            claimed = (x >= cur.x0) & (x <= newest)
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
            old.alpha, old.beta, old.x_hi = self.alpha, self.beta, max(old.x_hi, self._x_last)
            self.resets += 1
            if not self._degenerate and self._span >= self.min_span:
                self._beta_prior = self.beta
                self._beta_prior_sigma = max(self._slope_sigma(), 1e-7)
                self._scale_prior = self._delay_scale  # same transport after a reboot
        self.epochs.append(Epoch(len(self.epochs), x0, t_arrival))
        self._reset_state()

    # -- the data path --------------------------------------------------------------------------
    def _update_epoch(
        self, x: np.ndarray, y: np.ndarray, packets: np.ndarray | None = None, in_order: bool = False
    ) -> None:
        """Feed samples of the current epoch (``in_order``: x is non-decreasing, so only its
        first sample can be behind the open bin)."""
        ep = self.epochs[-1]
        xr = x - ep.x0
        if (
            self._open_bin > -(1 << 61)
            and math.isfinite(self.alpha)
            and (not in_order or math.floor(float(xr[0]) / self.bin_width) < self._open_bin)
        ):
            # samples behind the open bin (a step back under RESET_BACKSTEP_S across a bin edge,
            # e.g. two sensors of one clock interleaved) are late: the bins stay in order
            behind = np.floor(xr / self.bin_width) < self._open_bin
            if behind.any():
                self._absorb_late(*_take(x, y, packets, behind))
                ahead = ~behind
                if not ahead.any():
                    return
                x, y, xr = x[ahead], y[ahead], xr[ahead]
                packets = None if packets is None else packets[ahead]
        d = y - x  # exact for clockless sensors (y == x)
        if self.fixed_latency:
            d -= self.fixed_latency
        self.n += x.size
        # one delivery (packet) per run of equal arrival times, counted at its last sample:
        # only that sample's excess delay is a fresh draw (earlier ones waited for the packet)
        new_packet = y[1:] != y[:-1]
        if self._clockless and (x != y).any():
            self._clockless = False
        continued = y[0] == self._t_last  # the previous call ended inside this packet
        self._x_last = float(x[-1])
        self._t_last = float(y[-1])
        ep.x_hi = max(ep.x_hi, self._x_last)
        if not math.isfinite(self.alpha):
            self.alpha = float(np.min(d - self.beta * xr))
        r = d - (self.alpha + self.beta * xr)
        i = int(r.argmin())
        step_tol = max(STEP_MIN_S, 10.0 * self._unc)
        if float(r[i]) < -step_tol and self._n_window_bins >= 3:  # too few points: just a better minimum
            keep = self._handle_violations(x, y, r < -step_tol, r, packets)
            if keep is None:
                return
            ends = (_packet_ends(new_packet, continued) if packets is None else packets)[keep]
            xr, d, r = xr[keep], d[keep], r[keep]
            if xr.size == 0:
                return
            i = int(r.argmin())
        else:
            ends = packets
        w = self.bin_width
        b_first, b_last = math.floor(float(xr[0]) / w), math.floor(float(xr[-1]) / w)
        young = self._n_window_bins < YOUNG_BINS  # refit on every packet until the line is pinned
        if b_first == b_last == self._open_bin and not young:  # fast path: still inside the open bin
            if ends is not None:
                self._open_n += float(ends.sum())
            else:
                self._open_n += float(np.count_nonzero(new_packet) + 1 - continued)
            ri = float(r[i])
            if ri < self._open_r:
                self._open_r, self._open_x, self._open_d = ri, float(xr[i]), float(d[i])
            return
        if ends is None:
            ends = _packet_ends(new_packet, continued)
        bins = np.floor(xr / w).astype(np.int64)
        order = np.lexsort((r, bins))
        first = np.concatenate([[True], bins[order][1:] != bins[order][:-1]])
        sel = order[first]  # per-bin argmin, bins ascending
        per_bin = np.add.reduceat(ends[order], np.flatnonzero(first))
        cols = (bins[sel], xr[sel], d[sel], r[sel], per_bin)
        rows = zip(*(c.tolist() for c in cols), strict=True)
        for b, px, pd_, pr, pn in rows:
            if b == self._open_bin:
                self._open_n += pn
                if pr < self._open_r:
                    self._open_r, self._open_x, self._open_d = pr, px, pd_
                continue
            if math.isfinite(self._open_d):
                self._close_bin(ep)
            self._open_bin, self._open_r, self._open_x, self._open_d, self._open_n = b, pr, px, pd_, pn
        if young or xr[-1] >= self._next_refit:
            self._refit(ep)
            self._next_refit = float(xr[-1]) + max(self.refit_every, REFIT_SPAN_FRACTION * self._span)

    def _handle_violations(
        self, x: np.ndarray, y: np.ndarray, viol: np.ndarray, r: np.ndarray, packets: np.ndarray | None
    ) -> np.ndarray | None:
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
            self._update_epoch(x[k:], y[k:], None if packets is None else packets[k:])
            return None
        self._viol.extend((float(x[i]), float(y[i]), float(r[i])) for i in idx)
        self.glitches += int(idx.size)
        return ~viol

    def _close_bin(self, ep: Epoch) -> None:
        px, pd_, pn = self._open_x, self._open_d, max(self._open_n, 1.0)
        ep.bins.append_row(px, pd_, pn)
        blk = int(px // self.block)
        if blk != self._block_cur and len(self._hull.x):
            self._finish_block(ep, blk)
        self._hull.append(px, pd_)
        w_decay = math.exp(-(px - self._wx_last) / (self.window / 3.0)) if math.isfinite(self._wx_last) else 0.0
        self._wsum = self._wsum * w_decay + pn
        self._wxsum = self._wxsum * w_decay + pn * px
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
            if self._queue_ok:
                self._queue.push(bx[keep].tolist(), bd[keep].tolist())
        self._block_cur = new_block
        self._block_start_bin = ep.bins.n - 1
        oldest = new_block - math.ceil(self.window / self.block)
        while self._blocks and self._blocks[0][0] < oldest:
            self._blocks.pop(0)
            if self._queue_ok:
                self._queue.pop()
        if not self._queue_ok:  # the blocks were rebuilt or cut: queue them again
            self._queue = _HullQueue()
            for _, hx, hd in self._blocks:
                self._queue.push(hx.tolist(), hd.tolist())
            self._queue_ok = True
        self._hull = _Hull(*self._queue.hull()) if self._blocks else _Hull()

    def _check_drift_change(self, ep: Epoch) -> None:
        """Compare the long fit with the posterior of the last CHANGE_WINDOW_S alone at the
        latest time; persistent disagreement means the drift changed: keep only recent data."""
        if self._span < 2 * CHANGE_WINDOW_S or not math.isfinite(self._unc) or self._degenerate:
            return
        data = ep.bins.data
        x_now = float(data[-1, 0])
        lo = int(np.searchsorted(data[:, 0], x_now - CHANGE_WINDOW_S))
        if data.shape[0] - lo < 8:
            return
        short = _window_posterior(data, lo, x_now, self._delay_scale, self._beta_prior, DRIFT_PRIOR_SIGMA)
        long = self.alpha + self.beta * x_now
        if abs(short.offset - long) > CHANGE_SIGMAS * math.hypot(short.sigma, self._unc):
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
        self._queue_ok = False
        self._blocks = [b for b in self._blocks if b[0] >= first_block]
        self._blocks = [(bi, bx[bx >= x_from], bd[bx >= x_from]) for bi, bx, bd in self._blocks if (bx >= x_from).any()]
        self._block_start_bin = max(self._block_start_bin, lo)
        self._hull = _Hull()
        self._hull.rebuild(keep[:, 0], keep[:, 1])
        tau = self.window / 3.0
        w = np.exp(-(keep[-1, 0] - keep[:, 0]) / tau)
        self._wsum = float((w * keep[:, 2]).sum())
        self._wxsum = float((w * keep[:, 2] * keep[:, 0]).sum())
        self._window_start = x_from
        self._next_refit = -math.inf

    def _refit(self, ep: Epoch) -> None:
        """The envelope line and its uncertainty at the latest sample: the exact posterior
        (:func:`envelope_posterior`) given the window's lower hull, its delivery count and
        recency-weighted mean x, and the typical excess delay of a delivery."""
        data = ep.bins.data
        oldest_block = self._blocks[0][0] if self._blocks else self._block_cur
        start = max(oldest_block * self.block, self._window_start)
        lo = int(np.searchsorted(data[:, 0], start)) if data.shape[0] else 0
        has_open = math.isfinite(self._open_d)
        open_row = np.array([self._open_x, self._open_d, max(self._open_n, 1.0)] if has_open else [])
        stored = data.shape[0] - lo
        n = stored + (1 if has_open else 0)  # the window's bins, the open one last
        if n == 0:
            return

        def window() -> np.ndarray:
            return np.vstack([data[lo:], open_row[None, :]]) if has_open else data[lo:]

        self._x_fit = self._x_last - ep.x0
        self._n_window_bins = n
        self._span = float((open_row[0] if has_open else data[-1, 0]) - (data[lo, 0] if stored else open_row[0]))
        # ptp of d, and (a bin minimum over n deliveries exceeds the envelope by Exp(scale / n))
        # the median of n * excess, robust to delay spikes, which estimates the per-delivery scale
        spread = (0.0, 0.0)
        if not self._clockless:
            got = _kernels.refit_spread(data, lo, open_row, self.alpha, self.beta) if _kernels is not None else None
            if got is None:
                win = window()
                resid = np.maximum(win[:, 1] - (self.alpha + self.beta * win[:, 0]), 0.0)
                got = float(np.ptp(win[:, 1])), float(np.partition(resid * win[:, 2], n // 2)[n // 2])
            spread = got
        self._degenerate = self._clockless or (n >= 3 and spread[0] < 1e-12)
        if self._degenerate:  # no clock of its own: d is the fixed latency, exactly
            self.beta = 0.0
            self.alpha = float(np.min(window()[:, 1]))
            self._unc = self.jitter_prior
            self._slope_unc = 0.0
            return
        measured = spread[1] / math.log(2.0) if n >= 3 else 0.0
        k = n if n >= 3 else 0
        scale = max((k * measured + SCALE_PRIOR_BINS * self._scale_prior) / (k + SCALE_PRIOR_BINS), SCALE_FLOOR_S)
        self._delay_scale = scale
        hx, hd = self._hull.arrays_with(self._open_x, self._open_d) if has_open else self._hull.arrays()
        if hx.size == 0:
            first = window()[0]
            hx, hd = first[:1].copy(), first[1:2].copy()
        open_n = max(self._open_n, 1.0) if has_open else 0.0
        count = self._wsum + open_n
        x_mean = (self._wxsum + open_n * self._open_x) / count if count > 0 else float(np.mean(window()[:, 0]))
        x_mean = min(max(x_mean, float(hx[0])), float(hx[-1]))
        x_now = self._x_fit
        post = envelope_posterior(
            hx, hd, max(count, 1.0), x_mean, scale, x_now, self._beta_prior, self._beta_prior_sigma
        )
        self.beta = post.slope
        self.alpha = post.offset - post.slope * x_now
        self._unc = math.hypot(post.sigma, UNC_FLOOR_S)
        self._slope_unc = post.slope_sigma

    def _slope_sigma(self) -> float:
        return self._slope_unc

    # -- seed-compatible state and persistence -------------------------------------------------
    def state(self) -> dict[str, Any]:
        """TimeOffsetModel-style fields (offset mean/variance, drift) plus the line itself."""
        ep = self.epochs[-1] if self.epochs else None
        return {
            "offset_mean": self.offset,
            "offset_variance": self.uncertainty**2,
            "drift": self.drift,
            "uncertainty": self.uncertainty,
            "alpha": self.alpha,
            "beta": self.beta,
            "x0": ep.x0 if ep else math.nan,
            "epoch": self.epoch,
            "n": self.n,
            "resets": self.resets,
            "glitches": self.glitches,
            "late": self.late,
            "t_local_last": self._x_last,
            "t_arrival_last": self._t_last,
            "fixed_latency": self.fixed_latency,
        }

    def refine(self) -> RefinedClock:
        """Non-causal fit over everything seen (for exports): per epoch, the posterior mean
        of the envelope over a sliding window around each knot (every ``block`` s; the data
        on both sides of a knot, not only before it), interpolated linearly."""
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
            if lower_hull(bx, bd).size < 2 or bx[-1] - bx[0] < m.min_span:
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
            bn = data[:, 2]
            seg = np.searchsorted(cuts, knots, side="right") - 1  # never fit across a drift change
            lo_all = np.searchsorted(bx, np.maximum(knots - half, cuts[seg])).astype(np.int64)
            hi_all = np.searchsorted(bx, np.minimum(knots + half, cuts[seg + 1])).astype(np.int64)
            few = hi_all - lo_all < 3  # too few bins between drift changes: the whole epoch
            lo_all[few], hi_all[few] = 0, bx.size
            windows = list(zip(lo_all.tolist(), hi_all.tolist(), strict=True))
            done = np.zeros(knots.size, dtype=np.uint8)
            if _kernels is not None:  # every knot in C (the same bits); the rest below
                _kernels.refine_knots(data, knots, lo_all, hi_all, m._beta_prior, DRIFT_PRIOR_SIGMA, SCALE_FLOOR_S,
                                      values, done)  # fmt: skip
            todo = np.flatnonzero(done == 0).tolist()
            sliding = bool((np.diff(lo_all) >= 0).all() and (np.diff(hi_all) >= 0).all())
            hulls = sliding_lower_hulls(bx, bd, lo_all, hi_all) if sliding and len(todo) == knots.size else None
            for i in todo:
                kx = knots[i]
                lo, hi = windows[i]
                wx, wd, wn = bx[lo:hi], bd[lo:hi], bn[lo:hi]
                if hulls is not None:
                    hx, hd = next(hulls)
                    sx, sd = np.array(hx), np.array(hd)
                else:
                    hull_w = lower_hull(wx, wd)
                    sx, sd = wx[hull_w], wd[hull_w]
                count = float(wn.sum())
                mean_x = _sum_in_order(wn * wx) / count
                k = min(max(int(np.searchsorted(sx, mean_x, side="right")) - 1, 0), max(sx.size - 2, 0))
                slope = (sd[k + 1] - sd[k]) / (sx[k + 1] - sx[k]) if sx.size > 1 else m._beta_prior
                excess = np.maximum(wd - (sd[k] + slope * (wx - sx[k])), 0.0) * wn
                scale = max(float(np.median(excess)) / math.log(2.0), SCALE_FLOOR_S)
                post = envelope_posterior(sx, sd, count, mean_x, scale, float(kx), slope, DRIFT_PRIOR_SIGMA)
                values[i] = post.offset
            out.append((ep.x0, ep.t_start, knots, values))
        return cls(out, m.drift, m.offset, m.uncertainty)

    def to_host(self, t_local: np.ndarray | float, epoch: int = -1) -> np.ndarray:
        """Host time (s) of device times ``t_local`` (s) on clock epoch ``epoch`` (default: the latest)."""
        x0, _, kx, kv = self.epochs[epoch]
        x = np.asarray(t_local, dtype=np.float64)
        if x.ndim == 0:
            return self.to_host(x[None], epoch)[0]
        if kx.size == 1:
            return x + kv[0]
        if _kernels is not None:  # one pass in C (the same bits)
            x = np.ascontiguousarray(x)
            out = np.empty_like(x)
            if _kernels.refined_to_host(x, float(x0), np.ascontiguousarray(kx), np.ascontiguousarray(kv), out):
                return out
        return self._to_host_numpy(x, x0, kx, kv)

    @staticmethod
    def _to_host_numpy(x: np.ndarray, x0: float, kx: np.ndarray, kv: np.ndarray) -> np.ndarray:
        xr = x - x0
        slope_lo = (kv[1] - kv[0]) / (kx[1] - kx[0])
        slope_hi = (kv[-1] - kv[-2]) / (kx[-1] - kx[-2])
        off = np.interp(xr, kx, kv)
        for outside, k, slope in ((xr < kx[0], 0, slope_lo), (xr > kx[-1], -1, slope_hi)):
            if outside.any():  # extrapolated along the end segment (only where needed: an hour is 2 M samples)
                off[outside] = kv[k] + slope * (xr[outside] - kx[k])
        off += x
        return off

    def epoch_starts(self) -> np.ndarray:
        """Host arrival time at which each epoch began (s)."""
        return np.array([e[1] for e in self.epochs])
