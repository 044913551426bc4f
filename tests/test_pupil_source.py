"""Pupil Core as a source (issue 28): ``pupil:HOST:PORT`` against a stand-in for Pupil Capture
(tests/pupil_capture.py) whose Pupil clock starts at a known time and runs a known ppm fast.
Pupil Labs' own ``pupil-core-network-client`` must work against the stand-in (so the stand-in
is faithful); ``sensorium record --device pupil:…`` → XDF must carry every gaze value as
published, at the true host time within 1 ms, and the scene frames at theirs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import pyxdf
from conftest import RedisServer, sensorium
from pupil_capture import PupilCaptureStandIn

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.devices.base import DeviceState, open_device
from sensorium_desktop.devices.pupil import PupilClock, PupilTransport, parse_address

DRIFT_PPM = 120.0
PUPIL_START = 4321.0


@pytest.fixture
def capture() -> Iterator[PupilCaptureStandIn]:
    standin = PupilCaptureStandIn(drift_ppm=DRIFT_PPM, pupil_start=PUPIL_START).start()
    yield standin
    standin.stop()


def test_pupil_labs_own_client_works_against_the_standin(capture: PupilCaptureStandIn) -> None:
    from pupil_labs.pupil_core_network_client import Device

    device = Device("127.0.0.1", capture.port)
    stats = device.clock_offset_statistics  # estimated with `t` round trips on connecting
    assert stats.num_measurements == 10 and stats.std_offset < 0.02  # round trips to this machine
    assert device.request_version() == "3.5.1"
    assert device.request_plugin_start("Frame_Publisher", {"format": "jpeg"}) == "Message forwarded."
    assert abs(device.current_pupil_time() - capture.pupil_time()) < 0.02
    got: dict[str, int] = {}
    with device.subscribe(["gaze.", "pupil.", "frame.world", "surfaces.", "blinks", "fixations"]) as sub:
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            msg = sub.recv_new_message(timeout_ms=500)
            if msg is None:
                continue
            kind = msg.topic.split(".")[0]
            got[kind] = got.get(kind, 0) + 1
            if msg.topic == "frame.world":
                assert len(msg.raw_data) == 1 and msg.payload["width"] == 640 and msg.payload["format"] == "jpeg"
            elif kind == "gaze":
                assert len(msg.payload["norm_pos"]) == 2 and "timestamp" in msg.payload
    assert got["gaze"] > 200 and got["pupil"] > 400 and got["frame"] > 50 and got["surfaces"] > 50, got
    assert got["blinks"] >= 1 and got["fixations"] >= 2, got
    assert device.send_annotation("hello") == "Message forwarded."
    assert device.request_recording_start("x") == "OK"


def test_clock_line_inverts_a_drifting_offset() -> None:
    clock = PupilClock()
    drift = -120e-6  # host − Pupil shrinks: Pupil runs 120 ppm fast
    for k in range(6):
        h = 1000.0 + 3.0 * k
        clock.add(h, 50.0 + drift * (h - 1000.0), 1e-6, 1e-4)
    host = np.array([1001.0, 1020.0])
    pupil = host - (50.0 + drift * (host - 1000.0))
    assert np.max(np.abs(clock.to_host(pupil) - host)) < 1e-9


def test_addresses_and_loud_failures() -> None:
    assert parse_address("") == ("127.0.0.1", 50020)
    assert parse_address("lab-pc") == ("lab-pc", 50020)
    assert parse_address("10.0.0.5:50021") == ("10.0.0.5", 50021)

    async def run_briefly() -> tuple[str, str, float]:
        from conftest import free_port

        dev = open_device(f"pupil:127.0.0.1:{free_port()}")
        stop = asyncio.Event()
        t0 = time.monotonic()
        task = asyncio.create_task(dev.run(lambda b: None, stop))
        while dev.health.state not in (DeviceState.ERROR, DeviceState.LOST) and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.02)
        took = time.monotonic() - t0
        stop.set()
        await task
        return str(dev.health.state), dev.health.message, took

    state, message, took = asyncio.run(run_briefly())
    assert state == "error" and "does not answer" in message and took < 2.0, (state, message, took)


def test_discovery_finds_a_configured_capture(capture: PupilCaptureStandIn, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cfg = tmp_path / "sensorium.toml"
    cfg.write_text(f'pupil_hosts = ["127.0.0.1:{capture.port}"]\n')
    monkeypatch.setenv("SENSORIUM_CONFIG", str(cfg))
    found = asyncio.run(PupilTransport().discover(1.0))
    assert [d.uri for d in found if d.details["port"] == capture.port] == [f"pupil:127.0.0.1:{capture.port}"]
    assert all(d.details["version"] == "3.5.1" for d in found if d.details["port"] == capture.port)


def test_capture_going_away_is_lost_then_back_and_garbage_is_counted(capture: PupilCaptureStandIn) -> None:
    got: list = []

    async def scenario() -> dict:
        dev = open_device(f"pupil:127.0.0.1:{capture.port}")
        stop = asyncio.Event()
        task = asyncio.create_task(dev.run(got.append, stop))
        try:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(capture.send_raw, [b"gaze.3d.01.", b"\xc1 not msgpack"])
            await asyncio.to_thread(
                capture.send_raw, [b"gaze.3d.01.", msgpack.packb({"norm_pos": "x", "timestamp": 1.0})]
            )
            await asyncio.to_thread(capture.send_raw, [b"gaze.3d.01."])
            await asyncio.sleep(0.5)
            assert dev.health.state == DeviceState.STREAMING
            malformed = dev.health.errors.get("malformed", 0)
            capture.stop()  # Capture quits
            t0 = time.monotonic()
            while dev.health.state != DeviceState.LOST and time.monotonic() - t0 < 8:
                await asyncio.sleep(0.05)
            lost_after = time.monotonic() - t0
            state_lost, message = str(dev.health.state), dev.health.message
            again = PupilCaptureStandIn(port=capture.port, pupil_start=99.0).start()  # started again
            try:
                n_before = len(got)
                t0 = time.monotonic()
                while (
                    dev.health.state != DeviceState.STREAMING or len(got) <= n_before
                ) and time.monotonic() - t0 < 15:
                    await asyncio.sleep(0.05)
                back = str(dev.health.state)
                await asyncio.sleep(0.5)
                now_host = float(dev.clock.to_host(np.array([again.pupil_time()]))[0])
                return {"malformed": malformed, "lost": state_lost, "message": message, "lost_after": lost_after,
                        "back": back, "reconnects": dev.health.reconnects,
                        "offset_ok": abs(now_host - time.time()) < 0.5}  # fmt: skip
            finally:
                again.stop()
        finally:
            stop.set()
            await task

    r = asyncio.run(scenario())
    assert r["malformed"] == 3, r
    assert r["lost"] == "lost" and "does not answer" in r["message"] and r["lost_after"] < 5.0, r
    assert r["back"] == "streaming" and r["reconnects"] >= 1 and r["offset_ok"], r


def _true_global_offset(redis_server: RedisServer) -> float:
    """Redis TIME − host time (s) from the tightest of many round trips: the global clock of
    the recording is the Redis server's."""
    from sensorium_desktop.core.hostclock import host_time

    c = redis_server.client()
    best = (1.0, 0.0)
    for _ in range(200):
        h0 = host_time()
        sec, usec = c.time()
        h1 = host_time()
        best = min(best, (h1 - h0, sec + usec / 1e6 - 0.5 * (h0 + h1)))
    return best[1]


