"""Clock domains: every sensor is mapped to host time through the clock it is stamped with.

A *clock domain* is one clock that stamps samples: a device's own oscillator (shared by all
of the device's attributes — Polar ECG and accelerometer, the eye tracker's gaze and blinks,
the columns of one serial instrument, a camera's frames), the LSL clock of the node's host
(every LSL stream a node reads is stamped on it, after ``time_correction``), or — for a
sensor without a clock — its own arrival times. :class:`ClockDomains` keeps one clock per
domain; :class:`~.timemap.TimeMap` (the one place time is mapped) reads them:

- a *fitted* domain keeps one :class:`~sensorium_desktop.core.clock.ClockModel` fed by the
  (t_local, t_arrival) pairs of all of its sensors (interleaved batches of several sensors
  are late deliveries to it, not resets);
- a *measured* domain carries its mapping in the sensor description
  (``SensorInfo.clock_offset``: host = t_local + offset, measured by reading both clocks
  back to back and keeping the tightest pairs): nothing is fitted from arrival jitter, so
  equal stamps map to equal times and sample spacing is kept exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .clock import ClockModel, RefinedClock, bin_minima
from .samples import SensorInfo


def format_offset(offset: float) -> str:
    """An offset to the host clock (s) as people read it: in ms when the two clocks share
    an epoch (|offset| < 10 s); otherwise the host wall-clock time of day at which the
    domain's clock read 0 (a device counting from its own power-on, the LSL clock from boot;
    :func:`offset_origin` gives the date too)."""
    if not math.isfinite(offset):
        return "—"
    if abs(offset) < 10.0:
        return f"{offset * 1e3:+.3f} ms"
    whole = math.floor(offset)
    stamp = time.strftime("%H:%M:%S", time.localtime(whole))
    return f"t=0 at {stamp}.{int((offset - whole) * 1e3):03d}"


def offset_origin(offset: float) -> str:
    """The host date and time (ISO, local) at which a clock with this offset (s) read 0."""
    if not math.isfinite(offset):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(math.floor(offset))) + f".{int(offset % 1 * 1e6):06d}"


def offset_trend(t: np.ndarray, v: np.ndarray, sigma: np.ndarray | None = None) -> tuple[float, float, float]:
    """A clock offset measured repeatedly, as ``(t_ref, value at t_ref, slope)``: the
    least-squares line through ``v`` (s) at times ``t`` (s, sorted; ``t_ref`` the newest),
    weighted by ``1/sigma`` (s) when given, whose slope counts only beyond 3 standard errors
    (the clocks drift apart measurably); otherwise the (weighted) mean and slope 0. Fewer
    than 4 points: their median."""
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    t_ref = float(t[-1])
    if t.size < 4 or np.ptp(t) <= 0:
        return t_ref, float(np.median(v)), 0.0
    if sigma is None:
        coef, cov = np.polyfit(t - t_ref, v, 1, cov=True)
        mean = float(np.mean(v))
    else:
        coef, cov = np.polyfit(t - t_ref, v, 1, w=1.0 / sigma, cov="unscaled")
        mean = float(np.sum(v / sigma**2) / np.sum(1.0 / sigma**2))
    if abs(coef[0]) > 3.0 * math.sqrt(max(cov[0, 0], 0.0)):
        return t_ref, float(coef[1]), float(coef[0])
    return t_ref, mean, 0.0


#: Domain kinds.
FITTED = "fitted"
MEASURED = "measured"
ARRIVAL = "arrival"


def domain_id(info: SensorInfo) -> str:
    """The clock domain of a sensor: ``<node>/<domain>`` (see the module docstring)."""
    node = info.node_id or "-"
    if info.clock_domain:
        return f"{node}/{info.clock_domain}"
    if not info.has_clock:
        return f"{node}/arrival:{info.sensor_id}"
    return f"{node}/device:{info.device_id}"


def clock_run(info: SensorInfo) -> float:
    """When the node that opened the sensor's device started (epoch s; 0 unknown): samples of
    one run share one device clock, a new run's may start again from zero."""
    try:
        return float(info.extra.get("clock_run", 0.0) or 0.0)
    except (TypeError, ValueError):
        return 0.0


def domain_kind(info: SensorInfo) -> str:
    """:data:`MEASURED` when the description carries a measured offset, :data:`ARRIVAL`
    without a device clock, else :data:`FITTED`."""
    if info.clock_offset is not None and math.isfinite(info.clock_offset):
        return MEASURED
    return FITTED if info.has_clock else ARRIVAL


