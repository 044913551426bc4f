"""Host clock → global clock offset, estimated with round trips to Redis ``TIME``.

The global clock of a lab is the Redis server's clock: it does not move when leadership
changes, and every node can reach it. Each probe brackets one ``TIME`` call between two
host-clock reads; the server read happened somewhere in that interval, so
``offset = server - (t0 + t1) / 2`` is off by at most ``rtt / 2``. Like LSL's time
correction we keep bursts of probes and trust the ones with the smallest round trip.
"""

from __future__ import annotations

import collections
import logging
import math
import socket
import time
from dataclasses import dataclass

import numpy as np
import redis
import redis.asyncio

from ..core.hostclock import host_time
from ..core.timemap import HostOffset
from .keys import Keys
from .sentinel import primary_address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OffsetEstimate:
    """``global = host + offset + drift·(host − t_ref)`` (s; ``drift`` s/s, ``t_ref`` the host
    time of the newest probe used); ``rtt`` of the best probes (s); 1-sigma (s)."""

    offset: float
    rtt: float
    uncertainty: float
    probes: int
    updated: float
    drift: float = 0.0
    t_ref: float = 0.0

    def host_offset(self) -> HostOffset:
        """As the time map's :class:`HostOffset` (a line when a drift was measured)."""
        return HostOffset(self.offset, self.uncertainty, self.drift, self.t_ref)

    def to_mapping(self) -> dict[str, str]:
        return {k: repr(getattr(self, k)) for k in ("offset", "rtt", "uncertainty", "probes", "updated", "drift",
                                                    "t_ref")}  # fmt: skip

    @classmethod
    def from_mapping(cls, m: dict[bytes, bytes]) -> OffsetEstimate | None:
        try:
            return cls(float(m[b"offset"]), float(m[b"rtt"]), float(m[b"uncertainty"]), int(float(m[b"probes"])),
                       float(m[b"updated"]), float(m.get(b"drift", 0.0)), float(m.get(b"t_ref", 0.0)))  # fmt: skip
        except (KeyError, ValueError):
            return None


#: a drift is fitted once the good probes span this long (s)
DRIFT_FIT_MIN_SPAN_S = 10.0
#: … or sooner, from this many good probes over this span (s), when the slope is known this well
#: (its standard error, s/s): on a LAN a few seconds tell a 30 ppm drift; over Wi-Fi they do not
EARLY_FIT_PROBES, EARLY_FIT_SPAN_S, EARLY_SLOPE_MAX_SE = 4, 3.0, 3e-6
#: without a drift, the offset is the median of the good probes of this last stretch (s)
EARLY_WINDOW_S = 3.0
#: probe interval (s) until a drift is fitted, and after
PROBE_EARLY_S, PROBE_EVERY_S = 1.0, 5.0


def _line(good: np.ndarray, t_ref: float) -> tuple[float, float, float, float] | None:
    """Least-squares line through (host time s, offset s) rows, at ``t_ref``: (offset, drift,
    the offset's standard error, the drift's standard error); None when degenerate."""
    n = good.shape[0]
    x = good[:, 0] - t_ref
    sxx = float(np.sum((x - x.mean()) ** 2))
    if n < 3 or sxx <= 0.0:
        return None
    drift, offset = (float(v) for v in np.polyfit(x, good[:, 1], 1))
    resid = good[:, 1] - (offset + drift * x)
    s2 = float(np.sum(resid**2)) / (n - 2)
    return offset, drift, math.sqrt(s2 / n), math.sqrt(s2 / sxx)


