"""Sensocto measurements (pure): ``{"attribute_id", "payload", "timestamp"}`` → sample rows.

The one decoder for every path a Sensocto-style measurement takes in (JSON lines on a serial
port, the Phoenix WebSocket endpoint, HTTP JSON ingest). Checks run in the order Sensocto's
server runs them — missing fields, then the attribute id — and then, unlike Sensocto, the
payload against its attribute's schema (:mod:`.attributes`). Failures raise
:class:`MeasurementError` whose ``reason`` is Sensocto's error reason where it has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .attributes import PayloadError, get_type, payload_rows
from .ids import InvalidIdError, validate_attribute_id

REQUIRED_FIELDS = ("attribute_id", "payload", "timestamp")
#: ECG ``values`` lists are sampled at the payload's ``sample_rate`` (Hz), this by default.
DEFAULT_WAVEFORM_RATE = 512.0
#: Sensocto's reasons (``missing_fields``, ``invalid_attribute_id``) and ours.
REASONS = ("missing_fields", "invalid_attribute_id", "bad_timestamp", "invalid_payload", "not_an_object")


class MeasurementError(ValueError):
    """A measurement that cannot be taken in: ``reason`` (one of :data:`REASONS`), the
    ``fields`` at fault and a message saying why."""

    def __init__(self, reason: str, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.fields = fields


@dataclass(frozen=True, slots=True)
class Measurement:
    """One decoded measurement: ``values`` (k, channels) of ``attribute`` at ``t_device``
    (k,) s on the sender's clock; k > 1 for waveform lists (ecg ``values``)."""

    attribute: str
    values: np.ndarray
    t_device: np.ndarray
    payload_keys: tuple[str, ...] = ()  # the channels of an attribute type we do not know


def decode_measurement(m: Any) -> Measurement:
    """Validate one measurement (timestamp in ms since the sender's epoch) and return its
    rows; raises :class:`MeasurementError`."""
    if not isinstance(m, dict):
        raise MeasurementError("not_an_object", f"measurement must be an object, got {type(m).__name__}")
    missing = tuple(f for f in REQUIRED_FIELDS if f not in m)
    if missing:
        raise MeasurementError("missing_fields", f"missing fields: {', '.join(missing)}", missing)
    attr, payload, ts = m["attribute_id"], m["payload"], m["timestamp"]
    try:
        validate_attribute_id(attr if isinstance(attr, str) else "")
    except InvalidIdError as exc:
        raise MeasurementError("invalid_attribute_id", f"attribute_id {attr!r}: {exc}", ("attribute_id",)) from exc
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise MeasurementError("bad_timestamp", f"{attr}: timestamp {ts!r} is not a finite number of ms",
                               ("timestamp",))  # fmt: skip
    try:
        values = payload_rows(attr, payload)
    except PayloadError as exc:
        where = f"payload.{exc.field}" if exc.field else "payload"
        raise MeasurementError("invalid_payload", str(exc), (where,)) from exc
    t0 = float(ts) / 1000.0
    if values.shape[0] == 1:
        return Measurement(attr, values, np.array([t0]), _channel_keys(attr, payload))
    rate = payload.get("sample_rate", DEFAULT_WAVEFORM_RATE) if isinstance(payload, dict) else DEFAULT_WAVEFORM_RATE
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        rate = math.nan
    if not math.isfinite(rate) or rate <= 0:
        raise MeasurementError("invalid_payload", f"{attr}: sample_rate {rate!r} must be a positive number of Hz",
                               ("payload.sample_rate",))  # fmt: skip
    return Measurement(attr, values, t0 + np.arange(values.shape[0]) / rate)


def _channel_keys(attribute: str, payload: Any) -> tuple[str, ...]:
    """The channel names of a measurement of an attribute type we do not know: its numeric
    payload keys in order (``value`` for a bare number); () for known types."""
    if get_type(attribute) is not None:
        return ()
    if isinstance(payload, dict):
        return tuple(str(k) for k, v in payload.items() if not isinstance(v, str))
    return ("value",)