@dataclass
class MeasuredClock:
    """A clock whose mapping to host time was measured directly: ``host = t + offset``
    (s), with the measurement's 1-sigma ``sigma`` (s). Same reading interface as
    :class:`ClockModel` (offset, drift, uncertainty, latency, state, update, to_host)."""

    offset: float
    sigma: float = 0.0
    n: int = 0
    t_local_last: float = math.nan
    t_arrival_last: float = math.nan
    latency_min: float = math.inf  # smallest arrival - host time seen (s): the transport latency

    ready = True
    epoch = 0
    resets = 0
    glitches = 0
    late = 0
    drift = 0.0
    beta = 0.0
    fixed_latency = 0.0

    @property
    def uncertainty(self) -> float:
        return self.sigma

    @property
    def alpha(self) -> float:
        return self.offset

    @property
    def latency(self) -> float:
        """Smallest arrival delay after the sample's time seen (s): the transport latency."""
        return self.latency_min if math.isfinite(self.latency_min) else math.nan

    def update(self, t_local: np.ndarray, t_arrival: np.ndarray, packets: np.ndarray | None = None) -> None:
        """Count the samples and keep the smallest arrival latency (nothing is fitted)."""
        x = np.asarray(t_local, dtype=np.float64)
        y = np.asarray(t_arrival, dtype=np.float64)
        if x.size == 0:
            return
        self.n += x.size
        self.t_local_last = float(x[-1])
        self.t_arrival_last = float(y[-1])
        self.latency_min = min(self.latency_min, float(np.min(y - (x + self.offset))))

    @classmethod
    def of(cls, info: SensorInfo) -> MeasuredClock:
        """The measured clock a sensor description carries (``clock_offset``, ``clock_sigma``)."""
        return cls(float(info.clock_offset or 0.0), float(info.clock_sigma))

    def to_host(self, t_local: np.ndarray | float) -> np.ndarray:
        return np.asarray(t_local, dtype=np.float64) + self.offset

    def state(self) -> dict[str, Any]:
        return {
            "offset_mean": self.offset, "offset_variance": self.sigma**2, "drift": 0.0, "uncertainty": self.sigma,
            "alpha": self.offset, "beta": 0.0, "x0": 0.0, "epoch": 0, "n": self.n, "resets": 0, "glitches": 0,
            "late": 0, "t_local_last": self.t_local_last, "t_arrival_last": self.t_arrival_last, "fixed_latency": 0.0,
        }  # fmt: skip


ClockLike = ClockModel | MeasuredClock


def clock_report(m: ClockLike) -> dict[str, Any]:
    """What a clock says of itself for panels and exports: kind (fitted/measured), offset
    (s), drift (ppm), sigma (s), resets, late samples, typical latency (s)."""
    return {"kind": MEASURED if isinstance(m, MeasuredClock) else FITTED, "offset": m.offset,
            "drift_ppm": m.drift * 1e6, "sigma": m.uncertainty, "resets": m.resets, "late_samples": m.late,
            "latency": m.latency}  # fmt: skip


