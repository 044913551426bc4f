"""Clock-sync accuracy: our causal lower-envelope ClockModel vs (a) the seed's 1-D Kalman on
arrival times (drift fixed at 1.0) and (b) an offline linear-programming lower envelope
(scipy linprog) over the same data, on scenarios with known truth.

    python -m benchmarks.sync_accuracy [--duration 120] [--markdown docs/benchmarks.md]

Reports causal RMS error of ``to_host`` against true time after a 10 s warm-up, the
ratios, how well the reported uncertainty covers the error, and reset recovery time.
Targets: BLE-like <= 0.1 ms RMS, >= 40x better than (a), within 2x of (b); reset recovered
within 2 s.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

from sensorium_desktop.core.clock import ClockModel, push_lower_hull

from .clock_scenarios import SCENARIOS, T0, Scenario

WARMUP_S = 10.0
#: Scenarios whose true offset is one line per clock epoch, where the bound applies.
BOUND_SCENARIOS = ("ble", "usb", "camera", "reset", "rate_change")


def run_ours(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Causal estimate per sample (after the update that delivered it) and its 1-sigma."""
    m = ClockModel(fixed_latency=sc.fixed_latency)
    est = np.empty_like(sc.t_local)
    unc = np.empty_like(sc.t_local)
    for sl in sc.batch_slices():
        m.update(sc.t_local[sl], sc.t_arrival[sl])
        est[sl] = m.to_host(sc.t_local[sl])
        unc[sl] = m.uncertainty
    return est, unc


def run_seed_kalman(sc: Scenario, q: float) -> np.ndarray:
    """The seed's TimeOffsetModel: 1-D Kalman on offset = arrival - local, drift fixed at 1."""
    r = sc.jitter**2 + 1e-12
    est = np.empty_like(sc.t_local)
    theta = math.nan
    p = 1.0
    z_all = sc.t_arrival - sc.fixed_latency - sc.t_local
    for sl in sc.batch_slices():
        for z in z_all[sl].tolist():
            if math.isnan(theta):
                theta, p = z, r
                continue
            p += q
            k = p / (p + r)
            theta += k * (z - theta)
            p *= 1.0 - k
        est[sl] = sc.t_local[sl] + theta
    return est


