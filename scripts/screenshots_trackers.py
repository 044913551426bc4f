"""Screenshots of real eye-tracker and pose sources (README, docs/screenshots):

    .venv/bin/python scripts/screenshots_trackers.py [--out docs/screenshots]

A node connects ``pupil:…?world=1`` (tests/pupil_capture.py: a stand-in speaking Pupil
Capture's Network API, with a real photo as its scene camera) and ``pose:camera:clip.avi``
(MediaPipe on scikit-image's astronaut photo played as a video). Saved: the gaze heatmap over
Capture's scene frame, the skeleton view with the MediaPipe skeleton over its frame, and the
review of a recording of both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()

    from pupil_capture import PupilCaptureStandIn
    from PySide6 import QtCore
    from screenshots import make_pump, saver

    from benchmarks.pose import person_clip
    from sensorium_desktop.bus.connection import async_client, open_endpoint
    from sensorium_desktop.bus.keys import Keys
    from sensorium_desktop.ui.app import make_app
    from sensorium_desktop.ui.main_window import MainWindow
    from sensorium_desktop.ui.review_window import open_review_window
    from sensorium_desktop.viewmodel.app import AppModel

    work = Path(tempfile.mkdtemp(prefix="sensorium-shots-trackers-"))
    os.environ["SENSORIUM_DATA_DIR"] = str(work / "data")
    endpoint = open_endpoint(None, "trackers")
    keys = Keys("trackers")
    capture = PupilCaptureStandIn(drift_ppm=40.0).start()
    clip = person_clip(work / "person.avi", 30.0)
    devices = ["--device", f"pupil:127.0.0.1:{capture.port}?world=1", "--device", f"pose:camera:{clip}?loop=1"]
    node = subprocess.Popen([sys.executable, "-m", "sensorium_desktop", "node", "--redis-url", endpoint.url,
                             "--prefix", "trackers", "--node-id", "lab-pc-1", *devices])  # fmt: skip
    app = make_app()
    settings = QtCore.QSettings(str(work / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    model = AppModel(endpoint.url, keys, "gui-trackers")
    win = MainWindow(model, settings=settings)
    win.resize(1600, 1000)
    win.show()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the panels schedule their preview fetches on it (qasync's, in the app)
    c = async_client(endpoint.url)
    model.redis = c  # the panels fetch camera previews (Capture's scene, the pose camera) with it
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    reviews = []

    pump = make_pump(loop, model, c, win, app)
    save = saver(out)

    try:
        pump(15)
        sensors = model.devices.tree.sensors
        gaze = next(s for s, i in sensors.items() if i.transport == "pupil" and s.endswith("-gaze"))
        gaze_panel = win.panels["gaze"]
        gaze_panel.source_box.setCurrentText(gaze)  # type: ignore[attr-defined]
        for name, shot in (("gaze", "panel-gaze-pupil.png"), ("skeleton", "panel-skeleton-mediapipe.png")):
            win.docks[name].raise_()
            pump(6)
            save(win.docks[name].widget(), shot)
        loop.run_until_complete(model.sessions.create(participant="02", task="freeview"))
        sid = model.sessions.current or ""
        wanted = [s for s, i in sensors.items() if i.transport in ("pupil", "pose")]
        loop.run_until_complete(model.sessions.add_sensors(sid, wanted))
        model.sessions.recorder_node = "lab-pc-1"
        loop.run_until_complete(model.sessions.start_recording(sid))
        pump(10)
        loop.run_until_complete(model.sessions.stop_recording(sid))
        end = time.time() + 30
        while time.time() < end and model.sessions.recording.get(sid, {}).get("state") != "complete":
            pump(0.5)
        review = open_review_window(Path(model.sessions.recording_directory(sid)))
        if review is None:
            raise SystemExit("screenshots: the recording does not open for review")
        reviews.append(review)
        review.resize(1500, 950)
        review.model.set_cursor(review.model.start + 6.0)
        pump(1.5)
        save(review, "review-pupil-pose.png")
        print(f"screenshots in {out}")
    finally:
        for r in reviews:
            r.close()
        win.close()
        loop.run_until_complete(c.aclose())
        node.terminate()
        node.wait(20)
        capture.stop()
        endpoint.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
