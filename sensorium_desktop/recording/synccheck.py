"""A sync check's analysis: every recorded sensor against the presented flashes.

The check is an ordinary recording: the presentations are its ``sync-check`` markers (the
frame-swap times of the flash window, global) or, with ``events_from``, the samples of a
stimulus PC's LSL marker stream; every sensor's times are the ones its exports carry (the
refined clock). One detector per sensor, picked by attribute and options (see
:func:`detector_for`); :mod:`sensorium_desktop.core.synccheck` does the arithmetic. The result
is stored beside the recording as ``sync-check.json`` and a picture ``sync-check.png``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.samples import SensorInfo
from ..core.synccheck import Tolerance, detect_clicks, detect_labels, detect_steps, match_onsets, summarize
from .reader import Recording, SensorData
from .spool import SYNC_CHECK_FILE as RESULT_FILE

PICTURE_FILE = "sync-check.png"
#: Marker label and source of the presented flashes (as :mod:`sensorium_desktop.bus.synccheck` writes them).
FLASH_LABEL, MARKER_SOURCE = "flash", "sync-check"
#: Event-locked traces span this window around each presentation (s).
TRACE_BEFORE_S, TRACE_AFTER_S, TRACE_POINTS = 0.05, 0.2, 126
#: Attributes and the detector each gets without being asked.
DETECTOR_OF_ATTRIBUTE = {"video": "camera", "brightness": "camera", "photodiode": "analog", "light": "analog",
                         "audio": "audio", "marker": "markers"}  # fmt: skip


class SyncCheckError(ValueError):
    """A sync check cannot be analysed (no presentations, no sensor that can see them)."""


@dataclass
class CheckOptions:
    """What a check measures. ``sensors``: only these (named ones get the analog detector when
    nothing else fits); ``region``: (x, y, w, h) px of camera frames to average (default the
    whole frame); ``events_from``: the name of an LSL marker stream whose ``label`` events are
    the presentations (instead of the check's own flashes)."""

    label: str = FLASH_LABEL
    events_from: str = ""
    sensors: list[str] = field(default_factory=list)
    region: tuple[int, int, int, int] | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)


def detector_for(info: SensorInfo, explicit: bool) -> str | None:
    """The detector a sensor gets: ``extra["detector"]`` if its device names one, else by
    attribute (:data:`DETECTOR_OF_ATTRIBUTE`), string streams ``markers`` when the operator
    named them, and any numeric sensor the operator named ``analog``; None: it cannot see a
    flash."""
    named = str(info.extra.get("detector", "")) or DETECTOR_OF_ATTRIBUTE.get(info.attribute, "")
    if named:
        return named
    if not explicit:
        return None
    return "markers" if info.channel_format == "string" else "analog"


def _stream_name_matches(data: SensorData, name: str) -> bool:
    info = data.info
    return name in (info.device_name, info.uri.partition("?")[0].partition(":")[2], info.sensor_id, info.uri)


def presentations(rec: Recording, opts: CheckOptions) -> tuple[np.ndarray, str, str, list[str]]:
    """(global times s of the presentations in time order, what they are, the marker-stream
    sensor id or "", each flash's id or ""). Raises :class:`SyncCheckError` when there are none."""
    if opts.events_from:
        for sid, data in rec.sensors.items():
            if data.values.dtype == object and _stream_name_matches(data, opts.events_from):
                times = detect_labels(rec.global_times(sid), data.values, opts.label)
                if times.size == 0:
                    raise SyncCheckError(f"the marker stream {opts.events_from!r} holds no {opts.label!r} event")
                what = f"{opts.label!r} markers of the LSL stream {opts.events_from!r}"
                return np.sort(times), what, sid, [""] * times.size
        raise SyncCheckError(f"no marker stream {opts.events_from!r} was recorded")
    idx = [i for i, m in enumerate(rec.markers) if m.get("source") == MARKER_SOURCE and m.get("label") == opts.label]
    if not idx:
        raise SyncCheckError("the recording holds no presented flash (no sync-check marker)")
    times = rec.marker_times()[idx]
    order = np.argsort(times, kind="stable")
    ids = [str(rec.markers[idx[i]].get("flash", "")) for i in order]
    return times[order], "the flash window's presented frames", "", ids


