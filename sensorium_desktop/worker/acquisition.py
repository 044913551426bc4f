"""A node's acquisition: its devices, their deliveries and failures, and the path from a
delivery to the publisher (anchoring sensors announced late, batching).

Everything here runs in the node's event loop; blocking transports use their own threads
and deliver through :meth:`Acquisition.sink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from .. import paths
from ..bus.keys import Keys
from ..bus.publisher import StreamPublisher
from ..bus.registry import queue_sensor_registration
from ..core.backoff import Backoff
from ..core.batching import Batcher
from ..core.hostclock import host_time
from ..core.samples import SampleBatch, SensorInfo
from ..devices import Device, DeviceError, DeviceState, DeviceURI, UntrustedUriError, open_device
from ..devices.simulated import expand_uri
from .context import NodeConfig

log = logging.getLogger(__name__)

#: the usual gap between a sensor's deliveries decays by this factor per delivery, up to (s)
DELIVERY_GAP_DECAY = 0.995
DELIVERY_GAP_CAP_S = 30.0
#: Device states that mean "not delivering": reported on the console as soon as they are seen.
FAILED_STATES = (DeviceState.ERROR, DeviceState.LOST, DeviceState.UNAVAILABLE)
#: How long a ``connect`` command waits for the new device to stream or fail before answering (s).
CONNECT_VERDICT_S = 1.5


class Acquisition:
    """The node's devices and what they deliver. ``counters`` is the node's (shared);
    ``on_new_sensors`` is told of every sensor that joins (the backpressure control forces
    shared-event sensors to high attention)."""

    def __init__(self, config: NodeConfig, counters: dict[str, int], started: float,
                 on_new_sensors: Callable[[list[SensorInfo]], None]) -> None:  # fmt: skip
        self.config = config
        self.keys: Keys = config.keys
        self.node_id = config.node_id
        self.counters = counters
        #: wall time (s) the node started: sensors carry it as their clock run
        self.started = started
        self.on_new_sensors = on_new_sensors
        #: called with every delivery before it is queued (components that look at the data)
        self.taps: list[Callable[[SampleBatch], None]] = []
        self.devices: list[Device] = []
        #: (URI, why) of every requested device that could not be opened
        self.device_errors: list[tuple[str, str]] = []
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
        self.batcher = Batcher(self.publisher.publish, config.attention_default)
        #: the node's asyncio Redis client while it runs
        self.redis: redis.asyncio.Redis | None = None
        self.device_stops: dict[str, asyncio.Event] = {}
        self.device_tasks: dict[str, asyncio.Task[None]] = {}
        self._known_sensors = {s.sensor_id for s in self.sensor_infos()}
        #: batches of sensors a device announced after start, held until their numbering is anchored
        self._anchoring: dict[str, list[SampleBatch]] = {}
        self._background: set[asyncio.Task[None]] = set()
        for d in self.devices:
            d.on_sensors_changed = self._sensors_changed
        #: device id → the failure last reported on the console ("" once it streams again)
        self._failure_reported: dict[str, str] = {}
        #: devices that delivered at least one sample since the node started
        self.delivered: set[str] = set()
        #: sensor id → wall time (s) of the last batch received from its device
        self.last_data: dict[str, float] = {}
        #: per sensor, its usual gap between deliveries (s): how late "late" is for it
        self.delivery_gaps: dict[str, float] = {}

    # -- sensors ------------------------------------------------------------------------------
    def sensor_infos(self) -> list[SensorInfo]:
        """Every sensor of every device, stamped with this node and its clock run."""
        infos = []
        for d in self.devices:
            for info in d.sensors():
                info.node_id = self.node_id
                info.extra["clock_run"] = self.started
                infos.append(info)
        return infos

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _sensors_changed(self, device: Device) -> None:
        """A self-describing device (serial, BLE, LSL) found new streams: register them; a
        device whose sensors' descriptions changed (a clock measured on opening) has them
        registered again."""
        new = [i for i in device.sensors() if i.sensor_id not in self._known_sensors]
        again = [i for i in device.sensors() if i.sensor_id in self._known_sensors and i.node_id == self.node_id]
        if again and self.redis is not None:
            self._spawn(self._register(again, "describing again"))
        if not new:
            return
        for info in new:
            info.node_id = self.node_id
            info.extra["clock_run"] = self.started
            self._known_sensors.add(info.sensor_id)
            self._anchoring[info.sensor_id] = []
        self.on_new_sensors(new)
        log.info("node %s: %s announced %s", self.node_id, device.device_id, [i.sensor_id for i in new])
        self._spawn(self._anchor_new(new))

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

    # -- data path ----------------------------------------------------------------------------
    def sink(self, batch: SampleBatch) -> None:
        """Entry point for every device delivery (called in the event loop)."""
        now = time.time()
        previous = self.last_data.get(batch.sensor_id)
        if previous is not None:  # the usual gap between deliveries: a slowly decaying maximum
            gap = min(now - previous, DELIVERY_GAP_CAP_S)
            usual = DELIVERY_GAP_DECAY * self.delivery_gaps.get(batch.sensor_id, 0.0)
            self.delivery_gaps[batch.sensor_id] = max(gap, usual)
        self.last_data[batch.sensor_id] = now
        for tap in self.taps:
            try:
                tap(batch)
            except Exception:  # a component's bug must not cost a sample
                self.counters["tap_errors"] += 1
                log.exception("node: a sample tap failed on %s", batch.sensor_id)
        held = self._anchoring.get(batch.sensor_id)
        if held is not None:
            held.append(batch)
            return
        try:
            self.batcher.add(batch, host_time())
        except Exception:  # a bad batch must never take acquisition down
            self.counters["sink_errors"] += 1
            log.exception("node: dropping malformed batch from %s", batch.sensor_id)

    async def batch_loop(self, stop: asyncio.Event) -> None:
        """Flush batches as their windows close until ``stop``."""
        while not stop.is_set():
            now = host_time()
            self.batcher.tick(now)
            delay = min(self.batcher.next_deadline(now), 0.05)
            await asyncio.sleep(max(delay, 0.002))  # a plain timer (≤ 50 ms): a wait_for each time cost 3× more

    async def drain(self) -> None:
        """At stop: wait for background registrations, hand over every held and pending batch."""
        await asyncio.gather(*self._background, return_exceptions=True)
        for sid in list(self._anchoring):  # not anchored yet: numbered provisionally, never lost
            for batch in self._anchoring.pop(sid):
                self.batcher.add(batch, host_time())
        self.batcher.flush_all()

    # -- devices ------------------------------------------------------------------------------
    def start_device(self, d: Device, stop: asyncio.Event) -> asyncio.Task[None]:
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

    def add_device(self, d: Device, stop: asyncio.Event) -> None:
        """Start a device opened while the node runs (connected by command, a network client
        that joined); its sensors known up front are registered now, the rest when announced."""
        if d not in self.devices:
            self.devices.append(d)
        d.on_sensors_changed = self._sensors_changed
        self._sensors_changed(d)
        self.start_device(d, stop)

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
            self.add_device(d, stop)
            started.append(d.device_id)
        return started

    async def first_outcome(self, device_ids: list[str], timeout: float = CONNECT_VERDICT_S) -> tuple[bool, str]:
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

    # -- failures -----------------------------------------------------------------------------
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
