"""Serial instruments (pyserial): port discovery and line-protocol streaming.

URI: ``serial:/dev/ttyUSB0?baud=115200&protocol=auto`` with optional ``attribute`` (the
attribute type of CSV/number rows, default ``signal``), ``rate`` (nominal Hz), ``time_column``
(header name or 0-based index), ``time_unit`` (s, ms, us, ns), ``channels`` (comma-separated
names for headerless numbers) and ``max_line`` (bytes, default 65536).

The protocol (CSV with header, Sensocto JSON lines, plain numbers) is detected from the first
lines (:mod:`sensorium_desktop.core.lineproto`), so the sensors of a serial device are known
only once data flows: the device announces them then. Every read is stamped with the host
time the moment it returns; a vanished port is shown as ``lost`` and reopened with backoff.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import serial
import serial.tools.list_ports

from ..core.attributes import get_type
from ..core.hostclock import host_time
from ..core.ids import InvalidIdError, make_id, validate_attribute_id
from ..core.lineproto import MAX_LINE_BYTES, LineDecoder
from ..core.samples import SampleBatch, SensorInfo
from .base import (
    DeviceDescriptor,
    DeviceError,
    DeviceURI,
    ProgressCallback,
    ThreadedDevice,
    Transport,
    UntrustedUriError,
)

DEFAULT_BAUD = 115200
READ_TIMEOUT_S = 0.05
MAX_READ_BYTES = 1 << 20


class SerialDevice(ThreadedDevice):
    """One serial port streaming lines; one sensor per attribute (one for CSV/numbers)."""

    def __init__(self, uri: DeviceURI) -> None:
        port = uri.target
        if not port:
            raise DeviceError(f"{uri}: no port (e.g. serial:/dev/ttyUSB0?baud=115200)")
        super().__init__(uri, make_id("serial", port.rsplit("/", 1)[-1]), port)
        self.port = port
        self.baud = uri.int_param("baud", DEFAULT_BAUD)
        if self.baud <= 0:
            raise DeviceError(f"{uri}: baud must be positive")
        self.attribute = uri.param("attribute", "signal") or "signal"
        try:
            validate_attribute_id(self.attribute)
        except InvalidIdError as exc:
            raise DeviceError(f"{uri}: {exc}") from exc
        self.nominal_rate = uri.float_param("rate", 0.0)
        names = tuple(c for c in (uri.param("channels") or "").split(",") if c)
        try:
            self.decoder = LineDecoder(
                uri.param("protocol", "auto") or "auto",
                uri.param("time_column"),
                uri.param("time_unit"),
                names,
                uri.int_param("max_line", MAX_LINE_BYTES),
            )
        except ValueError as exc:
            raise DeviceError(f"{uri}: {exc}") from exc
        self._sensors: dict[str, SensorInfo] = {}
        self._lock = threading.Lock()
        self._serial: serial.Serial | None = None

    def sensors(self) -> list[SensorInfo]:
        with self._lock:
            return list(self._sensors.values())

    # -- sensors appear with the data -----------------------------------------------------------
    def _sensor_for(self, stream: str, channels: tuple[str, ...]) -> SensorInfo:
        attribute = stream or self.attribute
        info = self._sensors.get(attribute)
        if info is not None:
            return info
        t = get_type(attribute)
        units: tuple[str, ...] = ()
        fmt = "float64"
        if t is not None and len(t.channels) == len(channels):
            units, fmt = t.units, t.channel_format
        info = SensorInfo(
            sensor_id=make_id(self.device_id, attribute),
            attribute=attribute,
            device_id=self.device_id,
            device_name=self.name,
            transport="serial",
            uri=str(self.uri),
            channel_names=channels,
            units=units,
            channel_format=fmt,
            nominal_rate=self.nominal_rate or (t.default_rate if t and stream else 0.0),
            has_clock=self.decoder.time_index is not None or self.decoder.protocol == "json",
            extra={"protocol": self.decoder.protocol, "port": self.port, "baud": self.baud},
        )
        with self._lock:
            self._sensors[attribute] = info
        return info

    # -- link -------------------------------------------------------------------------------
    def open_link(self) -> None:
        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=READ_TIMEOUT_S)
        except serial.SerialException as exc:
            raise DeviceError(str(exc)) from exc

    def close_link(self) -> None:
        s, self._serial = self._serial, None
        if s is not None:
            try:
                s.close()
            except (OSError, serial.SerialException):
                pass

    def read_link(self) -> list[SampleBatch]:
        s = self._serial
        if s is None:
            raise DeviceError("port is closed")
        try:
            data = s.read(1)  # blocks until a byte arrives (or the timeout)
            if data:
                waiting = s.in_waiting
                if waiting:
                    data += s.read(min(waiting, MAX_READ_BYTES))
        except serial.SerialException as exc:
            raise DeviceError(f"{self.port}: {exc}") from exc
        if not data:
            return []
        t_arrival = host_time()
        out = []
        for rows in self.decoder.feed(data, t_arrival):
            info = self._sensor_for(rows.stream, rows.channels)
            values = rows.values
            if values.dtype != object:
                values = values.astype(info.channel_format, copy=False)
            out.append(SampleBatch(info.sensor_id, info.attribute, rows.t_arrival, values, rows.t_device))
        self.health.errors = {**self.health.errors, **self.decoder.error_counts()}
        if self.decoder.last_error:
            self.health.message = self.decoder.last_error
        return out


class SerialTransport(Transport):
    scheme = "serial"
    label = "Serial"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        import asyncio

        ports = await asyncio.to_thread(serial.tools.list_ports.comports)
        found = []
        for i, p in enumerate(sorted(ports, key=lambda p: p.device)):
            if progress:
                progress((i + 1) / max(len(ports), 1), p.device)
            vidpid = f"{p.vid:04X}:{p.pid:04X}" if p.vid is not None and p.pid is not None else ""
            details = {
                "port": p.device, "vid_pid": vidpid, "serial_number": p.serial_number or "",
                "manufacturer": p.manufacturer or "", "product": p.product or "", "hwid": p.hwid,
            }  # fmt: skip
            found.append(
                DeviceDescriptor(
                    uri=str(DeviceURI("serial", p.device, (("baud", str(DEFAULT_BAUD)),))),
                    transport=self.scheme,
                    name=p.description if p.description and p.description != "n/a" else p.device,
                    device_id=make_id("serial", p.device.rsplit("/", 1)[-1]),
                    details=details,
                )
            )
        if progress:
            progress(1.0, f"{len(found)} port(s)")
        return found

    def open(self, uri: DeviceURI) -> SerialDevice:
        return SerialDevice(uri)

    def check_untrusted(self, uri: DeviceURI, roots: list[Path]) -> None:
        """Only serial ports: a path under /dev (or a COM port), or a link to a character device
        (a pseudo-terminal); never an ordinary file."""
        port = uri.target
        if (port.startswith("/dev/") and ".." not in Path(port).parts) or port.upper().startswith("COM"):
            return
        try:
            is_device = stat.S_ISCHR(os.stat(port).st_mode)
        except OSError:
            is_device = False
        if not is_device:
            raise UntrustedUriError(f"{uri}: {port!r} is not a serial port (only /dev/… or a character device)")
