"""Attribute-type registry: the 43 Sensocto types, their categories, payload schemas and
the numeric channel layout each payload maps to.

Payloads are the JSON-shaped dicts of the Sensocto measurement protocol
(``{"attribute_id", "payload", "timestamp"}``). :func:`validate_payload` checks them for
real (Sensocto itself never calls its payload checks) and :func:`payload_rows` turns a
valid payload into rows of the attribute's channel layout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np


class Category(StrEnum):
    HEALTH = "health"
    MOTION = "motion"
    LOCATION = "location"
    ENVIRONMENT = "environment"
    DEVICE = "device"
    ACTIVITY = "activity"
    SPECIALTY = "specialty"
    EYE_TRACKING = "eye_tracking"
    UNKNOWN = "unknown"


class PayloadError(ValueError):
    """A payload does not match its attribute type's schema; ``field`` names the culprit."""

    def __init__(self, attribute: str, field: str, message: str) -> None:
        self.attribute = attribute
        self.field = field
        super().__init__(f"{attribute}.{field}: {message}" if field else f"{attribute}: {message}")


@dataclass(frozen=True, slots=True)
class Field:
    """One payload field.

    ``kind`` is one of: number, integer, binary (0/1 or bool), boolean, string, enum,
    vector3 ({x, y, z}), number_list, landmarks.
    """

    name: str
    kind: str = "number"
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""


@dataclass(frozen=True, slots=True)
class AttributeType:
    """Schema and numeric layout of one attribute type.

    ``channels``/``units`` describe one row of values; ``channel_format`` is ``float32``,
    ``float64`` or ``string`` (string types carry the JSON payload as one string channel).
    ``default_rate`` is the nominal sampling rate in Hz (0 = irregular).
    """

    name: str
    category: Category
    fields: tuple[Field, ...]
    channels: tuple[str, ...]
    units: tuple[str, ...]
    default_rate: float = 0.0
    channel_format: str = "float32"

    @property
    def channel_count(self) -> int:
        return len(self.channels)


def _value(unit: str = "", minimum: float | None = None, maximum: float | None = None) -> tuple:
    return (Field("value", "number", True, minimum, maximum, unit=unit),)


def _xyz(unit: str) -> tuple[Field, ...]:
    return tuple(Field(a, "number", unit=unit) for a in "xyz")


N_POSE_LANDMARKS = 33
N_FACE_LANDMARKS = 468
POSE_CHANNELS = tuple(f"lm{i:02d}_{c}" for i in range(N_POSE_LANDMARKS) for c in ("x", "y", "v"))


def _t(
    name: str,
    category: Category,
    fields: tuple[Field, ...],
    channels: tuple[str, ...] | None = None,
    units: tuple[str, ...] | None = None,
    rate: float = 0.0,
    fmt: str = "float32",
) -> AttributeType:
    if channels is None:
        channels = tuple(f.name for f in fields)
    if units is None:
        units = tuple(f.unit for f in fields)
    return AttributeType(name, category, fields, channels, units, rate, fmt)


H, M, L, E, D, A, S, Y = (
    Category.HEALTH,
    Category.MOTION,
    Category.LOCATION,
    Category.ENVIRONMENT,
    Category.DEVICE,
    Category.ACTIVITY,
    Category.SPECIALTY,
    Category.EYE_TRACKING,
)

_BPM = (Field("bpm", "number", True, 0.0, 300.0, exclusive=True, unit="bpm"),)
_IMU_CHANNELS = tuple(f"{s}_{a}" for s in ("acc", "gyro", "mag") for a in "xyz")
_IMU_UNITS = ("m/s^2",) * 3 + ("deg/s",) * 3 + ("uT",) * 3

