"""Reading a recording back: per-sensor arrays, markers, clock snapshots, groups, and the
global timestamps exporters write.

Timestamps: each sensor's samples are put on the global clock in two steps, device → host
through its clock domain (:mod:`sensorium_desktop.core.clockdomain`: a measured offset, or
one :class:`~sensorium_desktop.core.clock.ClockModel` fitted over every sensor of the
domain — ``refined``: the non-causal fit, the default for exports; ``causal``: what the
live view showed, each batch mapped with what was known when it arrived), then host → global with
the recording node's host offset (``global = host + offset``) recorded in the spool's clock
snapshots, interpolated in time.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import kernels
from ..core.clockdomain import domain_id
from ..core.codec import CodecError
from ..core.samples import SensorInfo
from ..core.timemap import TimeMap
from .spool import (
    BatchRecord,
    BatchSpan,
    RecordKind,
    SpoolError,
    damaged_ranges,
    index_summary,
    iter_records,
    latency_corrections,
    parse_batch_span,
    read_session_file,
    read_sync_check,
    recording_name,
)

log = logging.getLogger(__name__)

CLOCK_MODES = ("refined", "causal")
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ExportOptions:
    """``clock``: refined (non-causal fit) or causal; ``timestamps``: global or local (XDF)."""

    clock: str = "refined"
    timestamps: str = "global"


@dataclass
class SensorData:
    """Everything one sensor sent during a recording, deduplicated and in stream order.

    ``t_arrival``/``t_local`` (n,) seconds; ``values`` (n, channels); ``batch_seq`` and
    ``batch_start`` (per batch: seq and index of its first sample in these arrays).
    """

    info: SensorInfo
    t_arrival: np.ndarray
    t_local: np.ndarray | None
    values: np.ndarray
    batch_seq: np.ndarray
    batch_start: np.ndarray
    missing_batches: int = 0
    duplicate_batches: int = 0

    def __len__(self) -> int:
        return int(self.t_arrival.size)

    @property
    def device_times(self) -> np.ndarray:
        return self.t_arrival if self.t_local is None else self.t_local

    def select(self, keep: np.ndarray) -> SensorData:
        """The samples where ``keep`` (n,) is True; batches left empty are dropped."""
        batch_of = np.searchsorted(self.batch_start, np.arange(len(self)), side="right") - 1
        counts = np.bincount(batch_of[keep], minlength=self.batch_start.size)
        kept = counts > 0
        starts = np.concatenate(([0], np.cumsum(counts[kept])[:-1])).astype(np.int64)
        return SensorData(
            self.info, self.t_arrival[keep], None if self.t_local is None else self.t_local[keep], self.values[keep],
            self.batch_seq[kept], starts, self.missing_batches, self.duplicate_batches,
        )  # fmt: skip


@dataclass
class Recording:
    """A recording loaded from its directory."""

    directory: Path
    meta: dict[str, Any]
    sensors: dict[str, SensorData]
    markers: list[dict[str, Any]] = field(default_factory=list)
    clocks: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sync_reports: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: damaged spool bytes read around: (file, start, end)
    damage: list[tuple[str, int, int]] = field(default_factory=list)
    #: what the spool says was written but could not be read: sensor, samples, batches and the
    #: host-time range (s) between the intact neighbours (see :func:`find_losses`)
    losses: list[dict[str, Any]] = field(default_factory=list)
    #: the recording's sync check result (``sync-check.json``), if one was run in it
    sync_check: dict[str, Any] | None = None
    #: sensor id → latency (s) a sync check applied: subtracted from its global times
    latency_corrections: dict[str, float] = field(default_factory=dict)
    #: the one mapping of time (device → host → global), fitted over this recording
    time: TimeMap = field(default_factory=TimeMap, repr=False)
    _host_cache: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _global_cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    #: copies into the sensors' value arrays still running in a thread (see :meth:`_defer`)
    _filling: list[Future[None]] = field(default_factory=list, repr=False)
    _filler: ThreadPoolExecutor | None = field(default=None, repr=False)

    def _defer(self, copy: Callable[[], None]) -> None:
        """Run ``copy`` (filling a value array, the GIL released) in a thread while the
        loading goes on; :meth:`_values_filled` waits for it before any value is read."""
        if self._filler is None:
            self._filler = ThreadPoolExecutor(1, thread_name_prefix="fill-values")
        self._filling.append(self._filler.submit(copy))

    def _values_filled(self) -> None:
        """Wait for the deferred value copies (re-raising their errors)."""
        filling, self._filling = self._filling, []
        try:
            for future in filling:
                future.result()
        finally:
            if self._filler is not None:
                self._filler.shutdown()
                self._filler = None

    @property
    def bounds(self) -> tuple[float, float]:
        """[start, stop] of the recording on the global clock (s; ±inf where not recorded)."""
        start, stop = self.meta.get("started"), self.meta.get("stopped")
        return (float(start) if start else -math.inf, float(stop) if stop else math.inf)

    def trim_to(self, start: float, stop: float) -> None:
        """Keep only the samples and markers in [start, stop] (global s, refined clock); the
        session's bounds become that range."""
        s0, s1 = self.bounds
        self.meta["started"], self.meta["stopped"] = max(start, s0), min(stop, s1)
        self.trim_to_bounds()
        times = self.marker_times("refined")
        self.markers = [m for m, t in zip(self.markers, times, strict=True) if start <= t <= stop]
        self.warn(f"trimmed to {self.meta['stopped'] - self.meta['started']:.3f} s from {start:.3f} (global s)")

    def trim_to_bounds(self) -> None:
        """Keep exactly the samples whose (refined) global time lies in :attr:`bounds`: the
        clock is fitted on everything the spool holds, then the margins are cut."""
        start, stop = self.bounds
        if not (math.isfinite(start) or math.isfinite(stop)):
            return
        times = {sid: self.global_times(sid, "refined") for sid, data in self.sensors.items() if len(data)}
        self._values_filled()  # the fit ran beside the value copies; selecting reads them
        kept: dict[str, np.ndarray] = {}
        for sid, tg in times.items():
            data = self.sensors[sid]
            keep = (tg >= start) & (tg <= stop)
            self._global_cache[(sid, "refined")] = tg if keep.all() else tg[keep]
            if not keep.all():
                self.sensors[sid] = data.select(keep)
                kept[sid] = keep
        for (domain, mode), times in list(self._host_cache.items()):  # the fit stays; its samples are cut
            if mode == "refined":
                self._host_cache[(domain, mode)] = {sid: t[kept[sid]] if sid in kept else t for sid, t in times.items()}
            else:
                del self._host_cache[(domain, mode)]
        for key in [k for k in self._global_cache if k[1] != "refined"]:  # other modes: fitted again on what is left
            del self._global_cache[key]

    def host_offsets_of(self, node_id: str) -> bool:
        """Put ``node_id``'s recorded host → global offsets into :attr:`time` (once); False
        when the recording has none for it (its host clock is then used)."""
        if node_id in self.time.host_offsets:
            return True
        times, offsets, sigmas = [], [], []
        for snap in self.clocks:
            est = snap.get("hostoffsets", {}).get(node_id)
            try:
                off, sig = float(est["offset"]), float(est.get("uncertainty", 1e-4))
                t_ref = float(est.get("t_ref", 0.0))  # the host time the offset is for (older spools: none)
            except (TypeError, KeyError, ValueError):
                continue
            if math.isfinite(off):
                times.append(t_ref if math.isfinite(t_ref) and t_ref > 0 else float(snap["time"]))
                offsets.append(off)
                sigmas.append(sig if math.isfinite(sig) and sig > 0 else 1e-4)
        self.time.set_host_offset_history(node_id, np.asarray(times), np.asarray(offsets), np.asarray(sigmas))
        return node_id in self.time.host_offsets

    def host_clock(self, node_id: str) -> dict[str, float]:
        """How well ``node_id``'s host clock was put on the global one during the recording:
        ``host_to_global_sigma`` (s, median of the published 1-sigma) and
        ``asymmetry_bound`` (s, half the fastest round trip to Redis: an asymmetric route can
        shift the offset by up to this and no round trip can see it); {} when none recorded."""
        sigmas, rtts = [], []
        for snap in self.clocks:
            est = (snap.get("hostoffsets") or {}).get(node_id)
            if not isinstance(est, dict):
                continue
            try:
                sigmas.append(float(est["uncertainty"]))
                rtts.append(float(est["rtt"]))
            except (TypeError, KeyError, ValueError):
                continue
        finite = [r for r in rtts if math.isfinite(r) and r >= 0]
        if not finite:
            return {}
        return {"host_to_global_sigma": float(np.median(sigmas)), "asymmetry_bound": min(finite) / 2}

    def domain(self, sensor_id: str) -> str:
        """Clock domain id of a recorded sensor."""
        return domain_id(self.sensors[sensor_id].info)

    def host_times(self, sensor_id: str, mode: str = "refined") -> np.ndarray:
        """Host timestamps (s) of every sample of ``sensor_id``, through its clock domain
        (fitted once per domain and mode over all of the domain's recorded sensors)."""
        if mode not in CLOCK_MODES:
            raise ValueError(f"clock mode must be one of {CLOCK_MODES}, not {mode!r}")
        key = (self.domain(sensor_id), mode)
        if key not in self._host_cache:
            members = {sid: d for sid, d in self.sensors.items() if len(d) and self.domain(sid) == key[0]}
            if sensor_id not in members:
                return np.zeros(0)
            times, report = self.time.fit_domain(members, mode)
            self._host_cache[key] = times
            self.sync_reports[key] = {"domain": key[0], **report}
        return self._host_cache[key].get(sensor_id, np.zeros(0))

    def sync_report(self, sensor_id: str, mode: str = "refined") -> dict[str, Any]:
        """The clock domain's report for ``sensor_id`` (see :meth:`TimeMap.fit_domain`)."""
        self.host_times(sensor_id, mode)
        return self.sync_reports.get((self.domain(sensor_id), mode), {})

    def global_times(self, sensor_id: str, mode: str = "refined") -> np.ndarray:
        """Global timestamps (s) of every sample of ``sensor_id``."""
        cached = self._global_cache.get((sensor_id, mode))
        if cached is not None:
            return cached
        data = self.sensors[sensor_id]
        host = self.host_times(sensor_id, mode)
        if len(data) == 0:
            return np.zeros(0)
        node = data.info.node_id
        if not self.host_offsets_of(node):
            self.warn(f"{sensor_id}: no host→global offset recorded for node {node!r}; host clock used")
        offset = self.time.host_offsets[node].at(data.t_arrival) if node in self.time.host_offsets else 0.0
        out = host + offset - self.latency_corrections.get(sensor_id, 0.0)
        self._global_cache[(sensor_id, mode)] = out
        return out

    def sync_check_of(self, sensor_id: str) -> dict[str, Any] | None:
        """What the recording's sync check measured for ``sensor_id`` (its table row without
        traces, the check's id and tolerance, and ``latency_correction_ms`` when applied)."""
        check = self.sync_check or {}
        row = (check.get("sensors") or {}).get(sensor_id)
        if not isinstance(row, dict):
            return None
        out = {k: v for k, v in row.items() if k not in ("traces", "latencies_ms")}
        out.update(check_id=check.get("check_id", ""), presentations=check.get("presentations", ""),
                   tolerance=check.get("tolerance", {}))  # fmt: skip
        if sensor_id in self.latency_corrections:
            out["latency_correction_ms"] = self.latency_corrections[sensor_id] * 1e3
        return out

    def marker_times(self, mode: str = "refined") -> np.ndarray:
        """Global time (s) of each of :attr:`markers`, shape (n,): a marker taken from a
        recorded marker sensor (an LSL marker stream) gets its sample's time under the
        ``mode`` clock, as that stream's own samples do; others keep the time stored."""
        times = np.array([_float(m.get("t_global")) for m in self.markers], dtype=np.float64)
        by_sensor: dict[str, list[int]] = {}
        for i, m in enumerate(self.markers):
            if m.get("sensor_id") in self.sensors and "t_original" in m:
                by_sensor.setdefault(str(m["sensor_id"]), []).append(i)
        for sid, idx in by_sensor.items():
            device = self.sensors[sid].device_times
            if device.size == 0:
                continue
            original = np.array([_float(self.markers[i]["t_original"]) for i in idx])
            right = np.clip(np.searchsorted(device, original), 0, device.size - 1)
            left = np.clip(right - 1, 0, device.size - 1)
            nearest = np.where(np.abs(device[left] - original) <= np.abs(device[right] - original), left, right)
            exact = np.abs(device[nearest] - original) <= 1e-9 * np.maximum(1.0, np.abs(original))
            chosen = np.array(idx)[exact]
            times[chosen] = self.global_times(sid, mode)[nearest[exact]]
        return times

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning("%s: %s", self.directory.name, message)


