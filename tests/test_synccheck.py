"""The sync check: detectors, matching and verdicts (pure), then whole checks through the CLI
against simulated devices whose latencies and true per-flash latencies are known."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sensorium_desktop import exitcodes
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.core.synccheck import (
    Tolerance,
    detect_clicks,
    detect_labels,
    detect_steps,
    flash_schedule,
    match_onsets,
    summarize,
)
from sensorium_desktop.devices.base import DeviceURI
from sensorium_desktop.devices.simulated import ROOM_LIGHT, SimulatedDevice

from conftest import RedisServer, sensorium


def _square(rate: float, onsets: np.ndarray, lit_s: float, seconds: float, rise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds, 1.0 / rate) + 0.123456  # not on the onsets' grid
    level = np.zeros(t.size)
    for on in onsets:
        level += np.clip((t - on) / rise + 0.5, 0, 1) - np.clip((t - on - lit_s) / rise + 0.5, 0, 1)
    return t, 0.1 + 2.0 * level + rng.normal(0, 0.004, t.size)


def test_analog_onsets_are_interpolated_to_microseconds() -> None:
    onsets = 1.0 + np.cumsum(np.random.default_rng(1).uniform(0.7, 1.3, 30))
    t, v = _square(1000.0, onsets, 0.1, 40.0, rise=0.002)
    found = detect_steps(t, v, interpolate=True)
    assert found.size == onsets.size
    assert np.max(np.abs(found - onsets)) < 20e-6


def test_camera_onsets_are_the_first_frame_above_half() -> None:
    onsets = np.array([1.01, 2.345, 3.5])
    t, v = _square(30.0, onsets, 0.1, 5.0, rise=1e-9)
    found = detect_steps(t, v, interpolate=False)
    expected = [t[np.searchsorted(t, o)] for o in onsets]
    assert np.allclose(found, expected)


def test_noise_alone_and_a_flat_line_have_no_onsets() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(0, 10, 0.001)
    assert detect_steps(t, rng.normal(0, 1, t.size), interpolate=True).size == 0
    assert detect_steps(t, np.full(t.size, 2.0), interpolate=True).size == 0
    assert detect_steps(t[:1], np.ones(1), interpolate=True).size == 0


def test_click_onsets_in_audio() -> None:
    rate = 48000.0
    rng = np.random.default_rng(4)
    t = np.arange(0, 4.0, 1 / rate)
    x = rng.normal(0, 0.01, t.size)
    clicks = np.array([0.5003, 1.7311, 3.2])
    for c in clicks:
        k = np.searchsorted(t, c)
        x[k : k + 48] += np.sin(np.arange(48) * 0.9) * np.exp(-np.arange(48) / 12.0) * 0.8
    found = detect_clicks(t, x, rate)
    assert found.size == 3 and np.max(np.abs(found - clicks)) < 2 / rate


def test_labels_match_exact_or_numbered() -> None:
    t = np.array([1.0, 2.0, 3.0, 4.0])
    labels = np.array([["flash"], ["flashlight"], ["flash 3"], ["flash:4"]], dtype=object)
    assert list(detect_labels(t, labels, "flash")) == [1.0, 3.0, 4.0]


def test_matching_pairs_each_presentation_with_its_own_onset() -> None:
    presented = np.array([10.0, 11.0, 12.2, 13.0])
    onsets = np.array([10.012, 11.013, 12.25, 9.0, 20.0])  # 13.0 missed; 9.0/20.0 belong to none
    lat = match_onsets(presented, onsets)
    assert np.allclose(lat[:3], [0.012, 0.013, 0.05]) and math.isnan(lat[3])
    assert np.all(np.isnan(match_onsets(presented, np.empty(0))))


def test_summary_verdicts() -> None:
    tol = Tolerance(2.0, 1.0)
    good = summarize(np.full(20, 0.0008), 1e-5, tol)
    assert good["verdict"] == "pass" and good["detected"] == 20 and abs(good["mean_ms"] - 0.8) < 1e-9
    late = summarize(np.full(20, 0.0125), 1e-5, tol)
    assert late["verdict"] == "fail" and "mean" in late["reasons"][0]
    none = summarize(np.full(20, np.nan), 1e-5, tol)
    assert none["verdict"] == "not detected" and none["mean_ms"] is None and none["reasons"] == ["0 of 20 detected"]
    one = summarize(np.array([0.001] + [np.nan] * 9), 1e-5, tol)
    assert one["sd_ms"] is None and one["missed"] == 9 and one["verdict"] == "fail"


def test_schedule_is_jittered_and_bounded() -> None:
    s = flash_schedule(50, 1.0, seed=2)
    gaps = np.diff(s)
    assert s[0] == 0 and gaps.min() >= 0.75 and gaps.max() <= 1.25 and gaps.std() > 0.05
    with pytest.raises(ValueError):
        flash_schedule(0, 1.0)


def test_simulated_photodiode_sees_the_room_light_with_its_latency() -> None:
    ROOM_LIGHT.clear()
    dev = SimulatedDevice(DeviceURI.parse("sim:photodiode?flash_latency_ms=0.8&jitter_ms=0"))
    dev.start(1000.0)
    ROOM_LIGHT.show("x-0", 1000.5, 1000.6)
    got = [b for now in np.arange(1000.01, 1002.0, 0.01) for b in dev.step(float(now))]
    values = np.concatenate([b.values[:, 0] for b in got])
    t_local = np.concatenate([b.t_local for b in got])
    t_true = 1000.0 + (t_local - dev.clock.origin) / (1 + dev.clock.drift)
    onset = detect_steps(t_true, values, interpolate=True)
    assert onset.size == 1 and abs(onset[0] - 1000.5008) < 20e-6
    assert dev.details()["flash_truth_ms"]["sim-photodiode-photodiode"] == {"x-0": 0.8}
    ROOM_LIGHT.clear()


def _check(redis_server: RedisServer, keys: Keys, data_dir: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir),
               QT_QPA_PLATFORM="offscreen")  # fmt: skip
    env.pop("DISPLAY", None)
    return subprocess.run(sensorium("sync-check", "--prefix", keys.prefix, "--out", str(out), "--json", *args),
                          env=env, capture_output=True, text=True, timeout=180)  # fmt: skip


def test_simulated_lab_check_reports_each_latency_within_the_truth(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    """The issue's first 'done when': each mean within 0.5 ms and each SD within 0.3 ms of the
    truth (the simulation's own per-flash latencies, frame quantization included), the one
    device set inside the tolerance passes and the others are flagged."""
    out = tmp_path / "check"
    run = _check(redis_server, keys, data_dir, out, "--device", "sim:eyes?flash_latency_ms=12.5",
                 "--device", "sim:pose?flash_latency_ms=33.3", "--device", "sim:photodiode?flash_latency_ms=0.8",
                 "--flashes", "20", "--interval", "0.8", "--seed", "7")  # fmt: skip
    assert run.returncode == exitcodes.OUT_OF_TOLERANCE, run.stderr[-3000:]
    result = json.loads(run.stdout)
    rows = result["sensors"]
    assert set(rows) == {"sim-eyes-brightness", "sim-pose-brightness", "sim-photodiode-photodiode"}
    for sid, latency in (("sim-eyes-brightness", 12.5), ("sim-pose-brightness", 33.3),
                         ("sim-photodiode-photodiode", 0.8)):  # fmt: skip
        row = rows[sid]
        assert row["detected"] == 20 and row["missed"] == 0, (sid, row)
        assert abs(row["mean_ms"] - row["truth_mean_ms"]) <= 0.5, (sid, row)
        assert abs(row["sd_ms"] - row["truth_sd_ms"]) <= 0.3, (sid, row)
        period = {"sim-eyes-brightness": 5.0, "sim-pose-brightness": 33.33}.get(sid, 0.1)
        assert abs(row["truth_mean_ms"] - latency) <= period / 2 + 0.05, (sid, row)  # quantization only
        for key in ("detected", "missed", "mean_ms", "sd_ms", "min_ms", "max_ms", "claimed_sigma_ms", "verdict"):
            assert key in row
    assert rows["sim-photodiode-photodiode"]["verdict"] == "pass"
    assert rows["sim-eyes-brightness"]["verdict"] == rows["sim-pose-brightness"]["verdict"] == "fail"
    assert result["presented"] == 20 and not result["interrupted"]
    stored = json.loads((out / "sync-check.json").read_text())
    assert stored["sensors"]["sim-pose-brightness"]["traces"]  # the dialog's and the picture's traces
    assert (out / "sync-check.png").stat().st_size > 5000


def test_a_check_without_a_detector_says_why_before_it_starts(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    run = _check(redis_server, keys, data_dir, tmp_path / "c", "--device", "sim:room", "--flashes", "3")
    assert run.returncode == exitcodes.FAILED
    assert "no sensor can see a flash" in run.stderr and "sim-room-temperature (temperature)" in run.stderr
    assert "flash 1 of" not in run.stderr  # refused before the first flash


def test_a_blind_sensor_is_reported_as_zero_detected_never_a_latency(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    run = _check(redis_server, keys, data_dir, tmp_path / "c", "--device", "sim:photodiode", "--device", "sim:room",
                 "--sensor", "sim-photodiode-photodiode", "--sensor", "sim-room-temperature", "--flashes", "4")  # fmt: skip
    assert run.returncode == exitcodes.OUT_OF_TOLERANCE, run.stderr[-2000:]
    rows = json.loads(run.stdout)["sensors"]
    blind = rows["sim-room-temperature"]
    assert blind["detected"] == 0 and blind["missed"] == 4 and blind["mean_ms"] is None
    assert blind["verdict"] == "not detected"
    assert rows["sim-photodiode-photodiode"]["verdict"] == "pass"
