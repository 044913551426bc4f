"""SyncCore: the lab's :class:`~.timemap.TimeMap` plus event grouping."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .association import AssociationParams, Groups, group_observations
from .clock import ClockModel
from .clockdomain import ClockDomains, ClockLike
from .samples import SensorInfo
from .timemap import TimeMap


class SyncCore:
    """Clock domains (through one :class:`TimeMap`) plus event grouping.

    ``clock_options`` are passed to every new ClockModel; a sensor described by a
    :class:`SensorInfo` joins its domain through :meth:`register`; per-sensor options (the
    seed API's ``fixed_latency``) go to :meth:`add_sensor`, which gives an id a fitted
    domain of its own.
    """

    def __init__(self, params: AssociationParams | None = None, **clock_options: Any) -> None:
        self.params = params
        self.time = TimeMap(**clock_options)

    @property
    def domains(self) -> ClockDomains:
        """The time map's clock domains."""
        return self.time.domains

    @property
    def models(self) -> dict[str, ClockLike]:
        """Clock per domain id."""
        return self.time.domains.models

    def register(self, info: SensorInfo) -> str:
        """Put a described sensor in its clock domain; returns the domain id."""
        return self.time.register(info)

    def add_sensor(self, sensor_id: str, **options: Any) -> ClockModel:
        """Create (or replace) a fitted domain for ``sensor_id`` alone with ``options``."""
        return self.time.add_sensor(sensor_id, **options)

    def model(self, sensor_id: str) -> ClockLike:
        return self.time.model(sensor_id)

    def observe(self, sensor_id: str, t_local: np.ndarray, t_arrival: np.ndarray) -> ClockLike:
        """Feed (t_local, t_arrival) pairs (s) of one sensor, in arrival order."""
        return self.time.observe(sensor_id, t_local, t_arrival)

    def to_host(self, sensor_id: str, t_local: np.ndarray | float, t_arrival: np.ndarray | float) -> np.ndarray:
        """Host times (s) of device times (see :meth:`TimeMap.to_host` for a clock not fitted yet)."""
        return self.time.to_host(sensor_id, t_local, t_arrival)

    def uncertainty(self, sensor_id: str) -> float:
        """1-sigma (s) of the sensor's device → host step (inf: not fitted)."""
        return self.time.uncertainty(sensor_id)

    def group(
        self,
        sensor_ids: Sequence[str] | np.ndarray,
        t_local: Sequence[float] | np.ndarray,
        sigma: Sequence[float] | np.ndarray | float,
        t_arrival: Sequence[float] | np.ndarray,
    ) -> Groups:
        """Map observations (device times, arrival times, s) to host time and group them;
        each observation's sigma is combined with its sensor's clock uncertainty."""
        ids = np.asarray(sensor_ids, dtype=object).astype(str)
        x = np.asarray(t_local, dtype=np.float64)
        y = np.asarray(t_arrival, dtype=np.float64)
        sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), x.shape).copy()
        t = x.copy()
        for sid in np.unique(ids):
            sel = ids == sid
            t[sel] = self.to_host(str(sid), x[sel], y[sel])
            unc = self.uncertainty(str(sid))
            if math.isfinite(unc) and unc > 0:
                sig[sel] = np.hypot(sig[sel], unc)
        return group_observations(ids, t, sig, self.params)

    def state(self) -> dict[str, dict[str, Any]]:
        """Per-sensor clock state (the model's fields and line), with its domain."""
        return self.time.state()
