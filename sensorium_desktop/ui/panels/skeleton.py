"""Skeleton view: the 33-landmark pose of every skeleton sensor, side by side, bones drawn
with the visibility of their end points as alpha."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ...core.pose import N_LANDMARKS, POSE_CONNECTIONS, split_row
from ..widgets import empty_label
from . import PanelSpec

if TYPE_CHECKING:
    from ..main_window import MainWindow

HOLDER = "skeleton"
FRAME_MS = 33
ADJ = np.array(POSE_CONNECTIONS, dtype=int)
EDGE_DTYPE = [("red", np.ubyte), ("green", np.ubyte), ("blue", np.ubyte), ("alpha", np.ubyte), ("width", float)]


def bone_pens(visibility: np.ndarray, rgb: tuple[int, int, int] = (33, 150, 243)) -> np.ndarray:
    """Per-bone pens: alpha = the smaller visibility of the bone's two landmarks."""
    vis = np.clip(np.minimum(visibility[ADJ[:, 0]], visibility[ADJ[:, 1]]), 0.0, 1.0)
    pens = np.empty(len(ADJ), dtype=EDGE_DTYPE)
    pens["red"], pens["green"], pens["blue"] = rgb
    pens["alpha"] = (40 + 215 * vis).astype(np.ubyte)
    pens["width"] = 3.0
    return pens


class SkeletonPanel(QtWidgets.QWidget):
    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.model = window.model
        self.state = empty_label("No skeleton source streaming.")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("skeletonView")
        self.graphics.setBackground("w")
        self.views: dict[str, tuple[pg.PlotItem, pg.GraphItem]] = {}
        self.versions: dict[str, int] = {}
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.state)
        layout.addWidget(self.graphics, 1)
        self.model.devices.changed.connect(lambda _tree: self._sources())
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def shown_sensors(self) -> list[str]:
        return list(self.views)

    def _sources(self) -> None:
        infos = sorted(
            (s for s in self.model.devices.tree.sensors.values() if s.attribute == "skeleton"),
            key=lambda s: s.sensor_id,
        )
        ids = [s.sensor_id for s in infos]
        if ids == list(self.views):
            return
        for sid in self.views:
            self.model.live.unsubscribe(sid, HOLDER)
        self.graphics.clear()
        self.views.clear()
        for col, info in enumerate(infos):
            self.model.live.subscribe(info, HOLDER)
            plot = self.graphics.addPlot(row=0, col=col, title=info.device_name or info.sensor_id)
            plot.setAspectLocked(True)
            plot.invertY(True)
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.05)
            plot.hideAxis("left")
            plot.hideAxis("bottom")
            graph = pg.GraphItem()
            plot.addItem(graph)
            self.views[info.sensor_id] = (plot, graph)
        self.state.setText(f"{len(infos)} skeleton source(s)" if infos else "No skeleton source streaming.")

    def redraw(self) -> None:
        if not self.isVisible():
            return
        for sid, (_plot, graph) in self.views.items():
            sub = self.model.live.subs.get(sid)
            if sub is None or sub.ring.size == 0 or self.versions.get(sid) == sub.ring.version:
                continue
            self.versions[sid] = sub.ring.version
            _t, v = sub.ring.latest(sub.ring.last_time())
            if v.shape[1] < N_LANDMARKS * 3:
                continue
            x, y, vis = split_row(v[-1, : N_LANDMARKS * 3])
            brushes = [pg.mkBrush(244, 67, 54, int(40 + 215 * min(max(a, 0.0), 1.0))) for a in vis]
            graph.setData(pos=np.column_stack([x, y]), adj=ADJ, pen=bone_pens(vis), size=7, symbolBrush=brushes,
                          symbolPen=None, pxMode=True)  # fmt: skip


PANEL = PanelSpec("skeleton", "Skeleton", QtCore.Qt.DockWidgetArea.RightDockWidgetArea, SkeletonPanel, "gaze", order=30)
