"""Host time: wall-clock seconds read through the monotonic counter.

Arrival timestamps must never jump when NTP steps the wall clock, so each process anchors
the wall clock once and then advances it with ``perf_counter_ns`` (CLOCK_MONOTONIC).

Test hook (multi-host tests on one machine, where every "PC" shares one kernel clock):
``SENSORIUM_HOST_CLOCK_SKEW=offset_s,drift_ppm[,t_ref]`` makes this process's host clock read
``true + offset_s + drift_ppm·1e-6·(true − t_ref)`` (``t_ref``: Unix seconds, default the
process's start), so the true host → global mapping is known exactly. Read here only.
"""

from __future__ import annotations

import os
import time

#: the environment variable of the test hook above
SKEW_ENV = "SENSORIUM_HOST_CLOCK_SKEW"


def parse_skew(text: str, default_ref: float) -> tuple[float, float, float]:
    """``offset_s,drift_ppm[,t_ref]`` → (offset s, drift s/s, t_ref s); ValueError if malformed."""
    parts = [float(p) for p in text.split(",")]
    if len(parts) not in (2, 3) or not all(abs(p) < 1e12 for p in parts):
        raise ValueError(f"{SKEW_ENV} must be offset_s,drift_ppm[,t_ref], not {text!r}")
    return parts[0], parts[1] * 1e-6, parts[2] if len(parts) == 3 else default_ref


class HostClock:
    """Seconds since the Unix epoch, monotonic within a process (float64, ~0.25 us steps)."""

    __slots__ = ("_mono0", "_skew", "_wall0")

    def __init__(self, skew: str | None = None) -> None:
        self._wall0 = time.time_ns()
        self._mono0 = time.perf_counter_ns()
        #: (offset s, drift s/s, t_ref s) of the test hook, or None
        self._skew = parse_skew(skew, self._wall0 / 1e9) if skew else None

    def now(self) -> float:
        """Current host time in seconds."""
        t = (self._wall0 + (time.perf_counter_ns() - self._mono0)) / 1e9
        return t if self._skew is None else self._skewed(t)

    def from_monotonic(self, mono_seconds: float) -> float:
        """Map a ``time.perf_counter()`` reading (seconds) to host time."""
        t = self._wall0 / 1e9 + (mono_seconds - self._mono0 / 1e9)
        return t if self._skew is None else self._skewed(t)

    def _skewed(self, t: float) -> float:
        offset, drift, t_ref = self._skew  # type: ignore[misc]
        return t + offset + drift * (t - t_ref)


_CLOCK = HostClock(os.environ.get(SKEW_ENV) or None)


def host_time() -> float:
    """Host time now, seconds (process-wide anchor)."""
    return _CLOCK.now()


def host_clock() -> HostClock:
    """The process-wide :class:`HostClock`."""
    return _CLOCK
