"""The sync worker process: sample streams → clock models → groups, written by the leader.

Runs as a ``multiprocessing`` *spawn* child of the node (safe when frozen by PyInstaller:
the target is a module-level function and its argument a plain dict).

- Reads every sensor stream and the ``observations`` stream through its own consumer group
  (``sync-<node>``). On (re)start it first replays each stream's retained history up to the
  group's last delivered entry, so clock models and pending event observations are rebuilt
  from Redis; pending (delivered, unacknowledged) entries are acknowledged once replayed.
  Batches are de-duplicated by their sequence number, so duplicate delivery changes
  nothing; gaps are counted.
- Keeps one :class:`ClockModel` per sensor (device clock → the acquiring node's host clock)
  and maps host → global time with the node's published host offset.
- Event observations (sensors of type ``trigger`` or flagged ``sync_events``, and entries
  ingested through :class:`SyncEngine`) are grouped in time slices ``[cursor, now - margin)``.
  Only the leader writes: groups, the slice cursor and the clock states go in one fenced
  Lua call, so a slice is written exactly once, whoever leads.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import redis

from ..bus.connection import client as make_client
from ..bus.election import StaleTermError, fenced_exec, read_leader
from ..bus.globalclock import read_offsets
from ..bus.keys import Keys
from ..bus.registry import decode_sensor, list_sensors
from ..bus.seed_import import SeedImporter
from ..bus.streams import decode_entry
from ..core.association import AssociationParams, group_observations
from ..core.attributes import SYNC_EVENT_ATTRIBUTES
from ..core.clockdomain import clock_run
from ..core.codec import CodecError
from ..core.hostclock import host_time
from ..core.samples import SensorInfo
from ..core.status import WorkerStats
from ..core.sync import SyncCore

log = logging.getLogger(__name__)

DEFAULT_EVENT_SIGMA = 0.005  # s, timing noise of an event observation when the sensor says nothing
#: An observation not yet in any group is grouped even if the clock model now maps it up to
#: this far before the slice cursor (a clock update or a rebuilt model after a crash moved
#: it); older ones are taken as handled. Seconds.
LATE_HORIZON_S = 30.0
#: What the groups stream says was grouped is remembered this long (and read back this far
#: on start), so an observation is never grouped twice. Seconds (> LATE_HORIZON_S).
GROUPED_MEMORY_S = 300.0
#: Observations closer than this many σ belong to one event and stay in one slice.
CLUSTER_GAP_SIGMAS = 6.0
MAX_HOLD_S = 5.0


@dataclass
class WorkerConfig:
    redis_url: str
    prefix: str
    node_id: str
    parent_pid: int = 0
    slice_margin: float = 1.0  # s: a slice is grouped once this old (late observations wait)
    step_interval: float = 0.5
    telemetry_interval: float = 1.0
    log_level: str = "INFO"
    seed_import: bool = True  # import the seed library's obs:* keys (each once, lab-wide)


class _SliceRow(NamedTuple):
    """One observation in a slice: its global time and 1-sigma (s), its key, its local time (s)."""

    sensor_id: str
    t_global: float
    sigma: float
    key: str
    t_local: float


@dataclass
class _Obs:
    sensor_id: str
    node: str
    t_local: np.ndarray
    t_arrival: np.ndarray
    sigma: np.ndarray
    keys: list[str]  # "<seq>:<row>" per observation, for traceability


def _flat(mapping: dict[str, Any]) -> list[str]:
    """``{k: v}`` → ``[k, v, ...]`` for HSET/XADD (floats keep full precision via repr)."""
    return [x for k, v in mapping.items() for x in (k, repr(v) if isinstance(v, float) else str(v))]


def cut_between_events(times: list[np.ndarray], sigmas: list[np.ndarray], cut: float) -> float:
    """Where to end a slice (s, global): ``cut``, or earlier when observations of one event
    straddle it (neighbours closer than ``CLUSTER_GAP_SIGMAS`` σ), so an event is never split
    between two slices. A cluster is held back at most ``MAX_HOLD_S`` (dense streams of
    events still get written)."""
    if not times:
        return cut
    t = np.concatenate(times)
    s = np.concatenate(sigmas)
    order = np.argsort(t)
    t, s = t[order], s[order]
    i = int(np.searchsorted(t, cut)) - 1
    if i < 0 or i + 1 >= t.size:
        return cut
    close = np.diff(t) < CLUSTER_GAP_SIGMAS * np.maximum(s[:-1], s[1:])  # close[k]: t[k] and t[k+1] together
    if not close[i]:
        return cut
    j = i
    while j > 0 and close[j - 1]:
        j -= 1
    return float(t[j]) if t[j] >= cut - MAX_HOLD_S else cut


class SyncWorker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.keys = Keys(cfg.prefix)
        self.group = f"sync-{cfg.node_id}"
        self.consumer = f"{cfg.node_id}-{os.getpid()}"
        self.c = make_client(cfg.redis_url, timeout=5.0)
        self.core = SyncCore()
        self.sensors: dict[str, SensorInfo] = {}
        self.last_seq: dict[str, int] = {}
        self.cursor_ids: dict[str, str] = {}  # stream key → last id read (for XREADGROUP ">")
        self.pending: list[_Obs] = []
        self.stats = WorkerStats(pid=os.getpid(), started=time.time())
        self.seed_importer = SeedImporter(self.keys) if cfg.seed_import else None
        self._stop = False
        self._to_ack: dict[str, list[bytes]] = {}
        self._last_pub = 0.0
        self.grouped: dict[str, float] = {}  # "<sensor>/<seq>:<row>" → its t_global, from the groups stream
        self._groups_read_id = f"{int((time.time() - GROUPED_MEMORY_S) * 1000)}-0"

    # -- setup ------------------------------------------------------------------------------
    def _ensure_group(self, key: str) -> None:
        try:
            self.c.xgroup_create(key, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _last_delivered(self, key: str) -> str:
        for g in self.c.xinfo_groups(key):
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == self.group:
                v = g["last-delivered-id"]
                return v.decode() if isinstance(v, bytes) else str(v)
        return "0-0"

    def _replay(self, key: str, sid: str | None, since: float = 0.0) -> None:
        """Rebuild state from the retained history up to what the group already delivered
        (from ``since``, epoch s: the sensor's current run; an earlier run's clock is not this one's)."""
        end = self._last_delivered(key)
        if end == "0-0":
            return
        start = f"{int(since * 1000)}-0" if since > 0 else "-"
        while True:
            raw = self.c.xrange(key, start, end, count=2000)
            for eid, fields in raw:
                self._process(key, sid, eid, fields, ack=False)
                self.stats.rebuilt_batches += 1
            if len(raw) < 2000:
                break
            last = raw[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        pend = self.c.xpending_range(key, self.group, "-", end, 100_000)
        ids = [p["message_id"] for p in pend]
        if ids:
            self.c.xack(key, self.group, *ids)
            log.info("worker %s: re-read and acknowledged %d pending entries of %s", self.cfg.node_id, len(ids), key)

    def refresh_registry(self) -> None:
        infos = {s.sensor_id: s for s in list_sensors(self.c, self.keys)}
        for sid, info in infos.items():
            if sid not in self.sensors:
                self.sensors[sid] = info
                self.core.register(info)
                key = self.keys.stream(sid)
                self._ensure_group(key)
                self._replay(key, sid, clock_run(info))
                self.cursor_ids[key] = ">"
            elif clock_run(info) != clock_run(self.sensors[sid]):
                self._new_run(info)
        obs_key = self.keys.observations
        if obs_key not in self.cursor_ids:
            self._ensure_group(obs_key)
            self._replay(obs_key, None)
            self.cursor_ids[obs_key] = ">"

    def _new_run(self, info: SensorInfo) -> None:
        """``info``'s node started again: its domain's clock is fitted afresh (its devices'
        clocks may have restarted: no false reset, no inherited sigma)."""
        self.sensors[info.sensor_id] = info
        self.core.register(info)
        log.info("worker %s: %s belongs to a new run of node %s: its clock is fitted afresh", self.cfg.node_id,
                 info.sensor_id, info.node_id)  # fmt: skip

    def _check_run(self, sid: str, first_local: float) -> None:
        """A batch that steps back in device time may come from a restarted node whose new
        description the registry refresh has not read yet: read it now."""
        last = self.core.domains.last_local(sid)
        if last is None or first_local >= last:
            return
        info = decode_sensor(self.c.hgetall(self.keys.sensor(sid)))
        if info is not None and sid in self.sensors and clock_run(info) != clock_run(self.sensors[sid]):
            self._new_run(info)

    # -- data -------------------------------------------------------------------------------
    def _process(self, key: str, sid: str | None, eid: bytes, fields: dict[bytes, Any], ack: bool = True) -> None:
        if ack:
            self._to_ack.setdefault(key, []).append(eid)
        if sid is None:
            self._process_observation(fields)
            return
        try:
            entry = decode_entry(sid, eid, fields)
        except CodecError as exc:
            self.stats.decode_errors += 1
            log.error("worker: malformed entry in %s: %s", key, exc)
            return
        b = entry.batch
        prev = self.last_seq.get(sid)
        if prev is not None and b.seq <= prev:
            self.stats.duplicates += 1
            return
        if prev is not None and b.seq > prev + 1:
            self.stats.missing += b.seq - prev - 1
        self.last_seq[sid] = b.seq
        self.stats.batches += 1
        self.stats.samples += len(b)
        self._last_pub = max(self._last_pub, entry.t_published)
        if len(b) == 0:
            return
        local = b.device_times
        self._check_run(sid, float(local[0]))
        self.core.observe(sid, local, b.t_arrival)
        info = self.sensors.get(sid)
        if info is not None and (info.attribute in SYNC_EVENT_ATTRIBUTES or info.extra.get("sync_events")):
            sigma = float(info.extra.get("timing_sigma", DEFAULT_EVENT_SIGMA))
            keys = [f"{b.seq}:{i}" for i in range(len(b))]
            self.pending.append(_Obs(sid, entry.node_id, np.array(local), np.array(b.t_arrival), np.full(len(b), sigma),
                                     keys))  # fmt: skip

    def _process_observation(self, fields: dict[bytes, Any]) -> None:
        try:
            sid = fields[b"sensor"].decode()
            t_local = float(fields[b"t_local"])
            t_arrival = float(fields[b"t_arrival"])
            sigma = float(fields[b"sigma"])
            node = fields.get(b"node", b"").decode()
            seq = fields.get(b"id", b"").decode()
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            self.stats.decode_errors += 1
            log.error("worker: malformed observation: %s", exc)
            return
        if not (math.isfinite(t_local) and math.isfinite(t_arrival) and sigma > 0):
            self.stats.decode_errors += 1
            return
        self.core.observe(sid, np.array([t_local]), np.array([t_arrival]))
        self.pending.append(_Obs(sid, node, np.array([t_local]), np.array([t_arrival]), np.array([sigma]), [seq]))

    def read(self, block_ms: int = 200) -> int:
        streams = dict(self.cursor_ids)
        if not streams:
            time.sleep(block_ms / 1000)
            return 0
        result = self.c.xreadgroup(self.group, self.consumer, streams, count=500, block=block_ms)
        n = 0
        prefix = self.keys.stream("")
        for key_b, entries in result or []:
            key = key_b.decode() if isinstance(key_b, bytes) else key_b
            sid = key[len(prefix) :] if key.startswith(prefix) else None
            for eid, fields in entries:
                self._process(key, sid, eid, fields)
                n += 1
        return n

    def ack(self) -> None:
        pipe = self.c.pipeline(transaction=False)
        for key, ids in self._to_ack.items():
            if ids:
                pipe.xack(key, self.group, *ids)
        pipe.execute()
        self._to_ack.clear()

    # -- grouping ---------------------------------------------------------------------------
    def global_now(self) -> float:
        return float(self.core.time.to_global(self.cfg.node_id, host_time()))

    def _global_of(self, o: _Obs) -> tuple[np.ndarray, np.ndarray]:
        """Global times (s) of observations and their 1-sigma (s): device → host → global."""
        host = self.core.to_host(o.sensor_id, o.t_local, o.t_arrival)
        off = self.core.time.host_offset(o.node)
        unc = self.core.uncertainty(o.sensor_id)
        unc = unc if math.isfinite(unc) else 0.0
        off_sigma = off.sigma if off is not None else 0.0
        return self.core.time.to_global(o.node, host), np.sqrt(o.sigma**2 + unc**2 + off_sigma**2)

    def sync_grouped(self) -> None:
        """Learn which observations are in a group (whoever wrote it) from the groups stream."""
        while True:
            raw = self.c.xrange(self.keys.groups, f"({self._groups_read_id}", "+", count=2000)
            for _eid, fields in raw:
                try:
                    t = float(fields[b"t_global"])
                    for m in json.loads(fields[b"members"]):
                        self.grouped[f"{m['sensor_id']}/{m['obs']}"] = t
                except (KeyError, ValueError, TypeError):
                    continue
            if raw:
                last = raw[-1][0]
                self._groups_read_id = last.decode() if isinstance(last, bytes) else str(last)
            if len(raw) < 2000:
                return

    def _fresh(self, o: _Obs) -> np.ndarray:
        """Mask of ``o``'s observations that are in no group yet (events are rare: a loop is fine)."""
        return np.array([f"{o.sensor_id}/{k}" not in self.grouped for k in o.keys], dtype=bool)

    def step(self) -> None:
        """Group the slice that is now old enough (leader only) and drop what others did.

        An observation is grouped exactly once: by identity (the groups stream says which are
        grouped), not by where the current clock model maps it, so a model update or a worker
        restart that moves an observation behind the cursor cannot lose it.

        Steps: learn what others grouped and who leads → cut the slice between events →
        (a follower keeps everything not grouped) → group it → write groups, cursor and clock
        states in one fenced call → forget what was written."""
        self.sync_grouped()
        term = self._observe_leadership()
        raw = self.c.get(self.keys.groups_cursor)
        cursor = float(raw) if raw else -math.inf
        slice_end, rows, leader_keeps, follower_keeps = self._cut_slice(cursor)
        if not self.stats.is_leader:
            self._keep_pending(follower_keeps)  # a future leader groups what is not grouped
            return
        if cursor == -math.inf:
            cursor = min((r.t_global for r in rows), default=slice_end)
        if slice_end <= cursor:
            return
        commands, groups_written = self._slice_commands(rows, term, slice_end)
        try:
            fenced_exec(self.c, self.keys, self.cfg.node_id, term, commands)
        except StaleTermError as exc:
            self.stats.stale_rejections += 1
            self.stats.is_leader = False
            log.warning("worker: write rejected, no longer leader: %s", exc)
            return
        self.stats.groups_written += groups_written
        self.stats.slices_written += 1
        for r in rows:
            self.grouped[f"{r.sensor_id}/{r.key}"] = r.t_global
        horizon = slice_end - GROUPED_MEMORY_S
        self.grouped = {k: t for k, t in self.grouped.items() if t >= horizon}
        self._keep_pending(leader_keeps)

    def _observe_leadership(self) -> int:
        """Who leads (``stats.is_leader``) and in which term; the offsets of the nodes whose
        observations are pending are refreshed on the way."""
        leader, term = read_leader(self.c, self.keys)
        self.stats.is_leader = leader == self.cfg.node_id
        self.stats.term = term
        nodes = sorted({o.node for o in self.pending} | {self.cfg.node_id})
        for node, est in read_offsets(self.c, self.keys, nodes).items():
            self.core.time.set_host_offset(node, est.offset, est.uncertainty, est.drift, est.t_ref)
        return term

    def _cut_slice(self, cursor: float) -> tuple[float, list[_SliceRow], list[_Obs], list[_Obs]]:
        """The slice's end (global s, between events, ``slice_margin`` before now), its
        observations, and what is left pending for a leader and for a follower."""
        mapped = [(o, *self._global_of(o)) for o in self.pending]
        slice_end = cut_between_events(
            [tg for _o, tg, _sg in mapped], [sg for _o, _tg, sg in mapped], self.global_now() - self.cfg.slice_margin
        )
        leader_keeps, follower_keeps = [], []
        rows: list[_SliceRow] = []
        for o, tg, sg in mapped:
            live = self._fresh(o) & (tg >= cursor - LATE_HORIZON_S)
            take = live & (tg < slice_end)
            late = take & (tg < cursor)
            if late.any() and self.stats.is_leader:
                log.info("worker: %d observations of %s behind the cursor join this slice",
                         int(late.sum()), o.sensor_id)  # fmt: skip
            rows += [_SliceRow(o.sensor_id, float(tg[i]), float(sg[i]), o.keys[i], float(o.t_local[i]))
                     for i in np.flatnonzero(take)]  # fmt: skip
            leader_keeps.append(self._subset(o, live & (tg >= slice_end)))
            follower_keeps.append(self._subset(o, live))
        return slice_end, rows, leader_keeps, follower_keeps

    def _slice_commands(self, rows: list[_SliceRow], term: int, slice_end: float) -> tuple[list[list[object]], int]:
        """The fenced writes of one slice: its groups (XADD), the cursor, every clock state;
        and how many groups they hold."""
        commands: list[list[object]] = []
        groups = group_observations([r.sensor_id for r in rows], [r.t_global for r in rows],
                                    [r.sigma for r in rows], AssociationParams()) if rows else []  # fmt: skip
        for g in groups:
            members = [{"sensor_id": m.sensor_id, "probability": round(m.probability, 6), "obs": rows[m.index].key,
                        "t_local": rows[m.index].t_local, "t_global": rows[m.index].t_global}
                       for m in g.members]  # fmt: skip
            entry = {"t_global": repr(g.t_global), "sigma": repr(g.sigma), "term": term, "node": self.cfg.node_id,
                     "slice_end": repr(slice_end), "members": json.dumps(members)}  # fmt: skip
            commands.append(["XADD", self.keys.groups, "MAXLEN", "~", "100000", "*", *_flat(entry)])
        commands.append(["SET", self.keys.groups_cursor, repr(slice_end)])
        for sid, st in self.core.state().items():
            if math.isfinite(float(st["alpha"])):
                st["node"] = self.sensors[sid].node_id if sid in self.sensors else ""
                st["updated"] = time.time()
                commands.append(["HSET", self.keys.clock(sid), *_flat(st)])
        return commands, len(groups)

    def _keep_pending(self, kept: list[_Obs]) -> None:
        self.pending = [o for o in kept if o.t_local.size]
        self.stats.observations_pending = sum(o.t_local.size for o in self.pending)

    @staticmethod
    def _subset(o: _Obs, mask: np.ndarray) -> _Obs:
        return _Obs(o.sensor_id, o.node, o.t_local[mask], o.t_arrival[mask], o.sigma[mask],
                    [k for k, m in zip(o.keys, mask, strict=True) if m])  # fmt: skip

    def import_seed(self) -> None:
        """Observations scripts wrote the seed's way join the observations stream (read next)."""
        if self.seed_importer is None:
            return
        self.seed_importer.run(self.c)
        self.stats.seed_imported = self.seed_importer.stats.imported
        self.stats.seed_malformed = self.seed_importer.stats.malformed

    def write_telemetry(self) -> None:
        self.stats.lag_s = max(0.0, host_time() - self._last_pub) if self._last_pub else 0.0
        clocks = {
            sid: {"offset": st["offset_mean"], "drift_ppm": st["drift"] * 1e6, "uncertainty": st["uncertainty"],
                  "epoch": st["epoch"], "resets": st["resets"], "late": st.get("late", 0), "domain": st["domain"],
                  "kind": st["kind"], "latency": st["latency"]}
            for sid, st in self.core.state().items()
            if math.isfinite(float(st["alpha"]))
        }  # fmt: skip
        self.stats.time, self.stats.positions, self.stats.sensors = time.time(), dict(self.last_seq), clocks
        self.c.set(self.keys.worker_telemetry(self.cfg.node_id), self.stats.to_json(), ex=30)

    # -- loop -------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        self._stop = True

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        next_step = next_tele = next_reg = 0.0
        while not self._stop:
            if self.cfg.parent_pid and os.getppid() != self.cfg.parent_pid:
                log.warning("worker %s: node process is gone; exiting", self.cfg.node_id)
                break
            try:
                now = time.monotonic()
                if now >= next_reg:
                    self.refresh_registry()
                    next_reg = now + 2.0
                self.read()
                self.ack()
                now = time.monotonic()
                if now >= next_step:
                    self.import_seed()
                    self.step()
                    next_step = now + self.cfg.step_interval
                if now >= next_tele:
                    self.write_telemetry()
                    next_tele = now + self.cfg.telemetry_interval
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("worker %s: Redis unavailable (%s); retrying", self.cfg.node_id, exc)
                time.sleep(1.0)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the stream (restart without AOF): recreate
                    self.cursor_ids.clear()
                    self.sensors.clear()
                    next_reg = 0.0
                else:
                    log.exception("worker %s: Redis refused a command", self.cfg.node_id)
                    time.sleep(1.0)


#: prctl option: the signal this process gets when its parent ends
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent ends (PR_SET_PDEATHSIG), even if
    it is busy and never looks (a worker stuck in a loop outlived its node by hours)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError) as exc:
        log.info("worker: cannot ask to end with the node: %s", exc)


def worker_main(config: dict[str, Any]) -> None:
    """Process entry point (spawn-safe)."""
    die_with_parent()
    cfg = WorkerConfig(**config)
    logging.basicConfig(level=getattr(logging, cfg.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s worker %(name)s: %(message)s")  # fmt: skip
    SyncWorker(cfg).run()
