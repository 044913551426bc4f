"""Attention-based backpressure policy (the Sensocto server's 8-field config, pure logic).

Resolved table (Sensocto's server code and its architecture doc disagree; the server code
is what clients actually receive, so its numbers win and the doc's are recorded here only
to say they were considered):

=========  ===============  ==========  =========================
attention  batch window ms  batch size  (doc said window ms)
=========  ===============  ==========  =========================
high       100              1           50
medium     500              5           200
low        2000             10          1000
none       5000             20          5000
=========  ===============  ==========  =========================

Batch size counts device deliveries (a BLE notification, a serial line, one simulator
tick), like a Sensocto measurement message which may carry many ECG values. With
``high`` attention every delivery is published at once, so latency is the transport's.

system_load normal/elevated/high/critical multiplies the window by 1.0/1.5/3.0/5.0; memory
protection (memory >= 70 % of the limit) multiplies by another 5. Sensors with attention
low/none are *paused* under memory protection or critical load: they keep acquiring and
queue locally; nothing is dropped.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import IntEnum, StrEnum
from typing import Any


class Attention(IntEnum):
    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Attention) -> Attention:
        if isinstance(value, Attention):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).strip().upper()]
        except KeyError as exc:
            raise ValueError(f"unknown attention level {value!r} (high, medium, low, none)") from exc


class SystemLoad(StrEnum):
    NORMAL = "normal"
    ELEVATED = "elevated"
    HIGH = "high"
    CRITICAL = "critical"


#: (batch window ms, batch size) per attention level.
BASE_POLICY: dict[Attention, tuple[int, int]] = {
    Attention.HIGH: (100, 1),
    Attention.MEDIUM: (500, 5),
    Attention.LOW: (2000, 10),
    Attention.NONE: (5000, 20),
}
LOAD_MULTIPLIER: dict[SystemLoad, float] = {
    SystemLoad.NORMAL: 1.0,
    SystemLoad.ELEVATED: 1.5,
    SystemLoad.HIGH: 3.0,
    SystemLoad.CRITICAL: 5.0,
}
MEMORY_PROTECTION_THRESHOLD = 0.70
MEMORY_PROTECTION_MULTIPLIER = 5.0
PRESSURE_WEIGHTS = {"cpu": 0.45, "pubsub": 0.30, "queues": 0.15, "memory": 0.10}
LOAD_THRESHOLDS = ((0.85, SystemLoad.CRITICAL), (0.70, SystemLoad.HIGH), (0.50, SystemLoad.ELEVATED))
LOAD_INTERVAL_S = 2.0
CPU_WINDOW_SAMPLES = 5
#: Boost periods (s) after focus/hover is lost, at normal load.
FOCUS_BOOST_S = 15.0
HOVER_BOOST_S = 8.0


@dataclass(frozen=True, slots=True)
class BackpressureConfig:
    """The 8 fields Sensocto's server sends, with the same names and units (ms)."""

    attention_level: str
    system_load: str
    memory_protection_active: bool
    paused: bool
    recommended_batch_window: int
    recommended_batch_size: int
    load_multiplier: float
    timestamp: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BackpressureConfig:
        def flag(v: object) -> bool:
            return v in (True, 1, "1", "true", "True", b"1", b"true")

        return cls(
            attention_level=str(d["attention_level"]),
            system_load=str(d["system_load"]),
            memory_protection_active=flag(d["memory_protection_active"]),
            paused=flag(d["paused"]),
            recommended_batch_window=int(d["recommended_batch_window"]),
            recommended_batch_size=int(d["recommended_batch_size"]),
            load_multiplier=float(d["load_multiplier"]),
            timestamp=int(d["timestamp"]),
        )

    def same_policy(self, other: BackpressureConfig | None) -> bool:
        """True when only the timestamp differs (no need to re-send)."""
        return other is not None and self.policy_key() == other.policy_key()

    def policy_key(self) -> tuple:
        return (
            self.attention_level,
            self.system_load,
            self.memory_protection_active,
            self.paused,
            self.recommended_batch_window,
            self.recommended_batch_size,
            self.load_multiplier,
        )


def compute_config(
    attention: Attention | str,
    system_load: SystemLoad | str = SystemLoad.NORMAL,
    memory_protection: bool = False,
    now_ms: int = 0,
) -> BackpressureConfig:
    """The backpressure config for one sensor, exactly as the Sensocto server computes it."""
    att = Attention.parse(attention)
    load = SystemLoad(system_load)
    base_window, base_size = BASE_POLICY[att]
    low_priority = att in (Attention.LOW, Attention.NONE)
    paused = low_priority and (memory_protection or load is SystemLoad.CRITICAL)
    multiplier = LOAD_MULTIPLIER[load] * (MEMORY_PROTECTION_MULTIPLIER if memory_protection else 1.0)
    return BackpressureConfig(
        attention_level=att.label,
        system_load=load.value,
        memory_protection_active=memory_protection,
        paused=paused,
        recommended_batch_window=math.trunc(base_window * multiplier),
        recommended_batch_size=base_size,
        load_multiplier=multiplier,
        timestamp=int(now_ms),
    )


