"""Is this signal still good? Signal quality of one sensor from its own history (pure numpy).

A :class:`SignalQuality` keeps the last seconds of a sensor's samples and, every time it is
asked, judges the newest window (``window_s``: 0.5 s, at least 16 samples) of every channel
against a baseline it learned from that sensor's own good windows:

- **dropout / rate drop**: fewer samples than the nominal rate promises (rules need no baseline);
- **nan**: a run of NaN/inf values;
- **clipped**: samples pinned at the attribute's range, or many at exactly the window's extreme
  (an amplifier in saturation);
- **flat**: the window's spread collapsed (an electrode off), or the newest samples repeat one
  value exactly for longer than the sensor ever did when good (a frozen value: found within a
  few samples);
- **jump**: the window's spread or level far beyond the learned one (electrode pop, spike);
- **noise**: mains hum (50/60 Hz) or broadband noise far above the learned share;
- **drift**: the level moved away from the learned level by several typical spreads;
- **model**: the standardized error of a trained forecaster (:mod:`.forecast`), when one is
  given for this sensor and attribute.

Each check yields a severity in [0, 1]; the anomaly score is the largest, the state is
``good`` (< 0.5), ``suspect`` (< 0.9) or ``bad``, and the reason names the check (and the
channel). Until :data:`BASELINE_WINDOWS` good windows were seen the state is ``learning``
(the rules needing no baseline still mark bad data). Units: s, Hz, the sensor's own units.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from .contenttypes import NAME_WORDS, content_type
from .samples import SensorInfo

#: judged window (s), at least :data:`MIN_WINDOW_SAMPLES` samples
WINDOW_S = 0.5
MIN_WINDOW_SAMPLES = 8
#: the level (for drift) is the median of this longer stretch (s), at least as many samples
LEVEL_WINDOW_S = 5.0
#: rows of that stretch the level's percentiles are taken over, at most (evenly spaced back from
#: the newest): the exact percentiles of a 32-channel 512 Hz stretch took 4 ms of every judgement
LEVEL_ROWS = 640
#: history kept (s) for the window and the forecaster's inputs
HISTORY_S = 10.0
#: good windows needed before the baseline is trusted
BASELINE_WINDOWS = 8
#: the baseline follows good windows with this time constant (s): slower than any drift
BASELINE_TAU_S = 120.0
#: state thresholds on the score
SUSPECT_AT, BAD_AT = 0.5, 0.9
REASONS = ("dropout", "rate drop", "nan", "clipped", "flat", "jump", "noise", "drift", "model")
#: the attributes these rules judge: continuous physiological, motion and environment signals.
#: Not eye trackers and pose (saccades, blinks and a worn flag move by jumps and plateaus), not
#: cameras' frame counters, light sensors that see sync flashes, events or a heart rate per beat.
SCORED = frozenset({"ecg", "eeg", "emg", "eog", "ppg", "eda", "gsr", "respiration", "imu", "accelerometer",
                    "gyroscope", "magnetometer", "temperature", "humidity", "pressure"})  # fmt: skip
#: reasons off per attribute category: a room's temperature or pressure drifts by nature
OFF_BY_CATEGORY = {"environment": frozenset({"drift"})}


def checks_off(attribute: str, category: str) -> frozenset[str] | None:
    """The reasons not judged for ``attribute`` (of ``category``); None: not scored at all."""
    if attribute not in SCORED:
        return None
    return OFF_BY_CATEGORY.get(category, frozenset())


MAINS_HZ = (50.0, 60.0)
#: a value repeated exactly this many times running (or over twice the longest run the sensor
#: showed when good, + 1) is frozen: a continuous signal never repeats, a quantized one learns its own
FROZEN_MIN_RUN = 3.0
#: mains hum is measured over this long (s): 0.5 Hz resolution
HUM_WINDOW_S = 2.0
#: a faster sensor (Hz) is judged on one sample per block of ceil(rate / this) samples: the
#: block's sample farthest from the block's mean (a one-sample spike, a rail, a frozen value stay
#: visible), timed at the block's last sample, with the block's NaN share kept beside it. The
#: judging then costs what this rate does: ten 100 kHz sensors judged whole took 68 % of a core,
#: at 2 kHz 24 %
MAX_JUDGED_RATE_HZ = 1000.0


class Forecaster(Protocol):
    """A one-step forecaster of a sensor's values (see :mod:`.forecast`)."""

    attribute: str
    sensor_id: str

    def standardized_error(self, values: np.ndarray) -> np.ndarray:
        """|error| / training residual scale per channel for the newest samples, shape (channels,)."""
        ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the operator sees for one sensor: ``state`` good/suspect/bad/learning, ``score``
    0–1, ``reason`` one of :data:`REASONS` ("" when good), ``detail`` in words."""

    state: str
    score: float
    reason: str = ""
    detail: str = ""
    channel: int = -1


@dataclass(slots=True)
class _Baseline:
    #: the window statistics, in the order of the rows :meth:`SignalQuality._assess` stacks
    STATS: ClassVar[tuple[str, ...]] = ("ptp", "level", "hum", "rough", "level_long", "range_long")

    ptp: np.ndarray  # typical peak-to-peak of a window, per channel
    level: np.ndarray  # typical window median, per channel
    hum: np.ndarray  # typical mains line over its neighbourhood, per channel
    rough: np.ndarray  # typical robust SD of the second difference, per channel
    level_long: np.ndarray  # typical median of the longer level window, per channel
    range_long: np.ndarray  # typical 5–95 % range of the longer level window, per channel
    windows: int = 0

    @classmethod
    def from_stats(cls, stats: np.ndarray, windows: int) -> _Baseline:
        """From stacked statistics (rows in :attr:`STATS` order, columns = channels)."""
        return cls(stats[0], stats[1], stats[2], stats[3], stats[4], stats[5], windows)


def _percentiles(x: np.ndarray, qs: list[float]) -> np.ndarray:
    """Per-column percentiles (len(qs), columns), ignoring NaN (the NaN-aware path, ~10× slower,
    only when there is one)."""
    if np.isfinite(x).all():
        return np.percentile(x, qs, axis=0)
    return np.nanpercentile(x, qs, axis=0)


def _severity(ratio: np.ndarray | float, at: float, full: float) -> np.ndarray:
    """0 below ``at``, rising to 1 at ``full`` (linear; ratios, any shape)."""
    r = np.asarray(ratio, dtype=np.float64)
    return np.clip((r - at) / (full - at), 0.0, 1.0)


#: a sensor's kept rows: times (n,) s, values (n, channels), NaN shares (n, channels) or None
History = tuple[np.ndarray, np.ndarray, np.ndarray | None]
#: the RuntimeWarnings numpy gives for the all-NaN channels a judgement meets (and judges: "nan")
NAN_WARNINGS = r"All-NaN (slice|axis) encountered|Mean of empty slice|Degrees of freedom <= 0"


class SignalQuality:
    """Quality of one sensor's stream. ``rate`` Hz (0: irregular — rate checks off),
    ``channels``; ``value_range`` (lo, hi) the attribute's valid range when known; ``off``
    the reasons not judged (:func:`checks_off`)."""

    def __init__(
        self,
        rate: float,
        channels: int,
        value_range: tuple[float | None, float | None] | None = None,
        forecaster: Forecaster | None = None,
        window_s: float = WINDOW_S,
        off: frozenset[str] = frozenset(),
    ) -> None:
        #: samples per judged sample (1 up to :data:`MAX_JUDGED_RATE_HZ`)
        self.block = max(1, math.ceil(float(rate) / MAX_JUDGED_RATE_HZ)) if rate > 0 else 1
        #: the judged rate (Hz): the sensor's rate over :attr:`block`
        self.rate = float(rate) / self.block
        self.off = off
        self.channels = int(channels)
        self.value_range = value_range
        self.forecaster = forecaster
        min_s = MIN_WINDOW_SAMPLES / self.rate if self.rate > 0 else window_s
        self.window_s = max(window_s, min_s)
        n_hist = math.ceil(HISTORY_S * self.rate) if self.rate > 0 else 4096
        self._n_hist = max(n_hist, 2 * MIN_WINDOW_SAMPLES)
        # rings kept twice over (row i also at i + n): the kept rows are always one slice, no copy
        self._t = np.full(2 * self._n_hist, np.nan)
        self._v = np.full((2 * self._n_hist, self.channels), np.nan)
        #: NaN share of each kept row's block (only when blocks are judged: else 0 or 1 from the value)
        self._nan = np.zeros((2 * self._n_hist, self.channels)) if self.block > 1 else None
        self._carry_t = np.zeros(0)  # the samples of an unfinished block (block > 1)
        self._carry_v = np.zeros((0, self.channels))
        self._filled = 0
        self._head = 0
        self.base: _Baseline | None = None
        self._pending: list[np.ndarray] = []  # window stats before the baseline exists
        self._learned_at = math.nan  # time of the last window folded into the baseline (s)
        self._first_t = math.nan  # the first sample's time (s): a window is not due before it
        #: longest run of exactly repeated values seen in a good history, per channel (samples)
        self._max_run = np.zeros(self.channels)
        self._alarm_at = -math.inf  # the last suspect or bad verdict (s)

    # -- data ---------------------------------------------------------------------------------
    def update(self, t: np.ndarray, values: np.ndarray) -> None:
        """Append samples: times (n,) s and values (n, channels)."""
        t = np.asarray(t, dtype=np.float64)
        n = t.size
        if n == 0:
            return
        v = np.asarray(values, dtype=np.float64).reshape(n, -1)[:, : self.channels]
        if math.isnan(self._first_t):
            self._first_t = float(t[0])
        nan_share = None
        if self.block > 1:
            t, v, nan_share = self._judged_rows(t, v)
            n = t.size
            if n == 0:
                return
        if n >= self._n_hist:
            t, v, n = t[-self._n_hist :], v[-self._n_hist :], self._n_hist
            nan_share = None if nan_share is None else nan_share[-self._n_hist :]
        idx = (self._head + np.arange(n)) % self._n_hist
        both = np.concatenate((idx, idx + self._n_hist))
        self._t[both] = np.concatenate((t, t))
        self._v[both] = np.concatenate((v, v))
        if self._nan is not None and nan_share is not None:
            self._nan[both] = np.concatenate((nan_share, nan_share))
        self._head = (self._head + n) % self._n_hist
        self._filled = min(self._n_hist, self._filled + n)

    def _judged_rows(self, t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole blocks of :attr:`block` samples (with the unfinished one carried over) → one
        row each: the block's last time (n,), per channel the value farthest from the block's
        mean (n, channels; NaN only when all are) and the block's NaN share (n, channels)."""
        if self._carry_t.size:
            t = np.concatenate([self._carry_t, t])
            v = np.concatenate([self._carry_v, v])
        k = self.block
        whole = t.size // k * k
        self._carry_t, self._carry_v = t[whole:].copy(), v[whole:].copy()
        blocks = v[:whole].reshape(-1, k, self.channels)
        times = t[k - 1 : whole : k]
        if not np.isnan(blocks).any():  # the usual case: three reductions
            centre = blocks.mean(axis=1)
            hi, lo = blocks.max(axis=1), blocks.min(axis=1)
            return times, np.where(hi - centre >= centre - lo, hi, lo), np.zeros_like(centre)
        missing = np.isnan(blocks)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            centre = np.nanmean(blocks, axis=1, keepdims=True)
        away = np.where(missing, -1.0, np.abs(blocks - centre))
        pick = np.take_along_axis(blocks, away.argmax(axis=1)[:, None, :], axis=1)[:, 0, :]
        return times, pick, missing.mean(axis=1)

    def _history(self, now: float) -> History:
        """The kept rows up to ``now``, oldest first: times (n,) s, values (n, channels) and,
        when blocks are judged, each row's NaN share (n, channels)."""
        rows = slice(self._head + self._n_hist - self._filled, self._head + self._n_hist)
        t, v = self._t[rows], self._v[rows]
        nan = None if self._nan is None else self._nan[rows]
        if not (t > now).any():  # every kept row is due: the views themselves
            return t, v, nan
        keep = t <= now
        return t[keep], v[keep], None if nan is None else nan[keep]

    def snapshot(self, now: float) -> History:
        """A copy of the kept rows up to ``now`` (s): what :meth:`judge` reads, so that it may
        run in another thread while :meth:`update` goes on."""
        t, v, nan = self._history(now)
        return t.copy(), v.copy(), None if nan is None else nan.copy()

    # -- judging ------------------------------------------------------------------------------
    def assess(self, now: float) -> Verdict:
        """Judge the window ending at ``now`` (s, the samples' clock)."""
        with warnings.catch_warnings():  # all-NaN channels are judged ("nan"), not warned about
            warnings.simplefilter("ignore", RuntimeWarning)
            return self._assess(now, self._history(now))

    def judge(self, now: float, history: History) -> Verdict:
        """:meth:`assess` on a :meth:`snapshot`, leaving the warning filters alone (changing
        them is not thread-safe): the caller has numpy's all-NaN warnings ignored already
        (:data:`NAN_WARNINGS`)."""
        return self._assess(now, history)

    def _assess(self, now: float, history: History) -> Verdict:
        hist_t, hist_v, hist_nan = history  # one view of the ring per judgement, read by every check
        recent = hist_t > now - self.window_s
        t, v = hist_t[recent], hist_v[recent]
        sev: dict[str, np.ndarray] = {}
        covered = min(self.window_s, now - self._first_t) if math.isfinite(self._first_t) else self.window_s
        expected = self.rate * covered
        if self.rate > 0 and expected >= 1.0:
            ratio = t.size / expected
            if t.size == 0:
                return Verdict("bad", 1.0, "dropout", f"no sample in the last {self.window_s:.2f} s")
            sev["rate drop"] = np.full(self.channels, float(_severity(1.0 - ratio, 0.2, 0.5)))
        finite = np.isfinite(v)
        if not v.size:
            nan_share = np.zeros(self.channels)
        elif hist_nan is not None:  # judged in blocks: the blocks' own NaN shares
            nan_share = hist_nan[recent].mean(axis=0)
        else:
            nan_share = 1.0 - finite.mean(axis=0)
        sev["nan"] = _severity(nan_share, 0.05, 0.3)
        vf = np.where(finite, v, np.nan)
        with np.errstate(all="ignore"):
            lo, hi = np.nanmin(vf, axis=0), np.nanmax(vf, axis=0)
            ptp = hi - lo
            med = _percentiles(vf, [50])[0]
        sev["clipped"] = self._clipped(vf, lo, hi, ptp)
        level_long, range_long = self._level(hist_t, hist_v, now)
        run_now, run_longest = _repeat_runs(hist_v)
        stats = np.stack([ptp, med, self._hum(hist_t, hist_v, now), self._rough(vf), level_long, range_long])
        base = self.base
        if base is not None and base.windows >= BASELINE_WINDOWS:
            floor = 1e-9 + 1e-6 * np.abs(base.level)
            frozen = _severity(run_now / np.maximum(FROZEN_MIN_RUN, 2.0 * self._max_run + 1.0), 0.67, 1.0)
            at_rail = self._at_range(hist_v[-1]) if hist_v.shape[0] else np.zeros(self.channels, dtype=bool)
            sev["flat"] = np.maximum(_severity(1.0 - ptp / np.maximum(base.ptp, floor), 0.9, 0.98),
                                     frozen * ~at_rail)  # fmt: skip
            sev["clipped"] = np.maximum(sev["clipped"], frozen * at_rail)  # held at the attribute's range end
            sev["jump"] = _severity(ptp / np.maximum(base.ptp, floor), 2.5, 4.0)
            hum_gain = stats[2] / np.maximum(base.hum, 1.0)
            rough_gain = stats[3] / np.maximum(base.rough, floor)
            sev["noise"] = np.maximum(_severity(stats[2], 30.0, 100.0) * (hum_gain > 4.0),
                                      _severity(rough_gain, 3.0, 5.0))  # fmt: skip
            moved = np.abs(level_long - base.level_long) / np.maximum(base.range_long, floor)
            sev["drift"] = _severity(moved, 0.75, 1.5)
            if self.forecaster is not None and t.size:
                z = self.forecaster.standardized_error(hist_v)
                sev["model"] = _severity(z, 4.0, 8.0)
        verdict = _verdict({k: v for k, v in sev.items() if k not in self.off}, self.channels)
        if verdict.state in ("suspect", "bad"):
            self._alarm_at = now
        elif now - self._alarm_at > HISTORY_S:  # no alarm's samples left in the history
            self._max_run = np.maximum(self._max_run, run_longest)
        if not np.isfinite(stats).all(axis=0).any():
            return verdict
        self._learn(stats, verdict, now)
        if (base is None or base.windows < BASELINE_WINDOWS) and verdict.state != "bad":
            n = 0 if base is None else base.windows
            return Verdict("learning", verdict.score, verdict.reason,
                           f"learning this sensor's normal signal ({n}/{BASELINE_WINDOWS} windows)")  # fmt: skip
        return verdict

    def _level(self, t: np.ndarray, v: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Median and 5–95 % range of the last :data:`LEVEL_WINDOW_S` of the history ``t``, ``v``
        (the level a drift moves)."""
        span = max(LEVEL_WINDOW_S, 4 * self.window_s)
        x = v[t > now - span]
        if x.shape[0] > LEVEL_ROWS:  # a level, not a spike: every k-th row back from the newest will do
            x = x[:: -math.ceil(x.shape[0] / LEVEL_ROWS)]
        if x.shape[0] == 0:
            return np.full(self.channels, np.nan), np.full(self.channels, np.nan)
        with np.errstate(all="ignore"):
            lo, mid, hi = _percentiles(x, [5, 50, 95])  # robust: an ECG's R peaks are not its range
            return mid, hi - lo

    def _at_range(self, vf: np.ndarray) -> np.ndarray:
        """Which of ``vf`` (any shape) lie at an end of the attribute's valid range (bool)."""
        at = np.zeros_like(vf, dtype=bool)
        if self.value_range is None:
            return at
        rlo, rhi = self.value_range
        tol = 1e-3 * (abs(rhi - rlo) if rlo is not None and rhi is not None else 1.0)
        with np.errstate(invalid="ignore"):
            if rlo is not None:
                at |= vf <= rlo + tol
            if rhi is not None:
                at |= vf >= rhi - tol
        return at

    def _clipped(self, vf: np.ndarray, lo: np.ndarray, hi: np.ndarray, ptp: np.ndarray) -> np.ndarray:
        """Share of samples pinned at the range's ends, or at exactly the window's extreme."""
        n = max(vf.shape[0], 1)
        out = np.zeros(self.channels)
        if self.value_range is not None:
            out = np.maximum(out, _severity(self._at_range(vf).mean(axis=0), 0.05, 0.2))
        with np.errstate(invalid="ignore"):
            at_hi = (vf == hi).sum(axis=0)
            at_lo = (vf == lo).sum(axis=0)
        most = np.maximum(at_hi, at_lo)
        out = np.maximum(out, _severity(most / n, 0.1, 0.3) * (ptp > 0) * (most >= 3))
        return out

    def _hum(self, t: np.ndarray, v: np.ndarray, now: float) -> np.ndarray:
        """Mains hum: the strongest spectral line within ±1 Hz of 50 or 60 Hz over the median
        power 3–12 Hz away (a line, not a share: noise of any colour gives ~3, rarely over 15;
        a hum of a tenth of the signal hundreds), from the last :data:`HUM_WINDOW_S` of the
        history ``t``, ``v``."""
        if self.rate < 2.5 * MAINS_HZ[0]:
            return np.zeros(self.channels)
        x = v[t > now - HUM_WINDOW_S]
        if x.shape[0] < self.rate * HUM_WINDOW_S / 2:
            return np.zeros(self.channels)
        x = np.nan_to_num(x - np.nanmean(x, axis=0))
        spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])[:, None], axis=0)) ** 2
        f = np.fft.rfftfreq(x.shape[0], 1.0 / self.rate)
        best = np.zeros(self.channels)
        for mains in MAINS_HZ:
            if mains + 12.0 >= self.rate / 2:
                continue
            d = np.abs(f - mains)
            band, near = d <= 1.0, (d > 3.0) & (d <= 12.0)
            ratio = spec[band].max(axis=0) / np.maximum(np.median(spec[near], axis=0), 1e-300)
            best = np.maximum(best, ratio)
        return best

    def _rough(self, vf: np.ndarray) -> np.ndarray:
        """Robust SD (1.4826 × median absolute value) of the second difference: the signal's own
        slope and curvature cancel, one spike does not count, broadband noise does; per channel."""
        if vf.shape[0] < 4:
            return np.zeros(self.channels)
        with np.errstate(all="ignore"):
            r = 1.4826 * _percentiles(np.abs(np.diff(vf, n=2, axis=0)), [50])[0]
        return np.nan_to_num(r, nan=0.0, posinf=0.0)

    def _learn(self, stats: np.ndarray, verdict: Verdict, now: float) -> None:
        """Fold a good window's statistics into the baseline (medians of windows a window
        apart until it is trusted, then an average over :data:`BASELINE_TAU_S`)."""
        if verdict.state == "bad" or not np.isfinite(stats).all():
            return
        if self.base is None or self.base.windows < BASELINE_WINDOWS:
            if now - self._learned_at < self.window_s:
                return
            self._learned_at = now
            self._pending.append(stats)
            stacked = np.stack(self._pending)
            m = np.median(stacked, axis=0)
            # the typical spread is the mean of the first windows but their largest (what the
            # running average then follows): an ECG's 0.5 s window holds an R peak about half the
            # time, and a median of windows without one made every beat a "jump" until the
            # average caught up (a false alarm under load in CI)
            ptps = np.sort(stacked[:, 0], axis=0)
            m[0] = ptps[:-1].mean(axis=0) if ptps.shape[0] >= 4 else ptps.mean(axis=0)
            self.base = _Baseline.from_stats(m, len(self._pending))
            return
        if verdict.state != "good":
            return
        a = min(1.0, (now - self._learned_at) / BASELINE_TAU_S) if math.isfinite(self._learned_at) else 0.0
        self._learned_at = now
        b = self.base
        for name, row in zip(_Baseline.STATS, stats, strict=True):
            mean = getattr(b, name)
            setattr(b, name, mean + a * (row - mean))
        b.windows += 1


