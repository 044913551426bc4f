"""The simulated lab: realistic signals from devices with their own imperfect clocks.

Every simulated device has a clock with an origin, a drift (ppm) and a one-sided transport
delay (fixed + exponential jitter + rare spikes), delivering samples in packets the way BLE
notifications do. Sample values follow one participant's physiology (heart beats with
respiratory sinus arrhythmia, breathing, gaze with fixations/saccades/blinks, a waving
figure), all deterministic for a given seed and start time.

Device URIs: ``sim:chest``, ``sim:belt``, ``sim:wrist``, ``sim:eyes``, ``sim:pose``,
``sim:room``, ``sim:eeg?channels=32&rate=512``, ``sim:photodiode``; ``sim:lab`` is all of the
default lab (the EEG and the photodiode are opt-in). Clock parameters can be overridden per
URI: ``drift_ppm``, ``delay_ms``, ``jitter_ms``, ``spike_prob``, ``packet``, ``origin``,
``seed``, ``participant``; ``tick_ms`` sets how often the simulator delivers (default 10 ms).

The room's light (:data:`ROOM_LIGHT`) is what a sync check's flashes put on the screen. The
photodiode always watches it; ``sim:eyes`` and ``sim:pose`` watch it with a camera (a
``brightness`` sensor, quantized to their frames) when their URI sets ``flash_latency_ms``:
the time from a flash's presentation until the device's own timestamps say it saw it. Each
light-watching sensor keeps the true latency of every flash it saw (``details()``), so a
check's result can be compared with the truth.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..core.hostclock import host_time
from ..core.ids import make_id
from ..core.pose import N_LANDMARKS
from ..core.samples import EVENT_INTERVAL_KEY, SampleBatch, SensorInfo
from .base import (
    BatchSink,
    Device,
    DeviceDescriptor,
    DeviceError,
    DeviceState,
    DeviceURI,
    ProgressCallback,
    Transport,
)

TICK_S = 0.01


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """A simulated device clock and its link to the host.

    ``t_local = origin + (t_true - t_start) * (1 + drift_ppm * 1e-6)``; arrival of a packet is
    its last sample's true time + ``fixed_delay`` + Exp(``jitter``) (+ a spike of U(spike_range)
    with probability ``spike_prob``), never earlier than the previous packet (FIFO link).
    Times in seconds.
    """

    has_clock: bool = True
    origin: float = 1000.0
    drift_ppm: float = 0.0
    fixed_delay: float = 0.005
    jitter: float = 0.002
    spike_prob: float = 0.0
    spike_range: tuple[float, float] = (0.03, 0.1)

    @property
    def drift(self) -> float:
        return self.drift_ppm * 1e-6


class DelayLine:
    """Packetizes samples and stamps one-sided, FIFO-ordered arrival times."""

    def __init__(self, spec: ClockSpec, packet: int, rng: np.random.Generator) -> None:
        self.spec = spec
        self.packet = max(1, int(packet))
        # one generator per random quantity keeps each sequence independent of chunking
        seeds = rng.bit_generator.seed_seq.spawn(3)  # type: ignore[attr-defined]
        self.rng_jitter, self.rng_spike, self.rng_size = (np.random.default_rng(s) for s in seeds)
        self._held_t = np.empty(0)
        self._held_v: np.ndarray | None = None
        self._flight: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._last_arrival = -math.inf

    def push(self, t_true: np.ndarray, values: np.ndarray) -> None:
        """Add samples (in true-time order); complete packets get arrival times."""
        if self._held_v is not None and self._held_t.size:
            t_true = np.concatenate([self._held_t, t_true])
            values = np.concatenate([self._held_v, values])
        n_full = (t_true.size // self.packet) * self.packet
        self._held_t, self._held_v = t_true[n_full:], values[n_full:]
        if n_full == 0:
            return
        t_full, v_full = t_true[:n_full], values[:n_full]
        last = t_full[self.packet - 1 :: self.packet]
        s = self.spec
        delay = s.fixed_delay + (self.rng_jitter.exponential(s.jitter, last.size) if s.jitter > 0 else 0.0)
        if s.spike_prob > 0:
            spikes = self.rng_spike.random(last.size) < s.spike_prob
            delay = delay + spikes * self.rng_size.uniform(*s.spike_range, last.size)
        arrival = np.maximum.accumulate(np.concatenate([[self._last_arrival], last + delay]))[1:]
        self._last_arrival = float(arrival[-1])
        self._flight.append((t_full, v_full, np.repeat(arrival, self.packet)))

    def pop(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Samples that have arrived by ``now``: (t_true, values, t_arrival)."""
        out_t, out_v, out_a = [], [], []
        while self._flight:
            t, v, a = self._flight[0]
            k = int(np.searchsorted(a, now, side="right"))
            if k == 0:
                break
            out_t.append(t[:k])
            out_v.append(v[:k])
            out_a.append(a[:k])
            if k == a.size:
                self._flight.pop(0)
            else:
                self._flight[0] = (t[k:], v[k:], a[k:])
                break
        if not out_t:
            return None
        return np.concatenate(out_t), np.concatenate(out_v), np.concatenate(out_a)


# ---------------------------------------------------------------------------------------------
# Physiology: deterministic functions of absolute time for one participant
# ---------------------------------------------------------------------------------------------


#: how much of the past the beat times are kept for (s): the longest look back (HRV, 40 s) and more
BEAT_CACHE_S = 120.0


