"""Host clock → global clock offset, estimated with round trips to Redis ``TIME``.

The global clock of a lab is the Redis server's clock: it does not move when leadership
changes, and every node can reach it. Each probe brackets one ``TIME`` call between two
host-clock reads; the server read happened somewhere in that interval, so
``offset = server - (t0 + t1) / 2`` is off by at most ``rtt / 2``. Like LSL's time
correction we keep bursts of probes and trust the ones with the smallest round trip.
"""

from __future__ import annotations

import collections
import math
import socket
import time
from dataclasses import dataclass

import redis
import redis.asyncio

from ..core.hostclock import host_time
from ..core.timemap import HostOffset
from .keys import Keys


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """``global = host + offset`` (s); ``rtt`` of the best probes (s); 1-sigma (s)."""

    offset: float
    rtt: float
    uncertainty: float
    probes: int
    updated: float

    def host_offset(self) -> HostOffset:
        """As the time map's :class:`HostOffset` (a constant with its 1-sigma)."""
        return HostOffset(self.offset, self.uncertainty)

    def to_mapping(self) -> dict[str, str]:
        return {k: repr(getattr(self, k)) for k in ("offset", "rtt", "uncertainty", "probes", "updated")}

    @classmethod
    def from_mapping(cls, m: dict[bytes, bytes]) -> OffsetEstimate | None:
        try:
            return cls(float(m[b"offset"]), float(m[b"rtt"]), float(m[b"uncertainty"]), int(float(m[b"probes"])),
                       float(m[b"updated"]))  # fmt: skip
        except (KeyError, ValueError):
            return None


class GlobalClockProbe:
    """Keeps the best probes of the last ``window`` seconds."""

    def __init__(self, window: float = 60.0, burst: int = 8) -> None:
        self.window = window
        self.burst = burst
        self.samples: collections.deque[tuple[float, float, float]] = collections.deque()  # (when, rtt, offset)

    def probe(self, c: redis.Redis) -> tuple[float, float]:
        """One burst of ``TIME`` round trips; keeps and returns the best (offset, rtt)."""
        best = (math.inf, 0.0)
        for _ in range(self.burst):
            t0 = host_time()
            sec, usec = c.time()
            t1 = host_time()
            rtt = t1 - t0
            if rtt < best[0]:
                best = (rtt, sec + usec / 1e6 - 0.5 * (t0 + t1))
        now = time.monotonic()
        self.samples.append((now, best[0], best[1]))
        while self.samples and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        return best[1], best[0]

    def estimate(self) -> OffsetEstimate | None:
        """Offset from the probes whose round trip is within 1.5x the fastest."""
        if not self.samples:
            return None
        rtts = [s[1] for s in self.samples]
        fastest = min(rtts)
        good = [s[2] for s in self.samples if s[1] <= 1.5 * fastest + 1e-6]
        offsets = sorted(good)
        offset = offsets[len(offsets) // 2]
        spread = (offsets[-1] - offsets[0]) / 2 if len(offsets) > 1 else 0.0
        # the server read lies within +-rtt/2: uniform → sigma rtt/sqrt(12); plus 1 us TIME resolution
        sigma = math.sqrt((fastest / math.sqrt(12.0)) ** 2 + spread**2 + 1e-12)
        return OffsetEstimate(offset, fastest, sigma, len(self.samples), time.time())

    def publish(self, c: redis.Redis, keys: Keys, node_id: str) -> OffsetEstimate | None:
        est = self.estimate()
        if est is not None:
            c.hset(keys.host_offset(node_id), mapping=est.to_mapping())
        return est


# The readers of the published host → global offsets (every other module reads them here).
# One shape: an :class:`OffsetEstimate`, or None / left out while a node has published none.


def read_offsets(c: redis.Redis, keys: Keys, node_ids: list[str]) -> dict[str, OffsetEstimate]:
    """Host offsets published by the given nodes (missing ones are left out)."""
    pipe = c.pipeline(transaction=False)
    for n in node_ids:
        pipe.hgetall(keys.host_offset(n))
    out = {}
    for n, m in zip(node_ids, pipe.execute(), strict=True):
        est = OffsetEstimate.from_mapping(m) if m else None
        if est is not None:
            out[n] = est
    return out


def _this_host(info: dict[bytes, bytes]) -> bool:
    return (info.get(b"host") or b"").decode("utf-8", "replace") == socket.gethostname()


def local_offset(c: redis.Redis, keys: Keys) -> OffsetEstimate | None:
    """The host → global offset published by a node on this host (None: none publishes one)."""
    for raw in sorted(c.smembers(keys.nodes)):
        node = raw.decode() if isinstance(raw, bytes) else str(raw)
        if _this_host(c.hgetall(keys.node_info(node))):
            est = OffsetEstimate.from_mapping(c.hgetall(keys.host_offset(node)))
            if est is not None:
                return est
    return None


async def local_offset_async(c: redis.asyncio.Redis, keys: Keys) -> OffsetEstimate | None:
    """:func:`local_offset` on an asyncio client."""
    for raw in sorted(await c.smembers(keys.nodes)):
        node = raw.decode() if isinstance(raw, bytes) else str(raw)
        if _this_host(await c.hgetall(keys.node_info(node))):
            est = OffsetEstimate.from_mapping(await c.hgetall(keys.host_offset(node)))
            if est is not None:
                return est
    return None
