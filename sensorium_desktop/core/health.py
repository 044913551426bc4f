"""Sensor health from data actually received: a sensor is ``ok`` only while samples arrive.

Pure functions shared by the device tree, ``sensorium status`` and the node's telemetry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: A regular sensor is stale after this many missed periods, and never sooner than STALE_MIN_S.
STALE_PERIODS = 3.0
STALE_MIN_S = 2.0
#: Stale for longer than this is shown as "no data" (red) instead of "stale" (amber).
NO_DATA_AFTER_S = 10.0
#: Device states in which a sensor delivers nothing whatever its last rate was.
DEAD_DEVICE_STATES = ("offline", "lost", "error", "unavailable", "stopped")


@dataclass(frozen=True, slots=True)
class SensorHealth:
    """``state`` is one of ok, rate low, rate high, stale, no data, waiting; ``text`` says it
    for an operator ("no data for 12 s"); ``rate`` is what to show (0 when stale), in Hz."""

    state: str
    text: str
    rate: float


def finite_or_zero(value: object) -> float:
    """A finite float from an untrusted decoded value (a Redis field); anything else is 0."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


#: A node reports every second; a report this much older than that is late, and its lateness
#: counts as silence (a node that stopped reporting is ``offline`` after 5 s anyway).
REPORT_GRACE_S = 2.5
#: A sensor is stale only after this many of its usual gaps between deliveries (a BLE strap
#: delivering once a second, a batch window of 2 s under low attention).
STALE_DELIVERIES = 3.0


def stale_after(nominal_rate: float, delivery_gap_s: float = 0.0) -> float | None:
    """Seconds without a sample after which a sensor of ``nominal_rate`` Hz is stale: three
    periods, three of its usual gaps between deliveries (``delivery_gap_s``), at least
    :data:`STALE_MIN_S` (None: irregular sensors, which may be silent legitimately)."""
    if nominal_rate <= 0:
        return None
    return max(STALE_MIN_S, STALE_PERIODS / nominal_rate, STALE_DELIVERIES * max(delivery_gap_s, 0.0))


def silence_s(now: float, reported: float, last_data: float | None) -> float | None:
    """Seconds a sensor has been silent: from its last sample to its node's last report (the
    node's own clock, so a window refreshing late sees no false silence), plus the report's age
    when it is later than due (s; None: it never delivered)."""
    if last_data is None:
        return None
    late = now - reported
    return max(0.0, reported - last_data) + (late if late > REPORT_GRACE_S else 0.0)


def format_silence(seconds: float) -> str:
    """ "12 s", "3 min", "2.1 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sensor_health(
    rate: float,
    nominal_rate: float,
    silent_s: float | None,
    device_state: str = "streaming",
    delivery_gap_s: float = 0.0,
) -> SensorHealth:
    """Judge one sensor: ``rate`` measured (Hz), ``nominal_rate`` (Hz, ≤ 0 irregular),
    ``silent_s`` since its last sample arrived (None: never), ``device_state`` of its device,
    ``delivery_gap_s`` its usual gap between deliveries (s)."""
    limit = stale_after(nominal_rate, delivery_gap_s)
    dead = device_state in DEAD_DEVICE_STATES
    if silent_s is None:
        if dead:
            return SensorHealth("no data", f"no data ({device_state})", 0.0)
        return SensorHealth("waiting", "no data yet", 0.0)
    if dead or (limit is not None and silent_s > limit):
        state = "no data" if dead or silent_s > NO_DATA_AFTER_S else "stale"
        return SensorHealth(state, f"no data for {format_silence(silent_s)}", 0.0)
    if nominal_rate > 0 and rate < 0.9 * nominal_rate:
        return SensorHealth("rate low", "rate low", rate)
    if nominal_rate > 0 and rate > 1.1 * nominal_rate:
        return SensorHealth("rate high", "rate high", rate)
    return SensorHealth("ok", "ok", rate)
