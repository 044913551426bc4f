"""Opening and scrubbing a long recording in the review window.

    python -m benchmarks.review [--minutes 60] [--channels 32] [--rate 512]

Writes a session (``--channels`` × ``--rate`` Hz EEG for ``--minutes``, a 30 fps MJPG camera
with its frame-index stream, markers every 10 s), then measures:

1. **open**: reading the session and showing the review window (first paint, offscreen);
2. **scrub**: cursor moves to random places (each a new visible range: envelopes queried,
   the video frame decoded, every view redrawn), as frames per second;
3. the same recording exported to XDF and read with ``pyxdf.load_xdf`` (the baseline an
   LSL user has), in the same run.

Targets: open ≤ 3 s and scrub ≥ 30 fps for 60 min × 32 ch × 512 Hz + 30 fps video.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_session(directory: Path, minutes: float, channels: int, rate: float) -> None:
    import cv2

    from sensorium_desktop.core.samples import SampleBatch, SensorInfo
    from sensorium_desktop.recording.spool import RecordKind, SpoolWriter, write_json_atomic

    directory.mkdir(parents=True)
    (directory / "video").mkdir()
    seconds = int(minutes * 60)
    t0 = 1_795_000_000.0
    eeg = SensorInfo("amp-eeg", "eeg", "amp", "Amplifier", channel_names=tuple(f"C{i}" for i in range(channels)),
                     units=("uV",) * channels, channel_format="float32", nominal_rate=rate, has_clock=True,
                     node_id="n1")  # fmt: skip
    cam = SensorInfo("cam-video", "video", "cam", "Camera", channel_names=("frame_index",), units=("frame",),
                     channel_format="float64", nominal_rate=30.0, node_id="n1",
                     extra={"session_video": "video/cam.avi"})  # fmt: skip
    writer = SpoolWriter(directory)
    for info in (eeg, cam):
        writer.add_json(RecordKind.SENSOR, json.loads(info.to_json()))
    video = cv2.VideoWriter(str(directory / "video" / "cam.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    frame = np.zeros((120, 160, 3), np.uint8)
    rng = np.random.default_rng(1)
    n = int(rate)
    phase = np.arange(channels) * 0.3
    for s in range(seconds):
        t = t0 + s + np.arange(n) / rate
        vals = (50 * np.sin(2 * np.pi * 10 * t[:, None] + phase) + rng.normal(0, 5, (n, channels))).astype(np.float32)
        writer.add_batch(SampleBatch("amp-eeg", "eeg", t + 0.01, vals, t - t0, s, s * n), f"{int(t[0] * 1000)}-{s}")
        idx = s * 30 + np.arange(30)
        tf = t0 + idx / 30.0
        writer.add_batch(SampleBatch("cam-video", "video", tf, idx.astype(np.float64).reshape(-1, 1), None, s, s * 30),
                         f"{int(tf[0] * 1000)}-{s}")  # fmt: skip
        for k in range(30):
            frame[:] = (s * 30 + k) % 250
            video.write(frame)
        if s % 10 == 5:
            writer.add_json(RecordKind.MARKER, {"label": f"event {s}", "source": "bench", "t_global": repr(t0 + s),
                                                "t_host": repr(t0 + s), "clock": "global", "id": f"m{s}"})  # fmt: skip
        if s % 4 == 0:
            writer.add_json(RecordKind.CLOCK, {"time": t0 + s, "clocks": {}, "hostoffsets": {"n1": {"offset": "0.0"}}})
        if s % 30 == 0:
            writer.flush()
    writer.close()
    video.release()
    infos = [json.loads(eeg.to_json()), json.loads(cam.to_json())]
    write_json_atomic(directory / "session.json", {
        "session_id": "bench", "bids_name": "sub-bench", "state": "complete", "started": t0, "stopped": t0 + seconds,
        "sensors": ["amp-eeg", "cam-video"], "sensor_infos": infos})  # fmt: skip


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--rate", type=float, default=512.0)
    ap.add_argument("--moves", type=int, default=150)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-review-"))
    session = tmp / "session"
    try:
        t = time.perf_counter()
        write_session(session, args.minutes, args.channels, args.rate)
        print(f"wrote {args.minutes:g} min x {args.channels} ch x {args.rate:g} Hz + 30 fps video "
              f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
        from PySide6 import QtWidgets

        from sensorium_desktop.recording.review import open_review
        from sensorium_desktop.ui.review_window import ReviewWindow

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        t = time.perf_counter()
        data = open_review(session)
        t_read = time.perf_counter() - t
        win = ReviewWindow(data)
        win.resize(1400, 850)
        win.show()
        app.processEvents()
        win.grab()  # the first paint
        t_open = time.perf_counter() - t
        m = win.model
        rng = np.random.default_rng(3)
        targets = rng.uniform(m.start, m.end, args.moves)
        t = time.perf_counter()
        for target in targets:  # as on screen: the window repaints what changed
            m.set_cursor(float(target))
            app.processEvents()
        scrub_fps = args.moves / (time.perf_counter() - t)
        t = time.perf_counter()
        for target in targets[:30]:  # worst case: the whole window rendered again each time
            m.set_cursor(float(target))
            app.processEvents()
            win.grab()
        grab_fps = 30 / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(args.moves):  # playback-like: the next frame each time
            m.step(1)
            app.processEvents()
        step_fps = args.moves / (time.perf_counter() - t)
        win.close()
        import pyxdf

        from sensorium_desktop.recording.export import export_recording

        xdf = tmp / "bench.xdf"
        t = time.perf_counter()
        export_recording(session, "xdf", xdf)
        t_export = time.perf_counter() - t
        t = time.perf_counter()
        pyxdf.load_xdf(str(xdf))
        t_pyxdf = time.perf_counter() - t
        # the XDF opened from the window: read in a thread; how long the asking window's loop stalls
        from PySide6 import QtCore

        from sensorium_desktop.ui.review_window import load_review_window

        owner = QtWidgets.QWidget()
        ticks: list[float] = []
        timer = QtCore.QTimer(interval=10)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        t = time.perf_counter()
        loader = load_review_window(xdf, owner)
        while not loader.outcome:
            app.processEvents()
            time.sleep(0.002)
        t_threaded = time.perf_counter() - t
        timer.stop()
        stall = float(np.max(np.diff(ticks))) if len(ticks) > 1 else float("nan")
        if loader.window is not None:
            loader.window.close()
        print(f"XDF opened from the window (thread + progress): {t_threaded:.2f} s to the window; the asking "
              f"window's event loop stalled at most {stall * 1e3:.0f} ms ({len(ticks)} ticks of 10 ms)")  # fmt: skip
        ok_open, ok_scrub = t_open <= 3.0, scrub_fps >= 30.0
        print(f"open: {t_open:.2f} s to the first paint (read {t_read:.2f} s) "
              f"[target <= 3 s: {'ok' if ok_open else 'MISSED'}]")  # fmt: skip
        print(f"scrub: {scrub_fps:.1f} random moves/s with a new range, frame and repaint each "
              f"[target >= 30: {'ok' if ok_scrub else 'MISSED'}]; frame steps {step_fps:.0f}/s; "
              f"with a whole-window grab each: {grab_fps:.1f}/s")  # fmt: skip
        print(f"baseline pyxdf.load_xdf of the same recording ({xdf.stat().st_size / 1e6:.0f} MB XDF, exported in "
              f"{t_export:.1f} s): {t_pyxdf:.2f} s; open/pyxdf ratio {t_open / t_pyxdf:.2f}")  # fmt: skip
        return 0 if ok_open and ok_scrub else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
