"""XDF 1.0 writer (https://github.com/sccn/xdf/wiki/Specifications), as LabRecorder writes it.

One stream per sensor attribute plus a ``Markers`` string stream. Chunks: FileHeader,
StreamHeader (channel_count, nominal_srate, channel_format, type, channel labels/units/types
in ``desc/channels``, our clock model in ``desc/synchronization``), Samples every
``CHUNK_SECONDS`` per stream with 8-byte timestamps, ClockOffset, a Boundary chunk between
rounds, StreamFooter (first/last timestamp, sample count, clock offsets).

``timestamps="global"`` (default): sample times are already global; every ClockOffset is
0 at its collection time, so pyxdf's ``synchronize_clocks`` is an identity and files read
the same with or without it. ``timestamps="local"``: sample times are the device clock (the
host arrival clock for devices without one) and the ClockOffset chunks carry our model
(offset = global − device time, sampled every ``CHUNK_SECONDS``), which LSL tools apply.
Numeric sample chunks are built with one structured numpy array each.
"""

from __future__ import annotations

import io
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from .reader import Recording

BOUNDARY = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")
CHUNK_SECONDS = 5.0
TIMESTAMP_MODES = ("global", "local")
_XDF_FORMATS = {"float32": "float32", "float64": "double64", "int8": "int8", "int16": "int16", "int32": "int32",
                "int64": "int64", "string": "string"}  # fmt: skip


class Tag:
    FILE_HEADER = 1
    STREAM_HEADER = 2
    SAMPLES = 3
    CLOCK_OFFSET = 4
    BOUNDARY = 5
    STREAM_FOOTER = 6


def varlen(n: int) -> bytes:
    """XDF variable-length integer: 1 length byte (1, 4 or 8) then the value."""
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 1 << 32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def chunk(tag: int, content: bytes | list[bytes]) -> list[bytes]:
    """The parts of one chunk: varlen length (tag + content), tag, content."""
    parts = content if isinstance(content, list) else [content]
    length = 2 + sum(len(p) for p in parts)
    return [varlen(length), struct.pack("<H", tag), *parts]


def _el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


@dataclass
class XdfStream:
    """One stream to write: times (s) and values (n, channels) plus header fields."""

    stream_id: int
    name: str
    type: str
    source_id: str
    channel_format: str
    nominal_srate: float
    labels: list[str]
    units: list[str]
    times: np.ndarray
    values: np.ndarray
    desc_xml: str = ""
    offset_times: np.ndarray | None = None  # ClockOffset collection times (local mode)
    offset_values: np.ndarray | None = None
    global_times: np.ndarray | None = None  # orders the chunks in the file when ``times`` are local

    @property
    def layout_times(self) -> np.ndarray:
        return self.times if self.global_times is None else self.global_times

    def header_xml(self, hostname: str, session_id: str) -> str:
        chans = "".join(
            f"<channel>{_el('label', lab)}{_el('unit', unit)}{_el('type', self.type)}</channel>"
            for lab, unit in zip(self.labels, self.units, strict=True)
        )
        return ('<?xml version="1.0"?><info>' + _el("name", self.name) + _el("type", self.type)
                + _el("channel_count", len(self.labels)) + _el("nominal_srate", repr(float(self.nominal_srate)))
                + _el("channel_format", _XDF_FORMATS[self.channel_format]) + _el("source_id", self.source_id)
                + _el("version", "1.1") + _el("created_at", repr(time.time())) + _el("uid", uuid.uuid4())
                + _el("session_id", session_id) + _el("hostname", hostname)
                + f"<desc><channels>{chans}</channels>{self.desc_xml}</desc></info>")  # fmt: skip