def _repeat_runs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel of ``v`` (n, c): how many of the newest samples repeat the one before them
    exactly, and the longest such run that ended before them (a frozen value; NaN never repeats)."""
    now, longest = np.zeros(v.shape[1]), np.zeros(v.shape[1])
    if v.shape[0] < 3:
        return now, longest
    same = v[1:] == v[:-1]
    repeats = same.any(axis=0)  # a continuous signal's channels never do: nothing to count
    if not repeats.any():
        return now, longest
    same = np.ascontiguousarray(same[:, repeats].T)  # (channels, n): the runs along each row
    count = np.cumsum(same, axis=1)
    runs = count - np.maximum.accumulate(np.where(same, 0, count), axis=1)
    ended = same[:, :-1] & ~same[:, 1:]
    now[repeats] = runs[:, -1]
    longest[repeats] = np.where(ended, runs[:, :-1], 0).max(axis=1)
    return now, longest


#: reasons that say what happened more precisely than a changed spread: named first when they
#: reach suspect (a saturated amplifier also widens the spread, a "jump")
SPECIFIC = ("dropout", "rate drop", "nan", "clipped", "flat")


def _verdict(sev: dict[str, np.ndarray], channels: int) -> Verdict:
    """The worst check over all channels → state, score, reason, channel (a specific reason
    that reached suspect is named before a larger general one; the score is the largest)."""
    worst: dict[str, tuple[float, int]] = {}
    for reason in REASONS:
        s = sev.get(reason)
        if s is None or s.size == 0:
            continue
        s = np.nan_to_num(np.asarray(s, dtype=np.float64).reshape(-1), nan=0.0)
        ch = int(np.argmax(s))
        worst[reason] = (float(s[ch]), ch)
    best_reason, best_score, best_ch = "", 0.0, -1
    for reason, (score, ch) in worst.items():
        if score > best_score:
            best_reason, best_score, best_ch = reason, score, ch
    specific = [(worst[r][0], r) for r in SPECIFIC if r in worst and worst[r][0] >= SUSPECT_AT]
    if specific:
        best_reason = max(specific)[1]
        best_ch = worst[best_reason][1]
    if best_score < SUSPECT_AT:
        return Verdict("good", best_score)
    state = "bad" if best_score >= BAD_AT else "suspect"
    where = f" (channel {best_ch + 1})" if channels > 1 else ""
    return Verdict(state, best_score, best_reason, f"{best_reason}{where}", best_ch if channels > 1 else -1)


class SampleTimes:
    """When a sensor's delivered samples were taken, on the host clock (s), so that a burst of
    samples delivered late together (a busy machine, a radio catching up) is judged as the
    seconds of signal it is, not as one crowded window (that read as a ``jump``).

    Each delivery's samples are spread back from its arrival at the nominal rate, and pushed
    after the samples already placed when they would fold back among them (a catch-up after a
    stall spans the stalled time). Device clocks are not used: a fast delivery after slow ones
    lowers a device clock's apparent offset at once and folded the timeline back."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.newest = -math.inf  # the newest sample's time (s)
        self.interval = 0.0  # typical time between deliveries (s, moving average)
        self._last_arrival = math.nan

    def judged_at(self, now: float) -> float:
        """The time (s) to judge the window ending at, asked at host time ``now``: just after
        the newest sample while deliveries keep coming (a batched sensor's newest samples are
        on their way: judged at ``now`` its window would look short of samples); ``now`` less
        the grace of 2.5 delivery intervals (≥ 0.25 s) once they stop, so a dropout shows."""
        grace = max(0.25, 2.5 * self.interval)
        if now - self.newest <= grace:
            return self.newest + (1.0 / self.rate if self.rate > 0 else 0.0)
        return now - grace

    def of(self, t_arrival: np.ndarray) -> np.ndarray:
        """Host times (n,) s of one delivery's samples from their arrival times (n,) s."""
        ta = np.asarray(t_arrival, dtype=np.float64)
        n = ta.size
        if n == 0:
            return ta
        step = 1.0 / self.rate if self.rate > 0 else 0.0
        t = np.minimum(ta, ta[-1] - (n - 1 - np.arange(n)) * step) if step else ta
        overlap = self.newest + step - float(t[0])
        if overlap > 0:
            t = t + overlap
        last = float(ta[-1])
        if math.isfinite(self._last_arrival) and last > self._last_arrival:
            gap = min(last - self._last_arrival, 5.0)
            self.interval = gap if self.interval == 0.0 else 0.9 * self.interval + 0.1 * gap
        self._last_arrival = last
        self.newest = max(self.newest, float(t[-1]))
        return t


