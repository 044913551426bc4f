"""SyncCore (clock per sensor + grouping) and the Kuramoto synchrony measures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.clock_scenarios import T0
from sensorium_desktop.core.kuramoto import (
    SyncMeter,
    analytic_phase,
    hilbert_phase,
    minmax_phase,
    order_parameter,
    order_parameter_series,
)
from sensorium_desktop.core.samples import SensorInfo
from sensorium_desktop.core.sync import SyncCore
from sensorium_desktop.core.timemap import UNFITTED_POLICY, TimeMap


def test_sync_core_maps_each_sensor_and_groups_across_clocks() -> None:
    rng = np.random.default_rng(1)
    core = SyncCore()
    events = T0 + np.arange(1.0, 60.0, 0.5)
    clocks = {"cam": (5000.0, 20e-6, 0.030), "imu": (12.0, -40e-6, 0.008)}
    for sid, (origin, drift, delay) in clocks.items():
        core.add_sensor(sid, fixed_latency=delay)
        t_true = T0 + np.arange(0, 60, 0.01)
        t_local = origin + (t_true - T0) * (1 + drift)
        arrival = t_true + delay + rng.exponential(0.002, t_true.size)
        for k in range(0, t_true.size, 20):
            core.observe(sid, t_local[k : k + 20], arrival[k : k + 20])
    for sid, (origin, drift, _) in clocks.items():
        m = core.models[sid]
        assert m.drift * 1e6 == pytest.approx(drift * 1e6, abs=2.0)
        x = origin + 30.0 * (1 + drift)
        assert abs(float(core.to_host(sid, x, T0 + 31.0)) - (T0 + 30.0)) < 0.5e-3  # fitted: arrival not used
    ids, local, arrival = [], [], []
    for sid, (origin, drift, delay) in clocks.items():
        ids += [sid] * events.size
        local += list(origin + (events - T0) * (1 + drift))
        arrival += list(events + delay + 0.004)
    groups = core.group(ids, local, 0.001, arrival)
    pairs = [g for g in groups if g.sensors == {"cam", "imu"}]
    assert len(pairs) == events.size
    assert all(abs(g.t_global - e) < 2e-3 for g, e in zip(pairs, events, strict=True))
    state = core.state()
    assert set(state) == {"cam", "imu"} and "offset_variance" in state["cam"]


def test_a_clock_not_fitted_yet_maps_arrival_minus_its_fixed_latency() -> None:
    """The one stated policy, for a sensor never seen and one seen but not fitted."""
    assert UNFITTED_POLICY.startswith("arrival time minus the sensor's fixed latency")
    core = SyncCore()
    assert float(core.to_host("new", 12.5, 1000.25)) == 1000.25
    assert math.isnan(float(core.time.to_host("new", 12.5)))  # no arrival: not mappable
    assert core.uncertainty("new") == math.inf
    tm = TimeMap()
    tm.register(SensorInfo("cam-video", "video", "cam", node_id="n1", fixed_latency=0.030))
    assert float(tm.to_host("cam-video", 5.0, 2000.0)) == pytest.approx(1999.97)
    assert float(tm.to_global("n1", 1999.97)) == 1999.97  # host offset not known: the host clock
    tm.set_host_offset("n1", 0.5, 1e-4)
    assert float(tm.to_global("n1", 1999.97)) == pytest.approx(2000.47)
    assert float(tm.to_host_from_global("n1", 2000.47)) == pytest.approx(1999.97)


def test_order_parameter() -> None:
    assert order_parameter(np.array([0.3, 0.3, 0.3])) == pytest.approx(1.0)
    assert order_parameter(np.array([0.0, math.pi])) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(order_parameter(np.array([1.0])))
    series = order_parameter_series(np.array([[0.0, 0.0, np.nan], [0.0, math.pi, 1.0]]))
    assert series[0] == pytest.approx(1.0) and series[1] == pytest.approx(0.0, abs=1e-12) and np.isnan(series[2])


def test_minmax_phase_follows_sensocto() -> None:
    rising = np.linspace(0, 10, 20)
    assert minmax_phase(rising) == pytest.approx(math.pi)  # at the maximum
    falling = rising[::-1]
    assert minmax_phase(falling) == pytest.approx(2 * math.pi)  # minimum, falling → 2π − 0
    assert minmax_phase(np.full(20, 5.0)) is None  # range < 2 units


def test_hilbert_phase_tracks_breathing_and_synchrony() -> None:
    t = np.arange(0, 60, 0.04)
    a = 500 + 100 * np.sin(2 * math.pi * 0.25 * t) + 30 * t / 60  # drift in offset
    b = 20 * np.sin(2 * math.pi * 0.25 * t + 0.4)  # same rhythm, other scale, small lag
    c = np.sin(2 * math.pi * 0.31 * t)  # different rate
    grid, pa = hilbert_phase(t, a)
    _, pb = hilbert_phase(t, b)
    _, pc = hilbert_phase(t, c)
    inner = slice(50, -50)
    r_sync = np.nanmean(order_parameter_series(np.vstack([pa, pb])[:, inner]))
    r_async = np.nanmean(order_parameter_series(np.vstack([pa, pc])[:, inner]))
    assert r_sync > 0.95 and r_async < 0.75
    assert grid.size == pa.size
    # the analytic phase of a cosine advances linearly
    ph = np.unwrap(analytic_phase(np.cos(2 * math.pi * 0.5 * np.arange(0, 20, 0.05))))
    slope = np.polyfit(np.arange(ph.size)[40:-40], ph[40:-40], 1)[0]
    assert slope == pytest.approx(2 * math.pi * 0.5 * 0.05, rel=0.01)
    assert hilbert_phase(t[:10], a[:10])[0].size == 0  # too short for the band


def test_sync_meter_smooths_like_sensocto() -> None:
    m = SyncMeter()
    assert m.update(np.array([0.0, 0.0])) == pytest.approx(1.0)
    assert m.update(np.array([0.0, math.pi])) == pytest.approx(0.85)
    assert m.percent == pytest.approx(85.0)
    assert m.update(np.array([1.0])) == pytest.approx(0.85)  # not enough sensors: unchanged
