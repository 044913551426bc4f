"""The crash-safe on-disk spool of one recording (one directory per session).

Files in a session directory::

    session.json          metadata, sensors, state; replaced atomically (write, fsync, rename)
    spool-000001.sdr      append-only data, CRC-framed records (core.framing), rolled at 256 MB
    index.jsonl           one line per flushed chunk: file, end offset, per-sensor counts

A *chunk* is what one :meth:`SpoolWriter.flush` appends: the records buffered since the
last flush (the recorder flushes at least every second), written, fsynced, then indexed.
After a crash or power cut :func:`recover` truncates each file to its last intact record
(a torn tail is a half-written chunk) and rebuilds the index, so a recording is valid up to
its last complete chunk. A full disk (ENOSPC) truncates the half-written chunk away and
raises :class:`SpoolFullError`; everything written before stays valid.

Record payloads start with a kind byte:

- ``BATCH``: sensor id, attribute, stream id (strings), seq, first index (i64), encoding
  (u8: 0 = core.codec batch, 1 = delta values + f64 times), then the encoded batch;
- ``MARKER``, ``CLOCK``, ``GROUP``, ``SENSOR``, ``EVENT``: one JSON object each.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import mmap
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from ..core import delta
from ..core.codec import HEADER_SIZE, CodecError, decode_arrays, encode_batch, numeric_layout
from ..core.framing import frame, pack_strings, scan_frames_resync, unpack_strings
from ..core.samples import SampleBatch

log = logging.getLogger(__name__)

SPOOL_VERSION = 1
SESSION_FILE = "session.json"
INDEX_FILE = "index.jsonl"
#: a sync check's result beside its recording (see :mod:`sensorium_desktop.recording.synccheck`)
SYNC_CHECK_FILE = "sync-check.json"
ROLL_BYTES = 256 * 1024 * 1024
_BATCH_HEAD = struct.Struct("<qqB")
#: the write call of the spool (a seam: tests inject ENOSPC here, for the spool alone)
_write = os.write
_DELTA_HEAD = struct.Struct("<IB")  # n samples, has t_local


class RecordKind(IntEnum):
    BATCH = 1
    MARKER = 2
    CLOCK = 3
    GROUP = 4
    SENSOR = 5
    EVENT = 6


RECORD_KINDS = frozenset(int(k) for k in RecordKind)
_KIND_OF = {int(k): k for k in RecordKind}  # a dict lookup per record, not an enum call


class Encoding(IntEnum):
    CODEC = 0
    DELTA = 1


class SpoolError(OSError):
    """The spool cannot be written or read."""


class SpoolFullError(SpoolError):
    """The disk is full: recording must stop; what was written stays valid."""


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("spool-*.sdr"))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def not_a_recording(directory: Path) -> str:
    """Why ``directory`` is not a recording (it does not exist, is a file, has no session.json)."""
    directory = Path(directory)
    if not directory.exists():
        return f"{directory} does not exist"
    if not directory.is_dir():
        return f"{directory} is a file, not a recording folder"
    return f"{directory} is not a recording (no {SESSION_FILE})"


def read_session_file(directory: Path) -> dict[str, Any]:
    path = Path(directory) / SESSION_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise SpoolError(not_a_recording(directory)) from exc
    except ValueError as exc:
        raise SpoolError(f"{path} is not valid JSON: {exc}") from exc


def recording_name(meta: dict[str, Any], directory: Path) -> str:
    """A recording's one name, as its folder and the window show it (``session.json``'s
    ``name``, chosen at the start; older recordings: the BIDS name, the session id)."""
    return str(meta.get("name") or meta.get("bids_name") or meta.get("session_id") or directory.name)


def encode_batch_record(batch: SampleBatch, stream_id: str, use_delta: bool = False) -> bytes:
    """The payload of a BATCH record. ``use_delta``: store values in the Sensocto delta layout
    (single-channel numeric batches of >= 2 samples; others fall back to the batch codec)."""
    head = bytes([RecordKind.BATCH]) + pack_strings(batch.sensor_id, batch.attribute, stream_id)
    if use_delta and len(batch) >= 2 and batch.channel_count == 1 and batch.values.dtype != object:
        vals = batch.values[:, 0].astype(np.float64)
        if np.isfinite(vals).all():
            t_ms = np.round(batch.t_arrival * 1000.0).astype(np.int64)
            body = delta.encode(t_ms, vals)
            times = [batch.t_arrival.astype("<f8").tobytes()]
            if batch.t_local is not None:
                times.append(batch.t_local.astype("<f8").tobytes())
            meta = _DELTA_HEAD.pack(len(batch), int(batch.t_local is not None))
            return b"".join([head, _BATCH_HEAD.pack(batch.seq, batch.first_index, Encoding.DELTA), meta, *times, body])
    return head + _BATCH_HEAD.pack(batch.seq, batch.first_index, Encoding.CODEC) + encode_batch(batch)


@dataclass(slots=True)
class BatchRecord:
    """A BATCH record's fields with its arrays as views into the spool bytes (no copy)."""

    sensor_id: str
    attribute: str
    stream_id: str
    seq: int
    first_index: int
    t_arrival: np.ndarray
    t_local: np.ndarray | None
    values: np.ndarray