class Physiology:
    """One participant's heart and breathing, as pure functions of true time (s)."""

    def __init__(self, participant: int = 1) -> None:
        rng = np.random.default_rng(1000 + participant)
        self.hr0 = 1.05 + 0.2 * rng.random()  # beats per second (63-75 bpm)
        self.br0 = 0.22 + 0.06 * rng.random()  # breaths per second
        self.br_phase = rng.random()
        # heart-rate modulation: (amplitude beats/s, frequency Hz, phase rad)
        self.hr_terms = [
            (0.06, self.br0, 2 * math.pi * self.br_phase),  # respiratory sinus arrhythmia
            (0.04, 0.1, rng.uniform(0, 2 * math.pi)),  # Mayer waves
            (0.03, 0.013, rng.uniform(0, 2 * math.pi)),
            (0.015, 0.37, rng.uniform(0, 2 * math.pi)),
            (0.01, 0.61, rng.uniform(0, 2 * math.pi)),
        ]
        #: beats found so far: (from, to, times in [from, to)) (s)
        self._beats: tuple[float, float, np.ndarray] = (0.0, 0.0, np.empty(0))
        self._beats_lock = threading.Lock()

    def beat_phase(self, t: np.ndarray) -> np.ndarray:
        """Cumulative heartbeat count at time t (beats occur at integer crossings)."""
        phase = self.hr0 * t
        for a, f, p in self.hr_terms:
            phase = phase - a / (2 * math.pi * f) * (np.cos(2 * math.pi * f * t + p) - math.cos(p))
        return phase

    def beats_between(self, t0: float, t1: float) -> np.ndarray:
        """R-peak times in [t0, t1), accurate to ~1 us. Served from the beats already found
        (the last :data:`BEAT_CACHE_S` s): each sensor asks for overlapping windows on every
        step (HRV looks 40 s back), and solving the phase again each time was most of the
        simulated lab's CPU."""
        if t1 <= t0:
            return np.empty(0)
        with self._beats_lock:
            lo, hi, beats = self._beats
            if not lo <= t0 <= hi:  # before or apart from what is known: start over
                lo, hi, beats = t0, t0, np.empty(0)
            if t1 > hi:
                beats = np.concatenate([beats, self._solve_beats(hi, t1)])
                hi = t1
            cut = min(hi - BEAT_CACHE_S, t0)
            if cut > lo:
                beats, lo = beats[np.searchsorted(beats, cut) :], cut
            self._beats = (lo, hi, beats)
        i0, i1 = np.searchsorted(beats, [t0, t1])
        return beats[i0:i1].copy()

    def _solve_beats(self, t0: float, t1: float) -> np.ndarray:
        """R-peak times in [t0, t1) solved from the phase (``t1 > t0``)."""
        grid = np.arange(t0 - 0.01, t1 + 0.02, 0.01)
        ph = self.beat_phase(grid)
        k0, k1 = math.ceil(ph[0]), math.floor(ph[-1])
        if k1 < k0:
            return np.empty(0)
        targets = np.arange(k0, k1 + 1, dtype=np.float64)
        times = np.interp(targets, ph, grid)
        for _ in range(2):  # Newton refinement on the analytic phase
            rate = self.hr0 + sum(a * np.sin(2 * math.pi * f * times + p) for a, f, p in self.hr_terms)
            times = times - (self.beat_phase(times) - targets) / rate
        return times[(times >= t0) & (times < t1)]

    def breathing(self, t: np.ndarray) -> np.ndarray:
        """Breathing signal in [-1, 1] (inhale rising)."""
        ph = 2 * math.pi * (self.br0 * t + self.br_phase) + 0.3 * np.sin(2 * math.pi * 0.01 * t)
        return np.sin(ph) + 0.15 * np.sin(2 * ph + 0.5)


FLASH_PERIOD_S = 3.0


def lab_flashes(t0: float, t1: float) -> np.ndarray:
    """Times (s) in [t0, t1) of the lab's sync flashes: one per 3 s, at a deterministic
    pseudo-random point of the first half of each period (same for every device)."""
    k = np.arange(math.floor(t0 / FLASH_PERIOD_S) - 1, math.ceil(t1 / FLASH_PERIOD_S) + 1, dtype=np.int64)
    h = (k.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32)
    t = k * FLASH_PERIOD_S + 0.5 * FLASH_PERIOD_S * (h.astype(np.float64) / 2**32)
    return t[(t >= t0) & (t < t1)]


