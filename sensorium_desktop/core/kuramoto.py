"""Kuramoto order parameter for breathing and HRV synchrony between people.

Two phase estimators:

- :func:`minmax_phase` — Sensocto's: ``norm = clamp((cur - min) / range, 0, 1)``,
  ``theta = acos(1 - 2 norm)``, reflected to ``2 pi - theta`` when the value is falling
  (lower than 5 samples ago); sensors whose range is < 2 units get no phase.
- :func:`hilbert_phase` — ours: resample to a uniform grid, band-pass (zero-phase
  Butterworth, breathing 0.1–0.5 Hz by default) and take the angle of the analytic signal
  (FFT Hilbert transform). Robust to amplitude drift and to the value's offset.

``R = |mean(exp(i theta))|`` over sensors with a phase (>= 2 needed), smoothed
``s = 0.85 s_prev + 0.15 R``, reported as 0–100 like Sensocto.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

BREATHING_BUFFER = 50
HRV_BUFFER = 20
BREATHING_MIN = 15
HRV_MIN = 8
SMOOTHING = 0.15
MIN_RANGE = 2.0
BREATHING_BAND = (0.1, 0.5)  # Hz


def minmax_phase(values: np.ndarray) -> float | None:
    """Sensocto's phase of the newest value from a buffer (oldest first), radians."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 6:
        return None
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < MIN_RANGE:
        return None
    norm = min(max((v[-1] - lo) / (hi - lo), 0.0), 1.0)
    theta = math.acos(1.0 - 2.0 * norm)
    if v[-1] < v[-6]:
        theta = 2.0 * math.pi - theta
    return theta


def analytic_phase(x: np.ndarray) -> np.ndarray:
    """Instantaneous phase (radians) of a real signal: the angle of its analytic signal
    (``scipy.signal.hilbert`` of the mean-removed signal)."""
    x = np.asarray(x, dtype=np.float64)
    return np.angle(signal.hilbert(x - x.mean()))


def hilbert_phase(
    t: np.ndarray, values: np.ndarray, band: tuple[float, float] = BREATHING_BAND, fs: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Band-passed analytic phase on a uniform grid: (grid times s, phase radians).

    ``t`` (s, increasing) and ``values`` are one sensor's samples; ``fs`` is the grid rate.
    Needs at least two periods of the band's low edge; returns empty arrays otherwise.
    """
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.size < 4 or t[-1] - t[0] < 2.0 / band[0]:
        return np.empty(0), np.empty(0)
    grid = np.arange(t[0], t[-1], 1.0 / fs)
    x = np.interp(grid, t, v)
    sos = signal.butter(2, band, btype="bandpass", fs=fs, output="sos")
    y = signal.sosfiltfilt(sos, x)
    return grid, analytic_phase(y)


def order_parameter(phases: np.ndarray) -> float:
    """Kuramoto R in [0, 1] of phases (radians) of >= 2 oscillators; NaN otherwise."""
    p = np.asarray(phases, dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size < 2:
        return math.nan
    return float(np.abs(np.mean(np.exp(1j * p))))


def order_parameter_series(phases: np.ndarray) -> np.ndarray:
    """R(t) for phases of shape (sensors, time); NaN where fewer than 2 sensors have a phase."""
    p = np.asarray(phases, dtype=np.float64)
    ok = np.isfinite(p)
    z = np.where(ok, np.exp(1j * np.where(ok, p, 0.0)), 0.0)
    count = ok.sum(axis=0)
    r = np.abs(z.sum(axis=0)) / np.maximum(count, 1)
    return np.where(count >= 2, r, np.nan)


class SyncMeter:
    """Smoothed synchrony (0–100) from a stream of per-sensor phase sets, like Sensocto."""

    def __init__(self, alpha: float = SMOOTHING) -> None:
        self.alpha = alpha
        self.value = math.nan

    def update(self, phases: np.ndarray) -> float:
        r = order_parameter(phases)
        if math.isnan(r):
            return self.value
        self.value = r if math.isnan(self.value) else (1 - self.alpha) * self.value + self.alpha * r
        return self.value

    @property
    def percent(self) -> float:
        return self.value * 100.0
