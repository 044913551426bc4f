"""The application model: everything the window shows, refreshed from Redis (no Qt)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from ..bus.connection import async_client, mask_url
from ..bus.keys import Keys
from ..bus.sentinel import primary_address
from ..core.status import Telemetry
from .alerts import AlertsModel
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
    nodes: dict[str, Telemetry] = field(default_factory=dict)
    samples_per_s: float = 0.0
    updated: float = 0.0

    def remote_controls(self) -> list[tuple[str, dict[str, Any]]]:
        """(node, summary) of every remote-control server the nodes report (LabRecorder, Pupil, ingest)."""
        nodes = sorted(self.nodes.items())
        return [(nid, r) for nid, tele in nodes for r in tele.remote_control if isinstance(r, dict)]

    def remote_text(self) -> tuple[str, str]:
        """One status-bar line about the remote controls, and a tooltip with the details."""
        short, lines = [], []
        for nid, r in self.remote_controls():
            if r.get("server") == "LabRecorder RCS":
                n = r.get("clients", 0)
                short.append(f"LabRecorder {r.get('listening') or 'starting'} ({n} client{'' if n == 1 else 's'})")
                lines.append(f"{nid}: LabRecorder RCS {r.get('listening')}, {r.get('clients', 0)} clients, "
                             f"state {r.get('state')}, last command {r.get('last_command') or '–'!r}"
                             f"{', file ' + str(r['file']) if r.get('file') else ''}"
                             f"{', ' + str(r['error']) if r.get('error') else ''}")  # fmt: skip
            elif r.get("server") == "Pupil Remote":
                ports = r.get("ports") or {}
                short.append(f"Pupil {ports.get('remote') or 'off'}")
                lines.append(f"{nid}: Pupil Remote port {ports.get('remote')}, backbone PUB {ports.get('pub')} "
                             f"SUB {ports.get('sub')}, {r.get('annotations', 0)} annotations recorded, "
                             f"{r.get('annotations_unrecorded', 0)} while nothing recorded, last command "
                             f"{r.get('last_command') or '–'!r}")  # fmt: skip
            elif r.get("server") == "ingest":
                n, counters = r.get("clients", 0), r.get("counters") or {}
                short.append(f"ingest {r.get('listening') or 'starting'} ({n} client{'' if n == 1 else 's'})")
                refused = {k: v for k, v in counters.items() if k not in ("measurements", "samples", "connections",
                                                                           "sensor_joins", "backpressure_pushes",
                                                                           "http_posts")}  # fmt: skip
                lines.append(f"{nid}: network ingest {r.get('listening')}, {n} clients, "
                             f"{counters.get('measurements', 0)} measurements ({counters.get('samples', 0)} samples), "
                             f"refused {refused or 'nothing'}"
                             f"{', last: ' + str(r['last_error']) if r.get('last_error') else ''}")  # fmt: skip
        return ("remote: " + " · ".join(short) if short else "remote: off"), "\n".join(lines)


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
        #: what the operator must see until acknowledged (node restarts, lost devices)
        self.alerts = AlertsModel()
        self.status = StatusSummary(redis_text=mask_url(redis_url))
        self.status_changed = Event()
        self.redis: redis.asyncio.Redis | None = None
        self.stop_event = asyncio.Event()

    async def read_status(self, c: redis.asyncio.Redis) -> StatusSummary:
        s = StatusSummary(redis_text=mask_url(self.redis_url))
        try:
            node_ids = sorted(x.decode() for x in await c.smembers(self.keys.nodes))
            s.redis_ok = True
            pipe = c.pipeline(transaction=False)
            for nid in node_ids:
                pipe.get(self.keys.telemetry(nid))
            for nid, raw in zip(node_ids, await pipe.execute(), strict=True):
                tele = Telemetry.from_json(raw)
                if tele is not None:
                    s.nodes[nid] = tele
            s.samples_per_s = sum(sum(t.rates.values()) for t in s.nodes.values())
        except (redis.RedisError, OSError) as exc:
            s.error = f"Redis unreachable: {exc}"
        primary = primary_address(c)
        if primary and not s.error:
            s.redis_text = f"{s.redis_text} → primary {primary}"
        self.alerts.follow_redis(s.error, primary)
        s.updated = time.time()
        self.status = s
        self.status_changed.emit(s)
        return s

    async def refresh(self, c: redis.asyncio.Redis) -> None:
        """One refresh of everything slow-changing (device tree, status, attention)."""
        tree = await self.devices.refresh(c)
        if not tree.error:
            self.alerts.follow_devices(tree)
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