def best_seed_kalman(sc: Scenario, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Give the baseline its best process noise (grid search on the truth)."""
    best: tuple[float, np.ndarray, float] | None = None
    for q in (1e-12, 1e-9, 1e-6):
        est = run_seed_kalman(sc, q)
        err = rms((est - sc.t_true)[mask])
        if best is None or err < best[0]:
            best = (err, est, q)
    assert best is not None
    return best[1], best[2]


def run_lp(sc: Scenario) -> np.ndarray:
    """Offline LP lower envelope per clock epoch: max sum(a + b x) s.t. a + b x_i <= d_i."""
    est = np.empty_like(sc.t_local)
    epochs = sc.epochs if sc.epochs is not None else np.zeros(sc.t_local.size, dtype=int)
    for e in np.unique(epochs):
        sel = epochs == e
        x = sc.t_local[sel]
        d = sc.t_arrival[sel] - sc.fixed_latency - x
        xc = x - x.mean()
        a, b = envelope_lp(xc, d)
        est[sel] = x + a + b * xc
    return est


def envelope_lp(xc: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """max sum(a + b xc) s.t. a + b xc_i <= d_i (``xc`` centred, seconds): (a, b).
    Solved relative to min(d): on raw offsets of ~1.8e9 s HiGHS returned lines off by up
    to tens of us (the reset scenario's second epoch)."""
    ref = float(np.min(d))
    res = linprog(
        c=[-xc.size, -xc.sum()],
        A_ub=np.column_stack([np.ones_like(xc), xc]),
        b_ub=d - ref,
        bounds=[(None, None), (-1e-3, 1e-3)],  # |drift| < 1000 ppm keeps tiny epochs bounded
        method="highs",
    )
    if res.status != 0:
        return ref, 0.0
    return ref + float(res.x[0]), float(res.x[1])


def run_causal_lp(sc: Scenario, every: float = 1.0) -> np.ndarray:
    """The online counterpart of (b): every ``every`` s, linprog on everything seen so far in
    the current clock epoch (slope 0 until 2 s of data), used until the next refit. Only the
    lowest offset of each delivery enters the LP (the others cannot be on the envelope)."""
    est = np.full_like(sc.t_local, np.nan)
    epochs = sc.epochs if sc.epochs is not None else np.zeros(sc.t_local.size, dtype=int)
    ends = np.append(sc.batches[1:], sc.t_local.size) - 1  # last sample of each delivery
    next_fit = -math.inf
    a = b = xm = math.nan
    ep_cur = -1
    for sl in sc.batch_slices():
        n = sl.stop
        e = int(epochs[n - 1])
        t_now = sc.t_arrival[n - 1]
        if t_now >= next_fit or e != ep_cur:
            sel = ends[ends < n]
            sel = sel[epochs[sel] == e]
            if sel.size == 0:
                sel = np.array([n - 1])
            x = sc.t_local[sel]
            d = sc.t_arrival[sel] - sc.fixed_latency - x
            xm = x.mean()
            if x[-1] - x[0] < 2.0:
                a, b = float(np.min(d)), 0.0
                xm = 0.0
            else:
                a, b = envelope_lp(x - xm, d)
            next_fit = t_now + every
            ep_cur = e
        x = sc.t_local[sl]
        est[sl] = x + a + b * (x - xm)
        same = epochs[sl] == e
        est[sl] = np.where(same, est[sl], np.nan)
    return est


def pitman_grid(
    hx: np.ndarray, hd: np.ndarray, n: int, x_mean: float, scale: float, x_eval: float
) -> tuple[float, float]:
    """Posterior mean of the envelope line at ``x_eval`` and of its slope (flat priors,
    Exp(``scale``) excesses)
    by numerical integration over the slope: p(b) ~ exp(n g(b) / scale) with
    g(b) = min_j(hd_j - b (hx_j - x_mean)), and the offset an Exp(scale / n) below g(b).
    Written independently of ``envelope_posterior`` (closed form) on purpose."""
    u = hx - x_mean
    if u.size < 2:
        return float(hd[0]) - scale / n, 0.0
    k = min(max(int(np.searchsorted(u, 0.0)) - 1, 0), u.size - 2)
    b0 = (hd[k + 1] - hd[k]) / (hx[k + 1] - hx[k])  # the mode: the LP optimum
    left = b0 - np.geomspace(1e-6, 60.0, 300)[::-1] * scale / (n * max(-u[0], 1e-9))
    right = b0 + np.geomspace(1e-6, 60.0, 300) * scale / (n * max(u[-1], 1e-9))
    b = np.concatenate([left, [b0], right])
    g = np.min(hd[None, :] - b[:, None] * u[None, :], axis=1)
    logp = n * g / scale
    p = np.exp(logp - logp.max())
    line = g + b * (x_eval - x_mean)
    mass = np.trapezoid(p, b)
    return float(np.trapezoid(p * line, b) / mass) - scale / n, float(np.trapezoid(p * b, b) / mass)


def run_bound(sc: Scenario, max_evals: int = 3000) -> np.ndarray:
    """The best any causal estimator can do at every offset and drift: the Pitman
    (minimum-risk equivariant) estimator of the line, told the true delay law
    (Exp(jitter) above the fixed latency) and the true clock epochs, fed every packet.
    Under translation of the data by any line its risk is constant, and by the Hunt-Stein
    theorem no estimator has a lower worst-case mean squared error. NaN before the
    warm-up and between the (at most ``max_evals``, evenly spaced) packets evaluated.
    Only for scenarios whose truth is one line per epoch (``BOUND_SCENARIOS``)."""
    est = np.full_like(sc.t_local, np.nan)
    epochs = sc.epochs if sc.epochs is not None else np.zeros(sc.t_local.size, dtype=int)
    hx: list[float] = []
    hd: list[float] = []
    n, x_sum, ep_cur = 0, 0.0, -1
    every = max(1, math.ceil(sc.batches.size / max_evals))
    for j, sl in enumerate(sc.batch_slices()):
        last = sl.stop - 1
        if epochs[last] != ep_cur:
            hx, hd, n, x_sum, ep_cur = [], [], 0, 0.0, int(epochs[last])
        x_last = float(sc.t_local[last])
        push_lower_hull(hx, hd, x_last, float(sc.t_arrival[last] - sc.fixed_latency - x_last))
        n += 1
        x_sum += x_last
        if sc.t_true[last] < T0 + WARMUP_S or j % every:
            continue
        hxa, hda = np.array(hx), np.array(hd)
        x = sc.t_local[sl]
        off, slope = pitman_grid(hxa - hxa[0], hda - hda[0], n, x_sum / n - hxa[0], sc.jitter, x_last - hxa[0])
        off += hda[0]
        same = epochs[sl] == ep_cur
        est[sl] = np.where(same, x + off + slope * (x - x_last), np.nan)
    return est


def run_refined(sc: Scenario) -> np.ndarray:
    """Our non-causal ``refine()`` after seeing everything, per clock epoch."""
    m = ClockModel(fixed_latency=sc.fixed_latency)
    for sl in sc.batch_slices():
        m.update(sc.t_local[sl], sc.t_arrival[sl])
    ref = m.refine()
    epochs = sc.epochs if sc.epochs is not None else np.zeros(sc.t_local.size, dtype=int)
    est = np.empty_like(sc.t_local)
    for e in np.unique(epochs):
        sel = epochs == e
        est[sel] = ref.to_host(sc.t_local[sel], epoch=int(e) if len(ref.epochs) > int(e) else -1)
    return est


def rms(e: np.ndarray) -> float:
    e = e[np.isfinite(e)]
    return float(np.sqrt(np.mean(np.square(e)))) if e.size else math.nan


def recovery_time(sc: Scenario, err: np.ndarray, t_event: float, tol: float = 5e-4) -> float:
    """Seconds after ``t_event`` until |error| stays below ``tol`` for the rest of the run."""
    after = sc.t_true >= t_event
    bad = np.flatnonzero(after & (np.abs(err) >= tol))
    if bad.size == 0:
        return 0.0
    return float(sc.t_true[bad[-1]] - t_event)


@dataclass
class Row:
    name: str
    description: str
    ours: float
    kalman: float
    lp: float
    causal_lp: float
    bound: float
    refined: float
    coverage: float
    sigma_ratio: float
    recovery: float | None
    q: float
    seconds: float
    n: int
    ratios: dict[str, float] = field(default_factory=dict)  # median over seeds of per-seed ratios

    def ratio(self, a: str, b: str) -> float:
        return self.ratios.get(f"{a}/{b}", getattr(self, a) / getattr(self, b))


def evaluate_one(name: str, duration: float, seed: int) -> Row:
    sc = SCENARIOS[name](seed=seed, duration=duration)
    mask = sc.t_true >= T0 + WARMUP_S
    t = time.perf_counter()
    est, unc = run_ours(sc)
    seconds = time.perf_counter() - t
    err = est - sc.t_true
    kal, q = best_seed_kalman(sc, mask)
    lp = run_lp(sc)
    clp = run_causal_lp(sc)
    bound = run_bound(sc) if name in BOUND_SCENARIOS else np.full_like(sc.t_local, np.nan)
    ref = run_refined(sc)
    e = err[mask]
    within = np.abs(e) <= 2 * unc[mask]
    rec = None
    for key in ("reset", "change"):
        if key in sc.events:
            rec = recovery_time(sc, err, sc.events[key])
    return Row(
        name, sc.description, rms(e), rms((kal - sc.t_true)[mask]), rms((lp - sc.t_true)[mask]),
        rms((clp - sc.t_true)[mask]), rms((bound - sc.t_true)[mask]), rms((ref - sc.t_true)[mask]),
        float(within.mean()), float(np.median(unc[mask]) / max(rms(e), 1e-12)), rec, q, seconds, sc.t_local.size,
    )  # fmt: skip


def evaluate(name: str, duration: float, seeds: int) -> Row:
    """Median of each metric over ``seeds`` independent runs (recovery: the worst)."""
    runs = [evaluate_one(name, duration, 100 * k + 1) for k in range(seeds)]
    med = lambda attr: float(np.median([getattr(r, attr) for r in runs]))  # noqa: E731
    recs = [r.recovery for r in runs if r.recovery is not None]
    pairs = [("kalman", "ours"), ("ours", "lp"), ("ours", "bound"), ("bound", "lp"), ("ours", "causal_lp"),
             ("refined", "lp")]  # fmt: skip
    ratios = {f"{a}/{b}": float(np.median([getattr(r, a) / getattr(r, b) for r in runs])) for a, b in pairs}
    return Row(
        name, runs[0].description, med("ours"), med("kalman"), med("lp"), med("causal_lp"), med("bound"),
        med("refined"), med("coverage"), med("sigma_ratio"), max(recs) if recs else None, runs[0].q,
        sum(r.seconds for r in runs), sum(r.n for r in runs), ratios,
    )  # fmt: skip


def table(rows: list[Row]) -> str:
    """Markdown table: RMS values are medians over seeds, ratios medians of per-seed ratios."""
    head = (
        "| scenario | ours, causal (µs) | (a) seed Kalman (µs) | (b) LP offline (µs) | (a)/ours | ours/(b) "
        "| best causal (µs) | ours/best | best/(b) | causal LP (µs) | ours/causal LP | ours refine() (µs) "
        "| refine/(b) | within 2σ | median σ/RMS | recovery (s) |\n" + "|---" * 16 + "|"
    )
    lines = [head]
    for r in rows:
        rec = "" if r.recovery is None else f"{r.recovery:.2f}"
        has_bound = math.isfinite(r.bound)
        bound = (
            f"{r.bound * 1e6:.1f} | {r.ratio('ours', 'bound'):.2f} | {r.ratio('bound', 'lp'):.2f}"
            if has_bound
            else "— | — | —"
        )
        lines.append(
            f"| {r.name} | {r.ours * 1e6:.1f} | {r.kalman * 1e6:.1f} | {r.lp * 1e6:.1f} "
            f"| {r.ratio('kalman', 'ours'):.0f}× | {r.ratio('ours', 'lp'):.2f} | {bound} "
            f"| {r.causal_lp * 1e6:.1f} | {r.ratio('ours', 'causal_lp'):.2f} | {r.refined * 1e6:.1f} "
            f"| {r.ratio('refined', 'lp'):.2f} | {r.coverage * 100:.0f}% | {r.sigma_ratio:.2f} | {rec} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds per scenario")
    ap.add_argument("--scenario", action="append", default=None, choices=sorted(SCENARIOS))
    ap.add_argument("--seeds", type=int, default=5, help="independent runs per scenario (medians reported)")
    ap.add_argument("--markdown", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    rows = [evaluate(name, args.duration, args.seeds) for name in (args.scenario or list(SCENARIOS))]
    out = table(rows)
    print(out)
    print()
    for r in rows:
        print(f"{r.name:<13} {r.description}; {r.n} samples, ours {r.n / r.seconds / 1e3:.0f} k samples/s "
              f"(batched by delivery); seed Kalman best q={r.q:g}")  # fmt: skip
    ble = next((r for r in rows if r.name == "ble"), None)
    ok = True
    if ble:
        infeasible = ble.ratio("bound", "lp") > 2.0
        checks = [
            ("BLE-like RMS <= 0.1 ms", ble.ours <= 1e-4, True),
            ("BLE-like >= 40x better than the seed Kalman", ble.ratio("kalman", "ours") >= 40, True),
            ("BLE-like within 2x of the offline LP (causal vs offline)", ble.ratio("ours", "lp") <= 2, not infeasible),
            ("BLE-like within 1.25x of the best possible causal estimate", ble.ratio("ours", "bound") <= 1.25, True),
            ("BLE-like within 2x of the causal LP", ble.ratio("ours", "causal_lp") <= 2, True),
            ("BLE-like refine() within 2x of the offline LP", ble.ratio("refined", "lp") <= 2, True),
        ]
        reo = next((r for r in rows if r.name == "reordered"), None)
        if reo is not None:
            checks.append(
                ("reordered deliveries within 1.25x of the same data in order", reo.ours <= 1.25 * ble.ours, True)
            )
        reset = next((r for r in rows if r.name == "reset"), None)
        if reset and reset.recovery is not None:
            checks.append(("reset recovered within 2 s", reset.recovery <= 2.0, True))
        best = ble.ratio("bound", "lp")
        for label, passed, counts in checks:
            note = "" if passed or counts else f" (infeasible: the best causal estimate is {best:.2f}x)"
            print(f"[{'PASS' if passed else 'FAIL'}] {label}{note}")
            ok &= passed or not counts
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(out + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
