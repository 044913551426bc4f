"""Gaze heatmap: confidence-weighted, decaying, smoothed; fixation marker; blink/worn state;
optional background (a camera's preview frame or a loaded picture)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyqtgraph as pg
import redis
from PySide6 import QtCore, QtWidgets

from ...core.gazelayout import GazeLayout, layout_of
from ...core.samples import SensorInfo
from ...viewmodel.gaze import GazeHeatmap
from ...viewmodel.live import Subscription
from ..widgets import empty_label
from . import PanelSpec

if TYPE_CHECKING:
    from ..host import WindowHost

HOLDER = "gaze"
FRAME_MS = 66
PICTURE = "picture…"
GAZE_ASPECT = 16 / 10  # the tracked display (or scene camera) is drawn 16:10


class GazePanel(QtWidgets.QWidget):
    def __init__(self, window: WindowHost) -> None:
        super().__init__()
        self.model = window.model
        self.heat = GazeHeatmap()
        self.source: str | None = None  # the eye_gaze sensor shown
        self._layouts: dict[str, GazeLayout | None] = {}  # the shown gaze sensor's channel layout
        self.t_seen = -np.inf
        self.background: np.ndarray | None = None
        self.source_box = QtWidgets.QComboBox()
        self.source_box.currentTextChanged.connect(self._choose)
        self.bg_box = QtWidgets.QComboBox()
        self.bg_box.addItems(["no background", PICTURE])
        self.bg_box.currentTextChanged.connect(self._choose_background)
        self.state = empty_label("No eye tracker streaming.")
        self.view = pg.PlotWidget(background="k")
        self.view.setObjectName("gazeView")
        self.view.setAspectLocked(True, ratio=GAZE_ASPECT)
        self.view.invertY(True)
        self.view.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.view.hideAxis("left")
        self.view.hideAxis("bottom")
        self.bg_item = pg.ImageItem()
        self.heat_item = pg.ImageItem()
        self.heat_item.setLookupTable(self._lut())
        self.heat_item.setOpacity(0.75)
        for item in (self.bg_item, self.heat_item):
            self.view.addItem(item)
        self.fix_item = pg.ScatterPlotItem(size=18, pen=pg.mkPen("#ffffff", width=2), brush=None, symbol="o")
        self.gaze_item = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush("#00e5ff"))
        self.view.addItem(self.fix_item)
        self.view.addItem(self.gaze_item)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Eye tracker"))
        bar.addWidget(self.source_box, 1)
        bar.addWidget(self.bg_box)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.state)
        layout.addWidget(self.view, 1)
        self.model.devices.changed.connect(lambda _tree: self._sources())
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.redraw)
        self.timer.start()
        self._preview_task: asyncio.Task[None] | None = None

    @staticmethod
    def _lut() -> np.ndarray:
        cmap = pg.colormap.get("inferno")
        lut = cmap.getLookupTable(0.0, 1.0, 256, alpha=True)
        lut[:, 3] = np.linspace(0, 255, 256).clip(0, 230).astype(np.uint8)  # cold = transparent
        return lut

    def _sensor(self, sensor_id: str) -> SensorInfo | None:
        return self.model.devices.sensor(sensor_id)

    def _sources(self) -> None:
        tree = self.model.devices.tree
        gaze = sorted(s.sensor_id for s in tree.sensors.values() if s.attribute == "eye_gaze")
        if gaze != [self.source_box.itemText(i) for i in range(self.source_box.count())]:
            current = self.source_box.currentText()
            self.source_box.blockSignals(True)
            self.source_box.clear()
            self.source_box.addItems(gaze)
            self.source_box.blockSignals(False)
            self.source_box.setCurrentText(current if current in gaze else (gaze[0] if gaze else ""))
            self._choose(self.source_box.currentText())
        cams = sorted(s.sensor_id for s in tree.sensors.values() if s.attribute == "video")
        have = {self.bg_box.itemText(i) for i in range(self.bg_box.count())}
        for sid in cams:
            if sid not in have:
                self.bg_box.addItem(sid)

    def _siblings(self, gaze_id: str) -> list[SensorInfo]:
        info = self._sensor(gaze_id)
        if info is None:
            return []
        return [s for s in self.model.devices.tree.sensors.values()
                if s.device_id == info.device_id and s.attribute in ("eye_gaze", "eye_blink", "eye_worn")]  # fmt: skip

    def _choose(self, sensor_id: str) -> None:
        if self.source:
            for s in self._siblings(self.source):
                self.model.live.unsubscribe(s.sensor_id, HOLDER)
        self.source = sensor_id or None
        self._layouts.clear()
        self.heat.clear()
        self.t_seen = -np.inf
        for s in self._siblings(sensor_id) if sensor_id else []:
            self.model.live.subscribe(s, HOLDER)
        scene = self._scene_camera(sensor_id) if sensor_id else None
        if scene is not None:  # an eye tracker's own scene camera (Pupil's world) is the background
            if self.bg_box.findText(scene) < 0:
                self.bg_box.addItem(scene)
            self.bg_box.setCurrentText(scene)

    def _scene_camera(self, gaze_id: str) -> str | None:
        """The video sensor of the gaze sensor's own device (a head-mounted tracker's scene
        camera), when it has one and the gaze is on that image (not on a surface)."""
        info = self._sensor(gaze_id)
        if info is None or info.extra.get("surface"):
            return None
        cams = sorted(s.sensor_id for s in self.model.devices.tree.sensors.values()
                      if s.device_id == info.device_id and s.attribute == "video")  # fmt: skip
        return cams[0] if cams else None

    def shown_sensors(self) -> list[str]:
        """Sensors this panel shows (for attention)."""
        return [s.sensor_id for s in self._siblings(self.source)] if self.source else []

    def _choose_background(self, text: str) -> None:
        if text == PICTURE:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Background picture", "", "Images (*.png *.jpg *.jpeg)"
            )
            img = cv2.imread(path) if path else None
            self.set_background(img)
        elif text == "no background":
            self.set_background(None)

    def set_background(self, bgr: np.ndarray | None) -> None:
        """Show an image (BGR, any size) under the heatmap, stretched to the gaze area."""
        self.background = bgr
        if bgr is None:
            self.bg_item.clear()
            self.view.setAspectLocked(True, ratio=GAZE_ASPECT)
            return
        h, w = bgr.shape[:2]
        self.view.setAspectLocked(True, ratio=w / max(h, 1))  # the picture's own aspect
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).transpose(1, 0, 2)
        self.bg_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        self.bg_item.setRect(QtCore.QRectF(0, 0, 1, 1))

    async def _fetch_preview(self, sensor_id: str) -> None:
        c = self.model.redis
        if c is None:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            jpeg = await c.hget(self.model.keys.preview(sensor_id), "jpeg")
            if jpeg:
                self.set_background(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))

    def _sub(self, attribute: str) -> Subscription | None:
        for s in self._siblings(self.source or ""):
            if s.attribute == attribute:
                return self.model.live.subs.get(s.sensor_id)
        return None

    def redraw(self) -> None:
        """Feed new gaze samples to the heatmap and draw it (~15 frames/s)."""
        if not self.isVisible():
            return
        bg = self.bg_box.currentText()
        if bg not in ("no background", PICTURE) and (self._preview_task is None or self._preview_task.done()):
            with contextlib.suppress(RuntimeError):  # no running loop (tests without qasync)
                self._preview_task = asyncio.get_event_loop().create_task(self._fetch_preview(bg))
        sub = self._sub("eye_gaze")
        if sub is None:
            self.state.setText("No eye tracker streaming." if not self.source else f"Waiting for {self.source}…")
            return
        t, v = sub.ring.latest(self.t_seen + 1e-9 if np.isfinite(self.t_seen) else None)
        if t.size:
            self.t_seen = float(t[-1])
            info = sub.info
            if info.sensor_id not in self._layouts:  # read once per source, not at every redraw
                self._layouts[info.sensor_id] = layout_of(info.channel_names, info.units, info.device_name, info.extra)
            layout = self._layouts[info.sensor_id]
            if layout is not None:  # the tracker's channels made ours: x, y top-left, confidence
                xyc = layout.normalize(v)
                ok = np.isfinite(xyc[:, :2]).all(axis=1)
                self.heat.add(t[ok], xyc[ok, 0], xyc[ok, 1], xyc[ok, 2])
                if ok.any():
                    self.gaze_item.setData([float(xyc[ok][-1, 0])], [float(xyc[ok][-1, 1])])
            else:
                self.state.setText(f"{self.source}: no x/y channels recognised (see docs/gaze-conventions.md)")
                return
        self.heat_item.setImage(self.heat.image(), autoLevels=False, levels=(0.0, 1.0))
        self.heat_item.setRect(QtCore.QRectF(0, 0, 1, 1))
        fx = self.heat.fixation
        if fx:
            self.fix_item.setData([fx.x], [fx.y])
        else:
            self.fix_item.clear()
        blink = self._latest("eye_blink")
        worn = self._latest("eye_worn")
        parts = [self.source or ""]
        parts.append(f"fixation {fx.duration * 1000:.0f} ms" if fx else "saccade/smooth pursuit")
        parts.append("BLINK" if blink == 1 else "eyes open")
        parts.append("worn" if worn != 0 else "NOT WORN")
        self.state.setText(" · ".join(parts))

    def _latest(self, attribute: str) -> float | None:
        sub = self._sub(attribute)
        if sub is None or sub.ring.size == 0:
            return None
        _t, v = sub.ring.latest(sub.ring.last_time())
        return float(v[-1, 0]) if v.size else None


PANEL = PanelSpec("gaze", "Gaze", QtCore.Qt.DockWidgetArea.RightDockWidgetArea, GazePanel, order=20)
