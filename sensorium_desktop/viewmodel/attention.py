"""Publishes what this viewer pays attention to, per sensor, for the nodes' backpressure."""

from __future__ import annotations

import time

import redis
import redis.asyncio

from ..bus.attention import attention_entry
from ..bus.keys import Keys
from ..core.backpressure import Attention, AttentionTracker, ViewState

#: Published levels expire after this long unless refreshed (a crashed GUI stops counting).
ATTENTION_TTL_S = 6.0


class AttentionModel:
    """Tracks view states of sensors in this GUI and writes levels to Redis.

    Redis layout: hash ``attention:<sensor>`` field ``<viewer>`` = ``"<level>|<expires epoch s>"``.
    """

    def __init__(self, keys: Keys, viewer_id: str) -> None:
        self.keys = keys
        self.viewer_id = viewer_id
        self.tracker = AttentionTracker()
        self.minimized = False
        self.known: set[str] = set()
        self.published: dict[str, Attention] = {}

    def set_view(self, sensor_id: str, panel: str, state: ViewState) -> None:
        """Record how panel ``panel`` shows ``sensor_id`` now."""
        self.known.add(sensor_id)
        self.tracker.set_view(sensor_id, panel, state, time.monotonic())

    def clear_panel(self, panel: str) -> None:
        self.tracker.remove_viewer(panel, time.monotonic())

    def register(self, sensor_ids: list[str]) -> None:
        """Sensors listed in the device tree (registered but unseen → ``low``)."""
        for sid in sensor_ids:
            if sid not in self.known:
                self.known.add(sid)
                self.tracker.set_view(sid, "tree", ViewState(registered=True), time.monotonic())

    def levels(self) -> dict[str, Attention]:
        now = time.monotonic()
        if self.minimized:
            return dict.fromkeys(self.known, Attention.NONE)
        return {sid: self.tracker.level(sid, now) for sid in self.known}

    async def publish(self, c: redis.asyncio.Redis) -> dict[str, Attention]:
        """Write every known sensor's level with a fresh expiry; returns what was written."""
        levels = self.levels()
        expires = time.time() + ATTENTION_TTL_S
        pipe = c.pipeline(transaction=False)
        for sid, level in levels.items():
            key = self.keys.attention(sid)
            pipe.hset(key, self.viewer_id, attention_entry(level, expires))
            pipe.expire(key, int(ATTENTION_TTL_S * 10))
        try:
            await pipe.execute()
        except (redis.RedisError, OSError):
            return {}
        self.published = levels
        return levels

    async def withdraw(self, c: redis.asyncio.Redis) -> None:
        """Remove this viewer's entries (on close)."""
        pipe = c.pipeline(transaction=False)
        for sid in self.known:
            pipe.hdel(self.keys.attention(sid), self.viewer_id)
        try:
            await pipe.execute()
        except (redis.RedisError, OSError):
            pass
