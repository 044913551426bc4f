"""The operator's main window: dockable panels over the headless :class:`AppModel`."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from ..core.backpressure import ViewState
from ..viewmodel.app import AppModel, StatusSummary
from .panels.devices import DevicesPanel
from .panels.plots import LivePlotPanel


class MainWindow(QtWidgets.QMainWindow):
    """Device tree (dock), live plots (centre), status bar."""

    def __init__(self, model: AppModel, title: str = "Sensorium Desktop") -> None:
        super().__init__()
        self.model = model
        self.setWindowTitle(title)
        self.setObjectName("mainWindow")
        self.resize(1280, 800)
        self.devices_panel = DevicesPanel(model.devices)
        self.plots = LivePlotPanel(model.live)
        self.setCentralWidget(self.plots)
        dock = QtWidgets.QDockWidget("Devices", self)
        dock.setObjectName("devicesDock")
        dock.setWidget(self.devices_panel)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks([dock], [420], QtCore.Qt.Orientation.Horizontal)
        self.devices_panel.sensorsSelected.connect(self.plot_sensors)
        self.status_redis = QtWidgets.QLabel()
        self.status_rate = QtWidgets.QLabel()
        self.status_nodes = QtWidgets.QLabel()
        for w in (self.status_redis, self.status_nodes, self.status_rate):
            self.statusBar().addPermanentWidget(w)
        model.status_changed.connect(self.show_status)
        quit_action = QtGui.QAction("&Quit", self)
        quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        self.menuBar().addMenu("&File").addAction(quit_action)
        self.view_menu = self.menuBar().addMenu("&View")
        self.view_menu.addAction(dock.toggleViewAction())

    def plot_sensors(self, sensor_ids: list[str]) -> None:
        infos = [i for i in (self.model.devices.sensor(s) for s in sensor_ids) if i is not None]
        old = set(self.plots.sensor_ids())
        self.plots.set_sensors(infos)
        self.model.attention.clear_panel("plots")
        for sid in old | set(sensor_ids):
            plotted = sid in sensor_ids
            self.model.attention.set_view(sid, "plots", ViewState(visible=plotted, focused=plotted))

    def show_status(self, s: StatusSummary) -> None:
        if s.redis_ok:
            self.status_redis.setText(f"Redis: {s.redis_text}")
            self.status_redis.setStyleSheet("")
        else:
            self.status_redis.setText(f"⚠ {s.error or 'Redis: not connected'}")
            self.status_redis.setStyleSheet("color: #c62828")
        self.status_nodes.setText(f"Nodes: {len(s.nodes)}")
        self.status_rate.setText(f"{s.samples_per_s:,.0f} samples/s")

    def changeEvent(self, event: QtCore.QEvent) -> None:
        if event.type() == QtCore.QEvent.Type.WindowStateChange:
            self.model.attention.minimized = self.isMinimized()
        super().changeEvent(event)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.model.shutdown()
        super().closeEvent(event)
