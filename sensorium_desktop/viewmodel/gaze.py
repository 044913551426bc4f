"""Gaze heatmap and fixation from eye-tracker streams (pure numpy; the view draws it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

FIXATION_WINDOW_S = 0.15
FIXATION_DISPERSION = 0.04  # normalized units (x range + y range), I-DT rule
MIN_CONFIDENCE = 0.2


@dataclass(slots=True)
class Fixation:
    x: float
    y: float
    duration: float  # seconds the dispersion has stayed under the threshold


class GazeHeatmap:
    """Exponentially decaying, confidence-weighted 2-D histogram of normalized gaze.

    ``bins`` (nx, ny) over [0, 1]²; a sample's weight halves every ``half_life_s`` seconds;
    the image is smoothed by a Gaussian of ``sigma_bins``. Samples below ``MIN_CONFIDENCE``
    are ignored (blinks, lost pupil).
    """

    def __init__(self, bins: tuple[int, int] = (160, 100), half_life_s: float = 4.0, sigma_bins: float = 2.5) -> None:
        self.bins = bins
        self.half_life_s = half_life_s
        self.sigma_bins = sigma_bins
        self.hist = np.zeros(bins, dtype=np.float64)
        self.t_last = -math.inf
        self._recent_t = np.empty(0)
        self._recent_xy = np.empty((0, 2))
        self.fixation: Fixation | None = None
        self._fix_start = math.nan

    def add(self, t: np.ndarray, x: np.ndarray, y: np.ndarray, confidence: np.ndarray) -> None:
        """Add samples (times in s, x/y in [0, 1], confidence in [0, 1]); vectorized."""
        if t.size == 0:
            return
        t_end = float(t[-1])
        if math.isfinite(self.t_last):
            self.hist *= 0.5 ** (max(0.0, t_end - self.t_last) / self.half_life_s)
        ok = (confidence >= MIN_CONFIDENCE) & np.isfinite(x) & np.isfinite(y)
        # each sample's weight decays from its own time to t_end
        w = confidence[ok] * 0.5 ** ((t_end - t[ok]) / self.half_life_s)
        h, _, _ = np.histogram2d(x[ok], y[ok], bins=self.bins, range=((0, 1), (0, 1)), weights=w)
        self.hist += h
        self.t_last = t_end
        keep = self._recent_t > t_end - FIXATION_WINDOW_S if self._recent_t.size else np.zeros(0, bool)
        self._recent_t = np.concatenate([self._recent_t[keep], t[ok]])
        self._recent_xy = np.concatenate([self._recent_xy[keep], np.column_stack([x[ok], y[ok]])])
        k = self._recent_t > t_end - FIXATION_WINDOW_S
        self._recent_t, self._recent_xy = self._recent_t[k], self._recent_xy[k]
        self._update_fixation(t_end)

    def _update_fixation(self, now: float) -> None:
        xy = self._recent_xy
        if xy.shape[0] < 3:
            self.fixation = None
            self._fix_start = math.nan
            return
        dispersion = float(np.ptp(xy[:, 0]) + np.ptp(xy[:, 1]))
        if dispersion > FIXATION_DISPERSION:
            self.fixation = None
            self._fix_start = math.nan
            return
        if not math.isfinite(self._fix_start):
            self._fix_start = float(self._recent_t[0])
        cx, cy = xy.mean(axis=0)
        self.fixation = Fixation(float(cx), float(cy), now - self._fix_start)

    def image(self) -> np.ndarray:
        """(nx, ny) smoothed heat in [0, 1] (0 everywhere when empty)."""
        img = gaussian_filter(self.hist, self.sigma_bins, mode="constant")
        peak = float(img.max())
        return img / peak if peak > 0 else img

    def clear(self) -> None:
        self.hist[:] = 0.0
        self.t_last = -math.inf
        self.fixation = None