class ClockDomains:
    """One clock per clock domain, fed by every registered sensor's (device, arrival) pairs.

    Unregistered sensor ids (the seed API's ingest) are domains of their own, fitted.
    ``clock_options`` go to every new :class:`ClockModel`.
    """

    def __init__(self, **clock_options: Any) -> None:
        self.clock_options = clock_options
        self.models: dict[str, ClockLike] = {}
        self.domain_of: dict[str, str] = {}
        self.infos: dict[str, SensorInfo] = {}
        #: per domain, samples that came after a later sample of the same sensor (a stream
        #: reordered in transport); the sensors of one device interleave in device time, which
        #: the domain's model absorbs, and that is not lateness
        self.reordered: dict[str, int] = {}
        self._last_local: dict[str, float] = {}

    def register(self, info: SensorInfo) -> str:
        """Put ``info``'s sensor in its domain (a new measured offset replaces the old one; a
        new :func:`clock_run` of a fitted domain starts its model afresh: see :meth:`restart`)."""
        dom = domain_id(info)
        old = self.infos.get(info.sensor_id)
        if old is not None and clock_run(old) != clock_run(info) and dom in self.models:
            self.restart(dom)
        self.domain_of[info.sensor_id] = dom
        self.infos[info.sensor_id] = info
        kind = domain_kind(info)
        model = self.models.get(dom)
        if kind == MEASURED:
            measured = MeasuredClock.of(info)
            if isinstance(model, MeasuredClock):
                model.offset, model.sigma = measured.offset, measured.sigma
            else:
                self.models[dom] = measured
        elif model is None:
            self.models[dom] = ClockModel(**{**self.clock_options, "fixed_latency": info.fixed_latency})
        return dom

    def restart(self, dom: str) -> None:
        """Forget what ``dom``'s clock learnt: its node (and so its devices) started again, and
        their clocks may start from zero: a fresh fit, not a reset or a wrong sigma."""
        model = self.models.get(dom)
        if isinstance(model, ClockModel):
            self.models[dom] = ClockModel(**{**self.clock_options, "fixed_latency": model.fixed_latency})
        self.reordered.pop(dom, None)
        for sid in self.sensors_of(dom):
            self._last_local.pop(sid, None)

    def domain(self, sensor_id: str) -> str:
        return self.domain_of.get(sensor_id, sensor_id)

    def model(self, sensor_id: str) -> ClockLike:
        """The clock of ``sensor_id``'s domain (created, fitted, for an unregistered id)."""
        dom = self.domain(sensor_id)
        m = self.models.get(dom)
        if m is None:
            m = self.models[dom] = ClockModel(**self.clock_options)
        return m

    def sensors_of(self, dom: str) -> list[str]:
        return [sid for sid, d in self.domain_of.items() if d == dom]

    def observe(self, sensor_id: str, t_local: np.ndarray, t_arrival: np.ndarray) -> ClockLike:
        """Feed (t_local, t_arrival) pairs (s) of one sensor, in its arrival order."""
        m = self.model(sensor_id)
        resets = m.resets
        m.update(t_local, t_arrival)
        x = np.asarray(t_local, dtype=np.float64)
        if x.size:
            previous = np.concatenate(([self._last_local.get(sensor_id, -math.inf)], x[:-1]))
            behind = int(np.count_nonzero(x < previous)) - (m.resets - resets)  # a reboot's step is a reset
            dom = self.domain(sensor_id)
            self.reordered[dom] = self.reordered.get(dom, 0) + max(behind, 0)
            self._last_local[sensor_id] = float(x[-1])
        return m

    def last_local(self, sensor_id: str) -> float | None:
        """The newest device time (s) observed of ``sensor_id`` in its current run (None: none)."""
        return self._last_local.get(sensor_id)

    def late(self, dom: str) -> int:
        """Samples of the domain's sensors delivered after a later one of the same sensor."""
        return self.reordered.get(dom, 0)

    def uncertainty(self, sensor_id: str) -> float:
        """1-sigma (s) of the domain's device → host mapping now (inf: not fitted)."""
        m = self.models.get(self.domain(sensor_id))
        return m.uncertainty if m is not None and m.ready else math.inf


#: bin minima per clock-model update when fitting a whole recording (64 = 4 s of local time)
FIT_CHUNK = 64


def fit_domain(
    pairs: list[tuple[np.ndarray, np.ndarray]], fixed_latency: float = 0.0, **clock_options: Any
) -> tuple[ClockModel, RefinedClock]:
    """Fit one fitted domain over a whole recording: ``pairs`` are each sensor's
    (t_local, t_arrival) in its arrival order; each is thinned to its bin minima, and the
    union is fed in arrival order (as live). Returns the causal model and its refinement."""
    model = ClockModel(fixed_latency=fixed_latency, **clock_options)
    xs, ys, ns = [], [], []
    for x, y in pairs:
        if x.size:
            xb, yb, nb = bin_minima(x, y, model.bin_width / 4)
            xs.append(xb)
            ys.append(yb)
            ns.append(nb)
    if not xs:
        return model, model.refine()
    x, y, n = np.concatenate(xs), np.concatenate(ys), np.concatenate(ns)
    order = np.argsort(y, kind="stable")
    x, y, n = x[order], y[order], n[order]
    for a in range(0, x.size, FIT_CHUNK):
        model.update(x[a : a + FIT_CHUNK], y[a : a + FIT_CHUNK], n[a : a + FIT_CHUNK])
    if model.resolving:  # the recording ended inside a backward step: decide with what there is
        model.flush_held()
    return model, model.refine()
