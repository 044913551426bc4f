"""LSL on loopback: real outlets and inlets (liblsl from the pylsl wheel)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest
from conftest import NodeThread, RedisServer, wait_for
from test_serial import DeviceRunner

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.registry import list_sensors
from sensorium_desktop.bus.sessions import Session
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.hostclock import host_time
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.devices import DeviceState, discover_all, open_device
from sensorium_desktop.worker.lsl_outlet import LslOutletBridge


def eeg_outlet(name: str, channels: int = 8, rate: float = 250.0) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", channels, rate, pylsl.cf_float32, f"amp-{name}")
    chans = info.desc().append_child("channels")
    for i in range(channels):
        ch = chans.append_child("channel")
        ch.append_child_value("label", f"C{i + 1}")
        ch.append_child_value("unit", "microvolts")
    return pylsl.StreamOutlet(info)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def test_lsl_stream_through_the_node_keeps_lsl_timestamps(redis_server: RedisServer, keys: Keys) -> None:
    name = unique("EEG")
    outlet = eeg_outlet(name)
    markers = pylsl.StreamOutlet(pylsl.StreamInfo(f"{name}-markers", "Markers", 1, 0, pylsl.cf_string, "mk"))
    node = NodeThread(redis_server.url, keys, [f"lsl:{name}", f"lsl:{name}-markers"]).start()
    try:
        eeg_dev, mk_dev = node.node.devices
        wait_for(lambda: eeg_dev.health.state == DeviceState.STREAMING == mk_dev.health.state, 15, message="inlets")
        data = np.arange(500 * 8, dtype=np.float32).reshape(500, 8)
        t0 = pylsl.local_clock()
        stamps = t0 + np.arange(500) / 250.0
        for start in range(0, 500, 50):
            outlet.push_chunk(data[start : start + 50], stamps[start : start + 50].tolist())
        markers.push_sample(["trial 1 start"], t0 + 0.5)
        c = redis_server.client()
        sid = f"{eeg_dev.device_id}-eeg"
        wait_for(lambda: sum(len(e.batch) for e in read_all(c, keys, sid)) == 500, 15, message="500 EEG samples")
        got = SampleBatch.concat([e.batch for e in read_all(c, keys, sid)])
        np.testing.assert_array_equal(got.values, data)
        np.testing.assert_allclose(got.t_local, stamps, atol=1e-3)  # same host: time_correction ~ 0
        info = {s.sensor_id: s for s in list_sensors(c, keys)}[sid]
        assert info.channel_names == tuple(f"C{i}" for i in range(1, 9)) and info.units[0] == "microvolts"
        assert info.nominal_rate == 250.0 and info.attribute == "eeg" and info.has_clock
        msid = f"{mk_dev.device_id}-marker"
        wait_for(lambda: read_all(c, keys, msid), 10, message="the marker")
        mk = read_all(c, keys, msid)[0].batch
        assert mk.values[0, 0] == "trial 1 start" and abs(mk.t_local[0] - (t0 + 0.5)) < 1e-3
    finally:
        node.stop()


def test_vanished_outlet_is_lost_then_found_again() -> None:
    name = unique("Amp")
    outlet = eeg_outlet(name, 2)
    dev = open_device(f"lsl:{name}")
    dev.reconnect_base = 0.2  # type: ignore[misc]
    run = DeviceRunner(dev)
    try:
        wait_for(lambda: dev.health.state == DeviceState.STREAMING, 15, message="streaming")
        outlet.push_chunk(np.ones((10, 2), np.float32))
        wait_for(lambda: run.rows() == 10, 10, message="first samples")
        del outlet  # the amplifier software quits
        wait_for(lambda: dev.health.state in (DeviceState.LOST, DeviceState.RECONNECTING), 30, message="lost")
        outlet = eeg_outlet(name, 2)
        wait_for(lambda: dev.health.state == DeviceState.STREAMING, 30, message="found again")
        time.sleep(0.5)
        outlet.push_chunk(np.full((5, 2), 2.0, np.float32))
        wait_for(lambda: run.rows() == 15, 10, message="samples after recovery")
    finally:
        run.stop()
    assert dev.health.reconnects == 1


def test_app_streams_become_lsl_outlets_with_synchronized_times(redis_server: RedisServer, keys: Keys) -> None:
    node = NodeThread(redis_server.url, keys, ["sim:chest"]).start()
    stop = threading.Event()
    bridge = LslOutletBridge(redis_server.url, keys, ["sim-chest-ecg"])
    t = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    t.start()
    try:
        found = pylsl.resolve_bypred("source_id='sensorium:sim-chest-ecg'", 1, 10.0)
        assert found, "our outlet is not visible on LSL"
        inlet = pylsl.StreamInlet(found[0])
        info = inlet.info(5.0)
        assert info.name() == "Simulated chest strap (ECG, HR, HRV) ECG" and info.type() == "ECG"
        assert info.nominal_srate() == 512.0 and info.desc().child_value("attribute") == "ecg"
        inlet.open_stream(5.0)
        samples: list[list[float]] = []
        stamps: list[float] = []
        deadline = time.monotonic() + 15
        while len(samples) < 1024 and time.monotonic() < deadline:
            chunk, ts = inlet.pull_chunk(timeout=0.5)
            samples += chunk
            stamps += ts
        assert len(samples) >= 1024
        ts = np.asarray(stamps)
        assert np.all(np.diff(ts) > 0), "LSL timestamps must increase"
        np.testing.assert_allclose(np.median(np.diff(ts)), 1 / 512.0, rtol=0.01)  # spread at the true spacing
        assert abs(ts[-1] - pylsl.local_clock()) < 2.0  # on this host's LSL clock
        assert bridge.stats["malformed"] == 0
        c = redis_server.client()
        holds = {k.decode(): v.decode() for k, v in c.hgetall(keys.attention("sim-chest-ecg")).items()}
        assert holds[bridge.holder].startswith("high|"), holds
        # session markers reach LSL as one Markers outlet, stamped on this host's LSL clock
        c.hset(keys.sessions, "s-lsl", Session("s-lsl").to_json())
        wait_for(lambda: keys.markers("s-lsl") in bridge.marker_positions, 10, message="marker stream followed")
        found = pylsl.resolve_bypred("source_id='sensorium:markers'", 1, 10.0)
        assert found and found[0].type() == "Markers"
        mk = pylsl.StreamInlet(found[0])
        mk.open_stream(5.0)
        t_marker = host_time() - 0.25
        c.xadd(keys.markers("s-lsl"), {"label": "stimulus 1", "source": "test", "t_host": repr(t_marker),
                                       "t_global": repr(t_marker), "clock": "host", "host": socket.gethostname()})
        sample, stamp = mk.pull_sample(timeout=10.0)
        assert sample == ["stimulus 1"]
        assert abs(stamp - (t_marker - bridge.lsl_offset)) < 1e-3
    finally:
        stop.set()
        t.join(10)
        node.stop()


def test_discovery_lists_streams_but_not_our_own() -> None:
    name = unique("Disc")
    outlet = eeg_outlet(name, 4)  # noqa: F841 (kept alive while discovering)
    ours = pylsl.StreamOutlet(pylsl.StreamInfo("sim-x", "ecg", 1, 10, pylsl.cf_float32, "sensorium:sim-x"))  # noqa: F841
    found = asyncio.run(discover_all(2.0, schemes=["lsl"]))
    mine = [d for d in found if d.uri.startswith(f"lsl:{name}")]
    assert len(mine) == 1 and mine[0].details["channel_count"] == 4 and mine[0].details["type"] == "EEG"
    assert not any("sensorium:" in d.uri for d in found)


@pytest.mark.parametrize(
    ("lsl_type", "attribute"), [("EEG", "eeg"), ("Markers", "marker"), ("Force Plate", "force_plate")]
)
def test_stream_types_map_to_attributes(lsl_type: str, attribute: str) -> None:
    from sensorium_desktop.devices.lsl import attribute_for_type

    assert attribute_for_type(lsl_type) == attribute
