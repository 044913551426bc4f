"""Starting the GUI: Redis endpoint, node child, window, qasync event loop."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from .. import paths
from ..bus.connection import RedisEndpoint, open_endpoint
from ..bus.embedded import RedisUnavailableError
from ..bus.keys import Keys
from ..core.ids import make_id
from ..recording.review import ReviewData
from ..viewmodel.alerts import NodeWatch
from ..viewmodel.app import AppModel
from ..worker.supervisor import NodeProcess

log = logging.getLogger(__name__)
_IMPORTED_AT = time.time()


@dataclass
class GuiOptions:
    redis_url: str | None = None
    prefix: str | None = None
    node_args: list[str] = field(default_factory=list)
    start_node: bool = True
    quit_after: float | None = None
    screenshot: Path | None = None
    select: list[str] = field(default_factory=list)


def make_app() -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("Sensorium Desktop")
    app.setOrganizationName("Sensorium")
    app.setOrganizationDomain("sensorium.local")
    QtGui.QGuiApplication.setDesktopFileName("io.sensorium.Desktop")  # Wayland matches the icon by it
    assert isinstance(app, QtWidgets.QApplication), "a QCoreApplication without widgets already runs"
    app.setQuitOnLastWindowClosed(False)  # the model's run() ends the loop after closeEvent
    return app


def launched_at() -> float:
    """Epoch seconds at which this process was started (for the cold-start time)."""
    import psutil

    try:
        return float(psutil.Process().create_time())
    except psutil.Error:  # no /proc: count from this module's import instead
        return _IMPORTED_AT


def node_id_of(node_args: list[str]) -> str:
    """The id the started node will use (``--node-id`` or the host's default)."""
    from ..worker.context import default_node_id

    if "--node-id" in node_args:
        return node_args[node_args.index("--node-id") + 1]
    return default_node_id()


def close_after(window: QtWidgets.QWidget, seconds: float, screenshot: Path | None = None) -> None:
    """Close ``window`` after ``seconds`` (s), saving a screenshot of it first when asked."""

    def finish() -> None:
        if screenshot:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(screenshot))
            log.info("screenshot saved to %s", screenshot)
        window.close()

    QtCore.QTimer.singleShot(int(seconds * 1000), finish)


def run_review(data: ReviewData, quit_after: float | None = None, screenshot: Path | None = None) -> int:
    """Show a recording's review window until it is closed (or ``quit_after`` s)."""
    from .review_window import ReviewWindow

    app = make_app()
    app.setQuitOnLastWindowClosed(True)
    window = ReviewWindow(data)
    window.resize(1400, 850)
    window.show()
    if quit_after is not None:
        close_after(window, quit_after, screenshot)
    app.exec()
    return 0


def run_gui(opts: GuiOptions) -> int:
    """Run the window until it is closed (or ``quit_after`` seconds). Returns an exit code."""
    import qasync

    from .main_window import MainWindow

    app = make_app()
    from .desktop import ErrorDialogs, start_file_log

    log.info("window log: %s", start_file_log())
    try:
        endpoint: RedisEndpoint = open_endpoint(opts.redis_url, opts.prefix)
    except RedisUnavailableError as exc:
        log.error("%s", exc)
        QtWidgets.QMessageBox.critical(None, "Sensorium: no Redis", str(exc))
        return 2
    node: NodeProcess | None = None
    if opts.start_node:
        args = list(opts.node_args)
        if opts.prefix:
            args += ["--prefix", opts.prefix]
        node = NodeProcess(endpoint.url, args)
        node.start()
    keys = endpoint.keys if not opts.prefix else Keys(opts.prefix)
    model = AppModel(endpoint.url, keys, make_id("gui", str(QtCore.QCoreApplication.applicationPid())))
    if node is not None:  # Record goes to the node this window started
        model.sessions.recorder_node = node_id_of(opts.node_args)
    window = MainWindow(model)
    errors = ErrorDialogs(window)
    errors.install()
    window.show()
    app.processEvents()
    log.info("window shown %.2f s after launch (%s, key prefix %s, data dir %s)", time.time() - launched_at(),
             endpoint.description, keys.prefix, paths.data_dir())  # fmt: skip
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    supervise = QtCore.QTimer()
    if node is not None:  # a dead node is restarted, and the window says so until acknowledged
        watch = NodeWatch(node, model.alerts)
        supervise.timeout.connect(watch.check)
        supervise.start(1000)

    if opts.select:

        def select() -> None:
            for sid in opts.select:
                item = window.devices_panel.sensor_item(sid)
                if item is not None:
                    item.setSelected(True)
            if not window.devices_panel.selected_sensors():
                QtCore.QTimer.singleShot(300, select)

        QtCore.QTimer.singleShot(500, select)

    if opts.quit_after is not None:
        close_after(window, opts.quit_after, opts.screenshot)

    try:
        with loop:
            loop.run_until_complete(model.run())
    finally:
        supervise.stop()
        if node is not None:
            node.stop()
        endpoint.close()
    return 0
