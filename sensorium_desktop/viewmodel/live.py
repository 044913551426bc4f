"""Live data for plots: follows sensor streams in Redis into per-sensor ring buffers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import redis
import redis.asyncio

from ..bus.keys import Keys
from ..bus.streams import GapTracker, decode_entry, read_tail_async
from ..core.codec import CodecError
from ..core.ring import RingBuffer
from ..core.samples import SampleBatch, SensorInfo
from ..core.timemap import TimeMap
from .base import Event

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Subscription:
    info: SensorInfo
    ring: RingBuffer
    last_id: str = "$"
    t_last_data: float = 0.0
    latency: float = 0.0  # publish → here, seconds (last batch)
    holders: set[str] = field(default_factory=set)
    last_arrival: float = 0.0  # host arrival time (s) of the newest sample in the ring


class LiveStore:
    """Ring buffers of the last ``history_s`` seconds of each subscribed sensor.

    ``updated`` fires with the set of sensor ids that received data in a read.
    """

    def __init__(self, keys: Keys, history_s: float = 60.0) -> None:
        self.keys = keys
        self.history_s = history_s
        #: device → host, causally: the plots' time axis is this host's clock
        self.time = TimeMap()
        self.subs: dict[str, Subscription] = {}
        self.gaps = GapTracker()
        self.errors: dict[str, int] = {}
        self.updated = Event()
        self._wake = asyncio.Event()

    def capacity_for(self, info: SensorInfo) -> int:
        rate = info.nominal_rate if info.nominal_rate > 0 else 50.0
        return max(256, int(rate * self.history_s * 1.25))

    def subscribe(self, info: SensorInfo, holder: str = "plots") -> Subscription:
        """Start following ``info``'s stream for ``holder`` (a panel); history is back-filled
        on the next read. Several panels may hold one sensor."""
        sub = self.subs.get(info.sensor_id)
        if sub is None:
            if info.channel_format == "string":
                ring = RingBuffer(self.capacity_for(info), 1, np.float32)
            else:
                ring = RingBuffer(self.capacity_for(info), info.channel_count, np.float32)
            sub = Subscription(info, ring, last_id="")
            self.subs[info.sensor_id] = sub
            self.time.register(info)
            self._wake.set()
        sub.holders.add(holder)
        return sub

    def unsubscribe(self, sensor_id: str, holder: str = "plots") -> None:
        """``holder`` no longer needs ``sensor_id``; the stream is dropped when nobody does."""
        sub = self.subs.get(sensor_id)
        if sub is not None:
            sub.holders.discard(holder)
            if not sub.holders:
                del self.subs[sensor_id]

    def ingest(self, batch: SampleBatch) -> bool:
        """Append a batch to its ring (duplicates are ignored). True if appended."""
        sub = self.subs.get(batch.sensor_id)
        if sub is None or not self.gaps.check(batch):
            return False
        t = self.time.map_batch(batch)
        if batch.values.dtype == object:
            vals = np.ones((len(batch), 1), dtype=np.float32)  # string events plotted as ticks
        else:
            vals = batch.values
            if vals.shape[1] != sub.ring.channels:
                self.errors[batch.sensor_id] = self.errors.get(batch.sensor_id, 0) + 1
                return False
        sub.ring.append(t, vals)
        sub.t_last_data = time.time()
        if len(batch):
            sub.last_arrival = max(sub.last_arrival, float(batch.t_arrival[-1]))
        return True

    async def _backfill(self, c: redis.asyncio.Redis, sub: Subscription) -> None:
        since_ms = int((time.time() - self.history_s) * 1000)
        entries = await read_tail_async(c, self.keys, sub.info.sensor_id, since_ms)
        for e in entries:
            self.ingest(e.batch)
        sub.last_id = entries[-1].stream_id if entries else "0-0"
        if not entries:
            top = await c.xrevrange(self.keys.stream(sub.info.sensor_id), "+", "-", count=1)
            if top:
                eid = top[0][0]
                sub.last_id = eid.decode() if isinstance(eid, bytes) else str(eid)

    async def read_once(self, c: redis.asyncio.Redis, block_ms: int = 100) -> set[str]:
        """One XREAD over all subscriptions (back-filling new ones first)."""
        changed: set[str] = set()
        for sub in list(self.subs.values()):
            if not sub.last_id:
                await self._backfill(c, sub)
                changed.add(sub.info.sensor_id)
        # a panel may subscribe while a back-fill is awaited: it is back-filled on the next read
        streams = {self.keys.stream(s.info.sensor_id): s.last_id for s in self.subs.values() if s.last_id}
        if not streams:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), block_ms / 1000.0)
            return changed
        result = await c.xread(streams, count=1000, block=block_ms)
        now = time.time()
        prefix = len(self.keys.stream(""))
        for key, entries in result or []:
            sid = (key.decode() if isinstance(key, bytes) else key)[prefix:]
            stream_sub = self.subs.get(sid)
            if stream_sub is None:
                continue
            for eid, fields in entries:
                stream_sub.last_id = eid.decode() if isinstance(eid, bytes) else str(eid)
                try:
                    entry = decode_entry(sid, eid, fields)
                except CodecError as exc:
                    self.errors[sid] = self.errors.get(sid, 0) + 1
                    log.error("%s: malformed stream entry %s: %s", sid, stream_sub.last_id, exc)
                    continue
                if self.ingest(entry.batch):
                    stream_sub.latency = now - entry.t_published
                    changed.add(sid)
        if changed:
            self.updated.emit(changed)
        return changed

    async def follow(self, c: redis.asyncio.Redis, stop: asyncio.Event) -> None:
        """Read until ``stop``; survives Redis restarts (retries every second)."""
        while not stop.is_set():
            try:
                await self.read_once(c)
            except (redis.RedisError, OSError) as exc:
                log.warning("live view: Redis read failed (%s); retrying", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            except Exception:  # a bug or a hostile entry must not stop the live view for good
                self.errors["live view"] = self.errors.get("live view", 0) + 1
                log.exception("live view: read failed; carrying on")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
