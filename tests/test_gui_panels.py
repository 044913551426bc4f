"""The operator's panels (offscreen Qt, real Redis, a real node): sessions by drag-and-drop,
markers, status panels following Redis, attention from what is on screen, saved layout."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import AsyncRunner, NodeThread, RedisServer
from PySide6 import QtCore, QtGui, QtWidgets

from sensorium_desktop.bus.connection import async_client
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.core.backpressure import FOCUS_BOOST_S, Attention
from sensorium_desktop.core.pose import N_LANDMARKS
from sensorium_desktop.recording.xdf import xdf_stream_key
from sensorium_desktop.viewmodel import lab as lab_module
from sensorium_desktop.viewmodel.app import AppModel
from sensorium_desktop.viewmodel.gaze import GazeHeatmap
from sensorium_desktop.viewmodel.lab import LabStatusModel, breathing_synchrony

pytestmark = pytest.mark.gui


def make_window(qtbot, url: str, keys: Keys, settings_path: Path, size: tuple[int, int] | None = (1400, 900)):
    from sensorium_desktop.ui.main_window import MainWindow

    settings = QtCore.QSettings(str(settings_path), QtCore.QSettings.Format.IniFormat)
    win = MainWindow(AppModel(url, keys, "gui-test"), settings=settings)
    qtbot.addWidget(win)
    if size is not None:
        win.resize(*size)
    win.show()
    return win


@pytest.fixture
def window(qtbot, redis_server: RedisServer, keys: Keys, tmp_path: Path):
    return make_window(qtbot, redis_server.url, keys, tmp_path / "settings.ini")


def pump(arun: AsyncRunner, win, rounds: int = 1) -> None:
    """One GUI refresh as the app's loop does it: Redis → models → panels."""

    async def go() -> None:
        c = async_client(win.model.redis_url)
        try:
            for _ in range(rounds):
                await win.model.refresh(c)
                await win.model.live.read_once(c, block_ms=30)
                await win.model.lab.refresh()
                await win.drain()
        finally:
            await c.aclose()

    arun.run(go())
    QtWidgets.QApplication.processEvents()


def drop(target: QtWidgets.QAbstractItemView, mime: QtCore.QMimeData, item: QtWidgets.QTreeWidgetItem | None) -> bool:
    """Deliver a drag enter/move/drop sequence to ``target``'s viewport at ``item``."""
    pos = target.visualItemRect(item).center() if item is not None else QtCore.QPoint(5, 5)
    posf = QtCore.QPointF(pos)
    actions = QtCore.Qt.DropAction.CopyAction | QtCore.Qt.DropAction.MoveAction
    buttons, mods = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    enter = QtGui.QDragEnterEvent(pos, actions, mime, buttons, mods)
    QtWidgets.QApplication.sendEvent(target.viewport(), enter)
    move = QtGui.QDragMoveEvent(pos, actions, mime, buttons, mods)
    QtWidgets.QApplication.sendEvent(target.viewport(), move)
    ev = QtGui.QDropEvent(posf, actions, mime, buttons, mods)
    QtWidgets.QApplication.sendEvent(target.viewport(), ev)
    return ev.isAccepted()


def wait_tree(qtbot, arun: AsyncRunner, win, sensor: str) -> None:
    qtbot.waitUntil(lambda: (pump(arun, win), win.devices_panel.sensor_item(sensor) is not None)[1], timeout=15000)


