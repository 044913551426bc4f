"""Clock domains: sensors sharing a clock are mapped through one model (or a measured offset)."""

from __future__ import annotations

import numpy as np

from benchmarks.clock_scenarios import T0, ble
from sensorium_desktop.core.clockdomain import ClockDomains, domain_id, fit_domain, offset_trend
from sensorium_desktop.core.samples import SampleBatch, SensorInfo
from sensorium_desktop.core.timemap import TimeMap


def _info(sid: str, device: str, **kw) -> SensorInfo:
    return SensorInfo(sid, "ecg", device, has_clock=True, node_id="n1", **kw)


def test_attributes_of_one_device_share_a_domain_lsl_streams_share_the_lsl_domain() -> None:
    a, b = _info("dev-ecg", "dev"), _info("dev-acc", "dev")
    other = _info("other-ecg", "other")
    l1 = _info("lsl-eeg", "lsl-eeg", clock_domain="lsl", clock_offset=1.0e9)
    l2 = _info("lsl-mk", "lsl-mk", clock_domain="lsl", clock_offset=1.0e9)
    assert domain_id(a) == domain_id(b) != domain_id(other)
    assert domain_id(l1) == domain_id(l2) == "n1/lsl"
    clockless = SensorInfo("hr", "hr", "dev", node_id="n1")
    assert domain_id(clockless) != domain_id(a)


def test_interleaved_sensors_of_one_clock_feed_one_model_without_resets() -> None:
    """ECG and accelerometer batches of one device interleave (each in its own arrival
    order): their local times step back between sensors, which is not a reboot."""
    sc = ble(seed=4, duration=40.0)
    domains = TimeMap()
    ecg = _info("dev-ecg", "dev", fixed_latency=sc.fixed_latency)
    acc = _info("dev-acc", "dev", fixed_latency=sc.fixed_latency)
    domains.register(ecg)
    domains.register(acc)
    err = []
    rng = np.random.default_rng(0)
    for sl in sc.batch_slices():
        # the same packets seen by two sensors, the second's delivered up to 150 ms later
        x, y = sc.t_local[sl], sc.t_arrival[sl]
        for sid, delay in (("dev-ecg", 0.0), ("dev-acc", rng.uniform(0, 0.15))):
            t = domains.map_batch(SampleBatch(sid, "ecg", y + delay, np.zeros((x.size, 1)), x))
            if sc.t_true[sl][0] > T0 + 10:
                err.append(np.abs(t - sc.t_true[sl]).max())
    model = domains.model("dev-ecg")
    assert model is domains.model("dev-acc")
    assert model.resets == 0 and model.late > 0
    assert np.sqrt(np.mean(np.square(err))) < 2e-4


def test_measured_domain_maps_equal_stamps_to_equal_times_and_keeps_spacing() -> None:
    domains = TimeMap()
    eeg = _info("lsl-eeg", "lsl-eeg", clock_domain="lsl", clock_offset=1.7e9 + 0.123456, clock_sigma=1e-6)
    mk = _info("lsl-mk", "lsl-mk", clock_domain="lsl", clock_offset=1.7e9 + 0.123456, clock_sigma=1e-6)
    domains.register(eeg)
    domains.register(mk)
    stamps = 5000.0 + np.arange(2500) / 250.0
    rng = np.random.default_rng(1)
    arrival = stamps + 1.7e9 + 0.123456 + rng.exponential(0.01, stamps.size)  # jitter is not fitted
    t_eeg = np.concatenate(
        [domains.map_batch(SampleBatch("lsl-eeg", "eeg", arrival[a : a + 25], np.zeros((25, 1)), stamps[a : a + 25]))
         for a in range(0, stamps.size, 25)]
    )  # fmt: skip
    t_mk = domains.map_batch(SampleBatch("lsl-mk", "marker", arrival[::250] + 0.05, np.zeros((10, 1)), stamps[::250]))
    np.testing.assert_array_equal(t_mk, t_eeg[::250])
    np.testing.assert_allclose(np.diff(t_eeg), 1 / 250.0, atol=1e-6)
    assert domains.model("lsl-eeg").drift == 0.0


def test_fit_domain_over_a_recording_of_two_interleaved_sensors() -> None:
    sc = ble(seed=9, duration=60.0)
    half = sc.t_local.size // 2
    idx = np.arange(sc.t_local.size)
    a, b = idx % 2 == 0, idx % 2 == 1
    model, refined = fit_domain([(sc.t_local[a], sc.t_arrival[a]), (sc.t_local[b], sc.t_arrival[b] + 0.05)],
                                sc.fixed_latency)  # fmt: skip
    assert model.resets == 0 and len(refined.epochs) == 1
    settled = sc.t_true > T0 + 5
    err = refined.to_host(sc.t_local[settled]) - sc.t_true[settled]
    assert np.sqrt(np.mean(err**2)) < 5e-5
    assert half > 0


