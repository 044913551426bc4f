"""A recording opened for review: one of our session folders or any XDF file, as streams on
one timeline (global seconds), with its markers, video and the clock it was put on.

- Our sessions (a folder with ``session.json``): our refined clock models place every sample
  (:func:`~sensorium_desktop.recording.reader.load_recording`); markers keep their sources;
  a camera's frames are read from the session's video file at the frame's global time.
- Other XDF files (LabRecorder's included): pyxdf with its clock synchronization, clock-reset
  handling and dejitter, the way LSL users read them; string streams become marker lines
  (source = the stream's name). Empty streams are listed with a warning.

Whatever could not be read is named in :attr:`ReviewData.warnings`; a file that cannot be
read at all raises :class:`ReviewError` with the reason — never a crash.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.attributes import EVENT_ATTRIBUTES
from ..core.envelope import Envelope
from ..core.gazelayout import GazeLayout, gaze_layout, layout_of
from ..core.quality import ANOMALY_ATTRIBUTE
from .spool import SESSION_FILE

log = logging.getLogger(__name__)

KIND_OF_ATTRIBUTE = {"video": "video", "eye_gaze": "gaze", "skeleton": "skeleton",
                     **dict.fromkeys(EVENT_ATTRIBUTES, "events")}  # fmt: skip
#: XDF stream types (any writer's) drawn by the gaze, skeleton and event views
KIND_OF_XDF_TYPE = {"gaze": "gaze", "mocap": "skeleton", "stim": "events", "trigger": "events"}
#: a skeleton stream holds at least this many channels (33 landmarks × x, y, visibility)
SKELETON_CHANNELS = 99


class ReviewError(Exception):
    """The file or folder cannot be opened for review (the message says why)."""


class ReviewCancelled(Exception):
    """Reading was cancelled (the ``cancel`` event was set)."""


#: ``progress(fraction 0..1, what)`` while a recording is read for review.
ReviewProgress = Callable[[float, str], None]


class _WatchedRaw(io.FileIO):
    """The raw file under pyxdf's buffered reader: each refill of the (1 MiB) buffer reports how
    far reading is and honours ``cancel`` — pyxdf's many small reads stay in C."""

    def __init__(self, path: Path, progress: ReviewProgress | None, cancel: threading.Event | None) -> None:
        super().__init__(str(path), "rb")
        self._size = max(path.stat().st_size, 1)
        self._progress, self._cancel = progress, cancel
        self._told = -1.0
        self._label = path.name

    def readinto(self, buffer: Any) -> int | None:
        if self._cancel is not None and self._cancel.is_set():
            raise ReviewCancelled(f"reading {self._label} was cancelled")
        n = super().readinto(buffer)
        if self._progress is not None:
            done = self.tell()
            frac = min(done / self._size, 1.0)
            if frac - self._told >= 0.005:
                self._told = frac
                self._progress(0.9 * frac, f"reading {self._label}: {done / 1e6:.0f} of {self._size / 1e6:.0f} MB")
        return n


@dataclass
class ReviewStream:
    """One stream on the review timeline: ``times`` (n,) global s, ``values`` (n, c);
    ``kind`` says which view draws it (signal, markers, text, video, gaze, skeleton)."""

    key: str
    name: str
    kind: str
    attribute: str
    channel_names: tuple[str, ...]
    units: tuple[str, ...]
    times: np.ndarray
    values: np.ndarray
    nominal_rate: float = 0.0
    video_path: Path | None = None
    #: a gaze stream's channel layout (which columns are x, y, confidence; see core.gazelayout)
    gaze_layout: GazeLayout | None = None
    #: the device it came from ("" when the file does not say): pairs a tracker's gaze with its scene video
    device_id: str = ""
    #: an ``Anomaly`` stream (kind "quality"): the key of the stream whose quality it holds
    quality_of: str = ""
    _envelope: Envelope | None = field(default=None, repr=False)

    @property
    def envelope(self) -> Envelope:
        """Min/max pyramid of a numeric stream (built on first use)."""
        if self._envelope is None:
            floating = self.values.dtype.kind == "f"  # float32 stays float32: no copy of a long recording
            self._envelope = Envelope.build(self.times, self.values if floating else self.values.astype(np.float64))
        return self._envelope

    def index_at(self, t: float) -> int:
        """Index of the last sample at or before ``t`` (s); -1 before the first."""
        return int(np.searchsorted(self.times, t, side="right")) - 1


@dataclass
class ReviewData:
    """Everything the review window shows; ``clock`` says how times were made."""

    path: Path
    source: str  # "session" or "xdf"
    clock: str
    streams: dict[str, ReviewStream]
    marker_times: np.ndarray
    marker_labels: list[str]
    marker_sources: list[str]
    warnings: list[str] = field(default_factory=list)
    session_dir: Path | None = None
    #: the recording's sync check result (``sync-check.json``), if one was run in it
    sync_check: dict[str, Any] | None = None
    #: each marker's duration (s; 0 for an instant), e.g. a ``BAD_flat`` spell of the quality scorer
    marker_durations: np.ndarray | None = None

    @property
    def span(self) -> tuple[float, float]:
        """[first, last] time of any sample or marker (s)."""
        firsts = [s.times[0] for s in self.streams.values() if s.times.size]
        lasts = [s.times[-1] for s in self.streams.values() if s.times.size]
        if self.marker_times.size:
            firsts.append(float(self.marker_times.min()))
            lasts.append(float(self.marker_times.max()))
        if not firsts:
            return 0.0, 1.0
        t0, t1 = float(min(firsts)), float(max(lasts))
        return t0, max(t1, t0 + 1e-3)

    def of_kind(self, kind: str) -> list[ReviewStream]:
        return [s for s in self.streams.values() if s.kind == kind]