def test_drag_one_then_several_sensors_into_a_session_and_out_again(
    window, sim_node: NodeThread, arun: AsyncRunner, qtbot, redis_server: RedisServer, keys: Keys
) -> None:
    wait_tree(qtbot, arun, window, "sim-pose-skeleton")
    panel = window.panels["sessions"]
    panel.new_session()
    pump(arun, window)
    session_item = panel.tree.topLevelItem(0)
    assert session_item is not None and window.model.sessions.current
    sid = window.model.sessions.current
    devices = window.devices_panel
    devices.tree.clearSelection()
    devices.sensor_item("sim-chest-ecg").setSelected(True)
    mime = devices.tree.mimeData(devices.tree.selectedItems())  # what a drag from the tree carries
    assert drop(panel.tree, mime, session_item)
    pump(arun, window)
    for s in ("sim-eyes-eye_gaze", "sim-pose-skeleton"):
        devices.sensor_item(s).setSelected(True)
    mime = devices.tree.mimeData(devices.tree.selectedItems())
    assert drop(panel.tree, mime, panel.tree.topLevelItem(0).child(0))  # dropped on a sensor row: its session
    pump(arun, window)
    stored = json.loads(redis_server.client().hget(keys.sessions, sid))
    assert stored["sensors"] == ["sim-chest-ecg", "sim-eyes-eye_gaze", "sim-pose-skeleton"]  # no duplicates
    assert panel.tree.topLevelItem(0).childCount() == 3
    # foreign drags are refused
    other = QtCore.QMimeData()
    other.setText("sim-chest-ecg")
    assert not drop(panel.tree, other, panel.tree.topLevelItem(0))
    # drag a sensor out of the session and let go where nothing takes it: removed
    panel.tree.clearSelection()
    panel.tree.topLevelItem(0).child(1).setSelected(True)
    panel.tree.startDrag(QtCore.Qt.DropAction.MoveAction)
    pump(arun, window)
    # Delete removes the selected one
    panel.tree.clearSelection()
    panel.tree.topLevelItem(0).child(0).setSelected(True)
    qtbot.keyClick(panel.tree, QtCore.Qt.Key.Key_Delete)
    pump(arun, window)
    stored = json.loads(redis_server.client().hget(keys.sessions, sid))
    assert stored["sensors"] == ["sim-pose-skeleton"]


def test_metadata_gives_a_bids_name_and_markers_are_stored(
    window, arun: AsyncRunner, qtbot, redis_server: RedisServer, keys: Keys
) -> None:
    pump(arun, window)
    panel = window.panels["sessions"]
    panel.new_session()
    pump(arun, window)
    for name, value in (("participant", "P 07"), ("session", "pilot"), ("task", "n-back"), ("run", "02")):
        field = panel.fields[name]
        field.setText(value)
        field.editingFinished.emit()
    pump(arun, window)
    assert panel.bids.text() == "sub-P07_ses-pilot_task-nback_run-02"
    sid = window.model.sessions.current
    panel.marker("too early")  # nothing records: refused, said, not stored
    pump(arun, window)
    assert "not recording" in window.statusBar().currentMessage() and not panel.marker_text.isEnabled()
    assert redis_server.client().xlen(keys.markers(sid)) == 0
    session = window.model.sessions.session(sid)
    session.state, session.started = "recording", time.time()  # as the recorder's node would see it
    window.spawn(window.model.sessions._save(session))
    pump(arun, window)
    assert panel.marker_text.isEnabled() and panel.fields["run"].isReadOnly()  # the name is fixed
    assert not panel.fields["notes"].isReadOnly()
    before = time.time()
    window.activateWindow()
    window.setFocus()
    for action in window.actions():
        if action.text() == "Marker 3":
            action.trigger()
    panel.marker_text.setText("door knock")
    panel.marker_text.returnPressed.emit()
    panel.marker_button.click()
    pump(arun, window)
    markers = [
        {k.decode(): v.decode() for k, v in f.items()} for _i, f in redis_server.client().xrange(keys.markers(sid))
    ]
    assert [m["label"] for m in markers] == ["3", "door knock", "marker"]
    after = time.time()
    # stamped when set, on the host clock (monotonic-anchored: allow for NTP slewing of the wall clock)
    assert all(before - 0.5 <= float(m["t_host"]) <= after + 0.5 for m in markers)
    assert "marker #3" in panel.marker_log.text()
    assert {m["source"] for m in markers} == {"window"}
    # the list shows every source's markers of the current session, with their source
    redis_server.client().xadd(keys.markers(sid), {"label": "flip 1", "source": "lsl:PsychoPy", "t_global": "1.0",
                                                   "t_original": "12.5", "clock_original": "lsl"})  # fmt: skip
    pump(arun, window)
    rows = [[panel.marker_list.topLevelItem(i).text(c) for c in range(3)]
            for i in range(panel.marker_list.topLevelItemCount())]  # fmt: skip
    assert [(r[1], r[2]) for r in rows] == [("3", "window"), ("door knock", "window"), ("marker", "window"),
                                            ("flip 1", "lsl:PsychoPy")]  # fmt: skip
    assert "12.5 (lsl clock)" in panel.marker_list.topLevelItem(3).toolTip(1)
    panel.grab().save(os.environ.get("SENSORIUM_TEST_SHOT", "/dev/null/x.png"))
    # a new session continues the numbering of runs
    panel.new_session()
    pump(arun, window)
    assert window.model.sessions.session(window.model.sessions.current).run == "03"


