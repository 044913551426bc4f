"""The window (offscreen): device tree fills from Redis, selecting a sensor plots it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import AsyncRunner, NodeThread, RedisServer, sensorium
from PySide6 import QtCore, QtWidgets

from sensorium_desktop.bus.connection import async_client
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.core.backpressure import Attention
from sensorium_desktop.viewmodel.app import AppModel

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, redis_server: RedisServer, keys: Keys):
    from sensorium_desktop.ui.main_window import MainWindow

    model = AppModel(redis_server.url, keys, "gui-test")
    win = MainWindow(model)
    qtbot.addWidget(win)
    win.show()
    return win


def _refresh(arun: AsyncRunner, model: AppModel) -> None:
    async def go() -> None:
        c = async_client(model.redis_url)
        try:
            await model.refresh(c)
            await model.live.read_once(c, block_ms=50)
        finally:
            await c.aclose()

    arun.run(go())


def test_window_opens_with_honest_empty_state(window, arun: AsyncRunner, qtbot) -> None:
    _refresh(arun, window.model)
    assert "No devices yet" in window.devices_panel.message.text()
    assert window.plots.empty.isVisible()
    assert "Redis:" in window.status_redis.text()


def test_device_tree_fills_and_selection_plots(window, sim_node: NodeThread, arun: AsyncRunner, qtbot) -> None:
    panel = window.devices_panel

    def tree_filled() -> bool:
        _refresh(arun, window.model)
        return panel.sensor_item("sim-chest-ecg") is not None and len(panel._sensors) == 10

    qtbot.waitUntil(tree_filled, timeout=15000)
    sim_group = panel._groups["simulated"]
    assert sim_group.childCount() == 3
    names = sorted(sim_group.child(i).text(0) for i in range(3))
    assert names[0].startswith("Simulated chest strap")
    panel.sensor_item("sim-chest-ecg").setSelected(True)
    assert window.plots.sensor_ids() == ["sim-chest-ecg"]
    entry = window.plots.entries["sim-chest-ecg"]

    def plotted() -> bool:
        _refresh(arun, window.model)
        window.plots.redraw()
        x, _y = entry.curves[0].getData()
        return x is not None and window.model.live.subs["sim-chest-ecg"].ring.size > 1100  # > 2 s: >= 2 beats

    qtbot.waitUntil(plotted, timeout=15000)
    _x, y = entry.curves[0].getData()
    assert y.max() > 0.8  # R peaks are there
    assert window.model.attention.levels()["sim-chest-ecg"] is Attention.HIGH
    assert window.model.attention.levels()["sim-chest-hr"] is Attention.LOW  # listed, not shown
    assert window.model.attention.levels()["sim-eyes-eye_gaze"] is Attention.MEDIUM  # in the visible gaze panel
    # rates show up once the node has reported twice
    qtbot.waitUntil(lambda: (_refresh(arun, window.model), "512" in panel.sensor_item("sim-chest-ecg").text(1))[1],
                    timeout=15000)  # fmt: skip


def test_multi_selection_stacks_plots(window, sim_node: NodeThread, arun: AsyncRunner, qtbot) -> None:
    panel = window.devices_panel
    qtbot.waitUntil(lambda: (_refresh(arun, window.model), panel.sensor_item("sim-pose-skeleton") is not None)[1],
                    timeout=15000)  # fmt: skip
    for sid in ("sim-eyes-eye_gaze", "sim-pose-skeleton"):
        panel.sensor_item(sid).setSelected(True)
    assert window.plots.sensor_ids() == ["sim-eyes-eye_gaze", "sim-pose-skeleton"]
    assert len(window.plots.entries["sim-eyes-eye_gaze"].curves) == 3
    skeleton = window.plots.entries["sim-pose-skeleton"]  # 99 channels: stacked, first 32, one path
    assert skeleton.stacked is not None and not skeleton.curves


def test_demo_command_runs_and_saves_a_screenshot(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    """The real app path: CLI → embedded-or-given Redis → node child → qasync window."""
    shot = tmp_path / "shot.png"
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(tmp_path / "data"), QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        sensorium("demo", "--quit-after", "6", "--screenshot", str(shot), "--prefix", keys.prefix),
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    assert "embedded redis" in out.stderr and "stopped" in out.stderr
    # the demo keeps apart from the operator's lab: its own data dir and key prefix
    demo = tmp_path / "data" / "demo"
    assert (demo / "spill").is_dir() and (demo / "redis" / "redis.conf").is_file()
    assert not (tmp_path / "data" / "spill").exists() and not (tmp_path / "data" / "redis").exists()
    assert f"{keys.prefix}-demo" in out.stderr


@pytest.mark.gui
def test_help_about_error_dialog_and_window_log(qtbot, redis_server: RedisServer, keys: Keys, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Help → About names versions, endpoint and paths; an unexpected exception is shown once
    with its details and logged to the window's own log file."""
    import logging

    from sensorium_desktop import __version__
    from sensorium_desktop.ui import desktop
    from sensorium_desktop.ui.main_window import MainWindow
    from sensorium_desktop.viewmodel.app import AppModel

    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(tmp_path / "data"))
    win = MainWindow(AppModel(redis_server.url, keys, "about-test"))
    qtbot.addWidget(win)
    menus = [a.text() for a in win.menuBar().actions()]
    assert "&Help" in menus
    box = win.about()
    text = box.text()
    assert f"Sensorium Desktop: {__version__}" in text and "redis-server: " in text and "not found" not in text
    assert str(tmp_path / "data") in text and "sensorium-gui.log" in text and redis_server.password not in text
    box.close()
    path = desktop.start_file_log()
    logging.getLogger("sensorium_desktop.test").warning("written to the window log")
    errors = desktop.ErrorDialogs(win)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        errors.hook(ValueError, exc, exc.__traceback__)
        errors.hook(ValueError, exc, exc.__traceback__)  # the same error again: one dialog
    assert len(errors.dialogs) == 1 and "ValueError: boom" in errors.dialogs[0].text()
    assert "raise ValueError" in errors.dialogs[0].detailedText()
    for h in logging.getLogger().handlers:
        h.flush()
    logged = path.read_text(encoding="utf-8")
    assert "written to the window log" in logged and "ValueError: boom" in logged
    for h in list(logging.getLogger().handlers):
        if getattr(h, "baseFilename", "") == str(path):
            logging.getLogger().removeHandler(h)
            h.close()


