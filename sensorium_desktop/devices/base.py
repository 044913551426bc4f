"""The one device interface every transport implements, device URIs and the registry.

discover → describe → connect → stream sample batches → disconnect. A transport is one
module in this package that defines a :class:`Transport` subclass decorated with
:func:`register_transport`; :mod:`sensorium_desktop.devices` imports the modules listed in
``TRANSPORT_MODULES`` (one registration line per transport).
"""

from __future__ import annotations

import abc
import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode

from ..core.ids import make_id
from ..core.samples import SampleBatch, SensorInfo

BatchSink = Callable[[SampleBatch], None]
ProgressCallback = Callable[[float, str], None]


class DeviceError(RuntimeError):
    """A device cannot be opened or used; the message is shown to the operator."""


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

    @abc.abstractmethod
    def sensors(self) -> list[SensorInfo]:
        """Describe the sensor streams (may grow after connect for self-describing devices)."""

    @abc.abstractmethod
    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        """Connect, stream batches into ``sink`` until ``stop`` is set, then disconnect.

        Must not raise for expected failures (device lost, bad input): set ``health``
        and keep trying or return. ``sink`` is called from the node's event loop.
        """

    def set_state(self, state: DeviceState, message: str = "") -> None:
        self.health.state = state
        self.health.message = message
        self.health.since = time.time()


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


TRANSPORTS: dict[str, type[Transport]] = {}


def register_transport(cls: type[Transport]) -> type[Transport]:
    """Class decorator: make ``cls`` reachable by its URI scheme."""
    TRANSPORTS[cls.scheme] = cls
    return cls


def open_device(uri: str | DeviceURI) -> Device:
    """Open the device a URI names, through its transport."""
    parsed = uri if isinstance(uri, DeviceURI) else DeviceURI.parse(uri)
    cls = TRANSPORTS.get(parsed.scheme)
    if cls is None:
        known = ", ".join(sorted(TRANSPORTS))
        raise DeviceError(f"unknown device transport {parsed.scheme!r} in {uri} (known: {known})")
    return cls().open(parsed)


async def discover_all(
    timeout: float = 5.0,
    progress: ProgressCallback | None = None,
    schemes: list[str] | None = None,
) -> list[DeviceDescriptor]:
    """Run every transport's discovery concurrently; a failing transport yields an error entry."""
    chosen = [TRANSPORTS[s] for s in (schemes or sorted(TRANSPORTS)) if s in TRANSPORTS]

    async def one(cls: type[Transport]) -> list[DeviceDescriptor]:
        def report(frac: float, msg: str) -> None:
            if progress:
                progress(frac, f"{cls.label}: {msg}")

        try:
            return await cls().discover(timeout, report)
        except Exception as exc:  # a transport must never take discovery down
            return [DeviceDescriptor(f"{cls.scheme}:", cls.scheme, cls.label, available=False, error=str(exc))]

    results: list[Awaitable[list[DeviceDescriptor]]] = [one(c) for c in chosen]
    found: list[DeviceDescriptor] = []
    for group in await asyncio.gather(*results):
        found.extend(group)
    return found
