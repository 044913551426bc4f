"""Device tree model: devices grouped by transport with per-sensor rate and state."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from ..bus.commands import REPLY_TIMEOUT_S, await_reply, last_event_id, read_discovery, send_command
from ..bus.keys import Keys
from ..bus.registry import OFFLINE_AFTER_S, DeviceStatus, forget_device, list_devices_async, list_sensors_async
from ..core.health import SensorHealth, finite_or_zero, sensor_health, silence_s
from ..core.quality import parse_quality
from ..core.samples import SensorInfo
from .base import Event

TRANSPORTS: tuple[tuple[str, str], ...] = (
    ("ble", "Bluetooth LE"),
    ("serial", "Serial"),
    ("camera", "Cameras"),
    ("lsl", "LSL streams"),
    ("ws", "Network clients"),
    ("simulated", "Simulated"),
)
#: A running discovery whose node published nothing for this long has failed (s).
DISCOVERY_SILENT_S = 5.0


@dataclass(slots=True)
class SensorRow:
    """A sensor as the tree shows it: ``silent_s`` since its last sample arrived at its node
    (None: never), ``device_state`` of its device (``offline`` when the node is silent)."""

    info: SensorInfo
    rate: float
    nominal: float
    silent_s: float | None = None
    device_state: str = "streaming"
    #: its usual gap between deliveries at its node (s)
    delivery_gap_s: float = 0.0
    #: its signal quality now (state, score, reason, detail; {} when not scored)
    quality: dict[str, Any] = field(default_factory=dict)

    @property
    def health(self) -> SensorHealth:
        return sensor_health(self.rate, self.nominal, self.silent_s, self.device_state, self.delivery_gap_s)

    @property
    def rate_state(self) -> str:
        """ok, rate low/high, stale, no data or waiting (:func:`core.health.sensor_health`)."""
        return self.health.state


@dataclass(slots=True)
class DeviceRow:
    status: DeviceStatus
    sensors: list[SensorRow]
    stale: bool

    @property
    def state(self) -> str:
        return "offline" if self.stale else self.status.state

    @property
    def detail(self) -> str:
        h = self.status.health
        parts = []
        if self.stale:
            parts.append(f"node {self.status.node_id} not reporting")
        elif self.status.message:
            parts.append(self.status.message)
        if h.get("battery") is not None:
            parts.append(f"battery {h['battery']:.0f}%")
        if h.get("rssi") is not None:
            parts.append(f"RSSI {h['rssi']:.0f} dBm")
        net = self.network
        if net:
            parts.append(f"from {net.get('address') or '?'}")
        details = h.get("details") or {}
        if isinstance(details, dict) and details.get("summary"):  # a device's own one-line account
            parts.append(str(details["summary"]))
        errors = h.get("errors") or {}
        if errors:
            parts.append(", ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
        return " · ".join(parts)

    @property
    def network(self) -> dict[str, Any]:
        """A network client's connector, address, attention and backpressure ({} otherwise)."""
        details = self.status.health.get("details") or {}
        return details if self.status.transport == "ws" and isinstance(details, dict) else {}

    @property
    def backpressure_text(self) -> str:
        """``attention high · 100 ms × 1`` or ``paused (attention low)`` for a network client."""
        net = self.network
        if not net or not net.get("attention"):
            return ""
        if net.get("paused"):
            return f"paused (attention {net['attention']})"
        return f"attention {net['attention']} · {net.get('batch_window_ms')} ms × {net.get('batch_size')}"


@dataclass(slots=True)
class DeviceTree:
    groups: dict[str, list[DeviceRow]] = field(default_factory=dict)
    sensors: dict[str, SensorInfo] = field(default_factory=dict)
    error: str = ""
    updated: float = 0.0

    def device_count(self) -> int:
        return sum(len(v) for v in self.groups.values())

    def quality(self) -> dict[str, dict[str, Any]]:
        """Sensor id → its quality verdict (the scored sensors of every device)."""
        return {r.info.sensor_id: r.quality for rows in self.groups.values() for d in rows for r in d.sensors
                if r.quality}  # fmt: skip