_TYPES: tuple[AttributeType, ...] = (
    # health
    _t(
        "ecg",
        H,
        (
            Field("values", "number_list", unit="mV"),
            Field("sample_rate", "number", False, 0.0, None, exclusive=True, unit="Hz"),
            Field("lead", "string", False),
        ),
        ("ecg",),
        ("mV",),
        512.0,
    ),
    _t(
        "hrv",
        H,
        (Field("rmssd", "number", True, 0.0, unit="ms"), Field("sdnn", "number", False, 0.0, unit="ms")),
    ),
    _t("hr", H, _BPM, rate=1.0),
    _t("heartrate", H, _BPM, rate=1.0),
    _t("spo2", H, _value("%", 0.0, 100.0), rate=1.0),
    _t("respiration", H, _value("a.u."), rate=25.0),
    # motion
    _t(
        "imu",
        M,
        (
            Field("accelerometer", "vector3", unit="m/s^2"),
            Field("gyroscope", "vector3", False, unit="deg/s"),
            Field("magnetometer", "vector3", False, unit="uT"),
        ),
        _IMU_CHANNELS,
        _IMU_UNITS,
        100.0,
    ),
    _t("accelerometer", M, _xyz("m/s^2"), rate=100.0),
    _t("gyroscope", M, _xyz("deg/s"), rate=100.0),
    _t("magnetometer", M, _xyz("uT"), rate=50.0),
    _t("gravity", M, _xyz("m/s^2"), rate=100.0),
    _t("quaternion", M, tuple(Field(a, "number") for a in "wxyz"), rate=100.0),
    _t(
        "euler",
        M,
        (Field("roll", unit="deg"), Field("pitch", unit="deg"), Field("yaw", unit="deg")),
        rate=100.0,
    ),
    _t("heading", M, _value("deg")),
    _t("tap", M, (Field("direction", "string"),), ("payload",), ("",), fmt="string"),
    _t("orientation", M, _value()),
    _t(
        "skeleton",
        M,
        (Field("landmarks", "landmarks"),),
        POSE_CHANNELS,
        ("normalized",) * len(POSE_CHANNELS),
        30.0,
    ),
    # location
    _t(
        "geolocation",
        L,
        (
            Field("latitude", "number", True, -90.0, 90.0, unit="deg"),
            Field("longitude", "number", True, -180.0, 180.0, unit="deg"),
            Field("accuracy", "number", False, 0.0, unit="m"),
            Field("altitude", "number", False, unit="m"),
            Field("speed", "number", False, 0.0, unit="m/s"),
            Field("heading", "number", False, unit="deg"),
        ),
        rate=1.0,
    ),
    _t("altitude", L, _value("m")),
    _t("speed", L, _value("m/s")),
    # environment
    _t("temperature", E, _value("degC"), rate=1.0),
    _t("humidity", E, _value("%", 0.0, 100.0), rate=1.0),
    _t("pressure", E, _value("hPa", 0.0), rate=1.0),
    _t("gas", E, (Field("eco2", "number", True, 0.0, unit="ppm"), Field("tvoc", "number", True, 0.0, unit="ppb"))),
    _t(
        "air_quality",
        E,
        (Field("eco2", "number", True, 0.0, unit="ppm"), Field("tvoc", "number", True, 0.0, unit="ppb")),
    ),
    _t("light", E, _value("lux", 0.0)),
    _t("proximity", E, _value()),
    _t("color", E, tuple(Field(c, "number", True, 0.0) for c in "rgb")),
    # device
    _t(
        "battery",
        D,
        (
            Field("level", "integer", True, 0.0, 100.0, unit="%"),
            Field("charging", "boolean", False),
            Field("voltage", "number", False, 0.0, unit="V"),
        ),
    ),
    _t("button", D, (Field("pressed", "boolean"),)),
    _t(
        "led",
        D,
        (
            Field("mode", "enum", choices=("off", "constant", "breathe", "one_shot")),
            Field("r", "number", False, 0.0, 255.0),
            Field("g", "number", False, 0.0, 255.0),
            Field("b", "number", False, 0.0, 255.0),
        ),
        ("payload",),
        ("",),
        fmt="string",
    ),
    _t("speaker", D, (Field("frequency", "number", True, 0.0, unit="Hz"),)),
    _t("microphone", D, (Field("level", "number", unit="dB"),)),
    _t("body_location", D, (Field("value", "any"),), ("payload",), ("",), fmt="string"),
    _t(
        "rich_presence",
        D,
        (
            Field("title", "string"),
            Field("description", "string", False),
            Field("url", "string", False),
            Field("image", "string", False),
        ),
        ("payload",),
        ("",),
        fmt="string",
    ),
    # activity
    _t("steps", A, (Field("count", "integer", True, 0.0),)),
    _t("calories", A, _value("kcal", 0.0)),
    _t("distance", A, _value("m", 0.0)),
    # specialty
    _t("buttplug", S, (Field("command", "any"),), ("payload",), ("",), fmt="string"),
    # eye tracking
    _t(
        "eye_gaze",
        Y,
        (
            Field("x", "number", True, 0.0, 1.0, unit="normalized"),
            Field("y", "number", True, 0.0, 1.0, unit="normalized"),
            Field("confidence", "number", True, 0.0, 1.0),
        ),
        rate=200.0,
    ),
    _t(
        "eye_aperture",
        Y,
        (Field("left", "number", True, 0.0, 25.0, unit="deg"), Field("right", "number", True, 0.0, 25.0, unit="deg")),
        rate=200.0,
    ),
    _t("eye_blink", Y, (Field("value", "binary"),)),
    _t("eye_worn", Y, (Field("value", "binary"),), rate=1.0),
)