def camera_brightness(directory: Path, data: SensorData, region: tuple[int, int, int, int] | None) -> np.ndarray:
    """Mean gray level (0-255) of ``region`` in each recorded frame of a camera sensor (its
    values are frame indices into the session's video file); NaN where a frame is unreadable."""
    import cv2

    from .video import VideoFrames

    rel = data.info.extra.get("session_video") or data.info.extra.get("video_file")
    if not rel:
        raise SyncCheckError(f"{data.info.sensor_id}: no video file was recorded")
    path = Path(rel) if Path(rel).is_absolute() else directory / rel
    if not path.exists():
        raise SyncCheckError(f"{data.info.sensor_id}: its video {rel} is not there")
    frames = VideoFrames(path)
    out = np.full(len(data), np.nan)
    for i, index in enumerate(data.values[:, 0].astype(np.int64)):
        bgr = frames.frame(int(index))
        if bgr is None:
            continue
        if region is not None:
            x, y, w, h = region
            bgr = bgr[max(y, 0) : y + h, max(x, 0) : x + w]
        if bgr.size:
            out[i] = float(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).mean())
    return out


def _trace(times: np.ndarray, level: np.ndarray, presented: np.ndarray, hold: bool = False) -> list[list[float | None]]:
    """``level`` (normalized 0-1) around each presentation on the trace grid (``hold``: each
    sample's value until the next, as a camera frame holds; else linear), NaN outside data."""
    grid = np.linspace(-TRACE_BEFORE_S, TRACE_AFTER_S, TRACE_POINTS)
    rows = []
    for p in presented:
        t = p + grid
        inside = (t >= times[0]) & (t <= times[-1]) if times.size else np.zeros(t.size, bool)
        row = np.full(t.size, np.nan)
        if inside.any() and hold:
            row[inside] = level[np.clip(np.searchsorted(times, t[inside], side="right") - 1, 0, times.size - 1)]
        elif inside.any():
            row[inside] = np.interp(t[inside], times, level)
        rows.append([None if not math.isfinite(v) else round(float(v), 3) for v in row])
    return rows


