"""Publishing sample batches to per-sensor Redis streams without ever losing one.

Guarantees (per sensor):

- every batch gets a sequence number ``seq`` (consecutive) and the index of its first sample
  (``idx``) at publish time, so consumers can detect gaps;
- batches are appended in order by a Lua script that checks the stream's newest ``seq`` is
  the one we appended last: a retry of a batch already there is a no-op ("dup"), and if
  Redis lost our tail (restart between ``appendfsync everysec`` flushes) nothing is appended
  after the hole; the publisher re-sends the lost batches from its replay buffer (the last
  ``replay_seconds`` of acknowledged batches) first;
- stream IDs are ``<ms>-<seq>`` (ms of the first sample's arrival), so streams are
  trimmed by time: the warm window of the sensor's attribute type (5 min for waveforms,
  1 h for slow streams; :func:`~sensorium_desktop.core.attributes.warm_seconds`);
- batches queue in memory (up to ``memory_limit`` bytes) only while Redis is connected;
  while it is unreachable they go to an append-only framed file on disk (fsynced every
  second), drained in order (rate-limited) on reconnect; a spill file left by a crashed
  node is drained on the next start;
- a node restarted while Redis was away numbers provisionally from its local state and
  re-bases unsent batches on the first connect if Redis is ahead.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import redis

from ..core.attributes import warm_seconds
from ..core.backoff import Backoff
from ..core.codec import encode_batch
from ..core.framing import frame, pack_strings, scan_frames, unpack_strings
from ..core.hostclock import host_time
from ..core.samples import SampleBatch, SensorInfo
from .connection import client as make_client
from .keys import Keys
from .sentinel import SENTINEL_BACKOFF, is_sentinel_url, parse_sentinel_url, primary_address
from .streams import top_of_entries

log = logging.getLogger(__name__)

#: KEYS[1] stream; ARGV: expected newest seq, minid, stream id, seq, then field/value pairs.
APPEND_SCRIPT = """
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = -1
if #top > 0 then
  local f = top[1][2]
  for i = 1, #f, 2 do if f[i] == 'seq' then prev = tonumber(f[i + 1]) end end
end
if prev >= tonumber(ARGV[4]) then return {'dup', tostring(prev)} end
if prev ~= tonumber(ARGV[1]) then return {'lost', tostring(prev)} end
local args = {KEYS[1], 'MINID', '~', ARGV[2], ARGV[3]}
for i = 5, #ARGV do args[#args + 1] = ARGV[i] end
local id = redis.pcall('XADD', unpack(args))
if type(id) == 'table' and id.err then
  args[5] = '*'
  id = redis.call('XADD', unpack(args))