def _samples_chunk(s: XdfStream, a: int, b: int) -> list[bytes]:
    n = b - a
    head = struct.pack("<I", s.stream_id) + varlen(n)
    if s.channel_format == "string":
        out = io.BytesIO()
        for t, row in zip(s.times[a:b].tolist(), s.values[a:b], strict=True):
            out.write(b"\x08" + struct.pack("<d", t))
            for v in row:
                raw = str(v).encode("utf-8")
                out.write(varlen(len(raw)) + raw)
        return chunk(Tag.SAMPLES, [head, out.getvalue()])
    dt = np.dtype(s.channel_format).newbyteorder("<")
    rec = np.dtype([("tsb", "u1"), ("ts", "<f8"), ("v", dt, (s.values.shape[1],))])
    arr = np.empty(n, dtype=rec)
    arr["tsb"] = 8
    arr["ts"] = s.times[a:b]
    arr["v"] = s.values[a:b]
    return chunk(Tag.SAMPLES, [head, arr.view(np.uint8).data])  # type: ignore[list-item]  # no copy


def _round_cuts(s: XdfStream, edges: np.ndarray) -> list[int]:
    """Sample index where each round starts (non-decreasing, so every sample is written once)."""
    cuts = np.searchsorted(s.layout_times, edges[:-1], side="left")
    if cuts.size:
        cuts[0] = 0
    return [*np.maximum.accumulate(cuts).tolist(), s.times.size]


def _footer_xml(s: XdfStream, offsets: list[tuple[float, float]]) -> str:
    first = repr(float(s.times[0])) if s.times.size else "0"
    last = repr(float(s.times[-1])) if s.times.size else "0"
    offs = "".join(f"<offset>{_el('time', repr(t))}{_el('value', repr(v))}</offset>" for t, v in offsets)
    return ('<?xml version="1.0"?><info>' + _el("first_timestamp", first) + _el("last_timestamp", last)
            + _el("sample_count", s.times.size) + f"<clock_offsets>{offs}</clock_offsets></info>")  # fmt: skip


def write_xdf(
    path: Path,
    streams: list[XdfStream],
    session_id: str,
    progress: Callable[[float, str], None] | None = None,
) -> int:
    """Write ``streams`` to ``path`` in rounds of ``CHUNK_SECONDS``; returns bytes written."""
    hostname = socket.gethostname()
    starts = [float(s.layout_times[0]) for s in streams if s.times.size]
    ends = [float(s.layout_times[-1]) for s in streams if s.times.size]
    t0 = min(starts) if starts else 0.0
    t1 = max(ends) if ends else 0.0
    grid = np.arange(t0, t1, CHUNK_SECONDS) if t1 > t0 else np.array([t0])
    edges = np.append(grid, np.inf)  # round r writes the samples in [edges[r], edges[r + 1])
    offsets: dict[int, list[tuple[float, float]]] = {s.stream_id: [] for s in streams}
    cuts = {s.stream_id: _round_cuts(s, edges) for s in streams}
    total = 0
    with open(path, "wb") as f:
        header = '<?xml version="1.0"?><info><version>1.0</version>' + _el(
            "datetime", time.strftime("%Y-%m-%dT%H:%M:%S%z")
        )
        parts = [b"XDF:", *chunk(Tag.FILE_HEADER, header.encode("utf-8") + b"</info>")]
        for s in streams:
            xml = s.header_xml(hostname, session_id).encode("utf-8")
            parts += chunk(Tag.STREAM_HEADER, [struct.pack("<I", s.stream_id), xml])
        parts += chunk(Tag.BOUNDARY, BOUNDARY)
        f.writelines(parts)
        total += sum(len(p) for p in parts)
        rounds = len(edges) - 1
        for r in range(rounds):
            parts = []
            for s in streams:
                a, b = cuts[s.stream_id][r], cuts[s.stream_id][r + 1]
                if b > a:
                    parts += _samples_chunk(s, a, b)
                    if s.offset_times is not None and s.offset_values is not None:
                        k = min(r, s.offset_times.size - 1)
                        ct, ov = float(s.offset_times[k]), float(s.offset_values[k])
                    else:
                        ct, ov = float(s.times[b - 1]), 0.0
                    offsets[s.stream_id].append((ct, ov))
                    parts += chunk(Tag.CLOCK_OFFSET, struct.pack("<Idd", s.stream_id, ct, ov))
            parts += chunk(Tag.BOUNDARY, BOUNDARY)
            f.writelines(parts)
            total += sum(len(p) for p in parts)
            if progress is not None and (r % 8 == 0 or r == rounds - 1):
                progress((r + 1) / rounds, "writing XDF")
        parts = []
        for s in streams:
            xml = _footer_xml(s, offsets[s.stream_id]).encode("utf-8")
            parts += chunk(Tag.STREAM_FOOTER, [struct.pack("<I", s.stream_id), xml])
        f.writelines(parts)
        total += sum(len(p) for p in parts)
        f.flush()
    return total