def verdict_json(v: Verdict, now: float, bad_since: float | None = None, spell_reason: str = "") -> str:
    """A verdict as stored in the ``quality`` hash (JSON); during a bad spell also its start
    (``bad_since``, host s) and the reason that held longest so far (``spell_reason``)."""
    d: dict[str, Any] = {"state": v.state, "score": round(v.score, 3), "reason": v.reason, "detail": v.detail,
                         "channel": v.channel, "time": now}  # fmt: skip
    if bad_since is not None:
        d |= {"bad_since": bad_since, "spell_reason": spell_reason or v.reason}
    return json.dumps(d)


#: the channels of a sensor's ``Anomaly`` stream (one sample per assessment)
ANOMALY_CHANNELS = ("score", "state", "reason", "channel")
#: ``state`` channel codes; ``reason`` is 1 + the index in :data:`REASONS` (0: none); ``channel``
#: 1-based (0: the sensor as a whole)
STATE_CODES = {"learning": -1.0, "good": 0.0, "suspect": 1.0, "bad": 2.0}
ANOMALY_ATTRIBUTE = "anomaly"
#: verdicts per second of a scored sensor: the rate of its ``Anomaly`` stream (Hz)
ANOMALY_RATE_HZ = 4.0


def anomaly_sensor_id(sensor_id: str) -> str:
    """The id of the ``Anomaly`` stream of ``sensor_id`` (its stream key holds the verdicts):
    ``<id>-anomaly``, a long id shortened with a hash of it (ids have at most 64 characters)."""
    if len(sensor_id) <= 64 - len("-anomaly"):
        return f"{sensor_id}-anomaly"
    return f"{sensor_id[:47]}-{hashlib.sha1(sensor_id.encode()).hexdigest()[:8]}-anomaly"


