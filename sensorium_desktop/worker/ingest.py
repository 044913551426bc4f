"""Network ingest: Sensocto's sensor protocol (Phoenix channels over WebSocket) and HTTP JSON
(seed 001's receiver) on one port of the node, feeding :mod:`~sensorium_desktop.devices.network`.

- ``GET /socket/websocket``: Phoenix V1 JSON objects ``{"topic", "event", "payload", "ref"}``
  (V2 arrays ``[join_ref, ref, topic, event, payload]`` too; replies in the sender's form).
  ``phoenix``/``heartbeat``; ``phx_join`` on ``sensocto:connector:<id>`` and
  ``sensocto:sensor:<id>`` with the SDKs' join parameters; ``phx_leave``; on a sensor topic
  ``measurement``, ``measurements_batch`` (a JSON list), ``update_attributes`` (``register``/
  ``unregister`` as the server names them, ``add``/``remove``/``update`` as the Python SDK
  does), ``update_connector``, ``ping``. Replies and error reasons are Sensocto's
  (``unauthorized``, ``join crashed``, ``unmatched topic``, ``invalid_attribute_id``,
  ``missing_fields`` + ``fields``, ``invalid_batch`` + ``failed_count``, ``invalid_action``,
  ``invalid_connector_name``); payloads Sensocto would take unchecked are validated and refused
  with ``invalid_payload`` (+ ``field``), ``bad_timestamp`` — counted, never dropped silently.
- ``backpressure_config`` is pushed after a sensor joins and whenever its policy changes,
  computed by the node's policy (attention from the window and recordings, system load,
  memory protection). ``system_load`` is left out: the Python and Unity SDKs parse it as a
  number, the Rust one as a level name, so any value breaks one of them while every SDK
  defaults it when absent; the level travels as ``system_load_level``.
- ``POST /api/measurements``: one measurement or a list, each with ``sensor_id``,
  ``attribute_id``, ``payload``, ``timestamp`` (ms); ``Authorization: Bearer <token>``;
  ``202 {"accepted", "sensors"}`` or ``4xx {"error", "field"}`` naming the field at fault
  (nothing of a refused request is taken).

Limits (counted in :attr:`IngestServer.counters`): frames over ``max_frame_bytes`` (1 MiB)
close the connection (WebSocket 1009) and posts over it get 413; a connection sending more
than ``max_messages_per_s`` is refused the excess (``rate_limited``); a client that does not
read what it is sent within :data:`SEND_TIMEOUT_S` is disconnected; one with nothing to say
for :data:`IDLE_TIMEOUT_S` (no heartbeat) is closed. Each connection is served by its own
task: one misbehaving client does not hold up another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.backpressure import Attention, BackpressureConfig, compute_config
from ..core.hostclock import host_time
from ..core.ids import ID_PATTERN
from ..core.measurements import Measurement, MeasurementError, decode_measurement
from ..devices.network import HTTP_CONNECTOR, IngestHub, NetworkSensor
from .context import NodeContext, remote_component

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_PORT = 4000  # Sensocto's (Phoenix's) port
MAX_FRAME_BYTES = 1 << 20
MAX_MESSAGES_PER_S = 2000.0
SEND_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 60.0  # Phoenix closes a socket without heartbeat after 60 s
BACKPRESSURE_INTERVAL_S = 0.5
CONNECTOR_PARAMS = ("connector_id", "connector_name", "connector_type", "features", "bearer_token")
SENSOR_PARAMS = ("connector_id", "connector_name", "sensor_id", "sensor_name", "attributes", "sensor_type",
                 "sampling_rate", "bearer_token", "batch_size")  # fmt: skip
REGISTER_ACTIONS = ("register", "add", "update")
UNREGISTER_ACTIONS = ("unregister", "remove")
HTTP_FIELDS = ("sensor_id", "attribute_id", "payload", "timestamp")


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """Where the endpoint listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str = ""
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_messages_per_s: float = MAX_MESSAGES_PER_S

    @classmethod
    def parse(cls, text: str, token: str = "") -> IngestOptions:
        """``HOST:PORT``, ``:PORT`` or ``PORT`` (host default loopback); raises ValueError."""
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "", text
        try:
            number = int(port)
        except ValueError as exc:
            raise ValueError(f"--ingest {text!r}: expected HOST:PORT") from exc
        if not 0 <= number <= 65535:
            raise ValueError(f"--ingest {text!r}: port out of range")
        return cls(host.strip("[]") or "127.0.0.1", number, token)

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


