"""Host time: wall-clock seconds read through the monotonic counter.

Arrival timestamps must never jump when NTP steps the wall clock, so each process anchors
the wall clock once and then advances it with ``perf_counter_ns`` (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import time


class HostClock:
    """Seconds since the Unix epoch, monotonic within a process (float64, ~0.25 us steps)."""

    __slots__ = ("_mono0", "_wall0")

    def __init__(self) -> None:
        self._wall0 = time.time_ns()
        self._mono0 = time.perf_counter_ns()

    def now(self) -> float:
        """Current host time in seconds."""
        return (self._wall0 + (time.perf_counter_ns() - self._mono0)) / 1e9

    def from_monotonic(self, mono_seconds: float) -> float:
        """Map a ``time.perf_counter()`` reading (seconds) to host time."""
        return self._wall0 / 1e9 + (mono_seconds - self._mono0 / 1e9)


_CLOCK = HostClock()


def host_time() -> float:
    """Host time now, seconds (process-wide anchor)."""
    return _CLOCK.now()


def host_clock() -> HostClock:
    """The process-wide :class:`HostClock`."""
    return _CLOCK
