"""Synthetic timing scenarios with known truth: device clocks with offset and drift, samples
delivered in packets with one-sided delays (fixed + exponential jitter + rare spikes).

Each scenario returns the per-sample local time, arrival time and true time (all seconds),
plus the arrival batches (samples delivered together) so estimators can be fed causally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

T0 = 1_800_000_000.0


@dataclass
class Scenario:
    name: str
    description: str
    t_local: np.ndarray
    t_arrival: np.ndarray
    t_true: np.ndarray
    fixed_latency: float
    jitter: float
    batches: np.ndarray  # start index of each delivery (sorted), len = n_batches
    events: dict[str, float] = field(default_factory=dict)  # e.g. {"reset": t_true of reset}
    epochs: np.ndarray | None = None  # epoch id per sample (for the LP baseline)

    def batch_slices(self) -> list[slice]:
        ends = [*self.batches[1:].tolist(), self.t_local.size]
        return [slice(a, b) for a, b in zip(self.batches.tolist(), ends, strict=True)]


def _deliver(
    t_true: np.ndarray,
    rng: np.random.Generator,
    fixed: float,
    jitter: float,
    max_burst: int,
    spike_prob: float = 0.0,
    spike_range: tuple[float, float] = (0.03, 0.1),
) -> tuple[np.ndarray, np.ndarray]:
    """Group samples into packets of 1..max_burst and stamp FIFO arrival times."""
    n = t_true.size
    sizes = rng.integers(1, max_burst + 1, size=n)
    ends = np.cumsum(sizes)
    ends = ends[ends < n]
    ends = np.append(ends, n)
    last = t_true[ends - 1]
    delay = fixed + rng.exponential(jitter, last.size) if jitter > 0 else np.full(last.size, fixed)
    if spike_prob > 0:
        spikes = rng.random(last.size) < spike_prob
        delay = delay + spikes * rng.uniform(*spike_range, last.size)
    arrival = np.maximum.accumulate(last + delay)
    starts = np.concatenate([[0], ends[:-1]])
    per_sample = np.repeat(arrival, ends - starts)
    return per_sample, starts


def _regular(
    rate: float, duration: float, drift: float, origin: float, t_start: float = T0
) -> tuple[np.ndarray, np.ndarray]:
    """Samples at ``rate`` Hz on the device clock: (t_local, t_true)."""
    k = np.arange(int(duration * rate * (1 + drift)))
    t_local = origin + k / rate
    t_true = t_start + (k / rate) / (1.0 + drift)
    return t_local, t_true


def ble(seed: int = 1, duration: float = 120.0, drift_ppm: float = 50.0) -> Scenario:
    rng = np.random.default_rng(seed)
    drift = drift_ppm * 1e-6
    t_local, t_true = _regular(130.0, duration, drift, origin=4321.5)
    arr, starts = _deliver(t_true, rng, 0.0075, 0.003, 10, 0.01)
    return Scenario("ble", f"BLE-like: 130 Hz, 7.5 ms + Exp(3 ms), 1% spikes 30-100 ms, {drift_ppm:+.0f} ppm, "
                    "bursts <= 10", t_local, arr, t_true, 0.0075, 0.003, starts)  # fmt: skip


def ble_wander(seed: int = 8, duration: float = 120.0) -> Scenario:
    """BLE-like on a realistic crystal: +50 ppm, warming on the body by 2 ppm with a 120 s
    time constant, plus random-walk frequency noise of 1e-8 per sqrt(s)."""
    rng = np.random.default_rng(seed)
    rate = 130.0
    k = np.arange(int(duration * rate))
    t = k / rate
    freq = 50e-6 + 2e-6 * (1 - np.exp(-t / 120.0)) + np.cumsum(rng.normal(0, 1e-8 / np.sqrt(rate), t.size))
    t_local = 4321.5 + np.cumsum(np.concatenate([[0.0], (1 + freq[:-1]) / rate]))
    t_true = T0 + t
    arr, starts = _deliver(t_true, rng, 0.0075, 0.003, 10, 0.01)
    return Scenario("ble_wander", "BLE-like on a warming crystal: +50 ppm, +2 ppm over ~2 min, 1e-8/sqrt(s) "
                    "random-walk FM", t_local, arr, t_true, 0.0075, 0.003, starts)  # fmt: skip


def usb(seed: int = 2, duration: float = 120.0) -> Scenario:
    rng = np.random.default_rng(seed)
    drift = -20e-6
    t_local, t_true = _regular(1000.0, duration, drift, origin=12.0)
    arr, starts = _deliver(t_true, rng, 0.001, 0.0002, 2)
    return Scenario(
        "usb", "USB serial: 1 kHz, 1 ms + Exp(0.2 ms), -20 ppm", t_local, arr, t_true, 0.001, 0.0002, starts
    )


def camera(seed: int = 3, duration: float = 120.0) -> Scenario:
    rng = np.random.default_rng(seed)
    drift = 10e-6
    t_local, t_true = _regular(30.0, duration, drift, origin=987654.0)
    arr, starts = _deliver(t_true, rng, 0.030, 0.008, 1, 0.02, (0.02, 0.06))
    return Scenario(
        "camera", "camera: 30 fps, 30 ms + Exp(8 ms), 2% spikes, +10 ppm", t_local, arr, t_true, 0.030, 0.008, starts
    )


def reset(seed: int = 4, duration: float = 120.0) -> Scenario:
    """BLE-like; the device reboots at 60 s: its clock restarts from 0.5 s."""
    rng = np.random.default_rng(seed)
    drift = -35e-6
    t_local, t_true = _regular(130.0, duration, drift, origin=2000.0)
    cut = int(np.searchsorted(t_true, T0 + 60.0))
    t_local = t_local.copy()
    t_local[cut:] = 0.5 + (t_true[cut:] - t_true[cut]) * (1 + drift)
    arr, starts = _deliver(t_true, rng, 0.0075, 0.003, 10, 0.01)
    epochs = (np.arange(t_local.size) >= cut).astype(int)
    s = Scenario("reset", "BLE-like, device clock reset at 60 s (t_local restarts at 0.5 s)", t_local, arr, t_true,
                 0.0075, 0.003, starts, {"reset": float(t_true[cut])}, epochs)  # fmt: skip
    return s


def rate_change(seed: int = 5, duration: float = 120.0) -> Scenario:
    """BLE-like; at 60 s the sensor switches from 130 Hz to 52 Hz (and smaller bursts)."""
    rng = np.random.default_rng(seed)
    drift = 25e-6
    tl1, tt1 = _regular(130.0, 60.0, drift, origin=300.0)
    tl2, tt2 = _regular(52.0, duration - 60.0, drift, origin=300.0 + 60.0 * (1 + drift), t_start=T0 + 60.0)
    t_local, t_true = np.concatenate([tl1, tl2]), np.concatenate([tt1, tt2])
    a1, s1 = _deliver(tt1, rng, 0.0075, 0.003, 10, 0.01)
    a2, s2 = _deliver(tt2, rng, 0.0075, 0.003, 4, 0.01)
    arr = np.maximum.accumulate(np.concatenate([a1, a2]))
    starts = np.concatenate([s1, s2 + tt1.size])
    return Scenario("rate_change", "BLE-like, sample rate 130 → 52 Hz at 60 s", t_local, arr, t_true, 0.0075, 0.003,
                    starts, {"change": T0 + 60.0})  # fmt: skip


def drift_change(seed: int = 6, duration: float = 120.0) -> Scenario:
    """BLE-like; the device warms up at 60 s: drift steps from +30 to -10 ppm."""
    rng = np.random.default_rng(seed)
    d1, d2 = 30e-6, -10e-6
    tl1, tt1 = _regular(130.0, 60.0, d1, origin=50.0)
    tl2, tt2 = _regular(
        130.0, duration - 60.0, d2, origin=float(tl1[-1] + 1 / 130.0), t_start=float(tt1[-1] + (1 / 130.0) / (1 + d1))
    )
    t_local, t_true = np.concatenate([tl1, tl2]), np.concatenate([tt1, tt2])
    arr, starts = _deliver(t_true, rng, 0.0075, 0.003, 10, 0.01)
    return Scenario("drift_change", "BLE-like, drift +30 → -10 ppm at 60 s", t_local, arr, t_true, 0.0075, 0.003,
                    starts, {"change": T0 + 60.0})  # fmt: skip


def reorder_deliveries(sc: Scenario, rng: np.random.Generator, fraction: float, max_delay: float) -> Scenario:
    """``sc`` with ``fraction`` of its deliveries held back by 0 to ``max_delay`` s, so they
    arrive after later ones (as a transport that reorders, or two sensors of one clock
    interleaved); samples are put in delivery order."""
    slices = sc.batch_slices()
    arrival = np.array([sc.t_arrival[s.stop - 1] for s in slices])
    late = rng.random(arrival.size) < fraction
    arrival = arrival + late * rng.uniform(0.0, max_delay, arrival.size)
    order = np.argsort(arrival, kind="stable")
    idx = np.concatenate([np.arange(slices[k].start, slices[k].stop) for k in order.tolist()])
    sizes = np.array([slices[k].stop - slices[k].start for k in order.tolist()])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    t_arrival = np.repeat(arrival[order], sizes)
    return Scenario(f"{sc.name}_reordered", sc.description, sc.t_local[idx], t_arrival, sc.t_true[idx],
                    sc.fixed_latency, sc.jitter, starts, dict(sc.events),
                    None if sc.epochs is None else sc.epochs[idx])  # fmt: skip


def reordered(seed: int = 9, duration: float = 120.0) -> Scenario:
    """The BLE-like scenario of the same seed with 5 % of its deliveries arriving late by
    up to 200 ms, after later ones (t_local steps back by up to 200 ms)."""
    sc = reorder_deliveries(ble(seed=seed, duration=duration), np.random.default_rng(seed + 1000), 0.05, 0.2)
    sc.name = "reordered"
    sc.description = "BLE-like, 5 % of deliveries late by 0-200 ms (arrive after later ones)"
    return sc


def no_clock(seed: int = 7, duration: float = 120.0) -> Scenario:
    """A sensor without its own clock: t_local == t_arrival (USB-like delays)."""
    rng = np.random.default_rng(seed)
    _t_local, t_true = _regular(250.0, duration, 0.0, origin=0.0)
    arr, starts = _deliver(t_true, rng, 0.001, 0.0005, 1)
    return Scenario("no_clock", "no device clock (t_local = t_arrival), 250 Hz, 1 ms + Exp(0.5 ms)", arr.copy(), arr,
                    t_true, 0.001, 0.0005, starts)  # fmt: skip


SCENARIOS = {
    "ble": ble,
    "ble_wander": ble_wander,
    "usb": usb,
    "camera": camera,
    "reset": reset,
    "rate_change": rate_change,
    "drift_change": drift_change,
    "no_clock": no_clock,
    "reordered": reordered,
}
