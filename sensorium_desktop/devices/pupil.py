"""Pupil Core through Pupil Capture's (or Pupil Service's) Network API: ``pupil:HOST[:PORT]``.

``pupil:`` alone is ``127.0.0.1:50020``. Pupil Remote (a ZMQ REP socket) gives the port of the
IPC backbone (``SUB_PORT``); a SUB socket there receives ``gaze.``, ``pupil.``, ``fixations``,
``blinks``, ``surfaces.`` and, with ``?world=1``, ``frame.world`` (the Frame Publisher is
started with a ``start_plugin`` notification, and the format set with
``frame_publishing.set_format`` for Capture 3.x: jpeg). Options: ``world`` (0/1), ``record``
and ``preview_hz`` (the scene video, as for ``camera:``).

**Time.** Every datum carries Pupil time. Like Pupil's own clients, the device asks Pupil
Remote for ``t`` many times (:data:`CLOCK_ROUNDS`), keeps the tightest round trips and takes
``host − Pupil`` at their midpoints; repeated every :data:`CLOCK_INTERVAL_S` s (faster at
first), the estimates give an offset and a drift (:func:`offset_trend`). ``T`` is never
sent: other clients of that Capture rely on its clock. Samples leave the device as host time
(``t_local`` = Pupil time mapped), in one *measured* clock domain per Capture (offset 0 on
top of that mapping, sigma the round-trip bound); the device's details show the offset
(s), drift (ppm) and round trip.

**Sensors** (one device per Capture; names are ``<device>-<what>``):

- ``gaze`` (``eye_gaze``): ``x``, ``y`` normalized to the scene image with the origin at the
  **top left, y down** (Pupil's ``norm_pos`` is bottom-left, y up: ``y = 1 − norm_pos[1]``),
  ``confidence``, ``gaze_point_3d`` x/y/z (mm, NaN when the 2D mapper runs) and ``eyes``
  (0, 1: that eye alone; 2: binocular).
- ``eye0_pupil``/``eye1_pupil`` (``pupil_diameter``): ``diameter`` (px), ``diameter_3d`` (mm,
  NaN without a 3D eye model), ``confidence``. Capture publishes a 2D and a 3D datum per eye
  image: once the 3D detector is heard, its datum (which carries the same px diameter) is
  the one kept.
- ``blinks`` (``eye_blink``): ``value`` 1 onset / 0 offset, ``confidence``.
- ``fixations`` (``fixation``): at the fixation's start, ``x``/``y`` (top-left), ``duration``
  (ms), ``dispersion`` (deg), ``confidence``.
- ``surface-<name>`` (``eye_gaze``) for each surface Capture tracks: gaze on the surface,
  ``x``/``y`` top-left, ``confidence``, ``on_surf`` (1 inside the surface).
- ``video`` with ``world=1``: Capture's scene frames through the camera pipeline (MJPG file,
  preview, a ``frame_index`` sample at the frame's Pupil time).

A Capture that stops answering (no datum for :data:`SILENCE_S` s and no reply to ``t``) is
``lost`` and reconnected; a host/port where nothing answers fails within
:data:`REQUEST_TIMEOUT_MS`; a message that cannot be decoded is counted (``malformed``) and
logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import msgpack
import numpy as np
import zmq

from ..config import ConfigError, load_config
from ..core.clockdomain import offset_trend
from ..core.hostclock import host_time
from ..core.ids import make_id
from ..core.samples import SampleBatch, SensorInfo
from .base import BatchSink, DeviceDescriptor, DeviceError, DeviceURI, ProgressCallback, ThreadedDevice, Transport
from .camera import VideoStore, video_path_param

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50020
#: a Pupil Remote request unanswered this long (ms) fails: a wrong host/port is reported in < 2 s
REQUEST_TIMEOUT_MS = 1500
#: ``t`` round trips per clock estimate, and how many of the tightest are averaged
CLOCK_ROUNDS = 40
CLOCK_BEST = 8
#: seconds between clock estimates (the first :data:`CLOCK_FAST` ones every :data:`CLOCK_FAST_S`)
CLOCK_INTERVAL_S = 3.0
CLOCK_FAST = 5
CLOCK_FAST_S = 0.5
#: estimates kept for the offset/drift line (one minute)
CLOCK_WINDOW = 20
#: no datum for this long (s): Pupil Remote is asked whether Capture is still there
SILENCE_S = 2.0
POLL_MS = 100
MAX_MESSAGES_PER_READ = 5000
#: at most this long (s) decoding in one read: a backlog of scene frames must not delay a stop
READ_BUDGET_S = 0.05
#: a message larger than this (bytes) is refused by ZMQ (a full-HD bgr frame is 6 MB)
MAX_MESSAGE_BYTES = 64 << 20
DATA_TOPICS = ("gaze.", "pupil.", "fixations", "blinks", "surfaces.")
WORLD_TOPIC = "frame.world"
GAZE_CHANNELS = ("x", "y", "confidence", "gaze_point_3d_x", "gaze_point_3d_y", "gaze_point_3d_z", "eyes")
GAZE_UNITS = ("normalized", "normalized", "", "mm", "mm", "mm", "")
PUPIL_CHANNELS, PUPIL_UNITS = ("diameter", "diameter_3d", "confidence"), ("px", "mm", "")
FIXATION_CHANNELS = ("x", "y", "duration", "dispersion", "confidence")
FIXATION_UNITS = ("normalized", "normalized", "ms", "deg", "")
SURFACE_CHANNELS, SURFACE_UNITS = ("x", "y", "confidence", "on_surf"), ("normalized", "normalized", "", "")
ORIGIN = "top-left, y down (Pupil norm_pos y flipped: y = 1 - norm_pos[1])"


class PupilMessageError(ValueError):
    """A backbone message that is not what Capture sends (why, in the message)."""


def parse_address(target: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``""`` → 127.0.0.1:50020). Raises :class:`DeviceError`."""
    host, sep, port = target.strip().rpartition(":")
    if not sep:
        host, port = target.strip(), ""
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError as exc:
        raise DeviceError(f"pupil:{target}: port {port!r} is not a number") from exc
    if not 0 < number < 65536:
        raise DeviceError(f"pupil:{target}: port {number} out of range")
    return host, number