def flash_observer(
    frame_rate: float, rng: np.random.Generator
) -> Callable[[float, float], tuple[np.ndarray, np.ndarray]]:
    """Events of a camera at ``frame_rate`` seeing the flashes: in the first frame after each."""

    def events(t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        t = lab_flashes(t0, t1)
        seen = t + rng.uniform(0.0, 1.0 / frame_rate, t.size)
        return seen, np.ones((t.size, 1))

    return events


_PQRST = (  # (offset from R peak s, amplitude mV, width s)
    (-0.20, 0.15, 0.025),
    (-0.035, -0.12, 0.010),
    (0.0, 1.25, 0.011),
    (0.035, -0.25, 0.011),
    (0.26, 0.32, 0.045),
)


def ecg_waveform(t: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Sum of Gaussian P, Q, R, S, T waves around the nearest beats (mV)."""
    if beats.size == 0:
        return np.zeros_like(t)
    idx = np.searchsorted(beats, t)
    out = np.zeros_like(t)
    for shift in (-1, 0):
        j = np.clip(idx + shift, 0, beats.size - 1)
        dt = t - beats[j]
        for off, amp, width in _PQRST:
            out += amp * np.exp(-0.5 * ((dt - off) / width) ** 2)
    return out


# ---------------------------------------------------------------------------------------------
# Simulated sensors
# ---------------------------------------------------------------------------------------------


class SimSensor:
    """One simulated stream: yields (t_true, values) for true-time windows."""

    def __init__(self, info: SensorInfo, packet: int = 1) -> None:
        self.info = info
        self.packet = packet
        self.rng = np.random.default_rng(0)

    def start(self, t_start: float, clock: ClockSpec, rng: np.random.Generator) -> None:
        self.t_start = t_start
        self.clock = clock
        self.rng = rng

    def samples(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class RegularSensor(SimSensor):
    """Samples at exactly ``rate`` Hz *on the device clock* (so drift shows in host time)."""

    def __init__(self, info: SensorInfo, fn: Callable[[SimSensor, np.ndarray], np.ndarray], packet: int = 1) -> None:
        super().__init__(info, packet)
        self.fn = fn
        self.next_index = 0

    def samples(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        rate = self.info.nominal_rate
        scale = 1.0 + self.clock.drift
        last = math.floor((t1 - self.t_start) * scale * rate - 1e-9)
        if last < self.next_index:
            return np.empty(0), np.empty((0, self.info.channel_count))
        k = np.arange(self.next_index, last + 1, dtype=np.float64)
        self.next_index = last + 1
        t_true = self.t_start + (k / rate) / scale
        return t_true, self.fn(self, t_true)


class EventSensor(SimSensor):
    """Irregular samples at event times from ``events(t0, t1) -> (times, values)``."""

    def __init__(
        self, info: SensorInfo, events: Callable[[float, float], tuple[np.ndarray, np.ndarray]], packet: int = 1
    ) -> None:
        super().__init__(info, packet)
        self.events = events

    def samples(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        return self.events(t0, t1)


class RoomLight:
    """The simulated room's screen: the flashes a sync check presented, as host times (s).

    Thread-safe; holds the last ``keep`` flashes. ``level(t, rise)`` is the light (0-1) at host
    times ``t``: each flash ramps up linearly over ``rise`` s centred on its onset and down
    likewise at its end (``rise`` → 0: a step)."""

    def __init__(self, keep: int = 1000) -> None:
        self._lock = threading.Lock()
        self._flashes: dict[str, tuple[float, float]] = {}
        self._keep = keep

    def show(self, flash_id: str, on: float, off: float = math.inf) -> None:
        """Flash ``flash_id`` lit from host time ``on`` until ``off`` (s; inf: not yet off)."""
        with self._lock:
            self._flashes[flash_id] = (on, off)
            while len(self._flashes) > self._keep:
                self._flashes.pop(next(iter(self._flashes)))

    def clear(self) -> None:
        with self._lock:
            self._flashes.clear()

    def flashes(self) -> list[tuple[str, float, float]]:
        """(id, on, off) of every flash held, by onset."""
        with self._lock:
            items = [(k, on, off) for k, (on, off) in self._flashes.items()]
        return sorted(items, key=lambda f: f[1])

    def level(self, t: np.ndarray, rise: float) -> np.ndarray:
        """Light level (0-1) at host times ``t`` (s), shape like ``t``."""
        fl = self.flashes()
        out = np.zeros(np.shape(t))
        if not fl:
            return out
        on = np.array([f[1] for f in fl])
        off = np.array([f[2] for f in fl])
        half = max(rise, 1e-9) / 2.0
        idx = np.searchsorted(on, t + half, side="right") - 1
        has = idx >= 0
        j = idx[has]
        tt = t[has]
        up = np.clip((tt - on[j]) / max(rise, 1e-9) + 0.5, 0.0, 1.0)
        down = np.where(np.isfinite(off[j]), np.clip((tt - off[j]) / max(rise, 1e-9) + 0.5, 0.0, 1.0), 0.0)
        out[has] = up - down
        return out


#: The one simulated room of this process (a node's component shows the check's flashes in it).
ROOM_LIGHT = RoomLight()
#: Light-watching sensors generate this long (s) behind real time, so that a flash announced
#: through Redis a few ms after its presentation is known before they decide what they saw.
LIGHT_LAG_S = 0.25


class LightSensor(SimSensor):
    """Samples at ``rate`` Hz (device clock) of :data:`ROOM_LIGHT` as seen ``latency`` s late:
    ``dark + (bright - dark) * level + noise``.

    ``camera``: each frame is lit or not, its short exposure in the middle of its frame period
    (the light at ``t + period/2 - latency``), so the first frame showing a flash is stamped
    within half a period either side of presentation + latency (unbiased, quantized to its
    frames). Otherwise an analog light sensor (a photodiode) whose light ramps linearly over
    ``rise`` s centred on presentation + latency. The true latency of each flash — the first
    sample at or above half level, minus the presentation — is kept in :attr:`truth`."""

    def __init__(self, info: SensorInfo, latency: float, levels: tuple[float, float, float], camera: bool,
                 rise: float = 0.0) -> None:  # fmt: skip
        super().__init__(info, 1)
        self.latency, self.camera, self.rise = latency, camera, rise
        self.dark, self.bright, self.noise = levels
        self.next_index = 0
        self.truth: dict[str, float] = {}

    @property
    def _phase(self) -> float:
        """Where in its frame period a camera frame sees the light (s after its timestamp)."""
        return 0.5 / self.info.nominal_rate if self.camera else 0.0

    def samples(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        rate = self.info.nominal_rate
        scale = 1.0 + self.clock.drift
        last = math.floor((t1 - LIGHT_LAG_S - self.t_start) * scale * rate - 1e-9)
        if last < self.next_index:
            return np.empty(0), np.empty((0, 1))
        k = np.arange(self.next_index, last + 1, dtype=np.float64)
        self.next_index = last + 1
        t_true = self.t_start + (k / rate) / scale
        level = ROOM_LIGHT.level(t_true + self._phase - self.latency, 0.0 if self.camera else self.rise)
        values = self.dark + (self.bright - self.dark) * level + self.rng.normal(0, self.noise, t_true.size)
        self._note_truth(t_true)
        return t_true, values.reshape(-1, 1)

    def _note_truth(self, t_true: np.ndarray) -> None:
        period = 1.0 / self.info.nominal_rate
        for flash_id, on, _off in ROOM_LIGHT.flashes():
            seen_from = on + self.latency - self._phase  # the first sample time that shows it
            if flash_id in self.truth or seen_from > t_true[-1] or seen_from < t_true[0] - period:
                continue
            if self.camera:
                self.truth[flash_id] = float(t_true[int(np.searchsorted(t_true, seen_from, side="left"))] - on)
            else:  # interpolated at half level: exactly the latency
                self.truth[flash_id] = self.latency
        while len(self.truth) > ROOM_LIGHT._keep:
            self.truth.pop(next(iter(self.truth)))


#: how far back (s) the simulated eyes keep their planned movements: far more than any delivery lags
EYE_HISTORY_S = 60.0


class EyeModel:
    """Fixations, saccades and blinks generated ahead in time from a seeded RNG."""

    def __init__(self, rng: np.random.Generator, t_start: float) -> None:
        self.rng = rng
        self.knots_t = [t_start]
        self.knots_xy = [np.array([0.5, 0.5])]
        self.blinks: list[tuple[float, float]] = []
        self._next_blink = t_start + rng.exponential(3.5)
        self._generated_to = t_start

    def _extend(self, t: float) -> None:
        """Plan fixations, saccades and blinks to 1 s past ``t``; forget those that ended more
        than :data:`EYE_HISTORY_S` before it (kept forever, they grew the node's memory and
        made every call slower over a long session)."""
        if len(self.knots_t) > 64 and self.knots_t[1] < t - EYE_HISTORY_S:
            first = bisect.bisect_left(self.knots_t, t - EYE_HISTORY_S) - 1  # one knot before, to interpolate
            del self.knots_t[:first], self.knots_xy[:first]
            self.blinks = [b for b in self.blinks if b[1] >= t - EYE_HISTORY_S]
        while self.knots_t[-1] < t + 1.0:
            fix = float(np.clip(self.rng.lognormal(math.log(0.28), 0.35), 0.08, 1.5))
            target = np.clip(self.knots_xy[-1] + self.rng.normal(0, 0.18, 2), 0.05, 0.95)
            amplitude = float(np.hypot(*(target - self.knots_xy[-1])))
            sacc = 0.02 + 0.06 * amplitude
            self.knots_t += [self.knots_t[-1] + fix, self.knots_t[-1] + fix + sacc]
            self.knots_xy += [self.knots_xy[-1], target]
        while self._next_blink < t + 1.0:
            dur = float(np.clip(self.rng.normal(0.15, 0.03), 0.08, 0.3))
            self.blinks.append((self._next_blink, self._next_blink + dur))
            self._next_blink += dur + self.rng.exponential(3.5) + 0.5

    def gaze(self, t: np.ndarray) -> np.ndarray:
        self._extend(float(t[-1]) if t.size else 0.0)
        kt = np.asarray(self.knots_t)
        kxy = np.asarray(self.knots_xy)
        x = np.interp(t, kt, kxy[:, 0])
        y = np.interp(t, kt, kxy[:, 1])
        return np.stack([x, y], axis=1)

    def blink_mask(self, t: np.ndarray) -> np.ndarray:
        self._extend(float(t[-1]) if t.size else 0.0)
        mask = np.zeros(t.shape, dtype=bool)
        for b0, b1 in self.blinks:
            if b1 >= t[0] and b0 <= t[-1]:
                mask |= (t >= b0) & (t < b1)
        return mask

    def blink_events(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        self._extend(t1)
        times, vals = [], []
        for b0, b1 in self.blinks:
            for tt, v in ((b0, 1.0), (b1, 0.0)):
                if t0 <= tt < t1:
                    times.append(tt)
                    vals.append(v)
        order = np.argsort(times)
        return np.asarray(times)[order], np.asarray(vals).reshape(-1, 1)[order]


# Base standing pose in normalised image coordinates (x right, y down).
_BASE_POSE = np.array([
    (0.50, 0.16), (0.49, 0.145), (0.485, 0.145), (0.48, 0.145), (0.51, 0.145), (0.515, 0.145),
    (0.52, 0.145), (0.47, 0.155), (0.53, 0.155), (0.49, 0.18), (0.51, 0.18), (0.43, 0.27),
    (0.57, 0.27), (0.40, 0.38), (0.60, 0.38), (0.39, 0.48), (0.61, 0.48), (0.385, 0.50),
    (0.615, 0.50), (0.39, 0.505), (0.61, 0.505), (0.395, 0.495), (0.605, 0.495), (0.45, 0.52),
    (0.55, 0.52), (0.45, 0.68), (0.55, 0.68), (0.45, 0.84), (0.55, 0.84), (0.445, 0.86),
    (0.555, 0.86), (0.44, 0.875), (0.56, 0.875),
])  # fmt: skip


def waving_figure(t: np.ndarray, rng: np.random.Generator, phase: float = 0.0) -> np.ndarray:
    """(n, 99) skeleton rows: a figure waving its right arm and shifting its weight."""
    n = t.size
    pts = np.broadcast_to(_BASE_POSE, (n, N_LANDMARKS, 2)).copy()
    sway = 0.015 * np.sin(2 * math.pi * 0.4 * t + phase)
    pts[:, :, 0] += sway[:, None]
    bob = 0.006 * np.sin(2 * math.pi * 0.8 * t + phase)
    pts[:, :25, 1] += bob[:, None]
    # right arm (image left side is the figure's right: landmarks 12, 14, 16...)
    shoulder = pts[:, 12, :]
    upper = 0.12
    fore = 0.11
    a1 = -math.pi / 2 - 0.9 + 0.25 * np.sin(2 * math.pi * 1.1 * t + phase)  # upper arm raised
    a2 = a1 + 0.6 * np.sin(2 * math.pi * 1.1 * t + phase + 0.8) - 0.3
    elbow = shoulder + upper * np.stack([np.cos(a1 + math.pi), np.sin(a1 + math.pi)], 1) * [-1, 1]
    wrist = elbow + fore * np.stack([np.cos(a2 + math.pi), np.sin(a2 + math.pi)], 1) * [-1, 1]
    pts[:, 14] = elbow
    pts[:, 16] = wrist
    for lm, off in ((18, (0.012, -0.015)), (20, (0.004, -0.022)), (22, (-0.01, -0.012))):
        pts[:, lm] = wrist + off
    pts += rng.normal(0, 0.002, pts.shape)
    vis = np.full((n, N_LANDMARKS), 0.97)
    vis[:, [17, 19, 21, 29, 31]] = 0.6  # far-side hand and foot partly occluded
    vis += rng.normal(0, 0.01, vis.shape)
    out = np.empty((n, N_LANDMARKS, 3))
    out[:, :, :2] = np.clip(pts, 0.0, 1.0)
    out[:, :, 2] = np.clip(vis, 0.0, 1.0)
    return out.reshape(n, N_LANDMARKS * 3)


# ---------------------------------------------------------------------------------------------
# Device catalogue
# ---------------------------------------------------------------------------------------------

BLE_CLOCK = ClockSpec(True, 0.0, 0.0, 0.0075, 0.003, 0.01, (0.03, 0.1))


@dataclass(frozen=True, slots=True)
class SimDeviceSpec:
    key: str
    name: str
    clock: ClockSpec
    seed: int


SIM_DEVICES: dict[str, SimDeviceSpec] = {
    "chest": SimDeviceSpec(
        "chest", "Simulated chest strap (ECG, HR, HRV)", replace(BLE_CLOCK, origin=8123.25, drift_ppm=35.0), 11
    ),
    "belt": SimDeviceSpec("belt", "Simulated respiration belt", replace(BLE_CLOCK, origin=512.5, drift_ppm=-20.0), 12),
    "wrist": SimDeviceSpec("wrist", "Simulated wrist IMU", replace(BLE_CLOCK, origin=77.0, drift_ppm=12.0), 13),
    "eyes": SimDeviceSpec("eyes", "Simulated eye tracker", ClockSpec(True, 35000.0, -8.0, 0.002, 0.0005), 14),
    "pose": SimDeviceSpec("pose", "Simulated pose camera", ClockSpec(True, 1_700_000.0, 4.0, 0.040, 0.006), 15),
    "room": SimDeviceSpec("room", "Simulated room thermometer", ClockSpec(False, 0.0, 0.0, 0.001, 0.0003), 16),
    "eeg": SimDeviceSpec("eeg", "Simulated EEG amplifier", ClockSpec(True, 250.0, 20.0, 0.004, 0.0003), 17),
    "photodiode": SimDeviceSpec("photodiode", "Simulated photodiode (screen corner)",
                                ClockSpec(True, 5000.0, 15.0, 0.003, 0.0005), 18),
}  # fmt: skip
#: Devices started by ``--simulate`` / ``sim:lab`` (the EEG is opt-in: it is the heavy one).
LAB_DEVICES = ("chest", "belt", "wrist", "eyes", "pose", "room")


class SimulatedDevice(Device):
    """A simulated device: builds its sensors, runs its clock, delivers packets."""

    def __init__(self, uri: DeviceURI) -> None:
        key = uri.target
        spec = SIM_DEVICES.get(key)
        if spec is None:
            raise DeviceError(f"no simulated device {key!r} (have: {', '.join(SIM_DEVICES)}, lab)")
        participant = uri.int_param("participant", 1)
        suffix = "" if participant == 1 else f"-p{participant}"
        super().__init__(uri, make_id("sim", key + suffix), spec.name + (f" #{participant}" if suffix else ""))
        c = spec.clock
        self.clock = replace(
            c,
            origin=uri.float_param("origin", c.origin),
            drift_ppm=uri.float_param("drift_ppm", c.drift_ppm),
            fixed_delay=uri.float_param("delay_ms", c.fixed_delay * 1e3) / 1e3,
            jitter=uri.float_param("jitter_ms", c.jitter * 1e3) / 1e3,
            spike_prob=uri.float_param("spike_prob", c.spike_prob),
        )
        self.seed = uri.int_param("seed", spec.seed + 100 * participant)
        self.tick = uri.float_param("tick_ms", TICK_S * 1000.0) / 1000.0
        self.physiology = Physiology(participant)
        self.key = key
        self.participant = participant
        self._sensors = self._build_sensors(uri)
        self._lines: list[DelayLine] = []
        self._t_last = 0.0
        self.t_start = math.nan

    # -- catalogue ---------------------------------------------------------------------------
    def _info(self, attribute: str, rate: float, **kw: object) -> SensorInfo:
        return SensorInfo(
            sensor_id=make_id(self.device_id, attribute),
            attribute=attribute,
            device_id=self.device_id,
            device_name=self.name,
            transport="simulated",
            uri=str(self.uri),
            nominal_rate=rate,
            has_clock=self.clock.has_clock,
            fixed_latency=self.clock.fixed_delay,
            **kw,  # type: ignore[arg-type]
        )

    def _build_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """The sensors of the simulated device ``uri`` names (one builder per kind)."""
        builders = {
            "chest": self._chest_sensors, "belt": self._belt_sensors, "wrist": self._wrist_sensors,
            "eyes": self._eyes_sensors, "pose": self._pose_sensors, "room": self._room_sensors,
            "eeg": self._eeg_sensors, "photodiode": self._photodiode_sensors,
        }  # fmt: skip
        build = builders.get(self.key)
        if build is None:
            raise DeviceError(f"no simulated device {self.key!r}")
        return build(uri)

    def _flash_trigger(self, frame_rate: float) -> EventSensor:
        """The room's light flashes as a camera-like sensor at ``frame_rate`` (Hz) sees them:
        quantized to its frames (1-sigma = frame period / sqrt(12))."""
        sigma = {"timing_sigma": 1.0 / frame_rate / math.sqrt(12.0)}
        return EventSensor(
            self._info("trigger", 0.0, channel_names=("flash",), units=("",), extra=sigma),
            flash_observer(frame_rate, np.random.default_rng(self.seed + 5)),
        )

    def _camera_light(self, uri: DeviceURI, frame_rate: float) -> list[SimSensor]:
        """A camera's mean brightness (gray level 0-255) of the screen region at ``frame_rate``
        Hz, seeing each flash ``flash_latency_ms`` late — only when the URI sets it."""
        if uri.param("flash_latency_ms") is None:
            return []
        latency = uri.float_param("flash_latency_ms", 0.0) / 1e3
        info = self._info("brightness", frame_rate, channel_names=("brightness",), units=("gray",),
                          extra={"detector": "camera"})  # fmt: skip
        return [LightSensor(info, latency, (18.0, 230.0, 1.5), camera=True)]

    def _photodiode_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """Photodiode on the screen's corner: volts at ``rate`` Hz (default 1000), seeing each
        flash ``flash_latency_ms`` late (default 0) with a 2 ms rise."""
        rate = uri.float_param("rate", 1000.0)
        latency = uri.float_param("flash_latency_ms", 0.0) / 1e3
        if not 10 <= rate <= 100_000:
            raise DeviceError(f"{uri}: rate must be 10-100000 Hz")
        info = self._info("photodiode", rate, channel_names=("light",), units=("V",), extra={"detector": "analog"})
        return [LightSensor(info, latency, (0.05, 2.5, 0.005), camera=False, rise=0.002)]

    def _chest_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """Chest strap: ECG 512 Hz, heart rate and HRV events from the shared physiology."""
        phys = self.physiology
        pkt = uri.int_param("packet", 16)

        def ecg(s: SimSensor, t: np.ndarray) -> np.ndarray:
            beats = phys.beats_between(float(t[0]) - 2.0, float(t[-1]) + 2.0)
            wander = 0.06 * phys.breathing(t)
            return (ecg_waveform(t, beats) + wander + s.rng.normal(0, 0.012, t.size)).reshape(-1, 1)

        def hr_events(t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
            beats = phys.beats_between(t0 - 3.0, t1)
            if beats.size < 2:
                return np.empty(0), np.empty((0, 1))
            rr = np.diff(beats)
            sel = beats[1:] >= t0
            return beats[1:][sel], (60.0 / rr[sel]).reshape(-1, 1)

        def hrv_events(t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
            beats = phys.beats_between(t0 - 40.0, t1)
            idx = np.arange(beats.size)
            pts = np.flatnonzero((beats >= t0) & (np.round(phys.beat_phase(beats)) % 5 == 0) & (idx >= 31))
            rows = []
            for j in pts:
                rr = np.diff(beats[j - 31 : j + 1]) * 1000.0
                rows.append((math.sqrt(float(np.mean(np.diff(rr) ** 2))), float(np.std(rr, ddof=1))))
            return beats[pts], np.asarray(rows, dtype=np.float64).reshape(-1, 2)

        return [
            RegularSensor(self._info("ecg", 512.0), ecg, pkt),
            EventSensor(self._info("hr", 0.0), hr_events),
            EventSensor(self._info("hrv", 0.0, extra={EVENT_INTERVAL_KEY: 5.0 / phys.hr0}), hrv_events),
        ]

    def _belt_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """Respiration belt: 25 Hz, following the shared breathing."""
        phys = self.physiology

        def resp(s: SimSensor, t: np.ndarray) -> np.ndarray:
            return (512.0 + 180.0 * phys.breathing(t) + s.rng.normal(0, 2.0, t.size)).reshape(-1, 1)

        return [RegularSensor(self._info("respiration", 25.0), resp, uri.int_param("packet", 5))]

    def _wrist_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """Wrist IMU: accelerometer (m/s^2) and gyroscope (deg/s) at 100 Hz."""

        def imu(s: SimSensor, t: np.ndarray) -> np.ndarray:
            w = 2 * math.pi * 0.9 * t
            tilt = 0.35 * np.sin(w) + 0.1 * np.sin(2 * math.pi * 0.07 * t)
            g = 9.81
            acc = np.stack([g * np.sin(tilt), 0.8 * np.sin(2 * w), g * np.cos(tilt)], 1)
            dtilt = 0.35 * 2 * math.pi * 0.9 * np.cos(w) * 180 / math.pi
            gyro = np.stack([dtilt, 8 * np.sin(w + 1), 3 * np.cos(2 * w)], 1)
            out = np.concatenate([acc, gyro], 1)
            return out + s.rng.normal(0, 1, out.shape) * [0.05, 0.05, 0.05, 0.8, 0.8, 0.8]

        names = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
        units = ("m/s^2",) * 3 + ("deg/s",) * 3
        return [
            RegularSensor(self._info("imu", 100.0, channel_names=names, units=units), imu, uri.int_param("packet", 10))
        ]

    def _eyes_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """Eye tracker: gaze 200 Hz, aperture 50 Hz, blinks, worn, and the flash trigger it sees."""
        holder: dict[str, EyeModel] = {}

        def model(s: SimSensor) -> EyeModel:
            if "m" not in holder:
                holder["m"] = EyeModel(np.random.default_rng(self.seed * 7 + 1), s.t_start)
            return holder["m"]

        def gaze(s: SimSensor, t: np.ndarray) -> np.ndarray:
            m = model(s)
            xy = m.gaze(t) + s.rng.normal(0, 0.004, (t.size, 2))
            blink = m.blink_mask(t)
            conf = np.clip(0.95 + s.rng.normal(0, 0.02, t.size), 0, 1)
            conf[blink] = 0.05
            return np.column_stack([np.clip(xy, 0, 1), conf])

        def aperture(s: SimSensor, t: np.ndarray) -> np.ndarray:
            m = model(s)
            base = 11.0 + 0.6 * np.sin(2 * math.pi * 0.05 * t)
            closed = m.blink_mask(t)
            lr = np.column_stack([base, base - 0.4]) + s.rng.normal(0, 0.15, (t.size, 2))
            lr[closed] = 0.3
            return np.clip(lr, 0, 25)

        def blinks(t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
            holder_sensor = self._sensors[0]
            return model(holder_sensor).blink_events(t0, t1)

        def worn(s: SimSensor, t: np.ndarray) -> np.ndarray:
            return np.ones((t.size, 1))

        return [
            RegularSensor(self._info("eye_gaze", 200.0), gaze, uri.int_param("packet", 2)),
            RegularSensor(self._info("eye_aperture", 50.0), aperture, 1),
            EventSensor(self._info("eye_blink", 0.0), blinks),
            RegularSensor(self._info("eye_worn", 1.0), worn, 1),
            self._flash_trigger(200.0),
            *self._camera_light(uri, 200.0),
        ]  # fmt: skip

    def _pose_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """Pose camera: 33-landmark skeleton at 30 fps and the flash trigger it sees."""

        def pose(s: SimSensor, t: np.ndarray) -> np.ndarray:
            return waving_figure(t, s.rng, phase=0.7 * self.participant)

        return [
            RegularSensor(self._info("skeleton", 30.0), pose, 1),
            self._flash_trigger(30.0),
            *self._camera_light(uri, 30.0),
        ]  # fmt: skip

    def _room_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """Room sensor: temperature at 1 Hz."""

        def temp(s: SimSensor, t: np.ndarray) -> np.ndarray:
            return (22.4 + 0.3 * np.sin(2 * math.pi * t / 900.0) + s.rng.normal(0, 0.02, t.size)).reshape(-1, 1)

        return [RegularSensor(self._info("temperature", 1.0), temp, 1)]

    def _eeg_sensors(self, uri: DeviceURI) -> list[SimSensor]:
        """EEG: ``channels`` (1-1024) at ``rate`` Hz (1-100000), alpha rhythm plus noise (uV).
        ``flat_channel=K&flat_after=S[&flat_for=D]``: channel K (1-based) goes flat S seconds after
        the device starts, for D seconds (default: for good) — an electrode off its gel, a
        demonstrable bad channel."""
        channels = uri.int_param("channels", 32)
        rate = uri.float_param("rate", 512.0)
        if not 1 <= channels <= 1024 or not 1 <= rate <= 100_000:
            raise DeviceError(f"{uri}: channels must be 1-1024 and rate 1-100000 Hz")
        flat_channel = uri.int_param("flat_channel", 0)
        flat_after = uri.float_param("flat_after", 0.0)
        flat_for = uri.float_param("flat_for", math.inf)
        if not 0 <= flat_channel <= channels:
            raise DeviceError(f"{uri}: flat_channel must be 1-{channels}")
        started: list[float] = []
        prng = np.random.default_rng(self.seed)
        alpha_amp = prng.uniform(5, 20, channels)
        alpha_phase = prng.uniform(0, 2 * math.pi, channels)
        names = tuple(f"EEG{i + 1:02d}" for i in range(channels))

        def eeg(s: SimSensor, t: np.ndarray) -> np.ndarray:
            tau = t - s.t_start  # sin of epoch seconds (~1e11 rad) needs the slow argument reduction: 3x the cost
            env = 1.0 + 0.5 * np.sin(2 * math.pi * 0.1 * tau)
            alpha = np.sin(2 * math.pi * 10.0 * tau[:, None] + alpha_phase) * (alpha_amp * env[:, None])
            out = alpha + s.rng.normal(0, 4.0, (t.size, channels))
            if flat_channel and t.size:
                if not started:
                    started.append(float(t[0]))
                since = t - started[0] - flat_after
                out[(since >= 0) & (since < flat_for), flat_channel - 1] = 0.5  # the amplifier's offset, no signal
            return out

        info = self._info("eeg", rate, channel_names=names, units=("uV",) * channels)
        return [RegularSensor(info, eeg, uri.int_param("packet", 32))]

    # -- Device interface --------------------------------------------------------------------
    def sensors(self) -> list[SensorInfo]:
        return [s.info for s in self._sensors]

    def details(self) -> dict[str, Any]:
        """For light-watching sensors: ``flash_truth_ms`` (sensor id → flash id → the true
        latency, ms, with which it saw each flash of :data:`ROOM_LIGHT`)."""
        truth = {s.info.sensor_id: {k: round(v * 1e3, 6) for k, v in s.truth.items()}
                 for s in self._sensors if isinstance(s, LightSensor)}  # fmt: skip
        return {"flash_truth_ms": truth} if truth else {}

    def start(self, t_start: float) -> None:
        """Anchor the device at host time ``t_start`` (s) and reset its random streams."""
        self.t_start = t_start
        self._t_last = t_start
        seeds = np.random.SeedSequence(self.seed).spawn(2 * len(self._sensors))
        self._lines = []
        for i, s in enumerate(self._sensors):
            s.start(t_start, self.clock, np.random.default_rng(seeds[2 * i]))
            self._lines.append(DelayLine(self.clock, s.packet, np.random.default_rng(seeds[2 * i + 1])))

    def local_time(self, t_true: np.ndarray) -> np.ndarray:
        """Device clock reading at true (host) time ``t_true`` (s)."""
        return self.clock.origin + (t_true - self.t_start) * (1.0 + self.clock.drift)

    def step(self, now: float) -> list[SampleBatch]:
        """Generate everything up to host time ``now`` and return what has arrived by then."""
        out: list[SampleBatch] = []
        t0, self._t_last = self._t_last, now
        for sensor, line in zip(self._sensors, self._lines, strict=True):
            t_true, values = sensor.samples(t0, now)
            if t_true.size:
                line.push(t_true, np.asarray(values, dtype=np.float64))
            got = line.pop(now)
            if got is None:
                continue
            tt, vv, ta = got
            info = sensor.info
            dtype = np.float32 if info.channel_format == "float32" else np.float64
            t_local = self.local_time(tt) if self.clock.has_clock else None
            out.append(SampleBatch(info.sensor_id, info.attribute, ta, vv.astype(dtype), t_local))
            self.count_samples(out[-1])
        return out

    async def run(self, sink: BatchSink, stop: asyncio.Event) -> None:
        self.set_state(DeviceState.CONNECTING)
        self.start(lab_power_on(host_time()))
        self.set_state(DeviceState.STREAMING)
        try:
            while not stop.is_set():
                for batch in self.step(host_time()):
                    sink(batch)
                await asyncio.sleep(self.tick)  # a plain timer: a wait_for per tick cost 3× more
        finally:
            self.set_state(DeviceState.STOPPED)


#: Simulated devices started within this long (s) of each other power up together.
POWER_ON_WINDOW_S = 1.0
_power_on = [-math.inf]


def lab_power_on(now: float) -> float:
    """The host time (s) the simulated lab was switched on: devices started together (the
    lab of one node, within ``POWER_ON_WINDOW_S``) share it, so their first samples are
    simultaneous, as a lab's devices started by one switch are; a device connected later
    starts at ``now``."""
    if now - _power_on[0] > POWER_ON_WINDOW_S:
        _power_on[0] = now
    return _power_on[0]


def simulate(
    devices: list[SimulatedDevice], duration: float, t_start: float = 1_800_000_000.0, tick: float = TICK_S
) -> Iterator[SampleBatch]:
    """Run devices offline (no sleeping) from ``t_start`` for ``duration`` seconds."""
    for d in devices:
        d.start(t_start)
    steps = round(duration / tick)
    for i in range(1, steps + 1):
        now = t_start + i * tick
        for d in devices:
            yield from d.step(now)


def expand_uri(uri: DeviceURI) -> list[DeviceURI]:
    """``sim:lab`` → the default lab's device URIs; anything else unchanged."""
    if uri.scheme == "sim" and uri.target == "lab":
        return [DeviceURI("sim", key, uri.params) for key in LAB_DEVICES]
    return [uri]


class SimulatedTransport(Transport):
    scheme = "sim"
    label = "Simulated"

    async def discover(self, timeout: float = 5.0, progress: ProgressCallback | None = None) -> list[DeviceDescriptor]:
        found = []
        for i, (key, spec) in enumerate(SIM_DEVICES.items()):
            uri = f"sim:{key}" + ("?channels=32&rate=512" if key == "eeg" else "")
            found.append(
                DeviceDescriptor(uri, "simulated", spec.name, make_id("sim", key), {"lab": key in LAB_DEVICES})
            )
            if progress:
                progress((i + 1) / len(SIM_DEVICES), spec.name)
        return found

    def open(self, uri: DeviceURI) -> Device:
        if uri.target == "lab":
            raise DeviceError("sim:lab names several devices; expand it with expand_uri() first")
        return SimulatedDevice(uri)