end
return {'ok', id}
"""

_REC = struct.Struct("<qqIddB")  # seq, first_index, n, t_first, t_last, confirmed


@dataclass(slots=True)
class PublishRecord:
    """One encoded batch waiting for (or kept after) its XADD.

    ``confirmed`` is False while the sensor's numbering has not yet been checked against
    Redis (the node started while Redis was unreachable); such records are re-based on
    the first connect if Redis already holds their numbers.
    """

    sensor_id: str
    attribute: str
    seq: int
    first_index: int
    n: int
    t_first: float
    t_last: float
    data: bytes
    confirmed: bool = True

    def to_bytes(self) -> bytes:
        head = pack_strings(self.sensor_id, self.attribute)
        rec = _REC.pack(self.seq, self.first_index, self.n, self.t_first, self.t_last, int(self.confirmed))
        return head + rec + self.data

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview) -> PublishRecord:
        (sid, attr), off = unpack_strings(buf, 2)
        seq, idx, n, t0, t1, conf = _REC.unpack_from(buf, off)
        return cls(sid, attr, seq, idx, n, t0, t1, bytes(buf[off + _REC.size :]), bool(conf))

    @property
    def nbytes(self) -> int:
        return len(self.data) + 64


@dataclass(slots=True)
class _SensorState:
    attribute: str
    next_seq: int = 0
    next_index: int = 0
    #: the newest seq the stream holds as far as we know (the append script checks it)
    top_seq: int = -1
    #: floor for the ms part of stream IDs
    last_ms: int = 0
    confirmed: bool = False
    acked: collections.deque[tuple[float, PublishRecord]] = field(default_factory=collections.deque)


class SpillFile:
    """Append-only framed records on disk, read back in order from a moving offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "ab+")  # noqa: SIM115 - kept open for the publisher's lifetime
        self._read_offset = 0
        self._count = 0
        self._last_sync = time.monotonic()
        self._dirty = False
        data = path.read_bytes()
        end = 0
        for off, payload in scan_frames(data):
            end = off + 8 + len(payload)
            self._count += 1
        if end != len(data):
            log.warning("spill file %s: dropping torn tail of %d bytes", path, len(data) - end)
            self._fh.truncate(end)

    def __len__(self) -> int:
        return self._count

    def records(self) -> list[PublishRecord]:
        """All unread records."""
        self._fh.flush()
        data = self.path.read_bytes()
        return [PublishRecord.from_bytes(p) for _, p in scan_frames(data, self._read_offset)]

    def append(self, rec: PublishRecord) -> None:
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(frame(rec.to_bytes()))
        self._count += 1
        self._dirty = True
        if time.monotonic() - self._last_sync > 1.0:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._dirty = False
        self._last_sync = time.monotonic()

    def read(self, max_records: int, max_bytes: int) -> list[tuple[int, PublishRecord]]:
        """Up to ``max_records`` records from the read offset: (end offset, record)."""
        self._fh.flush()
        self._fh.seek(self._read_offset)
        out: list[tuple[int, PublishRecord]] = []
        total = 0
        off = self._read_offset
        while len(out) < max_records and total < max_bytes:
            head = self._fh.read(8)
            if len(head) < 8:
                break
            length = int.from_bytes(head[:4], "little")
            body = self._fh.read(length)
            if len(body) < length:
                break
            off += 8 + length
            total += length
            out.append((off, PublishRecord.from_bytes(body)))
        return out

    def consume(self, end_offset: int, n: int) -> None:
        """Mark records up to ``end_offset`` as delivered; truncate when all are."""
        self._read_offset = end_offset
        self._count -= n
        if self._count <= 0:
            self._fh.truncate(0)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._read_offset = 0
            self._count = 0

    def rewrite(self, transform: Callable[[PublishRecord], PublishRecord], skip: int = 0) -> None:
        """Atomically replace the unread records with ``transform(record)`` of each, dropping
        the first ``skip`` of them."""
        recs = [transform(r) for r in self.records()[skip:]]
        self._replace([frame(r.to_bytes()) for r in recs], len(recs))

    def prepend(self, recs: list[PublishRecord]) -> None:
        """Atomically put ``recs`` before the unread records (they are older than all of them)."""
        self._fh.flush()
        self._fh.seek(self._read_offset)
        rest = self._fh.read()
        self._replace([*(frame(r.to_bytes()) for r in recs), rest], self._count + len(recs))

    def _replace(self, chunks: list[bytes], count: int) -> None:
        """Write ``chunks`` (framed records) to a new file, fsync it and put it in place."""
        tmp = self.path.with_suffix(".rewrite")
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        self._fh.close()
        os.replace(tmp, self.path)
        self._fh = open(self.path, "ab+")  # noqa: SIM115
        self._read_offset = 0
        self._count = count

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.sync()
            self._fh.close()


@dataclass(slots=True)
class LeftoverSpill:
    """What an earlier run left in the spill file: batches, samples, sensors, arrival span (s)."""

    batches: int
    samples: int
    sensors: list[str]
    t_first: float
    t_last: float
    origin: dict[str, str]

    @classmethod
    def of(cls, records: list[PublishRecord], origin: dict[str, str]) -> LeftoverSpill:
        return cls(len(records), sum(r.n for r in records), sorted({r.sensor_id for r in records}),
                   min(r.t_first for r in records), max(r.t_last for r in records), dict(origin))  # fmt: skip

    def describe(self) -> str:
        span = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.t_first))
        return (
            f"{self.batches} spilled batches ({self.samples} samples of {', '.join(self.sensors[:8])}"
            f"{' …' if len(self.sensors) > 8 else ''}; {span} + {self.t_last - self.t_first:.1f} s)"
        )

    def origin_text(self) -> str:
        o = self.origin
        if not any(o.values()):
            return "an unknown lab"
        return f"lab {o.get('lab') or '?'} (prefix {o.get('prefix') or '?'} at {o.get('endpoint') or '?'})"


