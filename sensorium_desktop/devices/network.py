"""Network sensors: clients streaming to the node's ingest endpoint, as devices of the lab.

Phones, web apps, Unity scenes and microcontrollers speak Sensocto's sensor protocol (Phoenix
channels over WebSocket) or POST JSON (see :mod:`sensorium_desktop.worker.ingest`). Each sensor
a client joins is one device, URI ``ws:CONNECTOR/SENSOR`` (``ws:http/SENSOR`` for HTTP
posts), named by its ``sensor_name``; each attribute it sends is one sensor stream whose
layout comes from :mod:`sensorium_desktop.core.attributes` (ecg ``values`` lists are waveform
samples at their ``sample_rate``). Client timestamps (ms) are ``t_local`` in the connector's
clock domain (every sensor of one connector shares the sender's clock); arrival is
``t_arrival``. A client that goes away leaves its device ``lost``; the same sensor joining
again resumes the same device and streams.

``ws:`` URIs are answered by the ingest endpoint of this node (``--ingest HOST:PORT``):
``sensorium record --device ws:C/S`` waits for that client to join.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..core.attributes import get_type, layout
from ..core.ids import make_id
from ..core.measurements import Measurement
from ..core.samples import SampleBatch, SensorInfo
from .base import (
    BatchSink,
    Device,
    DeviceDescriptor,
    DeviceError,
    DeviceState,
    DeviceURI,
    ProgressCallback,
    Transport,
)

log = logging.getLogger(__name__)

HTTP_CONNECTOR = "http"
#: Batches kept for a sensor that joined before the node started its device (then delivered).
MAX_EARLY_BATCHES = 10_000


class NetworkSensor(Device):
    """One client sensor; data is pushed in by the ingest endpoint (:meth:`ingest`)."""

    def __init__(self, uri: DeviceURI, connector_id: str, client_sensor_id: str, name: str = "") -> None:
        super().__init__(uri, make_id("ws", client_sensor_id), name or client_sensor_id)
        self.connector_id = connector_id
        self.client_sensor_id = client_sensor_id
        self.connector_name = connector_id
        self.sensor_type = ""
        self.sampling_rate = 0.0
        self.address = ""
        self.backpressure: dict[str, Any] = {}
        self.paused_since: float | None = None
        self._infos: dict[str, SensorInfo] = {}  # attribute → its stream
        self._sink: BatchSink | None = None
        self._running = False
        self._stopped = False  # the node or the operator stopped it: data is counted, not kept
        self._early: list[SampleBatch] = []  # arrived between the join and the node starting it
        self.attached = 0  # connections holding this sensor now
        self.dropped_not_running = 0  # samples that arrived while the operator had it disconnected
        self.set_state(DeviceState.CONNECTING, "waiting for the client to join")

    # -- Device -----------------------------------------------------------------------------
    def sensors(self) -> list[SensorInfo]:
        return list(self._infos.values())

    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        """Receive what the endpoint pushes until ``stop``; the client's presence sets the state."""
        self._sink, self._running, self._stopped = sink, True, False
        early, self._early = self._early, []
        for batch in early:
            self.count_samples(batch)
            sink(batch)
        try:
            await stop.wait()
        finally:
            self._sink, self._running, self._stopped = None, False, True
            self.set_state(DeviceState.STOPPED, "disconnected by the operator")

    def details(self) -> dict[str, Any]:
        bp = self.backpressure
        return {"connector": self.connector_name, "connector_id": self.connector_id, "address": self.address,
                "sensor_type": self.sensor_type, "joined": self.attached > 0,
                "attention": bp.get("attention_level", ""), "paused": bool(bp.get("paused", False)),
                "batch_window_ms": bp.get("recommended_batch_window"), "batch_size": bp.get("recommended_batch_size"),
                "dropped_while_disconnected": self.dropped_not_running}  # fmt: skip

    # -- the client's side ------------------------------------------------------------------
    def describe(self, params: dict[str, Any], address: str) -> None:
        """A join (or rejoin) with Sensocto's join parameters, from ``address``."""
        self.name = str(params.get("sensor_name") or self.name)
        self.connector_name = str(params.get("connector_name") or self.connector_name)
        self.sensor_type = str(params.get("sensor_type") or self.sensor_type)
        try:
            self.sampling_rate = float(params.get("sampling_rate") or 0.0)
        except (TypeError, ValueError):
            self.sampling_rate = 0.0
        self.address = address
        self.attached += 1
        resumed = self.health.state in (DeviceState.LOST, DeviceState.STOPPED)
        if resumed:
            self.health.reconnects += 1
        again = " (rejoined)" if resumed else ""
        self.set_state(DeviceState.STREAMING, f"{self.connector_name} at {address}{again}")

    def detach(self, reason: str, lost: bool = True) -> None:
        """The client left (``lost=False``) or its connection went away."""
        self.attached = max(0, self.attached - 1)
        if self.attached == 0:
            self.set_state(DeviceState.LOST if lost else DeviceState.STOPPED, reason)

    def register_attribute(self, attribute: str, metadata: dict[str, Any] | None = None) -> SensorInfo:
        """The stream of ``attribute`` (made on first use and announced to the node)."""
        info = self._infos.get(attribute)
        if info is None:
            names, units, fmt = layout(attribute, _payload_keys(metadata))
            info = SensorInfo(
                sensor_id=make_id(self.device_id, attribute), attribute=attribute, device_id=self.device_id,
                device_name=self.name, transport="ws", uri=str(self.uri), channel_names=names, units=units,
                channel_format=fmt, nominal_rate=_rate(metadata), has_clock=True,
                clock_domain=make_id("ws", self.connector_id),
                extra={"connector_id": self.connector_id, "connector_name": self.connector_name,
                       "client_sensor_id": self.client_sensor_id, "sensor_type": self.sensor_type,
                       "sampling_rate": self.sampling_rate, "metadata": dict(metadata or {})},
            )  # fmt: skip
            self._infos[attribute] = info
            self.announce_sensors()
        return info

    def ingest(self, measurements: Iterable[Measurement], t_arrival: float) -> int:
        """Deliver decoded measurements (one client message) as one batch per attribute;
        returns the samples taken (none while the operator has the device disconnected)."""
        by_attr: dict[str, list[Measurement]] = {}
        for m in measurements:
            by_attr.setdefault(m.attribute, []).append(m)
        delivered = 0
        for attr, group in by_attr.items():
            info = self._infos.get(attr) or self.register_attribute(attr, _first_payload_layout(group))
            values = np.concatenate([m.values for m in group]) if len(group) > 1 else group[0].values
            t_local = np.concatenate([m.t_device for m in group]) if len(group) > 1 else group[0].t_device
            if values.shape[1] != len(info.channel_names):
                raise ValueError(f"{attr}: {values.shape[1]} values, the stream has {len(info.channel_names)}")
            if info.channel_format != "string":
                values = values.astype(info.channel_format, copy=False)
            batch = SampleBatch(info.sensor_id, attr, np.full(values.shape[0], t_arrival), values, t_local)
            if self._sink is None:
                if self._stopped or len(self._early) >= MAX_EARLY_BATCHES:
                    self.dropped_not_running += len(batch)
                else:
                    self._early.append(batch)
                    delivered += len(batch)
                continue
            self.count_samples(batch)
            self._sink(batch)
            delivered += len(batch)
        return delivered


