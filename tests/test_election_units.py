"""Election rules, fencing, checkpoint validation, global clock and SyncEngine in-process."""

from __future__ import annotations

import json
import time

import pytest
import redis
from conftest import RedisServer

from sensorium_desktop import SyncEngine
from sensorium_desktop.bus import checkpoint as cp
from sensorium_desktop.bus.election import Elector, StaleTermError, fenced_exec, read_leader
from sensorium_desktop.bus.globalclock import GlobalClockProbe, read_offsets
from sensorium_desktop.bus.keys import Keys


def test_highest_priority_then_id_leads_and_bullies(rclient: redis.Redis, keys: Keys) -> None:
    a = Elector(keys, "alpha", priority=1, ttl=2.0)
    b = Elector(keys, "bravo", priority=1, ttl=2.0)
    a.tick(rclient)
    assert read_leader(rclient, keys) == ("alpha", 1)
    b.tick(rclient)  # same priority, higher id: bully alpha out
    assert read_leader(rclient, keys) == ("bravo", 2)
    a.tick(rclient)
    assert not a.state.is_leader and a.step_downs == 1
    c = Elector(keys, "charlie", priority=0, ttl=2.0)
    c.tick(rclient)
    assert read_leader(rclient, keys)[0] == "bravo"  # lower priority cannot displace a live leader
    b.resign(rclient)
    c.tick(rclient)
    a.tick(rclient)
    assert read_leader(rclient, keys)[0] == "alpha"  # bravo left: the best live node takes over


def test_dead_leader_is_replaced_after_its_ttl(rclient: redis.Redis, keys: Keys) -> None:
    lead = Elector(keys, "z", priority=5, ttl=0.5)
    other = Elector(keys, "y", priority=1, ttl=0.5)
    lead.tick(rclient)
    other.tick(rclient)
    assert read_leader(rclient, keys)[0] == "z"
    time.sleep(0.7)  # z stops beating
    other.tick(rclient)
    leader, term = read_leader(rclient, keys)
    assert leader == "y" and term == 2


def test_fenced_writes_need_the_current_term(rclient: redis.Redis, keys: Keys) -> None:
    e = Elector(keys, "n1", ttl=5.0)
    e.tick(rclient)
    term = e.state.term
    assert fenced_exec(rclient, keys, "n1", term, [["SET", keys.prefix + ":x", "1"], ["INCR", keys.prefix + ":y"]]) == 2
    assert rclient.get(keys.prefix + ":x") == b"1"
    with pytest.raises(StaleTermError):
        fenced_exec(rclient, keys, "n1", term - 1, [["SET", keys.prefix + ":x", "2"]])
    with pytest.raises(StaleTermError):
        fenced_exec(rclient, keys, "n2", term, [["SET", keys.prefix + ":x", "3"]])
    assert rclient.get(keys.prefix + ":x") == b"1"


def test_checkpoint_majority_and_validation(rclient: redis.Redis, keys: Keys) -> None:
    assert [cp.majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    e = Elector(keys, "lead", ttl=5.0)
    e.tick(rclient)
    body = cp.make_checkpoint(1, e.state.term, "lead", {"s": {"offset_mean": 1.0, "drift": 0.0}}, {}, 0.0)
    cp.propose(rclient, keys, "lead", e.state.term, body)
    assert cp.validate(rclient, keys, body, "lead", e.state.term) == ""
    assert "current leader" in cp.validate(rclient, keys, body, "other", e.state.term)
    tampered = {**body, "positions": {"s": 5}}
    assert cp.validate(rclient, keys, tampered, "lead", e.state.term) == "digest mismatch"
    beyond = cp.make_checkpoint(2, e.state.term, "lead", {}, {"ghost": 3}, 0.0)
    assert "beyond its stream" in cp.validate(rclient, keys, beyond, "lead", e.state.term)
    res = cp.try_commit(rclient, keys, "lead", e.state.term, body, live=3)
    assert not res.committed and res.needed == 2
    cp.acknowledge(rclient, keys, body["id"], "f1")
    res = cp.try_commit(rclient, keys, "lead", e.state.term, body, live=3)
    assert res.committed and res.acks == ["f1", "lead"]
    stored = json.loads(rclient.get(keys.checkpoint_committed))
    assert stored["live_nodes"] == 3 and stored["acks"] == ["f1", "lead"]
    assert "older than the committed" in cp.validate(rclient, keys, body, "lead", e.state.term)


def test_global_clock_probe_against_redis_time(rclient: redis.Redis, keys: Keys) -> None:
    probe = GlobalClockProbe(burst=5)
    for _ in range(3):
        probe.probe(rclient)
    est = probe.publish(rclient, keys, "n1")
    assert est is not None and est.rtt > 0 and est.uncertainty > 0
    assert abs(est.offset) < 0.05  # same machine: host and Redis clocks agree to a few ms
    assert est.uncertainty < est.rtt
    assert read_offsets(rclient, keys, ["n1", "nope"])["n1"].offset == pytest.approx(est.offset)


def test_sync_engine_api(redis_server: RedisServer, keys: Keys) -> None:
    with SyncEngine(redis_server.url, node_id="engine-1", heartbeat_ttl=5, prefix=keys.prefix) as engine:
        engine.configure_sensor("camera-1", fixed_latency=0.03)
        base = 1_800_000_000.0
        for k in range(20):
            engine.ingest("camera-1", "camera", 100.0 + k, sigma=0.005, t_arrival=base + k + 0.031)
            engine.ingest("imu-1", "imu", 5000.0 + k, sigma=0.001, t_arrival=base + k + 0.0005)
        groups = engine.step()
        assert engine.is_leader
        assert len(groups) == 20 and all(g["term"] == 1 for g in groups)
        assert all({m["sensor_id"] for m in g["members"]} == {"camera-1", "imu-1"} for g in groups)
        assert {"t_global", "term", "members", "sigma", "node"} <= set(groups[0])
        assert {"sensor_id", "probability", "sensor_type", "t_local"} <= set(groups[0]["members"][0])
        assert engine.step() == []
        with pytest.raises(ValueError):
            engine.ingest("bad id", "camera", 1.0)
        with pytest.raises(ValueError, match="finite"):
            engine.ingest("camera-1", "camera", float("nan"))
    c = redis_server.client()
    written = c.xrange(keys.groups)
    assert len(written) == 20 and all(f[b"node"] == b"engine-1" and f[b"term"] == b"1" for _, f in written)


def test_a_slice_never_cuts_through_the_observations_of_one_event() -> None:
    import numpy as np

    from sensorium_desktop.worker.sync_worker import MAX_HOLD_S, cut_between_events

    eyes = (np.array([10.0, 13.0]), np.array([0.0025, 0.0025]))
    pose = (np.array([10.021, 13.02]), np.array([0.0167, 0.0167]))  # the same flashes, a frame later
    times, sigmas = [eyes[0], pose[0]], [eyes[1], pose[1]]
    assert cut_between_events(times, sigmas, 10.01) == 10.0  # the whole first flash waits
    assert cut_between_events(times, sigmas, 11.5) == 11.5  # a gap: cut where asked
    assert cut_between_events(times, sigmas, 20.0) == 20.0
    dense = [np.arange(0.0, 20.0, 0.01)]  # events closer than 6 sigma for 20 s: held back at most MAX_HOLD_S
    assert cut_between_events(dense, [np.full(2000, 0.01)], 15.005) == 15.005
    assert MAX_HOLD_S < 15.0
