"""The node process: simulated lab → batching → Redis streams, read back bit-exact."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import RedisServer, sensorium, wait_for

from sensorium_desktop.bus.attention import hold_for_recording
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.registry import list_devices, list_sensors
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.backpressure import Attention
from sensorium_desktop.core.samples import SampleBatch
from sensorium_desktop.worker.context import NodeConfig
from sensorium_desktop.worker.node import Node


def _run_node(cfg: NodeConfig, seconds: float) -> tuple[Node, list[SampleBatch]]:
    published: list[SampleBatch] = []

    async def main() -> Node:
        node = Node(cfg)
        original = node.acquisition.publisher.publish

        def spy(batch: SampleBatch):
            published.append(batch)
            return original(batch)

        node.acquisition.batcher.emit = spy
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await node.run(stop)
        return node

    return asyncio.run(main()), published


def test_node_to_redis_round_trip_is_bit_exact(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    cfg = NodeConfig(redis_server.url, keys, "n1", ["sim:lab"], spill_dir=tmp_path, attention_default=Attention.HIGH)
    node, published = _run_node(cfg, 3.0)
    c = redis_server.client()
    sensors = {s.sensor_id: s for s in list_sensors(c, keys)}
    assert len(sensors) == 13 and all(s.node_id == "n1" for s in sensors.values())
    assert {d.device_id for d in list_devices(c, keys)} == {
        f"sim-{k}" for k in ("chest", "belt", "wrist", "eyes", "pose", "room")
    }
    by_sensor: dict[str, list[SampleBatch]] = {}
    for b in published:
        by_sensor.setdefault(b.sensor_id, []).append(b)
    assert {"sim-chest-ecg", "sim-eyes-eye_gaze", "sim-pose-skeleton", "sim-room-temperature"} <= set(by_sensor)
    for sid, sent in by_sensor.items():
        entries = read_all(c, keys, sid)
        assert [e.batch.seq for e in entries] == list(range(len(sent))), sid
        got = SampleBatch.concat([e.batch for e in entries])
        want = SampleBatch.concat(sent)
        assert got.values.tobytes() == want.values.tobytes(), sid
        assert got.t_arrival.tobytes() == want.t_arrival.tobytes(), sid
        assert (got.t_local is None) == (want.t_local is None)
        if want.t_local is not None:
            assert got.t_local.tobytes() == want.t_local.tobytes(), sid
        idx = [e.batch.first_index for e in entries]
        assert idx == list(np.cumsum([0] + [len(e.batch) for e in entries[:-1]])), sid
    ecg = SampleBatch.concat(by_sensor["sim-chest-ecg"])
    assert len(ecg) > 1200  # ~3 s at 512 Hz (more when a loaded machine stops the node late)
    assert node.acquisition.publisher.stats["published_batches"] == len(published)


def test_backpressure_configs_follow_attention(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    c = redis_server.client()
    c.hset(keys.attention("sim-room-temperature"), "viewer1", "high|9999999999")
    c.hset(keys.attention("sim-wrist-imu"), "viewer1", "none|9999999999")
    c.hset(keys.attention("sim-belt-respiration"), "old-viewer", "high|1000")  # expired: ignored
    hold_for_recording(c, keys, "S1", ["sim-wrist-imu"])  # a hidden but recorded sensor
    cfg = NodeConfig(redis_server.url, keys, "n2", ["sim:room", "sim:belt", "sim:wrist"], spill_dir=tmp_path)
    _node, published = _run_node(cfg, 2.5)
    room = {k.decode(): json.loads(v) for k, v in c.hgetall(keys.backpressure("sim-room-temperature")).items()}
    belt = {k.decode(): json.loads(v) for k, v in c.hgetall(keys.backpressure("sim-belt-respiration")).items()}
    assert room["attention_level"] == "high" and room["recommended_batch_size"] == 1
    assert belt["attention_level"] == "none" and belt["recommended_batch_window"] == 5000
    wrist = {k.decode(): json.loads(v) for k, v in c.hgetall(keys.backpressure("sim-wrist-imu")).items()}
    assert wrist["attention_level"] == "medium" and not wrist["paused"]
    assert len(room) == 8
    # nothing is lost at shutdown even with a 5 s window: the batcher flushes everything
    assert sum(len(b) for b in published if b.sensor_id == "sim-belt-respiration") > 25


def test_node_cli_subprocess(redis_server: RedisServer, keys: Keys, data_dir: Path) -> None:
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir))
    out = subprocess.run(
        sensorium("node", "--prefix", keys.prefix, "--node-id", "cli-node", "--device", "sim:room",
                  "--device", "sim:eyes", "--duration", "2.5", "--no-sync-worker"),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    c = redis_server.client()
    assert c.xlen(keys.stream("sim-eyes-eye_gaze")) > 0
    status = subprocess.run(
        sensorium("status", "--prefix", keys.prefix, "--json"), env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert "cli-node" in data["nodes"]
    assert {s["sensor_id"] for s in data["sensors"]} >= {"sim-eyes-eye_gaze", "sim-room-temperature"}
    text = subprocess.run(sensorium("status", "--prefix", keys.prefix), env=env, capture_output=True, text=True)
    assert "sim-eyes-eye_gaze" in text.stdout and "cli-node" in text.stdout


def test_bad_device_uri_is_reported_not_fatal(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    cfg = NodeConfig(redis_server.url, keys, "n3", ["sim:room", "sim:toaster", "nonsense"], spill_dir=tmp_path)
    node, _published = _run_node(cfg, 1.5)
    assert [u for u, _ in node.acquisition.device_errors] == ["sim:toaster", "nonsense"]
    tele = json.loads(redis_server.client().get(keys.telemetry("n3")))
    assert len(tele["device_errors"]) == 2


PARENT = """
import multiprocessing, sys, time

def stuck():
    from sensorium_desktop.worker.sync_worker import die_with_parent
    die_with_parent()
    while True:  # busy, never looking at its parent (as a worker caught in a loop was)
        pass

if __name__ == "__main__":
    proc = multiprocessing.get_context("spawn").Process(target=stuck, daemon=True)
    proc.start()
    print(proc.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_busy_worker_process_ends_with_its_node(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=str(Path(__file__).resolve().parents[1]))  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.0)
    assert psutil.pid_exists(child)
    parent.kill()
    parent.wait()
    wait_for(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, 5,
             message="the worker to end with its parent")  # fmt: skip