ATTRIBUTE_TYPES: dict[str, AttributeType] = {t.name: t for t in _TYPES}

#: Attribute types whose samples are *events* shared between sensors (flashes, TTL pulses,
#: clapperboards): the sync worker groups them across sensors. Any sensor can opt in with
#: ``SensorInfo.extra["sync_events"] = True``. ``trigger`` carries ``value`` (unknown category).
SYNC_EVENT_ATTRIBUTES = frozenset({"trigger"})
#: Attribute types whose samples are discrete events (a blink, a trigger code, a tap): drawn as
#: a stem per event, never as a line through them.
EVENT_ATTRIBUTES = frozenset({"eye_blink", "fixation", "trigger", "tap", "button"})
assert len(ATTRIBUTE_TYPES) == 43, len(ATTRIBUTE_TYPES)

#: Marine and AI/inference types documented by Sensocto but not validated there; we accept
#: them as generic ``value`` types in category ``unknown``.
DOCUMENTED_UNVALIDATED = frozenset(
    {
        "water_temperature", "sea_surface_temperature", "salinity", "ph", "dissolved_oxygen",
        "turbidity", "depth", "light_par", "nitrate", "phosphate", "ammonia", "alkalinity",
        "current_speed", "current_direction", "wave_height", "fish_count", "species_diversity",
        "coral_coverage", "algae_coverage", "bleaching_index", "inference_confidence",
    }
)  # fmt: skip


#: The warm tier (how long Redis keeps a sensor's stream), seconds, by attribute type:
#: waveforms and other high-rate streams 5 min (32 ch × 512 Hz float32 ≈ 20 MB), camera
#: frame indexes 10 min, everything slow (vitals, environment, events) 1 h. Recorders must
#: read within the shortest window; the GUI's plot history comes from here.
WARM_SECONDS_DEFAULT = 3600.0
WARM_SECONDS: dict[str, float] = {
    **dict.fromkeys(
        (
            "ecg",
            "eeg",
            "emg",
            "respiration",
            "imu",
            "accelerometer",
            "gyroscope",
            "magnetometer",
            "gravity",
            "euler",
            "quaternion",
            "orientation",
            "eye_gaze",
            "eye_aperture",
            "skeleton",
            "microphone",
        ),
        300.0,
    ),
    "video": 600.0,
}


def warm_seconds(attribute: str) -> float:
    """How long Redis keeps the stream of an ``attribute`` sensor (s)."""
    return WARM_SECONDS.get(attribute, WARM_SECONDS_DEFAULT)