def test_status_panels_follow_redis(
    window, sim_node: NodeThread, arun: AsyncRunner, qtbot, redis_server: RedisServer, keys: Keys
) -> None:
    c = redis_server.client()
    election, sync, bp = window.panels["election"], window.panels["sync"], window.panels["backpressure"]
    qtbot.waitUntil(lambda: (pump(arun, window), election.table.rowCount() == 1)[1], timeout=15000)
    assert "test-node" in election.summary.text() and "term" in election.summary.text()
    assert election.table.item(0, 1).text() == "leader"
    qtbot.waitUntil(lambda: (pump(arun, window), bp.table.rowCount() >= 10)[1], timeout=15000)
    rows = {bp.table.item(r, 0).text(): bp.table.item(r, 1).text() for r in range(bp.table.rowCount())}
    assert rows["sim-chest-ecg"] == "high"  # NodeThread's default attention
    # the sync worker's clock state appears as soon as it is in Redis
    c.hset(keys.clock("sim-chest-ecg"), mapping={
        "offset_mean": repr(0.0125), "drift": repr(31e-6), "uncertainty": repr(8e-6), "resets": "1", "late": "7",
        "latency": repr(0.0081), "domain": "test-node/device:sim-chest", "kind": "fitted",
        "updated": repr(time.time() + 5.0),  # a writer's clock ahead: never "-0.0 s ago" (and no timing in the test)
    })  # fmt: skip
    for k in range(4):
        c.hset(keys.clock("sim-chest-ecg"), "offset_mean", repr(0.0125 + k * 1e-6))
        pump(arun, window)
    rows = {sync.table.item(r, 0).text(): r for r in range(sync.table.rowCount())}
    r = rows["sim-chest"]  # one row per clock domain, its sensors listed
    cells = [sync.table.item(r, col).text() for col in range(sync.table.columnCount())]
    assert cells[1] == "ecg" and cells[2] == "+12.503 ms" and cells[3] == "8.0" and cells[4] == "+31.00"
    assert cells[5] == "8.1" and cells[6] == "1/7" and cells[7] == "0.0"
    x, y = window.model.lab.residuals("sim-chest-ecg")
    assert x.size == 4 and np.all(np.abs(y) < 1.0)  # µs around the trend
    c.hset(keys.clock("sim-chest-ecg"), mapping={"resets": "2", "offset_mean": repr(7.25)})  # the device rebooted
    pump(arun, window)
    assert window.model.lab.residuals("sim-chest-ecg")[0].size == 0  # the trace restarts with the new epoch
    for k in range(3):
        c.hset(keys.clock("sim-chest-ecg"), "offset_mean", repr(7.25 + k * 1e-6))
        pump(arun, window)
    c.hset(keys.clock("sim-chest-ecg"), "offset_mean", repr(1.7e9))  # a new run of the node: its device counts from 0
    pump(arun, window)
    assert window.model.lab.residuals("sim-chest-ecg")[0].size == 0  # not a ±1e8 µs trace
    assert "needs ≥ 2 respiration sensors" in sync.summary.text()


