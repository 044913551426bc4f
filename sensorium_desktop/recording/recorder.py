"""The session recorder: Redis streams → consumer group → crash-safe spool.

One :class:`SessionRecorder` thread per recording session. It reads the session's sensor
streams, its markers stream and the groups stream through the consumer group
``rec-<session>`` starting at the session's start time, appends every entry to the spool,
flushes (write + fsync) at least every ``flush_interval`` seconds and acknowledges entries
only after the chunk holding them is durable. Killed at any moment, it loses nothing:
unacknowledged entries are delivered again on restart and dropped by ``seq`` if the spool
already has them. Redis outages are ridden out with backoff (the streams keep the data for
the warm window, 300 s by default). A full disk stops the recording with an error; the spool
stays valid up to the last complete chunk.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from ..bus.attention import hold_for_recording, release_attention
from ..bus.connection import client as make_client
from ..bus.globalclock import OffsetEstimate
from ..bus.keys import Keys
from ..bus.registry import list_sensors
from ..bus.sentinel import SENTINEL_BACKOFF, is_sentinel_url
from ..bus.sessions import Session
from ..bus.streams import GapTracker, decode_entry
from ..core.backoff import Backoff
from ..core.codec import CodecError
from ..core.delta import DELTA_ATTRIBUTES
from ..core.quality import anomaly_info, anomaly_sensor_id, parse_quality
from ..core.samples import SampleBatch, SensorInfo
from ..core.timemap import TimeMap
from .spool import SPOOL_VERSION, RecordKind, SpoolError, SpoolFullError, SpoolWriter, write_json_atomic

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
CLOCK_SNAPSHOT_S = 1.0
ATTENTION_REFRESH_S = 3.0
DRAIN_TIMEOUT_S = 5.0
#: Drain until every active sensor delivered a sample this long after the stop time (s), so
#: the samples taken before the stop that were still in transit are recorded too.
DRAIN_MARGIN_S = 0.25
READ_COUNT = 500
#: groups of events this long before the session started are not part of it (s)
GROUP_MARGIN_S = 2.0
#: Sensor streams are read from this long before the session's start (s): longer than any
#: batch window a sensor may have had before the recorder raised its attention (none: 5 s,
#: ×3 under high system load).
START_MARGIN_S = 20.0
#: Of what is read before the start, batches that ended more than this before it (s) are not
#: spooled: the margin is for a batch straddling the start, not for minutes of earlier data.
PRE_START_KEEP_S = 0.25
#: Sensors whose samples are event markers: each sample also joins the session's marker stream.
MARKER_ATTRIBUTES = frozenset({"marker"})


def recording_name_of(directory: Path, s: Session) -> str:
    """The recording's one name (folder, status bar, exports): the folder's name when the node
    named it after the session (``<bids name>`` or ``<bids name>_<session id>``), else the
    session's BIDS name (a folder the operator chose)."""
    return directory.name if directory.name.startswith((s.bids_name, s.session_id)) else s.bids_name


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


@dataclass
class RecorderStatus:
    state: str = "starting"
    directory: str = ""
    bytes: int = 0
    samples: int = 0
    chunks: int = 0
    duplicates: int = 0
    missing_batches: int = 0
    lost_entries: int = 0
    bad_entries: int = 0
    error: str = ""
    warnings: list[str] = field(default_factory=list)


