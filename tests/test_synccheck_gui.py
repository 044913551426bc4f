"""Session → Sync check… in the real window with a real node child process: the flash window
(offscreen: a raster window flushed by hand) presents, the node's simulated devices see it,
the dialog shows the traces and the table. ``SENSORIUM_OPERATOR_SHOTS=DIR`` saves it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from conftest import AsyncRunner, RedisServer
from PySide6 import QtCore, QtWidgets

from sensorium_desktop.bus.connection import async_client
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.worker.supervisor import NodeProcess

pytestmark = pytest.mark.gui

NODE = "sync-node"


def test_sync_check_from_the_window(
    qtbot, arun: AsyncRunner, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sensorium_desktop.ui.main_window import MainWindow
    from sensorium_desktop.viewmodel.app import AppModel

    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(tmp_path / "data"))
    keys = Keys(f"sc{os.getpid()}")
    args = ["--prefix", keys.prefix, "--node-id", NODE, "--device", "sim:photodiode?flash_latency_ms=0.5",
            "--device", "sim:eyes?flash_latency_ms=12.5", "--rcs-port", "0", "--pupil-port", "0"]  # fmt: skip
    node = NodeProcess(redis_server.url, args, log_path=tmp_path / "node.log")
    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    model = AppModel(redis_server.url, keys, "gui-sync")
    model.sessions.recorder_node = NODE
    win = MainWindow(model, settings=settings)
    qtbot.addWidget(win)
    win.resize(1366, 768)
    win.show()

    async def refresh() -> None:
        c = async_client(redis_server.url)
        try:
            await model.refresh(c)
        finally:
            await c.aclose()

    def until(what: str, predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
            arun.run(refresh())
            QtWidgets.QApplication.processEvents()
            time.sleep(0.05)

    node.start()
    try:
        until("the check's sensors live", lambda: {"sim-photodiode-photodiode", "sim-eyes-brightness"}
              <= set(model.devices.tree.sensors))  # fmt: skip
        action = win.sync_check_action
        assert action in win.menus["&Session"].actions()
        action.trigger()
        dialog = win.sync_check_dialog
        dialog.flashes.setValue(6)
        dialog.interval.setValue(0.6)
        dialog.fullscreen.setChecked(False)
        qtbot.mouseClick(dialog.start_button, QtCore.Qt.MouseButton.LeftButton)
        assert not dialog.start_button.isEnabled()

        async def run_until_done() -> None:
            drained = asyncio.ensure_future(win.drain())  # the check's coroutine, queued by Start
            deadline = time.monotonic() + 90
            while not drained.done() and time.monotonic() < deadline:
                QtWidgets.QApplication.processEvents()  # the flash window's timers and swaps
                await asyncio.sleep(0.005)
            await drained

        arun.run(run_until_done())
        QtWidgets.QApplication.processEvents()
        assert dialog.status.text().startswith("done"), dialog.status.text()
        table = dialog.table
        rows = {table.item(r, 0).text(): [table.item(r, k).text() for k in range(table.columnCount())]
                for r in range(table.rowCount())}  # fmt: skip
        assert set(rows) == {"sim-photodiode-photodiode", "sim-eyes-brightness"}
        diode = rows["sim-photodiode-photodiode"]
        assert diode[2] == "6 of 6" and diode[8].startswith("pass") and abs(float(diode[3]) - 0.5) < 0.2
        assert rows["sim-eyes-brightness"][8].startswith("fail")
        stored = [json.loads(p.read_text()) for p in (tmp_path / "data").rglob("sync-check.json")]
        assert len(stored) == 1 and stored[0]["presented"] == 6 and not stored[0]["interrupted"]
        assert dialog.stimulus is not None and dialog.stimulus.window is None  # the flash window closed
        # the review of the check's recording: a button with the verdicts opens the result
        from sensorium_desktop.recording.review import open_review
        from sensorium_desktop.ui.review_window import ReviewWindow

        folder = next((tmp_path / "data").rglob("sync-check.json")).parent
        review = ReviewWindow(open_review(folder))
        qtbot.addWidget(review)
        assert review.sync_check_button.text() == "Sync check: 1 of 2 pass"
        shown = review.show_sync_check()
        assert shown.table.rowCount() == 2 and shown.form_box.isHidden()
        shots = os.environ.get("SENSORIUM_OPERATOR_SHOTS")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            dialog.grab().save(str(Path(shots) / "sync-check-dialog.png"))
    finally:
        node.stop()

