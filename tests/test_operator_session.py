"""An operator's whole session in the real window with a real node child process (issue 27):
discover right after start, connect, a new session, typing in every field, digits, record,
Ctrl+K and a marker text, ``kill -9`` of the node, stop, export, the review — asserting what
the operator sees at each step. ``SENSORIUM_OPERATOR_SHOTS=DIR`` saves screenshots of the
window at 1366×768 and 1920×1080 and of the review."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import pyxdf
from conftest import AsyncRunner, RedisServer
from PySide6 import QtCore, QtWidgets

from sensorium_desktop.bus.connection import async_client
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.recording.xdf import xdf_stream_key
from sensorium_desktop.viewmodel.alerts import NodeWatch
from sensorium_desktop.worker.supervisor import NodeProcess

pytestmark = pytest.mark.gui

NODE = "op-node"
SHOTS = os.environ.get("SENSORIUM_OPERATOR_SHOTS")


def shot(widget: QtWidgets.QWidget, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(SHOTS) / name))


class Operator:
    """The window, its node child and the app's refresh, as ``sensorium gui`` runs them."""

    def __init__(self, qtbot, arun: AsyncRunner, win, node: NodeProcess, watch: NodeWatch) -> None:  # type: ignore[no-untyped-def]
        self.qtbot, self.arun, self.win, self.node, self.watch = qtbot, arun, win, node, watch

    def pump(self, seconds: float = 0.0) -> None:
        """Refresh as the app's loop does (Redis → models → panels), the supervisor's check too."""
        end = time.monotonic() + seconds
        while True:
            self.arun.run(self._refresh())
            self.watch.check()
            QtWidgets.QApplication.processEvents()
            if time.monotonic() >= end:
                return
            time.sleep(0.05)

    async def _refresh(self) -> None:
        c = async_client(self.win.model.redis_url)
        try:
            await self.win.model.refresh(c)
            await self.win.model.live.read_once(c, block_ms=20)
            await self.win.model.lab.refresh()
            await self.win.drain()
        finally:
            await c.aclose()

    def until(self, what: str, predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator waited {timeout:.0f} s for: {what}")
            self.pump(0.1)

    def key(self, key: QtCore.Qt.Key, modifier=QtCore.Qt.KeyboardModifier.NoModifier, widget=None) -> None:  # type: ignore[no-untyped-def]
        target = widget or QtWidgets.QApplication.focusWidget() or self.win
        self.qtbot.keyClick(target, key, modifier)
        self.pump()


def test_an_operator_session_from_discover_to_review(
    qtbot, arun: AsyncRunner, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sensorium_desktop.ui.main_window import MainWindow
    from sensorium_desktop.ui.review_window import open_review_window
    from sensorium_desktop.viewmodel.app import AppModel

    data = tmp_path / "data"
    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(data))
    keys = Keys(f"op{os.getpid()}")
    c = redis_server.client()
    args = ["--prefix", keys.prefix, "--node-id", NODE, "--device", "sim:lab", "--rcs-port", "0", "--pupil-port", "0"]
    node = NodeProcess(redis_server.url, args, log_path=tmp_path / "node.log")
    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    model = AppModel(redis_server.url, keys, "gui-operator")
    model.sessions.recorder_node = NODE
    win = MainWindow(model, settings=settings)
    qtbot.addWidget(win)
    win.resize(1366, 768)
    win.show()
    win.activateWindow()
    op = Operator(qtbot, arun, win, node, NodeWatch(node, model.alerts))
    devices, sessions = win.devices_panel, win.panels["sessions"]
    node.start()
    try:
        # 1. Discover right after the start, 100 times: every command is answered (before: the
        #    first one stayed at "0% asked" and Discover never came back)
        op.pump()
        op.until("the node to register", lambda: c.sismember(keys.nodes, NODE), 30)
        first_event = c.xrevrange(keys.events, count=1)
        after = first_event[0][0].decode() if first_event else "0-0"
        for _ in range(100):
            win.spawn(model.control.discover(timeout=2.0))
        op.pump()
        sent = [f[b"id"].decode() for _i, f in c.xrange(keys.commands(NODE)) if f.get(b"op") == b"discover"]
        assert len(sent) == 100

        def answered() -> set[str]:
            return {f[b"id"].decode() for _i, f in c.xrange(keys.events, f"({after}", "+")
                    if f.get(b"op") == b"discover"}  # fmt: skip

        op.until("an answer to every Discover", lambda: set(sent) <= answered(), 45)
        op.until("the discovery's result", lambda: devices.discover_button.text() == "Discover", 30)
        assert "discovery:" in devices.message.text() and not devices.progress.isVisible()

        # 2. connect a device by URI (the tree shows it streaming)
        op.until("the simulated lab in the tree", lambda: devices.sensor_item("sim-pose-skeleton") is not None)
        devices.connect_uri("sim:eeg?channels=8&rate=256")
        op.until("the EEG streaming", lambda: devices.sensor_item("sim-eeg-eeg") is not None
                 and model.devices.tree.sensors.get("sim-eeg-eeg") is not None)  # fmt: skip
        assert c.hget(keys.node_connected(NODE), "sim-eeg")  # remembered for a restart

        # 3. a new session with every sensor, 11+ plotted
        sessions.new_session()
        op.pump()
        sid = model.sessions.current
        assert sid
        all_sensors = sorted(model.devices.tree.sensors)
        assert len(all_sensors) >= 14
        win.spawn(model.sessions.add_sensors(sid, all_sensors))
        win.plot_sensors(all_sensors)
        op.pump(1.0)
        assert len(win.plots.entries) == len(all_sensors)
        assert win.plots.graphics.height() >= 120 * len(all_sensors)  # never squeezed: it scrolls

        # 4. typing in every field, then digits with focus in a field: text, not markers
        for name, text in (("participant", "P001"), ("session", "01"), ("run", "1")):
            field = sessions.fields[name]
            field.setFocus()
            qtbot.keyClicks(field, text)
            qtbot.keyClick(field, QtCore.Qt.Key.Key_Tab)
        notes = sessions.fields["notes"]
        notes.setFocus()
        qtbot.keyClicks(notes, "pilot ")
        for digit in range(1, 10):
            qtbot.keyClick(notes, QtCore.Qt.Key(QtCore.Qt.Key.Key_0 + digit))
        op.pump(1.0)
        assert notes.toPlainText() == "pilot 123456789"
        assert c.xlen(keys.markers(sid)) == 0
        name = "sub-P001_ses-01_task-rest_run-1"
        task = sessions.fields["task"]
        task.setFocus()
        qtbot.keyClicks(task, "rest")  # typed last: the focus is still in the field at Ctrl+R

        # 5. record (Ctrl+R) with what the form shows; the name is fixed while it records
        op.key(QtCore.Qt.Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier, win)
        op.until("REC in the status bar", lambda: win.status_recording.text().startswith(f"● REC {name}"), 30)
        assert sessions.bids.text() == name
        run_field = sessions.fields["run"]
        assert run_field.isReadOnly()
        run_field.setFocus()
        for digit in (1, 2, 3):  # focus in a locked field: digits are markers, the field keeps its text
            qtbot.keyClick(run_field, QtCore.Qt.Key(QtCore.Qt.Key.Key_0 + digit))
        op.pump(0.5)
        assert run_field.text() == "1" and sessions.bids.text() == name

        # 6. Ctrl+K focuses the marker text; what is typed next is the marker
        op.key(QtCore.Qt.Key.Key_K, QtCore.Qt.KeyboardModifier.ControlModifier, win)
        assert QtWidgets.QApplication.focusWidget() is sessions.marker_text
        qtbot.keyClicks(sessions.marker_text, "eyes closed")
        qtbot.keyClick(sessions.marker_text, QtCore.Qt.Key.Key_Return)
        op.pump(1.0)
        labels = [f[b"label"].decode() for _i, f in c.xrange(keys.markers(sid))]
        assert labels == ["1", "2", "3", "eyes closed"]
        rows = [sessions.marker_list.topLevelItem(i).text(1) for i in range(sessions.marker_list.topLevelItemCount())]
        assert rows == labels  # one marker, one row
        assert "“eyes closed” at +" in sessions.marker_log.text()
        op.pump(3.0)
        for size in ((1366, 768), (1920, 1080)):
            win.resize(*size)
            op.pump(1.5)
            shot(win, f"operator-main-{size[0]}x{size[1]}.png")
            sync = win.panels["sync"]  # a short panel: the clock table scrolls, it never covers the trend plot
            traces = sync.plot.parentWidget()
            assert sync.table.geometry().bottom() < traces.geometry().top(), size
            assert traces.height() >= sync.plot.minimumHeight(), size
        win.resize(1366, 768)

        # 7. kill -9 of the node child: a banner until acknowledged; the node and the EEG come back
        pid = node.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        op.until("the banner", lambda: win.banner.isVisible(), 10)
        assert "killed by SIGKILL" in win.banner.text.text()
        op.until("the node restarted", lambda: node.pid != pid and node.running, 15)
        assert "restarted" in win.banner.text.text()
        restarted_at = time.time()
        op.until("the EEG streaming again", lambda: float(
            json.loads(c.hget(keys.device("sim-eeg"), "health") or b"{}").get("last_data", {}).get("sim-eeg-eeg", 0))
            > restarted_at, 30)  # fmt: skip
        shot(win, "operator-banner-1366x768.png")
        win.banner.ack.click()
        assert not win.banner.isVisible()
        op.pump(3.0)

        # 8. stop (Ctrl+Shift+R), export, review
        ctrl_shift = QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier
        op.key(QtCore.Qt.Key.Key_R, ctrl_shift, win)
        op.until("the recording complete", lambda: model.sessions.recording.get(sid, {}).get("state") == "complete", 40)
        op.pump()
        assert win.status_recording.text().startswith(f"recorded {name}")
        folder = data / "sessions" / name  # one name: folder, status bar, export
        assert (folder / "session.json").is_file()
        win.export_recording()
        dialog = win.export_dialog
        assert Path(dialog.directory.text()) == folder
        assert dialog.participant.text() == "P001" and dialog.task.text() == "rest"
        dialog.start()
        assert dialog.wait(120)
        qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=5000)
        assert not isinstance(dialog.outcome, Exception), dialog.outcome
        out = dialog.outcome.files[0]
        assert out == folder / f"{name}.xdf"
        streams, _ = pyxdf.load_xdf(str(out))
        by_key = {xdf_stream_key(s): s for s in streams}
        assert [m[0] for m in by_key["Markers"]["time_series"]] == labels
        names = [s["info"]["name"][0] for s in streams]
        assert len(names) == len(set(names)), names  # a name per stream
        assert by_key["sim-eyes-trigger"]["info"]["type"] == ["Stim"]
        assert len(by_key["sim-eeg-eeg"]["time_stamps"]) > 256 * 3  # before and after the restart
        review = open_review_window(folder, win)
        assert review is not None
        qtbot.addWidget(review)
        review.resize(1366, 768)
        QtWidgets.QApplication.processEvents()
        assert review.video.isVisible()  # gaze and skeleton were recorded
        assert review.model.gaze_trail().size and review.model.skeleton_pose() is not None  # at t = 0
        assert review.layout_widget.minimumHeight() >= 110 * len(review.plots)  # it scrolls
        shot(review, "operator-review-1366x768.png")
        review.close()
    finally:
        node.stop()
