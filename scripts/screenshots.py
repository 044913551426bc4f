"""Regenerate the README screenshots: a real node (simulated lab, two breathing participants)
and the window offscreen with a session being recorded; saves the window, every panel, and
the export dialog after the recording was stopped and exported.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--seconds 30]
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


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()

    from PySide6 import QtCore

    from sensorium_desktop.bus.connection import async_client, open_endpoint
    from sensorium_desktop.bus.keys import Keys
    from sensorium_desktop.bus.sessions import mark_recordings
    from sensorium_desktop.ui.app import make_app
    from sensorium_desktop.ui.main_window import MainWindow
    from sensorium_desktop.viewmodel.app import AppModel

    os.environ["SENSORIUM_DATA_DIR"] = tempfile.mkdtemp(prefix="sensorium-shots-")
    endpoint = open_endpoint(None, "shots")
    node = subprocess.Popen(
        [sys.executable, "-m", "sensorium_desktop", "node", "--redis-url", endpoint.url, "--prefix", "shots",
         "--node-id", "lab-pc-1", "--priority", "10", "--device", "sim:lab", "--device", "sim:belt?participant=2"],
    )  # fmt: skip
    app = make_app()
    settings = QtCore.QSettings(tempfile.mktemp(suffix=".ini"), QtCore.QSettings.Format.IniFormat)
    model = AppModel(endpoint.url, Keys("shots"), "gui-shots")
    win = MainWindow(model, settings=settings)
    win.resize(1600, 1000)
    win.show()
    loop = asyncio.new_event_loop()
    c = async_client(endpoint.url)

    def pump(seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            loop.run_until_complete(model.refresh(c))
            loop.run_until_complete(model.live.read_once(c, block_ms=30))
            loop.run_until_complete(model.lab.refresh())
            loop.run_until_complete(win.drain())
            win.update_attention()
            app.processEvents()
            time.sleep(0.03)

    try:
        pump(5)
        win.devices_panel.discover()  # the node scans every transport; unconnected devices are offered
        pump(7)
        sessions = win.panels["sessions"]
        loop.run_until_complete(model.sessions.create(participant="01", session="pilot", task="rest", run="01"))
        sid = model.sessions.current or ""
        chosen = ["sim-chest-ecg", "sim-belt-respiration", "sim-eyes-eye_gaze", "sim-pose-skeleton"]
        loop.run_until_complete(model.sessions.add_sensors(sid, chosen))
        for s in ("sim-chest-ecg", "sim-belt-respiration", "sim-belt-p2-respiration"):
            item = win.devices_panel.sensor_item(s)
            if item is not None:
                item.setSelected(True)
        model.sessions.recorder_node = "lab-pc-1"
        loop.run_until_complete(model.sessions.start_recording(sid))
        sessions.marker("eyes closed")  # type: ignore[attr-defined]
        pump(args.seconds / 2)
        for label, source in (("stimulus on", "pupil"), ("block 2", "rcs"), ("from the shell", "cli")):
            loop.run_until_complete(mark_recordings(c, Keys("shots"), label, source))  # the other inboxes
            pump(1.0)
        pump(args.seconds / 2 - 3)
        args.out.mkdir(parents=True, exist_ok=True)
        win.grab().save(str(args.out / "main-window.png"))
        for name in ("devices", "sessions", "gaze", "skeleton", "sync", "election", "backpressure"):
            win.docks[name].raise_()
            pump(1.0)
            win.docks[name].widget().grab().save(str(args.out / f"panel-{name}.png"))
        loop.run_until_complete(model.sessions.stop_recording(sid))
        end = time.time() + 30
        while time.time() < end and model.sessions.recording.get(sid, {}).get("state") != "complete":
            pump(0.5)
        win.export_recording()
        dialog = win.export_dialog
        dialog.start()
        dialog.wait(120)
        pump(1.0)
        dialog.grab().save(str(args.out / "export-dialog.png"))
        win.grab().save(str(args.out / "main-window-recorded.png"))
        print(f"screenshots in {args.out}")
    finally:
        win.close()
        loop.run_until_complete(c.aclose())
        node.terminate()
        node.wait(20)
        endpoint.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
