"""The Redis spine with real processes: Redis restarts, worker crashes, failover, fencing,
checkpoint majorities, and the seed's deterministic experiment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from conftest import RedisServer, sensorium, wait_for

from sensorium_desktop.bus.election import StaleTermError, fenced_exec, read_leader
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.status import Telemetry
from sensorium_desktop.recording.xdf import xdf_stream_key


class NodeProc:
    """A real ``sensorium node`` subprocess."""

    def __init__(self, server: RedisServer, keys: Keys, node_id: str, data: Path, *args: str) -> None:
        self.node_id = node_id
        self.log = data / f"{node_id}.log"
        env = dict(os.environ, SENSORIUM_REDIS_URL=server.url, SENSORIUM_DATA_DIR=str(data / node_id),
                   SENSORIUM_ALLOWED_ROOTS=str(data.parent))  # sessions name folders beside  # fmt: skip
        self.fh = open(self.log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            sensorium("node", "--prefix", keys.prefix, "--node-id", node_id, *args),
            env=env, stdout=self.fh, stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def text(self) -> str:
        self.fh.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            with _suppress():
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for child in _orphans(self.node_id):
            child.kill()
        self.fh.close()
        return self.proc.returncode


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _orphans(node_id: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "multiprocessing" in cmd and node_id in cmd:
            out.append(p)
    return out


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[NodeProc]]:
    started: list[NodeProc] = []
    yield started
    for n in started:
        n.stop()


def _leader(c: redis.Redis, keys: Keys) -> tuple[str, int]:
    return read_leader(c, keys)


def test_redis_killed_and_restarted_while_streaming_leaves_no_gap(
    private_server: RedisServer, keys: Keys, tmp_path: Path, nodes: list[NodeProc]
) -> None:
    node = NodeProc(private_server, keys, "n-a", tmp_path, "--device", "sim:chest", "--device", "sim:eyes",
                    "--no-sync-worker")  # fmt: skip
    nodes.append(node)
    c = private_server.client()
    wait_for(lambda: c.xlen(keys.stream("sim-chest-ecg")) > 5, timeout=30, message="streaming")
    time.sleep(1.5)
    private_server.kill(signal.SIGKILL)  # AOF everysec: up to a second of acknowledged writes is lost
    time.sleep(2.0)
    private_server.start()
    c = private_server.client()
    time.sleep(4.0)
    assert node.stop() == 0, node.text()[-2000:]
    for sid in ("sim-chest-ecg", "sim-chest-hr", "sim-eyes-eye_gaze", "sim-eyes-trigger"):
        entries = read_all(c, keys, sid)
        seqs = [e.batch.seq for e in entries]
        assert seqs == list(range(len(seqs))), f"{sid}: gaps or duplicates after the Redis restart"
        idx = [e.batch.first_index for e in entries]
        sizes = [len(e.batch) for e in entries]
        assert all(idx[i + 1] == idx[i] + sizes[i] for i in range(len(idx) - 1)), sid
    ecg = sum(len(e.batch) for e in read_all(c, keys, "sim-chest-ecg"))
    assert ecg > 512 * 6  # ~9 s of ECG despite 2 s without Redis


def test_worker_sigkill_is_restarted_without_gaps_or_duplicate_groups(
    redis_server: RedisServer, keys: Keys, tmp_path: Path, nodes: list[NodeProc]
) -> None:
    node = NodeProc(redis_server, keys, "n-w", tmp_path, "--device", "sim:eyes", "--device", "sim:pose")
    nodes.append(node)
    c = redis_server.client()

    def worker_pid() -> int | None:
        raw = c.get(keys.worker_telemetry("n-w"))
        return json.loads(raw)["pid"] if raw else None

    wait_for(lambda: c.xlen(keys.groups) >= 2, timeout=40, message="first groups")
    old = worker_pid()
    assert old and psutil.pid_exists(old)
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: (worker_pid() or old) != old, timeout=10, message="worker restart")
    assert time.monotonic() - killed_at < 4.0  # restarted well within 2 s; telemetry lags by up to 1 s

    def restarts() -> int:
        return (Telemetry.from_json(c.get(keys.telemetry("n-w"))) or Telemetry()).state.worker_restarts

    wait_for(lambda: restarts() >= 1, timeout=5, message="the node reports the restart")
    groups_before = c.xlen(keys.groups)
    wait_for(lambda: c.xlen(keys.groups) >= groups_before + 3, timeout=40, message="groups after the restart")
    node.stop()
    entries = c.xrange(keys.groups)
    seen: dict[str, int] = {}
    slices = []
    for _, f in entries:
        slices.append(float(f[b"slice_end"]))
        for m in json.loads(f[b"members"]):
            if m["probability"] > 0.5:
                key = f"{m['sensor_id']}/{m['obs']}"
                seen[key] = seen.get(key, 0) + 1
    assert all(v == 1 for v in seen.values()), "an observation was grouped twice"
    assert slices == sorted(slices)
    # every flash both cameras saw before the last slice is in a group (no gap across the crash)
    last = max(slices)
    for sid, source in (("sim-eyes-trigger", "sim-eyes-eye_gaze"), ("sim-pose-trigger", "sim-pose-skeleton")):
        clock = {k.decode(): v.decode() for k, v in c.hgetall(keys.clock(source)).items()}
        for e in read_all(c, keys, sid):
            for row, t_local in enumerate(e.batch.t_local.tolist()):
                t_glob = t_local + float(clock["alpha"]) + float(clock["beta"]) * (t_local - float(clock["x0"]))
                if t_glob < last - 0.05:
                    key = f"{sid}/{e.batch.seq}:{row}"
                    if key not in seen:
                        where = [f for _, f in entries if f'"{e.batch.seq}:{row}"' in f[b"members"].decode()]
                        pytest.fail(f"{sid} flash {e.batch.seq}:{row} was never grouped (entries naming it: {where})")


def test_leader_sigkill_fails_over_within_ttl_plus_one_second(
    redis_server: RedisServer, keys: Keys, tmp_path: Path, nodes: list[NodeProc]
) -> None:
    ttl = 2.0
    for i, prio in ((1, "1"), (2, "2"), (3, "3")):
        nodes.append(NodeProc(redis_server, keys, f"n{i}", tmp_path, "--priority", prio, "--heartbeat-ttl", str(ttl),
                              "--no-sync-worker"))  # fmt: skip
    c = redis_server.client()
    wait_for(lambda: _leader(c, keys)[0] == "n3", timeout=30, message="n3 (highest priority) to lead")
    _, term = _leader(c, keys)
    nodes[2].signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: _leader(c, keys)[0] == "n2", timeout=ttl + 5, interval=0.02, message="failover to n2")
    took = time.monotonic() - killed
    assert took <= ttl + 1.0, f"failover took {took:.2f} s"
    assert _leader(c, keys)[1] > term


def test_frozen_leader_cannot_write_and_steps_down(
    redis_server: RedisServer, keys: Keys, tmp_path: Path, nodes: list[NodeProc]
) -> None:
    ttl = 2.0
    nodes.append(NodeProc(redis_server, keys, "f1", tmp_path, "--priority", "1", "--heartbeat-ttl", str(ttl),
                          "--device", "sim:eyes?participant=2", "--device", "sim:pose?participant=2"))  # fmt: skip
    nodes.append(NodeProc(redis_server, keys, "f2", tmp_path, "--priority", "2", "--heartbeat-ttl", str(ttl),
                          "--checkpoint-interval", "1"))  # fmt: skip
    c = redis_server.client()
    wait_for(lambda: _leader(c, keys)[0] == "f2", timeout=30, message="f2 to lead")
    _, old_term = _leader(c, keys)
    nodes[1].signal(signal.SIGSTOP)
    wait_for(lambda: _leader(c, keys)[0] == "f1", timeout=ttl + 5, message="f1 to take over")
    _, new_term = _leader(c, keys)
    took_over_ms = float(c.hget(keys.leader, "since")) * 1000  # f2's term is stale from here on
    assert new_term > old_term
    # a write carrying the frozen leader's term is refused
    with pytest.raises(StaleTermError):
        fenced_exec(c, keys, "f2", old_term, [["SET", keys.checkpoint_committed, "{}"]])
    wait_for(lambda: c.xlen(keys.groups) > 0, timeout=30, message="groups from the new leader")
    f1_log_frozen = nodes[0].text()
    nodes[1].signal(signal.SIGCONT)
    wait_for(lambda: "steps down" in nodes[1].text(), timeout=15, message="f2 to step down")
    # higher priority: it may lead again, but only in a new term
    wait_for(lambda: _leader(c, keys)[0] == "f2", timeout=15, message="f2 to lead again")
    assert _leader(c, keys)[1] > new_term
    for eid, f in c.xrange(keys.groups):  # (before the freeze f2 led legitimately in old_term)
        written_ms = int(eid.split(b"-")[0])
        stale = f[b"node"] == b"f2" and int(f[b"term"]) == old_term and written_ms > took_over_ms
        assert not stale, "stale leader wrote a group after it was replaced"
    # the legitimate leader was never refused while f2 was frozen (writes in flight when it
    # loses the lead, at start-up or when f2 returns, are refused, as they must be)
    assert f"leads in term {new_term}" in f1_log_frozen
    assert "STALE_TERM" not in f1_log_frozen.split(f"leads in term {new_term}", 1)[1]


def test_checkpoint_commits_only_with_a_majority(
    redis_server: RedisServer, keys: Keys, tmp_path: Path, nodes: list[NodeProc]
) -> None:
    ttl = 4.0
    for i, prio in ((1, "1"), (2, "2"), (3, "3")):
        nodes.append(NodeProc(redis_server, keys, f"c{i}", tmp_path, "--priority", prio, "--heartbeat-ttl", str(ttl),
                              "--checkpoint-interval", "0.5", "--no-sync-worker"))  # fmt: skip
    c = redis_server.client()

    def committed() -> dict:
        raw = c.get(keys.checkpoint_committed)
        return json.loads(raw) if raw else {}

    def majority_of_three() -> bool:
        cp = committed()
        return cp.get("live_nodes") == 3 and len(cp.get("acks", [])) >= 2

    wait_for(majority_of_three, timeout=40, message="a checkpoint ACKed by 2 of 3 live nodes")
    nodes[0].signal(signal.SIGSTOP)
    nodes[1].signal(signal.SIGSTOP)
    stopped = time.monotonic()
    frozen_id = committed()["id"]
    time.sleep(0.6)
    frozen_id = committed()["id"]  # a commit already in flight may still land
    while time.monotonic() - stopped < ttl - 1.0:
        cp = committed()
        assert cp["id"] == frozen_id, "committed without a majority while 3 nodes were live"
        time.sleep(0.1)
    # once their heartbeats expire only c3 is live: a majority of one
    wait_for(lambda: committed().get("live_nodes") == 1, timeout=ttl + 6, message="commit with 1 live node")
    cp = committed()
    assert cp["acks"] == ["c3"]
    nodes[0].signal(signal.SIGCONT)
    nodes[1].signal(signal.SIGCONT)
    wait_for(majority_of_three, timeout=20, message="majority commits with 3 live nodes again")
    status = subprocess.run(sensorium("status", "--prefix", keys.prefix), capture_output=True, text=True,
                            env=dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url), timeout=60)  # fmt: skip
    assert "last committed checkpoint" in status.stdout and "c3" in status.stdout and "LEADER" in status.stdout


def test_experiment_is_deterministic(redis_server: RedisServer) -> None:
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url)
    cmd = sensorium("experiment", "--seed", "42", "--json")
    runs = [subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    result = json.loads(runs[0].stdout)
    main = max(result["groups"], key=lambda g: len(g["members"]))
    assert {m["sensor_id"] for m in main["members"]} == {"camera-1", "camera-2", "imu-1", "mic-1"}
    assert all(m["probability"] > 0.9 for m in main["members"])
    assert abs(main["t_global"] - result["event_time"]) < 0.002
    other = subprocess.run(sensorium("experiment", "--seed", "7", "--json"), env=env, capture_output=True, text=True)
    assert other.stdout != runs[0].stdout


def test_ingest_and_sync_cli(redis_server: RedisServer, keys: Keys) -> None:
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url)
    base = ["--prefix", keys.prefix]
    for args in (["camera-1", "camera", "10.5", "--sigma", "0.01", "--t-arrival", "1000.0"],
                 ["imu-1", "imu", "20.5", "--sigma", "0.002", "--t-arrival", "1000.004"]):  # fmt: skip
        out = subprocess.run(sensorium("ingest", *args, *base), env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    out = subprocess.run(sensorium("sync", "--json", *base), env=env, capture_output=True, text=True, timeout=60)
    groups = json.loads(out.stdout)
    assert sum(len(g["members"]) for g in groups) >= 2 and all(g["term"] >= 1 for g in groups)
    again = subprocess.run(sensorium("sync", *base), env=env, capture_output=True, text=True, timeout=60)
    assert "no new observations" in again.stdout
    bad = subprocess.run(sensorium("ingest", "bad id", "camera", "1", *base), env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "sensor id" in bad.stderr


@pytest.mark.slow
def test_soak_repeated_failovers(redis_server: RedisServer, keys: Keys, tmp_path: Path, nodes: list[NodeProc]) -> None:
    ttl = 2.0
    for i in range(3):
        nodes.append(NodeProc(redis_server, keys, f"s{i}", tmp_path, "--priority", str(i), "--heartbeat-ttl", str(ttl),
                              "--no-sync-worker"))  # fmt: skip
    c = redis_server.client()
    for _ in range(5):
        wait_for(lambda: _leader(c, keys)[0] == "s2", timeout=30, message="s2 leads")
        nodes[2].signal(signal.SIGSTOP)
        wait_for(lambda: _leader(c, keys)[0] == "s1", timeout=ttl + 3, message="failover")
        nodes[2].signal(signal.SIGCONT)


def test_recording_survives_every_failure(
    private_server: RedisServer, keys: Keys, tmp_path: Path, nodes: list[NodeProc]
) -> None:
    """One recording (node B records; node A leads) through a sync-worker SIGKILL, a Redis
    SIGKILL, a frozen leader (failover and back) and a SIGKILL of the recording node:
    every batch of every sensor is in the spool, the export reads back with pyxdf."""
    import numpy as np
    import pyxdf

    from sensorium_desktop.bus.sessions import Session
    from sensorium_desktop.recording.export import export_recording
    from sensorium_desktop.recording.reader import load_recording

    ttl = 2.0
    a = NodeProc(private_server, keys, "soak-a", tmp_path, "--priority", "2", "--heartbeat-ttl", str(ttl),
                 "--device", "sim:chest", "--device", "sim:pose")  # fmt: skip
    b_args = ("--priority", "1", "--heartbeat-ttl", str(ttl), "--device", "sim:eyes", "--no-sync-worker")
    b = NodeProc(private_server, keys, "soak-b", tmp_path, *b_args)
    nodes += [a, b]
    c = private_server.client()
    wait_for(lambda: _leader(c, keys)[0] == "soak-a", timeout=30, message="A leads")
    wait_for(lambda: c.xlen(keys.stream("sim-eyes-eye_gaze")) > 5 and c.xlen(keys.groups) > 0, 40, message="data")
    sensors = ["sim-chest-ecg", "sim-pose-trigger", "sim-eyes-eye_gaze", "sim-eyes-trigger"]
    s = Session("soak", sensors=sensors, directory=str(tmp_path / "soak"), state="recording", recorder="soak-b",
                started=time.time())  # fmt: skip
    c.hset(keys.sessions, "soak", s.to_json())

    def samples() -> int:
        return int(c.hget(keys.recording("soak"), "samples") or 0)

    wait_for(lambda: samples() > 1000, 30, message="recording")
    worker = json.loads(c.get(keys.worker_telemetry("soak-a")))["pid"]
    os.kill(worker, signal.SIGKILL)  # 1. the sync worker crashes
    time.sleep(4.0)
    private_server.kill(signal.SIGKILL)  # 2. Redis dies (AOF everysec: its last second is gone)
    time.sleep(2.0)
    private_server.start()
    c = private_server.client()
    wait_for(lambda: samples() > 0, 30, message="recorder back after the Redis restart")
    time.sleep(3.0)
    a.signal(signal.SIGSTOP)  # 3. the leader freezes: B takes over, then A comes back
    wait_for(lambda: _leader(c, keys)[0] == "soak-b", timeout=ttl + 5, message="failover to B")
    time.sleep(2.0)
    a.signal(signal.SIGCONT)
    wait_for(lambda: _leader(c, keys)[0] == "soak-a", timeout=ttl + 10, message="A leads again")
    before = samples()
    b.signal(signal.SIGKILL)  # 4. the recording node dies and comes back
    b.proc.wait(10)
    (tmp_path / "b2").mkdir()
    b2 = NodeProc(private_server, keys, "soak-b", tmp_path / "b2", *b_args)
    nodes.append(b2)
    wait_for(lambda: samples() > before + 500, 40, message="recorder resumed on the restarted node")
    raw = c.hget(keys.sessions, "soak")
    s = Session.from_json(raw) if raw else s
    s.state, s.stopped = "stopped", time.time()
    c.hset(keys.sessions, "soak", s.to_json())
    wait_for(lambda: c.hget(keys.recording("soak"), "state") == b"complete", 40, message="complete")
    rec = load_recording(tmp_path / "soak")
    for sid in sensors:
        seqs = rec.sensors[sid].batch_seq
        assert seqs.size and np.array_equal(seqs, np.arange(seqs[0], seqs[-1] + 1)), f"{sid}: gap in the recording"
    assert rec.groups, "time slices recorded"
    out = export_recording(tmp_path / "soak", "xdf", tmp_path / "soak.xdf").files[0]
    streams, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)
    counts = {xdf_stream_key(st): len(st["time_stamps"]) for st in streams}
    assert all(counts[sid] == len(rec.sensors[sid]) for sid in sensors)
