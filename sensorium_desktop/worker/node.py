"""The node process: one asyncio loop that hosts the node's parts and its components.

The parts, one module each: :mod:`.acquisition` (devices → batching → the
:class:`StreamPublisher` thread, so a slow Redis never delays an arrival timestamp),
:mod:`.flowcontrol` (attention and load → batch policies), :mod:`.telemetry` (device
registry entries and node telemetry), :mod:`.command_server` (discover / connect /
disconnect). Components (:mod:`.components`: election, global clock probes, checkpoints,
recording, the sync worker process, the remote controls) get the node as their
:class:`~.context.NodeContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil
import redis

from .. import exitcodes, paths
from ..bus.connection import async_client
from ..bus.election import Elector
from ..bus.globalclock import GlobalClockProbe
from ..core.backoff import Backoff
from ..core.backpressure import Attention
from ..core.ids import validate_id
from ..core.samples import SampleBatch, SensorInfo
from ..core.status import NodeState
from ..devices import Device
from ..devices.network import IngestHub
from .acquisition import Acquisition
from .command_server import CommandServer
from .context import NodeConfig, Remote, Run
from .flowcontrol import FlowControl
from .telemetry import StatusReporter

log = logging.getLogger(__name__)


class Node:
    """A running node. ``await Node(config).run(stop)``; ``stop`` is an asyncio.Event.

    Hosts its parts (``acquisition``, ``flow``, ``status``, ``commands``) and the components
    of :mod:`.components`, restarting any that crashes; it is their :class:`NodeContext`.
    """

    def __init__(self, config: NodeConfig) -> None:
        validate_id(config.node_id, "node id")
        self.config = config
        self.keys = config.keys
        self.node_id = config.node_id
        self.pid = os.getpid()
        self.hostname = socket.gethostname()
        self.started = time.time()
        self.elector: Elector | None = None
        self.clock_probe: GlobalClockProbe | None = None
        self.counters: dict[str, int] = {"sink_errors": 0}
        self.state = NodeState()
        #: the remote controls while they run (see :mod:`.rcs`, :mod:`.pupil_remote`, :mod:`.ingest`)
        self.remotes: list[Remote] = []
        self._run_stop: asyncio.Event | None = None
        #: the network sensors' hub (before devices open: ``ws:`` URIs are answered by it)
        self.ingest_hub: IngestHub | None = None
        if config.component_options.get("ingest") is not None:
            self.ingest_hub = IngestHub(self.adopt_device)
            self.ingest_hub.activate()
        self.acquisition = Acquisition(config, self.counters, self.started,
                                       on_new_sensors=lambda infos: self.flow.force_sync_events(infos))  # fmt: skip
        acq = self.acquisition
        self.flow = FlowControl(self.keys, config.attention_default, acq.batcher, acq.publisher, acq.sensor_infos,
                                self.state)  # fmt: skip
        self.flow.force_sync_events(acq.sensor_infos())
        self.status = StatusReporter(config, acq, self.flow, self.counters, self.state, lambda: self.remotes)
        acq.publisher.on_connect.append(self.status.register_all)
        self.commands = CommandServer(acq, self.counters, self.allowed_roots)

    # -- what components and the record command read ------------------------------------------
    @property
    def devices(self) -> list[Device]:
        """The node's open devices."""
        return self.acquisition.devices

    @property
    def attention(self) -> Mapping[str, Attention]:
        """Current attention level per sensor id."""
        return self.flow.attention

    def add_sample_tap(self, tap: Callable[[SampleBatch], None]) -> None:
        self.acquisition.taps.append(tap)

    def sensor_info(self, sensor_id: str) -> SensorInfo | None:
        return next((i for i in self.acquisition.sensor_infos() if i.sensor_id == sensor_id), None)

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

    def exit_code(self) -> int:
        """How the run went for the devices that were asked for (see :func:`run_node`)."""
        acq = self.acquisition
        acq.report_devices()
        failed = acq.failed_devices(pending_too=True)
        if not self.config.devices or not failed:
            return exitcodes.OK
        for uri, why in failed:
            log.error("node %s: device %s never delivered: %s", self.node_id, uri, why)
        return exitcodes.PARTIAL if acq.delivered else exitcodes.FAILED

    def adopt_device(self, d: Device) -> None:
        """Start a device that came to the node on its own (a network client joined)."""
        if self._run_stop is None:
            return  # opened before the node runs: started with the others
        self.acquisition.add_device(d, self._run_stop)

    # -- hosting ------------------------------------------------------------------------------
    async def _supervise(self, name: str, run: Run, stop: asyncio.Event) -> None:
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

    def _components(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        from .components import COMPONENTS

        tasks = []
        for name, factory in COMPONENTS.load_all().items():
            try:
                run = factory(self)
            except Exception:  # a lab's component must not keep the node from starting
                self.counters["component_crashes"] = self.counters.get("component_crashes", 0) + 1
                log.critical("node %s: component %s could not be set up", self.node_id, name, exc_info=True)
                continue
            tasks.append(asyncio.create_task(self._supervise(name, run, stop), name=name))
        if COMPONENTS.errors:
            self.counters["plugin_errors"] = len(COMPONENTS.errors)
        return tasks

    async def run(self, stop: asyncio.Event) -> None:
        self._run_stop = stop
        threading.excepthook = self._thread_died
        acq = self.acquisition
        infos = acq.sensor_infos()
        await asyncio.to_thread(acq.publisher.add_sensors, infos)
        acq.publisher.start()
        client = async_client(self.config.redis_url)
        acq.redis = self.flow.redis = self.status.redis = self.commands.redis = client
        log.info("node %s: %d devices, %d sensors", self.node_id, len(acq.devices), len(infos))
        for d in acq.devices:
            acq.start_device(d, stop)
        await self.commands.reconnect_remembered(stop)
        tasks = [
            asyncio.create_task(self.commands.loop(stop), name="commands"),
            asyncio.create_task(acq.batch_loop(stop), name="batcher"),
            asyncio.create_task(self.status.loop(stop), name="status"),
            asyncio.create_task(self.flow.loop(stop), name="backpressure"),
            asyncio.create_task(self._watch_parent(stop), name="parent"),
        ]
        if self.config.components:
            tasks += self._components(stop)
        try:
            await stop.wait()
        finally:
            tasks += list(acq.device_tasks.values())
            await asyncio.wait(tasks, timeout=5.0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.ingest_hub is not None:
                self.ingest_hub.deactivate()
            await acq.drain()
            await asyncio.to_thread(acq.publisher.stop, 10.0)
            with contextlib.suppress(redis.RedisError, OSError):
                await self.status.write(time.time(), 0.0)
            await client.aclose()
            log.info("node %s stopped: %s", self.node_id, dict(acq.publisher.stats))


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
