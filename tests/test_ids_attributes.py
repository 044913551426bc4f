"""Identifier rule and the attribute-type registry: good and bad payloads in every category."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensorium_desktop.core.attributes import (
    ATTRIBUTE_TYPES,
    Category,
    PayloadError,
    category,
    payload_rows,
    validate_payload,
)
from sensorium_desktop.core.ids import InvalidIdError, is_valid_id, make_id, validate_attribute_id, validate_sensor_id


@pytest.mark.parametrize("good", ["a", "2a37", "sim-chest-ecg", "A_b-C", "x" * 64, "0"])
def test_valid_ids(good: str) -> None:
    assert validate_sensor_id(good) == good
    assert validate_attribute_id(good) == good


@pytest.mark.parametrize("bad", ["", "-x", "_x", "a b", "a.b", "a:b", "x" * 65, "é", "a/b"])
def test_invalid_ids(bad: str) -> None:
    assert not is_valid_id(bad)
    with pytest.raises(InvalidIdError):
        validate_sensor_id(bad)


def test_invalid_id_type() -> None:
    with pytest.raises(InvalidIdError, match="string"):
        validate_attribute_id(42)


@pytest.mark.parametrize("parts", [("ble", "AA:BB:CC:DD:EE:FF"), ("serial", "/dev/ttyUSB0"), ("", ""), ("-", "é" * 80)])
def test_make_id_always_valid(parts: tuple[str, str]) -> None:
    assert is_valid_id(make_id(*parts))


def test_registry_has_all_43_types_in_their_categories() -> None:
    assert len(ATTRIBUTE_TYPES) == 43
    counts: dict[Category, int] = {}
    for t in ATTRIBUTE_TYPES.values():
        counts[t.category] = counts.get(t.category, 0) + 1
    assert counts == {
        Category.HEALTH: 6, Category.MOTION: 11, Category.LOCATION: 3, Category.ENVIRONMENT: 8,
        Category.DEVICE: 7, Category.ACTIVITY: 3, Category.SPECIALTY: 1, Category.EYE_TRACKING: 4,
    }  # fmt: skip


def _skeleton(n: int = 33, **point: float) -> dict:
    p = {"x": 0.5, "y": 0.5, "v": 0.9, **point}
    return {"landmarks": [dict(p) for _ in range(n)]}


# (attribute, good payload, bad payload, field named in the error)
CASES = [
    ("ecg", {"values": [0.1, 0.2, -0.3]}, {"values": [0.1, math.nan]}, "values[1]"),
    ("hrv", {"rmssd": 42.0, "sdnn": 50}, {"sdnn": 50}, "rmssd"),
    ("hr", {"bpm": 72}, {"bpm": 300}, "bpm"),
    ("heartrate", {"bpm": 0.5}, {"bpm": 0}, "bpm"),
    ("spo2", {"value": 97}, {"value": 101}, "value"),
    ("imu", {"accelerometer": {"x": 0, "y": 0, "z": 9.8}}, {"gyroscope": {"x": 1, "y": 2, "z": 3}}, "accelerometer"),
    ("accelerometer", {"x": 1, "y": 2, "z": 3}, {"x": 1, "y": 2}, "z"),
    ("quaternion", {"w": 1, "x": 0, "y": 0, "z": 0}, {"w": "1", "x": 0, "y": 0, "z": 0}, "w"),
    ("skeleton", _skeleton(), _skeleton(x=1.5), "landmarks[0].x"),
    ("geolocation", {"latitude": 52.5, "longitude": 13.4}, {"latitude": 91, "longitude": 0}, "latitude"),
    ("temperature", {"value": 21.5}, {"value": math.inf}, "value"),
    ("humidity", {"value": 45}, {"value": -1}, "value"),
    ("air_quality", {"eco2": 400, "tvoc": 10}, {"eco2": 400}, "tvoc"),
    ("battery", {"level": 80, "charging": True}, {"level": 80.5}, "level"),
    ("led", {"mode": "breathe", "r": 255}, {"mode": "disco"}, "mode"),
    ("button", {"pressed": True}, {"pressed": "yes"}, "pressed"),
    ("steps", {"count": 12}, {"count": -1}, "count"),
    ("buttplug", {"command": "vibrate"}, {}, "command"),
    ("eye_gaze", {"x": 0.2, "y": 0.9, "confidence": 1.0}, {"x": 0.2, "y": 0.9, "confidence": 1.2}, "confidence"),
    ("eye_aperture", {"left": 10, "right": 12}, {"left": 26, "right": 12}, "left"),
    ("eye_blink", {"value": 1.0}, {"value": 0.5}, "value"),
    ("eye_worn", {"value": True}, {"value": 2}, "value"),
    ("rich_presence", {"title": "Task A"}, {"title": 3}, "title"),
]


@pytest.mark.parametrize(("attr", "good", "bad", "field"), CASES)
def test_payload_validation(attr: str, good: dict, bad: dict, field: str) -> None:
    validate_payload(attr, good)
    with pytest.raises(PayloadError) as err:
        validate_payload(attr, bad)
    assert err.value.field == field
    assert err.value.attribute == attr
    assert field in str(err.value)


def test_every_category_has_a_bad_case() -> None:
    covered = {category(a) for a, *_ in CASES}
    assert covered == {c for c in Category if c is not Category.UNKNOWN}


def test_unknown_type_is_allowed_in_category_unknown() -> None:
    assert category("salinity") is Category.UNKNOWN
    assert validate_payload("salinity", {"value": 35.1}) == {"value": 35.1}
    rows = payload_rows("my_custom", {"a": 1, "b": 2.5, "label": "x"})
    assert rows.tolist() == [[1.0, 2.5]]
    with pytest.raises(PayloadError, match="finite"):
        validate_payload("salinity", {"value": math.nan})


def test_non_object_payload_rejected() -> None:
    with pytest.raises(PayloadError, match="object"):
        validate_payload("hr", [72])


def test_shorthand_forms() -> None:
    assert payload_rows("temperature", 21.0).tolist() == [[21.0]]
    flat = payload_rows("imu", {"x": 1, "y": 2, "z": 3})
    assert flat.shape == (1, 9)
    assert flat[0, :3].tolist() == [1, 2, 3]
    assert np.isnan(flat[0, 3:]).all()


def test_rows_shapes() -> None:
    assert payload_rows("ecg", {"values": [1, 2, 3, 4]}).shape == (4, 1)
    assert payload_rows("skeleton", _skeleton()).shape == (1, 99)
    assert payload_rows("geolocation", {"latitude": 1, "longitude": 2}).shape == (1, 6)
    s = payload_rows("led", {"mode": "off"})
    assert s.dtype == object and s[0, 0] == '{"mode":"off"}'


def test_skeleton_accepts_visibility_alias_and_checks_count() -> None:
    pts = [{"x": 0.1, "y": 0.2, "visibility": 0.7}] * 33
    assert payload_rows("skeleton", {"landmarks": pts})[0, 2] == pytest.approx(0.7)
    with pytest.raises(PayloadError, match="33 points"):
        validate_payload("skeleton", _skeleton(n=32))
    with pytest.raises(PayloadError, match="face"):
        validate_payload("skeleton", {**_skeleton(), "face": [{"x": 0.1, "y": 0.1}] * 10})
