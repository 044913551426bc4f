"""Cameras and video sources (opencv-python-headless): capture thread, video file, frame samples.

URIs: ``camera:0`` (capture device index), ``camera:/dev/video2``, ``camera:clip.mp4`` (a
video file, played in real time at its own frame rate unless ``realtime=0``; ``loop=1``
replays it), ``camera:rtsp://host/stream`` (any URL opencv opens). Options: ``fps``,
``width``, ``height`` (requested from capture devices), ``record`` (path of the video file
the frames are stored to; default ``<data dir>/video/<device>-<time>.avi``, MJPG; ``0`` to
not store them), ``preview_hz`` (default 2).

Frames do not travel through Redis. Each frame is written to the video file and its sample
is ``frame_index`` (the frame's index in that file), stamped with the host time the moment
``grab()`` returned and, as ``t_local``, the source's own timestamp where the backend gives
one (the file position for files, the driver's buffer time for V4L2, the pts of a stream;
otherwise ``t_local`` equals the arrival time, which the clock model treats as no clock). A small JPEG preview
(at most ``PREVIEW_WIDTH`` px wide, ``preview_hz`` per second) is offered to the node, which
puts it in Redis for the GUI.
"""

from __future__ import annotations

import asyncio
import glob
import os
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .. import paths
from ..core.hostclock import host_time
from ..core.ids import make_id
from ..core.samples import SampleBatch, SensorInfo
from ..paths import OutsideRootsError, confine
from .base import (
    BatchSink,
    DeviceDescriptor,
    DeviceError,
    DeviceHealth,
    DeviceURI,
    EndOfStream,
    ProgressCallback,
    ThreadedDevice,
    Transport,
    UntrustedUriError,
)

PREVIEW_WIDTH = 320
PREVIEW_JPEG_QUALITY = 70
FILE_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ogv")
MAX_SLEEP_S = 0.1


def _is_file_source(target: str) -> bool:
    return target.lower().endswith(FILE_SUFFIXES) or (os.path.sep in target and not target.startswith("/dev/"))


class VideoStore:
    """Where a device's frames go: an MJPG AVI file (``path``; None: frames are not stored)
    and a low-rate JPEG preview for the GUI (at most ``PREVIEW_WIDTH`` px wide, one per
    ``preview_period`` s). Cameras and Pupil Capture's world frames share it."""

    def __init__(self, path: Path | None, fps: float, preview_period: float, health: DeviceHealth) -> None:
        self.path = path
        self.fps = fps
        self.preview_period = preview_period
        self.health = health
        self.frame_size: tuple[int, int] | None = None
        self.written = 0
        self._writer: cv2.VideoWriter | None = None
        #: the reader thread writes, the device's task closes: never at once (release during a
        #: write crashed the node)
        self._write_lock = threading.Lock()
        self.closed = False
        self._preview_lock = threading.Lock()
        self._preview: tuple[bytes, float] | None = None
        self._preview_due = 0.0

    def store(self, frame: np.ndarray) -> float:
        """Append ``frame`` (BGR) to the video file; its index there (or the running count)."""
        with self._write_lock:
            return self._store(frame)

    def _store(self, frame: np.ndarray) -> float:
        h, w = frame.shape[:2]
        if self.frame_size is None:
            self.frame_size = (w, h)
        if self.closed:  # a frame read while the device stopped: the file is finished
            self.health.count_error("frames_after_close")
        elif self.path is not None:
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fourcc = cv2.VideoWriter.fourcc(*"MJPG")
                self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.frame_size)
                if not self._writer.isOpened():
                    self._writer = None
                    self.path = None
                    self.health.count_error("video_file")
                    self.health.message = "cannot write the video file; frames are not stored"
            if self._writer is not None:
                if (w, h) != self.frame_size:
                    frame = cv2.resize(frame, self.frame_size)
                self._writer.write(frame)
        index = self.written
        self.written += 1
        return float(index)

    def offer_preview(self, frame: np.ndarray, t: float) -> None:
        """Keep ``frame`` (BGR) as the preview when one is due; ``t`` its host time (s)."""
        now = time.perf_counter()
        if now < self._preview_due:
            return
        self._preview_due = now + self.preview_period
        h, w = frame.shape[:2]
        if w > PREVIEW_WIDTH:
            frame = cv2.resize(
                frame, (PREVIEW_WIDTH, max(1, round(h * PREVIEW_WIDTH / w))), interpolation=cv2.INTER_AREA
            )
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_JPEG_QUALITY])
        if ok:
            with self._preview_lock:
                self._preview = (jpeg.tobytes(), t)

    def preview(self) -> tuple[bytes, float] | None:
        """(JPEG bytes, host time s) of the newest preview, if any."""
        with self._preview_lock:
            return self._preview

    def close(self) -> None:
        """Finish the video file (waits for a frame being written)."""
        with self._write_lock:
            self.closed = True
            w, self._writer = self._writer, None
            if w is not None:
                w.release()


