"""The seed library's API on its own Redis keys (issue 17 item 4): ``from sensorium import
SyncEngine`` behaves as the seed's engine for the scenarios of its integration tests, its CLI
and its election, against a real redis-server (a database of its own: the seed's keys have no
prefix)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
from conftest import RedisServer

from sensorium import SyncEngine

DB = 14


@pytest.fixture
def seed(redis_server: RedisServer) -> Iterator[tuple[redis.Redis, str]]:
    c = redis.Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password, db=DB,
                    decode_responses=True)  # fmt: skip
    c.flushdb()
    yield c, f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/{DB}"
    c.flushdb()


def ingest(c: redis.Redis, sensor_id: str, t_local: float, sigma: float, ttl: int = 60) -> None:
    """What the seed's tests and examples/cli.py write."""
    obs = {"sensor_id": sensor_id, "sensor_type": "x", "t_local": t_local, "sigma": sigma, "payload_ref": "mem://t"}
    c.setex(f"obs:{sensor_id}:{int(t_local * 1e9)}", ttl, json.dumps(obs))


def test_the_seed_scenarios(seed: tuple[redis.Redis, str]) -> None:
    c, url = seed
    assert SyncEngine(url, "test-node", 5).step() == []
    ingest(c, "sensor-1", 10.0, 0.01)
    [g] = SyncEngine(url, "test-node", 5).step()
    assert abs(g["t_global"] - 10.0) < 0.1 and g["members"] == [{"sensor_id": "sensor-1", "probability": 1.0}]
    c.flushdb()
    for sid, t, s in (("cam-1", 10.0, 0.01), ("imu-1", 10.02, 0.02), ("mic-1", 9.98, 0.015)):
        ingest(c, sid, t, s)
    [g] = SyncEngine(url, "test-node", 5).step()
    w = [1 / (0.1 + 0.01**2), 1 / (0.1 + 0.02**2), 1 / (0.1 + 0.015**2)]  # the default offset_var 0.1 counts
    expected = (w[0] * 10.0 + w[1] * 10.02 + w[2] * 9.98) / sum(w)
    assert len(g["members"]) == 3 and abs(sum(m["probability"] for m in g["members"]) - 1.0) < 1e-9
    assert abs(g["t_global"] - expected) < 1e-9
    # observations are re-read on every step (the seed never consumes them)
    assert SyncEngine(url, "test-node", 5).step()[0]["t_global"] == g["t_global"]


def test_clock_states_and_the_closer_observation(seed: tuple[redis.Redis, str]) -> None:
    c, url = seed
    c.set("sync:state:late", json.dumps({"offset_mean": -0.5, "offset_var": 0.0001, "drift": 1.0}))
    c.set("sync:state:close", json.dumps({"offset_mean": 0.0, "offset_var": 0.0001, "drift": 1.0}))
    ingest(c, "close", 10.0, 0.01)
    ingest(c, "late", 10.5, 0.01)  # 10.5 - 0.5 = 10.0 on the global clock
    ingest(c, "far", 10.3, 0.01)  # no state: offset 0, variance 0.1
    [g] = SyncEngine(url, "n", 5).step()
    p = {m["sensor_id"]: m["probability"] for m in g["members"]}
    assert abs(g["t_global"] - 10.0) < 1e-3 and p["close"] > p["far"] and p["late"] > p["far"]


def test_only_the_highest_live_node_writes_groups(seed: tuple[redis.Redis, str]) -> None:
    c, url = seed
    ingest(c, "cam", 5.0, 0.01)
    a, b = SyncEngine(url, "node-a", 5), SyncEngine(url, "node-b", 5)
    a.step()  # node-a is alone and master
    assert c.keys("sync:group:*") == ["sync:group:g:5000000000"]
    c.delete("sync:group:g:5000000000")
    b.step()  # node-b > node-a: master now
    a.step()  # node-a returns the group but does not write it
    assert c.keys("sync:group:*") == ["sync:group:g:5000000000"]
    assert json.loads(c.get("sync:group:g:5000000000"))["members"] == [{"sensor_id": "cam", "probability": 1.0}]
    assert c.ttl("election:bully:hb:node-a") <= 5 and c.get("election:bully:hb:node-b") == "1"


