"""SyncCore: a clock per clock domain, mapping to global time, and event grouping."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .association import AssociationParams, Groups, group_observations
from .clock import ClockModel
from .clockdomain import ClockDomains, ClockLike, clock_report
from .samples import SensorInfo


@dataclass(frozen=True, slots=True)
class TimeOffsetModel:
    """The seed's per-sensor state: ``t_global = t_local + offset_mean`` at ``t_local_ref``,
    with ``drift`` (s/s) and ``offset_variance`` (s^2)."""

    offset_mean: float
    offset_variance: float
    drift: float
    t_local_ref: float
    updated_at: float

    def to_global(self, t_local: np.ndarray | float) -> np.ndarray:
        x = np.asarray(t_local, dtype=np.float64)
        return x + self.offset_mean - self.drift / (1.0 + self.drift) * (x - self.t_local_ref)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def offset_model(m: ClockLike) -> TimeOffsetModel:
    """The seed-style view of a clock model (at its latest sample)."""
    st = m.state()
    return TimeOffsetModel(
        offset_mean=float(st["offset_mean"]),
        offset_variance=float(st["offset_variance"]),
        drift=float(st["drift"]),
        t_local_ref=float(st["t_local_last"]),
        updated_at=float(st["t_arrival_last"]),
    )


class SyncCore:
    """Clock models per clock domain (:class:`ClockDomains`) plus event grouping.

    ``clock_options`` are passed to every new ClockModel; a sensor described by a
    :class:`SensorInfo` joins its domain through :meth:`register`; per-sensor options (the
    seed API's ``fixed_latency``) go to :meth:`add_sensor`, which gives an id a fitted
    domain of its own.
    """

    def __init__(self, params: AssociationParams | None = None, **clock_options: Any) -> None:
        self.params = params
        self.domains = ClockDomains(**clock_options)

    @property
    def models(self) -> dict[str, ClockLike]:
        """Clock per domain id."""
        return self.domains.models

    def register(self, info: SensorInfo) -> str:
        """Put a described sensor in its clock domain; returns the domain id."""
        return self.domains.register(info)

    def add_sensor(self, sensor_id: str, **options: Any) -> ClockModel:
        """Create (or replace) a fitted domain for ``sensor_id`` alone with ``options``."""
        model = ClockModel(**{**self.domains.clock_options, **options})
        self.domains.domain_of[sensor_id] = sensor_id
        self.domains.models[sensor_id] = model
        return model

    def model(self, sensor_id: str) -> ClockLike:
        return self.domains.model(sensor_id)

    def observe(self, sensor_id: str, t_local: np.ndarray, t_arrival: np.ndarray) -> ClockLike:
        """Feed (t_local, t_arrival) pairs (s) of one sensor, in arrival order."""
        return self.domains.observe(sensor_id, t_local, t_arrival)

    def to_global(self, sensor_id: str, t_local: np.ndarray | float) -> np.ndarray:
        """Host times (s); a sensor whose clock is not known yet is taken to be on it."""
        m = self.domains.models.get(self.domains.domain(sensor_id))
        if m is None or not m.ready:
            return np.asarray(t_local, dtype=np.float64)
        return m.to_global(t_local)

    def uncertainty(self, sensor_id: str) -> float:
        m = self.domains.models.get(self.domains.domain(sensor_id))
        return m.uncertainty if m is not None and m.ready else 0.0

    def group(
        self,
        sensor_ids: Sequence[str] | np.ndarray,
        t_local: Sequence[float] | np.ndarray,
        sigma: Sequence[float] | np.ndarray | float,
    ) -> Groups:
        """Map observations to global time and group them; each observation's sigma is
        combined with its sensor's clock uncertainty."""
        ids = np.asarray(sensor_ids, dtype=object).astype(str)
        x = np.asarray(t_local, dtype=np.float64)
        sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), x.shape).copy()
        t = x.copy()
        for sid in np.unique(ids):
            sel = ids == sid
            t[sel] = self.to_global(str(sid), x[sel])
            unc = self.uncertainty(str(sid))
            if math.isfinite(unc) and unc > 0:
                sig[sel] = np.hypot(sig[sel], unc)
        return group_observations(ids, t, sig, self.params)

    def state(self) -> dict[str, dict[str, Any]]:
        """Per-sensor clock state (TimeOffsetModel fields + the line), with its domain."""
        out = {}
        for sid, dom in self.domains.domain_of.items():
            m = self.domains.models.get(dom)
            if m is not None:
                rep = clock_report(m)
                out[sid] = {**m.state(), "domain": dom, "kind": rep["kind"], "latency": rep["latency"],
                            "late": self.domains.late(dom)}  # fmt: skip
        return out
