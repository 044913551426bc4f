"""Lab Streaming Layer inlets (pylsl, whose wheel bundles liblsl): LSL streams as devices.

URI: ``lsl:STREAM_NAME`` with optional ``source_id``, ``type`` (to tell streams of one name
apart) and ``attribute`` (default from the stream type: EEG → ``eeg``, Markers → ``marker``,
…). Samples keep their LSL timestamps plus the inlet's ``time_correction()`` (refreshed every
``CORRECTION_INTERVAL_S``) as ``t_local``, so they are on this host's LSL clock. Every LSL
stream of a node is in one clock domain, ``lsl``, whose mapping to host time is *measured*
(:func:`measure_lsl_offset`: both clocks read back to back, the tightest pair kept), never
fitted from arrival jitter: equal LSL stamps map to equal times, spacing is kept exactly.
The stream's own name, type, source_id, hostname and ``desc`` travel in the sensor's
``extra`` (``lsl_*``) so exports describe it as its outlet did. Streams the app publishes
itself (``source_id`` starting with ``sensorium:``) are not offered, so nothing loops back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import socket
import time
from typing import Any

import numpy as np

from ..core.attributes import get_type
from ..core.clockdomain import offset_trend
from ..core.gazelayout import gaze_layout
from ..core.hostclock import host_time
from ..core.ids import InvalidIdError, make_id, validate_attribute_id
from ..core.samples import SampleBatch, SensorInfo
from .base import (
    DeviceDescriptor,
    DeviceError,
    DeviceURI,
    ProgressCallback,
    ThreadedDevice,
    Transport,
)

log = logging.getLogger(__name__)

OWN_SOURCE_PREFIX = "sensorium:"
RESOLVE_S = 2.0
CORRECTION_INTERVAL_S = 5.0
CORRECTION_WINDOW = 12  # estimates kept (one minute)
PULL_TIMEOUT_S = 0.1
TYPE_ATTRIBUTES = {
    "eeg": "eeg", "ecg": "ecg", "exg": "eeg", "emg": "emg", "markers": "marker", "marker": "marker",
    "gaze": "eye_gaze", "eye_gaze": "eye_gaze", "accelerometer": "accelerometer", "acc": "accelerometer",
    "gyroscope": "gyroscope", "respiration": "respiration", "ppg": "ppg", "audio": "audio",
    "heartrate": "heartrate", "hr": "hr", "mocap": "skeleton", "stim": "trigger", "trigger": "trigger",
}  # fmt: skip
LSL_FORMATS = {1: "float32", 2: "float64", 3: "string", 4: "int32", 5: "int16", 6: "int8", 7: "int64"}


#: Back-to-back clock reads per offset measurement, and how often it is repeated (s).
OFFSET_READS = 200
OFFSET_INTERVAL_S = 10.0
#: A later measurement this far (s) from the registered offset is reported.
OFFSET_MOVED_S = 20e-6


def _pylsl() -> Any:
    import pylsl

    return pylsl


def measure_lsl_offset(reads: int = OFFSET_READS) -> tuple[float, float]:
    """``host_time() - pylsl.local_clock()`` (s) and its 1-sigma (s), from the tightest of
    ``reads`` triples host, LSL, host read back to back (the LSL read lies between the two
    host reads: uniform over their gap)."""
    clock = _pylsl().local_clock
    best_gap, best = math.inf, 0.0
    for _ in range(reads):
        h0 = host_time()
        t = clock()
        h1 = host_time()
        if h1 - h0 < best_gap:
            best_gap, best = h1 - h0, 0.5 * (h0 + h1) - t
    return best, math.hypot(best_gap / math.sqrt(12.0), 2.5e-7)


def smooth_correction(pairs: list[tuple[float, float]]) -> float:
    """The correction now from ``(LSL time s, time_correction s)`` estimates (their
    :func:`~sensorium_desktop.core.clockdomain.offset_trend` at the newest)."""
    return offset_trend(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))[1]


def desc_xml(info: Any) -> str:
    """The ``<desc>…</desc>`` element of a stream's full XML ("" when absent)."""
    xml = info.as_xml()
    a, b = xml.find("<desc"), xml.rfind("</desc>")
    return xml[a : b + len("</desc>")] if a >= 0 and b > a else ""


