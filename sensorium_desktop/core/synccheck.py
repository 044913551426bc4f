"""The sync check's arithmetic: flash schedules, event detectors, matching and verdicts.

A sync check presents N physical events (screen flashes, clicks) at known *presentation*
times and asks every sensor when it saw each one. Each detector is one small function from a
sensor's samples to *onset* times (s, the sensor's global timestamps); :func:`match_onsets`
pairs onsets with presentations and :func:`summarize` turns the latencies
(detected − presented) into the per-sensor table. Pure numpy: the recording layer feeds it
samples, video brightness or marker labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Where the flash window draws the white patch: the whole window or a corner (a photodiode's).
PATCHES = ("full", "top-left", "top-right", "bottom-left", "bottom-right")
#: A step smaller than this (in the signal's units, relative to its full range) is no flash.
MIN_CONTRAST = 1e-9
#: Levels between which a step is searched: this fraction of the range above the dark level
#: arms the detector again (falling), the other fires it (rising); the onset is at the middle.
HYSTERESIS_LOW, HYSTERESIS_HIGH = 0.3, 0.7
#: The step must exceed this many robust noise SDs of the dark level to count as a flash.
MIN_SNR = 6.0


@dataclass(frozen=True, slots=True)
class Tolerance:
    """The lab's tolerance for a synchronized sensor: |mean latency| ≤ ``mean_ms`` and its
    SD ≤ ``sd_ms`` (ms); every presentation must be detected unless ``allow_missed``."""

    mean_ms: float = 2.0
    sd_ms: float = 1.0
    allow_missed: int = 0


def flash_schedule(n: int, interval_s: float, jitter: float = 0.25, seed: int | None = None) -> np.ndarray:
    """Onsets (s from the first) of ``n`` flashes about ``interval_s`` apart, each gap drawn
    uniformly within ±``jitter`` of it (so nothing periodic can lock onto them); shape (n,)."""
    if n < 1 or not interval_s > 0 or not 0 <= jitter < 1:
        raise ValueError("flash_schedule: n ≥ 1, interval > 0 s and 0 ≤ jitter < 1")
    rng = np.random.default_rng(seed)
    gaps = interval_s * (1.0 + rng.uniform(-jitter, jitter, n - 1))
    return np.concatenate([[0.0], np.cumsum(gaps)])


def _levels(values: np.ndarray) -> tuple[float, float, float]:
    """(dark level, bright level, noise SD of the dark part) of a two-level signal."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return math.nan, math.nan, math.nan
    dark, bright = (float(v) for v in np.percentile(finite, [5.0, 99.5]))
    lower = finite[finite <= dark + 0.5 * (bright - dark)]
    noise = 1.4826 * float(np.median(np.abs(lower - np.median(lower)))) if lower.size else 0.0
    return dark, bright, noise


