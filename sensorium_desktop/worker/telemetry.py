"""A node's status in Redis: each device's registry entry (state, rates, gaps, details),
the node's telemetry (CPU, publisher, counters, remotes, its :class:`NodeState`), camera
previews and the node's info — once per :data:`STATUS_INTERVAL_S`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable

import psutil
import redis
import redis.asyncio

from ..bus.registry import DeviceStatus, register_sensors
from ..core.health import stale_after
from ..core.status import NodeState, Telemetry
from ..devices import Device
from .acquisition import Acquisition
from .context import NodeConfig, Remote
from .flowcontrol import FlowControl

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0
PREVIEW_TTL_S = 10


class RateMeter:
    """Samples/s per sensor over a sliding window (default 10 s) of cumulative counts."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.history: dict[str, collections.deque[tuple[float, int]]] = {}
        self.rates: dict[str, float] = {}

    def update(self, counts: dict[str, int], now: float) -> dict[str, float]:
        """Add cumulative sample ``counts`` per sensor at wall time ``now`` (s); rates (Hz)."""
        for sid, n in counts.items():
            h = self.history.setdefault(sid, collections.deque())
            h.append((now, n))
            while len(h) > 2 and now - h[1][0] >= self.window_s:
                h.popleft()
            if len(h) >= 2 and now > h[0][0]:
                self.rates[sid] = (n - h[0][1]) / (now - h[0][0])
        return self.rates


class StatusReporter:
    """Writes what ``acquisition`` and ``flow`` see, the node's ``counters``, ``state`` and
    ``remotes()`` to Redis."""

    def __init__(self, config: NodeConfig, acquisition: Acquisition, flow: FlowControl, counters: dict[str, int],
                 state: NodeState, remotes: Callable[[], list[Remote]]) -> None:  # fmt: skip
        self.config = config
        self.keys = config.keys
        self.node_id = config.node_id
        self.acquisition = acquisition
        self.flow = flow
        self.counters = counters
        self.state = state
        self.remotes = remotes
        self.rates = RateMeter()
        #: the node's asyncio Redis client while it runs
        self.redis: redis.asyncio.Redis | None = None

    def live_rates(self, now: float) -> dict[str, float]:
        """Samples/s per sensor over the last 10 s, 0 for a sensor silent past its stale limit."""
        acq = self.acquisition
        nominal = {s.sensor_id: s.nominal_rate for s in acq.sensor_infos()}
        out = {}
        for sid, rate in self.rates.rates.items():
            limit = stale_after(nominal.get(sid, 0.0), acq.delivery_gaps.get(sid, 0.0))
            silent = now - acq.last_data.get(sid, -1e18)
            out[sid] = 0.0 if limit is not None and silent > limit else rate
        return out

    def device_status(self, d: Device, live: dict[str, float]) -> DeviceStatus:
        """Registry entry of ``d``; ``live``: :meth:`live_rates` (computed once per write)."""
        acq = self.acquisition
        transport = d.uri.scheme if d.uri.scheme != "sim" else "simulated"
        health = d.health.to_dict()
        health["rates"] = {s.sensor_id: round(live.get(s.sensor_id, 0.0), 3) for s in d.sensors()}
        health["last_data"] = {sid: acq.last_data[sid] for sid in health["rates"] if sid in acq.last_data}
        health["nominal"] = {s.sensor_id: s.nominal_rate for s in d.sensors()}
        gaps = acq.delivery_gaps
        health["gaps"] = {sid: round(gaps[sid], 3) for sid in health["rates"] if sid in gaps}
        details = d.details()
        if details:
            health["details"] = details
        return DeviceStatus(
            device_id=d.device_id,
            name=d.name,
            transport=transport,
            uri=str(d.uri),
            node_id=self.node_id,
            state=d.health.state.value,
            message=d.health.message,
            health=health,
            sensor_ids=[s.sensor_id for s in d.sensors()],
        )

    def _queue_devices(self, pipe: redis.client.Pipeline | redis.asyncio.client.Pipeline) -> dict[str, float]:
        """Queue every device's registry entry on ``pipe``; the live rates they were made with."""
        live = self.live_rates(time.time())
        for d in self.acquisition.devices:
            pipe.hset(self.keys.device(d.device_id), mapping=self.device_status(d, live).to_mapping())
            pipe.sadd(self.keys.devices, d.device_id)
        return live

    def register_all(self, c: redis.Redis) -> None:
        """Every sensor and device entry (the publisher calls it on each (re)connect)."""
        register_sensors(c, self.keys, self.acquisition.sensor_infos())
        pipe = c.pipeline(transaction=False)
        self._queue_devices(pipe)
        pipe.execute()

    async def loop(self, stop: asyncio.Event) -> None:
        """Measure rates and CPU, report device failures and write the status every
        :data:`STATUS_INTERVAL_S` until ``stop``."""
        proc = psutil.Process()
        proc.cpu_percent(None)
        psutil.cpu_percent(None)
        while not stop.is_set():
            now = time.time()
            counts: dict[str, int] = {}
            for d in self.acquisition.devices:
                counts.update(d.health.samples)
            self.rates.update(counts, now)
            self.acquisition.report_devices()
            self.flow.load.add_cpu_sample(psutil.cpu_percent(None) / 100.0)
            try:
                await self.write(now, proc.cpu_percent(None))
            except (redis.RedisError, OSError) as exc:
                log.debug("node: status write failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATUS_INTERVAL_S)

    async def write(self, now: float, cpu_percent: float) -> None:
        """One status write (one pipelined round trip); ``cpu_percent`` of one core."""
        c = self.redis
        if c is None:
            return
        acq = self.acquisition
        pipe = c.pipeline(transaction=False)
        live = self._queue_devices(pipe)
        publisher = acq.publisher
        telemetry = Telemetry(
            node=self.node_id, pid=os.getpid(), time=now, cpu_percent=cpu_percent, rates=live,
            queue_depth=publisher.queue_depth, spilled=publisher.spilled, connected=publisher.connected,
            latency_ms=publisher.latency_percentiles(), publisher=dict(publisher.stats),
            batch_flushes=dict(acq.batcher.flushes), counters=self.counters,
            device_errors=[list(e) for e in acq.device_errors],
            remote_control=[r.summary() for r in self.remotes()],
            state=self.state,
        )  # fmt: skip
        pipe.set(self.keys.telemetry(self.node_id), telemetry.to_json(), ex=30)
        for d in acq.devices:
            preview = d.latest_preview()
            if preview is not None:
                sid, jpeg, t = preview
                pipe.hset(self.keys.preview(sid), mapping={"jpeg": jpeg, "t": repr(t)})
                pipe.expire(self.keys.preview(sid), PREVIEW_TTL_S)
        pipe.hset(
            self.keys.node_info(self.node_id),
            mapping={"pid": os.getpid(), "host": socket.gethostname(), "priority": self.config.priority,
                     "started": repr(acq.started), "devices": json.dumps([str(d.uri) for d in acq.devices])},
        )  # fmt: skip
        pipe.sadd(self.keys.nodes, self.node_id)
        await pipe.execute()