def streams_from_recording(rec: Recording, clock: str = "refined", timestamps: str = "global") -> list[XdfStream]:
    """The XDF streams of a recording: one per sensor (in session order) and the markers."""
    if timestamps not in TIMESTAMP_MODES:
        raise ValueError(f"timestamps must be one of {TIMESTAMP_MODES}")
    out: list[XdfStream] = []
    for number, (sid, data) in enumerate(rec.sensors.items(), start=1):
        info = data.info
        t_global = rec.global_times(sid, clock)
        values = data.values
        fmt = "string" if values.dtype == object else values.dtype.name  # empty sensors: the described format
        labels = list(info.channel_names)
        units = list(info.units)
        if values.shape[1] != len(labels):
            labels = [f"ch{i + 1}" for i in range(values.shape[1])]
            units = [""] * len(labels)
        has_clock = data.t_local is not None
        offset_desc = ""
        if t_global.size:
            resid = t_global - data.device_times
            offset_desc = (_el("offset_first", repr(float(resid[0]))) + _el("offset_last", repr(float(resid[-1])))
                           + _el("drift_ppm", repr(_drift_ppm(data.device_times, resid))))  # fmt: skip
        desc = (
            "<synchronization>" + _el("timestamps", timestamps) + _el("clock_model", clock)
            + _el("device_clock", "device" if has_clock else "host-arrival")
            + _el("fixed_latency", repr(info.fixed_latency)) + _el("global_clock", "redis-time") + offset_desc
            + _el("can_drop_samples", "false") + "</synchronization>"
            + "<sensorium>" + _el("sensor_id", sid) + _el("attribute", info.attribute)
            + _el("device_id", info.device_id) + _el("device_name", info.device_name)
            + _el("transport", info.transport) + _el("uri", info.uri) + _el("node_id", info.node_id)
            + _el("missing_batches", data.missing_batches)
            + (_el("video_file", info.extra["session_video"]) if info.extra.get("session_video") else "")
            + "</sensorium>"
            + "<acquisition>" + _el("manufacturer", "Sensorium Desktop") + "</acquisition>"
        )  # fmt: skip
        times = t_global
        off_t = off_v = None
        if timestamps == "local" and t_global.size:
            times = data.device_times
            grid = np.arange(times[0], times[-1] + CHUNK_SECONDS, CHUNK_SECONDS)
            idx = np.clip(np.searchsorted(times, grid), 0, times.size - 1)
            off_t, off_v = times[idx], (t_global - times)[idx]
        out.append(XdfStream(number, sid, info.attribute, f"{info.node_id}:{sid}", fmt, info.nominal_rate,
                             labels, units, times, values, desc, off_t, off_v, t_global))  # fmt: skip
    marker_times = np.array([float(m.get("t_global", 0.0)) for m in rec.markers])
    marker_values = np.empty((len(rec.markers), 1), dtype=object)
    marker_values[:, 0] = [str(m.get("label", "")) for m in rec.markers]
    clock_note = (
        "<synchronization>" + _el("timestamps", "global") + _el("clock_model", "marker-time") + "</synchronization>"
    )
    out.append(XdfStream(len(out) + 1, "Markers", "Markers", f"sensorium:{rec.meta.get('session_id', '')}:markers",
                         "string", 0.0, ["label"], [""], marker_times, marker_values, clock_note))  # fmt: skip
    return out


def _drift_ppm(x: np.ndarray, resid: np.ndarray) -> float:
    if x.size < 2 or x[-1] == x[0]:
        return 0.0
    return float((resid[-1] - resid[0]) / (x[-1] - x[0]) * -1e6)
