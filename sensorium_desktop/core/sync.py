"""SyncCore: a clock model per sensor, mapping to global time, and event grouping."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .association import AssociationParams, Groups, group_observations
from .clock import ClockModel
from .samples import SampleBatch, SensorInfo


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


def offset_model(m: ClockModel) -> TimeOffsetModel:
    """The seed-style view of a :class:`ClockModel` (at its latest sample)."""
    st = m.state()
    return TimeOffsetModel(
        offset_mean=float(st["offset_mean"]),
        offset_variance=float(st["offset_variance"]),
        drift=float(st["drift"]),
        t_local_ref=float(st["t_local_last"]),
        updated_at=float(st["t_arrival_last"]),
    )


class SyncCore:
    """Keeps one :class:`ClockModel` per sensor (created on first use).

    ``clock_options`` are passed to every new ClockModel; per-sensor options (e.g. the
    transport's known ``fixed_latency``) go to :meth:`add_sensor`.
    """

    def __init__(self, params: AssociationParams | None = None, **clock_options: Any) -> None:
        self.params = params
        self.clock_options = clock_options
        self.models: dict[str, ClockModel] = {}
        self.aliases: dict[str, str] = {}

    def alias(self, sensor_id: str, clock_source: str) -> None:
        """Map ``sensor_id`` with the clock model of ``clock_source`` (same device clock,
        better sampled — e.g. a sparse trigger channel of a 200 Hz eye tracker)."""
        self.aliases[sensor_id] = clock_source

    def _mapping_model(self, sensor_id: str) -> ClockModel | None:
        src = self.aliases.get(sensor_id)
        if src is not None:
            m = self.models.get(src)
            if m is not None and m.ready:
                return m
        m = self.models.get(sensor_id)
        return m if m is not None and m.ready else None

    def add_sensor(self, sensor_id: str, **options: Any) -> ClockModel:
        """Create (or replace) the clock model of ``sensor_id`` with ``options``."""
        model = ClockModel(**{**self.clock_options, **options})
        self.models[sensor_id] = model
        return model

    def model(self, sensor_id: str) -> ClockModel:
        m = self.models.get(sensor_id)
        return m if m is not None else self.add_sensor(sensor_id)

    def observe(self, sensor_id: str, t_local: np.ndarray, t_arrival: np.ndarray) -> ClockModel:
        """Feed (t_local, t_arrival) pairs (s) of one sensor, in arrival order."""
        m = self.model(sensor_id)
        m.update(t_local, t_arrival)
        return m

    def to_global(self, sensor_id: str, t_local: np.ndarray | float) -> np.ndarray:
        """Global times (s); a sensor never observed is taken to be on the global clock."""
        m = self._mapping_model(sensor_id)
        if m is None:
            return np.asarray(t_local, dtype=np.float64)
        return m.to_global(t_local)

    def uncertainty(self, sensor_id: str) -> float:
        m = self._mapping_model(sensor_id)
        return m.uncertainty if m is not None else 0.0

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
        """Per-sensor clock state (TimeOffsetModel fields + the envelope line)."""
        return {sid: m.state() for sid, m in self.models.items()}


class ClockTimeMap:
    """Display times from a causal clock model per sensor (device clock → host time), so
    samples delivered in one packet are spread at their true spacing; clockless sensors
    keep their arrival times minus the known transport latency."""

    def __init__(self) -> None:
        self.models: dict[str, ClockModel] = {}
        self.latency: dict[str, float] = {}

    def register(self, info: SensorInfo) -> None:
        self.latency[info.sensor_id] = info.fixed_latency

    def __call__(self, batch: SampleBatch) -> np.ndarray:
        fixed = self.latency.get(batch.sensor_id, 0.0)
        if batch.t_local is None:
            return batch.t_arrival - fixed
        m = self.models.get(batch.sensor_id)
        if m is None:
            m = self.models[batch.sensor_id] = ClockModel(fixed_latency=fixed)
        m.update(batch.t_local, batch.t_arrival)
        return m.to_global(batch.t_local)
