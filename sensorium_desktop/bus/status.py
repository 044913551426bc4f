"""A snapshot of the lab as Redis sees it (for ``sensorium status`` and the GUI)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import redis

from ..core.clockdomain import format_offset
from ..core.health import finite_or_zero, sensor_health
from .keys import Keys
from .registry import OFFLINE_AFTER_S, list_devices, list_sensors


def _decode(d: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode("utf-8", "replace") for k, v in d.items()}


def read_status(c: redis.Redis, keys: Keys) -> dict[str, Any]:
    """Nodes (with heartbeat age and telemetry), election, checkpoint, sensors, devices."""
    now = time.time()
    nodes: dict[str, Any] = {}
    for nid in sorted(x.decode() for x in c.smembers(keys.nodes)):
        info = _decode(c.hgetall(keys.node_info(nid)))
        hb = c.get(keys.heartbeat(nid))
        tele = c.get(keys.telemetry(nid))
        entry: dict[str, Any] = {"info": info, "alive": hb is not None}
        if hb:
            try:
                beat = json.loads(hb)
                entry["heartbeat_age_s"] = round(now - float(beat.get("time", now)), 3)
                entry["priority"] = beat.get("priority")
            except ValueError:
                pass
        if tele:
            try:
                entry["telemetry"] = json.loads(tele)
            except ValueError:
                pass
        worker = c.get(keys.telemetry(nid) + ":worker")
        if worker:
            try:
                w = json.loads(worker)
                entry["worker"] = {k: w.get(k) for k in ("pid", "lag_s", "batches", "duplicates", "missing",
                                                        "groups_written", "stale_rejections", "is_leader")}  # fmt: skip
            except ValueError:
                pass
        offset = c.hgetall(keys.host_offset(nid))
        if offset:
            entry["host_offset"] = _decode(offset)
        nodes[nid] = entry
    leader = _decode(c.hgetall(keys.leader))
    term = c.get(keys.term)
    committed = c.get(keys.checkpoint_committed)
    proposed = c.get(keys.checkpoint_proposed)
    proposal = None
    if proposed:
        try:
            p = json.loads(proposed)
            acks = sorted(x.decode() for x in c.smembers(keys.checkpoint_acks(p["id"])))
            proposal = {"id": p["id"], "term": p["term"], "acks": acks}
        except (ValueError, KeyError):
            proposal = None
    sensors = []
    devices = list_devices(c, keys)
    rates: dict[str, float] = {}
    last: dict[str, float] = {}
    device_state: dict[str, str] = {}
    for d in devices:
        state = "offline" if now - d.updated > OFFLINE_AFTER_S else d.state
        rates.update({sid: finite_or_zero(r) for sid, r in (d.health.get("rates") or {}).items()})
        last.update({sid: finite_or_zero(t) for sid, t in (d.health.get("last_data") or {}).items()})
        device_state.update(dict.fromkeys(d.sensor_ids, state))
    for s in list_sensors(c, keys):
        clock = _decode(c.hgetall(keys.clock(s.sensor_id)))
        silent = max(0.0, now - last[s.sensor_id]) if s.sensor_id in last else None
        health = sensor_health(rates.get(s.sensor_id, 0.0), s.nominal_rate, silent,
                               device_state.get(s.sensor_id, "offline"))  # fmt: skip
        sensors.append(
            {
                "sensor_id": s.sensor_id,
                "attribute": s.attribute,
                "device": s.device_id,
                "node": s.node_id,
                "nominal_rate": s.nominal_rate,
                "rate": round(health.rate, 3),
                "health": health.state,
                "health_text": health.text,
                "silent_s": None if silent is None else round(silent, 3),
                "stream_length": c.xlen(keys.stream(s.sensor_id)),
                "clock": clock,
            }
        )
    return {
        "time": now,
        "nodes": nodes,
        "leader": leader,
        "term": int(term) if term else 0,
        "checkpoint": _summary(json.loads(committed)) if committed else None,
        "proposal": proposal,
        "groups": c.xlen(keys.groups),
        "sensors": sensors,
        "devices": [
            {
                "device_id": d.device_id,
                "name": d.name,
                "state": "offline" if now - d.updated > OFFLINE_AFTER_S else d.state,
                "uri": d.uri,
                "node": d.node_id,
                "message": d.message,
            }
            for d in devices
        ],
    }


def read_backpressure(c: redis.Redis, keys: Keys, sensor_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The 8-field backpressure config each node published per sensor (decoded JSON values)."""
    pipe = c.pipeline(transaction=False)
    for sid in sensor_ids:
        pipe.hgetall(keys.backpressure(sid))
    out: dict[str, dict[str, Any]] = {}
    for sid, raw in zip(sensor_ids, pipe.execute(), strict=True):
        cfg: dict[str, Any] = {}
        for k, v in raw.items():
            try:
                cfg[k.decode()] = json.loads(v)
            except ValueError:
                cfg[k.decode()] = v.decode("utf-8", "replace")
        if cfg:
            out[sid] = cfg
    return out


