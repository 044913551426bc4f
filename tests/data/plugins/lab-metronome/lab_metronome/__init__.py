"""``metronome:NAME?rate=HZ``: a device clock ticking at ``rate`` Hz whose one channel counts
the ticks (0, 1, 2, …) — a lab's transport written against Sensorium's public device API only.
Also an exporter, ``--format npz``: one array per sensor (values, global time s)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sensorium_desktop.core.hostclock import host_time
from sensorium_desktop.core.ids import make_id
from sensorium_desktop.core.samples import SampleBatch, SensorInfo
from sensorium_desktop.devices import DeviceDescriptor, DeviceError, DeviceURI, Transport
from sensorium_desktop.devices.base import ProgressCallback, ThreadedDevice
from sensorium_desktop.recording.export import ExporterSpec
from sensorium_desktop.recording.reader import ExportOptions, Progress, Recording


class MetronomeDevice(ThreadedDevice):
    def __init__(self, uri: DeviceURI) -> None:
        super().__init__(uri, make_id("metronome", uri.target), f"Metronome {uri.target}")
        self.rate = uri.float_param("rate", 50.0)
        if not 0 < self.rate <= 10_000:
            raise DeviceError(f"{uri}: rate must be in (0, 10000] Hz")
        self.info = SensorInfo(
            sensor_id=make_id(self.device_id, "ticks"), attribute="ticks", device_id=self.device_id,
            device_name=self.name, transport="metronome", uri=str(uri), channel_names=("tick",), units=("",),
            channel_format="float64", nominal_rate=self.rate, has_clock=True,
        )
        self.ticks = 0
        self.started = 0.0

    def sensors(self) -> list[SensorInfo]:
        return [self.info]

    def open_link(self) -> None:
        self.started = time.monotonic() - self.ticks / self.rate

    def read_link(self) -> list[SampleBatch]:
        time.sleep(0.02)
        due = int((time.monotonic() - self.started) * self.rate)
        if due <= self.ticks:
            return []
        ticks = np.arange(self.ticks, due, dtype=np.float64)
        self.ticks = due
        n = len(ticks)
        return [SampleBatch(self.info.sensor_id, "ticks", np.full(n, host_time()), ticks[:, None], ticks / self.rate)]

    def close_link(self) -> None:
        pass


class MetronomeTransport(Transport):
    scheme = "metronome"
    label = "Metronomes"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        return [DeviceDescriptor("metronome:bench?rate=50", self.scheme, "Bench metronome")]

    def open(self, uri: DeviceURI) -> MetronomeDevice:
        return MetronomeDevice(uri)


def export_npz(rec: Recording, out: Path, options: ExportOptions, progress: Progress | None) -> list[Path]:
    arrays = {}
    for sid, data in rec.sensors.items():
        arrays[f"{sid}__values"] = data.values
        arrays[f"{sid}__time"] = rec.global_times(sid, options.clock)
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return [out]


NPZ = ExporterSpec(export_npz, ".npz", "NumPy arrays (lab-metronome)")
