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
from conftest import AsyncRunner, RedisServer, WindowDriver
from PySide6 import QtCore, QtWidgets

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.worker.supervisor import NodeProcess

pytestmark = pytest.mark.gui

NODE = "sync-node"


def test_sync_check_from_the_window(
    qtbot, arun: AsyncRunner, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(tmp_path / "data"))
    keys = Keys(f"sc{os.getpid()}")
    args = ["--prefix", keys.prefix, "--node-id", NODE, "--device", "sim:photodiode?flash_latency_ms=0.5",
            "--device", "sim:eyes?flash_latency_ms=12.5", "--rcs-port", "0", "--pupil-port", "0"]  # fmt: skip
    node = NodeProcess(redis_server.url, args, log_path=tmp_path / "node.log")
    driver = WindowDriver(qtbot, arun, redis_server.url, keys, "gui-sync", tmp_path)
    model, win, until = driver.model, driver.win, driver.until
    model.sessions.recorder_node = NODE

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



GL_SCRIPT = """
import json, sys, time
import numpy as np
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
from sensorium_desktop.core.hostclock import host_time
from sensorium_desktop.ui.flash import FlashStimulus
swaps, asked = [], []
stim = FlashStimulus("full", 200, fullscreen=False, clicks=False)
stim.open_window()
t0 = host_time()
stim.start(np.array([0.2, 0.5, 0.8]), 0.1, lambda i, lit, t: swaps.append((i, lit, t - t0)))
deadline = time.monotonic() + 10
while len(swaps) < 6 and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.001)
print(json.dumps({"timing": stim.timing, "platform": app.platformName(), "swaps": swaps}))
"""


def test_on_a_real_display_the_presentation_is_the_opengl_frame_swap(tmp_path: Path) -> None:
    """Under Xvfb (an X display with Mesa's OpenGL, as setup installs) the flash window is an
    OpenGL window and every flash is timed by its frameSwapped signal, after the flash was due."""
    import shutil
    import subprocess
    import sys

    xvfb = shutil.which("xvfb-run")
    assert xvfb, "xvfb-run is missing: scripts/setup.sh installs it"
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    script = tmp_path / "gl.py"
    script.write_text(GL_SCRIPT)
    run = subprocess.run([xvfb, "-a", sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["platform"] == "xcb" and out["timing"] == "frame swap (OpenGL)", out
    swaps = out["swaps"]
    assert [(i, lit) for i, lit, _t in swaps] == [(0, True), (0, False), (1, True), (1, False), (2, True), (2, False)]
    onsets = [t for _i, lit, t in swaps if lit]
    for due, t in zip((0.2, 0.5, 0.8), onsets, strict=True):
        assert due <= t < due + 0.1, (due, t)  # presented after it was asked for, within a few frames
