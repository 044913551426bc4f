"""The node process: acquisition → backpressure batching → Redis, plus status and telemetry.

One asyncio loop runs the devices (blocking transports use their own threads), the
per-sensor :class:`Batcher`, and periodic tasks that publish device health, node
telemetry and backpressure configs. Sample batches leave through the
:class:`StreamPublisher` thread, so a slow Redis never delays an arrival timestamp.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import redis
import redis.asyncio

from .. import exitcodes, paths
from ..bus.commands import (
    COMMAND_GROUP,
    COMMAND_TTL_S,
    EVENTS_MAXLEN,
    command_age_s,
    ensure_command_group,
    parse_command,
)
from ..bus.connection import async_client
from ..bus.election import Elector
from ..bus.globalclock import GlobalClockProbe
from ..bus.publisher import StreamPublisher
from ..bus.registry import DeviceStatus, queue_sensor_registration, register_sensors
from ..bus.sessions import global_now
from ..core.attributes import SYNC_EVENT_ATTRIBUTES
from ..core.backoff import Backoff
from ..core.backpressure import Attention, BackpressureConfig, LoadEstimator, compute_config
from ..core.batching import Batcher
from ..core.health import stale_after
from ..core.hostclock import host_time
from ..core.ids import validate_id
from ..core.samples import SampleBatch, SensorInfo
from ..core.status import NodeState, Telemetry
from ..devices import Device, DeviceError, DeviceState, DeviceURI, UntrustedUriError, discover_all, open_device
from ..devices.network import IngestHub
from ..devices.simulated import expand_uri
from .context import NodeConfig, Remote

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0
#: the usual gap between a sensor's deliveries decays by this factor per delivery, up to (s)
DELIVERY_GAP_DECAY = 0.995
DELIVERY_GAP_CAP_S = 30.0
#: Device states that mean "not delivering": reported on the console as soon as they are seen.
FAILED_STATES = (DeviceState.ERROR, DeviceState.LOST, DeviceState.UNAVAILABLE)
BACKPRESSURE_INTERVAL_S = 2.0
ATTENTION_FLOOR_KEY = "__floor__"
PREVIEW_TTL_S = 10
#: How long a ``connect`` command waits for the new device to stream or fail before answering (s).
CONNECT_VERDICT_S = 1.5


class _RateMeter:
    """Samples/s per sensor over a sliding window (default 10 s) of cumulative counts."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.history: dict[str, collections.deque[tuple[float, int]]] = {}
        self.rates: dict[str, float] = {}

    def update(self, counts: dict[str, int], now: float) -> dict[str, float]:
        for sid, n in counts.items():
            h = self.history.setdefault(sid, collections.deque())
            h.append((now, n))
            while len(h) > 2 and now - h[1][0] >= self.window_s:
                h.popleft()
            if len(h) >= 2 and now > h[0][0]:
                self.rates[sid] = (n - h[0][1]) / (now - h[0][0])
        return self.rates


def memory_fraction() -> float:
    """Memory use against the cgroup limit when there is one, else against RAM (0..1)."""
    try:
        limit_text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit_text != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            return used / int(limit_text)
    except (OSError, ValueError):
        pass
    return psutil.virtual_memory().percent / 100.0