@dataclass
class PupilClock:
    """Pupil time → host time (s) from repeated ``t`` round trips (see module docstring)."""

    #: (host time of the estimate, host − Pupil offset, its sigma), oldest first
    estimates: list[tuple[float, float, float]] = field(default_factory=list)
    t_ref: float = 0.0
    offset: float = math.nan
    drift: float = 0.0  # d(offset)/d(host time), s/s
    rtt: float = math.nan  # tightest round trip of the newest estimate (s)

    def add(self, t_host: float, offset: float, sigma: float, rtt: float) -> None:
        self.estimates.append((t_host, offset, sigma))
        del self.estimates[:-CLOCK_WINDOW]
        t, v, s = (np.array(c) for c in zip(*self.estimates, strict=True))
        self.t_ref, self.offset, self.drift = offset_trend(t, v, np.maximum(s, 1e-7))
        self.rtt = rtt

    @property
    def ready(self) -> bool:
        return math.isfinite(self.offset)

    def to_host(self, pupil_time: np.ndarray) -> np.ndarray:
        """Host times (s) of Pupil times (s)."""
        p = np.asarray(pupil_time, dtype=np.float64)
        # host = p + offset(host), offset linear in host: solve for host
        return (p + self.offset - self.drift * self.t_ref) / (1.0 - self.drift)


def measure_offset(ask_time: Any, rounds: int = CLOCK_ROUNDS) -> tuple[float, float, float, float]:
    """``(host time, host − Pupil offset, sigma, tightest round trip)`` (s) from ``rounds``
    calls of ``ask_time()`` (Pupil time, s) bracketed by host-clock reads; the
    :data:`CLOCK_BEST` tightest are averaged (Pupil's reply is taken at each midpoint)."""
    rows = []
    for _ in range(rounds):
        h0 = host_time()
        p = ask_time()
        h1 = host_time()
        rows.append((h1 - h0, 0.5 * (h0 + h1), 0.5 * (h0 + h1) - p))
    rows.sort()
    best = np.array(rows[:CLOCK_BEST])
    rtt = float(best[0, 0])
    sigma = math.hypot(float(np.mean(best[:, 0])) / math.sqrt(12.0), float(np.std(best[:, 2])))
    return float(np.mean(best[:, 1])), float(np.mean(best[:, 2])), sigma, rtt


