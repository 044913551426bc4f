"""Regenerate every screenshot the README shows, from real parts: an embedded Redis, a node
with the simulated lab (two breathing participants, a 32-channel EEG), a camera playing a
generated video file, a serial instrument on a pseudo-terminal and an LSL outlet; the window
offscreen with a session being recorded, every panel, the export dialog, the review of that
session and of an XDF file, and the devices panel after things went wrong (a silent serial
sensor, a port that does not exist, an unknown transport, a Bluetooth strap whose node went
away).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_video(path: Path, seconds: float = 10.0, fps: float = 30.0) -> Path:
    """A test scene (moving disc, frame counter) as MJPG; the camera transport plays it in a loop."""
    import cv2
    import numpy as np

    w, h = 320, 240
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(int(seconds * fps)):
        t = i / fps
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = (xx * 255 // w).astype(np.uint8)
        frame[..., 1] = (yy * 180 // h).astype(np.uint8)
        frame[..., 2] = 60
        cx, cy = int(w / 2 + 100 * math.cos(t)), int(h / 2 + 70 * math.sin(1.3 * t))
        cv2.circle(frame, (cx, cy), 22, (255, 255, 255), -1)
        cv2.putText(frame, f"frame {i}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
        writer.write(frame)
    writer.release()
    return path


class SerialInstrument(threading.Thread):
    """A CSV instrument on a real pseudo-terminal: a header, then one ``signal`` value at 50 Hz."""

    def __init__(self, link: Path) -> None:
        super().__init__(name="serial-instrument", daemon=True)
        self.master, slave = os.openpty()
        link.unlink(missing_ok=True)
        link.symlink_to(os.ttyname(slave))
        os.close(slave)
        self.link = link
        self.running = threading.Event()
        self.running.set()
        self.stopped = False

    def run(self) -> None:
        k = 0
        os.write(self.master, b"signal\n")
        while not self.stopped:
            if self.running.is_set():
                os.write(self.master, f"{math.sin(k / 50 * 2 * math.pi * 0.7) * 100:.3f}\n".encode())
                k += 1
            time.sleep(0.02)


class LslOutlet(threading.Thread):
    """An 8-channel EEG outlet at 250 Hz (what an amplifier's LSL app offers)."""

    def __init__(self, name: str) -> None:
        super().__init__(name="lsl-outlet", daemon=True)
        import pylsl

        self.outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 8, 250.0, pylsl.cf_float32, "shots-amp-1"))
        self.stopped = False

    def run(self) -> None:
        import numpy as np

        rng = np.random.default_rng(3)
        n = 0
        while not self.stopped:
            t = (n + np.arange(10)) / 250.0
            chunk = (20 * np.sin(2 * np.pi * 10 * t)[:, None] + rng.normal(0, 5, (10, 8))).astype(np.float32)
            self.outlet.push_chunk(chunk.tolist())
            n += 10
            time.sleep(0.04)


def make_pump(loop, model, c, win, app):  # type: ignore[no-untyped-def]
    """``pump(seconds)``: run the window's refreshes (device tree, live data, lab status,
    drained tasks) and Qt's events for that long, as the app's event loop would."""

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

    return pump


