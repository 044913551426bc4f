"""Signal quality from a sensor's own history (core/quality.py): each rule on a real-looking
signal, the state machine (learning → good → bad with a reason) and its channel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensorium_desktop.core.quality import (
    BASELINE_WINDOWS,
    REASONS,
    SignalQuality,
    Verdict,
    anomaly_info,
    anomaly_row,
    anomaly_sensor_id,
)
from sensorium_desktop.core.samples import SensorInfo
from sensorium_desktop.recording.bids import _uniform

RATE = 256.0
HOP = 0.125


def _signal(t: np.ndarray, channels: int, rng: np.random.Generator) -> np.ndarray:
    phase = rng.uniform(0, 2 * math.pi, channels)
    return 20 * np.sin(2 * math.pi * 10 * t[:, None] + phase) + rng.normal(0, 3, (t.size, channels))


def _feed(q: SignalQuality, t0: float, seconds: float, make, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """Deliver ``seconds`` of ``make(t)`` every HOP s; the verdicts after each delivery."""
    verdicts = []
    for k in range(int(seconds / HOP)):
        t = t0 + k * HOP + np.arange(int(RATE * HOP)) / RATE
        v = make(t)
        if v is not None:
            q.update(t, v)
        verdicts.append((t[-1] + 1 / RATE - t0, q.assess(t[-1] + 1 / RATE)))
    return verdicts


@pytest.fixture
def learned() -> tuple[SignalQuality, float, np.random.Generator]:
    rng = np.random.default_rng(5)
    q = SignalQuality(RATE, 4, value_range=(-500.0, 500.0))
    verdicts = _feed(q, 0.0, 20.0, lambda t: _signal(t, 4, rng), rng)
    assert verdicts[0][1].state == "learning"
    assert [v.state for _t, v in verdicts[-40:]] == ["good"] * 40 and q.base is not None
    assert q.base.windows >= BASELINE_WINDOWS
    return q, 20.0, rng


@pytest.mark.parametrize(
    ("kind", "reason", "channel"),
    [
        ("flat", "flat", 2),
        ("nan", "nan", 1),
        ("clipped", "clipped", 0),
        ("hum", "noise", 3),
        ("pop", "jump", 2),
        ("dropout", "dropout", -1),
    ],
)
def test_each_artifact_is_named_with_its_channel_within_a_second(learned, kind: str, reason: str, channel: int) -> None:  # type: ignore[no-untyped-def]
    q, t0, rng = learned

    def make(t: np.ndarray) -> np.ndarray | None:
        v = _signal(t, 4, rng)
        if kind == "flat":
            v[:, 2] = 1.5
        elif kind == "nan":
            v[:, 1] = np.nan
        elif kind == "clipped":
            v[:, 0] = np.clip(v[:, 0] * 40, -500.0, 500.0)
        elif kind == "hum":
            v[:, 3] += 30 * np.sin(2 * math.pi * 50 * t)
        elif kind == "pop":
            v[:, 2] += 400 * np.exp(-(t - t0) / 0.3)
        elif kind == "dropout":
            return None
        return v

    verdicts = _feed(q, t0, 2.0, make, rng)
    first_bad = next((dt, v) for dt, v in verdicts if v.state in ("suspect", "bad"))
    dt, v = first_bad
    assert v.reason == reason or (reason == "dropout" and v.reason == "rate drop"), v  # a drop comes first
    assert dt <= 1.0, f"{reason} found only after {dt:.2f} s"
    assert v.channel == channel or channel == -1
    assert (f"channel {channel + 1}" in v.detail) if channel >= 0 else v.reason in v.detail


def test_a_clean_signal_stays_good_and_the_baseline_follows_it_slowly(learned) -> None:  # type: ignore[no-untyped-def]
    q, t0, rng = learned
    verdicts = _feed(q, t0, 30.0, lambda t: _signal(t, 4, rng) * 1.1, rng)  # 10 % louder: still normal
    bad = [(round(dt, 2), v.reason) for dt, v in verdicts if v.state != "good"]
    assert bad == []


def test_an_irregular_sensor_has_no_rate_rules() -> None:
    q = SignalQuality(0.0, 1)
    q.update(np.array([1.0, 1.2]), np.array([[3.0], [4.0]]))
    assert q.assess(1.3).reason != "dropout"


def test_the_clean_simulated_lab_raises_no_alarm() -> None:
    """Two minutes of the default simulated lab and a 32-channel EEG through the node's scorer:
    not one suspect or bad verdict (gaze, pose and the worn flag are not scored: saccades,
    blinks and a worn flag move by jumps and plateaus)."""
    from benchmarks.anomaly import lab_cpu

    _cpu, scored, alarms = lab_cpu(120.0)
    assert scored == 4 and alarms == 0


def test_the_anomaly_stream_describes_its_sensor_and_codes_each_verdict() -> None:
    info = SensorInfo("amp-eeg", "eeg", "amp", "Amplifier", channel_names=("Fz", "Cz"), units=("uV", "uV"),
                      nominal_rate=256.0, node_id="pc1")  # fmt: skip
    a = anomaly_info(info)
    assert (a.sensor_id, a.attribute, a.device_id, a.node_id, a.nominal_rate) == ("amp-eeg-anomaly", "anomaly", "amp",
                                                                                  "pc1", 4.0)  # fmt: skip
    assert a.channel_names == ("score", "state", "reason", "channel") and a.extra["stream_word"] == "EEG Anomaly"
    row = anomaly_row(Verdict("bad", 0.97, "flat", "flat (channel 2)", 1))
    assert row.tolist() == pytest.approx([0.97, 2.0, 1 + REASONS.index("flat"), 2.0])
    assert anomaly_row(Verdict("learning", 0.0)).tolist() == [0.0, -1.0, 0.0, 0.0]
    long_id = "x" * 60
    aid = anomaly_sensor_id(long_id)
    assert len(aid) == 64 and aid.endswith("-anomaly") and aid != anomaly_sensor_id("x" * 59 + "y")
    SensorInfo(aid, "anomaly", "dev")  # a valid id


def test_state_codes_are_not_interpolated_onto_the_bids_grid() -> None:
    t = np.array([0.0, 0.25, 0.5, 0.75])
    v = np.array([[0.1, 0.0], [0.9, 2.0], [1.0, 2.0], [0.2, 0.0]])
    _grid, out = _uniform(t + 0.1, v, 4.0, frozenset({1}))
    _, lin = _uniform(t + 0.1, v, 3.0)
    assert out[:, 1].tolist() == [0.0, 2.0, 2.0, 0.0]
    assert set(np.round(lin[:, 1], 6)) - {0.0, 2.0}  # linear interpolation would have made up codes


@pytest.mark.parametrize("device_clock", [True, False])
def test_a_late_burst_of_samples_is_not_a_jump(device_clock: bool) -> None:
    """A busy machine delivers 3 s of a breathing belt at once: the samples are judged at the
    times they were taken (spread back from their arrival at the nominal rate, with or without
    a device clock), so the window
    holds 0.5 s of breathing, not 3 s of it (which read as a jump before)."""
    from sensorium_desktop.core.samples import SampleBatch
    from sensorium_desktop.worker.quality import QualityScorer

    rate = 25.0
    info = SensorInfo("belt-respiration", "respiration", "belt", nominal_rate=rate, has_clock=device_clock)
    scorer = QualityScorer(lambda sid: info if sid == info.sensor_id else None)
    rng = np.random.default_rng(2)
    t0 = 1_800_000_000.0

    def deliver(k0: int, k1: int, arrival: float | None) -> None:
        t = t0 + np.arange(k0, k1) / rate
        v = (500 + 200 * np.sin(2 * math.pi * 0.25 * t) + rng.normal(0, 2, t.size)).reshape(-1, 1)
        ta = np.full(t.size, arrival) if arrival is not None else t + 0.005
        scorer.tap(SampleBatch(info.sensor_id, "respiration", ta, v.astype(np.float32),
                               t - 7.0 if device_clock else None))  # fmt: skip

    states = []
    for k in range(0, int(40 * rate), 4):  # 40 s delivered on time, judged every 0.25 s
        deliver(k, k + 4, None)
        if k % 8 == 4:
            scorer.assess(t0 + (k + 4) / rate + 0.006)
    assert scorer.sensors[info.sensor_id].verdict.state == "good"
    k_end = int(43.0 * rate)
    deliver(int(40 * rate), k_end, t0 + 43.0 + 0.005)  # a 3 s stall, then all of it at once
    for k in range(k_end, k_end + int(5 * rate), 4):
        deliver(k, k + 4, None)
        if k % 8 == k_end % 8:
            scorer.assess(t0 + (k + 4) / rate + 0.006)
            v = scorer.sensors[info.sensor_id].verdict
            states.append((v.state, v.reason))
    assert all(reason != "jump" for _state, reason in states), states
    assert states[-1][0] == "good", states


def test_sample_times_never_fold_back_when_deliveries_catch_up() -> None:
    """A loaded machine delivers 64-sample batches 0.3 s late, then the next two at once: the
    samples keep their spacing and order, and the catch-up follows what was placed before."""
    from sensorium_desktop.core.quality import SampleTimes

    st = SampleTimes(512.0)
    t0 = 1_800_000_000.0
    out = []
    arrivals = [t0 + (k + 1) * 0.125 + 0.3 for k in range(10)] + [t0 + 11 * 0.125 + 0.3] * 2
    for a in arrivals:
        out.append(st.of(np.full(64, a)))
    t = np.concatenate(out)
    assert (np.diff(t) > 0).all()
    assert np.allclose(np.diff(t), 1 / 512)  # spacing kept, not compressed


FAST = 20_000.0  # judged in blocks of 20


def _feed_fast(q: SignalQuality, t0: float, seconds: float, make):  # type: ignore[no-untyped-def]
    verdicts = []
    n = int(FAST * HOP)
    for k in range(int(seconds / HOP)):
        t = t0 + k * HOP + np.arange(n) / FAST
        v = make(t)
        if v is not None:
            for part in range(0, n, 333):  # deliveries that do not end on a block's edge
                q.update(t[part : part + 333], v[part : part + 333])
        verdicts.append((t[-1] + 1 / FAST - t0, q.assess(t[-1] + 1 / FAST)))
    return verdicts


@pytest.mark.parametrize(
    ("kind", "reason", "channel"),
    [("spike", "jump", 2), ("flat", "flat", 1), ("scattered nan", "nan", 3), ("hum", "noise", 0),
     ("dropout", "dropout", -1), ("clean", "", -1)],
)  # fmt: skip
def test_a_fast_sensor_is_judged_in_blocks_and_each_artifact_still_shows(kind: str, reason: str, channel: int) -> None:
    """Above MAX_JUDGED_RATE_HZ one row per block (the sample farthest from the block's mean):
    a one-sample spike, a frozen channel, 20 % NaN scattered, a hum and a dropout are found
    within a second, a clean signal stays good; the history holds 1 kHz worth of rows."""
    rng = np.random.default_rng(8)
    q = SignalQuality(FAST, 4, value_range=(-500.0, 500.0))
    assert q.block == 20 and q.rate == 1000.0 and q._n_hist == 10_000
    learned = _feed_fast(q, 0.0, 15.0, lambda t: _signal(t, 4, rng))
    assert [v.state for _t, v in learned[-20:]] == ["good"] * 20

    def make(t: np.ndarray) -> np.ndarray | None:
        v = _signal(t, 4, rng)
        if kind == "spike":
            v[t.size // 2, 2] += 300.0  # one sample of 2500
        elif kind == "flat":
            v[:, 1] = 7.25
        elif kind == "scattered nan":
            v[rng.random(t.size) < 0.2, 3] = np.nan
        elif kind == "hum":
            v[:, 0] += 30 * np.sin(2 * math.pi * 50 * t)
        elif kind == "dropout":
            return None
        return v

    verdicts = _feed_fast(q, 15.0, 3.0, make)
    alarms = [(dt, v) for dt, v in verdicts if v.state in ("suspect", "bad")]
    if kind == "clean":
        assert alarms == []
        return
    dt, v = alarms[0]
    assert v.reason == reason or (reason == "dropout" and v.reason == "rate drop"), v
    assert dt <= 1.0, f"{reason} found only after {dt:.2f} s"
    assert v.channel == channel or channel == -1


def test_judging_in_a_thread_reads_a_snapshot_and_leaves_the_warning_filters_alone() -> None:
    """The node judges in a thread while samples keep arriving: what it judges is the copy taken
    at the tick (a spike tapped meanwhile waits for the next judgement), the verdicts are those
    ``assess`` gives at the tick, and the process's warning filters are the same after
    (changing them from a thread races the event loop's own ``catch_warnings``)."""
    import copy
    import threading
    import warnings

    from sensorium_desktop.core.quality import NAN_WARNINGS
    from sensorium_desktop.core.samples import SampleBatch
    from sensorium_desktop.worker.quality import QualityScorer

    info = SensorInfo("amp-eeg", "eeg", "amp", channel_names=("a", "b"), nominal_rate=RATE, has_clock=True)
    rng = np.random.default_rng(3)
    t0 = 1_800_000_000.0
    scorer = QualityScorer(lambda sid: info)

    def deliver(k0: int, k1: int, spike: bool = False) -> None:
        t = t0 + np.arange(k0, k1) / RATE
        v = _signal(t, 2, rng)
        if spike:
            v[:, 0], v[:, 1] = 5000.0, np.nan
        scorer.tap(SampleBatch(info.sensor_id, "eeg", t + 0.004, v.astype(np.float32), t - 2.0))

    step = int(RATE / 4)
    states = set()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", NAN_WARNINGS, RuntimeWarning)
        before = list(warnings.filters)
        for k in range(0, int(20 * RATE), step):
            deliver(k, k + step - 1)
            now = t0 + (k + step) / RATE + 0.005
            reference = copy.deepcopy(scorer)
            expected = reference.assess(now)
            snaps = scorer.snapshots(now)
            deliver(k + step - 1, k + step, spike=k >= 12 * RATE)  # tapped while the thread judges
            got: list = []
            worker = threading.Thread(target=lambda: got.extend(scorer.judge(now, snaps)))  # noqa: B023
            worker.start()
            worker.join()
            assert got == expected
            want, have = reference.sensors[info.sensor_id].verdict, scorer.sensors[info.sensor_id].verdict
            assert have == want
            states.add(have.state)
            assert warnings.filters == before
    assert {"good", "bad"} <= states  # the spikes are judged, at the tick after they came