def _xy(value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise PupilMessageError(f"norm_pos is {value!r}")
    return float(value[0]), float(value[1])


def _number(d: dict[str, Any], key: str, default: float = math.nan) -> float:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, int | float):
        raise PupilMessageError(f"{key} is {v!r}")
    return float(v)


def _point3(d: dict[str, Any]) -> tuple[float, float, float]:
    p = d.get("gaze_point_3d")
    if isinstance(p, list | tuple) and len(p) == 3:
        return float(p[0]), float(p[1]), float(p[2])
    return math.nan, math.nan, math.nan


def _eyes(topic: str) -> float:
    """``gaze.3d.01.`` → 2 (binocular), ``gaze.2d.0.`` → 0, ``gaze.3d.1.`` → 1."""
    part = topic.split(".")[2] if topic.count(".") >= 2 else ""
    return 2.0 if part == "01" else float(part) if part in ("0", "1") else math.nan


def decode_frame(payload: dict[str, Any], raw: bytes) -> np.ndarray:
    """A ``frame.world`` image as BGR. Raises :class:`PupilMessageError`."""
    fmt = payload.get("format")
    w, h = int(payload.get("width", 0)), int(payload.get("height", 0))
    if fmt == "jpeg":
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise PupilMessageError("the jpeg frame does not decode")
        return img
    if fmt in ("bgr", "gray"):
        channels = 3 if fmt == "bgr" else 1
        if w <= 0 or h <= 0 or len(raw) != w * h * channels:
            raise PupilMessageError(f"{fmt} frame of {len(raw)} bytes for {w}x{h}")
        img = np.frombuffer(raw, np.uint8).reshape(h, w, channels)
        return img if channels == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    raise PupilMessageError(f"frame format {fmt!r} is not read (jpeg, bgr, gray)")


@dataclass
class _Rows:
    """Rows read for one sensor in one read: Pupil times, arrivals, values."""

    pupil: list[float] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)

    def add(self, pupil_time: float, t_arrival: float, row: tuple[float, ...]) -> None:
        self.pupil.append(pupil_time)
        self.arrival.append(t_arrival)
        self.values.append(row)