class RateLimit:
    """Token bucket: ``rate`` messages/s with a burst of two seconds' worth."""

    def __init__(self, rate: float) -> None:
        self.rate, self.capacity = rate, 2.0 * rate
        self.tokens, self.last = self.capacity, time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class Frame:
    """One Phoenix message; ``v2`` when it came as an array (answered the same way)."""

    topic: str
    event: str
    payload: Any
    ref: Any = None
    join_ref: Any = None
    v2: bool = False


def parse_frame(text: str) -> Frame:
    """A Phoenix V1 object or V2 array; raises ValueError."""
    obj = json.loads(text)
    if isinstance(obj, list) and len(obj) == 5:
        join_ref, ref, topic, event, payload = obj
        v2 = True
    elif isinstance(obj, dict):
        topic, event, payload = obj.get("topic"), obj.get("event"), obj.get("payload")
        ref, join_ref, v2 = obj.get("ref"), obj.get("join_ref"), False
    else:
        raise ValueError("not a Phoenix message (an object or a 5-element array)")
    if not isinstance(topic, str) or not isinstance(event, str):
        raise ValueError("topic and event must be strings")
    return Frame(topic, event, payload, ref, join_ref, v2)


def encode(frame: Frame, event: str, payload: Any, ref: Any) -> str:
    """A message to the client in the form ``frame`` came in."""
    if frame.v2:
        return json.dumps([frame.join_ref, ref, frame.topic, event, payload])
    return json.dumps({"topic": frame.topic, "event": event, "payload": payload, "ref": ref})


def client_config(cfg: BackpressureConfig) -> dict[str, Any]:
    """The ``backpressure_config`` payload every SDK parses (see module docstring)."""
    d = cfg.to_dict()
    d["system_load_level"] = d.pop("system_load")
    return d


