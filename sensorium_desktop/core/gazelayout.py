"""Which channels of a gaze stream hold where the eye looks, and how to make them ours.

Our gaze convention: ``x``, ``y`` normalized to the scene image or the screen, origin at the
**top left**, y down, plus a ``confidence`` in [0, 1]. Eye trackers reaching us through LSL
(or an XDF another recorder wrote) label their channels their own way; :func:`gaze_layout`
recognises the conventions below from the channel labels (case-insensitive), units, stream
name and ``desc`` text, and :meth:`GazeLayout.normalize` turns samples into ours. The data
stay as the tracker sent them; the views (heatmap, review) apply the layout.

Recognised (sources in docs/gaze-conventions.md):

- ``sensorium``: ``x``, ``y``, ``confidence`` first (ours: simulated lab, ``pupil:``).
- ``pupil-core-lsl``: Pupil Capture's LSL relay (labstreaminglayer/App-PupilLabs): type
  ``Gaze``, ``confidence``, ``norm_pos_x``, ``norm_pos_y`` normalized with Pupil's origin at
  the **bottom left** (flipped).
- ``tobii-pro``: the Tobii Pro SDK's gaze data fields as channel labels (Tobii Pro Lab, the
  TobiiPro LSL app): ``left_``/``right_gaze_point_on_display_area_x``/``_y``, normalized to the
  display area, top-left; the two eyes averaged (NaN-aware), validity as confidence.
- ``pupil-companion``: Pupil Labs' LSL relay for Neon / Invisible and Neon Companion's LSL
  output: ``x``, ``y`` in **pixels** of the scene camera; its size from ``desc`` (``width``/
  ``height`` or ``resolution``) or, by stream name, Neon 1600 × 1200, Invisible 1088 × 1080.
- ``pixels``: any other ``x``/``y`` pair — labels ``gaze_x``/``gaze_y``, ``gazex``/``gazey``,
  ``screenx``/``screeny``, ``por_x``/``por_y`` (iMotions and others) — in pixels with the
  screen size in ``desc``, or already normalized (unit ``normalized``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Scene camera sizes (px) of Pupil Labs' wearable trackers, by a word of the stream name
SCENE_SIZES = {"neon": (1600.0, 1200.0), "invisible": (1088.0, 1080.0)}
PAIRS = (("gaze_x", "gaze_y"), ("gazex", "gazey"), ("screenx", "screeny"), ("por_x", "por_y"),
         ("gaze_point_x", "gaze_point_y"), ("x", "y"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class GazeLayout:
    """Columns of x and y (several: averaged, NaN-aware), of a confidence (or -1), the size
    (px) they are divided by (0: already normalized) and whether y points up."""

    convention: str
    x: tuple[int, ...]
    y: tuple[int, ...]
    confidence: tuple[int, ...] = ()
    width: float = 0.0
    height: float = 0.0
    flip_y: bool = False

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """``(n, 3)``: x, y (normalized, top-left origin) and confidence (1 when the stream
        has none) of ``(n, c)`` samples."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1:
            v = v.reshape(1, -1)
        with warnings.catch_warnings():  # all-NaN rows (an eye lost) stay NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            x = np.nanmean(v[:, list(self.x)], axis=1)
            y = np.nanmean(v[:, list(self.y)], axis=1)
            conf = np.nanmean(v[:, list(self.confidence)], axis=1) if self.confidence else np.ones(len(v))
        if self.width > 0 and self.height > 0:
            x, y = x / self.width, y / self.height
        if self.flip_y:
            y = 1.0 - y
        return np.column_stack([x, y, np.nan_to_num(conf, nan=0.0)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GazeLayout:
        return cls(str(d["convention"]), tuple(d["x"]), tuple(d["y"]), tuple(d.get("confidence", ())),
                   float(d.get("width", 0.0)), float(d.get("height", 0.0)), bool(d.get("flip_y", False)))  # fmt: skip


def _size_from_desc(desc: str) -> tuple[float, float] | None:
    """A screen / scene size (px) written in a stream's ``desc`` XML, if any."""
    w = re.search(r"<(?:width|screen_width|resolution_x|scene_width)>\s*([0-9.]+)\s*<", desc, re.I)
    h = re.search(r"<(?:height|screen_height|resolution_y|scene_height)>\s*([0-9.]+)\s*<", desc, re.I)
    if w and h and float(w.group(1)) > 0 and float(h.group(1)) > 0:
        return float(w.group(1)), float(h.group(1))
    res = re.search(r"<resolution>\s*([0-9]+)\s*[x×, ]\s*([0-9]+)\s*<", desc, re.I)
    if res:
        return float(res.group(1)), float(res.group(2))
    return None


def gaze_layout(labels: tuple[str, ...] | list[str], units: tuple[str, ...] | list[str] = (), name: str = "",
                desc: str = "") -> GazeLayout | None:  # fmt: skip
    """The layout of a gaze stream's channels (see module docstring), None when not recognised."""
    low = [str(label).strip().lower() for label in labels]
    unit = [str(u).strip().lower() for u in units] + [""] * (len(low) - len(units))
    idx = {label: i for i, label in enumerate(low)}
    if low[:3] == ["x", "y", "confidence"] and unit[0] in ("normalized", ""):
        return GazeLayout("sensorium", (0,), (1,), (2,))
    if "norm_pos_x" in idx and "norm_pos_y" in idx:
        conf: tuple[int, ...] = (idx["confidence"],) if "confidence" in idx else ()
        return GazeLayout("pupil-core-lsl", (idx["norm_pos_x"],), (idx["norm_pos_y"],), conf, flip_y=True)
    sides = [s for s in ("left", "right") if f"{s}_gaze_point_on_display_area_x" in idx]
    if sides:
        xs = tuple(idx[f"{s}_gaze_point_on_display_area_x"] for s in sides)
        ys = tuple(idx[k] for k in (f"{s}_gaze_point_on_display_area_y" for s in sides) if k in idx)
        valid = tuple(idx[f"{s}_gaze_point_validity"] for s in sides if f"{s}_gaze_point_validity" in idx)
        if len(ys) == len(xs):
            return GazeLayout("tobii-pro", xs, ys, valid)
    for lx, ly in PAIRS:
        if lx not in idx or ly not in idx:
            continue
        i, j = idx[lx], idx[ly]
        conf = tuple(idx[c] for c in ("confidence",) if c in idx)
        if unit[i] in ("normalized", "norm"):
            return GazeLayout("pixels", (i,), (j,), conf)
        size = _size_from_desc(desc)
        word = next((w for w in SCENE_SIZES if w in name.lower() or w in desc.lower()), None)
        if size is None and word is not None and (lx, ly) == ("x", "y"):
            size = SCENE_SIZES[word]
        if size is None:
            return None
        convention = "pupil-companion" if word is not None and (lx, ly) == ("x", "y") else "pixels"
        return GazeLayout(convention, (i,), (j,), conf, size[0], size[1])
    return None


def layout_of(labels: tuple[str, ...] | list[str], units: tuple[str, ...] | list[str] = (), name: str = "",
              extra: dict[str, Any] | None = None) -> GazeLayout | None:  # fmt: skip
    """The layout a sensor carries (``extra["gaze_layout"]``, set when its stream was opened),
    else the one its channel labels, units, name and LSL ``desc`` (``extra["lsl_desc"]``) say."""
    extra = extra or {}
    stored = extra.get("gaze_layout")
    if isinstance(stored, dict):
        try:
            return GazeLayout.from_dict(stored)
        except (KeyError, TypeError, ValueError):
            pass
    return gaze_layout(labels, units, name, str(extra.get("lsl_desc", "")))