class PupilDevice(ThreadedDevice):
    """One Pupil Capture / Service (see module docstring)."""

    reconnect_base = 0.5
    reconnect_cap = 5.0

    def __init__(self, uri: DeviceURI) -> None:
        self.host, self.port = parse_address(uri.target)
        self.address = f"{self.host}:{self.port}"
        super().__init__(uri, make_id("pupil", self.host, str(self.port)), f"Pupil Capture {self.address}")
        self.world = uri.param("world", "0") == "1"
        self.clock = PupilClock()
        self.version = ""
        self.sub_port = 0
        self._ctx: zmq.Context = zmq.Context.instance()
        self._req: zmq.Socket | None = None
        self._sub: zmq.Socket | None = None
        self._infos: dict[str, SensorInfo] = {}
        self._clock_due = 0.0
        self._estimates = 0
        self._last_datum = 0.0
        self._pupil_3d: set[int] = set()
        self.video = (
            VideoStore(
                video_path_param(uri, self.device_id),
                30.0,
                1.0 / max(uri.float_param("preview_hz", 2.0), 1e-3),
                self.health,
            )
            if self.world
            else None
        )
        self._add("gaze", "eye_gaze", GAZE_CHANNELS, GAZE_UNITS, 0.0, {"origin": ORIGIN})
        self._add("blinks", "eye_blink", ("value", "confidence"), ("", ""), 0.0, {})
        self._add("fixations", "fixation", FIXATION_CHANNELS, FIXATION_UNITS, 0.0, {"origin": ORIGIN})
        if self.video is not None:
            path = str(self.video.path) if self.video.path else ""
            self._add("video", "video", ("frame_index",), ("frame",), 30.0, {"video_file": path, "source": "world"})

    # -- sensors ------------------------------------------------------------------------------
    def _add(self, what: str, attribute: str, channels: tuple[str, ...], units: tuple[str, ...], rate: float,
             extra: dict[str, Any]) -> SensorInfo:  # fmt: skip
        sid = make_id(self.device_id, what)
        info = SensorInfo(
            sensor_id=sid, attribute=attribute, device_id=self.device_id, device_name=self.name, transport="pupil",
            uri=str(self.uri), channel_names=channels, units=units, channel_format="float64", nominal_rate=rate,
            has_clock=True, extra={"eye_tracker": "Pupil Core", "capture": self.address, **extra},
            clock_domain=self.device_id, clock_offset=0.0, clock_sigma=self._sigma(),
        )  # fmt: skip
        self._infos[what] = info
        return info

    def _sigma(self) -> float:
        return self.clock.estimates[-1][2] if self.clock.estimates else 0.0

    def sensors(self) -> list[SensorInfo]:
        return list(self._infos.values())

    def details(self) -> dict[str, Any]:
        d: dict[str, Any] = {"address": self.address, "version": self.version}
        if self.clock.ready:
            d.update(pupil_offset_s=self.clock.offset, pupil_drift_ppm=self.clock.drift * 1e6,
                     pupil_rtt_ms=self.clock.rtt * 1e3, clock_estimates=len(self.clock.estimates))  # fmt: skip
            d["summary"] = (f"Capture {self.version} · Pupil clock drift {self.clock.drift * 1e6:+.1f} ppm · "
                            f"round trip {self.clock.rtt * 1e3:.2f} ms")  # fmt: skip
        return d

    def latest_preview(self) -> tuple[str, bytes, float] | None:
        preview = self.video.preview() if self.video is not None else None
        return None if preview is None else (self._infos["video"].sensor_id, *preview)

    # -- Pupil Remote -------------------------------------------------------------------------
    def _request(self, text: str) -> str:
        req = self._req
        if req is None:
            raise DeviceError("Pupil Remote is closed")
        try:
            req.send_string(text)
            return req.recv_string()
        except zmq.Again as exc:
            raise DeviceError(f"Pupil Capture at {self.address} does not answer ({text!r}, "
                              f"{REQUEST_TIMEOUT_MS} ms)") from exc  # fmt: skip

    def _notify(self, notification: dict[str, Any]) -> None:
        req = self._req
        if req is None:
            raise DeviceError("Pupil Remote is closed")
        topic = "notify." + str(notification["subject"])
        try:
            req.send_multipart([topic.encode(), msgpack.packb({**notification, "topic": topic}, use_bin_type=True)])
            req.recv_string()
        except zmq.Again as exc:
            raise DeviceError(f"Pupil Capture at {self.address} does not answer a notification") from exc

    def _pupil_time(self) -> float:
        reply = self._request("t")
        try:
            value = float(reply)
        except ValueError as exc:
            raise DeviceError(f"Pupil Remote answered {reply[:40]!r} to 't'") from exc
        if not math.isfinite(value):
            raise DeviceError(f"Pupil Remote answered {reply[:40]!r} to 't'")
        return value

    def _estimate_clock(self) -> None:
        t_host, offset, sigma, rtt = measure_offset(self._pupil_time)
        self.clock.add(t_host, offset, sigma, rtt)
        self._estimates += 1
        self._clock_due = time.monotonic() + (CLOCK_FAST_S if self._estimates < CLOCK_FAST else CLOCK_INTERVAL_S)

    # -- link ---------------------------------------------------------------------------------
    def open_link(self) -> None:
        req = self._ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, REQUEST_TIMEOUT_MS)
        req.setsockopt(zmq.SNDTIMEO, REQUEST_TIMEOUT_MS)
        req.connect(f"tcp://{self.host}:{self.port}")
        self._req = req
        self.version = self._request("v")
        try:
            self.sub_port = int(self._request("SUB_PORT"))
        except ValueError as exc:
            raise DeviceError(f"{self.address} is not Pupil Remote (SUB_PORT answer not a port)") from exc
        first = not self.clock.ready
        self.clock = PupilClock()  # another Capture (or a restarted one) may have another clock
        self._estimates = 0
        self._estimate_clock()
        if first:  # the registered sigma: the first estimate's
            for info in self._infos.values():
                info.clock_sigma = self._sigma()
            self.redescribe = True
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sub.setsockopt(zmq.RCVHWM, 10_000)
        sub.connect(f"tcp://{self.host}:{self.sub_port}")
        for topic in (*DATA_TOPICS, *((WORLD_TOPIC,) if self.world else ())):
            sub.setsockopt_string(zmq.SUBSCRIBE, topic)
        self._sub = sub
        if self.world:
            self._notify({"subject": "start_plugin", "name": "Frame_Publisher", "args": {"format": "jpeg"}})
            self._notify({"subject": "frame_publishing.set_format", "format": "jpeg"})
        self._last_datum = time.monotonic()
        log.info("%s: Pupil Capture %s at %s, offset %.6f s, round trip %.3f ms", self.device_id, self.version,
                 self.address, self.clock.offset, self.clock.rtt * 1e3)  # fmt: skip

    def close_link(self) -> None:
        for sock in (self._sub, self._req):
            if sock is not None:
                sock.close(0)
        self._sub = self._req = None

    def close_video(self) -> None:
        if self.video is not None:
            self.video.close()

    def read_link(self) -> list[SampleBatch]:
        sub = self._sub
        if sub is None:
            raise DeviceError("the backbone is closed")
        now = time.monotonic()
        if now >= self._clock_due:
            self._estimate_clock()
        if not sub.poll(POLL_MS):
            if time.monotonic() - self._last_datum > SILENCE_S:
                self._still_there()
            return []
        rows: dict[str, _Rows] = {}
        budget_end = time.monotonic() + READ_BUDGET_S  # the reader checks for a stop between reads
        for _ in range(MAX_MESSAGES_PER_READ):
            if time.monotonic() > budget_end:
                break
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            t_arrival = host_time()
            try:
                self._parse(frames, t_arrival, rows)
            except (PupilMessageError, ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
                self.health.count_error("malformed")
                if self.health.errors["malformed"] <= 10 or self.health.errors["malformed"] % 1000 == 0:
                    log.warning("%s: malformed message (%d so far): %s", self.device_id,
                                self.health.errors["malformed"], exc)  # fmt: skip
        self._last_datum = time.monotonic()
        return [self._batch(what, r) for what, r in rows.items() if r.pupil]

    def _still_there(self) -> None:
        """Nothing on the backbone for a while: Capture must still answer, on the same port."""
        self._last_datum = time.monotonic()
        port = self._request("SUB_PORT")
        if port.strip() != str(self.sub_port):
            raise DeviceError(f"Pupil Capture at {self.address} restarted (backbone now on {port})")

    def _batch(self, what: str, r: _Rows) -> SampleBatch:
        info = self._infos[what]
        values = np.array(r.values, dtype=np.float64).reshape(len(r.values), info.channel_count)
        t_local = self.clock.to_host(np.array(r.pupil))
        return SampleBatch(info.sensor_id, info.attribute, np.array(r.arrival), values, t_local)

    def _parse(self, frames: list[bytes], t_arrival: float, rows: dict[str, _Rows]) -> None:
        if len(frames) < 2:
            raise PupilMessageError(f"{len(frames)} frame(s), not topic + payload")
        topic = frames[0].decode("utf-8")
        payload = msgpack.unpackb(frames[1], raw=False)
        if not isinstance(payload, dict):
            raise PupilMessageError(f"{topic}: payload is {type(payload).__name__}, not a map")
        ts = _number(payload, "timestamp")
        if not math.isfinite(ts):
            raise PupilMessageError(f"{topic}: no timestamp")

        def add(what: str, row: tuple[float, ...]) -> None:
            rows.setdefault(what, _Rows()).add(ts, t_arrival, row)

        if topic.startswith("gaze."):
            x, y = _xy(payload.get("norm_pos"))
            add("gaze", (x, 1.0 - y, _number(payload, "confidence"), *_point3(payload), _eyes(topic)))
        elif topic.startswith("pupil."):
            eye = int(payload.get("id", topic.split(".")[1] if topic.count(".") >= 1 else -1))
            if eye not in (0, 1):
                raise PupilMessageError(f"{topic}: eye id {eye!r}")
            is_3d = "diameter_3d" in payload or topic.endswith(".3d")
            if is_3d:
                self._pupil_3d.add(eye)
            elif eye in self._pupil_3d:
                return  # the 3D datum of this eye image carries the same px diameter
            what = f"eye{eye}_pupil"
            if what not in self._infos:
                self._add(what, "pupil_diameter", PUPIL_CHANNELS, PUPIL_UNITS, 0.0,
                          {"eye": eye, "stream_word": f"Pupil eye{eye}"})  # fmt: skip
            add(what, (_number(payload, "diameter"), _number(payload, "diameter_3d"), _number(payload, "confidence")))
        elif topic == "blinks":
            kind = payload.get("type")
            if kind not in ("onset", "offset"):
                raise PupilMessageError(f"blinks: type {kind!r}")
            add("blinks", (1.0 if kind == "onset" else 0.0, _number(payload, "confidence")))
        elif topic == "fixations":
            x, y = _xy(payload.get("norm_pos"))
            add("fixations", (x, 1.0 - y, _number(payload, "duration"), _number(payload, "dispersion"),
                              _number(payload, "confidence")))  # fmt: skip
        elif topic.startswith("surfaces."):
            self._surface(topic, payload, t_arrival, rows)
        elif topic == WORLD_TOPIC and self.video is not None:
            if len(frames) < 3:
                raise PupilMessageError("frame.world without its image frame")
            img = decode_frame(payload, frames[2])
            info = self._infos["video"]
            if self.video.frame_size is None:
                info.extra.update(width=img.shape[1], height=img.shape[0])
            index = self.video.store(img)
            self.video.offer_preview(img, t_arrival)
            add("video", (index,))

    def _surface(self, topic: str, payload: dict[str, Any], t_arrival: float, rows: dict[str, _Rows]) -> None:
        name = str(payload.get("name") or topic.partition(".")[2])
        what = make_id("surface", name)
        gazes = payload.get("gaze_on_surfaces", [])
        if not isinstance(gazes, list):
            raise PupilMessageError(f"{topic}: gaze_on_surfaces is {type(gazes).__name__}")
        if what not in self._infos:
            self._add(what, "eye_gaze", SURFACE_CHANNELS, SURFACE_UNITS, 0.0,
                      {"origin": ORIGIN, "surface": name, "stream_word": f"Gaze on {name}"})  # fmt: skip
        for g in gazes:
            if not isinstance(g, dict):
                raise PupilMessageError(f"{topic}: a gaze on the surface is {type(g).__name__}")
            x, y = _xy(g.get("norm_pos"))
            ts = _number(g, "timestamp")
            if not math.isfinite(ts):
                raise PupilMessageError(f"{topic}: a gaze without timestamp")
            on = 1.0 if g.get("on_surf") else 0.0
            rows.setdefault(what, _Rows()).add(ts, t_arrival, (x, 1.0 - y, _number(g, "confidence"), on))

    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        try:
            await super().run(sink, stop)
        finally:
            self.close_video()


def configured_hosts() -> list[str]:
    """``HOST[:PORT]`` entries of the configuration's ``pupil_hosts`` (a broken file: none)."""
    try:
        return list(load_config().pupil_hosts)
    except ConfigError as exc:
        log.warning("pupil discovery: %s", exc)
        return []


def probe(host: str, port: int, timeout_ms: int = 500) -> str | None:
    """Pupil Remote's version at ``host:port``, or None when nothing answers in time."""
    sock: zmq.Socket = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    try:
        sock.connect(f"tcp://{host}:{port}")
        sock.send_string("v")
        return sock.recv_string()
    except zmq.ZMQError:
        return None
    finally:
        sock.close(0)


class PupilTransport(Transport):
    scheme = "pupil"
    label = "Pupil Capture"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        """Pupil Remote on this PC's default port and on the configured ``pupil_hosts``."""
        targets = [f"{DEFAULT_HOST}:{DEFAULT_PORT}", *configured_hosts()]
        addresses = list(dict.fromkeys(parse_address(t) for t in targets))
        wait_ms = int(min(timeout, 1.0) * 1000)
        versions = await asyncio.gather(*(asyncio.to_thread(probe, h, p, wait_ms) for h, p in addresses))
        found = [
            DeviceDescriptor(
                f"pupil:{h}:{p}",
                self.scheme,
                f"Pupil Capture {v} at {h}:{p}",
                make_id("pupil", h, str(p)),
                {"host": h, "port": p, "version": v},
            )
            for (h, p), v in zip(addresses, versions, strict=True)
            if v is not None
        ]
        if progress:
            progress(1.0, f"{len(found)} Pupil Capture(s) of {len(addresses)} address(es)")
        return found

    def open(self, uri: DeviceURI) -> PupilDevice:
        return PupilDevice(uri)
