"""A stand-in for Pupil Capture's Network API, for tests, benchmarks and screenshots.

It speaks the protocol as Capture 3.x does (pupil-labs/pupil ``pupil_remote_controller.py``,
``zmq_tools.py``, ``frame_publisher_controller.py``): Pupil Remote on a REP socket (``t``,
``T``, ``v``, ``SUB_PORT``, ``PUB_PORT``, ``R``/``r``/``C``/``c``, multipart messages forwarded
to the backbone), an XSUB/XPUB backbone joined by a proxy, msgpack payloads, and world frames
as ``frame.world`` with the image in an extra frame. World frames are published once a
client started the Frame Publisher (``start_plugin`` ``Frame_Publisher``, Capture ≤ 2.x) or
set its format (``frame_publishing.set_format``, 3.x).

Its Pupil clock runs ``drift_ppm`` fast against the host clock and reads ``pupil_start`` at
start: :meth:`PupilCaptureStandIn.host_of` gives the true host time of any Pupil time.
Every datum it publishes is kept (``published``) so a test compares what a client got.
``pupil-core-network-client`` (Pupil Labs' own client) works against it (tests check so).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import msgpack
import numpy as np
import zmq

from sensorium_desktop.core.hostclock import host_time

VERSION = "3.5.1"


def scene_image(width: int = 640, height: int = 480) -> np.ndarray:
    """A scene camera picture (BGR): scikit-image's astronaut photo when installed, else a
    drawn lab screen."""
    try:
        from skimage import data

        img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    except ImportError:
        img = np.full((height, width, 3), 60, np.uint8)
        cv2.rectangle(img, (width // 8, height // 8), (width * 7 // 8, height * 6 // 8), (230, 230, 230), -1)
        cv2.putText(img, "stimulus", (width // 3, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (20, 20, 20), 2)
        return img


def gaze_path(t: float) -> tuple[float, float]:
    """Where the simulated eye looks at ``t`` (s since start): Pupil ``norm_pos`` (origin
    bottom-left): fixations on three points of the scene with small saccades between."""
    points = ((0.45, 0.72), (0.30, 0.45), (0.62, 0.40))
    k = int(t / 0.8) % len(points)
    x, y = points[k]
    return x + 0.01 * math.sin(7.0 * t), y + 0.01 * math.cos(5.0 * t)


@dataclass
class StandInStats:
    requests: dict[str, int] = field(default_factory=dict)
    forwarded: list[str] = field(default_factory=list)


class PupilCaptureStandIn:
    """Pupil Remote + backbone + a simulated headset (see module docstring)."""

    def __init__(
        self,
        port: int = 0,
        drift_ppm: float = 0.0,
        pupil_start: float = 1000.0,
        gaze_hz: float = 120.0,
        world_fps: float = 30.0,
        world_size: tuple[int, int] = (640, 480),
        surfaces: tuple[str, ...] = ("Screen",),
        blink_every_s: float = 2.0,
    ) -> None:
        self.ctx = zmq.Context()
        self.remote = self.ctx.socket(zmq.REP)
        self.port = self.remote.bind_to_random_port("tcp://127.0.0.1") if port == 0 else port
        if port:
            self.remote.bind(f"tcp://127.0.0.1:{port}")
        self.xsub = self.ctx.socket(zmq.XSUB)
        self.pub_port = self.xsub.bind_to_random_port("tcp://127.0.0.1")
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.sub_port = self.xpub.bind_to_random_port("tcp://127.0.0.1")
        self.drift = drift_ppm * 1e-6
        self.h0 = host_time()
        self.p0 = pupil_start
        self.gaze_hz = gaze_hz
        self.world_fps = world_fps
        self.world_size = world_size
        self.surfaces = surfaces
        self.blink_every_s = blink_every_s
        self.frame_format: str | None = None  # None: the Frame Publisher is not running
        self.published: dict[str, list[dict[str, Any]]] = {}
        self.stats = StandInStats()
        self.scene = scene_image(*world_size)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- clock --------------------------------------------------------------------------------
    def pupil_time(self, host: float | None = None) -> float:
        """Pupil time (s) at host time ``host`` (now by default)."""
        h = host_time() if host is None else host
        return self.p0 + (h - self.h0) * (1.0 + self.drift)

    def host_of(self, pupil: np.ndarray | float) -> np.ndarray:
        """True host time (s) of Pupil times (s)."""
        return self.h0 + (np.asarray(pupil, dtype=np.float64) - self.p0) / (1.0 + self.drift)

    # -- running ------------------------------------------------------------------------------
    def start(self) -> PupilCaptureStandIn:
        for target in (self._proxy, self._serve_remote, self._headset):
            t = threading.Thread(target=target, daemon=True, name=f"pupil-standin-{target.__name__}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Capture quits: every socket closes."""
        self._stop.set()
        for t in self._threads:
            t.join(5.0)
        self.ctx.destroy(linger=0)

    def _proxy(self) -> None:
        poller = zmq.Poller()
        poller.register(self.xsub, zmq.POLLIN)
        poller.register(self.xpub, zmq.POLLIN)
        while not self._stop.is_set():
            for sock, _ in poller.poll(50):
                msg = sock.recv_multipart()
                (self.xpub if sock is self.xsub else self.xsub).send_multipart(msg)
        self.xsub.close(0)
        self.xpub.close(0)

    def _serve_remote(self) -> None:
        pub = self.ctx.socket(zmq.PUB)
        pub.connect(f"tcp://127.0.0.1:{self.pub_port}")
        while not self._stop.is_set():
            if not self.remote.poll(50):
                continue
            frames = self.remote.recv_multipart()
            msg = frames[0].decode("utf-8", "replace")
            self.stats.requests[msg[:8]] = self.stats.requests.get(msg[:8], 0) + 1
            if len(frames) > 1:
                pub.send_multipart(frames)
                self._notified(msg, frames[1])
                reply = "Message forwarded."
            elif msg == "SUB_PORT":
                reply = str(self.sub_port)
            elif msg == "PUB_PORT":
                reply = str(self.pub_port)
            elif msg[:1] in ("R", "r") or msg in ("C", "c"):
                reply = "OK"
            elif msg[:1] == "T":
                try:
                    target = float(msg[2:])
                except ValueError:
                    reply = f"'{msg[2:]}' cannot be converted to float."
                else:
                    now = host_time()
                    with self._lock:
                        self.p0, self.h0 = target, now
                    reply = "Timesync successful."
            elif msg[:1] == "t":
                reply = repr(self.pupil_time())
            elif msg[:1] == "v":
                reply = VERSION
            else:
                reply = "Unknown command."
            self.remote.send_string(reply)
        pub.close(0)
        self.remote.close(0)

    def _notified(self, topic: str, payload: bytes) -> None:
        self.stats.forwarded.append(topic)
        try:
            note = msgpack.unpackb(payload, raw=False)
        except (ValueError, msgpack.UnpackException):
            return
        if not isinstance(note, dict):
            return
        if note.get("subject") == "start_plugin" and note.get("name") == "Frame_Publisher":
            self.frame_format = str((note.get("args") or {}).get("format", "jpeg"))
        elif note.get("subject") == "frame_publishing.set_format":
            self.frame_format = str(note.get("format", "jpeg"))

    def _send(self, pub: zmq.Socket, payload: dict[str, Any], raw: bytes | None = None) -> None:
        topic = payload["topic"]
        packed = msgpack.packb(payload, use_bin_type=True)
        if raw is None:
            pub.send_multipart([topic.encode(), packed])
        else:
            pub.send_multipart([topic.encode(), packed, raw])
        key = topic.split(".")[0] if not topic.startswith("surfaces.") else topic
        self.published.setdefault(key, []).append(payload)

    def send_raw(self, frames: list[bytes]) -> None:
        """Publish arbitrary frames on the backbone (malformed-message tests)."""
        pub = self.ctx.socket(zmq.PUB)
        pub.connect(f"tcp://127.0.0.1:{self.pub_port}")
        time.sleep(0.3)
        pub.send_multipart(frames)
        time.sleep(0.1)
        pub.close(0)

    def _headset(self) -> None:
        """Gaze at ``gaze_hz`` (binocular, 3D), pupil data per eye, blinks, fixations, surface
        gaze and world frames at ``world_fps``, each stamped with Pupil time a few ms before
        it is sent (the eye camera's exposure, as Capture does)."""
        pub = self.ctx.socket(zmq.PUB)
        pub.connect(f"tcp://127.0.0.1:{self.pub_port}")
        start = time.perf_counter()
        n_gaze = n_world = 0
        next_blink = self.blink_every_s
        blink_offset_at: float | None = None
        fixation_start: float | None = None
        fixation_k = -1
        surface_batch: list[dict[str, Any]] = []
        while not self._stop.is_set():
            elapsed = time.perf_counter() - start
            due_gaze = n_gaze / self.gaze_hz
            due_world = n_world / self.world_fps
            wait = min(due_gaze, due_world) - elapsed
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            ts = self.pupil_time() - 0.004
            if due_gaze <= due_world:
                n_gaze += 1
                x, y = gaze_path(elapsed)
                conf = 0.95 if elapsed < next_blink or elapsed > next_blink + 0.15 else 0.1
                for eye in (0, 1):
                    self._send(
                        pub,
                        {
                            "topic": f"pupil.{eye}.3d",
                            "id": eye,
                            "timestamp": ts,
                            "confidence": conf,
                            "norm_pos": [0.5 + 0.01 * eye, 0.5],
                            "diameter": 40.0 + 5 * math.sin(elapsed),
                            "diameter_3d": 3.5 + 0.4 * math.sin(elapsed),
                            "method": "pye3d 0.3.0 real-time",
                        },
                    )
                    self._send(pub, {"topic": f"pupil.{eye}.2d", "id": eye, "timestamp": ts, "confidence": conf,
                                     "norm_pos": [0.5 + 0.01 * eye, 0.5], "diameter": 40.0 + 5 * math.sin(elapsed),
                                     "method": "2d c++"})  # fmt: skip
                gaze = {"topic": "gaze.3d.01.", "norm_pos": [x, y], "confidence": conf, "timestamp": ts,
                        "gaze_point_3d": [100.0 * (x - 0.5), 100.0 * (y - 0.5), 600.0],
                        "base_data": [[f"pupil.{e}.3d", ts] for e in (0, 1)]}  # fmt: skip
                self._send(pub, gaze)
                surface_batch.append({"topic": "gaze.3d.01._on_surface", "norm_pos": [(x - 0.1) / 0.8, (y - 0.1) / 0.8],
                                      "confidence": conf, "on_surf": 0.1 <= x <= 0.9 and 0.1 <= y <= 0.9,
                                      "base_data": ["gaze.3d.01.", ts], "timestamp": ts})  # fmt: skip
                if elapsed >= next_blink:
                    self._send(pub, {"topic": "blinks", "type": "onset", "confidence": 0.8, "timestamp": ts,
                                     "record": True, "base_data": []})  # fmt: skip
                    blink_offset_at = next_blink + 0.15
                    next_blink += self.blink_every_s
                if blink_offset_at is not None and elapsed >= blink_offset_at:
                    self._send(pub, {"topic": "blinks", "type": "offset", "confidence": 0.7, "timestamp": ts,
                                     "record": True, "base_data": []})  # fmt: skip
                    blink_offset_at = None
                k = int(elapsed / 0.8)
                if k != fixation_k:
                    if fixation_start is not None and fixation_k >= 0:
                        fx, fy = gaze_path(fixation_k * 0.8 + 0.4)
                        self._send(pub, {"topic": "fixations", "norm_pos": [fx, fy], "dispersion": 0.9,
                                         "method": "3d gaze", "base_data": [], "timestamp": fixation_start,
                                         "duration": 700.0, "confidence": 0.9, "id": fixation_k,
                                         "gaze_point_3d": [0.0, 0.0, 600.0]})  # fmt: skip
                    fixation_k, fixation_start = k, ts + 0.05
            else:
                n_world += 1
                for name in self.surfaces:
                    self._send(pub, {"topic": f"surfaces.{name}", "name": name, "uid": name,
                                     "surf_to_img_trans": np.eye(3).tolist(), "img_to_surf_trans": np.eye(3).tolist(),
                                     "gaze_on_surfaces": surface_batch, "fixations_on_surfaces": [],
                                     "timestamp": ts})  # fmt: skip
                surface_batch = []
                if self.frame_format is not None:
                    self._world_frame(pub, n_world - 1, ts)
        pub.close(0)

    def _world_frame(self, pub: zmq.Socket, index: int, ts: float) -> None:
        img = self.scene.copy()
        cv2.putText(img, f"{index}", (10, img.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        w, h = self.world_size
        if self.frame_format == "bgr":
            raw = img.tobytes()
        else:
            _ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            raw = jpeg.tobytes()
        self._send(pub, {"topic": "frame.world", "width": w, "height": h, "index": index, "timestamp": ts,
                         "format": self.frame_format or "jpeg"}, raw)  # fmt: skip