def test_panel_actions_come_from_the_panel_spec(window, qtbot, monkeypatch) -> None:
    """The sessions panel's spec puts New session / Marker into the Session menu and the digit
    keys onto the window; a digit typed into a text field is not a marker."""
    panel = window.panels["sessions"]
    marked: list[str] = []
    monkeypatch.setattr(panel, "marker", marked.append)
    session_menu = window.menus["&Session"]
    texts = {a.text(): a for a in session_menu.actions()}
    assert {"&Record", "S&top", "&New session", "&Marker…"} <= set(texts)
    assert texts["&Marker…"].shortcut().toString() == "Ctrl+K"
    texts["&Marker…"].trigger()  # focuses the marker text, sets nothing yet
    assert panel.marker_text.hasFocus() or QtWidgets.QApplication.focusWidget() is panel.marker_text
    window.activateWindow()
    window.plots.setFocus()
    qtbot.keyClick(window.plots, QtCore.Qt.Key.Key_3)
    field = QtWidgets.QLineEdit(window.panels["sessions"])
    field.show()
    field.setFocus()
    qtbot.waitUntil(field.hasFocus, timeout=2000)
    qtbot.keyClick(field, QtCore.Qt.Key.Key_4)
    assert marked == ["3"] and field.text() == "4"


def test_log_viewer_shows_window_records_and_the_node_log(qtbot, tmp_path: Path) -> None:
    import logging

    from sensorium_desktop.ui.panels.logs import LogPanel
    from sensorium_desktop.viewmodel.logs import LogModel

    node_log = tmp_path / "sensorium-node.log"
    node_log.write_text("2026-11-30 10:00:00,000 INFO    sensorium_desktop.worker.node: node lab-1: 3 devices\n")
    panel = LogPanel(model=LogModel(node_log))
    qtbot.addWidget(panel)
    logging.getLogger("sensorium_desktop.test").warning("window says %s", "hello")
    with open(node_log, "a") as f:
        f.write("2026-11-30 10:00:01,500 ERROR   sensorium_desktop.devices.serial: /dev/ttyUSB7: no such port\n"
                "Traceback (most recent call last):\n  File \"x.py\", line 1\nOSError: gone\n"
                "2026-11-30 10:00:02,000 INFO    sensorium_desktop.worker.node: still going\n")  # fmt: skip
    qtbot.waitUntil(lambda: "still going" in panel.text.toPlainText(), timeout=3000)
    text = panel.text.toPlainText()
    assert "[window] test: window says hello" in text
    assert "ERROR [node] serial: /dev/ttyUSB7: no such port" in text and "OSError: gone" in text
    panel.level.setCurrentText("ERROR")
    text = panel.text.toPlainText()
    assert "no such port" in text and "OSError: gone" in text and "still going" not in text and "hello" not in text
    panel.level.setCurrentText("DEBUG")
    panel.filter.setText("ttyusb7")
    assert panel.text.toPlainText().count("\n") == 3  # one record (its traceback lines with it)
    assert "1 errors · 1 warnings" in panel.count.text()
    panel.close()