class SessionRecorder(threading.Thread):
    """Records one session until :meth:`request_stop` (finalize) or :meth:`interrupt`
    (node shutdown: flush and leave the session to be resumed)."""

    def __init__(
        self,
        redis_url: str,
        keys: Keys,
        session: Session,
        directory: Path,
        node_id: str,
        flush_interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        super().__init__(name=f"recorder-{session.session_id}", daemon=True)
        self.redis_url = redis_url
        self.keys = keys
        self.session = session
        self.directory = Path(directory)
        self.node_id = node_id
        self.flush_interval = flush_interval
        self.group = f"rec-{session.session_id}"
        self.status = RecorderStatus(directory=str(self.directory))
        self._stop_requested: float | None = None
        self._interrupt = threading.Event()
        self._wake = threading.Event()
        self.infos: dict[str, dict[str, Any]] = {}
        self.gaps = GapTracker()  # per-sensor seq continuity, seeded from the spool on resume
        self.last_arrival: dict[str, float] = {}
        self._acks: dict[str, list[bytes]] = {}
        self._derived_markers: list[dict[str, str]] = []  # from marker sensors, not yet in Redis
        #: markers' times as known while recording (measured clocks exactly, others at arrival
        #: − fixed latency: the map is not fed samples; exports refine); host offsets from the
        #: last clock snapshot
        self.time = TimeMap()
        self._created: set[str] = set()
        self._pending_from: dict[str, str] = {}
        self._lock = threading.Lock()
        self._new_sensors: list[str] | None = None
        self.writer: SpoolWriter | None = None
        self.meta: dict[str, Any] = {}
        #: recorded sensor → the stream key of its ``Anomaly`` stream (once the node's quality
        #: component writes one; recorded with it, see :mod:`..worker.quality`)
        self.anomaly_keys: dict[str, str] = {}

    # -- control --------------------------------------------------------------------------
    def request_stop(self, stopped_at: float | None = None, started_at: float | None = None) -> None:
        """Finish: drain what arrived before ``stopped_at`` (epoch s), then finalize;
        ``started_at``: the session's start as it stands now (a headless recording moves it to
        its first samples), written to ``session.json``."""
        if started_at is not None:
            self.session.started = started_at
        self._stop_requested = stopped_at if stopped_at is not None else time.time()
        self._wake.set()

    def update_sensors(self, sensor_ids: list[str]) -> None:
        """The operator changed the session's sensors while it records (thread-safe): added
        sensors are recorded from now on, removed ones no longer read."""
        with self._lock:
            self._new_sensors = list(sensor_ids)
        self._wake.set()

    def interrupt(self) -> None:
        """Stop without finalizing (the node is shutting down; resume on next start)."""
        self._interrupt.set()
        self._wake.set()

    # -- keys -----------------------------------------------------------------------------
    @property
    def sensor_ids(self) -> list[str]:
        return list(self.session.sensors)

    def _stream_keys(self) -> list[str]:
        anomaly = [self.anomaly_keys[s] for s in self.sensor_ids if s in self.anomaly_keys]
        return [self.keys.stream(s) for s in self.sensor_ids] + anomaly + [self.keys.markers(self.session.session_id),
                                                                            self.keys.groups]  # fmt: skip

    def _start_id(self) -> str:
        """Where the sensor streams are read from: ``START_MARGIN_S`` before the session's start.
        A batch's id is its first sample's time: a batch that began before the start holds
        samples after it (a 1 Hz thermometer batched for 2 s at low attention lost its first
        two in-bounds samples); the reader keeps exactly the samples inside the bounds."""
        return f"{int(((self.session.started or time.time()) - START_MARGIN_S) * 1000)}-0"

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._open_spool()
        except (OSError, SpoolError) as exc:
            self._fail(f"cannot open the recording directory {self.directory}: {exc}")
            return
        self.status.state = "recording"
        backoff = Backoff(*SENTINEL_BACKOFF) if is_sentinel_url(self.redis_url) else Backoff(base=0.5, cap=5.0)
        c: redis.Redis | None = None
        pending_phase = True  # first re-read what was delivered but not acknowledged
        last_flush = last_clock = last_hold = 0.0
        try:
            while True:
                now = time.monotonic()
                try:
                    if c is None:
                        c = make_client(self.redis_url, timeout=5.0, retries=0)
                        self._ensure_groups(c)
                        self._describe_sensors(c)
                        pending_phase = True
                        self._pending_from = {k: "0" for k in self._stream_keys()}
                        backoff.reset()
                        self.status.error = ""
                    self._apply_sensor_change(c)
                    if now - last_hold >= ATTENTION_REFRESH_S:
                        hold_for_recording(c, self.keys, self.session.session_id, self.sensor_ids)
                        last_hold = now
                    if now - last_clock >= CLOCK_SNAPSHOT_S:
                        if len(self.infos) < len(self.sensor_ids):
                            self._describe_sensors(c)  # self-describing devices announce sensors late
                        self._snapshot_clocks(c)
                        self._find_anomaly_streams(c)
                        last_clock = now
                    got = self._read(c, pending_phase)
                    if pending_phase and got == 0:
                        pending_phase = False
                except (redis.RedisError, OSError) as exc:
                    if isinstance(exc, SpoolError):
                        raise
                    self.status.error = f"Redis unreachable: {exc}"
                    log.warning("recorder %s: %s", self.session.session_id, self.status.error)
                    c = None
                    if self._interrupt.wait(backoff.next_delay()):
                        break
                    continue
                if self._stop_requested is not None and self.status.state == "recording" and c is not None:
                    self.status.state = "draining"
                    self._mark_open_bad_spells(c)
                if time.monotonic() - last_flush >= self.flush_interval or self._draining_done():
                    self._flush(c)
                    last_flush = time.monotonic()
                if self._interrupt.is_set():
                    break
                if self._draining_done():
                    self._finalize(c)
                    return
            self._flush(c)
            self.status.state = "interrupted"
            self._write_meta("recording")
            self._publish_status(c)
        except SpoolFullError as exc:
            self._fail(f"recording stopped: {exc}", c)
        except SpoolError as exc:
            self._fail(f"recording stopped, the spool cannot be written: {exc}", c)
        finally:
            if self.writer is not None:
                self.writer.close()
            if c is not None:
                c.close()

    def _draining_done(self) -> bool:
        stop = self._stop_requested
        if stop is None:
            return False
        waited = time.time() - stop
        if waited >= DRAIN_TIMEOUT_S:
            return True
        active = [sid for sid in self.sensor_ids if sid in self.last_arrival]
        return waited >= 0.3 and all(self.last_arrival[sid] >= stop + DRAIN_MARGIN_S for sid in active)

    # -- spool ------------------------------------------------------------------------------
    def _open_spool(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        resumed = (self.directory / "session.json").exists()
        self.writer = SpoolWriter(self.directory)
        self.gaps.next_seq = {sid: seq + 1 for sid, seq in self.writer.stats.last_seq.items()}
        if resumed:
            try:
                self.meta = json.loads((self.directory / "session.json").read_text(encoding="utf-8"))
            except ValueError:
                self.meta = {}
            log.warning("recorder %s: resuming after an interruption; spool holds %d samples", self.session.session_id,
                        sum(self.writer.stats.samples.values()))  # fmt: skip
            self.writer.add_json(RecordKind.EVENT, {"time": time.time(), "level": "info",
                                                    "message": "recorder resumed after an interruption"})  # fmt: skip
        self.status.samples = sum(self.writer.stats.samples.values())
        self.status.bytes = self.writer.stats.bytes
        self._write_meta("recording")

    def _write_meta(self, state: str, **extra: Any) -> None:
        s = self.session
        meta = {
            "format": "sensorium-spool",
            "spool_version": SPOOL_VERSION,
            "session_id": s.session_id,
            "bids_name": s.bids_name,
            "name": recording_name_of(self.directory, s),
            "participant": s.participant, "session": s.session, "task": s.task, "run": s.run, "notes": s.notes,
            "sensors": self.sensor_ids,
            "sensor_infos": list(self.infos.values()) or self.meta.get("sensor_infos", []),
            "state": state,
            "started": s.started,
            "stopped": self.meta.get("stopped"),
            "recorder": self.node_id,
            "hostname": socket.gethostname(),
            "compact": s.compact,
            "samples": self.writer.stats.samples if self.writer else {},
            "bytes": self.writer.stats.bytes if self.writer else 0,
            "warnings": self.status.warnings,
            "error": self.status.error if state == "failed" else "",
        }  # fmt: skip
        meta.update(extra)
        self.meta = meta
        write_json_atomic(self.directory / "session.json", meta)

    def _flush(self, c: redis.Redis | None) -> None:
        assert self.writer is not None
        self.writer.flush()
        st = self.writer.stats
        self.status.bytes, self.status.chunks = st.bytes, st.chunks
        self.status.samples = sum(st.samples.values())
        if c is None:
            return
        try:
            if self._acks:
                pipe = c.pipeline(transaction=False)
                for key, ids in self._acks.items():
                    for i in range(0, len(ids), 1000):
                        pipe.xack(key, self.group, *ids[i : i + 1000])
                pipe.execute()
                self._acks = {}
            self._publish_status(c)
        except (redis.RedisError, OSError) as exc:  # acked again after the next read; duplicates are dropped
            log.debug("recorder %s: ack failed: %s", self.session.session_id, exc)

    def _publish_status(self, c: redis.Redis | None) -> None:
        if c is None:
            return
        st = self.status
        started = self.session.started or time.time()
        name = recording_name_of(self.directory, self.session)
        mapping = {"state": st.state, "directory": st.directory, "name": name, "bytes": st.bytes, "samples": st.samples,
                   "chunks": st.chunks, "seconds": round(time.time() - started, 3), "error": st.error,
                   "missing_batches": st.missing_batches, "lost_entries": st.lost_entries,
                   "updated": repr(time.time()), "node": self.node_id}  # fmt: skip
        try:
            c.hset(self.keys.recording(self.session.session_id), mapping=mapping)
            c.expire(self.keys.recording(self.session.session_id), 7 * 24 * 3600)
        except (redis.RedisError, OSError) as exc:
            log.debug("recorder status not published: %s", exc)

    def _finalize(self, c: redis.Redis) -> None:
        self._flush(c)
        self.status.state = "complete"
        self._write_meta("complete", stopped=self._stop_requested)
        try:  # cleaned up before "complete" is published: whoever sees it sees no group left
            release_attention(c, self.keys, self.sensor_ids, f"recording:{self.session.session_id}")
            pipe = c.pipeline(transaction=False)
            for key in set(self._stream_keys()) | self._created:
                pipe.xgroup_destroy(key, self.group)
            pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError) as exc:
            log.warning("recorder %s: cleanup failed: %s", self.session.session_id, exc)
        self._publish_status(c)
        log.info("recorder %s: complete, %d samples spooled (with the margins exports leave out), %d bytes in %s",
                 self.session.session_id, self.status.samples,
                 self.status.bytes, self.directory)  # fmt: skip

    def _fail(self, message: str, c: redis.Redis | None = None) -> None:
        log.error("recorder %s: %s", self.session.session_id, message)
        self.status.state = "failed"
        self.status.error = message
        if self.writer is not None:
            self.writer.discard_pending()
        try:
            self._write_meta("failed", stopped=time.time())
        except OSError as exc:  # the disk may be full: the previous session.json stays valid
            log.error("recorder %s: session.json not updated: %s", self.session.session_id, exc)
        if c is None:
            try:
                c = make_client(self.redis_url, timeout=2.0, retries=0)
            except (redis.RedisError, OSError):
                return
        self._publish_status(c)
        try:
            c.xadd(self.keys.events, {"op": "record", "id": self.session.session_id, "node": self.node_id, "ok": 0,
                                      "message": message, "time": repr(time.time())}, maxlen=10_000)  # fmt: skip
        except (redis.RedisError, OSError):
            pass

    # -- Redis ------------------------------------------------------------------------------
    def _ensure_groups(self, c: redis.Redis) -> None:
        start = self._start_id()
        markers = self.keys.markers(self.session.session_id)
        for key in self._stream_keys():
            try:  # every marker of the session: its ids are the Redis server's clock, not ours
                c.xgroup_create(key, self.group, id="0-0" if key == markers else start, mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._created.add(key)

    def _apply_sensor_change(self, c: redis.Redis) -> None:
        with self._lock:
            new, self._new_sensors = self._new_sensors, None
        if new is None or new == self.session.sensors:
            return
        old = self.session.sensors
        added = [x for x in new if x not in old]
        removed = [x for x in old if x not in new]
        now = time.time()
        start = f"{int(now * 1000)}-0"
        for sid in added:
            key = self.keys.stream(sid)
            try:
                c.xgroup_create(key, self.group, id=start, mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
                c.xgroup_setid(key, self.group, start)  # re-added: from now, not from its removal
            self._created.add(key)
        self.session.sensors = list(new)
        for verb, ids in (("added", added), ("removed", removed)):
            if ids:
                message = f"sensors {verb} while recording: {', '.join(ids)}"
                self.writer.add_json(RecordKind.EVENT, {"time": now, "level": "info", "message": message})  # type: ignore[union-attr]
        log.info("recorder %s: sensors added %s, removed %s", self.session.session_id, added, removed)
        self._describe_sensors(c)
        self._write_meta("recording")

    def _describe_sensors(self, c: redis.Redis) -> None:
        wanted = set(self.sensor_ids)
        new = False
        for info in list_sensors(c, self.keys):
            if info.sensor_id in wanted:
                d = json.loads(info.to_json())
                if self.infos.get(info.sensor_id) != d:
                    self._link_video(d)
                    self.infos[info.sensor_id] = d
                    self.time.register(info)
                    self.writer.add_json(RecordKind.SENSOR, d)  # type: ignore[union-attr]
                    new = True
        if new:
            self._write_meta("recording")

    def _find_anomaly_streams(self, c: redis.Redis) -> None:
        """Record the ``Anomaly`` stream of every recorded sensor that has one (from the
        session's start; found within :data:`CLOCK_SNAPSHOT_S` of its first verdict)."""
        wanted = [s for s in self.sensor_ids if s not in self.anomaly_keys and s in self.infos]
        if not wanted:
            return
        keys = [self.keys.stream(anomaly_sensor_id(s)) for s in wanted]
        pipe = c.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        for sid, key, exists in zip(wanted, keys, pipe.execute(), strict=True):
            if not exists:
                continue
            resumed = False
            try:
                c.xgroup_create(key, self.group, id=self._start_id())
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
                resumed = True
            self._created.add(key)
            self.anomaly_keys[sid] = key
            if resumed:  # a recorder before this one read entries it did not acknowledge: spool them
                self._read_pending(c, key)
            parent = SensorInfo.from_json(json.dumps(self.infos[sid]))
            info = anomaly_info(parent)
            self.infos[info.sensor_id] = json.loads(info.to_json())
            self.time.register(info)
            self.writer.add_json(RecordKind.SENSOR, self.infos[info.sensor_id])  # type: ignore[union-attr]
            self._write_meta("recording")

    def _read_pending(self, c: redis.Redis, key: str) -> None:
        """Spool the entries of ``key`` delivered to this node's consumer but not acknowledged."""
        self._pending_from[key] = "0"
        while self._consume(c.xreadgroup(self.group, self.node_id, {key: self._pending_from[key]},
                                         count=READ_COUNT), pending=True):  # fmt: skip
            pass

    def _mark_open_bad_spells(self, c: redis.Redis) -> None:
        """A sensor still bad when the recording stops: its spell (from its start to the stop)
        becomes a ``BAD_<reason>`` marker, as a spell that ended is (the quality component marks
        those only in running recordings)."""
        stop = self._stop_requested
        assert stop is not None and self.writer is not None
        verdicts = parse_quality(c.hgetall(self.keys.quality))
        for sid in self.sensor_ids:
            q = verdicts.get(sid, {})
            since, t_verdict = q.get("bad_since"), q.get("time")
            if q.get("state") != "bad" or not isinstance(since, int | float) or not isinstance(t_verdict, int | float):
                continue
            node = str(self.infos.get(sid, {}).get("node_id", ""))
            start, last = (float(x) for x in self.time.to_global(node, np.array([since, t_verdict], dtype=np.float64)))
            if last < stop - 5.0 or start >= stop:  # a node that stopped scoring: not known to be bad now
                continue
            reason = str(q.get("spell_reason") or q.get("reason") or "unknown").replace(" ", "_")
            marker = {"id": f"quality-open-{sid}", "t_original": repr(float(since)), "clock_original": "host",
                      "sensor_id": sid, "duration": repr(round(stop - start, 3)),
                      "detail": f"{q.get('detail', '')}; still bad when the recording stopped",
                      "label": f"BAD_{reason}", "source": "quality", "t_host": repr(float(since)),
                      "t_global": repr(start), "clock": "global" if self.time.host_offset(node) is not None else "host",
                      "host": node}  # fmt: skip
            self.writer.add_json(RecordKind.MARKER, marker)
            log.info("recorder %s: %s was bad (%s) when the recording stopped: marked from %.3f for %.3f s",
                     self.session.session_id, sid, reason, start, stop - start)  # fmt: skip

    def _link_video(self, info: dict[str, Any]) -> None:
        """A camera's frames stay in its video file; put that file into the session folder too
        (a hard link: same bytes, survives the camera's own folder being cleaned; a symbolic
        link across file systems). ``extra.session_video`` names it for the exporters."""
        source = Path(str(info.get("extra", {}).get("video_file") or ""))
        if not source.name or not source.is_file():
            return
        target = self.directory / "video" / source.name
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                try:
                    target.symlink_to(source)
                except OSError as exc:
                    self._warn(f"{info.get('sensor_id')}: video {source} not linked into the session: {exc}")
                    return
        info.setdefault("extra", {})["session_video"] = f"video/{source.name}"

    def _snapshot_clocks(self, c: redis.Redis) -> None:
        nodes = sorted({str(i.get("node_id", "")) for i in self.infos.values()} | {self.node_id})
        pipe = c.pipeline(transaction=False)
        for sid in self.sensor_ids:
            pipe.hgetall(self.keys.clock(sid))
        for node in nodes:
            pipe.hgetall(self.keys.host_offset(node))
        res = pipe.execute()
        clocks = {sid: {_s(k): _s(v) for k, v in h.items()} for sid, h in zip(self.sensor_ids, res, strict=False) if h}
        offsets = {}
        for node, h in zip(nodes, res[len(self.sensor_ids) :], strict=True):
            if not h:
                continue
            offsets[node] = {_s(k): _s(v) for k, v in h.items()}
            est = OffsetEstimate.from_mapping(h)
            if est is not None:
                self.time.set_host_offset(node, est.offset, est.uncertainty, est.drift, est.t_ref)
        self.writer.add_json(RecordKind.CLOCK, {"time": time.time(), "clocks": clocks, "hostoffsets": offsets})  # type: ignore[union-attr]

    def _read(self, c: redis.Redis, pending: bool) -> int:
        """Read one round (pending entries first); returns entries handled."""
        streams = dict(self._pending_from) if pending else {k: ">" for k in self._stream_keys()}
        block = None if pending else int(min(self.flush_interval, 0.2) * 1000)
        handled = self._consume(c.xreadgroup(self.group, self.node_id, streams, count=READ_COUNT, block=block), pending)
        self._publish_derived_markers(c)
        return handled

    def _consume(self, res: Any, pending: bool) -> int:
        """Spool one XREADGROUP answer (``pending``: re-delivered entries, whose last id per
        stream is kept to read on from); returns entries handled."""
        handled = 0
        if isinstance(res, dict):  # RESP3
            res = list(res.items())
        for key_raw, entries in res or []:
            key = _s(key_raw)
            for eid, fields in entries:
                handled += 1
                if pending:
                    self._pending_from[key] = _s(eid)
                self._acks.setdefault(key, []).append(eid)
                if not fields:  # trimmed from Redis before we read it
                    self.status.lost_entries += 1
                    self._warn(f"{key}: entry {_s(eid)} was trimmed from Redis before it was recorded")
                    continue
                self._handle(key, _s(eid), fields)
        return handled

    def _publish_derived_markers(self, c: redis.Redis) -> None:
        """Put the marker sensors' samples into the session's marker stream (the one inbox;
        kept for the next round if Redis fails, deduplicated by ``derived_id`` on reading)."""
        if not self._derived_markers:
            return
        pipe = c.pipeline(transaction=False)
        for marker in self._derived_markers:
            pipe.xadd(self.keys.markers(self.session.session_id), marker)
        pipe.execute()
        self._derived_markers = []

    def _handle(self, key: str, eid: str, fields: dict[bytes, bytes]) -> None:
        assert self.writer is not None
        if key == self.keys.markers(self.session.session_id):
            marker = {_s(k): _s(v) for k, v in fields.items() if k != b"id"}
            self.writer.add_json(RecordKind.MARKER, {"id": eid} | marker)
            return
        if key == self.keys.groups:
            try:
                members = json.loads(fields.get(b"members", b"[]"))
            except ValueError:
                self.status.bad_entries += 1
                return
            mine = set(self.sensor_ids)
            try:
                t_group = float(fields.get(b"t_global", b"nan"))
            except ValueError:
                t_group = float("nan")
            before_start = t_group < (self.session.started or 0.0) - GROUP_MARGIN_S  # late groups of older events
            if not before_start and any(m.get("sensor_id") in mine for m in members):
                obj = {_s(k): _s(v) for k, v in fields.items() if k != b"members"}
                self.writer.add_json(RecordKind.GROUP, obj | {"members": members, "id": eid})
            return
        sid = key[len(self.keys.stream("")) :]
        try:
            entry = decode_entry(sid, eid, fields)
        except CodecError as exc:
            self.status.bad_entries += 1
            self._warn(f"{sid}: undecodable stream entry {eid} skipped ({exc})")
            return
        batch = entry.batch
        if len(batch) and self._ended_before_start(batch, entry.node_id):
            return  # read only for the batch straddling the start (see _start_id): not part of it
        missing_before = self.gaps.missing.get(sid, 0)
        if not self.gaps.check(batch):  # re-delivered after a crash: the spool has it
            self.status.duplicates += 1
            return
        missing = self.gaps.missing.get(sid, 0) - missing_before
        if missing:
            self.status.missing_batches += missing
            self._warn(f"{sid}: {missing} batches missing before seq {batch.seq}")
        if len(batch):
            self.last_arrival[sid] = float(batch.t_arrival[-1])
        use_delta = self.session.compact and batch.attribute in DELTA_ATTRIBUTES
        self.writer.add_batch(batch, eid, use_delta)
        if batch.attribute in MARKER_ATTRIBUTES and batch.values.dtype == object and len(batch):
            self._derived_markers.extend(self._markers_of(batch))

    def _ended_before_start(self, batch: SampleBatch, node_id: str) -> bool:
        """True for a batch whose last sample arrived more than ``PRE_START_KEEP_S`` before the
        session's start (global, through its node's host offset when known)."""
        started = self.session.started
        if not started:
            return False
        return float(self.time.to_global(node_id, float(batch.t_arrival[-1]))) < started - PRE_START_KEEP_S

    def _markers_of(self, batch: SampleBatch) -> list[dict[str, str]]:
        """One session marker per sample of a marker sensor (an LSL marker outlet, …): its
        label, the source, the sample's own timestamp and its global time as known now
        (measured clock domains exactly, others at arrival; exports refine it)."""
        raw = self.infos.get(batch.sensor_id)
        info = SensorInfo.from_json(json.dumps(raw)) if raw else None
        source = f"{info.transport}:{info.device_name}" if info else batch.sensor_id
        t_local = batch.t_local if batch.t_local is not None else batch.t_arrival
        t_host = self.time.to_host(batch.sensor_id, batch.t_local, batch.t_arrival)
        node = info.node_id if info else ""
        t_global = self.time.to_global(node, t_host)
        offset = self.time.host_offset(node)
        labels = batch.values[:, 0]
        host = socket.gethostname()
        return [
            {"label": str(labels[i]), "source": source, "sensor_id": batch.sensor_id,
             "t_original": repr(float(t_local[i])),
             "clock_original": (info.clock_domain or info.transport) if info and batch.t_local is not None else "host",
             "t_host": repr(float(t_host[i])), "t_global": repr(float(t_global[i])),
             "clock": "global" if offset is not None else "host", "host": host,
             "derived_id": f"{batch.sensor_id}:{batch.seq}:{i}"}
            for i in range(len(batch))
        ]  # fmt: skip

    def _warn(self, message: str) -> None:
        log.warning("recorder %s: %s", self.session.session_id, message)
        if len(self.status.warnings) < 100:
            self.status.warnings.append(message)
        assert self.writer is not None
        self.writer.add_json(RecordKind.EVENT, {"time": time.time(), "level": "warning", "message": message})