def pressure(cpu: float, pubsub: float, queues: float, memory: float) -> float:
    """Weighted pressure in [0, 1] from utilisations in [0, 1]."""
    parts = {"cpu": cpu, "pubsub": pubsub, "queues": queues, "memory": memory}
    return sum(PRESSURE_WEIGHTS[k] * min(max(float(v), 0.0), 1.0) for k, v in parts.items())


def load_level(p: float) -> SystemLoad:
    """System load level for a pressure value."""
    for threshold, level in LOAD_THRESHOLDS:
        if p >= threshold:
            return level
    return SystemLoad.NORMAL


class LoadEstimator:
    """Rolling system-load estimate: CPU averaged over the last 5 one-second samples."""

    def __init__(self) -> None:
        self._cpu: deque[float] = deque(maxlen=CPU_WINDOW_SAMPLES)

    def add_cpu_sample(self, cpu_fraction: float) -> None:
        self._cpu.append(min(max(cpu_fraction, 0.0), 1.0))

    @property
    def cpu(self) -> float:
        return sum(self._cpu) / len(self._cpu) if self._cpu else 0.0

    def assess(self, pubsub: float, queues: float, memory: float) -> tuple[SystemLoad, bool, float]:
        """(load level, memory protection active, pressure) from current utilisations."""
        p = pressure(self.cpu, pubsub, queues, memory)
        return load_level(p), memory >= MEMORY_PROTECTION_THRESHOLD, p


@dataclass(slots=True)
class ViewState:
    """What one viewer (a panel, a GUI) currently does with a sensor."""

    pinned: bool = False
    focused: bool = False
    hovered: bool = False
    visible: bool = False
    registered: bool = True


class AttentionTracker:
    """Per-sensor attention from viewer states with Sensocto's boost periods.

    Call :meth:`set_view` whenever a viewer's state changes and :meth:`level` to read the
    sensor's level at time ``now`` (seconds). Losing focus keeps ``high`` for the focus
    boost (15 s at normal load), losing hover for the hover boost (8 s); under load both
    are divided by the load multiplier.
    """

    def __init__(self) -> None:
        self._views: dict[tuple[str, str], ViewState] = {}
        self._focus_lost: dict[str, float] = {}
        self._hover_lost: dict[str, float] = {}
        self._forced: dict[str, Attention] = {}

    def set_view(self, sensor_id: str, viewer: str, state: ViewState, now: float) -> None:
        key = (sensor_id, viewer)
        old = self._views.get(key)
        if old is not None:
            if old.focused and not state.focused:
                self._focus_lost[sensor_id] = now
            if old.hovered and not state.hovered:
                self._hover_lost[sensor_id] = now
        self._views[key] = state

    def remove_viewer(self, viewer: str, now: float) -> None:
        for key in [k for k in self._views if k[1] == viewer]:
            self.set_view(key[0], viewer, ViewState(registered=False), now)
            del self._views[key]

    def force_minimum(self, sensor_id: str, level: Attention | None) -> None:
        """Floor the sensor's attention (recording sessions force ``medium``)."""
        if level is None:
            self._forced.pop(sensor_id, None)
        else:
            self._forced[sensor_id] = level

    def level(self, sensor_id: str, now: float, load: SystemLoad = SystemLoad.NORMAL) -> Attention:
        views = [v for (s, _), v in self._views.items() if s == sensor_id]
        scale = 1.0 / LOAD_MULTIPLIER[load]
        if (
            any(v.pinned or v.focused or v.hovered for v in views)
            or now - self._focus_lost.get(sensor_id, -math.inf) < FOCUS_BOOST_S * scale
            or now - self._hover_lost.get(sensor_id, -math.inf) < HOVER_BOOST_S * scale
        ):
            level = Attention.HIGH
        elif any(v.visible for v in views):
            level = Attention.MEDIUM
        elif any(v.registered for v in views):
            level = Attention.LOW
        else:
            level = Attention.NONE
        return max(level, self._forced.get(sensor_id, Attention.NONE))

    def sensors(self) -> set[str]:
        return {s for s, _ in self._views} | set(self._forced)


@dataclass(slots=True)
class FlushDecision:
    flush: bool
    reason: str = ""


def should_flush(pending_messages: int, oldest_age_ms: float, config: BackpressureConfig) -> FlushDecision:
    """Whether a sender with ``pending_messages`` queued (oldest ``oldest_age_ms`` old) sends now."""
    if pending_messages <= 0:
        return FlushDecision(False)
    if config.paused:
        return FlushDecision(False, "paused")
    if pending_messages >= config.recommended_batch_size:
        return FlushDecision(True, "size")
    if oldest_age_ms >= config.recommended_batch_window:
        return FlushDecision(True, "window")
    return FlushDecision(False)
