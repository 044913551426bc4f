"""Camera transport on real video files written by opencv (MJPG and mp4v)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import NodeThread, RedisServer, wait_for
from test_serial import DeviceRunner

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices import DeviceError, DeviceState, discover_all, open_device


def frame_of(i: int, w: int = 640, h: int = 480) -> np.ndarray:
    """Frame ``i``: a gray level that survives compression, and a moving square."""
    img = np.full((h, w, 3), (i * 5) % 250, dtype=np.uint8)
    x = (i * 13) % (w - 40)
    img[200:240, x : x + 40] = (0, 0, 255)
    return img


def write_video(path: Path, n: int, fps: float, fourcc: str) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (640, 480))
    assert w.isOpened(), f"opencv cannot write {fourcc}"
    for i in range(n):
        w.write(frame_of(i))
    w.release()
    return path


def gray_levels(path: Path) -> list[int]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(int(np.median(f[:100, :100])))
    cap.release()
    return out


@pytest.mark.parametrize(("fourcc", "suffix"), [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_file_in_real_time_every_frame_stored_and_sampled(tmp_path: Path, fourcc: str, suffix: str) -> None:
    src = write_video(tmp_path / f"clip{suffix}", 36, 30.0, fourcc)
    out = tmp_path / "stored.avi"
    dev = open_device(f"camera:{src}?record={out}")
    (info,) = dev.sensors()
    assert info.nominal_rate == pytest.approx(30.0) and info.attribute == "video" and info.has_clock
    run = DeviceRunner(dev)
    wait_for(lambda: dev.health.state == DeviceState.STOPPED, 20, message="end of file")
    run.stop()
    got = SampleBatch.concat(run.batches)
    assert got.values[:, 0].tolist() == list(range(36))
    np.testing.assert_allclose(got.t_local, np.arange(36) / 30.0, atol=1e-3)
    assert "end of clip" in dev.health.message
    span = got.t_arrival[-1] - got.t_arrival[0]
    assert span > 35 / 30.0 * 0.8, f"played too fast for real time ({span:.2f} s for 35 frame periods)"
    stored = gray_levels(out)
    assert len(stored) == 36
    source = gray_levels(src)  # what opencv decodes from the (lossy) source, frame by frame
    assert all(abs(g - s) <= 2 for g, s in zip(stored, source, strict=True)), "frame index does not match the file"
    preview = dev.latest_preview()
    assert preview is not None
    img = cv2.imdecode(np.frombuffer(preview[1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[1] == 320


def test_fast_mode_and_loop(tmp_path: Path) -> None:
    src = write_video(tmp_path / "short.avi", 10, 25.0, "MJPG")
    dev = open_device(f"camera:{src}?realtime=0&loop=1&record=0")
    run = DeviceRunner(dev)
    wait_for(lambda: run.rows() >= 35, 20, message="three loops")
    run.stop()
    got = SampleBatch.concat(run.batches)
    assert got.values[:35, 0].tolist() == list(range(35))  # indexes keep counting across loops
    assert dev.health.state == DeviceState.STOPPED


def test_bad_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="does not exist"):
        open_device(f"camera:{tmp_path}/missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 1000)
    dev = open_device(f"camera:{junk}?record=0")
    run = DeviceRunner(dev)
    wait_for(lambda: dev.health.errors.get("open_failed", 0) >= 1, message="open failure")
    assert "cannot open" in dev.health.message
    run.stop()


def test_camera_through_the_node_with_preview_in_redis(tmp_path: Path, redis_server: RedisServer, keys: Keys) -> None:
    src = write_video(tmp_path / "lab.avi", 60, 30.0, "MJPG")
    node = NodeThread(redis_server.url, keys, [f"camera:{src}?record={tmp_path / 'out.avi'}"]).start()
    try:
        dev = node.node.devices[0]
        sid = dev.sensors()[0].sensor_id
        c = redis_server.client()
        wait_for(lambda: sum(len(e.batch) for e in read_all(c, keys, sid)) == 60, 20, message="60 frames in Redis")
        wait_for(lambda: c.hget(keys.preview(sid), "jpeg"), 10, message="a preview in Redis")
        jpeg = c.hget(keys.preview(sid), "jpeg")
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    finally:
        node.stop()


def test_discovery_lists_capture_devices() -> None:
    found = asyncio.run(discover_all(1.0, schemes=["camera"]))
    assert all(d.uri.startswith("camera:") and d.available for d in found)


def test_recorded_session_holds_the_video_and_its_frame_indexes(
    tmp_path: Path, redis_server: RedisServer, keys: Keys
) -> None:
    import time

    import pyxdf

    from sensorium_desktop.bus.sessions import Session
    from sensorium_desktop.recording.export import export_recording

    src = write_video(tmp_path / "lab.avi", 90, 30.0, "MJPG")
    node = NodeThread(redis_server.url, keys, [f"camera:{src}?record={tmp_path / 'cam.avi'}"], node_id="cam-node",
                      sessions_dir=tmp_path / "sessions").start()  # fmt: skip
    c = redis_server.client()
    try:
        sid = node.node.devices[0].sensors()[0].sensor_id
        s = Session("camrec", sensors=[sid], state="recording", recorder="cam-node", started=time.time())
        c.hset(keys.sessions, "camrec", s.to_json())
        wait_for(lambda: int(c.hget(keys.recording("camrec"), "samples") or 0) >= 20, 20, message="frames recorded")
        s.state, s.stopped = "stopped", time.time()
        c.hset(keys.sessions, "camrec", s.to_json())
        wait_for(lambda: c.hget(keys.recording("camrec"), "state") == b"complete", 20, message="complete")
    finally:
        node.stop()
    rec_dir = tmp_path / "sessions" / "camrec"
    linked = rec_dir / "video" / "cam.avi"
    assert linked.is_file() and linked.stat().st_ino == (tmp_path / "cam.avi").stat().st_ino
    out = export_recording(rec_dir, "xdf", tmp_path / "cam.xdf").files[0]
    streams, _ = pyxdf.load_xdf(str(out))
    video = next(s for s in streams if s["info"]["type"] == ["VideoRaw"])
    assert video["info"]["desc"][0]["sensorium"][0]["video_file"] == ["video/cam.avi"]
    frames = video["time_series"][:, 0].astype(int)
    assert np.array_equal(frames, np.arange(frames[0], frames[0] + frames.size))  # consecutive frame indexes
    cap = cv2.VideoCapture(str(linked))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) >= frames[-1] + 1  # every recorded index exists in the file
    cap.release()