def anomaly_info(info: SensorInfo) -> SensorInfo:
    """The description of the ``Anomaly`` stream of the sensor ``info`` describes: the same
    device and node, host-clock samples at :data:`ANOMALY_RATE_HZ`, channels :data:`ANOMALY_CHANNELS`."""
    word = info.extra.get("stream_word") or NAME_WORDS.get(info.attribute, content_type(info.attribute))
    codes = {"state": STATE_CODES, "reason": {"none": 0} | {r: i + 1 for i, r in enumerate(REASONS)}}
    return SensorInfo(anomaly_sensor_id(info.sensor_id), ANOMALY_ATTRIBUTE, info.device_id, info.device_name,
                      "quality", info.uri, ANOMALY_CHANNELS, ("", "", "", ""), "float32", ANOMALY_RATE_HZ,
                      node_id=info.node_id, extra={"anomaly_of": info.sensor_id, "stream_word": f"{word} Anomaly",
                             "codes": codes})  # fmt: skip


def anomaly_row(v: Verdict) -> np.ndarray:
    """One ``Anomaly`` sample of a verdict, shape (4,) float32 (see :data:`ANOMALY_CHANNELS`)."""
    reason = REASONS.index(v.reason) + 1 if v.reason in REASONS else 0
    return np.array([v.score, STATE_CODES.get(v.state, -1.0), reason, v.channel + 1], dtype=np.float32)