def saver(out: Path):  # type: ignore[no-untyped-def]
    """``save(widget, name)``: grab a widget into ``out/name`` and say so."""

    def save(widget, name: str) -> None:  # type: ignore[no-untyped-def]
        widget.grab().save(str(out / name))
        print(f"  {name}")

    return save


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()

    from PySide6 import QtCore

    from sensorium_desktop.bus.connection import async_client, open_endpoint
    from sensorium_desktop.bus.keys import Keys
    from sensorium_desktop.bus.registry import DeviceStatus, register_sensors
    from sensorium_desktop.bus.sessions import mark_recordings
    from sensorium_desktop.core.samples import SensorInfo
    from sensorium_desktop.ui.app import make_app
    from sensorium_desktop.ui.main_window import MainWindow
    from sensorium_desktop.ui.review_window import open_review_window
    from sensorium_desktop.viewmodel.app import AppModel

    work = Path(tempfile.mkdtemp(prefix="sensorium-shots-"))
    os.environ["SENSORIUM_DATA_DIR"] = str(work / "data")
    endpoint = open_endpoint(None, "shots")
    keys = Keys("shots")
    video = make_video(work / "scene.avi")
    serial = SerialInstrument(work / "ttyINSTR0")
    serial.start()
    lsl = LslOutlet("ScreenshotEEG")
    lsl.start()
    devices = ["sim:lab", "sim:belt?participant=2", "sim:eeg?channels=32", f"camera:{video}?loop=1",
               f"serial:{serial.link}?protocol=csv&rate=50", "lsl:ScreenshotEEG"]  # fmt: skip
    from sensorium_desktop.logfiles import NODE_LOG, log_path

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # the window's records reach the log viewer
    node_cmd = [sys.executable, "-m", "sensorium_desktop", "--log-file", str(log_path(NODE_LOG)), "node",
                "--redis-url", endpoint.url, "--prefix", "shots", "--node-id", "lab-pc-1",
                "--priority", "10"]  # fmt: skip
    for d in devices:
        node_cmd += ["--device", d]
    node = subprocess.Popen(node_cmd)
    app = make_app()
    settings = QtCore.QSettings(str(work / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    model = AppModel(endpoint.url, keys, "gui-shots")
    win = MainWindow(model, settings=settings)
    win.resize(1600, 1000)
    win.show()
    loop = asyncio.new_event_loop()
    c = async_client(endpoint.url)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    reviews = []

    pump = make_pump(loop, model, c, win, app)

    def sensor_of(attribute: str, device_part: str = "") -> str:
        for sid, info in model.devices.tree.sensors.items():
            if info.attribute == attribute and device_part in sid:
                return sid
        raise SystemExit(f"screenshots: no {attribute} sensor ({device_part}) appeared")

    save = saver(out)

    try:
        pump(8)
        win.devices_panel.discover()  # the node scans every transport; unconnected devices are offered
        pump(7)
        sessions = win.panels["sessions"]
        loop.run_until_complete(model.sessions.create(participant="01", session="pilot", task="rest", run="01"))
        sid = model.sessions.current or ""
        chosen = ["sim-chest-ecg", "sim-belt-respiration", "sim-eyes-eye_gaze", "sim-pose-skeleton",
                  sensor_of("video"), "sim-eeg-eeg"]  # fmt: skip
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
            loop.run_until_complete(mark_recordings(c, keys, label, source))  # the other inboxes
            pump(1.0)
        pump(args.seconds / 2 - 3)
        save(win, "main-window.png")
        for name in ("devices", "sessions", "gaze", "skeleton", "sync", "election", "backpressure", "log"):
            win.docks[name].raise_()
            pump(1.0)
            save(win.docks[name].widget(), f"panel-{name}.png")
        win.plot_sensors(["sim-eeg-eeg"])
        pump(4.0)
        save(win.plot_area, "eeg-32ch.png")
        loop.run_until_complete(model.sessions.stop_recording(sid))
        end = time.time() + 30
        while time.time() < end and model.sessions.recording.get(sid, {}).get("state") != "complete":
            pump(0.5)
        win.export_recording()
        dialog = win.export_dialog
        dialog.start()
        dialog.wait(120)
        pump(1.0)
        save(dialog, "export-dialog.png")
        win.plot_sensors(["sim-chest-ecg", "sim-belt-respiration", "sim-belt-p2-respiration"])
        pump(2.0)
        save(win, "main-window-recorded.png")

        # the review of that session (video, gaze heatmap, skeleton, markers) and of an XDF file
        session_dir = Path(model.sessions.recording_directory(sid))
        review = open_review_window(session_dir)
        if review is None:
            raise SystemExit(f"screenshots: the session {session_dir} does not open for review")
        reviews.append(review)
        review.model.set_cursor(review.model.start + (review.model.end - review.model.start) * 0.55)
        pump(1.0)
        save(review, "review-session.png")
        xdf = open_review_window(ROOT / "tests" / "data" / "xdf" / "clock_resets.xdf")
        if xdf is None:
            raise SystemExit("screenshots: tests/data/xdf/clock_resets.xdf does not open")
        reviews.append(xdf)
        xdf.model.set_cursor(xdf.model.start + 40.0)
        pump(1.0)
        save(xdf, "review-xdf.png")

        # the devices panel alone (floating: the whole tree), then after things went wrong:
        # a silent serial sensor, a missing port, an unknown transport, a BLE strap whose node left
        panel = win.devices_panel
        dock = win.docks["devices"]
        dock.setFloating(True)
        dock.resize(460, 800)
        panel.tree.expandAll()
        pump(0.5)
        save(panel, "devices.png")
        serial.running.clear()
        strap = SensorInfo("polar-h10-a1b2-ecg", "ecg", "polar-h10-a1b2", "Polar H10 A1B2", "ble",
                           "ble:A0:9E:1A:00:A1:B2", node_id="lab-pc-2", nominal_rate=130.0)  # fmt: skip
        sync_client = endpoint.client()
        register_sensors(sync_client, keys, [strap])
        gone = DeviceStatus("polar-h10-a1b2", "Polar H10 A1B2", "ble", strap.uri, "lab-pc-2", "streaming",
                            health={"rates": {strap.sensor_id: 0.0}, "last_data": {strap.sensor_id: time.time() - 52}},
                            sensor_ids=[strap.sensor_id], updated=time.time() - 52)  # fmt: skip
        sync_client.hset(keys.device(gone.device_id), mapping=gone.to_mapping())
        sync_client.sadd(keys.devices, gone.device_id)
        panel.connect_uri("serial:/dev/ttyUSB7?protocol=csv")
        pump(2.0)
        panel.connect_uri("blu:AA:BB")
        pump(7.0)
        dock.resize(440, 600)
        panel.tree.expandAll()
        for name, group in panel._groups.items():  # the working simulated lab folded: the failures in view
            group.setExpanded(name != "simulated")
        pump(0.5)
        save(panel, "panel-devices-failures.png")
        print(f"screenshots in {out}")
    finally:
        for r in reviews:
            r.close()
        win.close()
        loop.run_until_complete(c.aclose())
        node.terminate()
        node.wait(20)
        serial.stopped = lsl.stopped = True
        endpoint.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
