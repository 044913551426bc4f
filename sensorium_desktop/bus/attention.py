"""Attention holds in Redis: who needs a sensor's data soon, and how urgently.

Hash ``<p>:attention:<sensor>``: field = holder (a GUI viewer id, ``recording:<session>``),
value ``"<level>|<expires epoch s>"``. The acquiring node batches each sensor by the highest
unexpired level (see :mod:`sensorium_desktop.core.backpressure`). A recording session holds
its sensors at :data:`RECORDING_FLOOR` at least, so a hidden plot never delays what is being
recorded (latency only: nothing is ever dropped at any level).
"""

from __future__ import annotations

import time

import redis

from ..core.backpressure import Attention
from .keys import Keys

RECORDING_FLOOR = Attention.MEDIUM


def attention_entry(level: Attention, expires: float) -> str:
    """The stored value of one hold (``expires`` in epoch seconds)."""
    return f"{level.label}|{expires:.3f}"


def hold_attention(
    c: redis.Redis, keys: Keys, sensor_ids: list[str], holder: str, level: Attention, ttl_s: float
) -> None:
    """Hold ``sensor_ids`` at ``level`` or above for ``ttl_s`` seconds (refresh to keep it)."""
    expires = time.time() + ttl_s
    pipe = c.pipeline(transaction=False)
    for sid in sensor_ids:
        pipe.hset(keys.attention(sid), holder, attention_entry(level, expires))
        pipe.expire(keys.attention(sid), max(60, int(ttl_s * 10)))
    pipe.execute()


def hold_for_recording(c: redis.Redis, keys: Keys, session_id: str, sensor_ids: list[str], ttl_s: float = 10.0) -> None:
    """A recording session's hold: its sensors at least ``medium`` while it records."""
    hold_attention(c, keys, sensor_ids, f"recording:{session_id}", RECORDING_FLOOR, ttl_s)


def release_attention(c: redis.Redis, keys: Keys, sensor_ids: list[str], holder: str) -> None:
    """Remove ``holder``'s holds."""
    pipe = c.pipeline(transaction=False)
    for sid in sensor_ids:
        pipe.hdel(keys.attention(sid), holder)
    pipe.execute()
