"""The one mapping of time: device → host → global.

Every timestamp the app shows, records or exports is mapped here, by a :class:`TimeMap`, in
two steps named by the clock each returns:

- **device → host** (:meth:`TimeMap.to_host`): through the sensor's clock domain
  (:mod:`.clockdomain`: a fitted :class:`~.clock.ClockModel`, a measured offset, or the
  arrival times of a sensor without a clock). *A clock not fitted yet* — the one policy,
  everywhere: a sample's host time is its **arrival time minus the sensor's fixed latency**
  (the best causal guess; the samples are re-mapped once the clock is known, by the live
  view's next batch and by every export). A sample whose arrival is not known either maps to
  NaN.
- **host → global** (:meth:`TimeMap.to_global`): ``global = host + offset(host)`` per node
  (:class:`HostOffset`: the node's Redis ``TIME`` round trips, :mod:`..bus.globalclock`). *An
  offset not known yet*: 0 (the host clock is used) and :meth:`TimeMap.host_offset` says None,
  so that callers can say so.

Live users (sync worker, live view, LSL bridge, recorder) feed it batches as they arrive;
the exporter fits a whole recording at once with :meth:`TimeMap.fit_domain` (``refined``:
non-causal, every sample with what the whole recording knows; ``causal``: each batch with what
was known when it arrived) and :meth:`TimeMap.set_host_offset_history`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .clock import ClockModel
from .clockdomain import (
    MEASURED,
    ClockDomains,
    ClockLike,
    MeasuredClock,
    clock_report,
    domain_kind,
    fit_domain,
    offset_trend,
)
from .samples import SampleBatch, SensorInfo

#: A host-offset measurement this far (s) from the line through all of them is a wall-clock step.
OFFSET_STEP_S = 2e-3
#: What :meth:`TimeMap.to_host` does for a clock not fitted yet (stated once, used everywhere).
UNFITTED_POLICY = "arrival time minus the sensor's fixed latency (NaN without an arrival time)"


@dataclass(frozen=True)
class HostOffset:
    """``global = host + offset(host)`` (s) for one node: a constant (the latest live
    estimate, ``sigma`` its 1-sigma), a line through measurements (``slope`` s/s from
    ``t_ref``), or — after a wall-clock step — the measurements interpolated (``points``)."""

    offset: float
    sigma: float = 0.0
    slope: float = 0.0
    t_ref: float = 0.0
    points: tuple[np.ndarray, np.ndarray] | None = None

    def at(self, t_host: np.ndarray | float) -> np.ndarray:
        """The offset (s) at host times ``t_host`` (s)."""
        t = np.asarray(t_host, dtype=np.float64)
        if self.points is not None:
            return np.interp(t, self.points[0], self.points[1])
        if self.slope:
            return self.offset + self.slope * (t - self.t_ref)
        return np.full_like(t, self.offset)

    @classmethod
    def from_history(cls, times: np.ndarray, offsets: np.ndarray, sigmas: np.ndarray) -> HostOffset:
        """The offset a recording measured over time (``times`` s, ``offsets`` s, 1-sigma s).

        The estimates scatter by their probes' round trips (tens of µs under load); both
        clocks are the host's, so the offset is a line unless the wall clock was stepped: a
        weighted line through them (outliers beyond 5 MAD out), or — when some lie farther
        than ``OFFSET_STEP_S`` from it — the measurements themselves, interpolated."""
        order = np.argsort(times)
        t, o, s = times[order], offsets[order], sigmas[order]
        if t.size < 3 or t[-1] - t[0] < 1.0:
            return cls(float(np.median(o)), float(np.median(s)))
        keep = np.abs(o - np.median(o)) <= max(5 * 1.4826 * float(np.median(np.abs(o - np.median(o)))), 1e-6)
        t_ref, value, slope = offset_trend(t[keep], o[keep], s[keep])
        if np.max(np.abs(o - (value + slope * (t - t_ref)))) > OFFSET_STEP_S:
            return cls(value, float(np.median(s)), points=(t, o))
        return cls(value, float(np.median(s)), slope, t_ref)


def host_to_global(offset: HostOffset | None, t_host: np.ndarray | float) -> np.ndarray:
    """Global times (s) of host times (s) through ``offset``; None (not known yet): the host
    clock itself. Every host → global step goes through here."""
    t = np.asarray(t_host, dtype=np.float64)
    return t + offset.at(t) if offset is not None else t.copy()


def global_to_host(offset: HostOffset | None, t_global: np.ndarray | float) -> np.ndarray:
    """Host times (s) of global times (s): the inverse of :func:`host_to_global` (exact for a
    constant offset; within the offset's change over it otherwise)."""
    t = np.asarray(t_global, dtype=np.float64)
    return t - offset.at(t) if offset is not None else t.copy()


class DomainSamples(Protocol):
    """One recorded sensor as :meth:`TimeMap.fit_domain` reads it."""

    @property
    def info(self) -> SensorInfo: ...

    @property
    def device_times(self) -> np.ndarray: ...

    @property
    def t_arrival(self) -> np.ndarray: ...

    @property
    def batch_start(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


#: (host times per sensor id, the domain's report)
DomainTimes = tuple[dict[str, np.ndarray], dict[str, Any]]


class TimeMap:
    """Clock domains (device → host) and host offsets (host → global) of one lab view.

    ``clock_options`` go to every new :class:`ClockModel`."""

    def __init__(self, **clock_options: Any) -> None:
        self.domains = ClockDomains(**clock_options)
        self.host_offsets: dict[str, HostOffset] = {}

    # -- clock domains ----------------------------------------------------------------------
    def register(self, info: SensorInfo) -> str:
        """Put a described sensor in its clock domain; returns the domain id."""
        return self.domains.register(info)

    def add_sensor(self, sensor_id: str, **options: Any) -> ClockModel:
        """A fitted domain for ``sensor_id`` alone with clock ``options`` (the seed API)."""
        model = ClockModel(**{**self.domains.clock_options, **options})
        self.domains.domain_of[sensor_id] = sensor_id
        self.domains.models[sensor_id] = model
        return model

    def model(self, sensor_id: str) -> ClockLike:
        """The clock of ``sensor_id``'s domain."""
        return self.domains.model(sensor_id)

    def observe(self, sensor_id: str, t_local: np.ndarray, t_arrival: np.ndarray) -> ClockLike:
        """Feed (device time, arrival) pairs (s) of one sensor, in its arrival order."""
        return self.domains.observe(sensor_id, t_local, t_arrival)

    def fixed_latency(self, sensor_id: str) -> float:
        """The sensor's known transport latency (s; 0 when not described)."""
        info = self.domains.infos.get(sensor_id)
        return info.fixed_latency if info is not None else 0.0

    # -- device → host ----------------------------------------------------------------------
    def to_host(
        self, sensor_id: str, t_local: np.ndarray | float | None, t_arrival: np.ndarray | float | None = None
    ) -> np.ndarray:
        """Host times (s) of device times ``t_local`` (s); a clock not fitted yet (or no
        device times): :data:`UNFITTED_POLICY`."""
        m = self.domains.models.get(self.domains.domain(sensor_id))
        if t_local is not None and m is not None and m.ready:
            out = m.to_host(t_local)
            if t_arrival is None or np.isfinite(out).all():
                return out
        else:
            out = np.full(np.asarray(t_local if t_local is not None else t_arrival, dtype=np.float64).shape, np.nan)
        if t_arrival is None:
            return out
        guess = np.asarray(t_arrival, dtype=np.float64) - self.fixed_latency(sensor_id)
        return np.where(np.isfinite(out), out, guess)

    def map_batch(self, batch: SampleBatch) -> np.ndarray:
        """Observe a batch, then its samples' host times (s), causally (live views, bridge)."""
        self.observe(batch.sensor_id, batch.device_times, batch.t_arrival)
        return self.to_host(batch.sensor_id, batch.device_times, batch.t_arrival)

    def uncertainty(self, sensor_id: str) -> float:
        """1-sigma (s) of the device → host step at the newest sample (inf: not fitted)."""
        return self.domains.uncertainty(sensor_id)

    # -- host → global ----------------------------------------------------------------------
    def set_host_offset(self, node_id: str, offset: float, sigma: float = 0.0, drift: float = 0.0,
                        t_ref: float = 0.0) -> None:  # fmt: skip
        """The node's current host → global offset (s) at host time ``t_ref`` (s), its drift
        (s/s) and 1-sigma (s)."""
        if math.isfinite(offset):
            drift = drift if math.isfinite(drift) and math.isfinite(t_ref) else 0.0
            self.host_offsets[node_id] = HostOffset(offset, sigma if math.isfinite(sigma) else 0.0, drift, t_ref)

    def set_host_offset_history(self, node_id: str, times: np.ndarray, offsets: np.ndarray,
                                sigmas: np.ndarray) -> None:  # fmt: skip
        """The node's offsets as measured over a recording (see :meth:`HostOffset.from_history`)."""
        if len(times):
            self.host_offsets[node_id] = HostOffset.from_history(times, offsets, sigmas)

    def host_offset(self, node_id: str) -> HostOffset | None:
        """The node's host → global offset, None while not known."""
        return self.host_offsets.get(node_id)

    def to_global(self, node_id: str, t_host: np.ndarray | float) -> np.ndarray:
        """Global times (s) of ``node_id``'s host times (s); offset not known: the host clock."""
        return host_to_global(self.host_offsets.get(node_id), t_host)

    def to_host_from_global(self, node_id: str, t_global: np.ndarray | float) -> np.ndarray:
        """Host times (s) of ``node_id`` at global times (s): the inverse of :meth:`to_global`
        (exact for a constant offset; within the offset's change over it otherwise)."""
        return global_to_host(self.host_offsets.get(node_id), t_global)

    # -- whole recordings ---------------------------------------------------------------------
    def fit_domain(self, members: Mapping[str, DomainSamples], mode: str) -> DomainTimes:
        """Host times (s) of every sample of the sensors of one clock domain over a whole
        recording, and the domain's report (kind, offset s, drift ppm, sigma s, resets, late
        samples, latency s). Measured domains map with their recorded offset; fitted ones with
        one clock model fed by every member's (t_local, t_arrival) pairs: ``refined`` fits the
        whole recording (non-causal), ``causal`` maps each batch with what was known when it
        arrived."""
        first = next(iter(members.values())).info
        if domain_kind(first) == MEASURED:
            clock = MeasuredClock.of(first)
            out = {}
            for sid, d in members.items():
                clock.update(d.device_times, d.t_arrival)
                out[sid] = clock.to_host(d.device_times)
            return out, clock_report(clock)
        if mode == "causal":
            return _causal_domain(members, first.fixed_latency)
        model, refined = fit_domain([(d.device_times, d.t_arrival) for d in members.values()], first.fixed_latency)
        out = {}
        for sid, d in members.items():
            x, y = d.device_times, d.t_arrival
            if len(refined.epochs) == 1:
                out[sid] = refined.to_host(x, 0)
                continue
            epoch_of = epochs_of(model, x, y)
            host = np.empty_like(x)
            for k in range(len(refined.epochs)):
                mine = epoch_of == k
                host[mine] = refined.to_host(x[mine], k)
            out[sid] = host
        return out, clock_report(model)

    def state(self) -> dict[str, dict[str, Any]]:
        """Per-sensor clock state (the model's fields and line), with its domain and kind."""
        out = {}
        for sid, dom in self.domains.domain_of.items():
            m = self.domains.models.get(dom)
            if m is not None:
                rep = clock_report(m)
                out[sid] = {**m.state(), "domain": dom, "kind": rep["kind"], "latency": rep["latency"],
                            "late": self.domains.late(dom)}  # fmt: skip
        return out


def epochs_of(model: ClockModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Clock epoch of each sample (local times ``x``, arrivals ``y``, s): the latest epoch
    begun by its arrival whose local-time range holds it; a late delivery of an older epoch
    (arriving after a reset, local time outside the new epoch's range) keeps its own."""
    starts = np.array([ep.t_start for ep in model.epochs])
    k = np.clip(np.searchsorted(starts, y, side="right") - 1, 0, len(model.epochs) - 1)
    for e in range(len(model.epochs) - 1, 0, -1):
        ep = model.epochs[e]
        hi = math.inf if e == len(model.epochs) - 1 else ep.x_hi + model.bin_width  # x_hi: of the bin minima
        outside = (k == e) & ((x < ep.x0) | (x > hi))
        k[outside] = e - 1
    return k


def _causal_domain(members: Mapping[str, DomainSamples], fixed_latency: float) -> DomainTimes:
    """Each batch of every member mapped right after the domain's model saw it (arrival
    order); batches before the model is fitted: :data:`UNFITTED_POLICY`."""
    model = ClockModel(fixed_latency=fixed_latency)
    out = {sid: np.empty_like(d.device_times) for sid, d in members.items()}
    spans = []
    for sid, d in members.items():
        ends = np.append(d.batch_start[1:], len(d)).astype(np.int64)
        for a, b in zip(d.batch_start.tolist(), ends.tolist(), strict=True):
            if b > a:
                spans.append((float(d.t_arrival[b - 1]), sid, a, b))
    spans.sort(key=lambda s: s[0])
    for _t, sid, a, b in spans:
        d = members[sid]
        x = d.device_times[a:b]
        y = d.t_arrival[a:b]
        model.update(x, y)
        host = model.to_host(x)
        out[sid][a:b] = np.where(np.isfinite(host), host, y - fixed_latency)
    return out, clock_report(model)