class Node:
    """A running node. ``await Node(config).run(stop)``; ``stop`` is an asyncio.Event.

    Besides acquisition it runs the components of :mod:`.components` (election, global
    clock probes, checkpoints, the sync worker process).
    """

    def __init__(self, config: NodeConfig) -> None:
        validate_id(config.node_id, "node id")
        self.config = config
        self.keys = config.keys
        self.node_id = config.node_id
        self.pid = os.getpid()
        self.hostname = socket.gethostname()
        self.elector: Elector | None = None
        self.clock_probe: GlobalClockProbe | None = None
        self.devices: list[Device] = []
        self.device_errors: list[tuple[str, str]] = []
        #: the network sensors' hub (before devices open: ``ws:`` URIs are answered by it)
        self.ingest_hub: IngestHub | None = None
        self._run_stop: asyncio.Event | None = None
        if config.component_options.get("ingest") is not None:
            self.ingest_hub = IngestHub(self.adopt_device)
            self.ingest_hub.activate()
        for text in config.devices:
            try:
                uris = expand_uri(DeviceURI.parse(text))
            except DeviceError as exc:
                self.device_errors.append((text, str(exc)))
                continue
            for uri in uris:
                try:
                    self.devices.append(open_device(uri))
                except DeviceError as exc:
                    self.device_errors.append((str(uri), str(exc)))
        for named, err in self.device_errors:
            log.error("node %s: cannot open %s: %s", self.node_id, named, err)
        spill = config.spill_dir or paths.spill_dir()
        self.publisher = StreamPublisher(config.redis_url, self.keys, self.node_id, spill)
        self.publisher.on_connect.append(self._register_all)
        self.batcher = Batcher(self.publisher.publish, config.attention_default)
        self.load = LoadEstimator()
        self.rates = _RateMeter()
        self.redis: redis.asyncio.Redis | None = None
        self.started = time.time()
        self.attention: dict[str, Attention] = {}
        self.forced_attention: dict[str, Attention] = {}
        self._force_sync_events(self.sensor_infos())
        self.device_stops: dict[str, asyncio.Event] = {}
        self.device_tasks: dict[str, asyncio.Task[None]] = {}
        self.discovering: asyncio.Task[None] | None = None
        #: id of the newest discover command: the running discovery answers it
        self.discovery_command = ""

        self._known_sensors = {s.sensor_id for s in self.sensor_infos()}
        #: batches of sensors a device announced after start, held until their numbering is anchored
        self._anchoring: dict[str, list[SampleBatch]] = {}
        self._background: set[asyncio.Task[None]] = set()
        for d in self.devices:
            d.on_sensors_changed = self._sensors_changed
        self.bp_published: dict[str, BackpressureConfig] = {}
        self.counters: dict[str, int] = {"sink_errors": 0}
        self.state = NodeState()
        #: device id → the failure last reported on the console ("" once it streams again)
        self._failure_reported: dict[str, str] = {}
        #: devices that delivered at least one sample since the node started
        self.delivered: set[str] = set()
        #: sensor id → wall time (s) of the last batch received from its device
        self.last_data: dict[str, float] = {}
        #: per sensor, its usual gap between deliveries (s): how late "late" is for it
        self.delivery_gaps: dict[str, float] = {}
        #: the remote controls while they run (see :mod:`.rcs`, :mod:`.pupil_remote`, :mod:`.ingest`)
        self.remotes: list[Remote] = []

    # -- registry ---------------------------------------------------------------------------
    def sensor_infos(self) -> list[SensorInfo]:
        infos = []
        for d in self.devices:
            for info in d.sensors():
                info.node_id = self.node_id
                info.extra["clock_run"] = self.started
                infos.append(info)
        return infos

    def _register_all(self, c: redis.Redis) -> None:
        infos = self.sensor_infos()
        register_sensors(c, self.keys, infos)
        pipe = c.pipeline(transaction=False)
        live = self.live_rates(time.time())
        for d in self.devices:
            pipe.hset(self.keys.device(d.device_id), mapping=self._device_status(d, live).to_mapping())
            pipe.sadd(self.keys.devices, d.device_id)
        pipe.execute()

    def live_rates(self, now: float) -> dict[str, float]:
        """Samples/s per sensor over the last 10 s, 0 for a sensor silent past its stale limit."""
        nominal = {s.sensor_id: s.nominal_rate for s in self.sensor_infos()}
        out = {}
        for sid, rate in self.rates.rates.items():
            limit = stale_after(nominal.get(sid, 0.0), self.delivery_gaps.get(sid, 0.0))
            silent = now - self.last_data.get(sid, -1e18)
            out[sid] = 0.0 if limit is not None and silent > limit else rate
        return out

    def _device_status(self, d: Device, live: dict[str, float]) -> DeviceStatus:
        """Registry entry of ``d``; ``live``: :meth:`live_rates` (computed once per write)."""
        transport = d.uri.scheme if d.uri.scheme != "sim" else "simulated"
        health = d.health.to_dict()
        health["rates"] = {s.sensor_id: round(live.get(s.sensor_id, 0.0), 3) for s in d.sensors()}
        health["last_data"] = {sid: self.last_data[sid] for sid in health["rates"] if sid in self.last_data}
        health["nominal"] = {s.sensor_id: s.nominal_rate for s in d.sensors()}
        gaps = self.delivery_gaps
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

    def _force_sync_events(self, infos: list[SensorInfo]) -> None:
        """Shared events (flashes, TTL) are grouped as soon as they are a second old: they must
        not wait in a batch window (they are rare, so this costs nothing)."""
        for s in infos:
            if s.attribute in SYNC_EVENT_ATTRIBUTES or s.extra.get("sync_events"):
                self.forced_attention[s.sensor_id] = Attention.HIGH
                level = max(Attention.HIGH, self.config.attention_default)
                self.batcher.set_config(s.sensor_id, compute_config(level), host_time())

    def _sensors_changed(self, device: Device) -> None:
        """A self-describing device (serial, BLE, LSL) found new streams: register them; a
        device whose sensors' descriptions changed (a clock measured on opening) has them
        registered again."""
        new = [i for i in device.sensors() if i.sensor_id not in self._known_sensors]
        again = [i for i in device.sensors() if i.sensor_id in self._known_sensors and i.node_id == self.node_id]
        if again and self.redis is not None:
            task = asyncio.get_running_loop().create_task(self._register(again, "describing again"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if not new:
            return
        for info in new:
            info.node_id = self.node_id
            info.extra["clock_run"] = self.started
            self._known_sensors.add(info.sensor_id)
            self._anchoring[info.sensor_id] = []
        self._force_sync_events(new)
        log.info("node %s: %s announced %s", self.node_id, device.device_id, [i.sensor_id for i in new])
        task = asyncio.get_running_loop().create_task(self._anchor_new(new))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _register(self, infos: list[SensorInfo], what: str = "registering") -> None:
        """Write sensor descriptions to Redis (a failure is logged: the publisher registers
        its sensors again when it reconnects)."""
        if self.redis is None:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            queue_sensor_registration(pipe, self.keys, infos)
            await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("node %s: %s %d sensors failed: %s", self.node_id, what, len(infos), exc)

    async def _anchor_new(self, infos: list[SensorInfo]) -> None:
        await asyncio.to_thread(self.publisher.add_sensors, infos)
        await self._register(infos, "registering new")
        now = host_time()
        for info in infos:
            for batch in self._anchoring.pop(info.sensor_id, []):
                self.batcher.add(batch, now)

    # -- data path --------------------------------------------------------------------------
    def sink(self, batch: SampleBatch) -> None:
        """Entry point for every device delivery (called in the event loop)."""
        now = time.time()
        previous = self.last_data.get(batch.sensor_id)
        if previous is not None:  # the usual gap between deliveries: a slowly decaying maximum
            gap = min(now - previous, DELIVERY_GAP_CAP_S)
            usual = DELIVERY_GAP_DECAY * self.delivery_gaps.get(batch.sensor_id, 0.0)
            self.delivery_gaps[batch.sensor_id] = max(gap, usual)
        self.last_data[batch.sensor_id] = now
        held = self._anchoring.get(batch.sensor_id)
        if held is not None:
            held.append(batch)
            return
        try:
            self.batcher.add(batch, host_time())
        except Exception:  # a bad batch must never take acquisition down
            self.counters["sink_errors"] += 1
            log.exception("node: dropping malformed batch from %s", batch.sensor_id)

    async def _batch_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = host_time()
            self.batcher.tick(now)
            delay = min(self.batcher.next_deadline(now), 0.05)
            try:
                await asyncio.wait_for(stop.wait(), max(delay, 0.002))
            except TimeoutError:
                pass

    def _start_device(self, d: Device, stop: asyncio.Event) -> asyncio.Task[None]:
        """Run ``d`` until the node stops or it is disconnected on its own."""
        own = self.device_stops[d.device_id] = asyncio.Event()

        async def relay() -> None:
            await stop.wait()
            own.set()

        relay_task = asyncio.create_task(relay())
        task = asyncio.create_task(self._run_device(d, own), name=f"device:{d.device_id}")
        task.add_done_callback(lambda _t: relay_task.cancel())
        self.device_tasks[d.device_id] = task
        return task

    async def _run_device(self, d: Device, stop: asyncio.Event) -> None:
        """Run ``d``; a crash (a bug in its transport) is logged, counted and the device restarted
        with backoff until the node stops."""
        backoff = Backoff(0.5, 10.0)
        while not stop.is_set():
            try:
                await d.run(self.sink, stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters["device_crashes"] = self.counters.get("device_crashes", 0) + 1
                d.set_state(DeviceState.ERROR, f"crashed: {type(exc).__name__}: {exc}")
                log.critical("node %s: device %s crashed; restarting it", self.node_id, d.device_id, exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next_delay())

    # -- device failures ----------------------------------------------------------------------
    def report_devices(self) -> None:
        """Say on the console (ERROR) which device fails and why, once per distinct failure,
        and when a failed device streams again."""
        for d in self.devices:
            if any(d.health.samples.values()):
                self.delivered.add(d.device_id)
            state, message = d.health.state, d.health.message or d.health.state.value
            last = self._failure_reported.get(d.device_id, "")
            if state in FAILED_STATES and message != last:
                self._failure_reported[d.device_id] = message
                self.counters["device_failures"] = self.counters.get("device_failures", 0) + 1
                log.error("node %s: device %s (%s) %s: %s", self.node_id, d.uri, d.device_id, state.value, message)
            elif state == DeviceState.STREAMING and last:
                self._failure_reported[d.device_id] = ""
                log.warning("node %s: device %s (%s) streams again", self.node_id, d.uri, d.device_id)

    def failed_devices(self, pending_too: bool = False) -> list[tuple[str, str]]:
        """(URI, why) of every requested device that could not be opened or has not delivered
        a sample and is in a failed state now (``pending_too``: or in any state)."""
        failed = list(self.device_errors)
        for d in self.devices:
            if any(d.health.samples.values()):
                self.delivered.add(d.device_id)
            if d.device_id not in self.delivered and (pending_too or d.health.state in FAILED_STATES):
                failed.append((str(d.uri), d.health.message or d.health.state.value))
        return failed

    def exit_code(self) -> int:
        """How the run went for the devices that were asked for (see :func:`run_node`)."""
        self.report_devices()
        failed = self.failed_devices(pending_too=True)
        if not self.config.devices or not failed:
            return exitcodes.OK
        for uri, why in failed:
            log.error("node %s: device %s never delivered: %s", self.node_id, uri, why)
        return exitcodes.PARTIAL if self.delivered else exitcodes.FAILED

    # -- periodic status ----------------------------------------------------------------------
    async def _status_loop(self, stop: asyncio.Event) -> None:
        proc = psutil.Process()
        proc.cpu_percent(None)
        psutil.cpu_percent(None)
        while not stop.is_set():
            now = time.time()
            counts: dict[str, int] = {}
            for d in self.devices:
                counts.update(d.health.samples)
            self.rates.update(counts, now)
            self.report_devices()
            self.load.add_cpu_sample(psutil.cpu_percent(None) / 100.0)
            try:
                await self._write_status(now, proc.cpu_percent(None))
            except (redis.RedisError, OSError) as exc:
                log.debug("node: status write failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATUS_INTERVAL_S)

    async def _write_status(self, now: float, cpu_percent: float) -> None:
        c = self.redis
        if c is None:
            return
        pipe = c.pipeline(transaction=False)
        live = self.live_rates(time.time())
        for d in self.devices:
            pipe.hset(self.keys.device(d.device_id), mapping=self._device_status(d, live).to_mapping())
            pipe.sadd(self.keys.devices, d.device_id)
        telemetry = Telemetry(
            node=self.node_id, pid=os.getpid(), time=now, cpu_percent=cpu_percent, rates=live,
            queue_depth=self.publisher.queue_depth, spilled=self.publisher.spilled, connected=self.publisher.connected,
            latency_ms=self.publisher.latency_percentiles(), publisher=dict(self.publisher.stats),
            batch_flushes=dict(self.batcher.flushes), counters=self.counters,
            device_errors=[list(e) for e in self.device_errors],
            remote_control=[r.summary() for r in self.remotes],
            state=self.state,
        )  # fmt: skip
        pipe.set(self.keys.telemetry(self.node_id), telemetry.to_json(), ex=30)
        for d in self.devices:
            preview = d.latest_preview()
            if preview is not None:
                sid, jpeg, t = preview
                pipe.hset(self.keys.preview(sid), mapping={"jpeg": jpeg, "t": repr(t)})
                pipe.expire(self.keys.preview(sid), PREVIEW_TTL_S)
        pipe.hset(
            self.keys.node_info(self.node_id),
            mapping={"pid": os.getpid(), "host": socket.gethostname(), "priority": self.config.priority,
                     "started": repr(self.started), "devices": json.dumps([str(d.uri) for d in self.devices])},
        )  # fmt: skip
        pipe.sadd(self.keys.nodes, self.node_id)
        await pipe.execute()

    async def _backpressure_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.update_backpressure()
            except (redis.RedisError, OSError) as exc:
                log.debug("node: backpressure update failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), BACKPRESSURE_INTERVAL_S)

    async def read_attention(self) -> dict[str, Attention]:
        """Highest unexpired attention any viewer published for each of our sensors."""
        c = self.redis
        infos = self.sensor_infos()
        if c is None or not infos:
            return {}
        pipe = c.pipeline(transaction=False)
        for info in infos:
            pipe.hgetall(self.keys.attention(info.sensor_id))
        now = time.time()
        out: dict[str, Attention] = {}
        for info, entries in zip(infos, await pipe.execute(), strict=True):
            level = self.config.attention_default
            for raw in entries.values():
                try:
                    name, _, expires = raw.decode().partition("|")
                    if float(expires or "inf") >= now:
                        level = max(level, Attention.parse(name))
                except ValueError:
                    continue
            out[info.sensor_id] = max(level, self.forced_attention.get(info.sensor_id, Attention.NONE))
        return out

    async def update_backpressure(self) -> None:
        """Recompute load and attention; re-send configs that changed (8-field hash)."""
        queue_fill = min(1.0, self.publisher.queue_depth / 1000.0)
        pending = sum(self.batcher.pending_messages(s.sensor_id) for s in self.sensor_infos())
        level, mem_protect, pressure = self.load.assess(queue_fill, min(1.0, pending / 1000.0), memory_fraction())
        self.state.system_load, self.state.pressure = level.value, round(pressure, 3)
        self.state.memory_protection = mem_protect
        self.attention = await self.read_attention()
        now_ms = int(time.time() * 1000)
        c = self.redis
        changed: list[tuple[str, BackpressureConfig]] = []
        for sid, att in self.attention.items():
            cfg = compute_config(att, level, mem_protect, now_ms)
            if not cfg.same_policy(self.bp_published.get(sid)):
                self.batcher.set_config(sid, cfg, host_time())
                changed.append((sid, cfg))
        if c is not None and changed:
            pipe = c.pipeline(transaction=False)
            for sid, cfg in changed:
                pipe.hset(self.keys.backpressure(sid), mapping={k: json.dumps(v) for k, v in cfg.to_dict().items()})
            await pipe.execute()
            for sid, cfg in changed:
                self.bp_published[sid] = cfg

    # -- commands (discover, connect, disconnect) -------------------------------------------------
    async def _command_loop(self, stop: asyncio.Event) -> None:
        """Follow ``<p>:commands:<node>`` through the consumer group ``node``: no command is
        missed between two reads or while the node restarts, none runs twice (each is
        acknowledged as it is taken), and one older than
        :data:`~sensorium_desktop.bus.commands.COMMAND_TTL_S` is answered as expired."""
        key = self.keys.commands(self.node_id)
        ready = False
        backlog = True  # first what a previous run of this node took but never acknowledged
        while not stop.is_set():
            c = self.redis
            if c is None:
                await asyncio.sleep(0.2)
                continue
            try:
                if not ready:
                    await ensure_command_group(c, self.keys, self.node_id)
                    ready = True
                result = await c.xreadgroup(COMMAND_GROUP, self.node_id, {key: "0" if backlog else ">"},
                                            count=10, block=None if backlog else 300)  # fmt: skip
                entries = [e for _key, batch in result or [] for e in batch]
                if backlog and not entries:
                    backlog = False
                    continue
                now_ms = int(await global_now(c) * 1000)  # Redis's clock: the one stream ids are made of
            except (redis.RedisError, OSError) as exc:
                ready = False
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    continue  # the stream was deleted under us: make the group again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            for eid, fields in entries:
                entry_id = eid.decode() if isinstance(eid, bytes) else str(eid)
                with contextlib.suppress(redis.RedisError, OSError):
                    await c.xack(key, COMMAND_GROUP, entry_id)
                age_s = command_age_s(entry_id, now_ms)
                if age_s > COMMAND_TTL_S:
                    self.counters["expired_commands"] = self.counters.get("expired_commands", 0) + 1
                    cid = (fields.get(b"id") or b"").decode("utf-8", "replace")
                    op = (fields.get(b"op") or b"?").decode("utf-8", "replace")
                    log.warning("node %s: %s command %s expired (sent %.0f s ago)", self.node_id, op, cid, age_s)
                    await self._event(op, cid, False, f"not done: sent {age_s:.0f} s ago, while node "
                                                      f"{self.node_id} was not running", logged=True)  # fmt: skip
                    continue
                await self._command(fields, stop)

    async def _command(self, fields: dict[bytes, bytes], stop: asyncio.Event) -> None:
        try:
            cid, op, args = parse_command(fields)
        except ValueError as exc:
            self.counters["bad_commands"] = self.counters.get("bad_commands", 0) + 1
            await self._event("?", "", False, str(exc))
            return
        if op == "stop_discovery":
            if self.discovering is not None and not self.discovering.done():
                self.discovering.cancel()  # the discovery answers: "discovery stopped"
            else:
                await self._event(op, cid, True, "no discovery is running")
            return
        if op == "discover":
            self.discovery_command = cid  # the discovery reports under the newest command's id
            if self.discovering is None or self.discovering.done():
                self.discovering = asyncio.create_task(self._discover(cid, args))
            else:  # every command is answered: this one joins the scan under way
                await self._event(op, cid, True, "a discovery is running: its results answer this one too")
            return
        if op == "connect":
            uri = str(args.get("uri", ""))
            try:
                started = self.start_uri(uri, stop, self.allowed_roots())
            except DeviceError as exc:
                ok, message = False, str(exc)
            else:
                ok, message = await self._first_outcome(started) if started else (False, f"{uri} is already connected")
                await self._remember(started)
        else:
            ok, message = await self.disconnect(str(args.get("device_id", "")))
        await self._event(op, cid, ok, message)

    async def _event(self, op: str, cid: str, ok: bool, message: str, logged: bool = False) -> None:
        """Answer command ``cid`` on ``<p>:events`` (a failure is logged unless ``logged``)."""
        if not ok and not logged:
            log.error("node %s: %s failed: %s", self.node_id, op, message)
        if self.redis is None:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            await self.redis.xadd(self.keys.events, {"op": op, "id": cid, "node": self.node_id, "ok": int(ok),
                                                     "message": message, "time": repr(time.time())},
                                  maxlen=EVENTS_MAXLEN, approximate=True)  # fmt: skip

    async def _discover(self, cid: str, args: dict[str, object]) -> None:
        """Run every transport's discovery here (radios and ports belong to the node's PC),
        publishing progress every 0.25 s and the descriptors at the end; the outcome answers
        ``cid``, the command that started it (those that joined it were answered at once)."""
        key = self.keys.discovery(self.node_id)
        timeout = float(args.get("timeout", 5.0))  # type: ignore[arg-type]
        schemes = args.get("schemes") or None
        progress: dict[str, float] = {}
        last = ["starting"]

        def report(frac: float, msg: str) -> None:
            progress[msg.split(":", 1)[0]] = frac
            last[0] = msg

        async def publish(state: str, extra: dict[str, str]) -> None:
            if self.redis is None:
                return
            done = sum(progress.values()) / max(len(progress), 1)
            mapping = {"state": state, "progress": repr(done), "message": last[0], "updated": repr(time.time()),
                       "command": self.discovery_command}  # fmt: skip
            with contextlib.suppress(redis.RedisError, OSError):
                await self.redis.hset(key, mapping=mapping | extra)

        await publish("running", {"found": "[]"})
        scan = asyncio.create_task(discover_all(timeout, report, schemes))  # type: ignore[arg-type]
        try:
            while not scan.done():
                await asyncio.wait([scan], timeout=0.25)
                await publish("running", {})
        except asyncio.CancelledError:  # the operator pressed Stop (or the node stops)
            scan.cancel()
            await asyncio.gather(scan, return_exceptions=True)
            last[0] = "stopped"
            await publish("stopped", {"found": "[]"})
            await self._event("discover", cid, True, "discovery stopped")
            raise
        found = scan.result()
        connected = {str(d.uri) for d in self.devices}
        rows = [dict(d.to_dict(), connected=d.uri in connected) for d in found]
        progress.clear()
        last[0] = f"{len(rows)} found"
        await publish("done", {"progress": "1", "found": json.dumps(rows, default=str)})
        await self._event("discover", cid, True, f"{len(rows)} devices found")

    def add_remote(self, remote: Remote) -> None:
        """Show ``remote`` in the node's status while it runs (one per name: a restarted
        component's replaces the old one)."""
        self.remotes = [r for r in self.remotes if r.name != remote.name] + [remote]

    def remote(self, name: str) -> Remote | None:
        """The running remote called ``name`` (None: not running)."""
        return next((r for r in self.remotes if r.name == name), None)

    def allowed_roots(self) -> list[Path]:
        """Folders that paths received through Redis may name (:func:`paths.allowed_roots`)."""
        extra = [self.config.sessions_dir] if self.config.sessions_dir else []
        return paths.allowed_roots([*extra, *self.config.allowed_roots])

    def start_uri(self, uri: str, stop: asyncio.Event, untrusted_roots: list[Path] | None) -> list[str]:
        """Open and start the device(s) of ``uri`` (``sim:lab`` expands); the ids started (none
        when already connected). ``untrusted_roots``: it came through Redis, so files it names
        must lie in these folders. Raises :class:`DeviceError` (the message is the reason)."""
        try:
            devices = [open_device(u, untrusted_roots) for u in expand_uri(DeviceURI.parse(uri))]
        except UntrustedUriError as exc:
            self.counters["refused_commands"] = self.counters.get("refused_commands", 0) + 1
            log.error("node %s: REFUSED a connect from Redis: %s", self.node_id, exc)
            raise
        started = []
        for d in devices:
            if any(x.device_id == d.device_id for x in self.devices):
                continue
            self.devices.append(d)
            d.on_sensors_changed = self._sensors_changed
            self._sensors_changed(d)  # sensors known up front are registered now, the rest when announced
            self._start_device(d, stop)
            started.append(d.device_id)
        return started

    async def _first_outcome(self, device_ids: list[str], timeout: float = CONNECT_VERDICT_S) -> tuple[bool, str]:
        """Wait up to ``timeout`` s for just-connected devices to stream or fail; (ok, message)
        naming each device that failed and why."""
        devices = [d for d in self.devices if d.device_id in device_ids]
        deadline = time.monotonic() + timeout
        pending = (DeviceState.IDLE, DeviceState.CONNECTING, DeviceState.RECONNECTING)
        while time.monotonic() < deadline and any(d.health.state in pending for d in devices):
            await asyncio.sleep(0.05)
        self.report_devices()
        failed = [f"{d.uri}: {d.health.message or d.health.state.value}" for d in devices
                  if d.health.state in FAILED_STATES]  # fmt: skip
        if failed:
            return False, "cannot connect " + "; ".join(failed) + " (retrying; disconnect to give up)"
        waiting = [d.device_id for d in devices if d.health.state in pending]
        if waiting:
            return True, f"connected {', '.join(device_ids)}; {', '.join(waiting)} still connecting"
        return True, f"connected {', '.join(device_ids)}"

    async def disconnect(self, device_id: str) -> tuple[bool, str]:
        """Stop a device and take it off the registry (its sensors' streams stay)."""
        d = next((x for x in self.devices if x.device_id == device_id), None)
        if d is None:
            return False, f"no device {device_id!r} on node {self.node_id}"
        self.device_stops[device_id].set()
        task = self.device_tasks.pop(device_id, None)
        if task is not None:
            await asyncio.wait([task], timeout=5.0)
        self.devices.remove(d)
        self.device_stops.pop(device_id, None)
        if self.redis is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.redis.srem(self.keys.devices, device_id)
                await self.redis.delete(self.keys.device(device_id))
                await self.redis.hdel(self.keys.node_connected(self.node_id), device_id)
        return True, f"disconnected {device_id}"

    async def _remember(self, device_ids: list[str]) -> None:
        """Devices connected by command are reconnected when this node starts again."""
        uris = {d.device_id: str(d.uri) for d in self.devices if d.device_id in device_ids}
        if uris and self.redis is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.redis.hset(self.keys.node_connected(self.node_id), mapping=uris)

    async def _reconnect_remembered(self, stop: asyncio.Event) -> None:
        """Open again what the operator had connected before this node stopped (killed, crashed,
        the PC restarted); each outcome is logged, a failure counted, the device's row says why."""
        assert self.redis is not None
        try:
            remembered = await self.redis.hgetall(self.keys.node_connected(self.node_id))
        except (redis.RedisError, OSError) as exc:
            log.error("node %s: devices connected before the restart not known (Redis: %s)", self.node_id, exc)
            return
        for raw_id, raw_uri in sorted(remembered.items()):
            device_id, uri = raw_id.decode("utf-8", "replace"), raw_uri.decode("utf-8", "replace")
            if any(d.device_id == device_id for d in self.devices):
                continue
            try:
                started = self.start_uri(uri, stop, self.allowed_roots())
            except DeviceError as exc:
                self.counters["reconnect_failures"] = self.counters.get("reconnect_failures", 0) + 1
                log.error("node %s: could not reconnect %s (connected before the restart): %s", self.node_id, uri, exc)
                continue
            log.warning("node %s: reconnected %s (%s), connected before the node restarted", self.node_id,
                        ", ".join(started) or device_id, uri)  # fmt: skip

    async def _supervise(self, name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
        """Run a component until the node stops; a crash is logged, counted and the component
        started again (backoff 0.5 → 10 s)."""
        backoff = Backoff(0.5, 10.0)
        while not stop.is_set():
            try:
                await run(stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counters["component_crashes"] = self.counters.get("component_crashes", 0) + 1
                log.critical("node %s: component %s crashed; restarting it", self.node_id, name, exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next_delay())

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        """``threading.excepthook``: a background thread ended by an exception is never silent."""
        self.counters["thread_deaths"] = self.counters.get("thread_deaths", 0) + 1
        name = args.thread.name if args.thread is not None else "?"
        log.critical("node %s: thread %s died: %s", self.node_id, name, args.exc_value,
                     exc_info=args.exc_value)  # fmt: skip

    async def _watch_parent(self, stop: asyncio.Event) -> None:
        pid = self.config.parent_pid
        if not pid:
            return
        while not stop.is_set():
            if not psutil.pid_exists(pid) or os.getppid() != pid:
                log.warning("node %s: parent process %d is gone; shutting down", self.node_id, pid)
                stop.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    # -- lifecycle --------------------------------------------------------------------------
    def adopt_device(self, d: Device) -> None:
        """Start a device that came to the node on its own (a network client joined)."""
        if self._run_stop is None:
            return  # opened before the node runs: started with the others
        if d not in self.devices:
            self.devices.append(d)
        d.on_sensors_changed = self._sensors_changed
        self._sensors_changed(d)
        self._start_device(d, self._run_stop)

    async def run(self, stop: asyncio.Event) -> None:
        self._run_stop = stop
        threading.excepthook = self._thread_died
        infos = self.sensor_infos()
        await asyncio.to_thread(self.publisher.add_sensors, infos)
        self.publisher.start()
        self.redis = async_client(self.config.redis_url)
        log.info("node %s: %d devices, %d sensors", self.node_id, len(self.devices), len(infos))
        for d in self.devices:
            self._start_device(d, stop)
        await self._reconnect_remembered(stop)
        tasks = [
            asyncio.create_task(self._command_loop(stop), name="commands"),
            asyncio.create_task(self._batch_loop(stop), name="batcher"),
            asyncio.create_task(self._status_loop(stop), name="status"),
            asyncio.create_task(self._backpressure_loop(stop), name="backpressure"),
            asyncio.create_task(self._watch_parent(stop), name="parent"),
        ]
        if self.config.components:
            from .components import COMPONENTS

            for name, factory in COMPONENTS.load_all().items():
                try:
                    run = factory(self)  # the node is the components' NodeContext
                except Exception:  # a lab's component must not keep the node from starting
                    self.counters["component_crashes"] = self.counters.get("component_crashes", 0) + 1
                    log.critical("node %s: component %s could not be set up", self.node_id, name, exc_info=True)
                    continue
                tasks.append(asyncio.create_task(self._supervise(name, run, stop), name=name))
            if COMPONENTS.errors:
                self.counters["plugin_errors"] = len(COMPONENTS.errors)
        try:
            await stop.wait()
        finally:
            tasks += list(self.device_tasks.values())
            await asyncio.wait(tasks, timeout=5.0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*self._background, return_exceptions=True)
            if self.ingest_hub is not None:
                self.ingest_hub.deactivate()
            for sid in list(self._anchoring):  # not anchored yet: numbered provisionally, never lost
                for batch in self._anchoring.pop(sid):
                    self.batcher.add(batch, host_time())
            self.batcher.flush_all()
            await asyncio.to_thread(self.publisher.stop, 10.0)
            try:
                await self._write_status(time.time(), 0.0)
            except (redis.RedisError, OSError):
                pass
            await self.redis.aclose()
            log.info("node %s stopped: %s", self.node_id, dict(self.publisher.stats))


def run_node(config: NodeConfig, duration: float | None = None) -> int:
    """Run a node until SIGINT/SIGTERM (or ``duration`` seconds); returns an exit code:
    :data:`~sensorium_desktop.exitcodes.FAILED` when no requested device ever delivered,
    ``PARTIAL`` when some did not, else ``OK``."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        node = Node(config)
        await node.run(stop)
        return node.exit_code()

    return asyncio.run(main())
