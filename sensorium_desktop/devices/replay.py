"""Replay a recording (our session folder or any XDF file) into the lab as live sensors.

URI ``replay:PATH[?speed=X&loop=1&delay=S]`` (``delay``: seconds before the first sample, e.g.
to start a recording first) (``sensorium replay PATH`` is the shortcut). Every stream
of the file becomes a sensor of one device: the file's timestamps (our refined global times,
or pyxdf's synchronized ones) are its device time ``t_local``, samples are released when the
replay clock reaches them (``speed`` × real time, 0.25–16), so the live views, the sync worker,
the recorder, the LSL bridge and tests run on real data. String streams replay as ``marker``
sensors (a recording of the replay puts them in its marker inbox); a camera's frame-index
stream is not replayed (its frames stay in the original session's video file).

Device time is the file time divided by ``speed`` (the timeline as played); all streams share
one clock domain whose offset to host time is *measured* (the moment the replay starts), so a
replay recorded again keeps the file's relative timing (scaled by 1/``speed``).
``loop=1`` starts over at the end (device time keeps increasing by the file's span).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core.hostclock import host_time
from ..core.ids import make_id
from ..core.samples import SampleBatch, SensorInfo
from .base import (
    DeviceDescriptor,
    DeviceError,
    DeviceURI,
    EndOfStream,
    ProgressCallback,
    ThreadedDevice,
    Transport,
    UntrustedUriError,
)

SPEED_RANGE = (0.25, 16.0)
READ_PERIOD_S = 0.02


def _attribute_for(stream_attribute: str, source: str, string: bool) -> str:
    """Our attribute for a replayed stream: its own for our sessions, from the XDF type else."""
    from .lsl import attribute_for_type

    if string:
        return "marker"
    if source == "session" and stream_attribute:
        return stream_attribute
    return attribute_for_type(stream_attribute) if stream_attribute else "lsl"


class ReplayDevice(ThreadedDevice):
    """See the module docstring."""

    reconnect_base = 1.0

    def __init__(self, uri: DeviceURI) -> None:
        path = Path(uri.target).expanduser()
        if not uri.target:
            raise DeviceError(f"{uri}: no file (replay:PATH)")
        try:
            self.speed = float(uri.param("speed") or 1.0)
        except ValueError as exc:
            raise DeviceError(f"{uri}: speed must be a number") from exc
        if not SPEED_RANGE[0] <= self.speed <= SPEED_RANGE[1]:
            raise DeviceError(f"{uri}: speed must be in {SPEED_RANGE[0]:g}–{SPEED_RANGE[1]:g}")
        self.loop = (uri.param("loop") or "0") in ("1", "true", "yes")
        try:
            self.delay = max(0.0, float(uri.param("delay") or 0.0))
        except ValueError as exc:
            raise DeviceError(f"{uri}: delay must be a number of seconds") from exc
        stem = path.stem if path.suffix else path.name
        super().__init__(uri, make_id("replay", stem), f"Replay of {path.name}")
        self.path = path
        self._infos: list[SensorInfo] = []
        self._streams: list[tuple[SensorInfo, np.ndarray, np.ndarray]] = []  # info, times, values
        self._pos: list[int] = []
        self._file_t0 = 0.0
        self._span = 0.0
        self._host_t0 = 0.0
        self._round = 0

    def sensors(self) -> list[SensorInfo]:
        return list(self._infos)

    def _load(self) -> None:
        from ..recording.review import ReviewError, open_review

        try:
            data = open_review(self.path)
        except ReviewError as exc:
            raise DeviceError(str(exc)) from exc
        if data.warnings:
            self.health.count_error("file_warnings", len(data.warnings))
        t0, t1 = data.span
        self._file_t0, self._span = t0, t1 - t0
        domain = self.device_id
        for key, s in data.streams.items():
            if s.kind == "video" or s.times.size == 0:
                continue
            string = s.values.dtype == object
            attribute = _attribute_for(s.attribute, data.source, string)
            fmt = "string" if string else (s.values.dtype.name if s.values.dtype.name in (
                "float32", "float64", "int8", "int16", "int32", "int64") else "float64")  # fmt: skip
            info = SensorInfo(
                sensor_id=make_id(self.device_id, key), attribute=attribute, device_id=self.device_id,
                device_name=self.name, transport="replay", uri=str(self.uri), channel_names=s.channel_names,
                units=s.units, channel_format=fmt, nominal_rate=s.nominal_rate, has_clock=True,
                clock_domain=domain, extra={"replay_of": str(self.path), "stream": key, "source": data.source,
                                            "replay_name": s.name,
                                            "replay_type": s.attribute if data.source == "xdf" else ""},
            )  # fmt: skip
            values = s.values if string else s.values.astype(fmt, copy=False)
            self._streams.append((info, s.times, values))
        self._infos = [i for i, _, _ in self._streams]

    def open_link(self) -> None:
        if not self._streams:
            self._load()
            if not self._streams:
                raise EndOfStream(f"{self.path.name} holds no samples to replay")
        self._host_t0 = host_time() + self.delay
        self._round = 0
        self._pos = [0] * len(self._streams)
        offset = self._host_t0 - self._file_t0 / self.speed  # measured: host = device time + offset
        for info in self._infos:
            info.clock_offset, info.clock_sigma = offset, 1e-6

    def close_link(self) -> None:
        return None

    def read_link(self) -> list[SampleBatch]:
        time.sleep(READ_PERIOD_S)
        now = host_time()
        cursor = self._file_t0 + (now - self._host_t0) * self.speed - self._round * self._period()
        out = []
        for k, (info, times, values) in enumerate(self._streams):
            i0 = self._pos[k]
            i1 = int(np.searchsorted(times, cursor, side="right"))
            if i1 <= i0:
                continue
            self._pos[k] = i1
            t_local = (times[i0:i1] + self._round * self._period()) / self.speed  # on the replay's timeline
            out.append(SampleBatch(info.sensor_id, info.attribute, np.full(i1 - i0, now), values[i0:i1], t_local))
        if all(p >= t.size for p, (_, t, _) in zip(self._pos, self._streams, strict=True)):
            if not self.loop:
                if out:
                    return out  # delivered; the next read ends the stream
                raise EndOfStream(f"replay of {self.path.name} finished")
            self._round += 1
            self._pos = [0] * len(self._streams)
        return out

    def _period(self) -> float:
        """Device time added per loop: the span plus one sample step, so times keep rising."""
        return self._span + 1e-3


class ReplayTransport(Transport):
    scheme = "replay"
    label = "Replay"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        """Recordings are opened by path (``replay:PATH``): nothing to scan for."""
        return []

    def open(self, uri: DeviceURI) -> ReplayDevice:
        return ReplayDevice(uri)

    def check_untrusted(self, uri: DeviceURI, roots: list[Path]) -> None:
        """A replay named through Redis must lie in an allowed folder."""
        from ..paths import OutsideRootsError, confine

        try:
            confine(uri.target, roots, "replay file")
        except OutsideRootsError as exc:
            raise UntrustedUriError(f"{uri}: {exc}") from exc
