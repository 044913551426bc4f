"""Node components beside acquisition: election, global clock, checkpoints, sync worker, recorder.

Each component is ``factory(ctx) -> coroutine function(stop_event)`` (``ctx``: the node's
:class:`~.context.NodeContext`, nothing more of the node), named by an entry point
in the ``sensorium_desktop.components`` group (:data:`COMPONENTS`; these, the LabRecorder
remote control, Pupil Remote and the network ingest are registered that way, as a lab's own
component would be). The node runs every one, each supervised (restarted after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import time
from dataclasses import asdict
from pathlib import Path

import redis

from .. import paths
from ..bus import checkpoint as cp
from ..bus.connection import client as make_client
from ..bus.election import Elector, StaleTermError, fenced_exec
from ..bus.globalclock import GlobalClockProbe
from ..bus.registry import list_sensors
from ..bus.sessions import Session
from ..core.ids import InvalidIdError, validate_id
from ..core.timemap import HostOffset, global_to_host
from ..paths import confine
from ..plugins import PluginRegistry
from ..recording.recorder import SessionRecorder
from ..recording.spool import SpoolError, read_session_file
from .context import Component, NodeContext, Run
from .sync_worker import WorkerConfig, worker_main

log = logging.getLogger(__name__)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def election(node: NodeContext) -> Run:
    """Heartbeats and bully election; keeps ``node.elector.state`` current."""
    info = {"pid": node.pid, "host": node.hostname}
    elector = node.elector = Elector(node.keys, node.node_id, node.config.priority, node.config.heartbeat_ttl, info)

    async def run(stop: asyncio.Event) -> None:
        c = make_client(node.config.redis_url, timeout=2.0, retries=0)
        term_with_reference = 0
        try:
            while not stop.is_set():
                try:
                    state = await asyncio.to_thread(elector.tick, c)
                    node.state.leader, node.state.term, node.state.is_leader = state.leader, state.term, state.is_leader
                    if state.is_leader and state.term != term_with_reference:
                        ref = {"reference": "redis-time", "leader": node.node_id, "term": str(state.term),
                               "since": repr(time.time())}  # fmt: skip
                        hset: list[object] = ["HSET", node.keys.global_clock, *[x for kv in ref.items() for x in kv]]
                        await asyncio.to_thread(fenced_exec, c, node.keys, node.node_id, state.term, [hset])
                        term_with_reference = state.term
                except StaleTermError as exc:
                    log.warning("node %s: %s", node.node_id, exc)
                except (redis.RedisError, OSError) as exc:
                    node.state.election_error = str(exc)
                    log.debug("election tick failed: %s", exc)
                await _sleep(stop, elector.check_interval)
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await asyncio.to_thread(elector.resign, c)
            c.close()

    return run


def global_clock(node: NodeContext) -> Run:
    """Round-trip probes against Redis TIME every 5 s; publishes the host offset."""
    probe = GlobalClockProbe()
    node.clock_probe = probe

    async def run(stop: asyncio.Event) -> None:
        c = make_client(node.config.redis_url, timeout=2.0, retries=0)
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(probe.probe, c)
                    est = await asyncio.to_thread(probe.publish, c, node.keys, node.node_id)
                    if est is not None:
                        st = node.state
                        st.host_offset_s, st.host_offset_rtt_s, st.host_offset_uncertainty_s = (
                            est.offset, est.rtt, est.uncertainty)  # fmt: skip
                except (redis.RedisError, OSError) as exc:
                    log.debug("clock probe failed: %s", exc)
                await _sleep(stop, probe.next_interval() if probe.samples else 0.2)
        finally:
            c.close()

    return run


def checkpoints(node: NodeContext) -> Run:
    """Leader: propose a checkpoint every ``checkpoint_interval`` s and commit it on a
    majority of live nodes. Followers: validate proposals and acknowledge them."""

    async def run(stop: asyncio.Event) -> None:
        c = make_client(node.config.redis_url, timeout=2.0, retries=0)
        seq = 0
        next_proposal = time.monotonic() + node.config.checkpoint_interval
        acked: set[str] = set()
        try:
            while not stop.is_set():
                try:
                    st = node.elector.state if node.elector else None
                    if st and st.is_leader and time.monotonic() >= next_proposal:
                        next_proposal = time.monotonic() + node.config.checkpoint_interval
                        seq = await asyncio.to_thread(_lead_checkpoint, node, c, st.term, seq)
                    elif st and not st.is_leader and st.leader:
                        await asyncio.to_thread(_follow_checkpoint, node, c, st.leader, st.term, acked)
                except StaleTermError as exc:
                    log.warning("node %s: checkpoint rejected: %s", node.node_id, exc)
                except (redis.RedisError, OSError) as exc:
                    log.debug("checkpoint step failed: %s", exc)
                await _sleep(stop, 0.25)
        finally:
            c.close()

    return run


def _lead_checkpoint(node: NodeContext, c: redis.Redis, term: int, seq: int) -> int:
    committed = cp.read_json(c, node.keys.checkpoint_committed)
    if seq == 0 and committed:
        seq = int(committed.get("seq", 0))
        log.info("node %s leads from committed checkpoint %s", node.node_id, committed.get("id"))
    seq += 1
    sensors = list_sensors(c, node.keys)
    pipe = c.pipeline(transaction=False)
    for s in sensors:
        pipe.hgetall(node.keys.clock(s.sensor_id))
    clocks = {}
    for s, h in zip(sensors, pipe.execute(), strict=True):
        if h:
            clocks[s.sensor_id] = {k.decode(): _num(v.decode()) for k, v in h.items()}
    tele = c.get(node.keys.worker_telemetry(node.node_id))
    positions = json.loads(tele).get("positions", {}) if tele else {}
    cursor_raw = c.get(node.keys.groups_cursor)
    sessions = {k.decode(): v.decode() for k, v in c.hgetall(node.keys.sessions).items()}
    body = cp.make_checkpoint(seq, term, node.node_id, clocks, positions, float(cursor_raw or 0.0), sessions)
    cp.propose(c, node.keys, node.node_id, term, body)
    deadline = time.monotonic() + max(1.0, node.config.heartbeat_ttl / 2)
    live = max(1, len(node.elector.state.live)) if node.elector else 1
    while True:
        res = cp.try_commit(c, node.keys, node.node_id, term, body, live)
        if res.committed:
            node.state.checkpoint_id, node.state.checkpoint_acks = str(body["id"]), sorted(res.acks)
            node.state.checkpoint_live = live
            node.counters["checkpoints_committed"] = node.counters.get("checkpoints_committed", 0) + 1
            return seq
        if time.monotonic() > deadline:
            node.counters["checkpoints_uncommitted"] = node.counters.get("checkpoints_uncommitted", 0) + 1
            log.warning("checkpoint %s not committed: %d/%d acks of %d live nodes", body["id"], len(res.acks),
                        res.needed, live)  # fmt: skip
            return seq
        time.sleep(0.05)


def _follow_checkpoint(node: NodeContext, c: redis.Redis, leader: str, term: int, acked: set[str]) -> None:
    proposal = cp.read_json(c, node.keys.checkpoint_proposed)
    if not proposal or proposal.get("id") in acked:
        return
    reason = cp.validate(c, node.keys, proposal, leader, term)
    acked.add(proposal["id"])
    if reason:
        node.counters["checkpoints_refused"] = node.counters.get("checkpoints_refused", 0) + 1
        log.warning("node %s refuses checkpoint %s: %s", node.node_id, proposal.get("id"), reason)
        return
    cp.acknowledge(c, node.keys, proposal["id"], node.node_id)


def _num(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def sync_worker(node: NodeContext) -> Run:
    """Run the sync worker as a spawned process; restart it within 2 s if it dies."""

    async def run(stop: asyncio.Event) -> None:
        if not node.config.sync_worker:
            return
        ctx = multiprocessing.get_context("spawn")
        cfg = WorkerConfig(node.config.redis_url, node.keys.prefix, node.node_id, parent_pid=node.pid,
                           log_level=logging.getLevelName(logging.getLogger().level))  # fmt: skip
        proc = None
        restarts = 0
        try:
            while not stop.is_set():
                if proc is None or not proc.is_alive():
                    if proc is not None:
                        restarts += 1
                        log.error("sync worker died (exit %s); restart %d", proc.exitcode, restarts)
                    proc = ctx.Process(target=worker_main, args=(asdict(cfg),), name=f"sync-worker-{node.node_id}",
                                       daemon=True)  # fmt: skip
                    proc.start()
                    node.state.worker_pid, node.state.worker_restarts = proc.pid, restarts
                await _sleep(stop, 0.2)
        finally:
            if proc is not None and proc.is_alive():
                proc.terminate()
                await asyncio.to_thread(proc.join, 5.0)
                if proc.is_alive():
                    proc.kill()

    return run


def room_light(node: NodeContext) -> Run:
    """Light the simulated room of this process with the flashes sync checks present (read
    from the bus, global → this host's time); real devices see the real screen instead."""
    from ..bus.connection import async_client
    from ..bus.synccheck import read_flashes
    from ..devices.simulated import ROOM_LIGHT

    async def run(stop: asyncio.Event) -> None:
        c = async_client(node.config.redis_url)
        after = "$"
        lit: dict[str, float] = {}
        try:
            while not stop.is_set():
                try:
                    after, phases = await read_flashes(c, node.keys, after, block_ms=300)
                except (redis.RedisError, OSError) as exc:
                    log.debug("room light: %s", exc)
                    await _sleep(stop, 1.0)
                    continue
                st = node.state
                offset = None if st.host_offset_s is None else HostOffset(st.host_offset_s)  # None: no probe yet
                for flash, phase, t_global in phases:
                    t_host = float(global_to_host(offset, t_global))
                    if phase == "on":
                        lit[flash] = t_host
                        ROOM_LIGHT.show(flash, t_host)
                    elif flash in lit:
                        ROOM_LIGHT.show(flash, lit.pop(flash), t_host)
        finally:
            await c.aclose()

    return run


def recorder(node: NodeContext) -> Run:
    """Record the sessions whose ``recorder`` is this node: start a :class:`SessionRecorder`
    when a session enters ``recording`` (or is still recording after a crash: it resumes),
    finalize it when the session leaves that state, interrupt it when the node stops."""

    async def run(stop: asyncio.Event) -> None:
        book = _Recordings(node, make_client(node.config.redis_url, timeout=2.0, retries=0))
        node.state.recordings = {}
        try:
            while not stop.is_set():
                sessions = await asyncio.to_thread(book.read_sessions)
                if sessions is not None:
                    await book.start_new(sessions)
                    book.follow(sessions)
                await book.reap()
                await _sleep(stop, 0.25)
        finally:
            await book.close()

    return run


class _Recordings:
    """The recorder component's book: the session recorders running on this node (by
    session id) and the sessions it refused or that failed (never retried)."""

    def __init__(self, node: NodeContext, c: redis.Redis) -> None:
        self.node = node
        self.c = c
        self.running: dict[str, SessionRecorder] = {}
        self.failed: set[str] = set()

    def read_sessions(self) -> dict[str, Session] | None:
        """Every session in Redis (malformed entries skipped); None when Redis is unreachable."""
        try:
            raw = self.c.hgetall(self.node.keys.sessions)
        except (redis.RedisError, OSError) as exc:
            log.debug("recorder: sessions not readable: %s", exc)
            return None
        sessions = {}
        for value in raw.values():
            try:
                s = Session.from_json(value)
            except (ValueError, TypeError):
                continue
            sessions[s.session_id] = s
        return sessions

    async def start_new(self, sessions: dict[str, Session]) -> None:
        """Start recording the sessions that name this node and are not running yet; a session
        whose folder is not allowed here is refused and marked failed."""
        node = self.node
        for sid, s in sessions.items():
            mine = s.state == "recording" and s.recorder == node.node_id
            if not mine or sid in self.running or sid in self.failed:
                continue
            try:
                directory = _session_directory(node, s)
            except ValueError as exc:  # InvalidIdError, OutsideRootsError
                self.failed.add(sid)
                node.counters["refused_sessions"] = node.counters.get("refused_sessions", 0) + 1
                log.error("node %s: REFUSED to record session %r: %s", node.node_id, sid, exc)
                await asyncio.to_thread(_mark_failed, self.c, node, s, f"refused: {exc}")
                continue
            rec = SessionRecorder(node.config.redis_url, node.keys, s, directory, node.node_id)
            rec.start()
            self.running[sid] = rec
            log.info("node %s records session %s into %s", node.node_id, sid, directory)

    def follow(self, sessions: dict[str, Session]) -> None:
        """Stop recorders whose session left ``recording``; pass sensor changes on."""
        for sid, rec in list(self.running.items()):
            wanted = sessions.get(sid)
            if rec.is_alive() and (wanted is None or wanted.state != "recording"):
                rec.request_stop(wanted.stopped if wanted is not None else None,
                                 wanted.started if wanted is not None else None)  # fmt: skip
            elif rec.is_alive() and wanted is not None and wanted.sensors != rec.session.sensors:
                rec.update_sensors(wanted.sensors)

    async def reap(self) -> None:
        """Report each recorder's state; forget finished ones (a failed one marks its session)."""
        for sid, rec in list(self.running.items()):
            self.node.state.recordings[sid] = rec.status.state
            if not rec.is_alive():
                self.running.pop(sid)
                if rec.status.state == "failed":
                    self.failed.add(sid)
                    await asyncio.to_thread(_mark_failed, self.c, self.node, rec.session, rec.status.error)

    async def close(self) -> None:
        """The node stops: interrupt every recorder (their spools stay resumable), then wait."""
        for rec in self.running.values():
            rec.interrupt()
        for rec in self.running.values():
            await asyncio.to_thread(rec.join, 10.0)
        self.c.close()


def _session_directory(node: NodeContext, s: Session) -> Path:
    """Where to record ``s``: its directory (from Redis, so confined to the folders this PC
    allows) or ``<sessions dir>/<name>``, the name from its metadata at the start
    (:attr:`Session.bids_name`, checked like a sensor id); a name another recording holds
    already gets the session id appended. The folder's name is the recording's name
    everywhere (status bar, exports): see :func:`recording_name`."""
    validate_id(s.session_id, "session id")
    if s.directory:
        return confine(s.directory, node.allowed_roots(), "session directory")
    root = node.config.sessions_dir or paths.sessions_dir()
    try:
        name = validate_id(s.bids_name, "session name")
    except InvalidIdError:  # a name longer than an id may be: the session id is the name
        name = s.session_id
    for candidate in (root / name, root / f"{name}_{s.session_id}"):
        if not candidate.exists():
            return candidate
        try:  # this session's own folder: a resumed recording
            if read_session_file(candidate).get("session_id") == s.session_id:
                return candidate
        except (SpoolError, AttributeError):
            continue  # another recording's, or not a recording: not ours to write into
    return root / s.session_id


def _mark_failed(c: redis.Redis, node: NodeContext, session: Session, error: str) -> None:
    """Take a session whose recording failed out of ``recording`` and say why."""
    try:
        raw = c.hget(node.keys.sessions, session.session_id)
        s = Session.from_json(raw) if raw else session
        s.state, s.error, s.stopped = "stopped", error, time.time()
        c.hset(node.keys.sessions, s.session_id, s.to_json())
    except (redis.RedisError, OSError, ValueError) as exc:
        log.error("recorder: session %s not updated after failure: %s", session.session_id, exc)


def _check_component(name: str, obj: object) -> Component:
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable (a component is factory(node) -> async fn(stop_event))")
    return obj  # a callable's signature cannot be checked at run time


#: component name → factory, from the ``sensorium_desktop.components`` entry points (start order)
COMPONENTS: PluginRegistry[Component] = PluginRegistry("components", _check_component)