class DeviceTreeModel:
    """Reads the registry from Redis; ``changed`` fires with the new :class:`DeviceTree`."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.tree = DeviceTree()
        self.changed = Event()

    def sensor(self, sensor_id: str) -> SensorInfo | None:
        return self.tree.sensors.get(sensor_id)

    async def refresh(self, c: redis.asyncio.Redis) -> DeviceTree:
        """Fetch devices and sensors; connection problems become ``tree.error``."""
        try:
            devices = await list_devices_async(c, self.keys)
            sensors = {s.sensor_id: s for s in await list_sensors_async(c, self.keys)}
            quality = parse_quality(await c.hgetall(self.keys.quality))
        except (redis.RedisError, OSError) as exc:
            tree = DeviceTree(self.tree.groups, self.tree.sensors, f"Redis unreachable: {exc}", time.time())
            self.tree = tree
            self.changed.emit(tree)
            return tree
        now = time.time()
        groups: dict[str, list[DeviceRow]] = {t: [] for t, _ in TRANSPORTS}
        for d in devices:
            rates = d.health.get("rates", {})
            last = d.health.get("last_data") or {}
            gaps = d.health.get("gaps") or {}
            stale = now - d.updated > OFFLINE_AFTER_S
            state = "offline" if stale else d.state
            rows = []
            for sid in (x for x in d.sensor_ids if x in sensors):
                silent = silence_s(now, d.updated, finite_or_zero(last[sid]) if sid in last else None)
                rows.append(SensorRow(sensors[sid], finite_or_zero(rates.get(sid)), sensors[sid].nominal_rate,
                                      silent, state, finite_or_zero(gaps.get(sid)), quality.get(sid, {})))  # fmt: skip
            groups.setdefault(d.transport, []).append(DeviceRow(d, rows, stale))
        for device_rows in groups.values():
            device_rows.sort(key=lambda r: r.status.name.lower())
        self.tree = DeviceTree(groups, sensors, "", now)
        self.changed.emit(self.tree)
        return self.tree


class DeviceControl:
    """Asks a node to discover, connect and disconnect devices (through ``bus.commands``) and
    follows its discovery; ``discovery_changed`` fires with the node's discovery dict."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.discovery: dict[str, Any] = {}
        self.discovery_node: str = ""
        self.discovery_changed = Event()
        self.error = Event()
        #: fired with (op, ok, message, target) when a node answers a connect/disconnect
        self.result = Event()
        self.c: redis.asyncio.Redis | None = None
        #: the discover command the window waits on and when its node last showed progress
        self._discover_command = ""
        self._discover_heard = 0.0
        self._discover_updated = ""

    async def target_node(self, c: redis.asyncio.Redis) -> str | None:
        """The node on this PC if there is one, else any node with a live heartbeat."""
        me = socket.gethostname()
        nodes = sorted(n.decode() for n in await c.smembers(self.keys.nodes))
        alive = [n for n in nodes if await c.exists(self.keys.heartbeat(n))] or nodes
        for n in alive:
            host = await c.hget(self.keys.node_info(n), "host")
            if host is not None and host.decode() == me:
                return n
        return alive[0] if alive else None

    async def _send(self, op: str, node: str | None = None, **args: Any) -> bool:
        c = self.c
        if c is None:
            return self._not_sent(op, "not connected to Redis yet")
        try:
            node = node or await self.target_node(c)
            if node is None:
                return self._not_sent(op, "no node is running to do that: start one (sensorium node)")
            after = await last_event_id(c, self.keys)
            cid = await send_command(c, self.keys, node, op, **args)
        except (redis.RedisError, OSError) as exc:
            return self._not_sent(op, f"{op}: Redis unreachable: {exc}")
        if op in ("connect", "disconnect"):
            return await self._reply(c, op, node, cid, after, str(args.get("uri") or args.get("device_id")))
        if op == "discover":
            self.discovery_node = node
            self._discover_command, self._discover_heard, self._discover_updated = cid, time.monotonic(), ""
            self.discovery = {"state": "running", "progress": 0.0, "message": "asked " + node, "found": []}
            self.discovery_changed.emit(self.discovery)
        return True

    def _not_sent(self, op: str, message: str) -> bool:
        """A command that could not be sent: say why; a discovery ends (Discover comes back)."""
        self.error.emit(message)
        if op in ("discover", "stop_discovery"):
            self._discovery_failed(message)
        return False

    def _discovery_failed(self, message: str) -> None:
        self._discover_command = ""
        self.discovery = {"state": "failed", "progress": 0.0, "message": message, "found": []}
        self.discovery_changed.emit(self.discovery)

    async def _reply(self, c: redis.asyncio.Redis, op: str, node: str, cid: str, after: str, target: str) -> bool:
        """Wait for the node's answer to ``op`` on ``target`` and fire :attr:`result` with it."""
        try:
            event = await await_reply(c, self.keys, cid, after, REPLY_TIMEOUT_S)
        except (redis.RedisError, OSError) as exc:
            event = {"ok": "0", "message": f"Redis unreachable while waiting for {node}: {exc}"}
        if event is None:
            event = {"ok": "0", "message": f"node {node} did not answer within {REPLY_TIMEOUT_S:g} s"}
        ok = event.get("ok") == "1"
        self.result.emit(op, ok, event.get("message", ""), target)
        return ok

    async def forget(self, device_id: str) -> bool:
        """Take an offline device and its sensors out of the registry; fires :attr:`result`."""
        if self.c is None:
            self.error.emit("not connected to Redis yet")
            return False
        try:
            sensors = await forget_device(self.c, self.keys, device_id)
        except (KeyError, ValueError) as exc:
            self.result.emit("forget", False, str(exc.args[0]), device_id)
            return False
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"forget: Redis unreachable: {exc}")
            return False
        self.result.emit("forget", True, f"forgot {device_id} and its {len(sensors)} sensors", device_id)
        return True

    async def discover(self, timeout: float = 5.0) -> bool:
        return await self._send("discover", timeout=timeout)

    async def stop_discovery(self) -> bool:
        """Stop the node's running discovery (it reports ``stopped``)."""
        if not self.discovery_node:
            return False
        return await self._send("stop_discovery", self.discovery_node)

    async def connect(self, uri: str, node: str | None = None) -> bool:
        return await self._send("connect", node, uri=uri)

    async def disconnect(self, device_id: str, node: str) -> bool:
        return await self._send("disconnect", node, device_id=device_id)

    async def refresh(self, c: redis.asyncio.Redis) -> None:
        """Follow the discovery asked for (no-op when none): only the node's answer to this
        window's command counts; a node silent for :data:`DISCOVERY_SILENT_S` (never
        answered, or stopped reporting) ends it as ``failed`` with the reason."""
        self.c = c
        if not self.discovery_node or not self._discover_command:
            return
        try:
            d = await read_discovery(c, self.keys, self.discovery_node)
        except (redis.RedisError, OSError) as exc:
            d = {}
            self.error.emit(f"discovery: Redis unreachable: {exc}")
        now = time.monotonic()
        mine = bool(d) and d.get("command") == self._discover_command
        if mine and str(d.get("updated")) != self._discover_updated:
            self._discover_updated, self._discover_heard = str(d.get("updated")), now
        if mine and d != self.discovery:
            self.discovery = d
            self.discovery_changed.emit(d)
        if mine and d.get("state") != "running":
            self._discover_command = ""  # finished: its result stays shown
            return
        silent = now - self._discover_heard
        if silent > DISCOVERY_SILENT_S:
            what = "stopped reporting" if mine else "did not answer"
            message = f"node {self.discovery_node} {what} for {silent:.0f} s: discovery abandoned (try again)"
            self.error.emit(message)
            self._discovery_failed(message)
