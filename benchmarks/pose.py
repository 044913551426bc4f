"""Webcam pose: frames/s analysed and capture → skeleton latency, next to the camera's rate.

    python -m benchmarks.pose [--seconds 12] [--fps 30]

A 640 × 480 MJPG clip of a real person (scikit-image's astronaut photo; a drawn stand-in when
scikit-image is missing) is played in real time as ``pose:camera:clip.avi?loop=1`` through
:class:`~sensorium_desktop.devices.pose.PoseDevice` (capture thread + MediaPipe Pose in its
inference thread). Printed: the camera's measured frame rate (the baseline, same run), the
skeletons per second and their ratio to it, frames skipped by inference, and the latency from
a frame's capture to its skeleton, p50/p95 (ms). Goal here: ≥ 15 fps, p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices.base import open_device

WARMUP_S = 2.0


def person_clip(path: Path, fps: float, size: tuple[int, int] = (640, 480)) -> Path:
    """A one-second clip of the astronaut photo at ``size``."""
    try:
        from skimage import data

        img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    except ImportError:
        img = np.full((512, 512, 3), 200, np.uint8)
    frame = cv2.resize(img, size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    for _ in range(round(fps)):
        writer.write(frame)
    writer.release()
    return path


def run(clip: Path, seconds: float) -> dict[str, float]:
    dev = open_device(f"pose:camera:{clip}?loop=1&record=0")
    got: list[tuple[float, SampleBatch]] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(dev.run(lambda b: got.append((time.monotonic(), b)), stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task

    asyncio.run(main())
    t_end = max(t for t, _b in got)
    t_from = t_end - (seconds - WARMUP_S)
    frames = sum(len(b) for t, b in got if t >= t_from and b.sensor_id.endswith("-video"))
    skeletons = sum(len(b) for t, b in got if t >= t_from and b.sensor_id.endswith("-skeleton"))
    d = dev.details()
    span = t_end - t_from
    return {"camera_fps": frames / span, "pose_fps": skeletons / span, "skipped": d["pose_skipped"],
            "analysed": d["pose_analysed"], "p50_ms": d["pose_latency_p50_ms"],
            "p95_ms": d["pose_latency_p95_ms"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(person_clip(Path(tmp) / "clip.avi", args.fps), args.seconds)
    print(f"pose: 640x480 at {args.fps:g} fps, {args.seconds:g} s (first {WARMUP_S:g} s left out)")
    ratio = r["pose_fps"] / r["camera_fps"]
    print(f"  camera {r['camera_fps']:.1f} fps; skeletons {r['pose_fps']:.1f} fps; ratio {ratio:.2f} (goal >= 15 fps)")
    print(f"  frames analysed {r['analysed']:.0f}, skipped by inference {r['skipped']:.0f}")
    print(f"  capture -> skeleton latency p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms (goal p95 <= 100 ms)")


if __name__ == "__main__":
    main()
