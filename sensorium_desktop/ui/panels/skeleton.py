"""Skeleton view: the pose of every skeleton sensor, side by side, bones drawn with the
visibility of their end points as alpha. 33 landmarks are MediaPipe's topology; another source
keeps its own (its ``extra["bones"]``: index pairs; points only without). A source whose device
has a camera (``pose:``) is drawn over that camera's latest preview frame."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyqtgraph as pg
import redis
from PySide6 import QtCore, QtWidgets

from ...core.pose import N_LANDMARKS, POSE_CONNECTIONS
from ...core.samples import SensorInfo
from ..widgets import empty_label
from . import PanelSpec

if TYPE_CHECKING:
    from ..host import WindowHost

HOLDER = "skeleton"
FRAME_MS = 33
ADJ = np.array(POSE_CONNECTIONS, dtype=int)
EDGE_DTYPE = [("red", np.ubyte), ("green", np.ubyte), ("blue", np.ubyte), ("alpha", np.ubyte), ("width", float)]


def topology(info: SensorInfo) -> np.ndarray:
    """Bones (k × 2 landmark indexes) of a skeleton sensor: MediaPipe's for 33 landmarks, the
    source's own ``extra["bones"]`` otherwise (none: points only)."""
    points = info.channel_count // 3
    bones = info.extra.get("bones")
    if isinstance(bones, list) and bones:
        adj = np.array(bones, dtype=int).reshape(-1, 2)
        return adj[(adj >= 0).all(axis=1) & (adj < points).all(axis=1)]
    return ADJ if points == N_LANDMARKS else np.zeros((0, 2), dtype=int)


def bone_pens(visibility: np.ndarray, rgb: tuple[int, int, int] = (33, 150, 243), adj: np.ndarray = ADJ) -> np.ndarray:
    """Per-bone pens: alpha = the smaller visibility of the bone's two landmarks."""
    vis = np.clip(np.minimum(visibility[adj[:, 0]], visibility[adj[:, 1]]), 0.0, 1.0)
    pens = np.empty(len(adj), dtype=EDGE_DTYPE)
    pens["red"], pens["green"], pens["blue"] = rgb
    pens["alpha"] = (40 + 215 * vis).astype(np.ubyte)
    pens["width"] = 3.0
    return pens


class SkeletonPanel(QtWidgets.QWidget):
    def __init__(self, window: WindowHost) -> None:
        super().__init__()
        self.model = window.model
        self.state = empty_label("No skeleton source streaming.")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("skeletonView")
        self.graphics.setBackground("w")
        self.views: dict[str, tuple[pg.PlotItem, pg.GraphItem]] = {}
        self.bones: dict[str, np.ndarray] = {}
        self.frames: dict[str, tuple[str, pg.ImageItem]] = {}  # skeleton sensor → (its camera, image)
        self.versions: dict[str, int] = {}
        self._preview_task: asyncio.Task[None] | None = None
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
        self.frames.clear()
        self.versions.clear()
        sensors = self.model.devices.tree.sensors.values()
        for col, info in enumerate(infos):
            self.model.live.subscribe(info, HOLDER)
            plot = self.graphics.addPlot(row=0, col=col, title=info.device_name or info.sensor_id)
            plot.setAspectLocked(True)
            plot.invertY(True)
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.05)
            plot.hideAxis("left")
            plot.hideAxis("bottom")
            cams = sorted(c.sensor_id for c in sensors if c.device_id == info.device_id and c.attribute == "video")
            if cams:  # the frames the pose was found in, under it
                image = pg.ImageItem()
                plot.addItem(image)
                self.frames[info.sensor_id] = (cams[0], image)
            graph = pg.GraphItem()
            plot.addItem(graph)
            self.views[info.sensor_id] = (plot, graph)
            self.bones[info.sensor_id] = topology(info)
        self.state.setText(f"{len(infos)} skeleton source(s)" if infos else "No skeleton source streaming.")

    async def _fetch_frames(self) -> None:
        c = self.model.redis
        if c is None:
            return
        for sid, (camera, image) in list(self.frames.items()):
            with contextlib.suppress(redis.RedisError, OSError):
                jpeg = await c.hget(self.model.keys.preview(camera), "jpeg")
                bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) if jpeg else None
                if bgr is not None and sid in self.views:
                    h, w = bgr.shape[:2]
                    self.views[sid][0].setAspectLocked(True, ratio=w / max(h, 1))  # the frame's own shape
                    image.setImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).transpose(1, 0, 2), autoLevels=False,
                                   levels=(0, 255))  # fmt: skip
                    image.setRect(QtCore.QRectF(0, 0, 1, 1))

    def redraw(self) -> None:
        if not self.isVisible():
            return
        if self.frames and (self._preview_task is None or self._preview_task.done()):
            with contextlib.suppress(RuntimeError):  # no running loop (tests without qasync)
                self._preview_task = asyncio.get_event_loop().create_task(self._fetch_frames())
        for sid, (_plot, graph) in self.views.items():
            sub = self.model.live.subs.get(sid)
            if sub is None or sub.ring.size == 0 or self.versions.get(sid) == sub.ring.version:
                continue
            self.versions[sid] = sub.ring.version
            _t, v = sub.ring.latest(sub.ring.last_time())
            points = v.shape[1] // 3
            if points == 0:
                continue
            pts = np.asarray(v[-1, : points * 3], dtype=np.float64).reshape(points, 3)
            x, y, vis = pts[:, 0], pts[:, 1], np.nan_to_num(pts[:, 2])
            if not np.isfinite(x).any():  # no person in that frame
                graph.setData(pos=np.zeros((0, 2)))
                continue
            adj = self.bones.get(sid, ADJ)
            brushes = [pg.mkBrush(244, 67, 54, int(40 + 215 * min(max(a, 0.0), 1.0))) for a in vis]
            graph.setData(pos=np.column_stack([np.nan_to_num(x, nan=-1.0), np.nan_to_num(y, nan=-1.0)]),
                          adj=adj if len(adj) else None, pen=bone_pens(vis, adj=adj) if len(adj) else None, size=7,
                          symbolBrush=brushes, symbolPen=None, pxMode=True)  # fmt: skip


PANEL = PanelSpec("skeleton", "Skeleton", QtCore.Qt.DockWidgetArea.RightDockWidgetArea, SkeletonPanel, "gaze", order=30)