class _Lost(Exception):
    """Redis no longer holds batches it acknowledged: reconcile before sending more."""


class StreamPublisher:
    """Thread that writes batches to Redis streams in order, spilling to disk when needed.

    ``publish`` is thread-safe and never blocks on Redis. ``on_connect`` callbacks run in the
    publisher thread after every (re)connect (the node re-registers its sensors there).
    """

    def __init__(
        self,
        url: str,
        keys: Keys,
        node_id: str,
        spill_dir: Path,
        memory_limit: int = 64 * 1024 * 1024,
        drain_rate: float = 32 * 1024 * 1024,
        replay_seconds: float = 10.0,
        warm_seconds: float | None = None,
        max_batch: int = 256,
    ) -> None:
        self.url = url
        self.keys = keys
        self.node_id = node_id
        self.memory_limit = memory_limit
        self.drain_rate = drain_rate
        self.replay_seconds = replay_seconds
        #: one warm window for every sensor (s), or None: by attribute type (core.attributes.warm_seconds)
        self.warm_seconds = warm_seconds
        self.max_batch = max_batch
        self.on_connect: list[Callable[[redis.Redis], None]] = []
        self._lock = threading.Condition()
        self._queue: collections.deque[PublishRecord] = collections.deque()
        self._resend: collections.deque[PublishRecord] = collections.deque()
        self._queue_bytes = 0
        self._sensors: dict[str, _SensorState] = {}
        spill_dir.mkdir(parents=True, exist_ok=True)
        self.spill_dir = spill_dir
        self._spill = SpillFile(spill_dir / f"{node_id}.spill")
        self._seq_file = spill_dir / f"{node_id}.sequences.json"
        self._origin_file = spill_dir / f"{node_id}.spill.json"
        #: the lab (``<p>:lab``) this process publishes to, once known
        self.lab_id = ""
        #: where the numbering and the spill of an earlier run belong ({} when nothing is left)
        self._origin: dict[str, str] = {}
        #: records at the head of the spill file written by an earlier run, and what they hold
        self._leftover: LeftoverSpill | None = None
        self._settled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self._done_before_loss = 0
        self._append_sha: str | None = None  # the append script's hash, loaded on connect
        self.connected = False
        self.last_error = ""
        self.latencies: collections.deque[float] = collections.deque(maxlen=4096)
        self.stats = collections.Counter[str]()
        self._load_local_state()

    # -- sequence bookkeeping ---------------------------------------------------------------
    def _load_local_state(self) -> None:
        """Numbering from the last run: the saved counters and whatever is still spilled."""
        try:
            saved = json.loads(self._seq_file.read_text())
            if "sensors" not in saved:  # the format before the lab was recorded
                saved = {"sensors": saved}
            sensors = {str(sid): (str(a), int(q), int(i)) for sid, (a, q, i) in saved["sensors"].items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            if self._seq_file.exists():
                log.error("publisher: numbering file %s unreadable (%s); numbering from Redis", self._seq_file, exc)
            saved, sensors = {}, {}
        for sid, (attr, seq, idx) in sensors.items():
            self._sensors[sid] = _SensorState(attr, seq, idx)
        self._origin = {k: str(saved.get(k, "")) for k in ("lab", "prefix", "endpoint")}
        try:
            self._origin.update({k: str(v) for k, v in json.loads(self._origin_file.read_text()).items()})
        except (OSError, ValueError, AttributeError):
            pass
        records = self._spill.records()
        for rec in records:
            st = self._sensors.setdefault(rec.sensor_id, _SensorState(rec.attribute))
            st.next_seq = max(st.next_seq, rec.seq + 1)
            st.next_index = max(st.next_index, rec.first_index + rec.n)
        if records:
            self._leftover = LeftoverSpill.of(records, self._origin)
            log.warning("publisher: %s by an earlier run (written for %s); drained into that lab only, else "
                        "held for the operator", self._leftover.describe(), self._leftover.origin_text())  # fmt: skip
        self._warn_other_spills()

    def _warn_other_spills(self) -> None:
        """Spill files of other node ids in the same folder are never drained by this node: say so."""
        for path in sorted(self.spill_dir.glob("*.spill")):
            if path != self._spill.path and path.stat().st_size > 0:
                node = path.name.removesuffix(".spill")
                log.warning("publisher: %s holds data of node %s that this node (%s) does not drain; run that "
                            "node (--node-id %s) to send it", path, node, self.node_id, node)  # fmt: skip

    def _identity(self) -> dict[str, str]:
        return {"lab": self.lab_id, "prefix": self.keys.prefix, "endpoint": _endpoint(self.url)}

    def _save_local_state(self) -> None:
        with self._lock:
            snap = {sid: (st.attribute, st.next_seq, st.next_index) for sid, st in self._sensors.items()}
        if self._settled:
            identity = self._identity()
        else:  # never reached Redis: keep what an earlier run's data belongs to, else where we tried
            identity = self._origin if any(self._origin.values()) else self._identity()
        tmp = self._seq_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**identity, "sensors": snap}))
        os.replace(tmp, self._seq_file)

    def _settle(self, c: redis.Redis) -> None:
        """On the first connect: learn the lab, then drain an earlier run's spill (saying what)
        when it was written for this lab, or hold it (moved aside, logged) when it was not; the
        numbering of another lab is dropped so this lab's streams continue without gaps."""
        if self._settled:
            return
        c.set(self.keys.lab, uuid.uuid4().hex, nx=True)
        lab = (c.get(self.keys.lab) or b"").decode()
        with self._lock:
            if self._settled:
                return
            self.lab_id = lab
            origin = self._origin
            same_lab = (
                origin.get("lab") == lab
                if origin.get("lab")
                else (origin.get("prefix") == self.keys.prefix and origin.get("endpoint") == _endpoint(self.url))
            )
            leftover, self._leftover = self._leftover, None
            if leftover is not None and same_lab:
                log.warning("publisher: draining %s left by an earlier run of node %s into lab %s",
                            leftover.describe(), self.node_id, lab)  # fmt: skip
                self.stats["leftover_drained_batches"] += leftover.batches
            elif leftover is not None:
                held = self._hold_locked(leftover)
                self.stats["leftover_held_batches"] += leftover.batches
                log.error("publisher: NOT draining %s: it was written for %s, this is lab %s at %s; moved to %s "
                          "for the operator", leftover.describe(), leftover.origin_text(), lab, _endpoint(self.url),
                          held)  # fmt: skip
            if not same_lab and (any(origin.values()) or leftover is not None):
                self._renumber_locked()  # another lab's counters: number from this lab's streams
            self._settled = True
        self._write_origin()

    def _hold_locked(self, leftover: LeftoverSpill) -> Path:
        """Move the earlier run's records (the head of the spill file) to ``held/``; records of
        this run stay, renumbered from 0 (they are provisional: reconcile anchors them)."""
        records = self._spill.records()
        old, mine = records[: leftover.batches], records[leftover.batches :]
        held_dir = self.spill_dir / "held"
        held_dir.mkdir(parents=True, exist_ok=True)
        held = held_dir / f"{self.node_id}-{time.strftime('%Y%m%d-%H%M%S')}.spill"
        with open(held, "wb") as f:
            for r in old:
                f.write(frame(r.to_bytes()))
            f.flush()
            os.fsync(f.fileno())
        about = {**self._origin, "batches": leftover.batches, "samples": leftover.samples, "sensors": leftover.sensors}
        held.with_suffix(".json").write_text(json.dumps(about))
        self._spill.rewrite(lambda r: r, skip=len(old))
        if mine:
            log.info("publisher: %d batches of this run stay in %s", len(mine), self._spill.path)
        return held

    def _renumber_locked(self) -> None:
        """Number every sensor from 0 again (provisional): its spilled records of this run keep
        their order and spacing; reconcile then anchors them after the streams' tops."""
        pending = self._spill.records()
        base: dict[str, tuple[int, int]] = {}
        for r in pending:
            seq0, idx0 = base.get(r.sensor_id, (r.seq, r.first_index))
            base[r.sensor_id] = (min(seq0, r.seq), min(idx0, r.first_index))
        for sid, st in self._sensors.items():
            seq0, idx0 = base.get(sid, (st.next_seq, st.next_index))
            st.next_seq, st.next_index = st.next_seq - seq0, st.next_index - idx0
            st.last_ms, st.top_seq, st.confirmed = 0, -1, False

        def renumber(r: PublishRecord) -> PublishRecord:
            seq0, idx0 = base[r.sensor_id]
            r.seq, r.first_index, r.confirmed = r.seq - seq0, r.first_index - idx0, False
            return r

        if pending:
            self._spill.rewrite(renumber)

    def _write_origin(self) -> None:
        """Record which lab this node's spill file is for (read by the next run)."""
        with contextlib.suppress(OSError):
            tmp = self._origin_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._identity()))
            os.replace(tmp, self._origin_file)

    def add_sensors(self, infos: list[SensorInfo]) -> None:
        """Prepare numbering; anchored to the streams' tops when Redis answers now."""
        tops: dict[str, tuple[int, int, int]] = {}
        try:
            c = make_client(self.url, timeout=2.0, retries=0)
            try:
                self._settle(c)
                for info in infos:
                    tops[info.sensor_id] = _stream_top(c, self.keys.stream(info.sensor_id))
            finally:
                c.close()
        except (redis.RedisError, OSError) as exc:
            log.warning("publisher: Redis not reachable at start (%s); numbering is provisional", exc)
            tops = {}
        unconfirmed = {r.sensor_id for r in self._spill.records() if not r.confirmed}
        with self._lock:
            for info in infos:
                st = self._sensors.setdefault(info.sensor_id, _SensorState(info.attribute))
                if info.sensor_id in tops and info.sensor_id not in unconfirmed:
                    self._anchor_locked(st, *tops[info.sensor_id])

    @staticmethod
    def _anchor_locked(st: _SensorState, top_seq: int, top_idx: int, top_ms: int) -> None:
        st.next_seq = max(st.next_seq, top_seq + 1)
        st.next_index = max(st.next_index, top_idx)
        st.last_ms = max(st.last_ms, top_ms)
        st.top_seq = top_seq
        st.confirmed = True

    # -- producer side ---------------------------------------------------------------------
    def publish(self, batch: SampleBatch) -> PublishRecord:
        """Number, encode and queue ``batch`` (thread-safe, non-blocking)."""
        data = encode_batch(batch)
        n = len(batch)
        t0 = float(batch.t_arrival[0]) if n else host_time()
        t1 = float(batch.t_arrival[-1]) if n else t0
        with self._lock:
            st = self._sensors.get(batch.sensor_id)
            if st is None:
                st = self._sensors[batch.sensor_id] = _SensorState(batch.attribute)
            rec = PublishRecord(batch.sensor_id, batch.attribute, st.next_seq, st.next_index, n, t0, t1, data,
                                st.confirmed)  # fmt: skip
            st.next_seq += 1
            st.next_index += n
            if len(self._spill) or not self.connected or self._queue_bytes + rec.nbytes > self.memory_limit:
                self._spill_queue_locked()
                self._spill.append(rec)
                self.stats["spilled_batches"] += 1
            else:
                self._queue.append(rec)
                self._queue_bytes += rec.nbytes
            self.stats["queued_batches"] += 1
            self.stats["queued_samples"] += n
            self._lock.notify()
        return rec

    def _spill_queue_locked(self) -> None:
        """Move the in-memory queue to the spill file (keeps the order invariant)."""
        while self._queue:
            rec = self._queue.popleft()
            self._spill.append(rec)
            self.stats["spilled_batches"] += 1
        self._queue_bytes = 0

    @property
    def queue_depth(self) -> int:
        """Batches waiting (re-sends + memory + spill)."""
        return len(self._resend) + len(self._queue) + len(self._spill)

    @property
    def spilled(self) -> int:
        return len(self._spill)

    def latency_percentiles(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float]:
        """Arrival → Redis latency percentiles in ms over recent batches."""
        if not self.latencies:
            return {}
        arr = np.fromiter(self.latencies, dtype=np.float64)
        return {f"p{int(q)}": float(np.percentile(arr, q)) * 1e3 for q in qs}

    # -- thread ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stream-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Flush to Redis for up to ``timeout`` s; whatever is left stays in the spill file."""
        deadline = time.monotonic() + timeout
        while self.queue_depth and time.monotonic() < deadline:
            if not self.connected and self.stats["reconnect_attempts"]:
                break  # Redis is down: no point waiting
            time.sleep(0.02)
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread:
            self._thread.join(timeout=max(1.0, deadline - time.monotonic()))
        with self._lock:
            self._spill_queue_locked()
            self._spill.close()
        self._save_local_state()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    def _run(self) -> None:
        # behind sentinels an attempt asks them for the primary: cheap, and a failover ends at an
        # unknown moment, so retry often (a promoted replica is written to within ~0.5 s)
        backoff = Backoff(*SENTINEL_BACKOFF) if is_sentinel_url(self.url) else Backoff()
        last_save = time.monotonic()
        while not self._stop.is_set():
            if not self.connected:
                if not self._connect():
                    self.stats["reconnect_attempts"] += 1
                    self._stop.wait(backoff.next_delay())
                    continue
                backoff.reset()
            try:
                self._pump()
            except _Lost:
                assert self._client is not None
                try:
                    self._reconcile(self._client)
                except (redis.RedisError, OSError) as exc:
                    self._disconnected(exc)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self._disconnected(exc)
            except redis.ResponseError as exc:  # e.g. OOM: keep the data, retry later
                self.last_error = f"Redis refused a write: {exc}"
                log.error("publisher: %s", self.last_error)
                self.stats["write_errors"] += 1
                self._stop.wait(1.0)
            except Exception as exc:  # a bug must not end the thread silently: data would pile up
                self.last_error = f"publisher error: {type(exc).__name__}: {exc}"
                log.critical("publisher: unexpected error, reconnecting and carrying on", exc_info=True)
                self.stats["thread_errors"] += 1
                with contextlib.suppress(Exception):
                    self._disconnected(exc)
                self._stop.wait(backoff.next_delay())
            if time.monotonic() - last_save > 1.0:
                last_save = time.monotonic()
                with contextlib.suppress(OSError):
                    self._save_local_state()
                with self._lock:
                    self._spill.sync()

    def _connect(self) -> bool:
        try:
            c = make_client(self.url, timeout=5.0, retries=0)
            c.ping()
            self._settle(c)
            self._append_sha = str(c.script_load(APPEND_SCRIPT))  # sends call it by its hash: no SCRIPT EXISTS
            self._reconcile(c)
            for cb in self.on_connect:
                cb(c)
        except (redis.RedisError, OSError) as exc:
            self.last_error = f"Redis unreachable: {exc}"
            return False
        self._client = c
        self.connected = True
        if self.stats["disconnects"]:
            primary = primary_address(c)
            log.warning("publisher: reconnected to Redis%s; %d batches queued",
                        f" (primary {primary})" if primary else "", self.queue_depth)  # fmt: skip
        self.last_error = ""
        return True

    def _disconnected(self, exc: BaseException) -> None:
        if self.connected:
            log.warning("publisher: lost Redis (%s); queueing on disk", exc)
        self.connected = False
        with self._lock:  # queued data goes to disk: a node crash during the outage loses nothing
            self._spill_queue_locked()
            self._spill.sync()
            now = host_time()
            while self._resend:  # still owed re-sends: the next reconcile finds them again
                rec = self._resend.pop()
                self._sensors[rec.sensor_id].acked.appendleft((now, rec))
        self.stats["disconnects"] += 1
        self.last_error = f"Redis unreachable: {exc}"
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None

    def _reconcile(self, c: redis.Redis, only: set[str] | None = None) -> None:
        """Learn the streams' tops: anchor provisional numbering, queue lost batches first
        (``only``: just these sensors, e.g. the ones first seen at runtime)."""
        with self._lock:
            items = [(sid, st) for sid, st in self._sensors.items() if only is None or sid in only]
        pipe = c.pipeline(transaction=False)
        for sid, _ in items:
            pipe.xrevrange(self.keys.stream(sid), "+", "-", count=1)
        tops = {sid: top_of_entries(entries) for (sid, _), entries in zip(items, pipe.execute(), strict=True)}
        resend: list[PublishRecord] = []
        with self._lock:
            shifts: dict[str, tuple[int, int]] = {}
            pending = [*self._spill.records(), *self._queue]
            for sid, st in items:
                top_seq, top_idx, top_ms = tops[sid]
                if not st.confirmed:
                    prov = [r for r in pending if r.sensor_id == sid and not r.confirmed]
                    p_seq = min((r.seq for r in prov), default=st.next_seq)
                    p_idx = min((r.first_index for r in prov), default=st.next_index)
                    shift, ishift = max(0, top_seq + 1 - p_seq), max(0, top_idx - p_idx)
                    if shift or ishift:
                        log.warning("publisher: %s numbering restarted behind Redis; re-basing %d unsent"
                                    " batches by %d", sid, len(prov), shift)  # fmt: skip
                        self.stats["rebased_batches"] += len(prov)
                        shifts[sid] = (shift, ishift)
                    st.next_seq += shift
                    st.next_index += ishift
                    self._anchor_locked(st, top_seq, top_idx, top_ms)
                    continue
                st.last_ms = max(st.last_ms, top_ms)
                lost = [r for _, r in st.acked if r.seq > top_seq]
                if lost:
                    log.warning("publisher: Redis lost %d acknowledged batches of %s; re-sending", len(lost), sid)
                    self.stats["resent_batches"] += len(lost)
                    resend.extend(lost)
                    st.acked = collections.deque((t, r) for t, r in st.acked if r.seq <= top_seq)
                first = min((r.seq for r in lost), default=None)
                if first is None:
                    first = min((r.seq for r in pending if r.sensor_id == sid), default=st.next_seq)
                if first > top_seq + 1 and top_seq < st.top_seq:
                    gone = first - top_seq - 1
                    log.error("publisher: Redis lost %d batches of %s beyond the replay buffer", gone, sid)
                    self.stats["unrecoverable_batches"] += gone
                st.top_seq = top_seq

            anchored = {sid for sid, _ in items}

            def fix(r: PublishRecord) -> PublishRecord:
                if not r.confirmed and r.sensor_id in anchored:  # others wait for their own anchoring
                    s, i = shifts.get(r.sensor_id, (0, 0))
                    r.seq += s
                    r.first_index += i
                    r.confirmed = True
                return r

            if any(not r.confirmed and r.sensor_id in anchored for r in pending):
                if len(self._spill):
                    self._spill.rewrite(fix)
                for r in self._queue:
                    fix(r)
            resend.sort(key=lambda r: (r.t_first, r.seq))
            self._resend.extendleft(reversed(resend))

    def _take(self) -> tuple[list[PublishRecord], str, int, int]:
        """Next records to send: re-sends first, then the spill file (rate-limited), then
        memory. Returns (records, source, spill end offset, number of spill records)."""
        with self._lock:
            if self._resend:
                out = [self._resend.popleft() for _ in range(min(self.max_batch, len(self._resend)))]
                return out, "resend", -1, 0
            if len(self._spill):
                budget = int(max(self.drain_rate * 0.05, 1 << 20))
                got = self._spill.read(self.max_batch, budget)
                if got:
                    return [r for _, r in got], "spill", got[-1][0], len(got)
            if not self._queue:
                self._lock.wait(0.05)
            out = []
            while self._queue and len(out) < self.max_batch:
                rec = self._queue.popleft()
                self._queue_bytes -= rec.nbytes
                out.append(rec)
            return out, "memory", -1, 0

    def _pump(self) -> None:
        recs, source, spill_end, spill_n = self._take()
        if not recs:
            return
        assert self._client is not None
        with self._lock:
            unanchored = {r.sensor_id for r in recs if not self._sensors[r.sensor_id].confirmed}
            if unanchored and source != "spill":  # spill records stay in the file until consumed
                self._put_back_locked(recs, source)
        if unanchored:
            # a sensor first seen at runtime (or numbered while Redis was away): learn its stream's
            # top before its first append, or an earlier run's batches would make ours "dup"s
            self._reconcile(self._client, unanchored)
            return
        done = 0
        try:
            done = self._send(self._client, recs)
        except _Lost:
            done = self._done_before_loss
            raise
        finally:
            if done < len(recs) and source != "spill":  # unsent records go back in front, in order
                with self._lock:
                    self._put_back_locked(recs[done:], source)
        if source == "spill":
            with self._lock:
                self._spill.consume(spill_end, spill_n)
            self._stop.wait(sum(r.nbytes for r in recs) / self.drain_rate)

    def _put_back_locked(self, recs: list[PublishRecord], source: str) -> None:
        """Return taken records to the front of their queue, in order. Records taken from
        memory go before the spill file when it filled meanwhile (the memory limit was hit
        while they were in flight, e.g. a send blocked until its timeout): sent after the
        spilled ones, a later batch would reach Redis first and theirs be refused as
        duplicates — lost."""
        if source == "memory" and len(self._spill):
            self._spill.prepend(recs)
            self.stats["spill_prepends"] += 1
            return
        target = self._resend if source == "resend" else self._queue
        for rec in reversed(recs):
            target.appendleft(rec)
            if source == "memory":
                self._queue_bytes += rec.nbytes

    def _send(self, c: redis.Redis, recs: list[PublishRecord], reload: bool = True) -> int:
        """Append ``recs`` in one pipeline (one round trip: the append script by its hash);
        returns how many are done. Raises :class:`_Lost` (after the done ones) when Redis lost
        batches it had acknowledged. A server that forgot the script (flushed, restarted or
        promoted under a live connection) gets it again and the rest are sent once more."""
        sha = self._append_sha
        assert sha is not None
        now = host_time()
        now_ms = int(now * 1000)
        with self._lock:  # producers add sensors while we send (a device announcing streams)
            states = list(self._sensors.items())
        expect = {sid: st.top_seq for sid, st in states}
        floor = {sid: st.last_ms for sid, st in states}
        pipe = c.pipeline(transaction=False)
        for rec in recs:
            sid = rec.sensor_id
            window_ms = int(1000 * (self.warm_seconds or warm_seconds(rec.attribute)))
            ms = max(int(rec.t_first * 1000), floor[sid])
            if ms <= now_ms - window_ms:  # older than the warm window (drained after a long outage):
                ms = max(now_ms, floor[sid])  # stamp it now, or XADD's own trim would drop it at once
            floor[sid] = ms
            args: list[object] = [expect[sid], str(now_ms - window_ms), f"{ms}-{rec.seq}", rec.seq]
            for k, v in _fields(rec, self.node_id, now).items():
                args += [k, v]
            pipe.evalsha(sha, 1, self.keys.stream(sid), *args)
            expect[sid] = max(expect[sid], rec.seq)
        results = pipe.execute(raise_on_error=False)
        lost_sensors: set[str] = set()
        done = 0
        for rec, res in zip(recs, results, strict=True):
            if isinstance(res, redis.exceptions.NoScriptError) and reload:
                c.script_load(APPEND_SCRIPT)
                self.stats["script_reloads"] += 1
                try:
                    return done + self._send(c, recs[done:], reload=False)
                except _Lost:
                    self._done_before_loss += done
                    raise
            if isinstance(res, Exception):
                raise res
            st = self._sensors[rec.sensor_id]
            status = res[0].decode() if isinstance(res[0], bytes) else str(res[0])
            if status == "lost" or rec.sensor_id in lost_sensors:
                lost_sensors.add(rec.sensor_id)
                break
            if status == "dup":
                self.stats["duplicate_batches"] += 1
            else:
                sid_ms = res[1].decode() if isinstance(res[1], bytes) else str(res[1])
                st.last_ms = max(st.last_ms, int(sid_ms.split("-")[0]))
                self.stats["published_batches"] += 1
                self.stats["published_samples"] += rec.n
                self.latencies.append(now - rec.t_last)
                st.acked.append((now, rec))
            st.top_seq = max(st.top_seq, rec.seq)
            done += 1
        cutoff = now - self.replay_seconds
        for _sid, st in states:
            while st.acked and st.acked[0][0] < cutoff:
                st.acked.popleft()
        if lost_sensors:
            self._done_before_loss = done
            raise _Lost(", ".join(sorted(lost_sensors)))
        return done


def _endpoint(url: str) -> str:
    """host:port/db of a Redis URL, without credentials (identifies where a spill belongs);
    for a sentinel URL its sentinels and service (the lab's Redis, whichever PC is primary)."""
    if is_sentinel_url(url):
        u = parse_sentinel_url(url)
        return f"sentinel:{u.hosts}/{u.service}/{u.db}"
    parts = urlsplit(url)
    return f"{parts.hostname or parts.path}:{parts.port or ''}{parts.path if parts.hostname else ''}"


def _fields(rec: PublishRecord, node_id: str, now: float) -> dict[str, object]:
    return {
        "seq": rec.seq,
        "idx": rec.first_index,
        "n": rec.n,
        "attr": rec.attribute,
        "node": node_id,
        "tpub": repr(now),
        "data": rec.data,
    }


def _stream_top(c: redis.Redis, key: str) -> tuple[int, int, int]:
    """(seq, next sample index, ms) of the newest entry of a stream, or (-1, 0, 0)."""
    return top_of_entries(c.xrevrange(key, "+", "-", count=1))
