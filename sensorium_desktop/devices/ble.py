"""Bluetooth Low Energy wearables (bleak): scan, recognise by GATT services, stream, reconnect.

Supported services (parsers in :mod:`sensorium_desktop.core.gatt`):

- Heart Rate 0x180D / 0x2A37 → ``hr`` (bpm), ``hrv`` (RMSSD and SDNN in ms over the last
  30 RR intervals) and ``rr`` (each RR interval, s);
- Battery 0x180F / 0x2A19 → device health (read, then notifications when offered);
- Environmental Sensing 0x181A → ``temperature`` (0x2A6E), ``humidity`` (0x2A6F),
  ``pressure`` (0x2A6D), notified or polled every second;
- Device Information 0x180A → manufacturer, model, serial, firmware in the sensor metadata;
- Polar Measurement Data (PMD) → ``ecg`` (130 Hz, mV) and ``accelerometer`` (m/s²), with the
  device's own sample timestamps as ``t_local`` (seconds since 2000-01-01 on its clock).

URI: ``ble:AA:BB:CC:DD:EE:FF`` with optional ``ecg=0`` / ``acc=0`` (PMD streams, on by
default when the device has PMD), ``acc_rate`` (Hz, default 200), ``acc_range`` (g, default 8)
and ``name``. A device that drops is shown as ``lost`` and reconnected with backoff; a host
without an adapter, D-Bus or BlueZ shows ``Bluetooth unavailable: …``.

The connection logic needs only the small client interface that ``bleak.BleakClient``
satisfies (:class:`GattClient`); :attr:`BleTransport.client_factory` and
:attr:`BleTransport.scanner` are the seams tests use for a scripted peripheral.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import numpy as np

from ..core import gatt
from ..core.backoff import Backoff
from ..core.hostclock import host_time
from ..core.ids import make_id
from ..core.samples import SampleBatch, SensorInfo
from .base import (
    BatchSink,
    Device,
    DeviceDescriptor,
    DeviceError,
    DeviceState,
    DeviceURI,
    ProgressCallback,
    Transport,
)

log = logging.getLogger(__name__)

G_TO_MS2 = 9.80665
RR_WINDOW = 30
ENV_POLL_S = 1.0
CONNECT_TIMEOUT_S = 20.0
RECOGNISED_SERVICES = {
    gatt.HEART_RATE_SERVICE: "heart rate",
    gatt.BATTERY_SERVICE: "battery",
    gatt.ENVIRONMENTAL_SENSING_SERVICE: "environmental sensing",
    gatt.DEVICE_INFORMATION_SERVICE: "device information",
    gatt.PMD_SERVICE: "Polar PMD",
}
ENV_CHARS: dict[str, tuple[str, Callable[[bytes | bytearray], float]]] = {
    gatt.TEMPERATURE: ("temperature", gatt.parse_temperature),
    gatt.HUMIDITY: ("humidity", gatt.parse_humidity),
    gatt.PRESSURE: ("pressure", gatt.parse_pressure),
}


class GattClient(Protocol):
    """The part of ``bleak.BleakClient`` this module uses."""

    @property
    def services(self) -> Any: ...

    @property
    def is_connected(self) -> bool: ...

    async def connect(self, **kwargs: Any) -> Any: ...

    async def disconnect(self) -> Any: ...

    async def read_gatt_char(self, char_specifier: str, **kwargs: Any) -> bytearray: ...

    async def write_gatt_char(self, char_specifier: str, data: bytes, response: bool = ...) -> None: ...

    async def start_notify(self, char_specifier: str, callback: Callable[[Any, bytearray], Any], **kw: Any) -> None: ...

    async def stop_notify(self, char_specifier: str) -> None: ...


ClientFactory = Callable[[str, Callable[[Any], None]], GattClient]


def bluetooth_unavailable(exc: BaseException) -> str | None:
    """The operator-facing reason when ``exc`` means there is no usable Bluetooth stack."""
    from bleak.exc import BleakDBusError, BleakError

    if isinstance(exc, FileNotFoundError):  # dbus-fast: no system bus socket
        return f"Bluetooth unavailable: no D-Bus system bus ({exc})"
    if isinstance(exc, BleakDBusError):  # no BlueZ on the bus
        return f"Bluetooth unavailable: BlueZ is not running ({exc.dbus_error})"
    if isinstance(exc, BleakError) and any(w in str(exc).lower() for w in ("adapter", "bluez", "powered")):
        return f"Bluetooth unavailable: {exc}"
    return None


def _bleak_client(address: str, on_disconnect: Callable[[Any], None]) -> GattClient:
    from bleak import BleakClient

    return BleakClient(address, disconnected_callback=on_disconnect, timeout=CONNECT_TIMEOUT_S)


async def _bleak_scan(timeout: float, service_uuids: list[str] | None) -> list[tuple[str, str, list[str], int | None]]:
    """(address, name, advertised service UUIDs, RSSI) of each device seen."""
    from bleak import BleakScanner

    found = await BleakScanner.discover(timeout, return_adv=True, service_uuids=service_uuids)  # type: ignore[call-overload]  # service_uuids goes through bleak's **kwargs
    return [
        (dev.address, adv.local_name or dev.name or "", list(adv.service_uuids), adv.rssi)
        for dev, adv in found.values()
    ]


def _char_uuids(services: Iterable[Any]) -> dict[str, set[str]]:
    """{service uuid: {characteristic uuid with property flags 'uuid:prop'}}."""
    out: dict[str, set[str]] = {}
    for svc in services:
        chars = out.setdefault(str(svc.uuid).lower(), set())
        for ch in svc.characteristics:
            chars.add(str(ch.uuid).lower())
            for prop in getattr(ch, "properties", ()):
                chars.add(f"{str(ch.uuid).lower()}:{prop}")
    return out


class BleDevice(Device):
    """One BLE peripheral; its sensors are known once its services have been discovered."""

    def __init__(self, uri: DeviceURI, client_factory: ClientFactory) -> None:
        address = uri.target.upper()
        if len(address.replace(":", "").replace("-", "")) < 12:
            raise DeviceError(f"{uri}: expected a Bluetooth address like ble:AA:BB:CC:DD:EE:FF")
        super().__init__(uri, make_id("ble", address.replace(":", "")), uri.param("name") or address)
        self.address = address
        self.client_factory = client_factory
        self.want_ecg = uri.param("ecg", "1") != "0"
        self.want_acc = uri.param("acc", "1") != "0"
        self.acc_rate = uri.int_param("acc_rate", 200)
        self.acc_range = uri.int_param("acc_range", 8)
        self.info: dict[str, str] = {}
        self._sensors: dict[str, SensorInfo] = {}
        self._polled: list[tuple[str, Callable[[Any, bytearray], None]]] = []
        self._rr: collections.deque[float] = collections.deque(maxlen=RR_WINDOW)
        self._pmd_last_ns: dict[int, int] = {}
        self._pmd_responses: asyncio.Queue[gatt.PmdResponse] = asyncio.Queue()
        self._sink: BatchSink | None = None
        self.reconnect_base = 1.0
        self.reconnect_cap = 30.0

    def sensors(self) -> list[SensorInfo]:
        return list(self._sensors.values())

    # -- sensors -----------------------------------------------------------------------------
    def _add_sensor(self, attribute: str, rate: float, has_clock: bool, **kw: Any) -> None:
        if attribute in self._sensors:
            return
        self._sensors[attribute] = SensorInfo(
            sensor_id=make_id(self.device_id, attribute),
            attribute=attribute,
            device_id=self.device_id,
            device_name=self.name,
            transport="ble",
            uri=str(self.uri),
            nominal_rate=rate,
            has_clock=has_clock,
            extra={"address": self.address, **self.info},
            **kw,
        )

    def _emit(
        self, attribute: str, values: np.ndarray, t_arrival: np.ndarray, t_local: np.ndarray | None = None
    ) -> None:
        info = self._sensors.get(attribute)
        if info is None or self._sink is None or values.shape[0] == 0:
            return
        batch = SampleBatch(info.sensor_id, attribute, t_arrival, values.astype(info.channel_format), t_local)
        self.count_samples(batch)
        self._sink(batch)

    def _guard(self, kind: str, fn: Callable[[bytearray, float], None]) -> Callable[[Any, bytearray], None]:
        """Notification callback: stamp arrival first, count malformed payloads, never raise."""

        def callback(_char: Any, data: bytearray) -> None:
            t = host_time()
            try:
                fn(data, t)
            except gatt.GattError as exc:
                self.health.count_error(f"{kind}_malformed")
                self.health.message = f"{kind}: {exc}"
            except Exception as exc:  # a parser bug must not kill bleak's dispatcher
                self.health.count_error(f"{kind}_failed")
                self.health.message = f"{kind}: {type(exc).__name__}: {exc}"
                log.exception("ble %s: %s notification failed", self.address, kind)

        return callback

    # -- notification handlers ------------------------------------------------------------------
    def _on_heart_rate(self, data: bytearray, t: float) -> None:
        hr = gatt.parse_heart_rate(data)
        self._emit("hr", np.array([[hr.bpm]]), np.array([t]))
        if hr.contact is False:
            self.health.message = "no skin contact"
        if hr.rr_s:
            rr = np.asarray(hr.rr_s)
            self._emit("rr", rr.reshape(-1, 1), np.full(rr.size, t))
            self._rr.extend(hr.rr_s)
            if len(self._rr) >= 3:
                window = np.asarray(self._rr) * 1000.0
                rmssd = float(np.sqrt(np.mean(np.diff(window) ** 2)))
                self._emit("hrv", np.array([[rmssd, float(np.std(window, ddof=1))]]), np.array([t]))

    def _on_battery(self, data: bytearray, t: float) -> None:
        self.health.battery = float(gatt.parse_battery_level(data))

    def _env_handler(
        self, attribute: str, parse: Callable[[bytes | bytearray], float]
    ) -> Callable[[bytearray, float], None]:
        def handle(data: bytearray, t: float) -> None:
            self._emit(attribute, np.array([[parse(data)]]), np.array([t]))

        return handle

    def _on_pmd_control(self, data: bytearray, t: float) -> None:
        self._pmd_responses.put_nowait(gatt.parse_pmd_response(data))

    def _on_pmd_data(self, data: bytearray, t: float) -> None:
        frame = gatt.parse_pmd_frame(data)
        if frame.measurement == gatt.PMD_ECG:
            attribute, rate, scale = "ecg", 130.0, 1e-3  # uV → mV
        elif frame.measurement == gatt.PMD_ACC:
            attribute, rate, scale = "accelerometer", float(self.acc_rate), G_TO_MS2 * 1e-3  # mG → m/s²
        else:
            self.health.count_error("pmd_unexpected")
            return
        t_local = gatt.pmd_sample_times(frame, self._pmd_last_ns.get(frame.measurement), rate)
        self._pmd_last_ns[frame.measurement] = frame.timestamp_ns
        n = frame.values.shape[0]
        self._emit(attribute, frame.values * scale, np.full(n, t), t_local)

    # -- connection -------------------------------------------------------------------------------
    async def _setup(self, client: GattClient) -> None:
        chars = _char_uuids(client.services)
        all_chars = set().union(*chars.values()) if chars else set()
        for uuid, key in gatt.DEVICE_INFO_CHARS.items():
            if uuid in all_chars:
                with contextlib.suppress(Exception):
                    self.info[key] = gatt.parse_string(await client.read_gatt_char(uuid))
        if gatt.BATTERY_LEVEL in all_chars:
            with contextlib.suppress(gatt.GattError):
                self.health.battery = float(gatt.parse_battery_level(await client.read_gatt_char(gatt.BATTERY_LEVEL)))
            if f"{gatt.BATTERY_LEVEL}:notify" in all_chars:
                await client.start_notify(gatt.BATTERY_LEVEL, self._guard("battery", self._on_battery))
        subscriptions: list[tuple[str, Callable[[Any, bytearray], None]]] = []
        if gatt.HEART_RATE_MEASUREMENT in all_chars:
            self._add_sensor("hr", 1.0, False)
            self._add_sensor("hrv", 1.0, False)
            self._add_sensor("rr", 0.0, False, channel_names=("rr",), units=("s",), channel_format="float64")
            subscriptions.append((gatt.HEART_RATE_MEASUREMENT, self._guard("heart_rate", self._on_heart_rate)))
        polled: list[tuple[str, Callable[[Any, bytearray], None]]] = []
        for uuid, (attribute, parse) in ENV_CHARS.items():
            if uuid in all_chars:
                self._add_sensor(attribute, 1.0, False)
                cb = self._guard(attribute, self._env_handler(attribute, parse))
                (subscriptions if f"{uuid}:notify" in all_chars else polled).append((uuid, cb))
        pmd = gatt.PMD_CONTROL in all_chars and gatt.PMD_DATA in all_chars
        if pmd and self.want_ecg:
            self._add_sensor("ecg", 130.0, True)
        if pmd and self.want_acc:
            self._add_sensor("accelerometer", float(self.acc_rate), True)
        for info in self._sensors.values():
            info.extra.update(self.info)
        if not self._sensors:
            raise DeviceError(f"{self.address} offers none of: {', '.join(RECOGNISED_SERVICES.values())}")
        self.announce_sensors()
        for uuid, cb in subscriptions:
            await client.start_notify(uuid, cb)
        if pmd and (self.want_ecg or self.want_acc):
            await self._start_pmd(client)
        self._polled = polled

    async def _start_pmd(self, client: GattClient) -> None:
        await client.start_notify(gatt.PMD_CONTROL, self._guard("pmd_control", self._on_pmd_control))
        await client.start_notify(gatt.PMD_DATA, self._guard("pmd", self._on_pmd_data))
        self._pmd_last_ns.clear()
        requests = []
        if self.want_ecg:
            requests.append((gatt.PMD_ECG, {gatt.SETTING_SAMPLE_RATE: 130, gatt.SETTING_RESOLUTION: 14}))
        if self.want_acc:
            settings = {gatt.SETTING_SAMPLE_RATE: self.acc_rate, gatt.SETTING_RESOLUTION: 16}
            settings[gatt.SETTING_RANGE] = self.acc_range
            requests.append((gatt.PMD_ACC, settings))
        for measurement, settings in requests:
            await client.write_gatt_char(gatt.PMD_CONTROL, gatt.pmd_start_command(measurement, settings), response=True)
            try:
                resp = await asyncio.wait_for(self._pmd_responses.get(), 5.0)
            except TimeoutError:
                self.health.count_error("pmd_no_response")
                continue
            if not resp.ok:
                self.health.count_error("pmd_refused")
                self.health.message = f"PMD refused measurement {measurement} (status {resp.status})"

    async def _poll(self, client: GattClient, lost: asyncio.Event, stop: asyncio.Event) -> None:
        while self._polled and not (lost.is_set() or stop.is_set()):
            for uuid, cb in self._polled:
                cb(None, await client.read_gatt_char(uuid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ENV_POLL_S)

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> bool:
        """One connection; returns False when the node should stop trying (no Bluetooth)."""
        lost = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._polled = []

        def on_disconnect(_client: Any) -> None:
            loop.call_soon_threadsafe(lost.set)

        client = self.client_factory(self.address, on_disconnect)
        self.set_state(DeviceState.RECONNECTING if backoff.attempt else DeviceState.CONNECTING)
        try:
            await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_S)
            await self._setup(client)
        except Exception as exc:
            reason = bluetooth_unavailable(exc)
            if reason:
                self.set_state(DeviceState.UNAVAILABLE, reason)
                return False
            self.health.count_error("connect_failed")
            self.set_state(DeviceState.LOST if backoff.attempt else DeviceState.ERROR, f"cannot connect: {exc}")
            with contextlib.suppress(Exception):
                await client.disconnect()
            return True
        backoff.reset()
        self.set_state(DeviceState.STREAMING)
        poller = asyncio.create_task(self._poll(client, lost, stop))
        waiters = [asyncio.create_task(lost.wait()), asyncio.create_task(stop.wait())]
        await asyncio.wait([*waiters, poller], return_when=asyncio.FIRST_COMPLETED)
        for t in (*waiters, poller):
            t.cancel()
        await asyncio.gather(*waiters, poller, return_exceptions=True)
        if stop.is_set():
            with contextlib.suppress(Exception):
                if self._sensors.keys() & {"ecg", "accelerometer"}:
                    for m in (gatt.PMD_ECG, gatt.PMD_ACC):
                        await client.write_gatt_char(gatt.PMD_CONTROL, gatt.pmd_stop_command(m), response=True)
                await client.disconnect()
            return False
        self.health.count_error("disconnects")
        self.health.reconnects += 1
        self.set_state(DeviceState.LOST, "connection lost; reconnecting")
        with contextlib.suppress(Exception):
            await client.disconnect()
        return True

    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        self._sink = sink
        backoff = Backoff(self.reconnect_base, self.reconnect_cap)
        try:
            while not stop.is_set():
                if not await self._session(stop, backoff):
                    break
                if stop.is_set():
                    break
                backoff.attempt = max(backoff.attempt, 1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next_delay())
        finally:
            if self.health.state not in (DeviceState.UNAVAILABLE, DeviceState.LOST, DeviceState.ERROR):
                self.set_state(DeviceState.STOPPED)


Scanner = Callable[[float, list[str] | None], Awaitable[list[tuple[str, str, list[str], int | None]]]]


class BleTransport(Transport):
    scheme = "ble"
    label = "Bluetooth LE"
    #: Seams for tests (a scripted peripheral); production uses bleak.
    client_factory: ClientFactory = staticmethod(_bleak_client)
    scanner: Scanner = staticmethod(_bleak_scan)

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        """Scan for ``timeout`` s; devices advertising a recognised service come first."""
        scan = asyncio.ensure_future(type(self).scanner(timeout, None))
        start = asyncio.get_running_loop().time()
        while not scan.done():
            if progress:
                elapsed = asyncio.get_running_loop().time() - start
                progress(min(elapsed / max(timeout, 1e-3), 0.99), "scanning")
            await asyncio.wait([scan], timeout=0.25)
        try:
            seen = scan.result()
        except Exception as exc:
            reason = bluetooth_unavailable(exc) or f"Bluetooth unavailable: {type(exc).__name__}: {exc}"
            return [DeviceDescriptor("ble:", self.scheme, self.label, available=False, error=reason)]
        found = []
        for address, name, uuids, rssi in seen:
            recognised = [RECOGNISED_SERVICES[u.lower()] for u in uuids if u.lower() in RECOGNISED_SERVICES]
            found.append(
                DeviceDescriptor(
                    uri=f"ble:{address}",
                    transport=self.scheme,
                    name=name or address,
                    device_id=make_id("ble", address.replace(":", "")),
                    details={"address": address, "rssi": rssi, "services": recognised, "recognised": bool(recognised)},
                )
            )
        found.sort(key=lambda d: (not d.details["recognised"], -(d.details["rssi"] or -999)))
        if progress:
            progress(1.0, f"{len(found)} device(s)")
        return found

    def open(self, uri: DeviceURI) -> BleDevice:
        return BleDevice(uri, type(self).client_factory)
