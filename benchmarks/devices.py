"""Device transports: serial line throughput and camera frame rate, against baselines.

    python -m benchmarks.devices [--lines 200000] [--frames 150]

1. **serial decoder** (in memory): CSV lines/s through :class:`LineDecoder` fed 64 KiB reads,
   next to the usual per-line ``split``/``float`` parse of the same bytes;
2. **serial over a real pseudo-terminal**: lines/s from the first byte written to the last
   row decoded by :class:`SerialDevice` (its reader thread + decoder), next to a pyserial
   ``readline()`` + per-line parse loop reading the same bytes from the same kind of pty;
3. **camera, real time**: measured fps of a video file played as a camera, against the
   file's nominal fps (target ratio 1.00);
4. **camera, as fast as possible**: fps of :class:`CameraDevice` (decode + MJPG store +
   preview) against a bare ``cv2.VideoCapture.read()`` loop over the same file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import serial

from sensorium_desktop.core.lineproto import LineDecoder
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices import DeviceState, open_device
from sensorium_desktop.devices.base import Device


def csv_blob(n: int) -> bytes:
    rng = np.random.default_rng(1)
    v = rng.normal(size=(n, 4)).round(4)
    head = b"t_ms,a,b,c,d\n"
    return head + b"".join(f"{i},{r[0]},{r[1]},{r[2]},{r[3]}\n".encode() for i, r in enumerate(v.tolist()))


def naive_parse(blob: bytes) -> int:
    rows = 0
    for line in blob.split(b"\n")[1:]:
        if line:
            [float(x) for x in line.split(b",")]
            rows += 1
    return rows


def bench_decoder(blob: bytes, n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    dec = LineDecoder()
    rows = 0
    for i in range(0, len(blob), 65536):
        rows += sum(r.values.shape[0] for r in dec.feed(blob[i : i + 65536], 0.0))
    ours = time.perf_counter() - t0
    assert rows == n, rows
    t0 = time.perf_counter()
    assert naive_parse(blob) == n
    return n / ours, n / (time.perf_counter() - t0)


def make_pty() -> tuple[int, str]:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    return master, name


def feed(master: int, blob: bytes) -> threading.Thread:
    def run() -> None:
        view = memoryview(blob)
        while view:
            view = view[os.write(master, view[:65536]) :]

    t = threading.Thread(target=run, daemon=True)
    return t


def run_device(dev: Device, until: Callable[[list[SampleBatch]], bool], timeout: float) -> list[SampleBatch]:
    batches: list[SampleBatch] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(dev.run(batches.append, stop))
        deadline = time.monotonic() + timeout
        while not until(batches) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.005)
        stop.set()
        await task

    asyncio.run(main())
    return batches


def bench_pty(blob: bytes, n: int) -> tuple[float, float]:
    master, name = make_pty()
    dev = open_device(f"serial:{name}?baud=921600")
    result: dict[str, float] = {}

    def until(batches: list[SampleBatch]) -> bool:
        if dev.health.state == DeviceState.STREAMING and "t0" not in result:
            result["t0"] = time.perf_counter()
            feed(master, blob).start()
        rows = sum(len(b) for b in batches)
        if rows >= n:
            result.setdefault("t1", time.perf_counter())
            return True
        return False

    run_device(dev, until, 120)
    os.close(master)
    ours = n / (result["t1"] - result["t0"])

    master, name = make_pty()
    port = serial.Serial(name, 921600, timeout=0.5)
    writer = feed(master, blob)
    t0 = time.perf_counter()
    writer.start()
    port.readline()  # header
    rows = 0
    while rows < n:
        line = port.readline()
        if not line:
            break
        [float(x) for x in line.split(b",")]
        rows += 1
    naive = rows / (time.perf_counter() - t0)
    port.close()
    os.close(master)
    return ours, naive


def write_clip(path: Path, frames: int, fps: float) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    for i in range(frames):
        w.write(np.roll(base, i * 4, axis=1))
    w.release()


def bench_camera(clip: Path, frames: int, fps: float, out: Path) -> tuple[float, float, float]:
    dev = open_device(f"camera:{clip}?record={out / 'rt.avi'}")
    got = run_device(dev, lambda b: dev.health.state == DeviceState.STOPPED, 60)
    t = SampleBatch.concat(got).t_arrival
    realtime_fps = (len(t) - 1) / (t[-1] - t[0])
    assert len(t) == frames, len(t)

    dev = open_device(f"camera:{clip}?realtime=0&record={out / 'fast.avi'}")
    t0 = time.perf_counter()
    got = run_device(dev, lambda b: dev.health.state == DeviceState.STOPPED, 60)
    fast_fps = sum(len(b) for b in got) / (time.perf_counter() - t0)

    cap = cv2.VideoCapture(str(clip))
    t0 = time.perf_counter()
    k = 0
    while cap.read()[0]:
        k += 1
    raw_fps = k / (time.perf_counter() - t0)
    cap.release()
    return realtime_fps, fast_fps, raw_fps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()
    blob = csv_blob(args.lines)
    print(f"serial: {args.lines} CSV lines of 5 columns ({len(blob) / 1e6:.1f} MB)")
    ours, naive = bench_decoder(blob, args.lines)
    print(f"  decoder in memory: {ours / 1e3:,.0f} k lines/s; per-line split+float {naive / 1e3:,.0f} k lines/s;"
          f" ratio {ours / naive:.1f}x")  # fmt: skip
    ours, naive = bench_pty(blob, args.lines)
    print(f"  over a pty: SerialDevice {ours / 1e3:,.0f} k lines/s;"
          f" pyserial readline loop {naive / 1e3:,.0f} k lines/s; ratio {ours / naive:.1f}x")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        write_clip(clip, args.frames, args.fps)
        rt, fast, raw = bench_camera(clip, args.frames, args.fps, Path(tmp))
    print(f"camera: {args.frames} frames 640x480 MJPG at {args.fps:g} fps")
    print(f"  real time: measured {rt:.2f} fps vs nominal {args.fps:g} fps; ratio {rt / args.fps:.3f}")
    print(f"  as fast as possible: {fast:.0f} fps (decode + store + preview) vs bare cv2 read {raw:.0f} fps;"
          f" ratio {fast / raw:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