def parse_batch_record(payload: memoryview) -> BatchRecord:
    """Parse a BATCH record payload (without the kind byte); raises :class:`CodecError`."""
    try:
        (sid, attr, stream_id), off = unpack_strings(payload, 3)
        seq, first, enc = _BATCH_HEAD.unpack_from(payload, off)
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise CodecError(f"malformed batch record: {exc}") from exc
    off += _BATCH_HEAD.size
    if enc == Encoding.CODEC:
        ta, tl, vals = decode_arrays(payload[off:])
        return BatchRecord(sid, attr, stream_id, seq, first, ta, tl, vals)
    if enc != Encoding.DELTA:
        raise CodecError(f"unknown spool encoding {enc}")
    n, has_local = _DELTA_HEAD.unpack_from(payload, off)
    off += _DELTA_HEAD.size
    if len(payload) < off + 8 * n * (2 if has_local else 1):
        raise CodecError("truncated delta record")
    ta = np.frombuffer(payload, dtype="<f8", count=n, offset=off)
    off += 8 * n
    tl = None
    if has_local:
        tl = np.frombuffer(payload, dtype="<f8", count=n, offset=off)
        off += 8 * n
    try:
        _t, vals = delta.decode(payload[off:])
    except delta.DeltaFormatError as exc:
        raise CodecError(str(exc)) from exc
    if vals.size != n:
        raise CodecError(f"delta block holds {vals.size} values, record says {n}")
    return BatchRecord(sid, attr, stream_id, seq, first, ta, tl, vals.astype(np.float32).reshape(n, 1))


@dataclass(slots=True)
class BatchSpan:
    """A BATCH record of numeric values in the codec's layout, left in the spool's bytes: where
    its arrays lie in ``payload`` (byte offsets). A sensor's spans are copied straight into its
    arrays (one copy, no array per record); :meth:`record` gives the usual views."""

    sensor_id: str
    attribute: str
    stream_id: str
    seq: int
    first_index: int
    n: int
    chans: int
    dtype: np.dtype
    has_local: bool
    payload: memoryview
    times_at: int
    values_at: int

    def record(self) -> BatchRecord:
        """The record with its arrays as views into the spool bytes."""
        ta = np.frombuffer(self.payload, dtype="<f8", count=self.n, offset=self.times_at)
        tl = (
            np.frombuffer(self.payload, dtype="<f8", count=self.n, offset=self.times_at + 8 * self.n)
            if self.has_local
            else None
        )
        count = self.n * self.chans
        vals = np.frombuffer(self.payload, dtype=self.dtype, count=count, offset=self.values_at)
        return BatchRecord(self.sensor_id, self.attribute, self.stream_id, self.seq, self.first_index, ta, tl,
                           vals.reshape(self.n, self.chans))  # fmt: skip


_U16 = struct.Struct("<H")


def parse_batch_span(payload: memoryview, names: dict[bytes, tuple[str, str]]) -> BatchSpan | BatchRecord:
    """A BATCH record payload (without the kind byte) as a :class:`BatchSpan` when its values
    are numeric in the codec's layout, else parsed by :func:`parse_batch_record`. ``names``
    caches the decoded (sensor, attribute) strings by their bytes (one sensor's records repeat
    them); raises :class:`CodecError` as :func:`parse_batch_record` does."""
    size = len(payload)
    try:
        (l1,) = _U16.unpack_from(payload, 0)
        (l2,) = _U16.unpack_from(payload, 2 + l1)
        (l3,) = _U16.unpack_from(payload, 4 + l1 + l2)
    except struct.error:
        return parse_batch_record(payload)
    ids_end = 4 + l1 + l2
    off = ids_end + 2 + l3
    if off + _BATCH_HEAD.size + HEADER_SIZE > size:
        return parse_batch_record(payload)
    key = payload[:ids_end].tobytes()
    ids = names.get(key)
    try:
        if ids is None:
            (sid, attr), _ = unpack_strings(payload, 2)
            ids = names[key] = (sid, attr)
        stream_id = payload[ids_end + 2 : off].tobytes().decode("utf-8")
    except (ValueError, struct.error, UnicodeDecodeError):
        return parse_batch_record(payload)
    seq, first, enc = _BATCH_HEAD.unpack_from(payload, off)
    layout = numeric_layout(payload, off + _BATCH_HEAD.size) if enc == Encoding.CODEC else None
    if layout is None:
        return parse_batch_record(payload)
    n, chans, dt, has_local, values_at = layout
    times_at = off + _BATCH_HEAD.size + HEADER_SIZE
    return BatchSpan(ids[0], ids[1], stream_id, seq, first, n, chans, dt, has_local, payload, times_at, values_at)