def test_attention_follows_what_is_on_screen(
    window, sim_node: NodeThread, arun: AsyncRunner, qtbot, redis_server: RedisServer, keys: Keys
) -> None:
    wait_tree(qtbot, arun, window, "sim-chest-ecg")
    window.devices_panel.sensor_item("sim-chest-ecg").setSelected(True)
    window.update_attention()
    pump(arun, window)

    def published(sid: str) -> str:
        raw = redis_server.client().hget(keys.attention(sid), "gui-test")
        return raw.decode().split("|")[0] if raw else ""

    assert published("sim-chest-ecg") == "high"
    assert published("sim-pose-skeleton") in ("low", "medium")
    window.docks["skeleton"].raise_()
    QtWidgets.QApplication.processEvents()
    window.update_attention()
    pump(arun, window)
    assert published("sim-pose-skeleton") == "medium"  # shown in a visible panel
    window.plot_area.hide()  # the plots are hidden: the ECG is no longer looked at
    window.update_attention()
    pump(arun, window)
    assert published("sim-chest-ecg") == "high"  # Sensocto's focus boost keeps it for a while …
    later = time.monotonic() + FOCUS_BOOST_S + 1
    assert window.model.attention.tracker.level("sim-chest-ecg", later) is Attention.LOW  # … then only listed
    window.showMinimized()
    window.model.attention.minimized = True
    pump(arun, window)
    assert published("sim-chest-ecg") == "none" and published("sim-pose-skeleton") == "none"