def _concat_sensor(
    info: SensorInfo,
    parts: list[BatchRecord | BatchSpan],
    warn: Callable[[str], None],
    defer: Callable[[Callable[[], None]], None] | None = None,
) -> SensorData:
    """Join a sensor's batch records in ``seq`` order, dropping re-delivered duplicates.
    ``defer``: runs the copy of spool values into the value array (see :meth:`Recording._defer`;
    None: copied before returning)."""
    if not parts:
        fmt = object if info.channel_format == "string" else np.dtype(info.channel_format)
        empty = np.zeros((0, info.channel_count), dtype=fmt)
        return SensorData(info, np.zeros(0), None, empty, np.zeros(0, np.int64), np.zeros(0, np.int64))
    parts.sort(key=lambda p: p.seq)
    seqs = np.array([p.seq for p in parts], dtype=np.int64)
    keep = np.ones(seqs.size, dtype=bool)
    keep[1:] = seqs[1:] != seqs[:-1]
    duplicates = int((~keep).sum())
    if duplicates:
        parts = [p for p, k in zip(parts, keep.tolist(), strict=True) if k]
        seqs = seqs[keep]
    gaps = np.diff(seqs) - 1
    missing = int(gaps[gaps > 0].sum()) if seqs.size > 1 else 0  # reported by find_losses, with times
    spans = [p for p in parts if isinstance(p, BatchSpan)]
    if len(spans) == len(parts) and len({(p.chans, p.dtype, p.has_local) for p in spans}) == 1:
        t_arrival, t_local, values, starts = _copy_spans(spans, defer)
    else:
        t_arrival, t_local, values, starts = _join_records(
            info, [p.record() if isinstance(p, BatchSpan) else p for p in parts], warn
        )
    for name, arr in (("arrival", t_arrival), ("device", t_local)):
        if arr is not None and not np.isfinite(arr).all():
            raise CodecError(f"{info.sensor_id}: non-finite {name} times in the spool")
    return SensorData(info, t_arrival, t_local, values, seqs, starts, missing, duplicates)


