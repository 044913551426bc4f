"""Typed sample batches and sensor descriptions.

A *sensor* is one stream of one attribute type (like an LSL stream): ``sim-chest-ecg``
carries ``ecg``. Sensors belong to a *device* (the physical thing with one clock and one
connection). Times are float64 seconds: ``t_arrival`` on the host clock (wall time read
through the monotonic clock), ``t_local`` on the device's own clock when it has one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .attributes import layout
from .ids import validate_attribute_id, validate_id, validate_sensor_id

NUMERIC_FORMATS = ("float32", "float64", "int32", "int64", "int16", "int8")
CHANNEL_FORMATS = (*NUMERIC_FORMATS, "string")


class SampleError(ValueError):
    """A sample batch is malformed (shapes, non-finite timestamps, unknown format)."""


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """``n`` samples of one sensor.

    - ``t_arrival``: (n,) float64 seconds, host clock, non-decreasing.
    - ``values``: (n, channels), numeric dtype or object (str) for string streams.
    - ``t_local``: (n,) float64 seconds on the device clock, or None (no device clock).
    - ``seq``: batch sequence number per sensor (-1 until published).
    - ``first_index``: index of the first sample in the sensor's stream (-1 until published).
    """

    sensor_id: str
    attribute: str
    t_arrival: np.ndarray
    values: np.ndarray
    t_local: np.ndarray | None = None
    seq: int = -1
    first_index: int = -1

    def __post_init__(self) -> None:
        ta = np.ascontiguousarray(self.t_arrival, dtype=np.float64)
        if ta.ndim != 1:
            raise SampleError(f"{self.sensor_id}: t_arrival must be 1-D, got shape {ta.shape}")
        n = ta.shape[0]
        vals = np.asarray(self.values)
        if vals.ndim == 1:
            vals = vals.reshape(n, -1) if n else vals.reshape(0, max(vals.size, 1))
        if vals.ndim != 2 or vals.shape[0] != n:
            raise SampleError(f"{self.sensor_id}: values shape {vals.shape} does not match {n} timestamps")
        if vals.dtype != object and vals.dtype.name not in NUMERIC_FORMATS:
            vals = vals.astype(np.float64)
        if not np.all(np.isfinite(ta)):
            raise SampleError(f"{self.sensor_id}: t_arrival contains NaN/inf")
        object.__setattr__(self, "t_arrival", ta)
        object.__setattr__(self, "values", np.ascontiguousarray(vals))
        if self.t_local is not None:
            tl = np.ascontiguousarray(self.t_local, dtype=np.float64)
            if tl.shape != ta.shape:
                raise SampleError(f"{self.sensor_id}: t_local shape {tl.shape} != t_arrival shape {ta.shape}")
            if not np.all(np.isfinite(tl)):
                raise SampleError(f"{self.sensor_id}: t_local contains NaN/inf")
            object.__setattr__(self, "t_local", tl)

    def __len__(self) -> int:
        return int(self.t_arrival.shape[0])

    @property
    def channel_count(self) -> int:
        return int(self.values.shape[1])

    @property
    def channel_format(self) -> str:
        return "string" if self.values.dtype == object else self.values.dtype.name

    @property
    def device_times(self) -> np.ndarray:
        """``t_local`` when the device has a clock, else ``t_arrival`` (seconds)."""
        return self.t_arrival if self.t_local is None else self.t_local

    def with_sequence(self, seq: int, first_index: int) -> SampleBatch:
        return replace(self, seq=seq, first_index=first_index)

    def slice(self, start: int, stop: int) -> SampleBatch:
        """Rows ``start:stop`` (first_index follows when known)."""
        tl = None if self.t_local is None else self.t_local[start:stop]
        fi = self.first_index + start if self.first_index >= 0 else -1
        return SampleBatch(
            self.sensor_id, self.attribute, self.t_arrival[start:stop],
            self.values[start:stop], tl, self.seq, fi,
        )  # fmt: skip

    @staticmethod
    def concat(batches: list[SampleBatch]) -> SampleBatch:
        """Join batches of one sensor in order (t_local kept only if all have it)."""
        if not batches:
            raise SampleError("concat of no batches")
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        has_local = all(b.t_local is not None for b in batches)
        tl = np.concatenate([b.t_local for b in batches]) if has_local else None
        return SampleBatch(
            first.sensor_id,
            first.attribute,
            np.concatenate([b.t_arrival for b in batches]),
            np.concatenate([b.values for b in batches]),
            tl,
            first.seq,
            first.first_index,
        )


#: ``SensorInfo.extra`` key of an irregular sensor's typical time between events (s), when
#: its device knows it (an HRV value every 5 beats): a recording shorter than that is not
#: expected to hold an event, and its silence is reported as such, not as a failure
EVENT_INTERVAL_KEY = "event_interval_s"


@dataclass(slots=True)
class SensorInfo:
    """Description of one sensor stream (stored in the Redis registry and in exports).

    ``nominal_rate`` in Hz (0 = irregular). ``has_clock``: samples carry ``t_local``.
    ``fixed_latency``: known constant transport delay in seconds, subtracted by the clock
    model. ``uri`` is the device URI the node connected (``sim:chest``, ``ble:AA:...``).
    ``clock_domain``: name of the clock that stamps ``t_local`` when several devices share
    one (``lsl``: the LSL clock of the node's host); "" = the device's own clock (shared by
    all sensors of ``device_id``). ``clock_offset``/``clock_sigma`` (s): a measured (not
    fitted) mapping ``host = t_local + clock_offset`` and its 1-sigma, when the node can read
    the domain's clock itself. See :mod:`sensorium_desktop.core.clockdomain`.
    """

    sensor_id: str
    attribute: str
    device_id: str
    device_name: str = ""
    transport: str = "simulated"
    uri: str = ""
    channel_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    channel_format: str = "float32"
    nominal_rate: float = 0.0
    has_clock: bool = False
    fixed_latency: float = 0.0
    node_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    clock_domain: str = ""
    clock_offset: float | None = None
    clock_sigma: float = 0.0

    def __post_init__(self) -> None:
        validate_sensor_id(self.sensor_id)
        validate_attribute_id(self.attribute)
        validate_id(self.device_id, "device id")
        if not self.channel_names:
            names, units, fmt = layout(self.attribute)
            self.channel_names = names
            self.units = units
            self.channel_format = fmt
        self.channel_names = tuple(self.channel_names)
        self.units = tuple(self.units) if self.units else ("",) * len(self.channel_names)
        if len(self.units) != len(self.channel_names):
            raise SampleError(f"{self.sensor_id}: {len(self.units)} units for {len(self.channel_names)} channels")
        if self.channel_format not in CHANNEL_FORMATS:
            raise SampleError(f"{self.sensor_id}: unknown channel format {self.channel_format!r}")

    @property
    def channel_count(self) -> int:
        return len(self.channel_names)

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SensorInfo:
        d = json.loads(text)
        d["channel_names"] = tuple(d.get("channel_names", ()))
        d["units"] = tuple(d.get("units", ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})
