"""ClockModel on small deterministic cases (accuracy targets live in benchmarks/)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.clock_scenarios import T0, ble, camera, no_clock, reset
from sensorium_desktop.core.clock import ClockModel, bin_minima, lower_hull


def feed(m: ClockModel, sc) -> tuple[np.ndarray, np.ndarray]:
    est = np.empty_like(sc.t_local)
    unc = np.empty_like(sc.t_local)
    for sl in sc.batch_slices():
        m.update(sc.t_local[sl], sc.t_arrival[sl])
        est[sl] = m.to_global(sc.t_local[sl])
        unc[sl] = m.uncertainty
    return est, unc


def test_lower_hull_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = np.sort(rng.uniform(0, 10, 40))
        y = rng.exponential(1.0, 40) + 0.3 * x
        idx = lower_hull(x, y)
        # every point is on or above every hull edge's line within the edge's x-range
        for a, b in itertools.pairwise(idx):
            slope = (y[b] - y[a]) / (x[b] - x[a])
            line = y[a] + slope * (x - x[a])
            assert np.all(y >= line - 1e-9)
        assert idx[0] == 0 and idx[-1] == x.size - 1


def test_recovers_offset_and_drift_with_one_sided_delays() -> None:
    sc = ble(seed=11, duration=60.0, drift_ppm=50.0)
    m = ClockModel(fixed_latency=sc.fixed_latency)
    est, _ = feed(m, sc)
    assert m.drift * 1e6 == pytest.approx(50.0, abs=1.0)
    late = sc.t_true >= T0 + 30
    assert np.sqrt(np.mean((est - sc.t_true)[late] ** 2)) < 100e-6  # mean delay is 10 ms
    naive = sc.t_arrival - sc.fixed_latency
    assert np.sqrt(np.mean((naive - sc.t_true)[late] ** 2)) > 2e-3
    st_ = m.state()
    assert {"offset_mean", "offset_variance", "drift", "uncertainty", "alpha", "beta", "x0", "epoch"} <= set(st_)
    assert st_["offset_variance"] == pytest.approx(m.uncertainty**2)
    assert m.offset == pytest.approx(float(m.to_global(sc.t_local[-1])) - sc.t_local[-1], abs=1e-9)


def test_uncertainty_covers_the_error() -> None:
    sc = camera(seed=5, duration=60.0)
    est, unc = feed(ClockModel(fixed_latency=sc.fixed_latency), sc)
    late = sc.t_true >= T0 + 10
    err = np.abs(est - sc.t_true)[late]
    assert np.mean(err <= 2 * unc[late]) > 0.75
    assert np.median(unc[late]) < 20 * np.sqrt(np.mean(err**2))  # not absurdly pessimistic


def test_sensor_without_clock_is_identity_minus_fixed_latency() -> None:
    sc = no_clock(duration=10.0)
    m = ClockModel(fixed_latency=0.001, jitter_prior=0.5e-3)
    est, unc = feed(m, sc)
    assert np.array_equal(est, sc.t_arrival - 0.001)
    assert m.drift == 0.0 and unc[-1] == 0.5e-3


def test_clock_reset_is_detected_and_recovered_within_2s() -> None:
    sc = reset(seed=3, duration=90.0)
    m = ClockModel(fixed_latency=sc.fixed_latency)
    est, _ = feed(m, sc)
    assert m.epoch == 1 and m.resets == 1
    t_reset = sc.events["reset"]
    err = np.abs(est - sc.t_true)
    after = sc.t_true >= t_reset + 2.0
    assert err[after].max() < 1e-3
    assert np.sqrt(np.mean(err[after] ** 2)) < 0.1e-3
    assert m.drift * 1e6 == pytest.approx(-35.0, abs=2.0)
    # local times of the old epoch still map with the old epoch's line
    old = sc.t_local[(sc.t_true > T0 + 40) & (sc.t_true < t_reset - 1)]
    true_old = sc.t_true[(sc.t_true > T0 + 40) & (sc.t_true < t_reset - 1)]
    assert np.abs(m.to_global(old) - true_old).max() < 0.5e-3


def test_forward_step_starts_a_new_epoch_and_lone_glitches_do_not() -> None:
    rng = np.random.default_rng(2)
    m = ClockModel(fixed_latency=0.002)
    t = np.arange(0, 40, 0.01)
    x = 100.0 + t
    y = T0 + t + 0.002 + rng.exponential(0.0005, t.size)
    y[1500] -= 0.05  # one timestamp glitch 50 ms too early
    x[3000:] += 5.0  # device clock stepped forward by 5 s at t = 30 s
    for k in range(0, t.size, 10):
        m.update(x[k : k + 10], y[k : k + 10])
    assert m.glitches == 1
    assert m.epoch == 1
    assert abs(float(m.to_global(x[-1])) - (T0 + t[-1])) < 1e-3


def test_gaps_and_bursts() -> None:
    m = ClockModel(fixed_latency=0.001)
    rng = np.random.default_rng(4)
    for block_start in (0.0, 10.0, 70.0):  # a 50 s gap
        t = block_start + np.arange(0, 10, 1 / 100)
        x = 7.0 + t * (1 + 20e-6)
        # bursts of 10 samples share the arrival time of the last one
        arrival = T0 + t + 0.001 + rng.exponential(0.001, t.size)
        arrival = np.maximum.accumulate(np.repeat(arrival[9::10], 10))
        for k in range(0, t.size, 10):
            m.update(x[k : k + 10], arrival[k : k + 10])
    assert m.epoch == 0
    assert abs(float(m.to_global(x[-1])) - (T0 + t[-1] + 0.0)) < 0.2e-3
    assert m.drift * 1e6 == pytest.approx(20.0, abs=3.0)


def test_bad_input_is_rejected() -> None:
    m = ClockModel()
    with pytest.raises(ValueError, match="NaN"):
        m.update(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="equal length"):
        m.update(np.array([1.0]), np.array([1.0, 2.0]))
    assert math.isnan(float(m.to_global(1.0)))
    m.update(np.array([]), np.array([]))
    assert not m.ready


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(-200e-6, 200e-6))
def test_to_global_is_monotone(seed: int, drift: float) -> None:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 20, 500))
    x = 50.0 + t * (1 + drift)
    y = T0 + t + rng.exponential(0.003, t.size)
    m = ClockModel()
    for k in range(0, t.size, 25):
        m.update(x[k : k + 25], y[k : k + 25])
    q = np.sort(rng.uniform(40.0, 80.0, 200))
    g = m.to_global(q)
    assert np.all(np.diff(g) >= 0)


def test_refine_is_at_least_as_good_as_causal() -> None:
    sc = ble(seed=21, duration=60.0)
    m = ClockModel(fixed_latency=sc.fixed_latency)
    est, _ = feed(m, sc)
    ref = m.refine()
    late = sc.t_true >= T0 + 10
    causal = np.sqrt(np.mean((est - sc.t_true)[late] ** 2))
    refined = np.sqrt(np.mean((ref.to_global(sc.t_local) - sc.t_true)[late] ** 2))
    assert refined <= causal
    assert refined < 20e-6


@pytest.mark.parametrize("make", [ble, reset, no_clock])
def test_fit_on_bin_minima_equals_fit_on_every_sample(make) -> None:
    """Exports fit hour-long recordings on bin minima: the refined times must not change."""
    sc = make(5)
    full, fast = ClockModel(), ClockModel()
    for sl in sc.batch_slices():
        full.update(sc.t_local[sl], sc.t_arrival[sl])
    xb, yb = bin_minima(sc.t_local, sc.t_arrival, fast.bin_width / 4)
    assert xb.size < sc.t_local.size / 3
    for a in range(0, xb.size, 64):
        fast.update(xb[a : a + 64], yb[a : a + 64])
    assert fast.resets == full.resets
    rf, rq = full.refine(), fast.refine()
    epochs = np.clip(np.searchsorted(rf.epoch_starts(), sc.t_arrival, side="right") - 1, 0, len(rf.epochs) - 1)
    for k in range(len(rf.epochs)):
        mine = epochs == k
        diff = rf.to_global(sc.t_local[mine], k) - rq.to_global(sc.t_local[mine], k)
        assert np.max(np.abs(diff)) < 2e-6, f"epoch {k}"