_Joined = tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]


def _copy_spans(spans: list[BatchSpan], defer: Callable[[Callable[[], None]], None] | None = None) -> _Joined:
    """One sensor's spans (one layout) copied straight from the spool bytes into its arrays:
    (t_arrival, t_local or None, values, each batch's first sample index). The times are
    copied at once; the values by ``defer`` when given (the caller waits before reading them)."""
    first = spans[0]
    lengths = np.array([p.n for p in spans], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    t_arrival = np.empty(total, dtype="<f8")
    t_local = np.empty(total, dtype="<f8") if first.has_local else None
    values = np.empty((total, first.chans), dtype=first.dtype)  # the spool's byte order
    payloads = [p.payload for p in spans]
    times_at = np.array([p.times_at for p in spans], dtype=np.int64)
    kernels.concat_into(t_arrival, payloads, times_at, 8 * lengths)
    if t_local is not None:
        kernels.concat_into(t_local, payloads, times_at + 8 * lengths, 8 * lengths)
    values_at = np.array([p.values_at for p in spans], dtype=np.int64)
    row = first.chans * first.dtype.itemsize

    def copy_values() -> None:
        kernels.concat_into(values, payloads, values_at, row * lengths)

    if defer is None:
        copy_values()
    else:
        defer(copy_values)
    return t_arrival, t_local, values, starts


def _join_records(info: SensorInfo, parts: list[BatchRecord], warn: Callable[[str], None]) -> _Joined:
    """Batch records of any layout joined (channel counts padded to the widest, device times
    dropped when some batches lack them)."""
    widths = {p.values.shape[1] for p in parts}
    width = max(widths)
    if len(widths) > 1:
        warn(f"{info.sensor_id}: channel count changed during the recording {sorted(widths)}; padded to {width}")
    has_local = all(p.t_local is not None for p in parts)
    if not has_local and any(p.t_local is not None for p in parts):
        warn(f"{info.sensor_id}: some batches lack device times; arrival times used for all")
    lengths = np.array([p.t_arrival.size for p in parts], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    t_arrival = np.concatenate([p.t_arrival for p in parts])
    t_local = np.concatenate([p.t_local for p in parts]) if has_local else None
    values = (
        np.concatenate([_pad(p.values, width) for p in parts])
        if len(widths) > 1
        else np.concatenate([p.values for p in parts])
    )
    return t_arrival, t_local, values, starts


def _pad(values: np.ndarray, width: int) -> np.ndarray:
    if values.shape[1] == width:
        return values
    fill: Any = "" if values.dtype == object else np.nan
    out = np.full((values.shape[0], width), fill, dtype=object if values.dtype == object else np.float64)
    out[:, : values.shape[1]] = values
    return out


def load_recording(directory: Path, progress: Progress | None = None, trim: bool = True) -> Recording:
    """Read a recording directory (does not modify it; run ``spool.recover`` first after a
    crash). ``trim``: keep only the samples inside the recording's [start, stop] (global).

    Steps: the sensor descriptions session.json holds → every spool record → one array per
    sensor → losses cross-checked against the index and session.json → markers and groups
    de-duplicated and ordered → trimmed."""
    directory = Path(directory)
    meta = read_session_file(directory)
    rec = Recording(directory, meta, {})
    infos = _described_sensors(meta, directory)
    batches = _read_spool(rec, infos, progress)
    try:
        _assemble_sensors(rec, infos, batches)
        for ev in rec.events:
            if ev.get("level") in ("warning", "error"):
                rec.warn(str(ev.get("message", ev)))
        rec.losses = find_losses(rec, meta, index_summary(directory)["samples"])
        for loss in rec.losses:
            rec.warn(describe_loss(loss))
        rec.markers = _unique_by_id(rec.markers, "derived_id")  # re-delivered after a recorder crash
        rec.groups = _unique_by_id(rec.groups)
        rec.markers.sort(key=lambda m: _float(m.get("t_global")))
        rec.sync_check = read_sync_check(directory)
        rec.latency_corrections = latency_corrections(directory)
        for sid, value in rec.latency_corrections.items():
            if sid in rec.sensors:
                rec.warn(f"{sid}: times corrected by -{value * 1e3:.3f} ms (its latency measured by the sync check)")
        if trim:
            rec.trim_to_bounds()
    finally:  # no copy left running behind an error
        rec._values_filled()
    return rec


def _described_sensors(meta: dict[str, Any], directory: Path) -> dict[str, SensorInfo]:
    """sensor id → description, from session.json (malformed ones are logged and skipped)."""
    infos: dict[str, SensorInfo] = {}
    for raw in meta.get("sensor_infos", []):
        try:
            info = SensorInfo.from_json(json.dumps(raw))
        except (ValueError, TypeError) as exc:
            log.warning("%s: skipping a malformed sensor description: %s", directory, exc)
            continue
        infos[info.sensor_id] = info
    return infos


def _read_spool(
    rec: Recording, infos: dict[str, SensorInfo], progress: Progress | None
) -> dict[str, list[BatchRecord | BatchSpan]]:
    """Every spool record into ``rec`` (markers, clocks, groups, events), ``infos`` (sensor
    records) and the returned batches per sensor; undecodable records are counted in a warning."""
    directory = rec.directory
    batches: dict[str, list[BatchRecord | BatchSpan]] = {sid: [] for sid in rec.meta.get("sensors", [])}
    names: dict[bytes, tuple[str, str]] = {}
    lists = {RecordKind.MARKER: rec.markers, RecordKind.CLOCK: rec.clocks, RecordKind.GROUP: rec.groups,
             RecordKind.EVENT: rec.events}  # fmt: skip
    bad = 0
    total = sum(p.stat().st_size for p in directory.glob("spool-*.sdr")) or 1
    seen = 0
    for kind, payload in iter_records(directory, rec.damage):
        seen += len(payload) + 9
        if kind == RecordKind.BATCH:
            try:
                batch = parse_batch_span(payload, names)
            except (CodecError, ValueError) as exc:
                bad += 1
                log.warning("%s: skipping an undecodable batch record: %s", directory, exc)
                continue
            batches.setdefault(batch.sensor_id, []).append(batch)
            if progress is not None and len(batches[batch.sensor_id]) % 256 == 0:
                progress(0.5 * seen / total, "reading spool")
            continue
        try:
            obj = json.loads(bytes(payload))
        except ValueError:
            bad += 1
            continue
        if kind == RecordKind.SENSOR:
            try:
                info = SensorInfo.from_json(json.dumps(obj))
                infos[info.sensor_id] = info
            except (ValueError, TypeError):
                bad += 1
        elif kind in lists:
            lists[RecordKind(kind)].append(obj)
    if bad:
        rec.warn(f"{bad} spool records could not be decoded and were skipped")
    return batches


def _assemble_sensors(
    rec: Recording, infos: dict[str, SensorInfo], batches: dict[str, list[BatchRecord | BatchSpan]]
) -> None:
    """One :class:`SensorData` per sensor into ``rec.sensors``; a sensor without a description
    gets generic channel names, one without samples is said to have sent none."""
    for sid, items in batches.items():
        info = infos.get(sid)
        if info is None and not items:
            rec.warn(f"{sid}: not described and sent no samples; left out")
            continue
        if info is None:
            first = items[0].record() if isinstance(items[0], BatchSpan) else items[0]
            names = tuple(f"ch{i + 1}" for i in range(first.values.shape[1]))
            fmt = "string" if first.values.dtype == object else first.values.dtype.name
            info = SensorInfo(sid, first.attribute, sid, channel_names=names, channel_format=fmt)
            rec.warn(f"{sid}: no sensor description recorded; generic channel names used")
        try:
            rec.sensors[sid] = _concat_sensor(info, items, rec.warn, rec._defer)
        except CodecError as exc:
            rec.warn(f"{sid}: left out: {exc}")
            continue
        if not items:
            rec.warn(f"{sid}: sent no samples during the recording")


def find_losses(rec: Recording, meta: dict[str, Any], indexed: dict[str, int]) -> list[dict[str, Any]]:
    """Cross-check what was read with what the spool says it holds: per sensor, batches
    missing between intact ones (sequence gaps: where, in host time) and samples short of
    the larger of the index's and ``session.json``'s counts (a lost tail or head)."""
    counted = meta.get("samples")
    written: dict[str, Any] = counted if isinstance(counted, dict) else {}
    out = []
    for sid, data in rec.sensors.items():
        seqs, starts = data.batch_seq, data.batch_start
        gap_samples = 0
        for k in np.flatnonzero(np.diff(seqs) > 1).tolist():
            a, b = int(starts[k + 1]) - 1, int(starts[k + 1])
            out.append({"sensor": sid, "batches": int(seqs[k + 1] - seqs[k] - 1), "samples": None,
                        "from": float(data.t_arrival[a]), "to": float(data.t_arrival[b])})  # fmt: skip
        expected = max(int(indexed.get(sid, 0)), int(written.get(sid, 0) or 0))
        short = expected - len(data)
        if short > 0:
            gaps = [x for x in out if x["sensor"] == sid and x["samples"] is None]
            if len(gaps) == 1:  # one hole: all of the shortfall is in it
                gaps[0]["samples"] = short
                gap_samples = short
            tail = short - gap_samples
            if tail > 0 and not gaps:
                t_last = float(data.t_arrival[-1]) if len(data) else math.nan
                out.append({"sensor": sid, "batches": None, "samples": tail, "from": t_last, "to": math.nan})
            elif gaps and len(gaps) > 1:
                out.append({"sensor": sid, "batches": None, "samples": short, "from": math.nan, "to": math.nan,
                            "note": "spread over the gaps above"})  # fmt: skip
    for sid in sorted((set(indexed) | set(written)) - set(rec.sensors)):  # not one batch of it was read
        expected = max(int(indexed.get(sid, 0)), int(written.get(sid, 0) or 0))
        if expected > 0:
            out.append({"sensor": sid, "batches": None, "samples": expected, "from": math.nan, "to": math.nan,
                        "note": "none of its batches could be read"})  # fmt: skip
    return out


def describe_loss(loss: dict[str, Any]) -> str:
    """One line for the operator: which sensor lost what, and when."""
    what = []
    if loss.get("samples") is not None:
        what.append(f"{loss['samples']} samples")
    if loss.get("batches") is not None:
        what.append(f"{loss['batches']} batches")
    t0, t1 = loss.get("from", math.nan), loss.get("to", math.nan)
    if math.isfinite(t0) and math.isfinite(t1):
        when = f"between {_clock(t0)} and {_clock(t1)} ({t1 - t0:.3f} s)"
    elif math.isfinite(t0):
        when = f"after {_clock(t0)}"
    else:
        when = loss.get("note", "at an unknown time")
    return f"{loss['sensor']}: {' / '.join(what)} not in the recording {when}"


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


def _float(value: Any) -> float:
    """A stored time as float (s); 0.0 when missing or unreadable."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _unique_by_id(items: list[dict[str, Any]], prefer: str = "") -> list[dict[str, Any]]:
    """``items`` without repeats of one ``prefer`` field (when set) or ``id``."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = str(item.get(prefer) or item.get("id", id(item)))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def list_recordings(parents: list[Path]) -> list[dict[str, Any]]:
    """Summaries of the recordings directly inside ``parents`` (or ``parents`` themselves)."""
    out = []
    for parent in parents:
        candidates = [parent] if (parent / "session.json").is_file() else sorted(parent.glob("*/session.json"))
        for item in candidates:
            d = item if item.is_dir() else item.parent
            try:
                meta = read_session_file(d)
            except SpoolError as exc:
                log.warning("%s", exc)
                continue
            summary = index_summary(d)
            ranges = damaged_ranges(d)
            if meta.get("state") == "recording":  # a chunk may be mid-write: its tail is not damage
                sizes = {p.name: p.stat().st_size for p in d.glob("spool-*.sdr")}
                ranges = [r for r in ranges if r[2] < sizes.get(r[0], 0)]
            damaged = sum(b - a for _f, a, b in ranges)
            out.append({"directory": str(d), "name": recording_name(meta, d),
                        **{k: meta.get(k) for k in ("session_id", "bids_name", "state",
                                                                          "started", "stopped", "error")},
                        "sensors": len(meta.get("sensors", [])), "samples": sum(summary["samples"].values()),
                        "bytes": summary["bytes"], "damaged_bytes": damaged})  # fmt: skip
            if damaged:
                out[-1]["state"] = f"damaged ({out[-1]['state']})"
    return out