def category(attribute: str) -> Category:
    """Category of an attribute type; unknown types are :attr:`Category.UNKNOWN`."""
    t = ATTRIBUTE_TYPES.get(attribute)
    return t.category if t else Category.UNKNOWN


def get_type(attribute: str) -> AttributeType | None:
    """The registered type, or None for an unknown attribute."""
    return ATTRIBUTE_TYPES.get(attribute)


def layout(attribute: str, payload_keys: tuple[str, ...] = ("value",)) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(channel names, units, channel_format) for ``attribute``.

    Unknown types get one channel per numeric payload key (default ``value``).
    """
    t = ATTRIBUTE_TYPES.get(attribute)
    if t is not None:
        return t.channels, t.units, t.channel_format
    return tuple(payload_keys), ("",) * len(payload_keys), "float32"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_number(attr: str, f: Field, v: Any, path: str) -> float:
    if not _is_number(v):
        raise PayloadError(attr, path, f"must be a number, got {type(v).__name__}")
    x = float(v)
    if not math.isfinite(x):
        raise PayloadError(attr, path, f"must be finite, got {v!r}")
    if f.kind == "integer" and x != int(x):
        raise PayloadError(attr, path, f"must be an integer, got {v!r}")
    lo, hi = f.minimum, f.maximum
    if f.exclusive:
        if (lo is not None and x <= lo) or (hi is not None and x >= hi):
            raise PayloadError(attr, path, f"{x:g} out of range ({_fmt(lo, '-inf')} < {path} < {_fmt(hi, 'inf')})")
    elif (lo is not None and x < lo) or (hi is not None and x > hi):
        raise PayloadError(attr, path, f"{x:g} out of range [{_fmt(lo, '-inf')}, {_fmt(hi, 'inf')}]")
    return x


def _fmt(v: float | None, missing: str) -> str:
    return missing if v is None else f"{v:g}"


def _check_field(attr: str, f: Field, v: Any) -> None:
    k = f.kind
    if k in ("number", "integer"):
        _check_number(attr, f, v, f.name)
    elif k == "boolean":
        if not isinstance(v, bool) and v not in (0, 1):
            raise PayloadError(attr, f.name, f"must be true/false, got {v!r}")
    elif k == "binary":
        if isinstance(v, bool):
            return
        if not _is_number(v) or float(v) not in (0.0, 1.0):
            raise PayloadError(attr, f.name, f"must be 0.0 or 1.0, got {v!r}")
    elif k == "string":
        if not isinstance(v, str):
            raise PayloadError(attr, f.name, f"must be a string, got {type(v).__name__}")
    elif k == "enum":
        if v not in f.choices:
            raise PayloadError(attr, f.name, f"must be one of {', '.join(f.choices)}; got {v!r}")
    elif k == "vector3":
        if not isinstance(v, Mapping):
            raise PayloadError(attr, f.name, "must be an object {x, y, z}")
        for axis in "xyz":
            if axis not in v:
                raise PayloadError(attr, f"{f.name}.{axis}", "is required")
            _check_number(attr, Field(axis), v[axis], f"{f.name}.{axis}")
    elif k == "number_list":
        if not isinstance(v, list | tuple) or not v:
            raise PayloadError(attr, f.name, "must be a non-empty list of numbers")
        arr = np.asarray(v, dtype=object)
        for i, item in enumerate(arr):
            if not _is_number(item) or not math.isfinite(float(item)):
                raise PayloadError(attr, f"{f.name}[{i}]", f"must be a finite number, got {item!r}")
    elif k == "landmarks":
        _check_landmarks(attr, f.name, v, N_POSE_LANDMARKS)
    # kind "any": present is enough


def _check_landmarks(attr: str, name: str, v: Any, expected: int) -> None:
    if not isinstance(v, list | tuple):
        raise PayloadError(attr, name, "must be a list of {x, y, v} points")
    if len(v) != expected:
        raise PayloadError(attr, name, f"must have {expected} points, got {len(v)}")
    unit = Field("p", "number", True, 0.0, 1.0)
    for i, p in enumerate(v):
        if not isinstance(p, Mapping):
            raise PayloadError(attr, f"{name}[{i}]", "must be an object {x, y, v}")
        for key in ("x", "y"):
            if key not in p:
                raise PayloadError(attr, f"{name}[{i}].{key}", "is required")
            _check_number(attr, unit, p[key], f"{name}[{i}].{key}")
        vis = p.get("v", p.get("visibility"))
        if vis is not None:
            _check_number(attr, unit, vis, f"{name}[{i}].v")


def _normalize(attribute: str, payload: Any) -> Mapping[str, Any]:
    """Accept the documented shorthand forms and return a dict payload."""
    if _is_number(payload) or isinstance(payload, bool):
        return {"value": payload}
    if not isinstance(payload, Mapping):
        raise PayloadError(attribute, "", f"payload must be an object, got {type(payload).__name__}")
    if attribute == "imu" and "accelerometer" not in payload and all(a in payload for a in "xyz"):
        return {"accelerometer": {a: payload[a] for a in "xyz"}}
    return payload


def validate_payload(attribute: str, payload: Any) -> Mapping[str, Any]:
    """Check ``payload`` against the schema of ``attribute`` and return it normalized.

    Unknown attribute types are allowed (category ``unknown``): the payload must be an
    object whose values are finite numbers or strings. Raises :class:`PayloadError`
    naming the offending field.
    """
    data = _normalize(attribute, payload)
    t = ATTRIBUTE_TYPES.get(attribute)
    if t is None:
        if not data:
            raise PayloadError(attribute, "", "payload is empty")
        for key, v in data.items():
            if isinstance(v, str):
                continue
            _check_number(attribute, Field(str(key)), v, str(key))
        return data
    for f in t.fields:
        if f.name not in data or data[f.name] is None:
            if f.required:
                raise PayloadError(attribute, f.name, "is required")
            continue
        _check_field(attribute, f, data[f.name])
    if attribute == "skeleton" and data.get("face") is not None:
        _check_landmarks(attribute, "face", data["face"], N_FACE_LANDMARKS)
    return data


def _num(v: Any) -> float:
    if v is None:
        return math.nan
    return float(v)


def payload_rows(attribute: str, payload: Any) -> np.ndarray:
    """Validate ``payload`` and return its values as rows of the attribute's layout.

    Returns a float64 array of shape (k, channels); k > 1 only for list payloads (ecg
    ``values``). String-format types return an object array of shape (1, 1) holding the
    payload as compact JSON. Missing optional fields are NaN.
    """
    data = validate_payload(attribute, payload)
    t = ATTRIBUTE_TYPES.get(attribute)
    if t is None:
        keys = [k for k, v in data.items() if not isinstance(v, str)]
        return np.array([[float(data[k]) for k in keys]], dtype=np.float64)
    if t.channel_format == "string":
        out = np.empty((1, 1), dtype=object)
        out[0, 0] = json.dumps(dict(data), separators=(",", ":"), sort_keys=True)
        return out
    if attribute == "ecg":
        return np.asarray(data["values"], dtype=np.float64).reshape(-1, 1)
    if attribute == "imu":
        row: list[float] = []
        for f in t.fields:
            vec = data.get(f.name) or {}
            row.extend(_num(vec.get(a)) for a in "xyz")
        return np.array([row], dtype=np.float64)
    if attribute == "skeleton":
        pts = data["landmarks"]
        row = [
            _num(p[c] if c in p else p.get("visibility")) if c == "v" else _num(p[c])
            for p in pts
            for c in ("x", "y", "v")
        ]
        return np.array([row], dtype=np.float64)
    return np.array([[_num(data.get(f.name)) for f in t.fields]], dtype=np.float64)
