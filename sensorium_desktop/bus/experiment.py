"""The seed's minimal deterministic experiment, run through the real SyncEngine and Redis.

Four sensors with their own clocks (offsets and drifts drawn from ``seed``, known fixed
transport delays plus random jitter) see 30 calibration flashes one second apart, which
lets their clock models converge; then one more event is observed by all four, plus a
distractor camera that reports 300 ms later.
The result is that single time slice with normalized membership probabilities. It uses a
private key prefix that is deleted afterwards, so two runs with one seed print the same.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from ..core.association import AssociationParams
from .engine import SyncEngine

SENSORS = (  # (sensor id, type, timing sigma s, transport delay s)
    ("camera-1", "camera", 0.008, 0.030),
    ("camera-2", "camera", 0.008, 0.035),
    ("imu-1", "imu", 0.002, 0.008),
    ("mic-1", "microphone", 0.0005, 0.004),
)
DISTRACTOR = ("camera-3", "camera", 0.008, 0.030)
T0 = 1_800_000_000.0


def run_experiment(seed: int = 42, redis_url: str | None = None) -> dict[str, Any]:
    """Run it and return ``{"seed", "event_time", "groups": [...]}`` (rounded to 1 us / 1e-6)."""
    rng = np.random.default_rng(seed)
    clocks = {s[0]: (rng.uniform(10, 1e5), rng.uniform(-50e-6, 50e-6)) for s in (*SENSORS, DISTRACTOR)}
    prefix = f"experiment-{uuid.uuid4().hex[:8]}"
    engine = SyncEngine(redis_url, node_id="experiment", prefix=prefix, use_global_clock=False,
                        params=AssociationParams())  # fmt: skip
    for sid, _, _, delay in (*SENSORS, DISTRACTOR):
        engine.configure_sensor(sid, fixed_latency=delay)  # known transport delays, as a lab would configure

    def observe(sensor: tuple[str, str, float, float], t_true: float, shift: float = 0.0) -> None:
        sid, kind, sigma, delay = sensor
        origin, drift = clocks[sid]
        seen = t_true + shift + rng.normal(0.0, sigma)
        t_local = origin + (seen - T0) * (1 + drift)
        engine.ingest(sid, kind, t_local, sigma=sigma, t_arrival=seen + delay + rng.exponential(0.002))

    try:
        for k in range(30):
            for s in SENSORS:
                observe(s, T0 + k)
        engine.step()
        event = T0 + 31.0 + rng.uniform(0, 0.5)
        for s in SENSORS:
            observe(s, event)
        observe(DISTRACTOR, event, shift=0.3)
        groups = engine.step()
    finally:
        engine.c.delete(*engine.c.keys(engine.keys.pattern) or [engine.keys.lab])
        engine.close()
    out = []
    for g in groups:
        out.append({
            "t_global": round(g["t_global"], 6),
            "term": g["term"],
            "members": [{"sensor_id": m["sensor_id"], "probability": round(m["probability"], 6)}
                        for m in sorted(g["members"], key=lambda m: m["sensor_id"])],
        })  # fmt: skip
    return {"seed": seed, "event_time": round(event, 6), "groups": out}