def open_review(
    path: str | Path, progress: ReviewProgress | None = None, cancel: threading.Event | None = None
) -> ReviewData:
    """Open a session folder (or its ``session.json``) or an XDF file. ``progress`` is told
    how far reading is; ``cancel`` set stops it with :class:`ReviewCancelled` (both may be
    used from a reading thread)."""
    p = Path(path)
    if p.name == SESSION_FILE:
        p = p.parent
    if p.is_dir():
        if not (p / SESSION_FILE).is_file():
            raise ReviewError(f"{p}: not a recording (no {SESSION_FILE}) and not an XDF file")
        return _open_session(p, progress, cancel)
    if not p.is_file():
        raise ReviewError(f"{p}: no such file or folder")
    return _open_xdf(p, progress, cancel)


def _open_session(directory: Path, progress: ReviewProgress | None = None,
                  cancel: threading.Event | None = None) -> ReviewData:  # fmt: skip
    from .reader import load_recording

    def told(frac: float, what: str) -> None:
        if cancel is not None and cancel.is_set():
            raise ReviewCancelled(f"reading {directory.name} was cancelled")
        if progress is not None:
            progress(0.9 * frac, what)

    try:
        rec = load_recording(directory, told)
    except (OSError, ValueError) as exc:
        raise ReviewError(f"{directory}: cannot read the recording: {exc}") from exc
    streams: dict[str, ReviewStream] = {}
    for sid, data in rec.sensors.items():
        info = data.info
        times = rec.global_times(sid, "refined")
        kind = KIND_OF_ATTRIBUTE.get(info.attribute, "text" if data.values.dtype == object else "signal")
        video = None
        if kind == "video":
            rel = info.extra.get("session_video") or info.extra.get("video_file")
            video = (directory / rel) if rel and not Path(rel).is_absolute() else (Path(rel) if rel else None)
            if video is None or not video.exists():
                rec.warn(f"{sid}: its video file {rel or '(none recorded)'} is not there; frames cannot be shown")
                video = None
        layout = layout_of(info.channel_names, info.units, info.device_name, info.extra) if kind == "gaze" else None
        if kind == "gaze" and layout is None:
            kind = "signal"  # a gaze stream whose x/y we cannot find: plotted, not drawn as gaze
        streams[sid] = ReviewStream(sid, info.device_name or sid, kind, info.attribute, tuple(info.channel_names),
                                    tuple(info.units), times, data.values, info.nominal_rate, video,
                                    layout, info.device_id)  # fmt: skip
    _attach_quality(streams)
    times = rec.marker_times("refined")
    order = np.argsort(times, kind="stable")
    labels = [str(rec.markers[i].get("label", "")) for i in order]
    sources = [str(rec.markers[i].get("source", "")) for i in order]
    clock = "our refined clock models (sync worker's fit over the whole recording)"
    durations = np.array([_duration(rec.markers[i].get("duration")) for i in order], dtype=np.float64)
    return ReviewData(directory, "session", clock, streams, times[order], labels, sources, list(rec.warnings),
                      directory, rec.sync_check, durations)  # fmt: skip


def _duration(value: object) -> float:
    """A marker's ``duration`` field as seconds (0 when absent or not a finite non-negative number)."""
    try:
        d = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return d if math.isfinite(d) and d >= 0 else 0.0