def _payload_keys(metadata: dict[str, Any] | None) -> tuple[str, ...]:
    keys = (metadata or {}).get("payload_keys")
    return tuple(str(k) for k in keys) if isinstance(keys, list | tuple) and keys else ("value",)


def _first_payload_layout(group: list[Measurement]) -> dict[str, Any]:
    """Layout hints for a stream first seen in data: channel count for unknown types, the
    waveform rate of ecg-like lists (Hz, from the sample spacing)."""
    m = group[0]
    hints: dict[str, Any] = {}
    if get_type(m.attribute) is None:
        hints["payload_keys"] = m.payload_keys
    if m.t_device.size > 1:
        hints["sample_rate"] = 1.0 / float(np.median(np.diff(m.t_device)))
    return hints


def _rate(metadata: dict[str, Any] | None) -> float:
    rate = (metadata or {}).get("sample_rate") or (metadata or {}).get("sampling_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        return float(round(rate, 6))
    return 0.0


class IngestHub:
    """The network sensors of one node, by client sensor id; new ones are handed to the
    node with ``add_device`` (in its event loop)."""

    _active: list[IngestHub] = []

    def __init__(self, add_device: Any) -> None:
        self.add_device = add_device
        self.devices: dict[str, NetworkSensor] = {}

    def activate(self) -> None:
        IngestHub._active.append(self)

    def deactivate(self) -> None:
        if self in IngestHub._active:
            IngestHub._active.remove(self)

    @classmethod
    def active(cls) -> IngestHub | None:
        return cls._active[-1] if cls._active else None

    def sensor(self, connector_id: str, client_sensor_id: str) -> NetworkSensor:
        """The device of a client sensor, made (and started by the node) on first sight."""
        dev = self.devices.get(client_sensor_id)
        if dev is None:
            uri = DeviceURI("ws", f"{connector_id}/{client_sensor_id}")
            dev = self.devices[client_sensor_id] = NetworkSensor(uri, connector_id, client_sensor_id)
            self.add_device(dev)
        elif dev._stopped:
            dev._stopped = False  # the operator disconnected it; the client is back: resume
            self.add_device(dev)
        return dev

    def summary(self) -> dict[str, Any]:
        return {"devices": len(self.devices), "joined": sum(1 for d in self.devices.values() if d.attached)}


class NetworkTransport(Transport):
    scheme = "ws"
    label = "Network (Sensocto, HTTP)"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        """The client sensors known to this node's ingest endpoint (joined or seen)."""
        hub = IngestHub.active()
        if hub is None:
            return [DeviceDescriptor("ws:", self.scheme, "ingest endpoint", available=False,
                                     error="not running on this node (start it with --ingest HOST:PORT)")]  # fmt: skip
        return [
            DeviceDescriptor(str(d.uri), self.scheme, f"{d.name} ({d.connector_name})", d.device_id,
                             {"address": d.address, "connector": d.connector_name, "joined": bool(d.attached),
                              "attention": d.backpressure.get("attention_level", ""),
                              "paused": d.backpressure.get("paused", False)})
            for d in hub.devices.values()
        ]  # fmt: skip

    def open(self, uri: DeviceURI) -> Device:
        connector, _, sensor = uri.target.partition("/")
        if not connector or not sensor:
            raise DeviceError(f"{uri}: expected ws:CONNECTOR/SENSOR")
        hub = IngestHub.active()
        if hub is None:
            raise DeviceError(f"{uri}: no ingest endpoint runs on this node (start it with --ingest HOST:PORT)")
        dev = hub.devices.get(sensor)
        if dev is None:
            dev = hub.devices[sensor] = NetworkSensor(uri, connector, sensor)
        return dev
