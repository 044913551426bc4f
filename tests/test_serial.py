"""Serial transport over real pseudo-terminals: protocols, high rates, bad input, vanishing ports."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import NodeThread, RedisServer, wait_for

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.registry import list_sensors
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices import DeviceState, discover_all, open_device
from sensorium_desktop.devices.base import Device


class Pty:
    """A real pseudo-terminal; the test writes to the master, the device opens ``link``."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.reopen()

    def reopen(self) -> None:
        self.master, slave = os.openpty()
        name = os.ttyname(slave)
        os.close(slave)
        tmp = self.link.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        os.replace(tmp, self.link)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view[:4096])
            view = view[n:]

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    p = Pty(tmp_path / "ttyLAB0")
    yield p
    p.close()


class DeviceRunner:
    """Runs one device's ``run()`` in its own event loop thread, collecting batches."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.batches: list[SampleBatch] = []
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)
        self.thread.start()

    async def _main(self) -> None:
        await self.device.run(self.batches.append, self.stop_event)

    def rows(self) -> int:
        return sum(len(b) for b in list(self.batches))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
        assert not self.thread.is_alive(), "device did not stop (hang)"


def wait_state(device: Device, state: DeviceState, timeout: float = 10.0) -> None:
    wait_for(lambda: device.health.state == state, timeout, message=f"state {state} (is {device.health.state})")


def writer(pty: Pty, lines: Callable[[int], bytes], n: int, chunk: int = 500) -> threading.Thread:
    def run() -> None:
        for start in range(0, n, chunk):
            pty.write(b"".join(lines(i) for i in range(start, min(n, start + chunk))))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_csv_at_high_rate_arrives_complete_and_in_order(pty: Pty) -> None:
    dev = open_device(f"serial:{pty.link}?baud=921600&rate=10000")
    run = DeviceRunner(dev)
    wait_state(dev, DeviceState.STREAMING)
    pty.write(b"# lab amp v3\r\ntime_us,emg1,emg2\r\n")
    n = 50_000
    writer(pty, lambda i: f"{i * 100},{i},{-i * 0.5}\r\n".encode(), n).join(60)
    wait_for(lambda: run.rows() >= n, 30, message=f"{n} rows")
    run.stop()
    got = SampleBatch.concat(run.batches)
    (info,) = dev.sensors()
    assert info.channel_names == ("emg1", "emg2") and info.has_clock and info.nominal_rate == 10000
    np.testing.assert_array_equal(got.values[:, 0], np.arange(n))
    np.testing.assert_array_equal(got.values[:, 1], -np.arange(n) * 0.5)
    np.testing.assert_allclose(got.t_local, np.arange(n) * 1e-4)
    assert np.all(np.diff(got.t_arrival) >= 0)
    assert dev.health.errors == {"garbage": 1}
    assert dev.health.samples[info.sensor_id] == n


def test_fuzz_garbage_huge_lines_and_encodings_never_crash_or_hang(pty: Pty) -> None:
    dev = open_device(f"serial:{pty.link}?protocol=csv")
    run = DeviceRunner(dev)
    wait_state(dev, DeviceState.STREAMING)
    rng = np.random.default_rng(7)
    pty.write(b"a,b,c\n")
    for i in range(300):
        kind = i % 6
        if kind == 0:
            pty.write(rng.bytes(int(rng.integers(1, 300))))
        elif kind == 1:
            pty.write(b"1,2\n\xc3\x28\xa0\xa1,1,2\nnan,inf,-inf\n")
        elif kind == 2 and i % 60 == 2:
            pty.write(b"7" * (1 << 20) + b"\n")  # a 1 MB line
        pty.write(b"\n")  # resynchronise after random bytes
        pty.write(f"{i},{i + 1},{i + 2}\n".encode())
    pty.write(b"999,999,999\n")
    wait_for(lambda: any(999 in b.values[:, 0] for b in list(run.batches)), 20, message="the final good row")
    run.stop()
    got = SampleBatch.concat(run.batches)
    rows = {tuple(r) for r in got.values[np.isfinite(got.values).all(axis=1)].tolist()}
    assert all((i, i + 1, i + 2) in rows for i in range(300)), "a good row was lost"
    errs = dev.health.errors
    assert errs["oversized"] == 5 and errs["wrong_columns"] >= 50 and errs["nonfinite"] >= 150
    assert errs.get("garbage", 0) + errs.get("encoding", 0) >= 50
    assert dev.health.state == DeviceState.STOPPED


def test_port_that_vanishes_is_lost_then_reconnects(pty: Pty) -> None:
    dev = open_device(f"serial:{pty.link}?protocol=numbers")
    dev.reconnect_base = 0.1  # type: ignore[misc]
    run = DeviceRunner(dev)
    wait_state(dev, DeviceState.STREAMING)
    pty.write(b"1 2\n3 4\n")
    wait_for(lambda: run.rows() == 2, message="first rows")
    pty.close()  # the adapter is unplugged
    wait_for(lambda: dev.health.state in (DeviceState.LOST, DeviceState.RECONNECTING), message="lost state")
    assert dev.health.errors["disconnects"] == 1
    time.sleep(0.5)
    pty.reopen()  # plugged back in (a new tty behind the same stable name)
    wait_state(dev, DeviceState.STREAMING)
    pty.write(b"5 6\n")
    wait_for(lambda: run.rows() == 3, message="rows after reconnect")
    run.stop()
    assert SampleBatch.concat(run.batches).values.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert dev.health.reconnects == 1


def test_missing_port_is_an_error_state_not_an_exception(tmp_path: Path) -> None:
    dev = open_device(f"serial:{tmp_path}/ttyNOPE")
    run = DeviceRunner(dev)
    wait_for(lambda: dev.health.errors.get("open_failed", 0) >= 1, message="open failure")
    assert "cannot open" in dev.health.message and "ttyNOPE" in dev.health.message
    run.stop()


def test_json_lines_through_the_node_into_redis(pty: Pty, redis_server: RedisServer, keys: Keys) -> None:
    node = NodeThread(redis_server.url, keys, [f"serial:{pty.link}"]).start()
    try:
        wait_for(lambda: node.node.devices[0].health.state == DeviceState.STREAMING, message="streaming")
        lines = []
        for i in range(200):
            lines.append({"attribute_id": "heartrate", "payload": {"bpm": 60 + i % 20}, "timestamp": 1000 + 10 * i})
            lines.append({"attribute_id": "ecg", "payload": {"values": [i, i + 0.5]}, "timestamp": 1000 + 10 * i})
        lines.append({"attribute_id": "heartrate", "payload": {"bpm": -5}, "timestamp": 9999})
        pty.write(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
        c = redis_server.client()
        dev_id = node.node.devices[0].device_id

        def streams_complete() -> bool:
            hr = read_all(c, keys, f"{dev_id}-heartrate")
            ecg = read_all(c, keys, f"{dev_id}-ecg")
            return sum(len(e.batch) for e in hr) == 200 and sum(len(e.batch) for e in ecg) == 400

        wait_for(streams_complete, 20, message="both streams in Redis")
        sensors = {s.sensor_id: s for s in list_sensors(c, keys)}
        assert sensors[f"{dev_id}-heartrate"].attribute == "heartrate"
        assert sensors[f"{dev_id}-ecg"].channel_names == ("ecg",)
        hr = SampleBatch.concat([e.batch for e in read_all(c, keys, f"{dev_id}-heartrate")])
        assert hr.values[:, 0].tolist() == [60 + i % 20 for i in range(200)]
        np.testing.assert_allclose(hr.t_local, 1.0 + 0.01 * np.arange(200))
        assert node.node.devices[0].health.errors == {"payload_invalid": 1}
    finally:
        node.stop()


def test_discovery_lists_ports_with_descriptions() -> None:
    found = asyncio.run(discover_all(2.0, schemes=["serial"]))
    assert all(d.uri.startswith("serial:") and "vid_pid" in d.details for d in found)
