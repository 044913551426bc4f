"""Drop-in for the seed library ``sensorium`` (afeldman/sensorium), on the seed's own Redis keys.

``from sensorium import SyncEngine``; ``SyncEngine(redis_url, node_id, heartbeat_ttl=5).step()``
behaves as the seed's Rust engine does, so its tests, ``examples/cli.py`` and experiment scripts
run unchanged against Sensorium Desktop:

- observations: ``obs:{sensor_id}:{int(t_local*1e9)}`` JSON (``sensor_id``, ``sensor_type``,
  ``t_local`` s, ``sigma`` s, ``payload_ref``), written by the caller with ``SETEX``; every step
  re-reads all unexpired ones (never deletes them);
- clock states ``sync:state:{sensor_id}`` JSON ``offset_mean``, ``offset_var``, ``drift``
  (default 0.0, 0.1, 1.0): ``t_global = offset_mean + drift * t_local``, variance
  ``offset_var + sigma²``;
- election: ``election:bully:hb:{node_id}`` = 1 with TTL ``heartbeat_ttl``; the highest live node
  id (lexicographic) is master and alone writes ``sync:group:g:{round(t_global*1e9)}``;
- ``step()``: ``[]`` without observations, else exactly one group: the precision-weighted mean
  time and, per observation, its Gaussian density around it normalised to sum 1.

Where the seed's semantics fall short (one group for everything, a distractor always "joins"),
Sensorium Desktop's own engine (``sensorium_desktop.SyncEngine``) groups by time slice with an
outlier model; see docs/seed-compat.md.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import redis

__all__ = ["SyncEngine"]

log = logging.getLogger(__name__)

DEFAULT_STATE = {"offset_mean": 0.0, "offset_var": 0.1, "drift": 1.0}
HEARTBEAT_PREFIX = "election:bully:hb:"


def gaussian_pdf(x: float, var: float) -> float:
    """Density of N(0, var) at ``x`` (0 for a non-positive variance), as the seed computes it."""
    if var <= 0.0:
        return 0.0
    sigma = math.sqrt(var)
    return math.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))


def group(observations: list[dict[str, Any]], states: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The seed's single group of ``observations`` under their sensors' clock ``states``."""
    times, variances = [], []
    for obs in observations:
        st = states.get(obs["sensor_id"], DEFAULT_STATE)
        times.append(st["offset_mean"] + st["drift"] * obs["t_local"])
        variances.append(max(max(st["offset_var"], 0.0) + obs["sigma"] ** 2, 1e-12))
    weights = [1.0 / v for v in variances]
    t_hat = sum(w * t for w, t in zip(weights, times, strict=True)) / sum(weights)
    densities = [gaussian_pdf(t - t_hat, v) for t, v in zip(times, variances, strict=True)]
    total = sum(densities)
    members = [{"sensor_id": obs["sensor_id"], "probability": d / total if total > 0 else 0.0}
               for obs, d in zip(observations, densities, strict=True)]  # fmt: skip
    return {"t_global": t_hat, "members": members}


class SyncEngine:
    """The seed's engine: ``SyncEngine(redis_url, node_id, heartbeat_ttl=5)``."""

    def __init__(self, redis_url: str, node_id: str, heartbeat_ttl: int | None = 5) -> None:
        self.redis_url = redis_url
        self.node_id = node_id
        self.heartbeat_ttl = int(heartbeat_ttl or 5)
        self.skipped = 0  # malformed observation entries (the seed would raise)

    def _observations(self, c: redis.Redis) -> list[dict[str, Any]]:
        keys = sorted(c.scan_iter(match="obs:*", count=1000))
        out = []
        for key, raw in zip(keys, c.mget(keys) if keys else [], strict=True):
            if raw is None:  # expired between SCAN and MGET
                continue
            try:
                obs = json.loads(raw)
                obs["t_local"], obs["sigma"] = float(obs["t_local"]), float(obs["sigma"])
                if not (math.isfinite(obs["t_local"]) and math.isfinite(obs["sigma"])) or not obs.get("sensor_id"):
                    raise ValueError("non-finite time or no sensor_id")
            except (ValueError, TypeError, KeyError) as exc:
                self.skipped += 1
                log.warning("sensorium: skipping malformed observation %s: %s", key, exc)
                continue
            out.append(obs)
        return out

    def _states(self, c: redis.Redis, sensor_ids: list[str]) -> dict[str, dict[str, float]]:
        raws = c.mget([f"sync:state:{sid}" for sid in sensor_ids]) if sensor_ids else []
        states = {}
        for sid, raw in zip(sensor_ids, raws, strict=True):
            try:
                st = json.loads(raw) if raw is not None else DEFAULT_STATE
                states[sid] = {k: float(st[k]) for k in DEFAULT_STATE}
            except (ValueError, TypeError, KeyError):
                states[sid] = dict(DEFAULT_STATE)
        return states

    def master(self, c: redis.Redis) -> str | None:
        """The highest live node id (the seed's bully election)."""
        ids = sorted(k.decode().removeprefix(HEARTBEAT_PREFIX) for k in c.scan_iter(match=HEARTBEAT_PREFIX + "*"))
        return ids[-1] if ids else None

    def step(self) -> list[dict[str, Any]]:
        """Heartbeat, read every unexpired observation, group them; the master writes the group."""
        c = redis.Redis.from_url(self.redis_url)
        try:
            c.set(HEARTBEAT_PREFIX + self.node_id, 1, ex=self.heartbeat_ttl)
            observations = self._observations(c)
            if not observations:
                return []
            result = group(observations, self._states(c, sorted({o["sensor_id"] for o in observations})))
            if self.master(c) == self.node_id:
                ns = result["t_global"] * 1e9
                group_id = int(math.copysign(math.floor(abs(ns) + 0.5), ns))  # Rust's round(): half away from 0
                c.set(f"sync:group:g:{group_id}", json.dumps(result))
            return [result]
        finally:
            c.close()
