"""BLE connection logic against a scripted peripheral (the only fake in the product: the radio).

``FakePeripheral`` implements the small client interface ``bleak.BleakClient`` satisfies
(connect, services, read/write/notify) and plays a Polar-H10-like device: Heart Rate with RR
intervals, Battery, Device Information, Environmental Sensing and the PMD service answering
start requests and streaming ECG and accelerometer frames with its own nanosecond clock.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import NodeThread, RedisServer, wait_for

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.registry import list_sensors
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core import gatt
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices import DeviceState, discover_all
from sensorium_desktop.devices.ble import BleTransport

ADDRESS = "A0:9E:1A:00:11:22"
POLAR_T0_NS = 720_000_000_000_000_000  # device clock: ns since 2000-01-01


@dataclass
class Char:
    uuid: str
    properties: tuple[str, ...]


@dataclass
class Service:
    uuid: str
    characteristics: list[Char] = field(default_factory=list)


def polar_h10_services() -> list[Service]:
    return [
        Service(gatt.HEART_RATE_SERVICE, [Char(gatt.HEART_RATE_MEASUREMENT, ("notify",))]),
        Service(gatt.BATTERY_SERVICE, [Char(gatt.BATTERY_LEVEL, ("read", "notify"))]),
        Service(
            gatt.DEVICE_INFORMATION_SERVICE,
            [Char(gatt.uuid16(0x2A29), ("read",)), Char(gatt.uuid16(0x2A24), ("read",))],
        ),
        Service(gatt.ENVIRONMENTAL_SENSING_SERVICE, [Char(gatt.TEMPERATURE, ("read",))]),
        Service(gatt.PMD_SERVICE, [Char(gatt.PMD_CONTROL, ("write", "indicate")), Char(gatt.PMD_DATA, ("notify",))]),
    ]


def ecg_frame(ts_ns: int, samples: list[int]) -> bytes:
    body = b"".join(struct.pack("<i", s)[:3] for s in samples)
    return bytes([gatt.PMD_ECG]) + struct.pack("<Q", ts_ns) + b"\x00" + body


def acc_frame(ts_ns: int, xyz: list[tuple[int, int, int]]) -> bytes:
    body = b"".join(struct.pack("<hhh", *v) for v in xyz)
    return bytes([gatt.PMD_ACC]) + struct.pack("<Q", ts_ns) + b"\x01" + body


class FakePeripheral:
    """A scripted peripheral: ``world`` holds what every connection of this address shares."""

    def __init__(self, address: str, on_disconnect: Callable[[Any], None], world: World) -> None:
        self.address = address
        self.on_disconnect = on_disconnect
        self.world = world
        self.services: list[Service] = []
        self.connected = False
        self.callbacks: dict[str, Callable[[Any, bytearray], None]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        world.clients.append(self)

    @property
    def is_connected(self) -> bool:
        return self.connected

    async def connect(self, **kwargs: Any) -> bool:
        if self.world.refuse_connects > 0:
            self.world.refuse_connects -= 1
            raise TimeoutError("device did not answer")
        self.connected = True
        self.services = polar_h10_services()
        self.world.connects += 1
        return True

    async def disconnect(self) -> bool:
        self._halt()
        return True

    def _halt(self) -> None:
        self.connected = False
        for t in self.tasks:
            t.cancel()

    def drop(self) -> None:
        """The radio link is lost (out of range)."""
        self._halt()
        self.on_disconnect(self)

    async def read_gatt_char(self, uuid: str, **kwargs: Any) -> bytearray:
        assert self.connected
        values = {
            gatt.BATTERY_LEVEL: bytes([87]),
            gatt.uuid16(0x2A29): b"Polar Electro Oy\x00",
            gatt.uuid16(0x2A24): b"H10",
            gatt.TEMPERATURE: struct.pack("<h", 3415),  # 34.15 degC
        }
        return bytearray(values[uuid])

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool = True) -> None:
        assert uuid == gatt.PMD_CONTROL and self.connected
        self.world.pmd_writes.append(bytes(data))
        op, measurement = data[0], data[1]
        self.callbacks[gatt.PMD_CONTROL](None, bytearray([0xF0, op, measurement, 0x00, 0x00]))
        if op == 0x02:
            self.tasks.append(asyncio.get_running_loop().create_task(self._stream_pmd(measurement)))

    async def start_notify(self, uuid: str, callback: Callable[[Any, bytearray], None], **kw: Any) -> None:
        assert self.connected
        self.callbacks[uuid] = callback
        if uuid == gatt.HEART_RATE_MEASUREMENT:
            self.tasks.append(asyncio.get_running_loop().create_task(self._stream_hr()))

    async def stop_notify(self, uuid: str) -> None:
        self.callbacks.pop(uuid, None)

    async def _stream_hr(self) -> None:
        while self.connected:
            i = self.world.hr_sent
            self.world.hr_sent += 1
            if i == 3:  # one malformed notification: RR field with an odd byte count
                self.callbacks[gatt.HEART_RATE_MEASUREMENT](None, bytearray.fromhex("104800"))
            else:
                rr = 1024 - 8 * (i % 5)
                self.callbacks[gatt.HEART_RATE_MEASUREMENT](
                    None, bytearray(bytes([0x16, 60 + i % 5]) + struct.pack("<H", rr))
                )
            await asyncio.sleep(0.02)

    async def _stream_pmd(self, measurement: int) -> None:
        while self.connected:
            k = self.world.frames[measurement]
            self.world.frames[measurement] += 1
            if measurement == gatt.PMD_ECG:  # 13 samples per frame at 130 Hz (100 ms)
                ts = POLAR_T0_NS + int((k + 1) * 13 * 1e9 / 130)
                frame = ecg_frame(ts, [1000 * k + j for j in range(13)])
            else:  # 20 samples per frame at 200 Hz
                ts = POLAR_T0_NS + int((k + 1) * 20 * 1e9 / 200)
                frame = acc_frame(ts, [(k, -1000, 20 * k + j) for j in range(20)])
            self.callbacks[gatt.PMD_DATA](None, bytearray(frame))
            await asyncio.sleep(0.01)


@dataclass
class World:
    clients: list[FakePeripheral] = field(default_factory=list)
    connects: int = 0
    refuse_connects: int = 0
    hr_sent: int = 0
    frames: dict[int, int] = field(default_factory=lambda: {gatt.PMD_ECG: 0, gatt.PMD_ACC: 0})
    pmd_writes: list[bytes] = field(default_factory=list)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World()
    monkeypatch.setattr(BleTransport, "client_factory", staticmethod(lambda a, cb: FakePeripheral(a, cb, w)))
    yield w


def test_polar_like_peripheral_streams_every_service_into_redis(
    world: World, redis_server: RedisServer, keys: Keys
) -> None:
    world.refuse_connects = 1  # the first attempt times out: retried with backoff
    node = NodeThread(redis_server.url, keys, [f"ble:{ADDRESS}?acc_rate=200"]).start()
    dev = node.node.devices[0]
    dev.reconnect_base = 0.1
    try:
        wait_for(lambda: dev.health.state == DeviceState.STREAMING, 15, message="streaming")
        c = redis_server.client()

        def count(attr: str) -> int:
            return sum(len(e.batch) for e in read_all(c, keys, f"{dev.device_id}-{attr}"))

        wait_for(lambda: count("ecg") >= 130 and count("accelerometer") >= 200 and count("hr") >= 10, 20,
                 message="ecg, acc and hr in Redis")  # fmt: skip
        sensors = {s.attribute: s for s in list_sensors(c, keys)}
        assert set(sensors) >= {"hr", "hrv", "rr", "temperature", "ecg", "accelerometer"}
        assert sensors["ecg"].has_clock and sensors["ecg"].extra["manufacturer"] == "Polar Electro Oy"
        assert dev.health.battery == 87 and dev.health.errors["connect_failed"] == 1
        assert dev.health.errors["heart_rate_malformed"] == 1
        # PMD start requests as the Polar spec writes them: ECG 130 Hz 14 bit; ACC 200 Hz 16 bit 8 G
        assert world.pmd_writes[:2] == [
            bytes.fromhex("02000001820001010e00"),
            bytes.fromhex("02020001c8000101100002010800"),
        ]

        ecg = SampleBatch.concat([e.batch for e in read_all(c, keys, f"{dev.device_id}-ecg")])
        n = len(ecg)
        np.testing.assert_allclose(
            ecg.values[:, 0], (1000 * (np.arange(n) // 13) + np.arange(n) % 13) * 1e-3, rtol=1e-6
        )
        t0 = POLAR_T0_NS / 1e9
        np.testing.assert_allclose(ecg.t_local - t0, (np.arange(n) + 1) / 130.0, atol=2e-6)
        acc = SampleBatch.concat([e.batch for e in read_all(c, keys, f"{dev.device_id}-accelerometer")])
        np.testing.assert_allclose(acc.values[:20, 1], -9.80665, rtol=1e-6)
        hrv = SampleBatch.concat([e.batch for e in read_all(c, keys, f"{dev.device_id}-hrv")])
        assert np.all(hrv.values[:, 0] > 0)  # RMSSD of the RR sequence, ms
        rr = SampleBatch.concat([e.batch for e in read_all(c, keys, f"{dev.device_id}-rr")])
        assert set(np.round(rr.values[:, 0] * 1024).astype(int)) <= {1024, 1016, 1008, 1000, 992}

        before = count("ecg")
        node.loop.call_soon_threadsafe(world.clients[-1].drop)  # walks out of range
        wait_for(lambda: dev.health.state in (DeviceState.LOST, DeviceState.RECONNECTING), message="lost")
        wait_for(lambda: dev.health.state == DeviceState.STREAMING, 15, message="reconnected")
        wait_for(lambda: count("ecg") > before + 130, 15, message="ecg after reconnect")
        assert dev.health.reconnects == 1 and world.connects == 2
    finally:
        node.stop()
    assert dev.health.state == DeviceState.STOPPED
    assert world.pmd_writes[-2:] == [bytes([0x03, 0]), bytes([0x03, 2])]  # streams stopped on the way out


def test_discovery_without_a_bluetooth_stack_says_so() -> None:
    (entry,) = asyncio.run(discover_all(1.0, schemes=["ble"]))
    assert not entry.available and entry.error.startswith("Bluetooth unavailable:")


def test_discovery_ranks_recognised_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scan(timeout: float, uuids: list[str] | None) -> list[tuple[str, str, list[str], int | None]]:
        await asyncio.sleep(0.3)
        return [
            ("11:22:33:44:55:66", "TV", [], -40),
            (ADDRESS, "Polar H10 1234ABCD", [gatt.HEART_RATE_SERVICE, gatt.PMD_SERVICE], -70),
        ]

    monkeypatch.setattr(BleTransport, "scanner", staticmethod(scan))
    progress: list[float] = []
    found = asyncio.run(discover_all(0.3, lambda f, m: progress.append(f), schemes=["ble"]))
    assert [d.uri for d in found] == [f"ble:{ADDRESS}", "ble:11:22:33:44:55:66"]
    assert found[0].details["services"] == ["heart rate", "Polar PMD"] and progress[-1] == 1.0


def test_missing_bluez_and_adapter_errors_read_as_unavailable() -> None:
    from bleak.exc import BleakDBusError, BleakError

    from sensorium_desktop.devices.ble import bluetooth_unavailable

    assert "BlueZ" in (bluetooth_unavailable(BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", [])) or "")
    assert (bluetooth_unavailable(FileNotFoundError(2, "No such file")) or "").startswith("Bluetooth unavailable")
    assert bluetooth_unavailable(BleakError("No Bluetooth adapters found.")) is not None
    assert bluetooth_unavailable(TimeoutError()) is None  # an ordinary connect failure is retried instead
