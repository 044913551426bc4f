"""Sensor and attribute identifier rules (the Sensocto rule, shared by both kinds of id)."""

from __future__ import annotations

import re

ID_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$")
MAX_ID_LENGTH = 64


class InvalidIdError(ValueError):
    """An identifier does not match ``^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$``."""


def is_valid_id(value: object) -> bool:
    """True when ``value`` is a str of 1-64 chars, alphanumeric first, then ``[A-Za-z0-9_-]``."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def validate_id(value: object, kind: str = "id") -> str:
    """Return ``value`` unchanged or raise :class:`InvalidIdError` naming ``kind``."""
    if not isinstance(value, str):
        raise InvalidIdError(f"{kind} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidIdError(f"{kind} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(f"{kind} {value[:20]!r}... is {len(value)} chars (max 64)")
    if ID_PATTERN.fullmatch(value) is None:
        raise InvalidIdError(
            f"{kind} {value!r} is invalid: use 1-64 chars of letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )
    return value


def validate_sensor_id(value: object) -> str:
    """Validate a sensor id (Sensocto rule)."""
    return validate_id(value, "sensor id")


def validate_attribute_id(value: object) -> str:
    """Validate an attribute id (Sensocto rule; GATT UUIDs such as ``2a37`` fit)."""
    return validate_id(value, "attribute id")


_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")


def make_id(*parts: str) -> str:
    """Build a valid id from arbitrary text parts (BLE addresses, port names, file names).

    Invalid characters become ``-``; the result is truncated to 64 chars and never empty.
    """
    text = "-".join(p for p in (_BAD_CHARS.sub("-", part).strip("-_") for part in parts) if p)
    text = re.sub(r"-{2,}", "-", text)[:MAX_ID_LENGTH].rstrip("-_")
    if not text:
        return "x"
    if not text[0].isalnum():
        text = ("x" + text)[:MAX_ID_LENGTH]
    return text
