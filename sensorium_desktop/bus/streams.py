"""Reading sample streams back: decode entries, track cursors, detect gaps."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
import redis.asyncio

from ..core.codec import CodecError, decode_batch, encode_batch
from ..core.samples import SampleBatch
from .keys import Keys

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StreamEntry:
    """One decoded stream entry: the batch plus its publication metadata."""

    stream_id: str
    batch: SampleBatch
    node_id: str
    t_published: float


def _s(v: bytes | str | None, default: str = "") -> str:
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else str(v)


def decode_entry(sensor_id: str, entry_id: bytes | str, fields: dict[bytes, Any]) -> StreamEntry:
    """Decode a raw XREAD/XRANGE entry; raises :class:`CodecError` when malformed."""
    try:
        seq = int(fields[b"seq"])
        idx = int(fields[b"idx"])
        attr = _s(fields[b"attr"])
        data = fields[b"data"]
    except (KeyError, ValueError) as exc:
        raise CodecError(f"stream entry {_s(entry_id)} of {sensor_id} lacks field {exc}") from exc
    batch = decode_batch(data, sensor_id, attr, seq, idx)
    return StreamEntry(_s(entry_id), batch, _s(fields.get(b"node")), float(_s(fields.get(b"tpub"), "0") or 0))


def entry_fields(batch: SampleBatch, node_id: str, t_published: float) -> dict[str, Any]:
    """The fields of one stream entry holding ``batch`` (what :func:`decode_entry` reads)."""
    return {"seq": batch.seq, "idx": batch.first_index, "n": len(batch), "attr": batch.attribute, "node": node_id,
            "tpub": repr(t_published), "data": encode_batch(batch)}  # fmt: skip


def top_of_entries(entries: list) -> tuple[int, int, int]:
    """(seq, next sample index, ms) of an ``XREVRANGE … COUNT 1`` answer, or (-1, 0, 0)."""
    if not entries:
        return -1, 0, 0
    entry_id, fields = entries[0]
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(fields[b"seq"]), int(fields[b"idx"]) + int(fields[b"n"]), int(eid.split("-")[0])


def sensor_of_stream(keys: Keys, stream_key: bytes | str) -> str:
    return _s(stream_key)[len(keys.stream("")) :]


class GapTracker:
    """Per-sensor sequence continuity: counts missing and duplicate batches."""

    def __init__(self) -> None:
        self.next_seq: dict[str, int] = {}
        self.missing: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}

    def check(self, batch: SampleBatch) -> bool:
        """True when ``batch`` is new (not a duplicate); records gaps."""
        sid = batch.sensor_id
        expected = self.next_seq.get(sid)
        if expected is not None:
            if batch.seq < expected:
                self.duplicates[sid] = self.duplicates.get(sid, 0) + 1
                return False
            if batch.seq > expected:
                self.missing[sid] = self.missing.get(sid, 0) + batch.seq - expected
                log.warning("stream %s: %d batches missing before seq %d", sid, batch.seq - expected, batch.seq)
        self.next_seq[sid] = batch.seq + 1
        return True


def read_range(
    c: redis.Redis, keys: Keys, sensor_id: str, start: str = "-", end: str = "+", count: int | None = None
) -> list[StreamEntry]:
    """Entries of one sensor stream between ids ``start`` and ``end`` (inclusive)."""
    raw = c.xrange(keys.stream(sensor_id), start, end, count=count)
    return [decode_entry(sensor_id, eid, f) for eid, f in raw]


def read_all(c: redis.Redis, keys: Keys, sensor_id: str, page: int = 1000) -> list[StreamEntry]:
    """Every entry of one sensor stream, paged."""
    out: list[StreamEntry] = []
    start = "-"
    while True:
        chunk = read_range(c, keys, sensor_id, start, "+", count=page)
        out.extend(chunk)
        if len(chunk) < page:
            return out
        start = "(" + chunk[-1].stream_id


async def read_tail_async(c: redis.asyncio.Redis, keys: Keys, sensor_id: str, since_ms: int) -> list[StreamEntry]:
    """Entries with stream ids at or after ``since_ms`` (history for a new plot)."""
    raw = await c.xrange(keys.stream(sensor_id), f"{since_ms}-0", "+")
    out = []
    for eid, f in raw:
        try:
            out.append(decode_entry(sensor_id, eid, f))
        except CodecError as exc:
            log.error("%s: skipping malformed entry: %s", sensor_id, exc)
    return out


#: Entries read per sensor by :func:`first_sample_times`.
FIRST_ENTRIES = 16


async def first_sample_times(
    c: redis.asyncio.Redis, keys: Keys, sensors: dict[str, float], since: float
) -> dict[str, float]:
    """Host time (s) at which each sensor's first sample published since ``since`` (global
    s) was taken, for the sensors that have one: arrival minus the known latency (``sensors``
    maps sensor id to it, s); with a device clock, the lowest such estimate over the first
    entries' deliveries, each moved back by its device-clock distance from the first sample
    (excess delays are one-sided: the lowest is the closest). Malformed entries are skipped."""
    out: dict[str, float] = {}
    start = f"{int(since * 1000)}-0"
    for sid, latency in sensors.items():
        batches = []
        for eid, fields in await c.xrange(keys.stream(sid), min=start, count=FIRST_ENTRIES):
            try:
                batch = decode_entry(sid, eid, fields).batch
            except CodecError:
                continue
            if len(batch):
                batches.append(batch)
        if not batches:
            continue
        first = batches[0]
        if first.t_local is None:
            out[sid] = float(first.t_arrival[0]) - latency
            continue
        x = np.concatenate([b.device_times for b in batches])
        y = np.concatenate([b.t_arrival for b in batches])
        out[sid] = float(np.min(y - latency - (x - x[0])))
    return out