def clock_summary(clock: dict[str, str], now: float) -> str:
    """One line of a sensor's clock state: domain, offset to the host clock, σ (µs), drift
    (ppm), typical transport latency (ms), resets, late samples, age of the last update."""

    def num(key: str, default: float = math.nan) -> float:
        try:
            return float(clock.get(key, default))
        except ValueError:
            return math.nan

    offset = num("offset_mean", num("offset"))
    updated = num("updated")
    age = f"{max(now - updated, 0.0):.1f} s ago" if math.isfinite(updated) and now else "?"
    kind = clock.get("kind", "fitted")
    return (f"{clock.get('domain', '?')} ({kind})  offset {format_offset(offset)}  ±{num('uncertainty') * 1e6:.1f} µs"
            f"  drift {num('drift') * 1e6:+.2f} ppm  latency {num('latency') * 1e3:.1f} ms"
            f"  resets {int(num('resets', 0))}  late {int(num('late', 0))}  updated {age}")  # fmt: skip


def _summary(cp: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "seq", "term", "leader", "time", "committed_at", "acks", "live_nodes", "groups_cursor", "digest")
    return {k: cp.get(k) for k in keep} | {"sensors": len(cp.get("clocks", {}))}


def format_status(s: dict[str, Any]) -> str:
    """Human-readable status."""
    lines = []
    leader = s.get("leader") or {}
    lines.append(f"leader: {leader.get('node', '(none)')}   term: {s.get('term', 0)}")
    cp = s.get("checkpoint")
    if cp:
        age = s["time"] - float(cp.get("committed_at") or s["time"])
        lines.append(f"last committed checkpoint: {cp.get('id')} by {cp.get('leader')} {age:.1f} s ago, "
                     f"ACKs {', '.join(cp.get('acks', []))} of {cp.get('live_nodes', '?')} live")  # fmt: skip
    else:
        lines.append("last committed checkpoint: none")
    pr = s.get("proposal")
    if pr and (not cp or pr["id"] != cp.get("id")):
        lines.append(f"pending proposal: {pr['id']} ACKs {', '.join(pr['acks'])}")
    lines.append(f"groups written: {s.get('groups', 0)}")
    lines.append(f"nodes ({len(s['nodes'])}):")
    for nid, n in s["nodes"].items():
        age = n.get("heartbeat_age_s")
        alive = f"heartbeat {age:.1f} s ago" if age is not None else ("alive" if n["alive"] else "DOWN")
        tele = n.get("telemetry", {})
        lat = tele.get("latency_ms", {})
        lat_txt = f", arrival→redis p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms" if lat else ""
        role = "LEADER" if s.get("leader", {}).get("node") == nid else "follower"
        w = n.get("worker") or {}
        wtxt = f", worker lag {w['lag_s']:.2f} s" if w.get("lag_s") is not None else ""
        lines.append(f"  {nid:<24} {role:<8} prio {n.get('priority', n['info'].get('priority', '?'))}  {alive}"
                     f"  queue {tele.get('queue_depth', '?')}{lat_txt}{wtxt}")  # fmt: skip
    lines.append(f"devices ({len(s['devices'])}):")
    for d in s["devices"]:
        msg = f"  ({d['message']})" if d["message"] else ""
        lines.append(f"  {d['device_id']:<24} {d['state']:<12} {d['uri']}{msg}")
    lines.append(f"sensors ({len(s['sensors'])}):")
    for x in s["sensors"]:
        clock = x["clock"]
        cl = ""
        if clock:
            cl = "  " + clock_summary(clock, float(s.get("time", 0.0)))
        lines.append(f"  {x['sensor_id']:<28} {x['attribute']:<12} {x['rate']:8.1f}/{x['nominal_rate']:g} Hz"
                     f"  {x['health_text']}{cl}")  # fmt: skip
    return "\n".join(lines)