def default_video_path(device_id: str) -> Path:
    """``<data dir>/video/<device>-<time>.avi``."""
    return paths.sub_dir("video") / f"{device_id}-{time.strftime('%Y%m%d-%H%M%S')}.avi"


def video_path_param(uri: DeviceURI, device_id: str) -> Path | None:
    """The ``record=`` option: a path, ``0`` (frames not stored) or the default path."""
    record = uri.param("record", "")
    if record == "0":
        return None
    return Path(record) if record else default_video_path(device_id)


class CameraDevice(ThreadedDevice):
    """One capture device, video file or stream; one ``video`` sensor of frame indices."""

    def __init__(self, uri: DeviceURI, kind: str = "camera", label: str = "Camera") -> None:
        """``kind`` prefixes the device id (``camera``; ``pose`` for a pose source), ``label`` its name."""
        target = uri.target
        if not target:
            raise DeviceError(f"{uri}: no camera (camera:0, camera:/dev/video0, camera:file.mp4, camera:rtsp://…)")
        self.is_url = "://" in target
        self.is_file = not self.is_url and _is_file_source(target)
        if self.is_file and not Path(target).exists():
            raise DeviceError(f"{uri}: video file {target} does not exist")
        name = Path(target).name if self.is_file else target
        super().__init__(uri, make_id(kind, Path(target).stem if self.is_file else name), f"{label} {name}")
        self.source: int | str = int(target) if target.isdigit() else target
        self.realtime = uri.param("realtime", "1") != "0"
        self.loop_file = uri.param("loop", "0") == "1"
        self.requested_fps = uri.float_param("fps", 0.0)
        self.size = (uri.int_param("width", 0), uri.int_param("height", 0))
        self.source_fps = self._probe_fps()
        self.video = VideoStore(video_path_param(uri, self.device_id), self.source_fps,
                                1.0 / max(uri.float_param("preview_hz", 2.0), 1e-3), self.health)  # fmt: skip
        self._info = SensorInfo(
            sensor_id=make_id(self.device_id, "video"),
            attribute="video",
            device_id=self.device_id,
            device_name=self.name,
            transport=kind,
            uri=str(uri),
            channel_names=("frame_index",),
            units=("frame",),
            channel_format="float64",
            nominal_rate=self.source_fps,
            has_clock=True,
            extra={"video_file": str(self.video.path) if self.video.path else "", "source": str(self.source)},
        )
        self._cap: cv2.VideoCapture | None = None
        self._play_start = 0.0
        self._play_first = -1.0
        self._last_pos = 0.0

    def _probe_fps(self) -> float:
        if self.requested_fps:
            return self.requested_fps
        if not self.is_file:
            return 30.0
        cap = cv2.VideoCapture(str(self.source))
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
        finally:
            cap.release()
        return fps if 0 < fps < 10_000 else 30.0

    def sensors(self) -> list[SensorInfo]:
        return [self._info]

    def latest_preview(self) -> tuple[str, bytes, float] | None:
        """(sensor id, JPEG bytes, host time) of the newest preview frame, if any."""
        preview = self.video.preview()
        return None if preview is None else (self._info.sensor_id, *preview)

    # -- link -------------------------------------------------------------------------------
    def open_link(self) -> None:
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"opencv cannot open {self.source}")
        if not self.is_file:
            if self.requested_fps:
                cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
            if self.size[0] and self.size[1]:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._cap = cap
        self._play_start = time.perf_counter()
        self._play_first = -1.0

    def close_link(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def close_video(self) -> None:
        """Finish the video file (called when the device stops)."""
        self.video.close()

    def read_link(self) -> list[SampleBatch]:
        cap = self._cap
        if cap is None:
            raise DeviceError("camera is closed")
        if self.is_file and self.realtime and self._play_first >= 0:
            due = self._play_first + (time.perf_counter() - self._play_start)
            next_pos = self._last_pos + 1.0 / self.source_fps
            if next_pos - due > MAX_SLEEP_S:
                time.sleep(MAX_SLEEP_S)
                return []
            if next_pos > due:
                time.sleep(next_pos - due)
        grab_began = time.perf_counter()
        if not cap.grab():
            if self.is_file:
                if self.loop_file:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    self._play_first = -1.0
                    return []
                raise EndOfStream(f"end of {Path(str(self.source)).name} after {self.video.written} frames")
            raise DeviceError("the camera stopped delivering frames")
        t_arrival = host_time()
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            self.health.count_error("bad_frames")
            return []
        pos_ms = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        if self.is_file:
            if self._play_first < 0:  # the schedule starts when this frame was asked for, as the
                # next ones are (at their due time): every frame then arrives as late after it
                self._play_first = pos_ms / 1000.0
                self._play_start = grab_began
            self._last_pos = pos_ms / 1000.0
        index = self._store(frame)
        self.video.offer_preview(frame, t_arrival)
        # files: the position in the file; live V4L2/FFMPEG sources: the driver's buffer time or
        # the stream's pts (ms); a backend that gives none leaves t_local == t_arrival (no clock)
        t_local = np.array([pos_ms / 1000.0 if (self.is_file or pos_ms > 0) else t_arrival])
        self.on_frame(frame, t_arrival, float(t_local[0]))
        return [SampleBatch(self._info.sensor_id, "video", np.array([t_arrival]), np.array([[index]], float), t_local)]

    def on_frame(self, frame: np.ndarray, t_arrival: float, t_local: float) -> None:
        """Each frame (BGR) as it is captured, with its host arrival and device time (s);
        subclasses that analyse frames (pose) take them here and must not block."""

    def _store(self, frame: np.ndarray) -> float:
        """Append ``frame`` to the video file; its index there (the first sets the size)."""
        if self.video.frame_size is None:
            h, w = frame.shape[:2]
            self._info.extra.update(width=w, height=h)
        return self.video.store(frame)

    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        try:
            await super().run(sink, stop)
        finally:
            self.close_video()


def _linux_cameras() -> list[tuple[str, str]]:
    out = []
    for dev in sorted(glob.glob("/dev/video*"), key=lambda p: int("".join(filter(str.isdigit, p)) or 0)):
        name_file = Path("/sys/class/video4linux") / Path(dev).name / "name"
        try:
            name = name_file.read_text().strip()
        except OSError:
            name = dev
        out.append((dev, name))
    return out


class CameraTransport(Transport):
    scheme = "camera"
    label = "Camera"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        """Capture devices: /dev/video* on Linux (with the driver's name), else indexes 0-4 probed."""
        if sys.platform.startswith("linux"):
            found = [(dev, name) for dev, name in await asyncio.to_thread(_linux_cameras)]
        else:

            def probe() -> list[tuple[str, str]]:
                hits = []
                for i in range(5):
                    cap = cv2.VideoCapture(i)
                    if cap.isOpened():
                        hits.append((str(i), f"Camera {i}"))
                    cap.release()
                return hits

            found = await asyncio.to_thread(probe)
        if progress:
            progress(1.0, f"{len(found)} capture device(s)")
        return [
            DeviceDescriptor(f"camera:{dev}", self.scheme, name, make_id("camera", dev), {"device": dev})
            for dev, name in found
        ]

    def open(self, uri: DeviceURI) -> CameraDevice:
        return CameraDevice(uri)

    def check_untrusted(self, uri: DeviceURI, roots: list[Path]) -> None:
        """A video file to read and the ``record=`` file to write must lie inside ``roots``."""
        try:
            if "://" not in uri.target and _is_file_source(uri.target):
                confine(uri.target, roots, "video file")
            record = uri.param("record", "")
            if record and record != "0":
                confine(record, roots, "camera record= file")
        except OutsideRootsError as exc:
            raise UntrustedUriError(f"{uri}: {exc}") from exc
