"""Gaze heatmap and fixation from eye-tracker streams (pure numpy; the view draws it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

FIXATION_WINDOW_S = 0.15
FIXATION_DISPERSION = 0.04  # normalized units (x range + y range), I-DT rule
MIN_CONFIDENCE = 0.2
#: samples a fixation keeps (100 s at 200 Hz; a longer one is reported as that long)
FIXATION_SAMPLES_MAX = 20_000


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
        # the samples of the current fixation candidate plus the new ones; a saccade anywhere in
        # a chunk ends it, however many samples one redraw brings (batched delivery)
        self._recent_t = np.concatenate([self._recent_t, t[ok]])[-FIXATION_SAMPLES_MAX:]
        self._recent_xy = np.concatenate([self._recent_xy, np.column_stack([x[ok], y[ok]])])[-FIXATION_SAMPLES_MAX:]
        self._update_fixation(t_end)

    def _update_fixation(self, now: float) -> None:
        """I-DT: the fixation is the longest run of latest samples whose dispersion (x range +
        y range) stays within ``FIXATION_DISPERSION``, lasting at least ``FIXATION_WINDOW_S``."""
        xy = self._recent_xy
        if xy.shape[0] == 0 or now - float(self._recent_t[-1]) > FIXATION_WINDOW_S:  # no valid gaze lately
            self._recent_t, self._recent_xy = self._recent_t[:0], xy[:0]
            self.fixation = None
            return
        rev = xy[::-1]
        spread = (np.maximum.accumulate(rev, axis=0) - np.minimum.accumulate(rev, axis=0)).sum(axis=1)[::-1]
        start = int(np.argmax(spread <= FIXATION_DISPERSION))  # spread shrinks towards the newest sample
        self._recent_t, self._recent_xy = self._recent_t[start:], xy[start:]
        xy = self._recent_xy
        if xy.shape[0] < 3 or now - float(self._recent_t[0]) < FIXATION_WINDOW_S:
            self.fixation = None
            return
        cx, cy = xy.mean(axis=0)
        self.fixation = Fixation(float(cx), float(cy), now - float(self._recent_t[0]))

    def image(self) -> np.ndarray:
        """(nx, ny) smoothed heat in [0, 1] (0 everywhere when empty)."""
        img = gaussian_filter(self.hist, self.sigma_bins, mode="constant")
        peak = float(img.max())
        return img / peak if peak > 0 else img

    def clear(self) -> None:
        self.hist[:] = 0.0
        self.t_last = -math.inf
        self.fixation = None