class Connection:
    """One WebSocket client: its joined topics and the protocol."""

    def __init__(self, server: IngestServer, ws: web.WebSocketResponse, peer: str) -> None:
        self.server = server
        self.ws = ws
        self.peer = peer
        self.sensors: dict[str, tuple[NetworkSensor, Frame]] = {}  # topic → device, its join frame
        self.connectors: set[str] = set()
        self.sent_policy: dict[str, tuple] = {}
        self.limit = RateLimit(server.options.max_messages_per_s)

    async def send(self, text: str) -> None:
        """Send or give up on a client that does not read (it is disconnected)."""
        try:
            await asyncio.wait_for(self.ws.send_str(text), SEND_TIMEOUT_S)
        except TimeoutError:
            self.server.count("slow_readers")
            log.warning("ingest: %s does not read what it is sent: disconnected", self.peer)
            await self.ws.close(code=1008, message=b"not reading")
            raise ConnectionResetError("slow reader") from None

    async def reply(self, frame: Frame, status: str, response: Any) -> None:
        await self.send(encode(frame, "phx_reply", {"status": status, "response": response}, frame.ref))

    async def error(self, frame: Frame, reason: str, **extra: Any) -> None:
        self.server.count(f"refused_{reason.replace(' ', '_')}")  # counter names without spaces
        await self.reply(frame, "error", {"reason": reason, **extra})

    async def handle(self, text: str) -> None:
        if not self.limit.allow():
            self.server.count("rate_limited")
            with contextlib.suppress(ValueError):
                await self.error(parse_frame(text), "rate_limited")
            return
        try:
            frame = parse_frame(text)
        except ValueError as exc:
            self.server.note("malformed", f"{self.peer}: not a Phoenix message ({exc}): {text[:80]!r}")
            return
        if frame.topic == "phoenix" and frame.event == "heartbeat":
            await self.reply(frame, "ok", {})
        elif frame.event == "phx_join":
            await self.join(frame)
        elif frame.topic in self.sensors:
            await self.sensor_event(frame, self.sensors[frame.topic][0])
        elif frame.topic in self.connectors:
            await self.connector_event(frame)
        else:
            await self.error(frame, "unmatched topic")

    # -- joins ------------------------------------------------------------------------------
    def authorized(self, params: dict[str, Any]) -> bool:
        token = self.server.options.token
        if not token:
            return True
        given = params.get("bearer_token")
        return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())

    async def join(self, frame: Frame) -> None:
        params = frame.payload if isinstance(frame.payload, dict) else {}
        kind, _, ident = frame.topic.removeprefix("sensocto:").partition(":")
        if not frame.topic.startswith("sensocto:") or kind not in ("connector", "sensor"):
            await self.error(frame, "unmatched topic")
            return
        wanted = CONNECTOR_PARAMS if kind == "connector" else SENSOR_PARAMS
        key = "connector_id" if kind == "connector" else "sensor_id"
        if any(p not in params for p in wanted) or params.get(key) != ident or not ident:
            missing = [p for p in wanted if p not in params]
            self.server.note("join_crashed", f"{self.peer}: join {frame.topic} without {missing or key}")
            await self.error(frame, "join crashed")
            return
        if not self.authorized(params):
            self.server.note("unauthorized", f"{self.peer}: join {frame.topic} with a wrong or missing token")
            await self.error(frame, "unauthorized")
            return
        if kind == "connector":
            self.connectors.add(frame.topic)
            await self.reply(frame, "ok", {})
            return
        if not ID_PATTERN.match(ident):
            await self.error(frame, "invalid_sensor_id")
            return
        dev = self.server.hub.sensor(str(params["connector_id"]), ident)
        if frame.topic not in self.sensors:
            dev.describe(params, self.peer)
        self.sensors[frame.topic] = (dev, frame)
        for attr in params.get("attributes") or []:
            if isinstance(attr, str) and ID_PATTERN.match(attr):
                dev.register_attribute(attr)
        self.server.count("sensor_joins")
        await self.reply(frame, "ok", {})
        await self.push_backpressure(frame.topic, force=True)

    async def leave(self, frame: Frame) -> None:
        entry = self.sensors.pop(frame.topic, None)
        self.connectors.discard(frame.topic)
        self.sent_policy.pop(frame.topic, None)
        if entry is not None:
            entry[0].detach("the client left", lost=False)
        await self.reply(frame, "ok", {})

    def closed(self) -> None:
        for dev, _frame in self.sensors.values():
            dev.detach(f"connection from {self.peer} closed")
        self.sensors.clear()

    # -- events -----------------------------------------------------------------------------
    async def connector_event(self, frame: Frame) -> None:
        if frame.event == "phx_leave":
            await self.leave(frame)
        elif frame.event == "ping":
            await self.reply(frame, "ok", frame.payload)
        else:
            self.server.note("unknown_events", f"{self.peer}: {frame.event!r} on {frame.topic} ignored")

    async def sensor_event(self, frame: Frame, dev: NetworkSensor) -> None:
        event, payload = frame.event, frame.payload
        if event == "measurement":
            await self.take(frame, dev, [payload], single=True)
        elif event == "measurements_batch":
            if not isinstance(payload, list):
                await self.error(frame, "invalid_batch", failed_count=0, message="payload must be a JSON array")
                return
            await self.take(frame, dev, payload, single=False)
        elif event == "update_attributes":
            await self.update_attributes(frame, dev)
        elif event == "update_connector":
            name = payload.get("connector_name") if isinstance(payload, dict) else None
            if isinstance(name, str) and 0 < len(name.encode()) <= 100:
                dev.connector_name = name
                await self.reply(frame, "ok", {"connector_name": name})
            else:
                await self.error(frame, "invalid_connector_name")
        elif event == "ping":
            await self.reply(frame, "ok", payload)
        elif event == "phx_leave":
            await self.leave(frame)
        else:
            self.server.note("unknown_events", f"{self.peer}: {event!r} on {frame.topic} ignored")

    async def take(self, frame: Frame, dev: NetworkSensor, items: list[Any], single: bool) -> None:
        t_arrival = host_time()
        decoded: list[Measurement] = []
        failures: list[MeasurementError] = []
        for item in items:
            try:
                decoded.append(decode_measurement(item))
            except MeasurementError as exc:
                failures.append(exc)
        if failures:
            first = failures[0]
            self.server.note("invalid_measurements", f"{self.peer} {dev.device_id}: {first}", len(failures))
            if single:
                extra: dict[str, Any] = {"fields": list(first.fields)} if first.reason == "missing_fields" else {}
                if first.reason not in ("missing_fields", "invalid_attribute_id"):
                    extra = {"field": first.fields[0] if first.fields else "", "message": str(first)}
                await self.error(frame, first.reason, **extra)
            else:
                await self.error(frame, "invalid_batch", failed_count=len(failures), message=str(first))
            return
        try:
            n = dev.ingest(decoded, t_arrival)
        except ValueError as exc:  # a stream's layout changed (another channel count)
            self.server.note("invalid_measurements", f"{self.peer} {dev.device_id}: {exc}", len(decoded))
            await self.error(frame, "invalid_payload" if single else "invalid_batch",
                             **({"failed_count": len(decoded)} if not single else {}), message=str(exc))  # fmt: skip
            return
        self.server.counters["measurements"] += len(decoded)
        self.server.counters["samples"] += n

    async def update_attributes(self, frame: Frame, dev: NetworkSensor) -> None:
        p = frame.payload if isinstance(frame.payload, dict) else {}
        action, attr, metadata = p.get("action"), p.get("attribute_id"), p.get("metadata")
        if not all(k in p for k in ("action", "attribute_id", "metadata")):
            self.server.note("unknown_events", f"{self.peer}: update_attributes without action/attribute_id/metadata")
            return
        if action not in REGISTER_ACTIONS + UNREGISTER_ACTIONS:
            await self.error(frame, "invalid_action")
            return
        if not isinstance(attr, str) or not ID_PATTERN.match(attr):
            await self.error(frame, "invalid_attribute_id")
            return
        if action in REGISTER_ACTIONS:
            dev.register_attribute(attr, metadata if isinstance(metadata, dict) else {})

    # -- backpressure -----------------------------------------------------------------------
    async def push_backpressure(self, topic: str, force: bool = False) -> None:
        entry = self.sensors.get(topic)
        if entry is None:
            return
        dev, join = entry
        cfg = self.server.config_for(dev)
        if not force and self.sent_policy.get(topic) == cfg.policy_key():
            return
        self.sent_policy[topic] = cfg.policy_key()
        payload = client_config(cfg)
        dev.backpressure = payload
        dev.paused_since = (dev.paused_since or time.time()) if cfg.paused else None
        self.server.count("backpressure_pushes")
        await self.send(encode(join, "backpressure_config", payload, None))


