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
import queue
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from ..core.contenttypes import content_type, display_name
from ..core.samples import SensorInfo
from .export import ExporterSpec
from .reader import ExportOptions, Progress, Recording

BOUNDARY = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")
CHUNK_SECONDS = 5.0
#: ClockOffset spacing (s of device time) in ``timestamps="local"`` exports.
OFFSET_SECONDS = 1.0
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
    created_at: float = 0.0  # when the stream began (its outlet's clock for LSL sources), s
    uid: str = ""
    hostname: str = ""
    source_desc: str = ""  # an LSL source's own ``<desc>…</desc>``, kept whole
    offset_global: np.ndarray | None = None  # global time of each ClockOffset (places it in the file)

    @property
    def layout_times(self) -> np.ndarray:
        return self.times if self.global_times is None else self.global_times

    def header_xml(self, hostname: str, session_id: str) -> str:
        """The StreamHeader: our ``desc`` (channels, synchronization, …) or, for a stream
        recorded from an LSL outlet, that outlet's own ``desc`` with ours appended."""
        chans = "".join(
            f"<channel>{_el('label', lab)}{_el('unit', unit)}{_el('type', self.type)}</channel>"
            for lab, unit in zip(self.labels, self.units, strict=True)
        )
        inner = _desc_inner(self.source_desc)
        if "<channels>" not in inner:
            inner = f"<channels>{chans}</channels>{inner}"
        desc = f"<desc>{inner}{self.desc_xml}</desc>"
        return ('<?xml version="1.0"?><info>' + _el("name", self.name) + _el("type", self.type)
                + _el("channel_count", len(self.labels)) + _el("nominal_srate", repr(float(self.nominal_srate)))
                + _el("channel_format", _XDF_FORMATS[self.channel_format]) + _el("source_id", self.source_id)
                + _el("version", "1.1") + _el("created_at", repr(float(self.created_at)))
                + _el("uid", self.uid or uuid.uuid4()) + _el("session_id", session_id)
                + _el("hostname", self.hostname or hostname) + desc + "</info>")  # fmt: skip


def _desc_inner(desc: str) -> str:
    """What is inside a ``<desc>…</desc>`` element ("" for none or an empty one)."""
    desc = desc.strip()
    if not desc.startswith("<desc") or desc.endswith("/>"):
        return ""
    return desc[desc.find(">") + 1 : desc.rfind("</desc>")]


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


def _offset_cuts(s: XdfStream, edges: np.ndarray) -> list[int]:
    """Index of the first ClockOffset written in each round (by its global time); the last
    round takes the rest."""
    if s.offset_times is None or s.offset_global is None:
        return [0] * (len(edges) + 1)
    cuts = np.searchsorted(s.offset_global, edges[:-1], side="left")
    if cuts.size:
        cuts[0] = 0
    return [*cuts.tolist(), s.offset_times.size]


def _footer_xml(s: XdfStream, offsets: list[tuple[float, float]]) -> str:
    first = repr(float(s.times[0])) if s.times.size else "0"
    last = repr(float(s.times[-1])) if s.times.size else "0"
    offs = "".join(f"<offset>{_el('time', repr(t))}{_el('value', repr(v))}</offset>" for t, v in offsets)
    return ('<?xml version="1.0"?><info>' + _el("first_timestamp", first) + _el("last_timestamp", last)
            + _el("sample_count", s.times.size) + f"<clock_offsets>{offs}</clock_offsets></info>")  # fmt: skip