def test_record_pupil_to_xdf_values_and_times(capture: PupilCaptureStandIn, redis_server: RedisServer, keys: Keys,
                                               data_dir: Path, tmp_path: Path) -> None:  # fmt: skip
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir))
    out = tmp_path / "rec"
    uri = f"pupil:127.0.0.1:{capture.port}?world=1"
    run = subprocess.run(sensorium("record", "--prefix", keys.prefix, "--device", uri, "--duration", "6", "--out",
                                   str(out)), env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    xdf = tmp_path / "pupil.xdf"
    exp = subprocess.run(sensorium("export", str(out), "--format", "xdf", "-o", str(xdf)), env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-3000:]
    streams, _ = pyxdf.load_xdf(str(xdf), synchronize_clocks=True, dejitter_timestamps=False)
    by_sensor = {
        s["info"]["desc"][0]["sensorium"][0]["sensor_id"][0]: s
        for s in streams
        if s["info"]["desc"] and s["info"]["desc"][0] and "sensorium" in s["info"]["desc"][0]
    }
    dev = f"pupil-127-0-0-1-{capture.port}"
    gaze = by_sensor[f"{dev}-gaze"]
    assert gaze["info"]["type"] == ["Gaze"]
    labels = [c["label"][0] for c in gaze["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels[:3] == ["x", "y", "confidence"]
    values, times = np.asarray(gaze["time_series"]), np.asarray(gaze["time_stamps"])
    assert len(times) > 5 * 100, len(times)
    published = capture.published["gaze"]
    stamps = np.array([g["timestamp"] for g in published])
    # the recorded samples are a contiguous run of what was published, value for value
    match = [
        i
        for i, g in enumerate(published)
        if g["norm_pos"][0] == values[0, 0] and 1.0 - g["norm_pos"][1] == values[0, 1]
    ]
    assert match, "the first recorded gaze sample was never published"
    first = match[0]
    sent = published[first : first + len(times)]
    assert len(sent) == len(times)
    expect = np.array([[g["norm_pos"][0], 1.0 - g["norm_pos"][1], g["confidence"], *g["gaze_point_3d"], 2.0]
                       for g in sent])  # fmt: skip
    assert np.array_equal(values, expect), "gaze values differ from what Capture published"
    offset = _true_global_offset(redis_server)
    truth = capture.host_of(stamps[first : first + len(times)]) + offset
    err = times - truth
    print(
        f"pupil gaze time error vs true host time: n={err.size} median {np.median(err) * 1e6:.0f} us, "
        f"p95 |err| {np.percentile(np.abs(err), 95) * 1e6:.0f} us, max |err| {np.max(np.abs(err)) * 1e6:.0f} us"
    )
    assert np.max(np.abs(err)) < 1e-3
    # the scene frames at their times
    video = by_sensor[f"{dev}-video"]
    frames = capture.published["frame"]
    idx = np.asarray(video["time_series"])[:, 0].astype(int)
    assert np.all(np.diff(idx) == 1) and len(idx) > 5 * 20
    f_stamps = np.array([f["timestamp"] for f in frames])
    vt = np.asarray(video["time_stamps"])
    f_truth = capture.host_of(f_stamps) + offset
    nearest = np.abs(vt[:, None] - f_truth[None, :]).min(axis=1)
    assert np.max(nearest) < 1e-3, f"scene frame times off by up to {np.max(nearest) * 1e3:.2f} ms"
    desc = gaze["info"]["desc"][0]["synchronization"][0]
    assert desc["domain_kind"] == ["measured"]
    meta = json.loads((out / "session.json").read_text())
    assert meta["state"] == "complete"
    # the review: the scene video with the gaze over it
    from sensorium_desktop.recording.review import open_review
    from sensorium_desktop.viewmodel.review import ReviewModel

    model = ReviewModel(open_review(out))
    assert model.video is not None and model.gaze is not None and model.has_media()
    model.set_cursor(model.start + 2.0)
    assert model.video.video_path is not None and model.video.video_path.is_file()