def json_record(kind: RecordKind, obj: dict[str, Any]) -> bytes:
    return bytes([kind]) + json.dumps(obj, separators=(",", ":"), default=str).encode("utf-8")


@dataclass
class SpoolStats:
    """What a writer has made durable (after the last successful flush)."""

    chunks: int = 0
    bytes: int = 0
    records: int = 0
    samples: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)


class SpoolWriter:
    """Appends records to a session's spool; durable only after :meth:`flush` returns.

    Not thread-safe: one recorder thread owns it.
    """

    def __init__(self, directory: Path, roll_bytes: int = ROLL_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.roll_bytes = roll_bytes
        self.stats = SpoolStats()
        self._pending: list[bytes] = []
        self._pending_samples: dict[str, int] = {}
        self._pending_seq: dict[str, int] = {}
        files = spool_files(self.directory)
        if files:
            recovered = recover(self.directory)
            self.stats = recovered
            self._path = files[-1]
        else:
            self._path = self.directory / "spool-000001.sdr"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._index_fd = os.open(self.directory / INDEX_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.directory)

    def add_batch(self, batch: SampleBatch, stream_id: str, use_delta: bool = False) -> None:
        self._pending.append(frame(encode_batch_record(batch, stream_id, use_delta)))
        sid = batch.sensor_id
        self._pending_samples[sid] = self._pending_samples.get(sid, 0) + len(batch)
        self._pending_seq[sid] = max(self._pending_seq.get(sid, -1), batch.seq)

    def add_json(self, kind: RecordKind, obj: dict[str, Any]) -> None:
        self._pending.append(frame(json_record(kind, obj)))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = _write(self._fd, view)
            view = view[written:]

    def flush(self) -> int:
        """Write, fsync and index the pending records as one chunk; returns bytes written.

        On ENOSPC (or any write error) the partial chunk is cut off again and
        :class:`SpoolFullError` / :class:`SpoolError` is raised; the file stays valid.
        """
        if not self._pending:
            return 0
        data = b"".join(self._pending)
        if self._size and self._size + len(data) > self.roll_bytes:
            self._roll()
        start = self._size
        try:
            self._write_all(data)
            os.fsync(self._fd)
        except OSError as exc:
            self._cut_back(start)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFullError(exc.errno, f"disk full writing {self._path}: {exc.strerror}") from exc
            raise SpoolError(exc.errno, f"cannot write {self._path}: {exc}") from exc
        self._size = start + len(data)
        self.stats.chunks += 1
        self.stats.bytes += len(data)
        self.stats.records += len(self._pending)
        for sid, n in self._pending_samples.items():
            self.stats.samples[sid] = self.stats.samples.get(sid, 0) + n
        self.stats.last_seq.update(self._pending_seq)
        line = {"file": self._path.name, "end": self._size, "records": len(self._pending), "time": time.time(),
                "samples": self._pending_samples, "last_seq": self._pending_seq}  # fmt: skip
        self._pending, self._pending_samples, self._pending_seq = [], {}, {}
        try:  # the index is a cache: recover() rebuilds it, so losing a line is harmless
            os.write(self._index_fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())
            os.fsync(self._index_fd)
        except OSError as exc:
            log.warning("spool %s: index line not written (%s); it is rebuilt on recovery", self.directory, exc)
        return len(data)

    def discard_pending(self) -> None:
        self._pending, self._pending_samples, self._pending_seq = [], {}, {}

    def _cut_back(self, length: int) -> None:
        try:
            os.ftruncate(self._fd, length)
            os.fsync(self._fd)
        except OSError as exc:  # pragma: no cover - the next recover() trims the torn tail instead
            log.error("spool %s: cannot truncate back to %d: %s", self._path, length, exc)

    def _roll(self) -> None:
        os.close(self._fd)
        number = int(self._path.stem.split("-")[1]) + 1
        self._path = self.directory / f"spool-{number:06d}.sdr"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0
        _fsync_dir(self.directory)

    def close(self) -> None:
        for fd in (self._fd, self._index_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def recover(directory: Path) -> SpoolStats:
    """Truncate torn tails, rebuild ``index.jsonl`` and return what the spool holds."""
    directory = Path(directory)
    stats = SpoolStats()
    lines = []
    for path in spool_files(directory):
        data = path.read_bytes()
        end = 0
        records = 0
        samples: dict[str, int] = {}
        last_seq: dict[str, int] = {}
        damaged: list[list[int]] = []
        for off, stop, payload in scan_frames_resync(data, first_bytes=RECORD_KINDS):
            if payload is None:
                if stop < len(data):  # damage in the middle: left in place, read around
                    damaged.append([off, stop])
                    log.error("spool %s: bytes %d-%d are damaged; the records after them are kept", path, off, stop)
                continue
            end = stop
            records += 1
            if payload and payload[0] == RecordKind.BATCH:
                try:
                    batch = parse_batch_record(payload[1:])
                except (CodecError, ValueError, struct.error):
                    continue
                samples[batch.sensor_id] = samples.get(batch.sensor_id, 0) + batch.t_arrival.size
                last_seq[batch.sensor_id] = max(last_seq.get(batch.sensor_id, -1), batch.seq)
        if end < len(data):
            log.warning("spool %s: cutting a torn tail of %d bytes (crash mid-chunk)", path, len(data) - end)
            with open(path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        stats.bytes += end
        stats.records += records
        for sid, n in samples.items():
            stats.samples[sid] = stats.samples.get(sid, 0) + n
        for sid, s in last_seq.items():
            stats.last_seq[sid] = max(stats.last_seq.get(sid, -1), s)
        line = {"file": path.name, "end": end, "records": records, "time": time.time(), "samples": samples,
                "last_seq": last_seq, "recovered": True}  # fmt: skip
        if damaged:
            line["damaged"] = damaged
        lines.append(line)
    stats.chunks = len(lines)
    tmp = directory / (INDEX_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / INDEX_FILE)
    return stats


def iter_records(
    directory: Path, damage: list[tuple[str, int, int]] | None = None
) -> Iterator[tuple[RecordKind, memoryview]]:
    """Yield (kind, payload without the kind byte) of every intact record, in write order,
    reading on past damaged bytes (appended to ``damage`` as ``(file, start, end)``).

    Payloads are views into a memory map of the file: copy what must outlive the iteration.
    """
    for path in spool_files(Path(directory)):
        if path.stat().st_size == 0:
            continue
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for off, stop, payload in scan_frames_resync(mapped, first_bytes=RECORD_KINDS):
            if payload is None:
                log.error("spool %s: bytes %d-%d are damaged; reading on after them", path, off, stop)
                if damage is not None:
                    damage.append((path.name, off, stop))
                continue
            if not payload:
                continue
            kind = _KIND_OF.get(payload[0])
            if kind is None:
                log.warning("spool %s: skipping a record of unknown kind %d", path, payload[0])
                continue
            yield kind, payload[1:]


def damaged_ranges(directory: Path) -> list[tuple[str, int, int]]:
    """``(file, start, end)`` of every byte range of the spool that is not an intact frame
    (CRCs only, no decoding: a quick check for listings)."""
    out = []
    for path in spool_files(Path(directory)):
        if path.stat().st_size == 0:
            continue
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        out += [(path.name, a, b) for a, b, p in scan_frames_resync(mapped, first_bytes=RECORD_KINDS) if p is None]
    return out


def index_summary(directory: Path) -> dict[str, Any]:
    """Samples per sensor, bytes and chunks from ``index.jsonl`` (fast; no data read)."""
    samples: dict[str, int] = {}
    chunks = 0
    path = Path(directory) / INDEX_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        chunks += 1
        for sid, n in entry.get("samples", {}).items():
            samples[sid] = samples.get(sid, 0) + int(n)
    size = sum(p.stat().st_size for p in spool_files(Path(directory)))
    return {"samples": samples, "chunks": chunks, "bytes": size}


def read_sync_check(directory: Path) -> dict[str, Any] | None:
    """The stored result of a recording's sync check, or None (none, or unreadable)."""
    try:
        data = json.loads((Path(directory) / SYNC_CHECK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("sensors"), dict) else None


def latency_corrections(directory: Path) -> dict[str, float]:
    """Sensor id → latency correction (s) a check applied to this recording (subtracted)."""
    result = read_sync_check(directory)
    applied = (result or {}).get("applied_ms") or {}
    out = {}
    for sid, ms in applied.items():
        try:
            value = float(ms) / 1e3
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out[str(sid)] = value
    return out