def detect_steps(times: np.ndarray, values: np.ndarray, interpolate: bool) -> np.ndarray:
    """Onsets (s) of the rising steps of a two-level signal (light on a photodiode, a camera
    region's brightness), with hysteresis between 30 % and 70 % of its range; shape (k,).

    ``interpolate``: the onset is where the signal crosses 50 % of the range, interpolated
    linearly between the two samples around it (an analog channel sampled faster than its
    rise); otherwise it is the time of the first sample above 50 % (a camera frame: its
    capture time — a frame cannot say when within its period the light came).
    A signal whose step does not stand :data:`MIN_SNR` noise SDs above its dark level has no
    onsets."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64).reshape(t.size, -1)
    v = v[:, 0] if v.shape[1] == 1 else np.nanmean(v, axis=1)
    if t.size < 2:
        return np.empty(0)
    dark, bright, noise = _levels(v)
    span = bright - dark
    if not math.isfinite(span) or span <= max(MIN_CONTRAST, MIN_SNR * noise):
        return np.empty(0)
    low, mid, high = dark + HYSTERESIS_LOW * span, dark + 0.5 * span, dark + HYSTERESIS_HIGH * span
    state = np.where(v >= high, 1, np.where(v <= low, -1, 0))
    decided = np.flatnonzero(state != 0)
    if decided.size == 0:
        return np.empty(0)
    # the hysteresis state holds between decisive samples: a rising step is a decisive +1 whose
    # previous decisive sample was −1
    rises = decided[1:][(state[decided[1:]] == 1) & (state[decided[:-1]] == -1)]
    starts = decided[:-1][(state[decided[1:]] == 1) & (state[decided[:-1]] == -1)]
    onsets = np.empty(rises.size)
    for j, (a, b) in enumerate(zip(starts, rises, strict=True)):
        seg = v[a : b + 1]
        k = a + int(np.argmax(seg >= mid))  # first sample at or above the middle
        if not interpolate or k == 0:
            onsets[j] = t[k]
            continue
        v0, v1 = v[k - 1], v[k]
        frac = (mid - v0) / (v1 - v0) if v1 != v0 else 1.0
        onsets[j] = t[k - 1] + frac * (t[k] - t[k - 1])
    return onsets


def detect_clicks(times: np.ndarray, samples: np.ndarray, rate: float) -> np.ndarray:
    """Onsets (s) of clicks in an audio stream (``rate`` Hz): where the absolute amplitude
    first exceeds 30 % of the click's peak after at least 50 ms below it, interpolated between
    samples; the peak must stand :data:`MIN_SNR` noise SDs above the background."""
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float64).reshape(t.size, -1)
    x = np.abs(x - np.median(x, axis=0)).max(axis=1)
    if t.size < 4 or not rate > 0:
        return np.empty(0)
    noise = 1.4826 * float(np.median(x))
    peak = float(np.percentile(x, 99.99))
    if peak <= max(MIN_CONTRAST, MIN_SNR * noise):
        return np.empty(0)
    level = max(0.3 * peak, MIN_SNR * noise)
    above = np.flatnonzero(x >= level)
    if above.size == 0:
        return np.empty(0)
    quiet = max(1, round(0.05 * rate))
    first = above[np.concatenate([[True], np.diff(above) > quiet])]
    onsets = t[first].copy()
    inner = first > 0
    k = first[inner]
    frac = (level - x[k - 1]) / np.maximum(x[k] - x[k - 1], MIN_CONTRAST)
    onsets[inner] = t[k - 1] + np.clip(frac, 0.0, 1.0) * (t[k] - t[k - 1])
    return onsets


def detect_labels(times: np.ndarray, labels: np.ndarray, label: str) -> np.ndarray:
    """Times (s) of the markers whose label is ``label`` (or starts with ``label`` followed by
    a space or colon, e.g. ``flash 3``); shape (k,)."""
    t = np.asarray(times, dtype=np.float64)
    text = np.asarray(labels, dtype=object).reshape(t.size, -1)[:, 0].astype(str) if t.size else np.empty(0, str)
    hit = np.array([s == label or s.startswith((label + " ", label + ":")) for s in text], dtype=bool)
    return t[hit] if t.size else np.empty(0)


def match_onsets(presented: np.ndarray, onsets: np.ndarray, before_s: float = 0.3, after_s: float = 0.6) -> np.ndarray:
    """Latency (s) of each presentation: its first onset within ``[p − before_s, p + after_s)``,
    each window cut at 40 % of the gap to the previous and 60 % of the gap to the next
    presentation so that no onset serves two; NaN where none was seen. Shape (n,)."""
    p = np.asarray(presented, dtype=np.float64)
    o = np.sort(np.asarray(onsets, dtype=np.float64))
    if p.size == 0:
        return np.empty(0)
    gaps = np.diff(p)
    lo = p - np.minimum(before_s, 0.4 * np.concatenate([[np.inf], gaps]))
    hi = p + np.minimum(after_s, 0.6 * np.concatenate([gaps, [np.inf]]))
    first = np.searchsorted(o, lo, side="left")
    found = (first < o.size) & (o[np.minimum(first, max(o.size - 1, 0))] < hi) if o.size else np.zeros(p.size, bool)
    out = np.full(p.size, np.nan)
    out[found] = o[first[found]] - p[found]
    return out


def summarize(latencies: np.ndarray, claimed_sigma_s: float, tolerance: Tolerance) -> dict[str, object]:
    """The table row of one sensor: ``detected``, ``missed``, ``mean_ms``, ``sd_ms``,
    ``min_ms``, ``max_ms`` (None without detections; SD None with one), ``claimed_sigma_ms``
    and ``verdict`` ("pass", "fail" or "not detected") with its ``reasons``."""
    lat = np.asarray(latencies, dtype=np.float64)
    seen = lat[np.isfinite(lat)] * 1e3
    n = int(lat.size)
    row: dict[str, object] = {
        "presented": n,
        "detected": int(seen.size),
        "missed": n - int(seen.size),
        "mean_ms": None,
        "sd_ms": None,
        "min_ms": None,
        "max_ms": None,
        "claimed_sigma_ms": round(claimed_sigma_s * 1e3, 6) if math.isfinite(claimed_sigma_s) else None,
    }
    if seen.size == 0:
        row.update(verdict="not detected", reasons=[f"0 of {n} detected"])
        return row
    mean = float(np.mean(seen))
    sd = float(np.std(seen, ddof=1)) if seen.size > 1 else None
    row.update(mean_ms=round(mean, 4), sd_ms=None if sd is None else round(sd, 4),
               min_ms=round(float(seen.min()), 4), max_ms=round(float(seen.max()), 4))  # fmt: skip
    reasons = []
    if abs(mean) > tolerance.mean_ms:
        reasons.append(f"|mean| {abs(mean):.2f} ms > {tolerance.mean_ms:g} ms")
    if sd is not None and sd > tolerance.sd_ms:
        reasons.append(f"SD {sd:.2f} ms > {tolerance.sd_ms:g} ms")
    if n - seen.size > tolerance.allow_missed:
        reasons.append(f"{n - seen.size} of {n} missed")
    row.update(verdict="fail" if reasons else "pass", reasons=reasons)
    return row