def attribute_for_type(stream_type: str) -> str:
    """Attribute id for an LSL stream type (unknown types become a valid id of their own)."""
    key = stream_type.strip().lower()
    if key in TYPE_ATTRIBUTES:
        return TYPE_ATTRIBUTES[key]
    candidate = re.sub(r"[^a-z0-9_]+", "_", key).strip("_")[:32]
    try:
        return validate_attribute_id(candidate)
    except InvalidIdError:
        return "lsl"


def channel_labels(info: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(labels, units) from the stream's ``desc/channels`` (``ch1``… when absent)."""
    n = info.channel_count()
    labels: list[str] = []
    units: list[str] = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty() and len(labels) < n:
        labels.append(ch.child_value("label") or f"ch{len(labels) + 1}")
        units.append(ch.child_value("unit") or "")
        ch = ch.next_sibling()
    if len(labels) != n:
        labels, units = [f"ch{i + 1}" for i in range(n)], [""] * n
    return tuple(labels), tuple(units)


def source_extra(info: Any) -> dict[str, Any]:
    """What an LSL stream says of itself, kept with the sensor (exports describe it so)."""
    return {
        "source_id": info.source_id(), "hostname": info.hostname(), "lsl_type": info.type(), "lsl_name": info.name(),
        "lsl_created_at": info.created_at(), "lsl_uid": info.uid(), "lsl_desc": desc_xml(info),
    }  # fmt: skip


class LslDevice(ThreadedDevice):
    """One LSL stream through a ``StreamInlet``; lost outlets are re-resolved with backoff."""

    def __init__(self, uri: DeviceURI) -> None:
        name = uri.target
        if not name:
            raise DeviceError(f"{uri}: no stream name (lsl:STREAM_NAME)")
        super().__init__(uri, make_id("lsl", name), name)
        self.stream_name = name
        self.source_id = uri.param("source_id")
        self.stream_type = uri.param("type")
        self.attribute = uri.param("attribute")
        self._info: SensorInfo | None = None
        self._inlet: Any = None
        self._correction = 0.0
        self._correction_due = 0.0
        self._corrections: list[tuple[float, float]] = []  # (LSL time, time_correction) s
        self._same_host = False
        self._offset_due = 0.0
        self._string = False

    def sensors(self) -> list[SensorInfo]:
        return [self._info] if self._info else []

    def _predicate(self) -> str:
        parts = [f"name='{self.stream_name}'"]
        if self.source_id:
            parts.append(f"source_id='{self.source_id}'")
        if self.stream_type:
            parts.append(f"type='{self.stream_type}'")
        return " and ".join(parts)

    def open_link(self) -> None:
        lsl = _pylsl()
        found = lsl.resolve_bypred(self._predicate(), 1, RESOLVE_S)
        if not found:
            raise DeviceError(f"no LSL stream matches {self._predicate()}")
        inlet = lsl.StreamInlet(found[0], max_buflen=360, recover=False)
        inlet.open_stream(RESOLVE_S)
        info = inlet.info(RESOLVE_S)
        labels, units = channel_labels(info)
        fmt = LSL_FORMATS.get(info.channel_format(), "float64")
        self._string = fmt == "string"
        attribute = self.attribute or attribute_for_type(info.type())
        t = get_type(attribute)
        if t is not None and t.channel_format == "string" and not self._string:
            attribute = "lsl"
        extra = source_extra(info)
        if attribute == "eye_gaze":  # which channels are x/y (heatmap, review); the data stay as sent
            layout = gaze_layout(labels, units, info.name(), extra["lsl_desc"])
            extra["gaze_layout"] = layout.to_dict() if layout is not None else None
            if layout is None:
                self.health.count_error("gaze_channels_unknown")
                log.warning("%s: gaze stream %s: no x/y channels recognised in %s (docs/gaze-conventions.md)",
                            self.device_id, info.name(), list(labels))  # fmt: skip
        if self._info is None or self._info.channel_names != labels:
            offset, sigma = measure_lsl_offset()
            self._info = SensorInfo(
                sensor_id=make_id(self.device_id, attribute),
                attribute=attribute,
                device_id=self.device_id,
                device_name=info.name(),
                transport="lsl",
                uri=str(self.uri),
                channel_names=labels,
                units=units,
                channel_format=fmt,
                nominal_rate=float(info.nominal_srate()),
                has_clock=True,
                extra=extra,
                clock_domain="lsl",
                clock_offset=offset,
                clock_sigma=sigma,
            )
            self._offset_due = time.monotonic() + OFFSET_INTERVAL_S
        self._inlet = inlet
        self._correction_due = 0.0
        self._corrections = []
        self._same_host = info.hostname() == socket.gethostname()

    def _check_offset(self) -> None:
        """Re-measure the LSL → host offset; both are the OS monotonic clock, so it must not
        move: if it does (a clock change we do not know), say so in the device's health."""
        if self._info is None or time.monotonic() < self._offset_due:
            return
        self._offset_due = time.monotonic() + OFFSET_INTERVAL_S
        offset, sigma = measure_lsl_offset()
        registered = self._info.clock_offset or 0.0
        if abs(offset - registered) > max(OFFSET_MOVED_S, 5 * math.hypot(sigma, self._info.clock_sigma)):
            self.health.count_error("lsl_clock_moved")
            log.warning("%s: LSL clock moved %.1f us against the host clock", self.device_id,
                        (offset - registered) * 1e6)  # fmt: skip

    def close_link(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception:  # liblsl may already have dropped it
                pass

    def _refresh_correction(self) -> None:
        """Outlet clock → this host's LSL clock. An outlet on this host stamps with this very
        clock: no correction (each ``time_correction()`` would only add its µs of noise). For
        another host, the estimates of the last ``CORRECTION_WINDOW`` refreshes smoothed by
        :func:`smooth_correction` (a line when it drifts measurably, else their mean)."""
        if self._same_host:
            self._correction = 0.0
            return
        now = time.monotonic()
        if now < self._correction_due:
            return
        try:
            value = float(self._inlet.time_correction(timeout=1.0))
        except _pylsl().TimeoutError:
            self.health.count_error("time_correction_timeout")
            self._correction_due = now + 1.0
            return
        self._correction_due = now + CORRECTION_INTERVAL_S
        self._corrections.append((_pylsl().local_clock(), value))
        del self._corrections[:-CORRECTION_WINDOW]
        self._correction = smooth_correction(self._corrections)

    def read_link(self) -> list[SampleBatch]:
        inlet, info = self._inlet, self._info
        if inlet is None or info is None:
            raise DeviceError("inlet is closed")
        self._refresh_correction()
        self._check_offset()
        chunk, stamps = inlet.pull_chunk(timeout=PULL_TIMEOUT_S, max_samples=100_000)
        if not stamps:
            return []
        t_arrival = host_time()
        if self._string:
            values = np.empty((len(chunk), info.channel_count), dtype=object)
            values[:] = chunk
        else:
            values = np.asarray(chunk, dtype=info.channel_format).reshape(len(stamps), info.channel_count)
        t_local = np.asarray(stamps, dtype=np.float64) + self._correction
        return [SampleBatch(info.sensor_id, info.attribute, np.full(len(stamps), t_arrival), values, t_local)]


class LslTransport(Transport):
    scheme = "lsl"
    label = "LSL"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        """Streams on the network (our own outlets excluded), resolved for up to 2 s."""
        if progress:
            progress(0.0, "resolving streams")
        streams = await asyncio.to_thread(_pylsl().resolve_streams, min(timeout, RESOLVE_S))
        found = []
        for s in streams:
            if s.source_id().startswith(OWN_SOURCE_PREFIX):
                continue
            uri = DeviceURI("lsl", s.name(), (("source_id", s.source_id()),) if s.source_id() else ())
            details = {
                "type": s.type(), "channel_count": s.channel_count(), "nominal_srate": s.nominal_srate(),
                "channel_format": LSL_FORMATS.get(s.channel_format(), "?"), "source_id": s.source_id(),
                "hostname": s.hostname(),
            }  # fmt: skip
            name = f"{s.name()} ({s.type()})"
            found.append(DeviceDescriptor(str(uri), self.scheme, name, make_id("lsl", s.name()), details))
        if progress:
            progress(1.0, f"{len(found)} stream(s)")
        return found

    def open(self, uri: DeviceURI) -> LslDevice:
        return LslDevice(uri)