class IngestServer:
    """The endpoint (aiohttp) and its counters; see the module docstring."""

    name = "ingest"

    def __init__(self, node: NodeContext, options: IngestOptions, hub: IngestHub) -> None:
        self.node = node
        self.options = options
        self.hub = hub
        self.counters: Counter[str] = Counter()
        self.last_error = ""
        self.connections: set[Connection] = set()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.listening = ""

    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] += n

    def note(self, what: str, message: str, n: int = 1) -> None:
        """Count a refusal and log it (the first ones, then every 100th: floods do not flood the log)."""
        self.counters[what] += n
        self.last_error = message
        if self.counters[what] <= 5 or self.counters[what] % 100 == 0:
            log.warning("ingest: %s (%s: %d so far)", message, what, self.counters[what])

    def config_for(self, dev: NetworkSensor) -> BackpressureConfig:
        """The node's policy for ``dev``: the highest attention among its streams."""
        default = self.node.config.attention_default
        levels = [self.node.attention.get(s.sensor_id, default) for s in dev.sensors()] or [default]
        state = self.node.state
        return compute_config(max(levels, default=Attention.NONE), state.system_load or "normal",
                              state.memory_protection, int(time.time() * 1000))  # fmt: skip

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> bool:
        from aiohttp import web

        o = self.options
        if not o.loopback and not o.token:
            log.error("ingest: refusing to listen on %s without a token (--ingest-token, SENSORIUM_INGEST_TOKEN or "
                      "ingest_token in the config): any client on the network could stream into the lab",
                      o.host)  # fmt: skip
            self.listening = "off: a token is required beyond loopback"
            return False
        app = web.Application(client_max_size=o.max_frame_bytes)
        app.router.add_get("/socket/websocket", self.websocket)
        app.router.add_post("/api/measurements", self.http_measurements)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, o.host, o.port)
        try:
            await site.start()
        except OSError as exc:
            log.warning("ingest: cannot listen on %s:%d (%s): network ingest is off", o.host, o.port,
                        exc.strerror or exc)  # fmt: skip
            self.listening = f"off: port {o.port} in use"
            await self.runner.cleanup()
            self.runner = None
            return False
        server = site._server  # the bound socket tells the port when 0 was asked for
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else o.port
        self.listening = f"{o.host}:{self.port}"
        log.info("ingest: Sensocto WebSocket ws://%s/socket/websocket and POST http://%s/api/measurements%s",
                 self.listening, self.listening, "" if o.token else " (no token: loopback only)")  # fmt: skip
        return True

    async def close(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"node stopping")
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def backpressure_loop(self, stop: asyncio.Event) -> None:
        """Re-send each joined sensor's config when its policy changes."""
        while not stop.is_set():
            for conn in list(self.connections):
                for topic in list(conn.sensors):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await conn.push_backpressure(topic)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BACKPRESSURE_INTERVAL_S)

    # -- WebSocket --------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(max_msg_size=self.options.max_frame_bytes, autoping=True)
        await ws.prepare(request)
        peer = f"{request.remote or '?'}"
        conn = Connection(self, ws, peer)
        self.connections.add(conn)
        self.count("connections")
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=IDLE_TIMEOUT_S)
                except TimeoutError:
                    self.note("idle_timeouts", f"{peer}: nothing for {IDLE_TIMEOUT_S:.0f} s (no heartbeat): closed")
                    break
                if msg.type == WSMsgType.TEXT:
                    await conn.handle(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.note("malformed", f"{peer}: binary frame ignored (Phoenix JSON is text)")
                elif msg.type == WSMsgType.ERROR:
                    exc = ws.exception()
                    big = getattr(exc, "code", None) == 1009 or ws.close_code == 1009 or "exceeds limit" in str(exc)
                    self.note("oversized" if big else "ws_errors",
                              f"{peer}: {exc} (frame limit {self.options.max_frame_bytes} bytes)")  # fmt: skip
                    break
                else:  # CLOSE, CLOSING, CLOSED
                    if ws.close_code == 1009:
                        self.note("oversized", f"{peer}: frame over {self.options.max_frame_bytes} bytes: closed")
                    break
        except (ConnectionError, RuntimeError) as exc:
            log.info("ingest: %s dropped (%s)", peer, exc)
        finally:
            conn.closed()
            self.connections.discard(conn)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    # -- HTTP -------------------------------------------------------------------------------
    async def http_measurements(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        def refuse(status: int, error: str, field: str = "") -> web.Response:
            self.note(f"http_{status}", f"POST from {request.remote}: {error}")
            return web.json_response({"error": error, "field": field}, status=status)

        if self.options.token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.options.token.encode()):
                return refuse(401, "unauthorized: a wrong or missing bearer token", "Authorization")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return refuse(413, f"body over {self.options.max_frame_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return refuse(400, f"not JSON: {exc}")
        items = data if isinstance(data, list) else [data]
        t_arrival = host_time()
        by_sensor: dict[str, list[Measurement]] = {}
        for i, item in enumerate(items):
            where = f"[{i}]" if isinstance(data, list) else ""
            if not isinstance(item, dict):
                return refuse(400, "a measurement must be an object", where or "body")
            missing = [f for f in HTTP_FIELDS if f not in item]
            if missing:
                return refuse(400, f"missing fields: {', '.join(missing)}", f"{where}{missing[0]}".lstrip("."))
            sid = item["sensor_id"]
            if not isinstance(sid, str) or not ID_PATTERN.match(sid):
                return refuse(400, f"sensor_id {sid!r} must match {ID_PATTERN.pattern}", f"{where}sensor_id")
            try:
                by_sensor.setdefault(sid, []).append(decode_measurement(item))
            except MeasurementError as exc:
                field = exc.fields[0] if exc.fields else ""
                return refuse(422 if exc.reason == "invalid_payload" else 400, str(exc), f"{where}{field}")
        samples = 0
        for sid, measurements in by_sensor.items():
            dev = self.hub.sensor(HTTP_CONNECTOR, sid)
            if dev.address != request.remote:
                dev.describe({"connector_name": "HTTP"}, str(request.remote))
                dev.attached = 0  # no connection is held: its state follows its data
            samples += dev.ingest(measurements, t_arrival)
        self.counters["measurements"] += len(items)
        self.counters["samples"] += samples
        self.count("http_posts")
        return web.json_response({"accepted": len(items), "samples": samples, "sensors": sorted(by_sensor)},
                                 status=202)  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {"server": "ingest", "listening": self.listening, "clients": len(self.connections),
                "sensors": self.hub.summary(), "counters": dict(self.counters),
                "last_error": self.last_error}  # fmt: skip


async def serve_ingest(node: NodeContext, options: IngestOptions, stop: asyncio.Event) -> None:
    """The network ingest endpoint until ``stop`` (needs the node's ingest hub)."""
    if node.ingest_hub is None:
        return
    server = IngestServer(node, options, node.ingest_hub)
    node.add_remote(server)
    if not await server.start():
        return
    try:
        await server.backpressure_loop(stop)
    finally:
        await server.close()


#: node component: the network ingest endpoint (off unless ``--ingest`` is given)
ingest = remote_component("ingest", IngestOptions, serve_ingest, port_zero_is_off=False)  # 0: any free port
