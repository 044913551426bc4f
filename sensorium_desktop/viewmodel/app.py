"""The application model: everything the window shows, refreshed from Redis (no Qt)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

import redis
import redis.asyncio

from ..bus.connection import async_client, mask_url
from ..bus.keys import Keys
from .attention import AttentionModel
from .base import Event
from .devices import DeviceControl, DeviceTreeModel
from .lab import LabStatusModel
from .live import LiveStore
from .sessions import SessionsModel

log = logging.getLogger(__name__)

REFRESH_S = 1.0


@dataclass(slots=True)
class StatusSummary:
    """What the status bar shows."""

    redis_ok: bool = False
    redis_text: str = ""
    error: str = ""
    nodes: dict[str, dict] = field(default_factory=dict)
    samples_per_s: float = 0.0
    updated: float = 0.0


class AppModel:
    """Owns the headless models and the asyncio tasks that keep them current."""

    def __init__(self, redis_url: str, keys: Keys, viewer_id: str) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.devices = DeviceTreeModel(keys)
        self.control = DeviceControl(keys)
        self.live = LiveStore(keys)
        self.attention = AttentionModel(keys, viewer_id)
        self.sessions = SessionsModel(keys, viewer_id)
        self.lab = LabStatusModel(redis_url, keys)
        self.status = StatusSummary(redis_text=mask_url(redis_url))
        self.status_changed = Event()
        self.redis: redis.asyncio.Redis | None = None
        self.stop_event = asyncio.Event()

    async def read_status(self, c: redis.asyncio.Redis) -> StatusSummary:
        s = StatusSummary(redis_text=mask_url(self.redis_url))
        try:
            await c.ping()
            s.redis_ok = True
            node_ids = sorted(x.decode() for x in await c.smembers(self.keys.nodes))
            raws = [await c.get(self.keys.telemetry(n)) for n in node_ids]
            for nid, raw in zip(node_ids, raws, strict=True):
                if raw:
                    with contextlib.suppress(ValueError):
                        s.nodes[nid] = json.loads(raw)
            s.samples_per_s = sum(sum(t.get("rates", {}).values()) for t in s.nodes.values())
        except (redis.RedisError, OSError) as exc:
            s.error = f"Redis unreachable: {exc}"
        s.updated = time.time()
        self.status = s
        self.status_changed.emit(s)
        return s

    async def refresh(self, c: redis.asyncio.Redis) -> None:
        """One refresh of everything slow-changing (device tree, status, attention)."""
        tree = await self.devices.refresh(c)
        self.attention.register(list(tree.sensors))
        await self.sessions.refresh(c)
        await self.control.refresh(c)
        await self.read_status(c)
        await self.attention.publish(c)

    async def _refresh_loop(self, c: redis.asyncio.Redis, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh(c)
            except Exception:
                log.exception("refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_S)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` (or :meth:`shutdown`)."""
        stop = stop or self.stop_event
        self.stop_event = stop
        c = async_client(self.redis_url)
        self.redis = c
        tasks = [
            asyncio.create_task(self._refresh_loop(c, stop)),
            asyncio.create_task(self.live.follow(c, stop)),
            asyncio.create_task(self.lab.run(stop)),
        ]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.attention.withdraw(c)
            await c.aclose()

    def shutdown(self) -> None:
        self.stop_event.set()
