"""Lab status for the election, sync and backpressure panels (no Qt).

One snapshot a second from :func:`sensorium_desktop.bus.status.read_status` plus the
backpressure configs, and a short history per sensor for the clock residual traces.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import redis

from ..bus.connection import client
from ..bus.keys import Keys
from ..bus.status import read_backpressure, read_status
from ..core.backpressure import BackpressureConfig
from ..core.status import LabStatus
from .base import Event

log = logging.getLogger(__name__)

HISTORY_S = 120.0
#: an offset that moves by more than this between two refreshes (s) belongs to a new clock (a
#: restarted node's device counting from 0 again): the residual trace starts afresh, its axis
#: is not stretched to ±1e8 µs
OFFSET_JUMP_S = 1.0
#: Groups per second are averaged over this many seconds (s).
GROUP_RATE_WINDOW_S = 30.0


@dataclass(slots=True)
class ClockRow:
    """One sensor's clock as the sync worker last wrote it (seconds, dimensionless drift)."""

    sensor_id: str
    attribute: str
    offset: float
    drift: float
    uncertainty: float
    resets: int
    rate: float
    nominal: float
    updated_age: float
    domain: str = ""
    kind: str = "fitted"
    latency: float = math.nan  # s
    late: int = 0

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6


@dataclass(slots=True)
class LabSnapshot:
    """Everything the status panels show; ``error`` when Redis could not be read."""

    status: LabStatus = field(default_factory=LabStatus)
    backpressure: dict[str, BackpressureConfig] = field(default_factory=dict)
    clocks: list[ClockRow] = field(default_factory=list)
    group_rate: float = 0.0
    error: str = ""
    time: float = 0.0

    @property
    def leader(self) -> str:
        return self.status.leader

    @property
    def term(self) -> int:
        return self.status.term


def _f(d: dict[str, str], key: str) -> float:
    try:
        return float(d.get(key, "nan"))
    except ValueError:
        return math.nan


def _int(d: dict[str, str], key: str) -> int:
    v = _f(d, key)
    return int(v) if math.isfinite(v) else 0


class LabStatusModel:
    """Polls the lab's state; ``changed`` fires with a :class:`LabSnapshot`."""

    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.snapshot = LabSnapshot()
        self.changed = Event()
        self.offsets: dict[str, collections.deque[tuple[float, float]]] = {}
        self._groups_seen: collections.deque[tuple[float, int]] = collections.deque()
        self._resets: dict[str, int] = {}
        self._client: redis.Redis | None = None

    def _read(self) -> tuple[LabStatus, dict[str, BackpressureConfig]]:
        if self._client is None:
            self._client = client(self.redis_url, timeout=2.0, retries=0)
        status = read_status(self._client, self.keys)
        bp = read_backpressure(self._client, self.keys, [s.sensor_id for s in status.sensors])
        return status, bp

    async def refresh(self) -> LabSnapshot:
        now = time.time()
        try:
            status, bp = await asyncio.to_thread(self._read)
        except (redis.RedisError, OSError) as exc:
            self._client = None
            snap = LabSnapshot(self.snapshot.status, self.snapshot.backpressure, self.snapshot.clocks,
                               error=f"Redis unreachable: {exc}", time=now)  # fmt: skip
            self.snapshot = snap
            self.changed.emit(snap)
            return snap
        clocks = []
        for s in status.sensors:
            c = s.clock
            if not c:
                continue
            updated = _f(c, "updated")
            row = ClockRow(
                s.sensor_id, s.attribute, _f(c, "offset_mean"), _f(c, "drift"), _f(c, "uncertainty"),
                _int(c, "resets"), s.rate, s.nominal_rate,
                max(now - updated, 0.0) if math.isfinite(updated) else math.nan,
                c.get("domain", ""), c.get("kind", "fitted"), _f(c, "latency"), _int(c, "late"),
            )  # fmt: skip
            clocks.append(row)
            previous = self.offsets.get(row.sensor_id)
            jumped = bool(previous) and abs(row.offset - previous[-1][1]) > OFFSET_JUMP_S  # type: ignore[index]
            if self._resets.get(row.sensor_id, row.resets) != row.resets or jumped:
                self.offsets.pop(row.sensor_id, None)  # a new clock epoch or run: its offset starts afresh
            self._resets[row.sensor_id] = row.resets
            if math.isfinite(row.offset):
                hist = self.offsets.setdefault(row.sensor_id, collections.deque())
                hist.append((now, row.offset))
                while hist and now - hist[0][0] > HISTORY_S:
                    hist.popleft()
        groups = status.groups
        seen = self._groups_seen
        seen.append((now, groups))
        while now - seen[0][0] > GROUP_RATE_WINDOW_S:
            seen.popleft()
        # slices are written every few seconds: a rate over one refresh would mostly read 0
        t_first, n_first = seen[0]
        rate = max(0.0, (groups - n_first) / (now - t_first)) if now > t_first else 0.0
        snap = LabSnapshot(status, bp, clocks, rate, "", now)
        self.snapshot = snap
        self.changed.emit(snap)
        return snap

    def residuals(self, sensor_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(seconds ago, offset minus its linear trend in µs) over the last ``HISTORY_S`` s:
        how much the clock estimate wanders around a steady drift."""
        hist = self.offsets.get(sensor_id)
        if not hist or len(hist) < 3:
            return np.empty(0), np.empty(0)
        t, off = np.array(hist).T
        coef = np.polyfit(t - t[-1], off, 1)
        return t - t[-1], (off - np.polyval(coef, t - t[-1])) * 1e6

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:
                log.exception("lab status refresh failed")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
        if self._client is not None:
            self._client.close()


def breathing_synchrony(rings: list[tuple[np.ndarray, np.ndarray]], window_s: float = 60.0) -> float:
    """Kuramoto R (0–1) of breathing between people: band-passed Hilbert phase of each
    respiration signal ``(t s, values)`` over the last ``window_s``, compared at the latest
    time all of them cover. NaN with fewer than two usable signals."""
    from ..core.kuramoto import hilbert_phase, order_parameter

    phases: list[tuple[np.ndarray, np.ndarray]] = []
    for t, v in rings:
        if t.size == 0:
            continue
        keep = t >= t[-1] - window_s
        grid, ph = hilbert_phase(t[keep], v[keep])
        if grid.size:
            phases.append((grid, np.unwrap(ph)))
    if len(phases) < 2:
        return math.nan
    t_common = min(g[-1] for g, _ in phases)
    return order_parameter(np.array([np.interp(t_common, g, p) for g, p in phases]))
