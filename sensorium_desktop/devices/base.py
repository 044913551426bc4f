"""The one device interface every transport implements, device URIs and the registry.

discover → describe → connect → stream sample batches → disconnect. A transport is one
module (here or in a lab's own package) that defines a :class:`Transport` subclass, plus one
entry point in the ``sensorium_desktop.transports`` group naming it (see
:mod:`sensorium_desktop.plugins`); it is imported when its scheme is first used.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode

from ..core.backoff import Backoff
from ..core.ids import make_id
from ..core.samples import SampleBatch, SensorInfo
from ..plugins import PluginError, PluginRegistry

log = logging.getLogger(__name__)

BatchSink = Callable[[SampleBatch], None]
ProgressCallback = Callable[[float, str], None]


class DeviceError(RuntimeError):
    """A device cannot be opened or used; the message is shown to the operator."""


class UntrustedUriError(DeviceError):
    """A URI received through Redis names something this PC does not open for others."""


class DeviceState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    LOST = "lost"
    UNAVAILABLE = "unavailable"
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class DeviceURI:
    """``scheme:target?key=value&...`` — e.g. ``sim:chest``, ``serial:/dev/ttyUSB0?baud=115200``,
    ``ble:AA:BB:CC:DD:EE:FF``, ``camera:0``, ``camera:file.mp4``, ``lsl:STREAM_NAME``."""

    scheme: str
    target: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> DeviceURI:
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or not scheme or not scheme.isalnum():
            raise DeviceError(f"device URI {text!r} must look like 'scheme:target' (e.g. sim:chest)")
        target, _, query = rest.partition("?")
        return cls(scheme.lower(), target, tuple(parse_qsl(query, keep_blank_values=True)))

    def param(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.params:
            if k == key:
                return v
        return default

    def float_param(self, key: str, default: float) -> float:
        raw = self.param(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError as exc:
            raise DeviceError(f"{self}: parameter {key}={raw!r} is not a number") from exc

    def int_param(self, key: str, default: int) -> int:
        return int(self.float_param(key, float(default)))

    def with_params(self, **params: Any) -> DeviceURI:
        merged = dict(self.params)
        merged.update({k: str(v) for k, v in params.items()})
        return DeviceURI(self.scheme, self.target, tuple(merged.items()))

    def __str__(self) -> str:
        q = f"?{urlencode(self.params, safe=':/')}" if self.params else ""
        return f"{self.scheme}:{quote(self.target, safe=':/.@-_~')}{q}"


@dataclass(slots=True)
class DeviceDescriptor:
    """What discovery found: enough to show it and to open it by URI."""

    uri: str
    transport: str
    name: str
    device_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    available: bool = True
    error: str = ""

    def __post_init__(self) -> None:
        if not self.device_id:
            self.device_id = make_id(self.transport, self.name or self.uri)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class DeviceHealth:
    """Live health of a connected device (shown in the device tree)."""

    state: DeviceState = DeviceState.IDLE
    message: str = ""
    battery: float | None = None
    rssi: float | None = None
    samples: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    since: float = field(default_factory=time.time)

    def count_error(self, kind: str, n: int = 1) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + n

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return d


class Device(abc.ABC):
    """A connected (or connectable) device with one or more sensor streams."""

    def __init__(self, uri: DeviceURI, device_id: str, name: str) -> None:
        self.uri = uri
        self.device_id = device_id
        self.name = name
        self.health = DeviceHealth()
        #: Called (in the node's event loop) when :meth:`sensors` grows after connecting.
        self.on_sensors_changed: Callable[[Device], None] | None = None
        #: a threaded device sets this when its sensors' descriptions changed (a clock measured
        #: on opening): they are registered again after the link opens
        self.redescribe = False

    def announce_sensors(self) -> None:
        """Tell the node the sensor list changed (self-describing devices call this)."""
        if self.on_sensors_changed is not None:
            self.on_sensors_changed(self)

    @abc.abstractmethod
    def sensors(self) -> list[SensorInfo]:
        """Describe the sensor streams (may grow after connect for self-describing devices)."""

    @abc.abstractmethod
    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        """Connect, stream batches into ``sink`` until ``stop`` is set, then disconnect.

        Must not raise for expected failures (device lost, bad input): set ``health``
        and keep trying or return. ``sink`` is called from the node's event loop.
        """

    def details(self) -> dict[str, Any]:
        """Transport-specific facts for the device tree (address, attention, …); default none."""
        return {}

    def latest_preview(self) -> tuple[str, bytes, float] | None:
        """(sensor id, JPEG bytes, host time s) of a low-rate preview image, for devices with one."""
        return None

    def set_state(self, state: DeviceState, message: str = "") -> None:
        self.health.state = state
        self.health.message = message
        self.health.since = time.time()

    def count_samples(self, batch: SampleBatch) -> None:
        """Add a delivered batch to the per-sensor sample counters (rates are derived)."""
        self.health.samples[batch.sensor_id] = self.health.samples.get(batch.sensor_id, 0) + len(batch)


class EndOfStream(Exception):
    """A finite source (a video file, a replay) ended; the device stops without reconnecting."""


class ThreadedDevice(Device):
    """A device whose I/O blocks: a reader thread opens the link, reads batches and reconnects.

    Subclasses implement :meth:`open_link`, :meth:`read_link` (block at most ~0.1 s, return
    the batches read, raise ``OSError``/:class:`DeviceError` when the link is lost or
    :class:`EndOfStream` when a finite source ends) and :meth:`close_link`. Batches reach the
    sink in the node's event loop; a lost link is shown as ``lost`` and retried with
    :class:`~sensorium_desktop.bus.connection.Backoff` delays (``reconnect_base`` s doubling
    up to ``reconnect_cap`` s) until the node stops.
    """

    reconnect_base = 0.5
    reconnect_cap = 10.0

    @abc.abstractmethod
    def open_link(self) -> None:
        """Open the connection (raises ``OSError``/:class:`DeviceError` when it cannot)."""

    @abc.abstractmethod
    def read_link(self) -> list[SampleBatch]:
        """Read what is available (blocking at most ~0.1 s)."""

    @abc.abstractmethod
    def close_link(self) -> None:
        """Close the connection; must not raise."""

    def _reader(self, loop: asyncio.AbstractEventLoop, sink: BatchSink, halt: threading.Event) -> None:
        backoff = Backoff(self.reconnect_base, self.reconnect_cap)

        known: set[str] = {i.sensor_id for i in self.sensors()}

        def announce_new() -> None:
            """Runs in the loop: register sensors the device now describes (on opening, as an
            LSL inlet does, or with the first sample of a new stream), before their data."""
            fresh = {i.sensor_id for i in self.sensors()} - known
            if fresh or self.redescribe:
                known.update(fresh)
                self.redescribe = False
                self.announce_sensors()

        def deliver(batches: list[SampleBatch]) -> None:
            for b in batches:
                if b.sensor_id not in known:  # a self-describing device found a new stream
                    announce_new()
                self.count_samples(b)
                sink(b)

        while not halt.is_set():
            self.set_state(DeviceState.RECONNECTING if backoff.attempt else DeviceState.CONNECTING)
            try:
                self.open_link()
            except Exception as exc:  # OSError, DeviceError, ValueError; anything else is a bug: say so
                if not isinstance(exc, OSError | DeviceError | ValueError):
                    log.error("device %s: unexpected error opening: %s", self.device_id, exc, exc_info=True)
                self.health.count_error("open_failed")
                self.set_state(DeviceState.LOST if backoff.attempt else DeviceState.ERROR, f"cannot open: {exc}")
                halt.wait(backoff.next_delay())
                continue
            backoff.reset()
            self.set_state(DeviceState.STREAMING)
            loop.call_soon_threadsafe(announce_new)  # a silent stream (markers) is recordable too
            try:
                while not halt.is_set():
                    batches = self.read_link()
                    if batches:
                        loop.call_soon_threadsafe(deliver, batches)
            except EndOfStream as exc:
                self.set_state(DeviceState.STOPPED, str(exc) or "end of stream")
                return
            except Exception as exc:  # the link is gone: report it, never take the node down
                self.health.count_error("disconnects")
                self.health.reconnects += 1
                self.set_state(DeviceState.LOST, f"connection lost: {type(exc).__name__}: {exc}")
                log.warning("device %s: connection lost: %s", self.device_id, exc)
                backoff.attempt = max(backoff.attempt, 1)
                halt.wait(backoff.next_delay())
            finally:
                try:
                    self.close_link()
                except Exception:  # must not end the reader thread: the next open retries
                    self.health.count_error("close_failed")
                    log.error("device %s: closing the link failed", self.device_id, exc_info=True)
        if self.health.state == DeviceState.STREAMING:
            self.set_state(DeviceState.STOPPED)

    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        halt = threading.Event()
        loop = asyncio.get_running_loop()
        thread = threading.Thread(
            target=self._reader, args=(loop, sink, halt), name=f"dev-{self.device_id}", daemon=True
        )
        thread.start()
        try:
            while thread.is_alive() and not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                except TimeoutError:
                    pass
        finally:
            halt.set()
            await asyncio.to_thread(thread.join, 5.0)
            if self.health.state not in (DeviceState.STOPPED, DeviceState.LOST, DeviceState.ERROR):
                self.set_state(DeviceState.STOPPED)


class Transport(abc.ABC):
    """A family of devices reachable the same way (one module per transport)."""

    scheme: ClassVar[str]
    label: ClassVar[str]

    @abc.abstractmethod
    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        """Find devices; must return (possibly an 'unavailable' descriptor), never raise."""

    @abc.abstractmethod
    def open(self, uri: DeviceURI) -> Device:
        """Create the device for ``uri`` (raises :class:`DeviceError` for a bad URI)."""

    def check_untrusted(self, uri: DeviceURI, roots: list[Path]) -> None:
        """Refuse (:class:`UntrustedUriError`) a URI that came through Redis (another process or PC)
        and names files outside ``roots`` or anything else this PC must not open for others.
        Transports whose URIs name no local files keep this default (accept)."""
        return None


def _check_transport(name: str, obj: object) -> type[Transport]:
    if not (isinstance(obj, type) and issubclass(obj, Transport)):
        raise TypeError(f"{obj!r} is not a Transport subclass")
    if getattr(obj, "scheme", None) != name:
        raise TypeError(f"{obj.__name__}.scheme is {getattr(obj, 'scheme', None)!r}, its entry point says {name!r}")
    if not getattr(obj, "label", ""):
        raise TypeError(f"{obj.__name__} has no label")
    return obj


#: URI scheme → transport class, from the ``sensorium_desktop.transports`` entry points
TRANSPORTS: PluginRegistry[type[Transport]] = PluginRegistry("transports", _check_transport)


def open_device(uri: str | DeviceURI, untrusted_roots: list[Path] | None = None) -> Device:
    """Open the device a URI names, through its transport. ``untrusted_roots``: the URI came
    through Redis; files it names must lie inside these folders (see
    :meth:`Transport.check_untrusted`)."""
    parsed = uri if isinstance(uri, DeviceURI) else DeviceURI.parse(uri)
    try:
        cls = TRANSPORTS.load(parsed.scheme)
    except PluginError as exc:
        if parsed.scheme in TRANSPORTS:
            raise DeviceError(f"transport {parsed.scheme!r} cannot be used: {exc}") from exc
        known = ", ".join(sorted(TRANSPORTS))
        raise DeviceError(f"unknown device transport {parsed.scheme!r} in {uri} (known: {known})") from exc
    transport = cls()
    if untrusted_roots is not None:
        transport.check_untrusted(parsed, untrusted_roots)
    return transport.open(parsed)


async def discover_all(
    timeout: float = 5.0,
    progress: ProgressCallback | None = None,
    schemes: list[str] | None = None,
) -> list[DeviceDescriptor]:
    """Run every transport's discovery concurrently; a failing transport yields an error entry."""
    wanted = [s for s in (schemes or sorted(TRANSPORTS)) if s in TRANSPORTS]
    chosen = [cls for cls in map(TRANSPORTS.get, wanted) if cls is not None]
    broken = [DeviceDescriptor(f"{s}:", s, s, available=False, error=f"transport did not load: {TRANSPORTS.errors[s]}")
              for s in wanted if s in TRANSPORTS.errors]  # fmt: skip

    async def one(cls: type[Transport]) -> list[DeviceDescriptor]:
        def report(frac: float, msg: str) -> None:
            if progress:
                progress(frac, f"{cls.label}: {msg}")

        try:
            return await cls().discover(timeout, report)
        except Exception as exc:  # a transport must never take discovery down
            return [DeviceDescriptor(f"{cls.scheme}:", cls.scheme, cls.label, available=False, error=str(exc))]

    results: list[Awaitable[list[DeviceDescriptor]]] = [one(c) for c in chosen]
    found: list[DeviceDescriptor] = list(broken)
    for group in await asyncio.gather(*results):
        found.extend(group)
    return found
