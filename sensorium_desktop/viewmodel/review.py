"""The review timeline (no Qt): a cursor and a visible range over a recording, playback at
0.25×–4×, frame steps, marker jumps, zoom and pan, and what each view shows at the cursor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.pose import N_LANDMARKS
from ..core.quality import REASONS, quality_spans
from ..recording.review import ReviewData, ReviewStream
from .base import Event
from .gaze import GazeHeatmap

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
DEFAULT_VIEW_S = 30.0
MIN_VIEW_S = 0.01
GAZE_TRAIL_S = 1.0
HEAT_WINDOW_S = 4.0
FALLBACK_FRAME_S = 1 / 30
#: at the start, a stream's first sample this soon after the cursor is shown (s)
FIRST_SAMPLE_AHEAD_S = 1.0


@dataclass(frozen=True, slots=True)
class MarkerLine:
    t: float
    label: str
    source: str


class ReviewModel:
    """State of one review window; ``changed`` fires after every move (cursor or range)."""

    def __init__(self, data: ReviewData) -> None:
        self.data = data
        self.start, self.end = data.span
        self.cursor = self.start
        self.view = (self.start, min(self.end, self.start + DEFAULT_VIEW_S))
        self.speed = 1.0
        self.playing = False
        self.selection: tuple[float, float] | None = None
        self.changed = Event()
        videos = data.of_kind("video")
        gazes = data.of_kind("gaze")
        skeletons = data.of_kind("skeleton")
        self.gaze = gazes[0] if gazes else None
        self.skeleton = skeletons[0] if skeletons else None
        # the video drawn under them: a head-mounted tracker's own scene camera (or the pose
        # source's camera) before any other
        owners = [x.device_id for x in (self.gaze, self.skeleton) if x is not None and x.device_id]
        own = [v for d in owners for v in videos if v.device_id == d]
        self.video = own[0] if own else (videos[0] if videos else None)

    # -- moving -----------------------------------------------------------------------------
    def set_cursor(self, t: float, follow: bool = True) -> None:
        """Put the cursor at ``t`` (s, clamped to the recording); the range follows it."""
        self.cursor = min(max(float(t), self.start), self.end)
        t0, t1 = self.view
        if follow and not t0 <= self.cursor <= t1:
            width = t1 - t0
            t0 = self.cursor - width / 2 if self.cursor < t0 else self.cursor - width * 0.1
            self.view = self._clamp(t0, t0 + width)
        self.changed.emit("cursor")

    def set_view(self, t0: float, t1: float) -> None:
        self.view = self._clamp(t0, t1)
        self.changed.emit("view")

    def _clamp(self, t0: float, t1: float) -> tuple[float, float]:
        width = min(max(t1 - t0, MIN_VIEW_S), max(self.end - self.start, MIN_VIEW_S))
        t0 = min(max(t0, self.start), self.end - width)
        return t0, t0 + width

    def zoom(self, factor: float) -> None:
        """Narrow (factor < 1) or widen the range around the cursor."""
        t0, t1 = self.view
        c = self.cursor if t0 <= self.cursor <= t1 else (t0 + t1) / 2
        self.set_view(c - (c - t0) * factor, c + (t1 - c) * factor)

    def pan(self, fraction: float) -> None:
        """Move the range by ``fraction`` of its width (negative: earlier)."""
        t0, t1 = self.view
        d = (t1 - t0) * fraction
        self.set_view(t0 + d, t1 + d)

    @property
    def frame_period(self) -> float:
        """One video frame (s): the camera's median spacing, else the fastest stream's."""
        if self.video is not None and self.video.times.size > 1:
            return float(np.median(np.diff(self.video.times)))
        rates = [s.nominal_rate for s in self.data.streams.values() if s.nominal_rate > 0]
        return 1.0 / max(rates) if rates else FALLBACK_FRAME_S

    def step(self, frames: int) -> None:
        """Move by ``frames`` video frames (to the exact frame times when there is video)."""
        if self.video is not None and self.video.times.size:
            i = self.video.index_at(self.cursor + 1e-9) + frames
            i = min(max(i, 0), self.video.times.size - 1)
            self.set_cursor(float(self.video.times[i]))
        else:
            self.set_cursor(self.cursor + frames * self.frame_period)

    def jump_marker(self, direction: int) -> bool:
        """Cursor to the next (1) or previous (-1) marker; False when there is none."""
        times = self.data.marker_times
        if direction > 0:
            i = int(np.searchsorted(times, self.cursor + 1e-6, side="left"))
            if i >= times.size:
                return False
        else:
            i = int(np.searchsorted(times, self.cursor - 1e-6, side="left")) - 1
            if i < 0:
                return False
        self.set_cursor(float(times[i]))
        return True

    def set_speed(self, speed: float) -> None:
        self.speed = min(SPEEDS, key=lambda s: abs(s - speed))
        self.changed.emit("speed")

    def play(self, on: bool | None = None) -> None:
        self.playing = (not self.playing) if on is None else on
        if self.playing and self.cursor >= self.end:
            self.cursor = self.start
        self.changed.emit("play")

    def advance(self, wall_s: float) -> None:
        """Playback: ``wall_s`` seconds passed; stops at the end."""
        if not self.playing:
            return
        t = self.cursor + wall_s * self.speed
        if t >= self.end:
            self.playing = False
        self.set_cursor(t)

    def select(self, t0: float, t1: float) -> None:
        """The range to trim and export."""
        a, b = sorted((max(t0, self.start), min(t1, self.end)))
        self.selection = (a, b) if b > a else None
        self.changed.emit("selection")

    # -- what the views show ----------------------------------------------------------------
    def signals(self) -> list[ReviewStream]:
        """Numeric streams with samples (signals and event codes), the fastest first (ECG, EEG
        before temperature)."""
        found = [s for s in self.data.streams.values() if s.kind in ("signal", "events") and s.times.size]
        return sorted(found, key=lambda s: -(s.nominal_rate or (s.times.size - 1) / max(s.times[-1] - s.times[0], 1.0)))

    def quality_spans(self, key: str) -> list[tuple[float, float, int, str, int]]:
        """The suspect (1) and bad (2) spells of stream ``key`` from its recorded ``Anomaly``
        stream: (start s, end s, state, reason, channel index or -1 for the whole sensor)."""
        q = next((s for s in self.data.streams.values() if s.kind == "quality" and s.quality_of == key), None)
        if q is None:
            return []
        return [(a, b, state, REASONS[r - 1] if 1 <= r <= len(REASONS) else "?", ch - 1)
                for a, b, state, r, ch in quality_spans(q.times, q.values)]  # fmt: skip

    def plot(self, stream: ReviewStream, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, lo, hi) of ``stream`` over the visible range (decimated envelope)."""
        return stream.envelope.view(self.view[0], self.view[1], max_points)

    def video_frame(self) -> int | None:
        """Index in the video file of the frame shown at the cursor (None before the first)."""
        if self.video is None:
            return None
        i = self._sample_at(self.video)
        if i < 0:
            return None
        v = float(self.video.values[i, 0])
        return int(v) if math.isfinite(v) else None

    def _sample_at(self, stream: ReviewStream) -> int:
        """The sample shown at the cursor: the last at or before it, or — at the start, before a
        stream's first sample — its first when that comes within :data:`FIRST_SAMPLE_AHEAD_S`
        (-1: none)."""
        i = stream.index_at(self.cursor + 1e-9)
        if i < 0 and stream.times.size and stream.times[0] - self.cursor <= FIRST_SAMPLE_AHEAD_S:
            return 0
        return i

    def gaze_trail(self, seconds: float = GAZE_TRAIL_S) -> np.ndarray:
        """(k, 3) x, y, confidence of the gaze samples in the last ``seconds`` before the cursor."""
        if self.gaze is None or not self.gaze.times.size:
            return np.zeros((0, 3))
        i0 = int(np.searchsorted(self.gaze.times, self.cursor - seconds, side="left"))
        i1 = self._sample_at(self.gaze) + 1
        vals = np.asarray(self.gaze.values[i0:i1], dtype=np.float64)
        if self.gaze.gaze_layout is not None:  # the tracker's own channels, made ours (x, y top-left, confidence)
            return self.gaze.gaze_layout.normalize(vals) if vals.size else np.zeros((0, 3))
        if vals.shape[1] < 3:
            vals = np.hstack([vals, np.ones((vals.shape[0], 3 - vals.shape[1]))])
        return vals[:, :3]

    def gaze_heat(self, seconds: float = HEAT_WINDOW_S) -> np.ndarray | None:
        """(nx, ny) heat in [0, 1] of where the gaze was in the ``seconds`` before the cursor
        (the live panel's confidence-weighted, decaying heatmap, replayed); None without gaze."""
        trail = self.gaze_trail(seconds)
        if self.gaze is None or not trail.size:
            return None
        i1 = self._sample_at(self.gaze) + 1
        times = self.gaze.times[i1 - trail.shape[0] : i1]
        heat = GazeHeatmap()
        ok = np.isfinite(trail).all(axis=1)
        heat.add(times[ok], trail[ok, 0], trail[ok, 1], trail[ok, 2])
        return heat.image()

    def skeleton_pose(self) -> np.ndarray | None:
        """(33, 3) x, y, visibility of the pose at the cursor, or None."""
        if self.skeleton is None:
            return None
        i = self._sample_at(self.skeleton)
        if i < 0:
            return None
        row = np.asarray(self.skeleton.values[i], dtype=np.float64)
        return row[: N_LANDMARKS * 3].reshape(N_LANDMARKS, 3) if row.size >= N_LANDMARKS * 3 else None

    def has_media(self) -> bool:
        """Whether there is a video, gaze or skeleton to show beside the plots."""
        return any(x is not None for x in (self.video, self.gaze, self.skeleton))

    def markers_in_view(self) -> list[MarkerLine]:
        times = self.data.marker_times
        i0, i1 = np.searchsorted(times, self.view[0], "left"), np.searchsorted(times, self.view[1], "right")
        return [MarkerLine(float(times[i]), self.data.marker_labels[i], self.data.marker_sources[i])
                for i in range(int(i0), int(i1))]  # fmt: skip

    def time_text(self, t: float | None = None) -> str:
        """``+12.345 s`` from the start of the recording."""
        return f"+{(self.cursor if t is None else t) - self.start:.3f} s"
