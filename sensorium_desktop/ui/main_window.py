"""The operator's main window: dockable panels over the headless :class:`AppModel`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from ..core.backpressure import ViewState
from ..viewmodel.app import AppModel, StatusSummary
from ..viewmodel.lab import LabSnapshot
from . import desktop
from .mime import SENSORS_MIME, read_sensors
from .panels import PanelAction, panel_specs
from .panels.devices import DevicesPanel
from .panels.plots import LivePlotPanel
from .style import text_style
from .widgets import AlertBanner

#: bumped when the default dock layout changes (2: the Log dock, tabbed with Sessions): a layout
#: saved by an older version would put new docks wherever Qt chooses
SETTINGS_VERSION = 2
ATTENTION_MS = 1000
#: How long a devices-panel outcome (connect failed, disconnected) stays in the status bar (ms).
STATUS_MESSAGE_MS = 15_000


class PlotDropArea(QtWidgets.QWidget):
    """The centre: live plots that accept sensors dragged from the device tree or a session."""

    sensorsDropped = QtCore.Signal(list)

    def __init__(self, plots: LivePlotPanel, banner: QtWidgets.QWidget) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(banner)
        layout.addWidget(plots, 1)

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(SENSORS_MIME) or event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:
        if event.mimeData().hasFormat(SENSORS_MIME) or event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        if event.mimeData().hasUrls() and not event.mimeData().hasFormat(SENSORS_MIME):
            from .review_window import load_review_window  # a recording or XDF file: review it

            event.acceptProposedAction()
            for url in event.mimeData().urls():
                load_review_window(Path(url.toLocalFile()), self)
            return
        ids, _ = read_sensors(event.mimeData())
        if ids:
            event.acceptProposedAction()
            self.sensorsDropped.emit(ids)


def initial_size(screen: QtGui.QScreen | None) -> QtCore.QSize:
    """The window's first size, from the screen it opens on: all of a small screen (a
    1366×768 laptop), 85 % of a large one up to 1600×1000 (px)."""
    if screen is None:
        return QtCore.QSize(1400, 900)
    avail = screen.availableGeometry().size()
    if avail.width() <= 1440 or avail.height() <= 900:
        return avail
    return QtCore.QSize(min(1600, int(avail.width() * 0.85)), min(1000, int(avail.height() * 0.85)))


class MainWindow(QtWidgets.QMainWindow):
    """Device tree and registered panels in docks, live plots in the centre, status bar."""

    def __init__(self, model: AppModel, title: str = "Sensorium Desktop", settings: QtCore.QSettings | None = None):
        super().__init__()
        self.model = model
        self.settings = settings or QtCore.QSettings()
        self.pending: list[Coroutine[Any, Any, Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.setWindowTitle(title)
        self.setObjectName("mainWindow")
        self.resize(initial_size(QtGui.QGuiApplication.primaryScreen()))
        self.setDockNestingEnabled(True)
        # side panels keep the full height; status panels sit under the plots
        self.setCorner(QtCore.Qt.Corner.BottomLeftCorner, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(QtCore.Qt.Corner.BottomRightCorner, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.devices_panel = DevicesPanel(model.devices, model.control, self.spawn)
        self.devices_panel.setMinimumWidth(340)  # names, rates and states stay readable
        self.plots = LivePlotPanel(model.live)
        self.banner = AlertBanner(model.alerts)
        self.plot_area = PlotDropArea(self.plots, self.banner)
        self.plot_area.sensorsDropped.connect(self.add_plots)
        self.setCentralWidget(self.plot_area)
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        self.panels: dict[str, QtWidgets.QWidget] = {"devices": self.devices_panel}
        self.view_menu = self.menuBar().addMenu("&View")
        self._add_dock("devices", "Devices", self.devices_panel, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        tabs: list[tuple[str, str]] = []
        self.panel_specs = panel_specs()
        for spec in self.panel_specs:
            widget = spec.build(self)
            self.panels[spec.name] = widget
            self._add_dock(spec.name, spec.title, widget, spec.area)
            if spec.tab_with:
                tabs.append((spec.tab_with, spec.name))
        for first, second in tabs:
            if first in self.docks:
                self.tabifyDockWidget(self.docks[first], self.docks[second])
        for first, _ in tabs:
            if first in self.docks:
                self.docks[first].raise_()
        self._hide_orphan_tab_bars()
        self.layout_restored = False
        QtCore.QTimer.singleShot(0, self._default_sizes)
        self.devices_panel.sensorsSelected.connect(self.plot_sensors)
        self.devices_panel.statusMessage.connect(lambda text: self.statusBar().showMessage(text, STATUS_MESSAGE_MS))
        self._status_bar()
        self._actions()
        model.status_changed.connect(self.show_status)
        model.lab.changed.connect(self.show_role)
        model.devices.changed.connect(lambda tree: self.plots.show_quality(tree.quality()))
        self.attention_timer = QtCore.QTimer(self)
        self.attention_timer.setInterval(ATTENTION_MS)
        self.attention_timer.timeout.connect(self.update_attention)
        self.attention_timer.start()
        self.restore_layout()

    # -- construction ----------------------------------------------------------------------------
    def _add_dock(self, name: str, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea) -> None:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"{name}Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        self.view_menu.addAction(dock.toggleViewAction())

    def _hide_orphan_tab_bars(self) -> None:
        """Qt 6 leaves tab bars of dock groups visible and orphaned (one where a third dock
        joined a group before the window was shown; a second copy of a group's bar, left where
        an earlier layout put it, drawn over a panel after a resize): hide a bar whose tabs
        another bar also shows, unless it is the one its docks sit on."""
        bars = [b for b in self.findChildren(QtWidgets.QTabBar) if b.parent() is self]
        titles = {b: {b.tabText(i) for i in range(b.count())} for b in bars}
        live = {b for b in bars if self._docks_sit_on(b)}
        for b in bars:
            subset = any(o is not b and titles[b] < titles[o] for o in bars)
            copy = b not in live and any(o is not b and titles[b] == titles[o] and o in live for o in bars)
            if subset or copy:
                b.hide()

    def _docks_sit_on(self, bar: QtWidgets.QTabBar) -> bool:
        """Whether the dock of the bar's current tab lies directly above it (px)."""
        title = bar.tabText(bar.currentIndex())
        g = bar.geometry()
        return any(d.isVisible() and d.windowTitle() == title and abs(d.geometry().left() - g.left()) <= 2
                   and abs(d.geometry().bottom() + 1 - g.top()) <= 2 for d in self.docks.values())  # fmt: skip

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        QtCore.QTimer.singleShot(0, self._hide_orphan_tab_bars)  # after Qt laid the docks out again

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        QtCore.QTimer.singleShot(0, self._hide_orphan_tab_bars)

    def _default_sizes(self) -> None:
        """A first layout that gives the plots the room (unless a saved layout was restored)."""
        if self.layout_restored:
            return
        h, w = self.height(), self.width()
        side = [d for d in (self.docks.get("devices"), self.docks.get("gaze")) if d is not None]
        self.resizeDocks(side, [int(w * 0.26), int(w * 0.26)][: len(side)], QtCore.Qt.Orientation.Horizontal)
        if "sessions" in self.docks:
            pair = [self.docks["devices"], self.docks["sessions"]]
            self.resizeDocks(pair, [int(h * 0.55), int(h * 0.4)], QtCore.Qt.Orientation.Vertical)
        if "sync" in self.docks:
            self.resizeDocks([self.docks["sync"]], [int(h * 0.36)], QtCore.Qt.Orientation.Vertical)

    def _status_bar(self) -> None:
        self.status_redis = QtWidgets.QLabel()
        self.status_role = QtWidgets.QLabel("role: –")
        self.status_rate = QtWidgets.QLabel()
        self.status_nodes = QtWidgets.QLabel()
        self.status_recording = QtWidgets.QLabel("not recording")
        self.status_recording.setObjectName("statusRecording")
        self.status_remote = QtWidgets.QLabel("remote: –")
        self.status_remote.setObjectName("statusRemote")
        for w in (self.status_redis, self.status_role, self.status_nodes, self.status_rate, self.status_remote,
                  self.status_recording):  # fmt: skip
            self.statusBar().addPermanentWidget(w)

    def open_recording(self) -> None:
        """File → Open: a session folder (its session.json) or an XDF file, in a review window."""
        from .. import paths
        from .review_window import load_review_window

        chosen, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a recording", str(paths.sessions_dir()), "Recordings (session.json *.xdf *.xdfz);;All files (*)"
        )
        if chosen:
            load_review_window(Path(chosen), self)

    def _actions(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QtGui.QAction("&Quit", self)
        quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        session_menu = self.menuBar().addMenu("&Session")
        self.record_action = QtGui.QAction("&Record", self, shortcut=QtGui.QKeySequence("Ctrl+R"))
        # Ctrl+Shift+R, not Ctrl+.: Cmd+. is Cancel on macOS
        self.stop_action = QtGui.QAction("S&top", self, shortcut=QtGui.QKeySequence("Ctrl+Shift+R"))
        self.record_action.setToolTip("Record the current session (its sensors, markers and time slices)")
        self.record_action.triggered.connect(self.record)
        self.stop_action.triggered.connect(lambda: self.spawn(self.model.sessions.stop_recording()))
        self.export_action = QtGui.QAction("&Export recording…", self, shortcut=QtGui.QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(lambda: self.export_recording())
        self.stop_action.setEnabled(False)
        self.sync_check_action = QtGui.QAction("S&ync check…", self)
        self.sync_check_action.setToolTip("Flash the screen, record every device that can see it and measure its "
                                          "latency against the lab's tolerance")  # fmt: skip
        self.sync_check_action.triggered.connect(lambda: self.open_sync_check())
        for a in (self.record_action, self.stop_action, self.sync_check_action):
            session_menu.addAction(a)
        open_action = QtGui.QAction("&Open recording or XDF…", self)
        open_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        open_action.setToolTip("Review a session folder or any XDF file on one timeline (or drop it on the plots)")
        open_action.triggered.connect(self.open_recording)
        file_menu.addAction(open_action)
        file_menu.addAction(self.export_action)
        self.model.sessions.changed.connect(lambda _s: self.show_recording())
        file_menu.addAction(quit_action)
        self.help_menu = help_menu = self.menuBar().addMenu("&Help")
        about = help_menu.addAction("&About Sensorium Desktop")
        about.triggered.connect(lambda: self.about())
        help_menu.addAction("About &Qt").triggered.connect(QtWidgets.QApplication.aboutQt)
        log_action = help_menu.addAction("Open the &log folder")
        log_action.triggered.connect(lambda: QtGui.QDesktopServices.openUrl(
            QtCore.QUrl.fromLocalFile(str(desktop.log_file().parent))))  # fmt: skip
        self.menus = {"&File": file_menu, "&Session": session_menu, "&View": self.view_menu, "&Help": help_menu}
        for spec in self.panel_specs:
            for pa in spec.actions:
                self._add_panel_action(pa, self.panels[spec.name])

    def about(self) -> QtWidgets.QMessageBox:
        """Help → About: versions, the Redis endpoint, data/config/log paths."""
        from ..bus.connection import mask_url

        return desktop.show_about(self, mask_url(self.model.redis_url))

    def _add_panel_action(self, pa: PanelAction, panel: QtWidgets.QWidget) -> QtGui.QAction:
        """Put a panel's action into its menu (made after the window's own if missing) or, with
        no menu, onto the window as a shortcut."""
        action = QtGui.QAction(pa.text, self)
        action.setToolTip(pa.tip)
        if pa.shortcut:
            action.setShortcut(QtGui.QKeySequence(pa.shortcut))
        bare_key = bool(pa.shortcut) and not any(m in pa.shortcut for m in ("Ctrl+", "Alt+", "Meta+"))
        action.triggered.connect(lambda _=False: self._run_panel_action(pa, panel, bare_key))
        if pa.menu:
            menu = self.menus.get(pa.menu)
            if menu is None:
                menu = self.menus[pa.menu] = QtWidgets.QMenu(pa.menu, self)
                self.menuBar().insertMenu(self.help_menu.menuAction(), menu)
            menu.addAction(action)
        else:
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            self.addAction(action)
        return action

    @staticmethod
    def _run_panel_action(pa: PanelAction, panel: QtWidgets.QWidget, bare_key: bool) -> None:
        focus = QtWidgets.QApplication.focusWidget()
        typing = isinstance(focus, QtWidgets.QLineEdit | QtWidgets.QPlainTextEdit | QtWidgets.QAbstractSpinBox)
        if bare_key and typing and not focus.isReadOnly():  # type: ignore[union-attr]
            return  # typing a digit into a field is not a marker (a locked field takes no typing)
        dock = panel.parentWidget()
        if pa.reveal and isinstance(dock, QtWidgets.QDockWidget):
            dock.show()
            dock.raise_()
        pa.run(panel)

    # -- async work from Qt slots -------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a model coroutine on the app's event loop (queued until one runs: see :meth:`drain`)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.pending.append(coro)
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Await coroutines queued while no loop was running (tests, start-up)."""
        while self.pending:
            await self.pending.pop(0)

    # -- plots and attention ----------------------------------------------------------------------
    def plot_sensors(self, sensor_ids: list[str]) -> None:
        infos = [i for i in (self.model.devices.sensor(s) for s in sensor_ids) if i is not None]
        self.plots.set_sensors(infos)
        self.update_attention()

    def add_plots(self, sensor_ids: list[str]) -> None:
        """Sensors dropped on the plot area join the plotted ones."""
        current = self.plots.sensor_ids()
        self.plot_sensors(current + [s for s in sensor_ids if s not in current])

    def _panel_visible(self, name: str) -> bool:
        dock = self.docks.get(name)
        widget = dock.widget() if dock else self.plots
        return bool(widget is not None and widget.isVisible() and not widget.visibleRegion().isEmpty())

    def update_attention(self) -> None:
        """Attention from the screen: plotted → high, shown in a visible panel → medium,
        hidden → none; a minimized window → none for everything (publishes on refresh)."""
        att = self.model.attention
        att.minimized = self.isMinimized()
        plotted = set(self.plots.sensor_ids()) if self.plots.isVisible() else set()
        att.clear_panel("plots")
        for sid in plotted:
            att.set_view(sid, "plots", ViewState(visible=True, focused=True))
        for name, widget in self.panels.items():
            shown = getattr(widget, "shown_sensors", None)
            if shown is None:
                continue
            att.clear_panel(name)
            visible = self._panel_visible(name)
            for sid in shown():
                att.set_view(sid, name, ViewState(visible=visible))

    # -- recording ------------------------------------------------------------------------------
    def show_recording(self) -> None:
        """Record/Stop follow the current session; the status bar shows time, size, errors."""
        sessions = self.model.sessions
        current = sessions.session(sessions.current or "")
        recording = current is not None and current.state == "recording"
        # always there (but while recording): Record on a session it cannot record says why
        self.record_action.setEnabled(not recording)
        ready = current is not None and bool(current.sensors) and current.state == "idle"
        self.record_action.setToolTip("Record the current session (its sensors, markers and time slices)" if ready
                                      else "the current session cannot be recorded yet: Record says why")  # fmt: skip
        self.stop_action.setEnabled(recording)
        active = sessions.active_recording()
        label = self.status_recording
        if active is None:
            label.setText("not recording")
            label.setStyleSheet("")
            return
        s, st = active
        name = st.get("name") or s.bids_name  # the recording's one name: its folder's
        size = int(st.get("bytes", 0) or 0) / 1e6
        secs = float(st.get("seconds", 0) or 0)
        state = st.get("state", "starting")
        if state == "failed" or s.error:
            label.setText(f"⚠ recording {name} failed: {st.get('error') or s.error}")
            label.setStyleSheet(text_style("error"))
        elif s.state == "recording":
            label.setText(f"● REC {name}  {int(secs // 60):02d}:{int(secs % 60):02d}  {size:.1f} MB")
            label.setStyleSheet(text_style("error", bold=True))
        else:
            label.setText(f"recorded {name}: {size:.1f} MB ({state})")
            label.setStyleSheet("")
        label.setToolTip(st.get("directory", ""))

    def record(self) -> None:
        """Record the current session, with what is typed in its form (Ctrl+R while a field still
        has the focus records the name the operator sees, not the one saved before)."""
        commit = getattr(self.panels.get("sessions"), "commit", None)
        if callable(commit):
            commit()
        self.spawn(self.model.sessions.start_recording())

    def open_sync_check(self) -> QtWidgets.QDialog:
        """Session → Sync check…: the check's dialog (one at a time)."""
        from .synccheck_dialog import SyncCheckDialog

        dialog = getattr(self, "sync_check_dialog", None)
        if dialog is None:
            dialog = self.sync_check_dialog = SyncCheckDialog(self, self)
        dialog.show()
        dialog.raise_()
        return dialog

    def export_recording(self, directory: Path | None = None) -> None:
        """The export dialog for ``directory`` (default: the last recording made here)."""
        from .export_dialog import ExportDialog

        if directory is None:
            active = self.model.sessions.active_recording()
            directory = self.model.sessions.recording_directory(active[0].session_id) if active else None
        self.export_dialog = ExportDialog(self, directory)
        self.export_dialog.show()

    # -- status ---------------------------------------------------------------------------------
    def show_status(self, s: StatusSummary) -> None:
        if s.redis_ok:
            self.status_redis.setText(f"Redis: {s.redis_text}")
            self.status_redis.setStyleSheet("")
        else:
            self.status_redis.setText(f"⚠ {s.error or 'Redis: not connected'}")
            self.status_redis.setStyleSheet(text_style("error"))
        self.status_nodes.setText(f"Nodes: {len(s.nodes)}")
        self.status_rate.setText(f"{s.samples_per_s:,.0f} samples/s")
        text, details = s.remote_text()
        self.status_remote.setText(text)
        self.status_remote.setToolTip(details or "no remote control runs (sensorium node --rcs-port / --pupil-port)")

    def show_role(self, snap: LabSnapshot) -> None:
        here = QtCore.QSysInfo.machineHostName()
        mine = [nid for nid, n in snap.status.nodes.items() if n.host == here]
        if not snap.leader:
            text = "no leader"
        elif snap.leader in mine:
            text = f"this PC leads (term {snap.term})"
        elif mine:
            text = f"follower of {snap.leader} (term {snap.term})"
        else:
            text = f"leader {snap.leader} (term {snap.term})"
        self.status_role.setText(text)

    # -- persistence -----------------------------------------------------------------------------
    def restore_layout(self) -> None:
        """The saved geometry, docks and plot window (only a layout of this SETTINGS_VERSION)."""
        if int(str(self.settings.value("window/version", 0) or 0)) != SETTINGS_VERSION:
            return
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.layout_restored = bool(self.restoreState(state, SETTINGS_VERSION))
        window_s = self.settings.value("plots/window_s")
        if window_s is not None:
            with contextlib.suppress(TypeError, ValueError):
                self.plots.window_box.setValue(float(window_s))

    def save_layout(self) -> None:
        self.settings.setValue("window/version", SETTINGS_VERSION)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(SETTINGS_VERSION))
        self.settings.setValue("plots/window_s", self.plots.window_s)
        self.settings.sync()

    def changeEvent(self, event: QtCore.QEvent) -> None:
        if event.type() == QtCore.QEvent.Type.WindowStateChange:
            self.model.attention.minimized = self.isMinimized()
        super().changeEvent(event)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.save_layout()
        self.model.shutdown()
        super().closeEvent(event)