def parse_quality(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The ``quality`` hash as sensor → verdict dict (malformed entries left out)."""
    out: dict[str, dict[str, Any]] = {}
    for k, val in raw.items():
        try:
            sid = k.decode() if isinstance(k, bytes) else str(k)
            d = json.loads(val)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(d, dict) and d.get("state") in ("good", "suspect", "bad", "learning"):
            out[sid] = d
    return out


def quality_text(q: Mapping[str, Any]) -> str:
    """``bad: flat (channel 3), score 1.00`` from a stored verdict."""
    state = str(q.get("state", "?"))
    if state == "learning":
        return "learning"
    detail = str(q.get("detail") or q.get("reason") or "")
    score = q.get("score")
    sc = f", score {float(score):.2f}" if isinstance(score, int | float) else ""
    return f"{state}: {detail}{sc}" if detail and state != "good" else f"{state}{sc}"


def quality_spans(times: np.ndarray, values: np.ndarray) -> list[tuple[float, float, int, int, int]]:
    """The suspect and bad spells of an ``Anomaly`` stream: times (n,) s and values (n, 4) in
    :data:`ANOMALY_CHANNELS` order → (start s, end s, state code 1 or 2, reason code, channel
    code) per run of one state; a run ends at the next verdict's time (at its last own one for
    the stream's last)."""
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0 or v.ndim != 2 or v.shape[1] < len(ANOMALY_CHANNELS):
        return []
    state = np.where(np.isfinite(v[:, 1]), v[:, 1], -1.0).astype(np.int64)
    state[state < 1] = 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], state, [0]])))
    spans = []
    for a, b in itertools.pairwise(edges):
        if state[a] == 0:
            continue
        reasons, counts = np.unique(v[a:b, 2], return_counts=True)
        end = float(t[b]) if b < t.size else float(t[b - 1])
        spans.append((float(t[a]), end, int(state[a]), int(reasons[np.argmax(counts)]), int(v[a, 3])))
    return spans