def test_malformed_observations_are_skipped_and_counted(seed: tuple[redis.Redis, str]) -> None:
    c, url = seed
    ingest(c, "ok", 1.0, 0.01)
    c.set("obs:bad:1", "{not json")
    c.set("obs:nan:1", json.dumps({"sensor_id": "nan", "t_local": "nan", "sigma": 0.1}))
    engine = SyncEngine(url, "n", 5)
    [g] = engine.step()
    assert [m["sensor_id"] for m in g["members"]] == ["ok"] and engine.skipped == 2


def test_seed_observations_reach_our_engine_once(seed: tuple[redis.Redis, str]) -> None:
    """Scripts writing the seed's ``obs:*`` keys feed our engine too: each key is imported into
    the lab's observations stream exactly once, however many importers run at once."""
    from sensorium_desktop.bus.engine import SyncEngine as OurEngine
    from sensorium_desktop.bus.keys import Keys
    from sensorium_desktop.bus.seed_import import SeedImporter

    c, url = seed
    prefix = f"imp{uuid.uuid4().hex[:6]}"
    for sid, t in (("cam-1", 10.0), ("imu-1", 10.02), ("mic-1", 9.98)):
        ingest(c, sid, t, 0.01)
    c.setex("obs:bad:1", 60, "{not json")
    c.setex("obs:nan:2", 60, json.dumps({"sensor_id": "nan", "t_local": "NaN", "sigma": 0.01}))
    keys = Keys(prefix)
    importers = [SeedImporter(keys) for _ in range(4)]
    plain = redis.Redis.from_url(url)
    threads = [threading.Thread(target=imp.run, args=(plain,)) for imp in importers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(i.stats.imported for i in importers) == 3 and sum(i.stats.malformed for i in importers) == 2
    entries = plain.xrange(keys.observations)
    assert sorted(e[b"sensor"].decode() for _i, e in entries) == ["cam-1", "imu-1", "mic-1"]
    assert {e[b"node"] for _i, e in entries} == {b"seed"}
    assert importers[0].run(plain) == 0  # consumed: a later pass imports nothing again
    # the seed drop-in still re-reads them (its semantics), our engine groups them once
    assert len(SyncEngine(url, "seed-node", 5).step()[0]["members"]) == 3
    ours = OurEngine(url, "our-node", prefix=prefix, use_global_clock=False)
    try:
        ingest(c, "eeg-1", 10.01, 0.01)  # written after the first import: picked up by step()
        groups = ours.step()
        # an observation may be a member of two groups (a membership probability each: the seed
        # has no arrival time, so eeg-1's is the later import moment); each is read once
        observations = sorted({(m["index"], m["sensor_id"]) for g in groups for m in g["members"]})
        assert sorted(sid for _i, sid in observations) == ["cam-1", "eeg-1", "imu-1", "mic-1"]
        assert [i for i, _sid in observations] == [0, 1, 2, 3]
        assert ours.step() == []
        assert ours.seed_importer is not None and ours.seed_importer.stats.imported == 1
    finally:
        ours.close()
    # a mark lives as long as its observation (plus a margin), never forever
    assert 60_000 < plain.pttl(keys.seed_import_mark("obs:cam-1:10000000000")) <= 120_000


def test_the_sync_worker_imports_seed_observations(seed: tuple[redis.Redis, str]) -> None:
    from sensorium_desktop.worker.sync_worker import SyncWorker, WorkerConfig

    c, url = seed
    worker = SyncWorker(WorkerConfig(url, f"w{uuid.uuid4().hex[:6]}", "seed-worker"))
    try:
        worker.refresh_registry()
        ingest(c, "cam-1", 10.0, 0.01)
        ingest(c, "imu-1", 10.02, 0.02)
        worker.import_seed()
        worker.read(block_ms=500)
        assert sorted(o.sensor_id for o in worker.pending) == ["cam-1", "imu-1"]
        assert worker.stats.seed_imported == 2
        worker.import_seed()
        assert worker.read(block_ms=50) == 0 and worker.stats.seed_imported == 2
    finally:
        worker.c.close()