class _WriteBehind:
    """Writes lists of byte parts to ``f`` in a thread, so the next chunk is built while the
    last one goes to the file (both release the GIL); at most ``depth`` lists wait. A write
    error is raised by the next :meth:`write` or by :meth:`close`."""

    def __init__(self, f: io.BufferedWriter, depth: int = 8) -> None:
        self._f = f
        self._queue: queue.Queue[list[Any] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xdf-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (parts := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._f.writelines(parts)
                except BaseException as exc:  # raised again to the caller by write() or close()
                    self._error = exc

    def write(self, parts: list[Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(parts)

    def close(self) -> None:
        """Wait for every queued write (raising the first error)."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def xdf_datetime(t: float) -> str:
    """XDF FileHeader ``datetime`` of epoch seconds ``t``: local time with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def write_xdf(
    path: Path,
    streams: list[XdfStream],
    session_id: str,
    progress: Callable[[float, str], None] | None = None,
    started: float | None = None,
    hostname: str = "",
) -> int:
    """Write ``streams`` to ``path`` in rounds of ``CHUNK_SECONDS``; returns bytes written.
    ``started`` (epoch s): the recording's start, the FileHeader's ``datetime`` (now when
    unknown); ``hostname``: the recording host (this one when unknown)."""
    hostname = hostname or socket.gethostname()
    starts = [float(s.layout_times[0]) for s in streams if s.times.size]
    ends = [float(s.layout_times[-1]) for s in streams if s.times.size]
    t0 = min(starts) if starts else 0.0
    t1 = max(ends) if ends else 0.0
    grid = np.arange(t0, t1, CHUNK_SECONDS) if t1 > t0 else np.array([t0])
    edges = np.append(grid, np.inf)  # round r writes the samples in [edges[r], edges[r + 1])
    offsets: dict[int, list[tuple[float, float]]] = {s.stream_id: [] for s in streams}
    cuts = {s.stream_id: _round_cuts(s, edges) for s in streams}
    offset_cuts = {s.stream_id: _offset_cuts(s, edges) for s in streams}
    total = 0
    with open(path, "wb") as f:
        out = _WriteBehind(f)
        try:
            header = '<?xml version="1.0"?><info><version>1.0</version>' + _el(
                "datetime", xdf_datetime(time.time() if started is None else started)
            )
            parts = [b"XDF:", *chunk(Tag.FILE_HEADER, header.encode("utf-8") + b"</info>")]
            for s in streams:
                xml = s.header_xml(hostname, session_id).encode("utf-8")
                parts += chunk(Tag.STREAM_HEADER, [struct.pack("<I", s.stream_id), xml])
            parts += chunk(Tag.BOUNDARY, BOUNDARY)
            out.write(parts)
            total += sum(len(p) for p in parts)
            rounds = len(edges) - 1
            for r in range(rounds):
                parts = []
                for s in streams:
                    a, b = cuts[s.stream_id][r], cuts[s.stream_id][r + 1]
                    if b > a:
                        parts += _samples_chunk(s, a, b)
                        if s.offset_times is not None and s.offset_values is not None:
                            ka, kb = offset_cuts[s.stream_id][r], offset_cuts[s.stream_id][r + 1]
                            pairs = list(
                                zip(s.offset_times[ka:kb].tolist(), s.offset_values[ka:kb].tolist(), strict=True)
                            )
                        else:
                            pairs = [(float(s.times[b - 1]), 0.0)]
                        for ct, ov in pairs:
                            offsets[s.stream_id].append((ct, ov))
                            parts += chunk(Tag.CLOCK_OFFSET, struct.pack("<Idd", s.stream_id, ct, ov))
                parts += chunk(Tag.BOUNDARY, BOUNDARY)
                out.write(parts)
                total += sum(len(p) for p in parts)
                if progress is not None and (r % 8 == 0 or r == rounds - 1):
                    progress((r + 1) / rounds, "writing XDF")
            parts = []
            for s in streams:
                xml = _footer_xml(s, offsets[s.stream_id]).encode("utf-8")
                parts += chunk(Tag.STREAM_FOOTER, [struct.pack("<I", s.stream_id), xml])
            out.write(parts)
            total += sum(len(p) for p in parts)
        finally:
            out.close()
        f.flush()
    return total


def xdf_stream_key(stream: dict[str, Any]) -> str:
    """The sensor id of a stream as pyxdf loads it (from our ``desc/sensorium``), else its name."""
    info = stream["info"]
    try:
        return str(info["desc"][0]["sensorium"][0]["sensor_id"][0])
    except (KeyError, IndexError, TypeError):
        return str(info["name"][0])


def _losses_xml(rec: Recording, sid: str) -> str:
    """``<losses>``: what the spool says was written for this sensor but could not be read."""
    items = [x for x in rec.losses if x["sensor"] == sid]
    if not items:
        return ""
    body = "".join("<loss>" + "".join(_el(k, "" if v is None else repr(v) if isinstance(v, float) else v)
                                      for k, v in x.items() if k != "sensor") + "</loss>"
                   for x in items)  # fmt: skip
    return f"<losses>{body}</losses>"


def stream_identity(rec: Recording, info: SensorInfo) -> dict[str, Any]:
    """name, type, source_id, hostname, created_at, uid and source desc of a recorded
    sensor's XDF stream: an LSL source's own, else our display name and content type."""
    ex = info.extra
    session_id = str(rec.meta.get("session_id", ""))
    if info.transport == "lsl" and ex.get("lsl_name"):
        return {"name": str(ex["lsl_name"]), "type": str(ex.get("lsl_type", "")),
                "source_id": str(ex.get("source_id", "")), "hostname": str(ex.get("hostname", "")),
                "created_at": float(ex.get("lsl_created_at", 0.0) or 0.0), "uid": str(ex.get("lsl_uid", "")),
                "source_desc": str(ex.get("lsl_desc", ""))}  # fmt: skip
    siblings = sum(1 for d in rec.sensors.values() if d.info.device_id == info.device_id)
    word = str(ex.get("stream_word", ""))
    name = display_name(info.device_name or info.device_id, info.attribute, siblings > 1, word)
    if ex.get("replay_name"):  # a replayed stream keeps the name and type it had in its file
        name = str(ex["replay_name"])
    kind = str(ex.get("replay_type") or content_type(info.attribute))
    return {"name": name, "type": kind, "source_id": f"{info.node_id}:{info.sensor_id}",
            "hostname": str(rec.meta.get("hostname", "")), "created_at": float(rec.meta.get("started") or 0.0),
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sensorium:{session_id}/{info.sensor_id}")),
            "source_desc": ""}  # fmt: skip


def _sync_desc(rec: Recording, sid: str, clock: str, timestamps: str, t_global: np.ndarray) -> str:
    """``<synchronization>``: how the times were made, and the clock domain's report."""
    data = rec.sensors[sid]
    info = data.info
    rep = rec.sync_report(sid, clock) if len(data) else {}
    parts = [
        _el("timestamps", timestamps), _el("clock_model", clock if rep.get("kind") != "measured" else "measured"),
        _el("device_clock", "device" if data.t_local is not None else "host-arrival"),
        _el("fixed_latency", repr(info.fixed_latency)), _el("global_clock", "redis-time"),
    ]  # fmt: skip
    if rep:
        parts += [_el("clock_domain", rep["domain"]), _el("domain_kind", rep["kind"])]
        parts += [_el(k, repr(float(rep[k]))) for k in ("offset", "drift_ppm", "sigma", "latency")]
        parts += [_el(k, int(rep[k])) for k in ("resets", "late_samples")]
    host = rec.host_clock(info.node_id)
    parts += [_el(k, repr(v)) for k, v in host.items()]  # host → global: sigma and the asymmetry bound (s)
    if t_global.size:
        resid = t_global - data.device_times
        parts += [_el("offset_first", repr(float(resid[0]))), _el("offset_last", repr(float(resid[-1])))]
    parts.append(_el("can_drop_samples", "false"))
    return "<synchronization>" + "".join(parts) + "</synchronization>"


def _sync_check_xml(rec: Recording, sid: str) -> str:
    """``<sync_check>``: what the recording's sync check measured for this stream (ms), and
    the latency correction its timestamps carry when one was applied."""
    row = rec.sync_check_of(sid)
    if row is None:
        return ""
    keys = ("check_id", "presented", "detected", "missed", "mean_ms", "sd_ms", "min_ms", "max_ms",
            "claimed_sigma_ms", "verdict", "detector", "latency_correction_ms")  # fmt: skip
    inner = "".join(_el(k, "" if row.get(k) is None else row[k]) for k in keys if k in row)
    applied = "latency_correction_ms" in row
    return "<sync_check>" + inner + _el("timestamps_corrected", "true" if applied else "false") + "</sync_check>"


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
        desc = (
            _sync_desc(rec, sid, clock, timestamps, t_global)
            + "<sensorium>" + _el("sensor_id", sid) + _el("attribute", info.attribute)
            + _el("device_id", info.device_id) + _el("device_name", info.device_name)
            + _el("transport", info.transport) + _el("uri", info.uri) + _el("node_id", info.node_id)
            + _el("missing_batches", data.missing_batches) + _losses_xml(rec, sid)
            + (_el("video_file", info.extra["session_video"]) if info.extra.get("session_video") else "")
            + _sync_check_xml(rec, sid)
            + "</sensorium>"
        )  # fmt: skip
        ident = stream_identity(rec, info)
        if not ident["source_desc"]:
            desc += "<acquisition>" + _el("manufacturer", "Sensorium Desktop") + "</acquisition>"
        times = t_global
        off_t = off_v = off_g = None
        if timestamps == "local" and t_global.size:
            times = data.device_times
            grid = np.arange(times[0], times[-1] + OFFSET_SECONDS, OFFSET_SECONDS)
            idx = np.unique(np.clip(np.searchsorted(times, grid), 0, times.size - 1))
            off_t, off_v, off_g = times[idx], (t_global - times)[idx], t_global[idx]
        out.append(XdfStream(number, ident["name"], ident["type"], ident["source_id"], fmt, info.nominal_rate,
                             labels, units, times, values, desc, off_t, off_v, t_global, ident["created_at"],
                             ident["uid"], ident["hostname"], ident["source_desc"], off_g))  # fmt: skip
    out.extend(_marker_streams(rec, clock, len(out) + 1))
    return out


#: Channels of the companion stream that says where each marker came from (same timestamps).
MARKER_SOURCE_CHANNELS = ("source", "t_original", "clock_original", "duration")


def _marker_streams(rec: Recording, clock: str, first_id: int) -> list[XdfStream]:
    """The session's one ``Markers`` stream (a single ``label`` channel, as every XDF importer
    expects) and, when it holds any, ``MarkerSources``: per marker its source, the sender's
    own timestamp and clock, and its duration (s), at the same times."""
    times = rec.marker_times(clock)
    labels = np.empty((len(rec.markers), 1), dtype=object)
    labels[:, 0] = [str(m.get("label", "")) for m in rec.markers]
    clock_note = (
        "<synchronization>" + _el("timestamps", "global") + _el("clock_model", "marker-time") + "</synchronization>"
    )
    session_id = str(rec.meta.get("session_id", ""))
    started, hostname = float(rec.meta.get("started") or 0.0), str(rec.meta.get("hostname", ""))
    streams = [XdfStream(first_id, "Markers", "Markers", f"sensorium:{session_id}:markers", "string", 0.0,
                         ["label"], [""], times, labels, clock_note, created_at=started,
                         uid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sensorium:{session_id}/markers")),
                         hostname=hostname)]  # fmt: skip
    if rec.markers:
        sources = np.array([[str(m.get(col, "")) for col in MARKER_SOURCE_CHANNELS] for m in rec.markers], dtype=object)
        source_id = f"sensorium:{session_id}:marker-sources"
        streams.append(XdfStream(first_id + 1, "MarkerSources", "MarkerSources", source_id, "string", 0.0,
                                 list(MARKER_SOURCE_CHANNELS), ["", "s", "", "s"], times, sources,
                                 clock_note + _el("describes", "Markers"), created_at=started,
                                 uid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sensorium:{session_id}/marker-sources")),
                                 hostname=hostname))  # fmt: skip
    return streams


def export_xdf(rec: Recording, out: Path, options: ExportOptions, progress: Progress | None) -> list[Path]:
    """Write the recording as one XDF file at ``out`` (every sensor a stream, markers too)."""
    streams = streams_from_recording(rec, options.clock, options.timestamps)
    started = rec.meta.get("started")
    write_xdf(out, streams, str(rec.meta.get("session_id", "")), progress,
              started=float(started) if started else None, hostname=str(rec.meta.get("hostname", "")))  # fmt: skip
    return [out]


EXPORTER = ExporterSpec(export_xdf, ".xdf", "XDF (LabRecorder, pyxdf, EEGLAB, MNE)")