class GlobalClockProbe:
    """Keeps the best probe of each burst of the last ``window`` seconds (host time)."""

    def __init__(self, window: float = 60.0, burst: int = 8) -> None:
        self.window = window
        self.burst = burst
        #: (host time of the probe's midpoint, rtt, offset), seconds
        self.samples: collections.deque[tuple[float, float, float]] = collections.deque()
        #: the Redis primary the probes went to (sentinel labs; "" otherwise)
        self.server = ""
        #: (host time s, new primary, step s) each time a failover moved the global clock
        self.steps: list[tuple[float, str, float]] = []

    def probe(self, c: redis.Redis) -> tuple[float, float]:
        """One burst of ``TIME`` round trips; keeps and returns the best (offset, rtt)."""
        best = (math.inf, 0.0, 0.0)
        for _ in range(self.burst):
            t0 = host_time()
            sec, usec = c.time()
            t1 = host_time()
            rtt = t1 - t0
            if rtt < best[0]:
                best = (rtt, sec + usec / 1e6 - 0.5 * (t0 + t1), 0.5 * (t0 + t1))
        server = primary_address(c)
        if server != self.server:
            self._follow_server(server, best[2], best[1])
        self.add(best[2], best[0], best[1])
        return best[1], best[0]

    def _follow_server(self, server: str, t_host: float, offset: float) -> None:
        """A failover put another PC's Redis in charge: the global clock is now its ``TIME``.
        The step (its clock minus the old one's, as this host sees them) is logged and kept,
        and the probes of the old server are dropped (they would bend the fit)."""
        before = self.estimate()
        if self.server and before is not None:
            step = offset - before.host_offset().at(np.array([t_host]))[0]
            self.steps.append((t_host, server, float(step)))
            log.warning("the lab's Redis moved from %s to %s: the global clock (its TIME) stepped by %+.3f ms "
                        "(the two PCs' clocks differ by that much)", self.server, server, step * 1e3)  # fmt: skip
            self.samples.clear()
        self.server = server

    def add(self, t_host: float, rtt: float, offset: float) -> None:
        """Keep one burst's best probe (host time s, round trip s, offset s)."""
        self.samples.append((t_host, rtt, offset))
        while self.samples and t_host - self.samples[0][0] > self.window:
            self.samples.popleft()

    def estimate(self) -> OffsetEstimate | None:
        """From the probes whose round trip is within 1.5x the fastest: the offset at the
        newest of them — a line through them once they span :data:`DRIFT_FIT_MIN_SPAN_S`, or
        :data:`EARLY_FIT_SPAN_S` when its slope is already that certain (two host clocks drift
        apart by tens of ppm: a median over a minute lagged by hundreds of µs), else the
        median of those of the last :data:`EARLY_WINDOW_S`."""
        if not self.samples:
            return None
        rtts = [s[1] for s in self.samples]
        fastest = min(rtts)
        good = np.array([(s[0], s[2]) for s in self.samples if s[1] <= 1.5 * fastest + 1e-6])
        t_ref = float(good[-1, 0])
        span = float(good[-1, 0] - good[0, 0])
        fit = _line(good, t_ref) if good.shape[0] >= EARLY_FIT_PROBES and span >= EARLY_FIT_SPAN_S else None
        if fit is not None and (span >= DRIFT_FIT_MIN_SPAN_S or fit[3] <= EARLY_SLOPE_MAX_SE):
            offset, drift, spread = fit[0], fit[1], fit[2]
        else:  # no drift yet: the newest good probes (a median of the window lags drift × its age)
            recent = good[good[:, 0] >= t_ref - EARLY_WINDOW_S]
            offsets = np.sort(recent[:, 1])
            offset, drift = float(offsets[len(offsets) // 2]), 0.0
            spread = float(offsets[-1] - offsets[0]) / 2 if len(offsets) > 1 else 0.0
        # the server read lies within +-rtt/2: uniform → sigma rtt/sqrt(12); plus 1 us TIME resolution
        sigma = math.sqrt((fastest / math.sqrt(12.0)) ** 2 + spread**2 + 1e-12)
        return OffsetEstimate(offset, fastest, sigma, len(self.samples), time.time(), drift, t_ref)

    def next_interval(self) -> float:
        """Seconds to the next burst: often until a drift is fitted (a short recording right after
        the start is mapped well too), then every :data:`PROBE_EVERY_S`."""
        est = self.estimate()
        return PROBE_EVERY_S if est is not None and est.drift != 0.0 else PROBE_EARLY_S

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
