"""A node's backpressure: the attention viewers ask for, the machine's load, and the batch
policy (``core.backpressure``) each sensor gets from them, published as it changes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import redis
import redis.asyncio

from ..bus.keys import Keys
from ..bus.publisher import StreamPublisher
from ..core.attributes import SYNC_EVENT_ATTRIBUTES
from ..core.backpressure import Attention, BackpressureConfig, LoadEstimator, compute_config
from ..core.batching import Batcher
from ..core.hostclock import host_time
from ..core.samples import SensorInfo
from ..core.status import NodeState

log = logging.getLogger(__name__)

BACKPRESSURE_INTERVAL_S = 2.0


def memory_fraction() -> float:
    """Memory use against the cgroup limit when there is one, else against RAM (0..1)."""
    try:
        limit_text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit_text != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            return used / int(limit_text)
    except (OSError, ValueError):
        pass
    return psutil.virtual_memory().percent / 100.0


class FlowControl:
    """Attention per sensor (the highest any viewer asked for, at least ``default``), load
    (``load``: CPU, queue, memory) → each sensor's batch policy, set on ``batcher`` and
    published (``<p>:bp:<sensor>``) when it changes. ``state`` gets the load verdict."""

    def __init__(self, keys: Keys, default: Attention, batcher: Batcher, publisher: StreamPublisher,
                 sensor_infos: Callable[[], list[SensorInfo]], state: NodeState) -> None:  # fmt: skip
        self.keys = keys
        self.default = default
        self.batcher = batcher
        self.publisher = publisher
        self.sensor_infos = sensor_infos
        self.state = state
        self.load = LoadEstimator()
        #: attention per sensor id as last computed
        self.attention: dict[str, Attention] = {}
        #: sensors that never go below high attention (shared events: flashes, TTL)
        self.forced: dict[str, Attention] = {}
        self.published: dict[str, BackpressureConfig] = {}
        #: the node's asyncio Redis client while it runs
        self.redis: redis.asyncio.Redis | None = None

    def force_sync_events(self, infos: list[SensorInfo]) -> None:
        """Shared events (flashes, TTL) are grouped as soon as they are a second old: they must
        not wait in a batch window (they are rare, so this costs nothing)."""
        for s in infos:
            if s.attribute in SYNC_EVENT_ATTRIBUTES or s.extra.get("sync_events"):
                self.forced[s.sensor_id] = Attention.HIGH
                level = max(Attention.HIGH, self.default)
                self.batcher.set_config(s.sensor_id, compute_config(level), host_time())

    async def loop(self, stop: asyncio.Event) -> None:
        """:meth:`update` every :data:`BACKPRESSURE_INTERVAL_S` until ``stop``."""
        while not stop.is_set():
            try:
                await self.update()
            except (redis.RedisError, OSError) as exc:
                log.debug("node: backpressure update failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BACKPRESSURE_INTERVAL_S)

    async def read_attention(self) -> dict[str, Attention]:
        """Highest unexpired attention any viewer published for each of our sensors."""
        c = self.redis
        infos = self.sensor_infos()
        if c is None or not infos:
            return {}
        pipe = c.pipeline(transaction=False)
        for info in infos:
            pipe.hgetall(self.keys.attention(info.sensor_id))
        now = time.time()
        out: dict[str, Attention] = {}
        for info, entries in zip(infos, await pipe.execute(), strict=True):
            level = self.default
            for raw in entries.values():
                try:
                    name, _, expires = raw.decode().partition("|")
                    if float(expires or "inf") >= now:
                        level = max(level, Attention.parse(name))
                except ValueError:
                    continue
            out[info.sensor_id] = max(level, self.forced.get(info.sensor_id, Attention.NONE))
        return out

    async def update(self) -> None:
        """Recompute load and attention; re-send configs that changed (8-field hash)."""
        queue_fill = min(1.0, self.publisher.queue_depth / 1000.0)
        pending = sum(self.batcher.pending_messages(s.sensor_id) for s in self.sensor_infos())
        level, mem_protect, pressure = self.load.assess(queue_fill, min(1.0, pending / 1000.0), memory_fraction())
        self.state.system_load, self.state.pressure = level.value, round(pressure, 3)
        self.state.memory_protection = mem_protect
        self.attention = await self.read_attention()
        now_ms = int(time.time() * 1000)
        c = self.redis
        changed: list[tuple[str, BackpressureConfig]] = []
        for sid, att in self.attention.items():
            cfg = compute_config(att, level, mem_protect, now_ms)
            if not cfg.same_policy(self.published.get(sid)):
                self.batcher.set_config(sid, cfg, host_time())
                changed.append((sid, cfg))
        if c is not None and changed:
            pipe = c.pipeline(transaction=False)
            for sid, cfg in changed:
                pipe.hset(self.keys.backpressure(sid), mapping={k: json.dumps(v) for k, v in cfg.to_dict().items()})
            await pipe.execute()
            for sid, cfg in changed:
                self.published[sid] = cfg
