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
from conftest import RedisServer, sensorium

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
                 "--flashes", "20", "--interval", "0.5", "--seed", "7")  # fmt: skip
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
    run = _check(redis_server, keys, data_dir, tmp_path / "c", "--device", "sim:photodiode",
                 "--device", "sim:room", "--sensor", "sim-photodiode-photodiode", "--sensor", "sim-room-temperature",
                 "--flashes", "4")  # fmt: skip
    assert run.returncode == exitcodes.OUT_OF_TOLERANCE, run.stderr[-2000:]
    rows = json.loads(run.stdout)["sensors"]
    blind = rows["sim-room-temperature"]
    assert blind["detected"] == 0 and blind["missed"] == 4 and blind["mean_ms"] is None
    assert blind["verdict"] == "not detected"
    assert rows["sim-photodiode-photodiode"]["verdict"] == "pass"


def _flash_video(path: Path, fps: float, seconds: float, flash_frames: list[int], lit_frames: int) -> None:
    """An MJPG AVI of a dark screen that is white from each of ``flash_frames`` for ``lit_frames``."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    lit = set()
    for f in flash_frames:
        lit.update(range(f, f + lit_frames))
    for k in range(round(seconds * fps)):
        writer.write(np.full((120, 160, 3), 235 if k in lit else 20, np.uint8))
    writer.release()


def test_camera_video_and_a_serial_photodiode_measured_together_against_lsl_markers(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    """The issue's second 'done when'. A stimulus PC (an LSL marker outlet here) presents the
    flashes; a camera plays a generated video of that screen (frame times known: frame k is
    captured at the playback's start + k/fps), and a photodiode on a real pseudo-terminal sees
    each flash 0.8 ms after its presentation. Both measured in one check, against the truth
    within 0.5 ms (mean) and 0.3 ms (SD); the camera's truth includes its frame quantization."""
    import threading

    import pylsl
    from test_serial import Pty

    from sensorium_desktop.bus.registry import list_sensors
    from sensorium_desktop.bus.streams import read_all
    from sensorium_desktop.core.hostclock import host_time
    from sensorium_desktop.devices.lsl import measure_lsl_offset
    from sensorium_desktop.recording.reader import load_recording

    fps, n = 30.0, 12
    rng = np.random.default_rng(11)
    flash_frames = [round((4.0 + 0.9 * k + rng.uniform(-0.2, 0.2)) * fps) for k in range(n)]
    video = tmp_path / "screen.avi"
    _flash_video(video, fps, 22.0, flash_frames, lit_frames=4)
    cam_latency, diode_latency = 0.040, 0.0008
    quantization = rng.uniform(0.0, 1.0 / fps, n)  # where within its frame each flash fell

    pty = Pty(tmp_path / "ttyDIODE")
    name = f"Flashes-{os.getpid()}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, 0, pylsl.cf_string, f"stim-{name}"))
    diode_clock = -1000.0  # the photodiode's own clock: host time - 1000 s
    presented: list[float] = []  # host times (s) of the presentations, known once the video plays
    stop = threading.Event()

    def world() -> None:
        """The photodiode streams from the start (dark); once the camera plays, the flashes are
        known: the photodiode sees each, and the stimulus PC sends its marker, in real time."""
        import redis

        c = redis.Redis.from_url(redis_server.url)
        lsl_offset, _ = measure_lsl_offset()
        pending = list(range(n))
        t_next = host_time()
        noise = np.random.default_rng(5)
        try:
            while not stop.is_set():
                now = host_time()
                if not presented:
                    cams = [i.sensor_id for i in list_sensors(c, keys) if i.attribute == "video"]
                    entries = read_all(c, keys, cams[0]) if cams else []
                    if len(entries) >= 10:  # the playback's start: earliest arrival - file position
                        start = min(float(e.batch.t_arrival[0] - e.batch.t_local[0]) for e in entries)
                        presented.extend(start + np.array(flash_frames) / fps - cam_latency - quantization)
                t = np.arange(t_next, now, 0.001)
                level = np.zeros(t.size)
                for p in presented:
                    on = p + diode_latency
                    level += np.clip((t - on) / 0.002 + 0.5, 0, 1) - np.clip((t - on - 0.1) / 0.002 + 0.5, 0, 1)
                volts = 0.05 + 2.4 * level + noise.normal(0, 0.004, t.size)
                pty.write("".join(f"{a + diode_clock:.6f},{v:.5f}\n" for a, v in zip(t, volts, strict=True)).encode())
                t_next = t[-1] + 0.001 if t.size else t_next
                while pending and presented and presented[pending[0]] < now - 0.05:
                    outlet.push_sample(["flash"], presented[pending.pop(0)] - lsl_offset)
                stop.wait(0.005)
        finally:
            c.close()

    thread = threading.Thread(target=world, daemon=True)
    thread.start()
    out = tmp_path / "check"
    try:
        diode = f"serial:{pty.link}?channels=t,light&time_column=t&time_unit=s&rate=1000&attribute=photodiode"
        run = _check(redis_server, keys, data_dir, out, "--device", f"camera:{video}", "--device", diode,
                     "--events-from", f"lsl:{name}", "--flashes", str(n), "--interval", "1.0",
                     "--region", "20,10,120,100")  # fmt: skip
    finally:
        stop.set()
        thread.join(10)
        pty.close()
    assert run.returncode in (exitcodes.OK, exitcodes.OUT_OF_TOLERANCE), run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert len(presented) == n and result["presented"] == n, (result["presented"], run.stderr[-2000:])
    rows = result["sensors"]
    cam_sid = next(s for s, r in rows.items() if r["attribute"] == "video")
    assert {r["attribute"] for r in rows.values()} == {"video", "photodiode"}, (result, run.stderr[-3000:])
    diode_sid = next(s for s, r in rows.items() if r["attribute"] == "photodiode")
    # the truths. Camera: frame k is captured at the playback's start + k/fps (the start: its
    # earliest arrival - file position). Photodiode: 0.8 ms after the presentation plus the
    # floor of its link (the fastest line's arrival - its own time), which no clock model can
    # see from arrivals and which is what a sync check is for
    rec = load_recording(out)
    cam = rec.sensors[cam_sid]
    start = float(np.min(cam.t_arrival - cam.t_local))
    truth_cam = (start + np.array(flash_frames) / fps - np.array(presented)) * 1e3
    diode = rec.sensors[diode_sid]
    floor_ms = float(np.min(diode.t_arrival - (diode.t_local - diode_clock))) * 1e3
    row = rows[cam_sid]
    assert row["detected"] == n, row
    assert abs(row["mean_ms"] - truth_cam.mean()) <= 0.5, (row, truth_cam)
    assert abs(row["sd_ms"] - truth_cam.std(ddof=1)) <= 0.3, (row, truth_cam)
    row = rows[diode_sid]
    assert row["detected"] == n, row
    assert abs(row["mean_ms"] - (diode_latency * 1e3 + floor_ms)) <= 0.5 and row["sd_ms"] <= 0.3, (row, floor_ms)
    assert rows[cam_sid]["verdict"] == "fail"  # 40 ms late, quantized to 33 ms frames


def test_applied_corrections_travel_with_every_export(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    """--apply stores each sensor's mean latency; XDF (read by pyxdf), CSV and BIDS carry the
    check and say by how much the times were corrected; the corrected times are exactly that
    much earlier."""
    import pyxdf

    from sensorium_desktop.recording.export import export_recording
    from sensorium_desktop.recording.reader import load_recording
    from sensorium_desktop.recording.synccheck import RESULT_FILE
    from sensorium_desktop.recording.xdf import xdf_stream_key

    out = tmp_path / "check"
    run = _check(redis_server, keys, data_dir, out, "--device", "sim:photodiode?flash_latency_ms=3",
                 "--flashes", "5", "--interval", "0.6", "--apply")  # fmt: skip
    assert run.returncode == exitcodes.OUT_OF_TOLERANCE, run.stderr[-2000:]  # 3 ms > 2 ms
    sid = "sim-photodiode-photodiode"
    stored = json.loads((out / RESULT_FILE).read_text())
    applied = stored["applied_ms"][sid]
    assert abs(applied - 3.0) < 0.5
    corrected = load_recording(out, trim=False)
    raw = load_recording(out, trim=False)  # nothing mapped yet: dropping the corrections takes effect
    raw.latency_corrections = {}
    shift = raw.global_times(sid) - corrected.global_times(sid)
    assert np.allclose(shift, applied / 1e3, rtol=0, atol=5e-7)  # float64 steps at 1.8e9 s: 2.4e-7 s

    xdf = tmp_path / "c.xdf"
    export_recording(out, "xdf", xdf)
    streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)
    stream = next(s for s in streams if xdf_stream_key(s) == sid)
    check = stream["info"]["desc"][0]["sensorium"][0]["sync_check"][0]
    assert check["timestamps_corrected"] == ["true"] and abs(float(check["latency_correction_ms"][0]) - applied) < 1e-9
    assert check["detected"] == ["5"] and check["verdict"] == ["fail"]
    corrected.trim_to_bounds()
    assert np.allclose(stream["time_stamps"], corrected.global_times(sid), atol=1e-6)

    csv_dir = tmp_path / "csv"
    export_recording(out, "csv", csv_dir)
    summary = json.loads((csv_dir / "session.json").read_text())
    assert abs(summary["sync_check"][sid]["latency_correction_ms"] - applied) < 1e-9
    assert (csv_dir / RESULT_FILE).exists() and (csv_dir / "sync-check.png").exists()

    bids = tmp_path / "bids"
    export_recording(out, "bids", bids, metadata={"participant": "01"})
    sidecars = [json.loads(p.read_text()) for p in bids.rglob("*_physio.json")]
    mine = [s for s in sidecars if s.get("SensoriumSync", {}).get("sensor_id") == sid]
    assert mine and abs(mine[0]["SensoriumSync"]["sync_check"]["latency_correction_ms"] - applied) < 1e-9


def test_an_interrupted_check_keeps_what_it_measured_and_says_so(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    import signal
    import time

    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir),
               QT_QPA_PLATFORM="offscreen")  # fmt: skip
    env.pop("DISPLAY", None)
    out = tmp_path / "c"
    proc = subprocess.Popen(sensorium("sync-check", "--prefix", keys.prefix, "--out", str(out), "--device",
                                      "sim:photodiode", "--flashes", "30", "--interval", "0.5"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen = ""
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while "flash 4 of 30" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == exitcodes.PARTIAL, stderr[-2000:]
    assert "interrupted after" in stderr and "INTERRUPTED" in stdout
    result = json.loads((out / "sync-check.json").read_text())
    row = result["sensors"]["sim-photodiode-photodiode"]
    assert result["interrupted"] and result["planned"] == 30 and 4 <= result["presented"] < 30
    assert row["presented"] == result["presented"] and row["detected"] >= result["presented"] - 1


def test_clicks_in_a_real_lsl_audio_stream_are_measured(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    """A microphone (a pylsl 48 kHz audio outlet) hears a click 5 ms after each flash the
    check presents (read from the bus, as a simulated room would): the audio detector finds
    each onset within a sample and the LSL clock mapping keeps it within 0.5 ms."""
    import threading

    import pylsl
    import redis

    from sensorium_desktop.core.hostclock import host_time
    from sensorium_desktop.devices.lsl import measure_lsl_offset

    rate, delay = 48000.0, 0.005
    name = f"Mic-{os.getpid()}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Audio", 1, rate, pylsl.cf_float32, f"mic-{name}"))
    click_n = 192  # 4 ms at 48 kHz: a 3 kHz burst decaying in 0.8 ms
    stop = threading.Event()

    def microphone() -> None:
        c = redis.Redis.from_url(redis_server.url)
        lsl_offset, _ = measure_lsl_offset()
        trips = []  # global (Redis TIME) - host time, from the tightest of 30 round trips
        for _ in range(30):
            t0 = host_time()
            sec, usec = c.time()
            t1 = host_time()
            trips.append((t1 - t0, sec + usec / 1e6 - 0.5 * (t0 + t1)))
        global_offset = min(trips)[1]
        newest = c.xrevrange(keys.sync_flashes, count=1)
        after = newest[0][0].decode() if newest else "0-0"
        onsets: list[float] = []
        noise = np.random.default_rng(9)
        t_next = host_time() - 0.05
        try:
            while not stop.is_set():
                for _key, entries in c.xread({keys.sync_flashes: after}, block=5) or []:
                    for eid, f in entries:
                        after = eid.decode()
                        if f[b"phase"] == b"on":
                            onsets.append(float(f[b"t_global"]) - global_offset + delay)
                now = host_time() - 0.05  # the sound card's buffer: 50 ms behind
                n = int((now - t_next) * rate)
                if n > 0:
                    t = t_next + np.arange(n) / rate
                    x = noise.normal(0, 0.01, n)
                    for on in onsets:
                        k = int(np.ceil((on - t_next) * rate))
                        if -click_n < k < n:  # the click as it sounds from its onset on
                            idx = np.arange(max(k, 0), min(k + click_n, n))
                            tt = t[idx] - on
                            x[idx] += np.sin(2 * np.pi * 3000.0 * tt) * np.exp(-tt / 0.0008) * 0.7
                    outlet.push_chunk(x.reshape(-1, 1).astype(np.float32).tolist(), float(t[-1]) - lsl_offset)
                    t_next += n / rate
                stop.wait(0.005)
        finally:
            c.close()

    thread = threading.Thread(target=microphone, daemon=True)
    thread.start()
    try:
        run = _check(redis_server, keys, data_dir, tmp_path / "c", "--device", f"lsl:{name}",
                     "--flashes", "8", "--interval", "0.6")  # fmt: skip
    finally:
        stop.set()
        thread.join(10)
    assert run.returncode == exitcodes.OUT_OF_TOLERANCE, run.stderr[-3000:]  # 5 ms > 2 ms
    rows = json.loads(run.stdout)["sensors"]
    (row,) = rows.values()
    assert row["detector"] == "audio" and row["detected"] == 8, (row, run.stderr[-2000:])
    assert abs(row["mean_ms"] - delay * 1e3) <= 0.5 and row["sd_ms"] <= 0.3, row


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--flashes", "3"], "nothing to check"),
        (["--device", "sim:photodiode", "--region", "1,2,3"], "--region must be x,y,w,h"),
        (["--device", "sim:photodiode", "--events-from", "Flashes"], "lsl:NAME"),
        (["--device", "sim:photodiode", "--interval", "0.1"], "--interval"),
        (["--device", "sim:photodiode", "--patch", "middle"], "--patch"),
        (["--device", "nosuch:thing"], "nosuch"),
    ],
)
def test_a_check_that_cannot_work_is_refused_before_anything_starts(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    run = _check(redis_server, keys, data_dir, tmp_path / "c", *args)
    assert run.returncode == exitcodes.USAGE and says in run.stderr, run.stderr[-1500:]
    assert not (tmp_path / "c").exists()