def test_sub_millisecond_steps_back_across_bin_edges_keep_the_bins_in_order() -> None:
    """Two sensors of one clock whose samples interleave by less than the reset threshold
    (0.5 ms here) step back across bin edges: the model must keep its bins sorted (the hull
    assumes it) and treat the samples behind the open bin as late ones."""
    sc = ble(seed=12, duration=60.0)
    domains = TimeMap()
    domains.register(_info("dev-a", "dev", fixed_latency=sc.fixed_latency))
    domains.register(_info("dev-b", "dev", fixed_latency=sc.fixed_latency))
    for sl in sc.batch_slices():
        x, y = sc.t_local[sl], sc.t_arrival[sl]
        domains.map_batch(SampleBatch("dev-a", "ecg", y, np.zeros((x.size, 1)), x))
        domains.map_batch(SampleBatch("dev-b", "ecg", y + 1e-4, np.zeros((x.size, 1)), x - 5e-4))
    model = domains.model("dev-a")
    bins = model.epochs[-1].bins.data[:, 0]
    assert np.all(np.diff(bins) > 0)
    assert model.resets == 0
    settled = sc.t_true > T0 + 10
    err = domains.to_host("dev-a", sc.t_local[settled]) - sc.t_true[settled]
    assert np.sqrt(np.mean(err**2)) < 1e-4


def test_offset_trend_is_a_constant_unless_the_drift_is_measurable() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(0.0, 60.0, 5.0)
    noisy = 1e-3 + rng.normal(0, 20e-6, t.size)  # same host: the spread is probe noise
    t_ref, value, slope = offset_trend(t, noisy, np.full(t.size, 20e-6))
    assert slope == 0.0 and abs(value - 1e-3) < 20e-6 and t_ref == t[-1]
    drifting = 1e-3 + 30e-6 * t + rng.normal(0, 5e-6, t.size)  # another PC's clock, 30 ppm
    _, value, slope = offset_trend(t, drifting)
    assert abs(slope - 30e-6) < 2e-6 and abs(value - (1e-3 + 30e-6 * t[-1])) < 10e-6
    assert offset_trend(t[:2], drifting[:2])[2] == 0.0  # too few points for a slope


def test_late_counts_a_sensor_reordered_not_two_sensors_interleaving() -> None:
    """The sim eye tracker's late count grew by thousands a minute: gaze and aperture
    batches interleave in device time, which is not lateness."""
    domains = ClockDomains()
    gaze, aperture = _info("eyes-gaze", "eyes"), _info("eyes-aperture", "eyes")
    domains.register(gaze)
    domains.register(aperture)
    t = np.arange(0.0, 10.0, 0.005)
    for k in range(0, t.size, 100):  # gaze batch, then the aperture batch of the same second
        domains.observe("eyes-gaze", t[k : k + 100], t[k : k + 100] + 1000.01)
        domains.observe("eyes-aperture", t[k : k + 100 : 4], t[k : k + 100 : 4] + 1000.02)
    dom = domains.domain("eyes-gaze")
    assert domains.late(dom) == 0
    late = np.array([10.0, 10.010, 10.005, 10.015])  # one sample of gaze delivered after a later one
    domains.observe("eyes-gaze", late, late + 1000.01)
    assert domains.late(dom) == 1


def test_a_new_run_of_the_node_fits_its_clock_afresh() -> None:
    """A restarted device's clock starts again from 0: with the old model it showed 94 resets
    and a sigma of 180 s; a new clock run (the node's start) starts a fresh fit."""
    domains = TimeMap()
    first = _info("dev-ecg", "dev", extra={"clock_run": 100.0})
    domains.register(first)
    t = np.arange(0.0, 60.0, 0.01)
    for k in range(0, t.size, 50):
        domains.observe("dev-ecg", t[k : k + 50], t[k : k + 50] + 5000.0 + 0.004)
    assert domains.model("dev-ecg").ready
    domains.register(_info("dev-ecg", "dev", extra={"clock_run": 200.0}))  # the node started again
    fresh = domains.model("dev-ecg")
    assert not fresh.ready and fresh.resets == 0
    for k in range(0, 2000, 50):  # the device counts from 0 again, 100 s later on the host
        domains.observe("dev-ecg", t[k : k + 50], t[k : k + 50] + 5100.0 + 0.004)
    m = domains.model("dev-ecg")
    assert m.resets == 0 and m.uncertainty <= 2e-3
    assert abs(float(domains.to_host("dev-ecg", 10.0)) - 5110.0) < 0.01


def test_a_looping_clip_with_late_analyses_of_its_frames_resets_once_per_loop() -> None:
    """A pose source plays a 1 s clip in a loop: the file position (its device time) steps back
    every second, and each frame's skeleton (the same time pair) is delivered one frame later.
    A skeleton of the old loop arriving after the new loop's first frame once sent the clock
    model round in a loop forever (found recording ``pose:camera:clip.avi?loop=1``)."""
    rng = np.random.default_rng(5)
    d = ClockDomains()
    for sid, att in (("pose-a-video", "video"), ("pose-a-skeleton", "skeleton")):
        d.register(SensorInfo(sensor_id=sid, attribute=att, device_id="pose-a", has_clock=True, channel_names=("a",)))
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(300):
        x, y = np.array([(i % 30) / 30.0]), np.array([1000.0 + i / 30.0 + 0.002 * rng.random()])
        d.observe("pose-a-video", x, y)
        for p in pending:
            d.observe("pose-a-skeleton", *p)
        pending = [(x, y)] if i % 3 else []
    m = d.model("pose-a-video")
    assert m.resets == 9 and len(m.epochs) == 10