class _Collect(logging.Handler):
    """Keeps what pyxdf says while it reads (damaged chunks, clock resets)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _open_xdf(path: Path, progress: ReviewProgress | None = None,
              cancel: threading.Event | None = None) -> ReviewData:  # fmt: skip
    import gzip

    import pyxdf

    collect = _Collect()
    pylog = logging.getLogger("pyxdf")
    pylog.addHandler(collect)
    watched = io.BufferedReader(_WatchedRaw(path, progress, cancel), buffer_size=1 << 20)
    source: io.BufferedIOBase = watched
    if path.suffix == ".xdfz" or path.suffixes[-2:] == [".xdf", ".gz"]:
        source = gzip.GzipFile(fileobj=watched, mode="rb")
    try:
        loaded, _header = pyxdf.load_xdf(source, synchronize_clocks=True, handle_clock_resets=True,
                                         dejitter_timestamps=True)  # fmt: skip
    except ReviewCancelled:
        raise
    except Exception as exc:  # pyxdf raises anything from struct.error to IndexError on bad input
        raise ReviewError(f"{path.name}: cannot be read as XDF: {type(exc).__name__}: {exc}") from exc
    finally:
        pylog.removeHandler(collect)
        source.close()
        watched.close()
    if progress is not None:
        progress(0.95, f"{path.name}: preparing {len(loaded)} streams")
    warnings = [f"{path.name}: {m}" for m in dict.fromkeys(collect.messages)]
    streams: dict[str, ReviewStream] = {}
    m_times: list[np.ndarray] = []
    m_labels: list[str] = []
    m_sources: list[str] = []
    sources_of_ours = next((s for s in loaded if _info(s, "type") == "MarkerSources"), None)
    for s in loaded:
        name, stype, fmt = _info(s, "name"), _info(s, "type"), _info(s, "channel_format")
        if stype == "MarkerSources":
            continue
        times = np.asarray(s.get("time_stamps", []), dtype=np.float64).reshape(-1)
        series = s.get("time_series", [])
        labels, units = _channels(s)
        key = _unique(streams, _key(s))
        if times.size == 0:
            warnings.append(f"{name} ({stype}): no samples")
        if fmt == "string":
            values = np.empty((times.size, max(len(labels), 1)), dtype=object)
            if times.size:
                values[:] = [list(row) for row in series]
            kind = "markers"
            m_times.append(times)
            m_labels.extend(str(v) for v in values[:, 0])
            if stype == "Markers" and sources_of_ours is not None and _info(sources_of_ours, "name") == "MarkerSources":
                m_sources.extend(str(row[0]) for row in sources_of_ours.get("time_series", []))
                m_sources.extend([name] * (times.size - len(sources_of_ours.get("time_series", []))))
            else:
                m_sources.extend([name] * times.size)
        else:
            values = np.asarray(series).reshape(times.size, -1) if times.size else np.zeros((0, 1))
            kind = KIND_OF_XDF_TYPE.get(stype.strip().lower(), "signal")
            layout = gaze_layout(labels, units, name, _desc_text(s)) if kind == "gaze" else None
            landmarks_with_visibility = any(label.endswith("_v") for label in labels) or not labels
            if (kind == "skeleton" and (values.shape[1] < SKELETON_CHANNELS or not landmarks_with_visibility)) or (
                kind == "gaze" and layout is None
            ):
                kind = "signal"  # not a layout the views know: plotted
        if len(labels) != values.shape[1]:
            labels = tuple(f"ch{i + 1}" for i in range(values.shape[1]))
            units = ("",) * values.shape[1]
        streams[key] = ReviewStream(
            key,
            name,
            kind,
            stype,
            labels,
            units,
            times,
            values,
            _rate(s),
            gaze_layout=layout if kind == "gaze" else None,
        )
    _attach_quality(streams)
    times = np.concatenate(m_times) if m_times else np.zeros(0)
    order = np.argsort(times, kind="stable")
    return ReviewData(path, "xdf", "pyxdf: clock synchronization, clock-reset handling and dejitter", streams,
                      times[order], [m_labels[i] for i in order], [m_sources[i] for i in order], warnings)  # fmt: skip


def _attach_quality(streams: dict[str, ReviewStream]) -> None:
    """Each ``Anomaly`` stream whose sensor is in the recording becomes that stream's quality
    (kind "quality": drawn as shading on its sensor's plot, not as a plot of codes)."""
    for key, s in streams.items():
        if s.attribute.lower() == ANOMALY_ATTRIBUTE and key.endswith("-anomaly") and key[: -len("-anomaly")] in streams:
            s.kind, s.quality_of = "quality", key[: -len("-anomaly")]


def _info(s: dict[str, Any], key: str) -> str:
    try:
        return str(s["info"][key][0])
    except (KeyError, IndexError, TypeError):
        return ""


def _rate(s: dict[str, Any]) -> float:
    try:
        rate = float(s["info"]["nominal_srate"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return 0.0
    return rate if math.isfinite(rate) else 0.0


def _desc_text(s: dict[str, Any]) -> str:
    """A stream's ``desc`` as XML-ish text (for the gaze layout's size lookup)."""

    def walk(node: Any, tag: str) -> str:
        if isinstance(node, list):
            return "".join(walk(n, tag) for n in node)
        if isinstance(node, dict):
            return f"<{tag}>" + "".join(walk(v, k) for k, v in node.items()) + f"</{tag}>"
        return f"<{tag}>{node}</{tag}>"

    try:
        return walk(s["info"]["desc"], "desc")
    except (KeyError, TypeError):
        return ""


def _channels(s: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        chans = s["info"]["desc"][0]["channels"][0]["channel"]
        labels = tuple(str((c.get("label") or [""])[0]) for c in chans)
        units = tuple(str((c.get("unit") or [""])[0]) for c in chans)
        return labels, units
    except (KeyError, IndexError, TypeError):
        return (), ()


def _key(s: dict[str, Any]) -> str:
    from .xdf import xdf_stream_key

    return xdf_stream_key(s)


def _unique(existing: dict[str, Any], key: str) -> str:
    if key not in existing:
        return key
    n = 2
    while f"{key} ({n})" in existing:
        n += 1
    return f"{key} ({n})"
