"""``sensorium selftest``: does this installation (a venv or the frozen bundle) work end to end?

Checks, in order, each printed with its outcome and time:

1. the embedded Redis starts (the bundled ``redis-server``) and answers;
2. a node child with the simulated lab starts the way the window starts it (frozen
   executable, ``--parent-pid``), with its sync worker process, and streams every sensor;
3. a 3 s session is recorded by that node's recorder (with a marker) and completes;
4. the recording exports to XDF;
5. the XDF reads back with pyxdf: every stream, sample counts equal to the spool's, the marker;
6. the operator window opens (offscreen when there is no display), shows the lab's sensors,
   and closes.

Before them: every plugin loads, and MediaPipe Pose finds the person in the bundled picture
(offline: the model ships in the wheel).

Runs in a private data directory (nothing of the user's is touched); exits 0 only if every
check passed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

RECORD_S = 3.0
#: where the nose is in data/pose-check.jpg (px, read off the picture)
POSE_NOSE_PX = (223, 128)


class SelfTest:
    def __init__(self, keep: bool = False, out: Callable[[str], None] = print) -> None:
        self.keep = keep
        self.out = out
        self.results: list[tuple[str, bool, str, float]] = []
        self.state: dict[str, Any] = {}

    def check(self, name: str, fn: Callable[[], str]) -> bool:
        t = time.perf_counter()
        try:
            detail = fn()
            ok = True
        except Exception as exc:  # a failed check is reported, the next ones still run when they can
            detail = f"{type(exc).__name__}: {exc}"
            if os.environ.get("SENSORIUM_SELFTEST_TRACE"):
                detail += "\n" + traceback.format_exc()
            ok = False
        dt = time.perf_counter() - t
        self.results.append((name, ok, detail, dt))
        self.out(f"[{'ok' if ok else 'FAIL':>4}] {name} ({dt:.1f} s): {detail}")
        return ok

    # -- checks -----------------------------------------------------------------------------
    def plugins(self) -> str:
        from .plugins import plugin_report
        from .ui.desktop import plugin_registries

        counts, failed, _refused = plugin_report(plugin_registries(), load=True)
        if failed:
            raise RuntimeError("; ".join(failed))
        return counts

    def pose(self) -> str:
        """MediaPipe Pose, offline, on the bundled picture of a person (scikit-image's astronaut):
        33 landmarks, the nose where it is in the picture."""
        import cv2

        from .devices.pose import PoseEstimator, load_pose_solution

        picture = Path(__file__).parent / "data" / "pose-check.jpg"
        img = cv2.imread(str(picture))
        if img is None:
            raise RuntimeError(f"{picture} cannot be read")
        t0 = time.perf_counter()
        estimator = PoseEstimator(load_pose_solution(), static_images=True)
        try:
            found = estimator.estimate(img)
        finally:
            estimator.close()
        took = time.perf_counter() - t0
        if found is None:
            raise RuntimeError(f"no person found in {picture.name}")
        image, _world = found
        h, w = img.shape[:2]
        nose = (image[0] * w, image[1] * h)
        if abs(nose[0] - POSE_NOSE_PX[0]) > 0.05 * w or abs(nose[1] - POSE_NOSE_PX[1]) > 0.05 * w:
            raise RuntimeError(f"the nose was found at ({nose[0]:.0f}, {nose[1]:.0f}) px, not near {POSE_NOSE_PX}")
        return f"33 landmarks, nose at ({nose[0]:.0f}, {nose[1]:.0f}) px, model loaded and run in {took:.1f} s"

    def redis(self) -> str:
        from .bus.connection import open_endpoint
        from .bus.embedded import find_redis_server

        binary, version = find_redis_server()
        endpoint = open_endpoint(None, "selftest")
        self.state["endpoint"] = endpoint
        c = endpoint.client()
        assert c.ping()
        return f"redis-server {'.'.join(map(str, version))} from {binary}"

    def node(self) -> str:
        from .bus.registry import list_sensors
        from .worker.supervisor import NodeProcess

        endpoint = self.state["endpoint"]
        node = NodeProcess(endpoint.url, ["--simulate", "--node-id", "selftest-node", "--prefix", "selftest"],
                           log_path=Path(os.environ["SENSORIUM_DATA_DIR"]) / "node.log")  # fmt: skip
        node.start()
        self.state["node"] = node
        c = endpoint.client()
        deadline = time.monotonic() + 30
        sensors: list[str] = []
        while time.monotonic() < deadline:
            if not node.running:
                raise RuntimeError(f"the node child exited with {node.proc.returncode if node.proc else '?'}")
            sensors = [s.sensor_id for s in list_sensors(c, endpoint.keys)]
            streaming = [s for s in sensors if c.xlen(endpoint.keys.stream(s)) > 0]
            worker = c.get(endpoint.keys.worker_telemetry("selftest-node"))
            if sensors and len(streaming) == len(sensors) and worker:
                self.state["sensors"] = sensors
                return f"pid {node.pid}, {len(sensors)} sensors streaming, sync worker running"
            time.sleep(0.2)
        raise RuntimeError(f"not every sensor streamed within 30 s ({len(sensors)} registered; see node.log)")

    def record(self) -> str:
        from .bus.sessions import Session

        endpoint = self.state["endpoint"]
        keys = endpoint.keys
        c = endpoint.client()
        directory = Path(os.environ["SENSORIUM_DATA_DIR"]) / "sessions" / "selftest"
        s = Session("selftest", participant="selftest", task="check", sensors=self.state["sensors"],
                    directory=str(directory))  # fmt: skip
        s.state, s.recorder, s.started = "recording", "selftest-node", time.time()
        c.hset(keys.sessions, s.session_id, s.to_json())
        time.sleep(RECORD_S / 2)
        t = time.time()
        c.xadd(keys.markers(s.session_id), {"label": "selftest", "source": "selftest", "t_host": repr(t),
                                            "t_global": repr(t), "clock": "host", "host": "selftest"})  # fmt: skip
        time.sleep(RECORD_S / 2)
        s.state, s.stopped = "stopped", time.time()
        c.hset(keys.sessions, s.session_id, s.to_json())
        deadline = time.monotonic() + 30
        status: dict[bytes, bytes] = {}
        while time.monotonic() < deadline:
            status = c.hgetall(keys.recording(s.session_id))
            if status.get(b"state") in (b"complete", b"failed"):
                break
            time.sleep(0.1)
        if status.get(b"state") != b"complete":
            raise RuntimeError(f"recording ended {status.get(b'state')!r}: {status.get(b'error', b'').decode()}")
        self.state["directory"] = directory
        return f"{int(status[b'samples'])} samples, {int(status[b'bytes']) / 1e6:.2f} MB in {directory}"

    def export(self) -> str:
        from .recording.export import export_recording

        result = export_recording(self.state["directory"], "xdf")
        self.state["xdf"] = result.files[0]
        return f"{result.files[0].name}: {result.samples} samples, {result.files[0].stat().st_size / 1e6:.2f} MB"

    def read_back(self) -> str:
        import numpy as np
        import pyxdf

        from .recording.reader import load_recording
        from .recording.xdf import xdf_stream_key

        rec = load_recording(self.state["directory"])
        streams, _ = pyxdf.load_xdf(str(self.state["xdf"]), dejitter_timestamps=False)
        by_name = {xdf_stream_key(s): s for s in streams}
        for sid, data in rec.sensors.items():
            got = len(by_name[sid]["time_stamps"])
            if got != len(data):
                raise RuntimeError(f"{sid}: {got} samples in the XDF, {len(data)} in the spool")
            numeric = len(data) and data.values.dtype != object
            if numeric and not np.array_equal(np.asarray(by_name[sid]["time_series"]), data.values):
                raise RuntimeError(f"{sid}: values differ from the spool")
        ecg = len(rec.sensors["sim-chest-ecg"])
        if ecg < 512 * RECORD_S * 0.7:
            raise RuntimeError(f"only {ecg} ECG samples for {RECORD_S:g} s at 512 Hz")
        markers = [m[0] for m in by_name["Markers"]["time_series"]]
        if markers != ["selftest"]:
            raise RuntimeError(f"markers {markers} != ['selftest']")
        return f"{len(rec.sensors)} streams + markers match the spool ({ecg} ECG samples)"

    def window(self) -> str:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        import asyncio

        from PySide6 import QtCore, QtWidgets

        from .bus.connection import async_client
        from .ui.app import make_app
        from .ui.main_window import MainWindow
        from .viewmodel.app import AppModel

        endpoint = self.state["endpoint"]
        app = make_app()
        settings = QtCore.QSettings(str(Path(os.environ["SENSORIUM_DATA_DIR"]) / "gui.ini"),
                                    QtCore.QSettings.Format.IniFormat)  # fmt: skip
        model = AppModel(endpoint.url, endpoint.keys, "selftest-gui")
        win = MainWindow(model, settings=settings)
        win.show()
        loop = asyncio.new_event_loop()
        c = async_client(endpoint.url)
        try:
            for _ in range(5):
                loop.run_until_complete(model.refresh(c))
                loop.run_until_complete(model.live.read_once(c, block_ms=30))
                app.processEvents()
            shown = win.isVisible()
            sensors = len(model.devices.tree.sensors)
            win.close()
            app.processEvents()
        finally:
            loop.run_until_complete(c.aclose())
            loop.close()
        if not shown:
            raise RuntimeError("the window did not show")
        if sensors < len(self.state["sensors"]):
            raise RuntimeError(f"the device tree shows {sensors} of {len(self.state['sensors'])} sensors")
        platform = QtWidgets.QApplication.platformName()
        return f"opened and closed on Qt platform '{platform}', device tree with {sensors} sensors"

    def flash_window(self) -> str:
        """The sync check's flash window presents 3 flashes and reports each frame's swap."""
        import numpy as np
        from PySide6 import QtWidgets

        from .ui.flash import FlashStimulus

        app = QtWidgets.QApplication.instance()
        assert app is not None, "the operator window check makes the Qt application"
        swaps: list[tuple[int, bool, float]] = []
        stimulus = FlashStimulus("top-left", 100, fullscreen=False, clicks=False)
        stimulus.start(np.array([0.05, 0.25, 0.45]), 0.05, lambda i, lit, t: swaps.append((i, lit, t)))
        deadline = time.monotonic() + 10
        while len(swaps) < 6 and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.002)
        stimulus._end()
        if [(i, lit) for i, lit, _t in swaps] != [(0, True), (0, False), (1, True), (1, False), (2, True), (2, False)]:
            raise RuntimeError(f"the flash window reported {[(i, lit) for i, lit, _t in swaps]}")
        gaps = np.diff([t for _i, lit, t in swaps if lit])
        return f"6 of 6 swaps ({stimulus.timing}), onsets {', '.join(f'{g * 1e3:.0f}' for g in gaps)} ms apart"

    # -- run --------------------------------------------------------------------------------
    def run(self) -> int:
        from .version import __version__

        frozen = bool(getattr(sys, "frozen", False))
        where = f"bundle {sys.executable}" if frozen else f"Python {sys.version.split()[0]}"
        self.out(f"sensorium {__version__} selftest ({where})")
        data = tempfile.mkdtemp(prefix="sensorium-selftest-")
        os.environ["SENSORIUM_DATA_DIR"] = data
        os.environ.pop("SENSORIUM_REDIS_URL", None)
        try:
            steps = [("plugins (entry points)", self.plugins), ("webcam pose on a bundled picture", self.pose),
                     ("embedded Redis", self.redis), ("node child with the simulated lab", self.node),
                     (f"record {RECORD_S:g} s with a marker", self.record), ("export XDF", self.export),
                     ("read the XDF back with pyxdf", self.read_back), ("operator window", self.window),
                     ("sync check flash window", self.flash_window)]  # fmt: skip
            for name, fn in steps:
                if not self.check(name, fn):
                    break  # each check needs the ones before it
        finally:
            node = self.state.get("node")
            if node is not None:
                node.stop()
            endpoint = self.state.get("endpoint")
            if endpoint is not None:
                endpoint.close()
            if not self.keep:
                import shutil

                with contextlib.suppress(OSError):
                    shutil.rmtree(data, ignore_errors=True)
            else:
                self.out(f"kept {data}")
        passed = sum(ok for _n, ok, _d, _t in self.results)
        total = len(steps)
        self.out(f"selftest: {passed}/{total} checks passed")
        return 0 if passed == total else 1