def _normalized(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(len(v), -1)
    v = v[:, 0] if v.shape[1] == 1 else np.nanmean(v, axis=1)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return v
    lo, hi = np.percentile(finite, [5.0, 99.5])
    return (v - lo) / (hi - lo) if hi > lo else v - lo


def measure_sensor(
    rec: Recording, sid: str, detector: str, presented: np.ndarray, opts: CheckOptions
) -> tuple[np.ndarray, list[list[float | None]]]:
    """(latency s per presentation, NaN = missed; event-locked traces) of one sensor."""
    data = rec.sensors[sid]
    times = rec.global_times(sid)
    if detector == "camera" and data.info.attribute == "video":
        level = camera_brightness(rec.directory, data, opts.region)
        ok = np.isfinite(level)
        onsets = detect_steps(times[ok], level[ok], interpolate=False)
        return match_onsets(presented, onsets), _trace(times[ok], _normalized(level[ok]), presented, hold=True)
    if detector == "markers":
        onsets = detect_labels(times, data.values, opts.label)
        sticks = np.zeros(times.size)
        sticks[np.isin(times, onsets)] = 1.0
        return match_onsets(presented, onsets), _trace(times, sticks, presented)
    values = np.asarray(data.values, dtype=np.float64)
    if detector == "audio":
        onsets = detect_clicks(times, values, data.info.nominal_rate)
        level = _normalized(np.abs(values - np.median(values, axis=0)))
    else:
        onsets = detect_steps(times, values, interpolate=detector == "analog")
        level = _normalized(values)
    return match_onsets(presented, onsets), _trace(times, level, presented, hold=detector == "camera")


def analyse(
    rec: Recording,
    opts: CheckOptions,
    truth: dict[str, dict[str, float]] | None = None,
    interrupted: bool = False,
    planned: int | None = None,
) -> dict[str, Any]:
    """The result of a check recorded in ``rec``: per sensor its row (:func:`summarize`), its
    detector, latencies (ms) and traces; sensors that cannot see a flash are listed with why.
    ``truth`` (sensor id → flash id → true latency ms, from simulated devices) adds
    ``truth_mean_ms``/``truth_sd_ms`` over the flashes the sensor detected. Raises
    :class:`SyncCheckError` when nothing can be measured."""
    presented, what, marker_sid, flash_ids = presentations(rec, opts)
    result: dict[str, Any] = {
        "session": rec.meta.get("session_id", rec.directory.name),
        "analysed": time.time(),
        "presentations": what,
        "presented": int(presented.size),
        "planned": int(planned if planned is not None else presented.size),
        "interrupted": bool(interrupted),
        "tolerance": asdict(opts.tolerance),
        "label": opts.label,
        "region": list(opts.region) if opts.region else None,
        "presented_at": [round(float(t), 6) for t in presented],
        "trace_window_ms": [-TRACE_BEFORE_S * 1e3, TRACE_AFTER_S * 1e3],
        "sensors": {},
        "not_measured": {},
    }
    wanted = opts.sensors or list(rec.sensors)
    for sid in wanted:
        data = rec.sensors.get(sid)
        if data is None:
            result["not_measured"][sid] = "not recorded"
            continue
        if sid == marker_sid:
            continue
        detector = detector_for(data.info, explicit=bool(opts.sensors))
        if detector is None:
            result["not_measured"][sid] = f"no detector for {data.info.attribute!r}"
            continue
        if len(data) == 0:
            lat, traces = np.full(presented.size, np.nan), list[list[float | None]]()
        else:
            try:
                lat, traces = measure_sensor(rec, sid, detector, presented, opts)
            except SyncCheckError as exc:
                result["not_measured"][sid] = str(exc)
                continue
        sigma = float(rec.sync_report(sid).get("sigma", math.nan)) if len(data) else math.nan
        row = summarize(lat, sigma, opts.tolerance)
        row.update(detector=detector, attribute=data.info.attribute, device=data.info.device_name,
                   latencies_ms=[None if not math.isfinite(x) else round(x * 1e3, 4) for x in lat],
                   traces=traces)  # fmt: skip
        known = (truth or {}).get(sid)
        if known:
            true = np.array([known[f] for f, ok in zip(flash_ids, np.isfinite(lat), strict=False) if ok and f in known])
            if true.size:
                row["truth_mean_ms"] = round(float(true.mean()), 4)
                row["truth_sd_ms"] = round(float(true.std(ddof=1)), 4) if true.size > 1 else None
        result["sensors"][sid] = row
    if not result["sensors"]:
        why = "; ".join(f"{k}: {v}" for k, v in result["not_measured"].items()) or "no sensor recorded"
        raise SyncCheckError(f"no sensor can see the flashes ({why})")
    return result


def write_result(directory: Path, result: dict[str, Any]) -> list[Path]:
    """Store ``result`` beside the recording (``sync-check.json``, ``sync-check.png``)."""
    import cv2

    path = directory / RESULT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    tmp.replace(path)
    picture = directory / PICTURE_FILE
    cv2.imwrite(str(picture), draw_result(result))
    return [path, picture]


def apply_corrections(directory: Path, result: dict[str, Any]) -> dict[str, float]:
    """Store, in the result, a latency correction per measured sensor (its mean latency, ms,
    subtracted from its times by every export); returns them."""
    applied = {sid: float(row["mean_ms"]) for sid, row in result["sensors"].items() if row.get("mean_ms") is not None}
    result["applied_ms"] = applied
    write_result(directory, result)
    return applied


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The table as text lines (the command's output, the review's note)."""
    tol = result.get("tolerance", {})
    head = (f"sync check: {result['presented']} of {result['planned']} flashes presented "
            f"({result['presentations']}); tolerance |mean| ≤ {tol.get('mean_ms')} ms, "
            f"SD ≤ {tol.get('sd_ms')} ms")  # fmt: skip
    lines = [head + ("; INTERRUPTED" if result.get("interrupted") else "")]
    lines.append(f"  {'sensor':34} {'detected':>9} {'mean ms':>9} {'SD ms':>7} {'min':>8} {'max':>8} "
                 f"{'clock σ µs':>10}  verdict")  # fmt: skip
    applied = result.get("applied_ms") or {}

    def f(v: object, width: int, digits: int = 2) -> str:
        return f"{v:>{width}.{digits}f}" if isinstance(v, int | float) else f"{'—':>{width}}"

    for sid, row in result["sensors"].items():
        det = f"{row['detected']} of {row['presented']}"
        sigma_us = row["claimed_sigma_ms"] * 1e3 if isinstance(row["claimed_sigma_ms"], int | float) else None
        verdict = row["verdict"] + (f" ({'; '.join(row['reasons'])})" if row.get("reasons") else "")
        line = (f"  {sid:34} {det:>9} {f(row['mean_ms'], 9)} {f(row['sd_ms'], 7)} {f(row['min_ms'], 8)} "
                f"{f(row['max_ms'], 8)} {f(sigma_us, 10, 1)}  {verdict}")  # fmt: skip
        if "truth_mean_ms" in row:
            line += f"  [simulated truth: mean {row['truth_mean_ms']:.2f} ms, SD {f(row['truth_sd_ms'], 0)} ms]"
        if sid in applied:
            line += f"  [correction −{applied[sid]:.2f} ms applied]"
        lines.append(line)
    blind = [sid for sid, why in result.get("not_measured", {}).items() if why.startswith("no detector")]
    for sid, why in result.get("not_measured", {}).items():
        if sid not in blind:
            lines.append(f"  {sid:34} not measured: {why}")
    if blind:
        lines.append(f"  not measured (cannot see a flash): {', '.join(blind)}")
    return lines


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip


def draw_result(result: dict[str, Any], width: int = 1100) -> np.ndarray:
    """The stored picture (BGR): per sensor its event-locked traces (0 = presentation) and its
    table row."""
    import cv2

    sensors = list(result["sensors"].items())
    lane_h, top, left, plot_w = 90, 60, 20, 420
    height = top + lane_h * max(len(sensors), 1) + 30
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    tol = result.get("tolerance", {})
    head = (f"sync check {result.get('check_id', '')}: {result['presented']} of {result['planned']} flashes"
            f"{' (INTERRUPTED)' if result.get('interrupted') else ''}; tolerance |mean| <= {tol.get('mean_ms')} ms, "
            f"SD <= {tol.get('sd_ms')} ms")  # fmt: skip
    cv2.putText(img, head, (left, 22), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    sub = f"0 ms = presentation: {result.get('timing') or result['presentations']}"
    if result.get("audio"):
        sub += f"; {result['audio']}"
    cv2.putText(img, sub, (left, 42), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    t0, t1 = result.get("trace_window_ms", [-50.0, 200.0])
    scale_x: Callable[[float], int] = lambda ms: int(left + (ms - t0) / (t1 - t0) * plot_w)  # noqa: E731
    for ms in (0.0, 50.0, 100.0, 150.0):
        if t0 <= ms <= t1:
            x = scale_x(ms)
            cv2.line(img, (x, top - 8), (x, height - 25), (200, 200, 200) if ms else (0, 0, 255), 1)
            cv2.putText(img, f"{ms:g} ms", (x - 14, height - 8), font, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    for lane, (sid, row) in enumerate(sensors):
        y0 = top + lane * lane_h
        color = _COLORS[lane % len(_COLORS)][::-1]
        cv2.rectangle(img, (left, y0), (left + plot_w, y0 + lane_h - 12), (230, 230, 230), 1)
        for trace in row.get("traces", []):
            pts = [(scale_x(t0 + i * (t1 - t0) / (len(trace) - 1)), int(y0 + lane_h - 16 - v * (lane_h - 26)))
                   for i, v in enumerate(trace) if v is not None]  # fmt: skip
            if len(pts) > 1:
                cv2.polylines(img, [np.array(pts, np.int32)], False, color, 1, cv2.LINE_AA)
        verdict = row["verdict"].upper()
        vcolor = (40, 140, 40) if row["verdict"] == "pass" else (30, 30, 200)
        x = left + plot_w + 15
        cv2.putText(img, sid[:60], (x, y0 + 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        sd = "-" if row["sd_ms"] is None else f"{row['sd_ms']:.2f}"
        stats = f"{row['detected']} of {row['presented']} detected"
        if row["mean_ms"] is not None:
            stats += f"   mean {row['mean_ms']:.2f} ms   SD {sd} ms   range {row['min_ms']:.2f}..{row['max_ms']:.2f} ms"
        cv2.putText(img, stats, (x, y0 + 40), font, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
        sigma = row.get("claimed_sigma_ms")
        claim = f"its clock claims sigma {sigma * 1e3:.1f} us" if isinstance(sigma, int | float) else "no clock claim"
        if "truth_mean_ms" in row:
            claim += f"   (simulated truth: mean {row['truth_mean_ms']:.2f} ms)"
        cv2.putText(img, claim, (x, y0 + 60), font, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
        cv2.putText(img, verdict, (width - 150, y0 + 40), font, 0.7, vcolor, 2, cv2.LINE_AA)
    return img