def test_layout_and_plot_window_persist(qtbot, redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "persist.ini"
    win = make_window(qtbot, redis_server.url, keys, path)
    win.resize(700, 555)  # within the offscreen screen (800 x 800), so no clamping
    win.docks["election"].close()
    win.plots.window_box.setValue(25.0)
    QtWidgets.QApplication.processEvents()
    saved = (win.width(), win.height())  # (the docks' minimum width may have widened it)
    win.close()
    again = make_window(qtbot, redis_server.url, keys, path, size=None)  # as saved
    QtWidgets.QApplication.processEvents()
    assert again.plots.window_s == 25.0
    assert not again.docks["election"].isVisible()
    assert (again.width(), again.height()) == saved != (1400, 900)


def test_plot_area_takes_dropped_sensors(window, sim_node: NodeThread, arun: AsyncRunner, qtbot) -> None:
    from sensorium_desktop.ui.mime import sensors_mime

    wait_tree(qtbot, arun, window, "sim-eyes-eye_gaze")
    window.devices_panel.sensor_item("sim-chest-ecg").setSelected(True)
    mime = sensors_mime(["sim-eyes-eye_gaze", "sim-chest-ecg"])
    pos = QtCore.QPoint(50, 50)
    actions, buttons = QtCore.Qt.DropAction.CopyAction, QtCore.Qt.MouseButton.LeftButton
    mods = QtCore.Qt.KeyboardModifier.NoModifier
    enter = QtGui.QDragEnterEvent(pos, actions, mime, buttons, mods)
    QtWidgets.QApplication.sendEvent(window.plot_area, enter)
    assert enter.isAccepted()
    ev = QtGui.QDropEvent(QtCore.QPointF(pos), actions, mime, buttons, mods)
    QtWidgets.QApplication.sendEvent(window.plot_area, ev)
    assert window.plots.sensor_ids() == ["sim-chest-ecg", "sim-eyes-eye_gaze"]


def test_gaze_and_skeleton_panels_draw_live_data(window, sim_node: NodeThread, arun: AsyncRunner, qtbot) -> None:
    wait_tree(qtbot, arun, window, "sim-pose-skeleton")
    gaze, skeleton = window.panels["gaze"], window.panels["skeleton"]
    window.docks["gaze"].raise_()
    qtbot.waitUntil(lambda: (pump(arun, window), gaze.source == "sim-eyes-eye_gaze")[1], timeout=10000)

    def heat() -> bool:
        pump(arun, window)
        gaze.redraw()
        return gaze.heat.hist.sum() > 10

    qtbot.waitUntil(heat, timeout=15000)
    assert "worn" in gaze.state.text() or "NOT WORN" in gaze.state.text()
    img = gaze.heat_item.image
    assert img is not None and img.max() == pytest.approx(1.0)
    window.docks["skeleton"].raise_()

    def bones() -> bool:
        pump(arun, window)
        skeleton.redraw()
        _plot, graph = skeleton.views["sim-pose-skeleton"]
        return graph.pos is not None and len(graph.pos) == N_LANDMARKS

    qtbot.waitUntil(bones, timeout=15000)


def test_gaze_heatmap_weights_decay_and_fixations() -> None:
    h = GazeHeatmap(bins=(10, 10), half_life_s=1.0, sigma_bins=0.0)
    t = np.linspace(0, 0.2, 50)
    h.add(t, np.full(50, 0.25), np.full(50, 0.75), np.full(50, 1.0))
    assert h.fixation is not None and h.fixation.x == pytest.approx(0.25) and h.fixation.duration > 0.1
    total = h.hist.sum()
    h.add(np.array([1.2]), np.array([0.9]), np.array([0.1]), np.array([0.0]))  # zero confidence: ignored
    assert h.hist.sum() == pytest.approx(total * 0.5)  # one half-life later
    assert h.image().argmax() == np.ravel_multi_index((2, 7), (10, 10))
    h.add(np.array([1.3, 1.31, 1.32]), np.array([0.1, 0.9, 0.5]), np.array([0.1, 0.9, 0.5]), np.ones(3))
    assert h.fixation is None  # a saccade


def test_a_saccade_inside_one_delivered_chunk_ends_the_fixation() -> None:
    """Gaze delivered in batches (attention low: 0.5 s and more per read) holds fixations and
    the saccades between them: the fixation is the one after the last saccade, timed from it
    (the Pupil screenshot said 'fixation 7578 ms' across ten saccades)."""
    h = GazeHeatmap()
    t = np.arange(0, 0.8, 0.005)
    x = np.where(t < 0.5, 0.3, 0.7)
    h.add(t, x, np.full(t.size, 0.5), np.ones(t.size))
    assert h.fixation is not None and h.fixation.x == pytest.approx(0.7)
    assert h.fixation.duration == pytest.approx(0.3, abs=0.01)


def test_breathing_synchrony_of_two_people() -> None:
    t = np.arange(0, 60, 0.04)
    a = np.sin(2 * np.pi * 0.25 * t)
    assert breathing_synchrony([(t, a), (t, np.sin(2 * np.pi * 0.25 * t + 0.3))]) > 0.95
    assert breathing_synchrony([(t, a), (t, -a)]) < 0.1
    assert np.isnan(breathing_synchrony([(t, a)]))


def test_discover_connect_and_disconnect_through_the_node(
    window, arun: AsyncRunner, qtbot, redis_server: RedisServer, keys: Keys
) -> None:
    node = NodeThread(redis_server.url, keys, ["sim:room"]).start()
    try:
        panel = window.devices_panel
        wait_tree(qtbot, arun, window, "sim-room-temperature")
        panel.discover()
        assert panel.progress.isVisible()
        qtbot.waitUntil(lambda: (pump(arun, window), window.model.control.discovery.get("state") == "done")[1],
                        timeout=20000)  # fmt: skip
        assert not panel.progress.isVisible()
        assert "sim:chest" in panel._available and "sim:room" not in panel._available  # connected ones are not offered
        ble = panel._groups["ble"]
        assert ble.text(2) == "unavailable" and "Bluetooth unavailable" in ble.toolTip(2)
        panel._double_clicked(panel._available["sim:chest"], 0)
        qtbot.waitUntil(lambda: (pump(arun, window), panel.sensor_item("sim-chest-ecg") is not None)[1], timeout=15000)
        assert "sim:chest" not in panel._available
        assert any(d.device_id == "sim-chest" for d in node.node.devices)
        panel.disconnect_device("sim-chest", "test-node")
        qtbot.waitUntil(lambda: (pump(arun, window), panel.sensor_item("sim-chest-ecg") is None)[1], timeout=15000)
        assert [d.device_id for d in node.node.devices] == ["sim-room"]
        # a connect the node refuses is shown within 2 s: a failed row (tooltip: why) and the status bar
        began = time.monotonic()
        panel.connect_uri("bogus:thing")
        pump(arun, window)
        shown = time.monotonic() - began
        row = panel._failed["bogus:thing"]
        assert row.text(2) == "failed" and "unknown device transport 'bogus'" in row.toolTip(2)
        assert "known: ble, camera, lsl, pose, pupil, replay, serial, sim, ws" in row.toolTip(2)
        assert "unknown device transport" in window.statusBar().currentMessage()
        assert "unknown device transport" in panel.message.text()
        assert shown < 2.0, f"connect failure shown after {shown:.2f} s"
        # a port that does not exist: the node answers with the OS error, the device row says error
        began = time.monotonic()
        panel.connect_uri("serial:/dev/nonexistent-sensorium")
        pump(arun, window)
        shown = time.monotonic() - began
        assert "No such file" in window.statusBar().currentMessage(), window.statusBar().currentMessage()
        assert shown < 2.0 + 0.5, f"connect failure shown after {shown:.2f} s"
        qtbot.waitUntil(lambda: (pump(arun, window), "serial-nonexistent-sensorium" in panel._devices)[1],
                        timeout=5000)  # fmt: skip
        item = panel._devices["serial-nonexistent-sensorium"]
        assert item.text(2) in ("error", "lost") and "No such file" in item.toolTip(2)
        assert "serial:/dev/nonexistent-sensorium" not in panel._failed  # the device row says it now
        panel.dismiss_failed("bogus:thing")
        assert "bogus:thing" not in panel._failed
    finally:
        node.stop()


def test_record_stop_and_export_from_the_window(
    window, arun: AsyncRunner, qtbot, redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    import pyxdf

    node = NodeThread(redis_server.url, keys, ["sim:chest"], node_id="gui-rec-node", sessions_dir=tmp_path).start()
    try:
        window.model.sessions.recorder_node = "gui-rec-node"
        pump(arun, window)
        window.panels["sessions"].new_session()
        pump(arun, window)
        window.record_action.trigger()  # nothing to record yet: said in the status bar
        pump(arun, window)
        assert "drop sensors on the session before recording" in window.statusBar().currentMessage()
        sid = window.model.sessions.current
        assert window.model.sessions.session(sid).state == "idle"
        window.spawn(window.model.sessions.add_sensors(sid, ["sim-chest-ecg", "sim-chest-hr"]))
        pump(arun, window)
        assert window.record_action.isEnabled() and not window.stop_action.isEnabled()
        window.record_action.trigger()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pump(arun, window)
            st = window.model.sessions.recording.get(sid, {})
            if int(st.get("samples", 0) or 0) > 1500:  # spooled, with the batch straddling the start
                break
            time.sleep(0.2)
        assert window.status_recording.text().startswith("● REC"), window.status_recording.text()
        assert window.stop_action.isEnabled() and not window.record_action.isEnabled()
        window.panels["sessions"].marker("go")
        pump(arun, window)
        window.stop_action.trigger()
        while time.monotonic() < deadline + 30:
            pump(arun, window)
            if window.model.sessions.recording.get(sid, {}).get("state") == "complete":
                break
            time.sleep(0.2)
        pump(arun, window)
        assert window.status_recording.text().startswith("recorded"), window.status_recording.text()
        window.record_action.trigger()  # a recorded session is not recorded over
        pump(arun, window)
        assert "was recorded already" in window.statusBar().currentMessage()
        menu = {a.text(): a for a in window.panels["sessions"].session_menu(sid).actions()}
        assert menu["Export recording…"].isEnabled() and not menu["Record"].isEnabled()
        assert not menu["Stop"].isEnabled()
        window.export_recording()
        dialog = window.export_dialog
        assert Path(dialog.directory.text()) == tmp_path / sid
        dialog.start()
        assert dialog.wait(60)
        qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=5000)
        assert not isinstance(dialog.outcome, Exception), dialog.outcome
        out = dialog.outcome.files[0]
        streams, _ = pyxdf.load_xdf(str(out))
        by_name = {xdf_stream_key(s): s for s in streams}
        assert len(by_name["sim-chest-ecg"]["time_stamps"]) > 500
        assert [m[0] for m in by_name["Markers"]["time_series"]] == ["go"]
        assert "samples exported" in dialog.message.text()
    finally:
        node.stop()


def test_group_rate_is_averaged_over_slices(redis_server: RedisServer, keys: Keys, monkeypatch) -> None:
    """The sync worker writes a slice's groups every few seconds: the panel's groups/s must
    not read 0 between two slices (it did, for every refresh without a new slice)."""
    now = [1000.0]
    monkeypatch.setattr(lab_module.time, "time", lambda: now[0])
    model = LabStatusModel(redis_server.url, keys)
    c = redis_server.client()
    rates = []
    for second in range(12):
        if second % 4 == 1:  # a slice of 2 groups every 4 s
            for _ in range(2):
                c.xadd(keys.groups, {"t": "0"})
        rates.append(asyncio.run(model.refresh()).group_rate)
        now[0] += 1.0
    assert rates[0] == 0.0
    assert all(r > 0 for r in rates[1:])
    assert rates[-1] == pytest.approx(6 / 11)  # 3 slices since the first refresh, 11 s ago
    for _ in range(40):  # no more slices: the window empties
        asyncio.run(model.refresh())
        now[0] += 1.0
    assert asyncio.run(model.refresh()).group_rate == 0.0


def test_an_older_layout_is_not_restored_and_the_default_gives_the_plots_room(
    qtbot, redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    from sensorium_desktop.ui.main_window import SETTINGS_VERSION

    path = tmp_path / "old.ini"
    win = make_window(qtbot, redis_server.url, keys, path)
    win.close()  # saves this version's layout
    old = QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)
    old.setValue("window/version", SETTINGS_VERSION - 1)
    old.sync()
    again = make_window(qtbot, redis_server.url, keys, path)
    qtbot.waitUntil(lambda: again.plot_area.width() > 0, timeout=2000)
    QtWidgets.QApplication.processEvents()
    assert not again.layout_restored
    assert again.plot_area.width() > again.docks["gaze"].width()  # _default_sizes ran


def test_a_running_discovery_can_be_stopped(window, arun: AsyncRunner, qtbot, redis_server: RedisServer,
                                            keys: Keys) -> None:  # fmt: skip
    """Cancel in every long operation: the Discover button turns into Stop while the node scans
    (up to its timeout, 5 s per transport); Stop ends the scan on the node."""
    node = NodeThread(redis_server.url, keys, ["sim:room"]).start()
    try:
        panel = window.devices_panel
        wait_tree(qtbot, arun, window, "sim-room-temperature")
        window.model.control.discovery = {}
        panel.discover()
        qtbot.waitUntil(lambda: (pump(arun, window), panel.discover_button.text() == "Stop discovery")[1],
                        timeout=5000)  # fmt: skip
        assert panel.discover_button.isEnabled()
        began = time.monotonic()
        panel.discover()  # = Stop
        qtbot.waitUntil(lambda: (pump(arun, window), window.model.control.discovery.get("state") == "stopped")[1],
                        timeout=10000)  # fmt: skip
        stopped_after = time.monotonic() - began
        assert panel.discover_button.text() == "Discover" and panel.discover_button.isEnabled()
        assert "discovery stopped" in panel.message.text() and not panel.progress.isVisible()
        assert node.node.commands.discovering is not None and node.node.commands.discovering.cancelled()
        print(f"discovery stopped {stopped_after:.2f} s after Stop")
    finally:
        node.stop()


def test_a_discovery_nobody_answers_gives_discover_back(window, arun: AsyncRunner, qtbot, redis_server: RedisServer,
                                                        keys: Keys, monkeypatch) -> None:  # fmt: skip
    """A node that is registered but does not answer (hung, killed): the window says so and
    Discover works again (before: "0% asked" forever, Stop greyed out for good)."""
    from sensorium_desktop.viewmodel import devices as devices_vm

    monkeypatch.setattr(devices_vm, "DISCOVERY_SILENT_S", 0.5)
    c = redis_server.client()
    c.sadd(keys.nodes, "mute-node")
    c.set(keys.heartbeat("mute-node"), "1", ex=30)
    try:
        panel = window.devices_panel
        pump(arun, window)
        window.model.control.discovery_node = ""
        panel.discover()
        pump(arun, window)
        assert panel.discover_button.text() == "Stop discovery"
        qtbot.waitUntil(lambda: (pump(arun, window), window.model.control.discovery.get("state") == "failed")[1],
                        timeout=5000)  # fmt: skip
        assert panel.discover_button.text() == "Discover" and panel.discover_button.isEnabled()
        assert "did not answer" in panel.message.text() and "mute-node" in panel.message.text()
        assert not panel.progress.isVisible()
    finally:
        c.srem(keys.nodes, "mute-node")
        c.delete(keys.heartbeat("mute-node"))


def test_no_orphaned_tab_bar_over_a_panel_after_a_resize(qtbot, redis_server: RedisServer, keys: Keys,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """Shown at 1366×768 and maximized to 1920×1080, Qt left a second Sessions|Log tab bar
    where the first layout had put it: over the session form's File name row."""
    win = make_window(qtbot, redis_server.url, keys, tmp_path / "tabs.ini", (1366, 768))
    for size in ((1366, 768), (1920, 1080)):
        win.resize(*size)
        qtbot.wait(50)
        bars = [b for b in win.findChildren(QtWidgets.QTabBar) if b.parent() is win and b.isVisible()]
        titles = [tuple(b.tabText(i) for i in range(b.count())) for b in bars]
        assert len(titles) == len(set(titles)), titles
        assert all(win._docks_sit_on(b) for b in bars), [(t, b.geometry()) for t, b in zip(titles, bars, strict=True)]


def test_a_hidden_panel_renders_nothing_and_shows_the_newest_state_when_shown(qtbot) -> None:
    """Panels behind another tab or in a closed dock cost nothing: they keep only the newest
    snapshot and render it once when they show."""
    from sensorium_desktop.ui.panels import render_while_visible
    from sensorium_desktop.viewmodel.base import Event

    changed = Event()
    widget = QtWidgets.QLabel()
    qtbot.addWidget(widget)
    rendered: list[int] = []

    def render(value: int) -> None:
        rendered.append(value)
        widget.setText(str(value))

    render_while_visible(widget, changed, render)
    for value in range(5):
        changed.emit(value)
    assert rendered == []  # never shown: nothing rendered
    widget.show()
    qtbot.waitUntil(lambda: rendered == [4])  # the newest, once
    changed.emit(5)
    assert rendered == [4, 5]  # visible: every snapshot
    widget.hide()
    changed.emit(6)
    changed.emit(7)
    widget.show()
    qtbot.waitUntil(lambda: rendered == [4, 5, 7])
    assert widget.text() == "7"
