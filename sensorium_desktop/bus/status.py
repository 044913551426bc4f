"""A snapshot of the lab as Redis sees it (for ``sensorium status`` and the GUI)."""

from __future__ import annotations

import json
import logging
import math
import time

import redis

from ..core.backpressure import BackpressureConfig
from ..core.clockdomain import format_offset
from ..core.health import finite_or_zero, sensor_health, silence_s
from ..core.quality import parse_quality, quality_text
from ..core.status import (
    CheckpointSummary,
    DeviceSummary,
    LabStatus,
    NodeStatus,
    SensorStatus,
    Telemetry,
    WorkerStats,
    host_clock_text,
)
from .globalclock import OffsetEstimate
from .keys import Keys
from .registry import OFFLINE_AFTER_S, DeviceStatus, decode_sensor

log = logging.getLogger(__name__)


def _decode(d: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode("utf-8", "replace") for k, v in d.items()}


def _checkpoint(raw: bytes | None, acks: list[str] | None = None) -> CheckpointSummary | None:
    try:
        cp = json.loads(raw) if raw else None
        if not isinstance(cp, dict):
            return None
        return CheckpointSummary(
            id=str(cp["id"]), term=int(cp["term"]), leader=str(cp.get("leader", "")), seq=int(cp.get("seq", 0)),
            time=float(cp.get("time", math.nan)), committed_at=float(cp.get("committed_at", math.nan)),
            acks=acks if acks is not None else [str(a) for a in cp.get("acks", [])],
            live_nodes=int(cp.get("live_nodes", 0)), groups_cursor=float(cp.get("groups_cursor", 0.0)),
            sensors=len(cp.get("clocks", {})),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


def read_status(c: redis.Redis, keys: Keys) -> LabStatus:
    """Nodes (heartbeat age, telemetry, worker), election, checkpoint, sensors, devices — in two
    pipelined round trips whatever the lab's size: the sets and lab-wide keys, then every
    node's, device's and sensor's keys."""
    now = time.time()
    first = c.pipeline(transaction=False)
    for key in (keys.nodes, keys.devices, keys.sensors):
        first.smembers(key)
    first.hgetall(keys.leader)
    first.get(keys.term)
    first.get(keys.checkpoint_committed)
    first.get(keys.checkpoint_proposed)
    first.xlen(keys.groups)
    first.hgetall(keys.quality)
    node_set, device_set, sensor_set, leader, term, committed, proposed, groups, quality_raw = first.execute()
    quality = parse_quality(quality_raw or {})
    node_ids = sorted(x.decode() for x in node_set)
    device_ids = sorted(x.decode() for x in device_set)
    sensor_ids = sorted(x.decode() for x in sensor_set)
    try:
        proposal_id = str(json.loads(proposed)["id"]) if proposed else ""
    except (ValueError, KeyError, TypeError):
        proposal_id = ""

    second = c.pipeline(transaction=False)
    for nid in node_ids:
        second.hgetall(keys.node_info(nid))
        second.get(keys.heartbeat(nid))
        second.get(keys.telemetry(nid))
        second.get(keys.worker_telemetry(nid))
        second.hgetall(keys.host_offset(nid))
    for did in device_ids:
        second.hgetall(keys.device(did))
    for sid in sensor_ids:
        second.hgetall(keys.sensor(sid))
        second.hgetall(keys.clock(sid))
        second.xlen(keys.stream(sid))
    if proposal_id:
        second.smembers(keys.checkpoint_acks(proposal_id))
    replies = iter(second.execute())

    nodes: dict[str, NodeStatus] = {}
    for nid in node_ids:
        info, hb, tele, worker, offset = (next(replies) for _ in range(5))
        estimate = OffsetEstimate.from_mapping(offset)  # the one reader's shape: None while none is published
        node = NodeStatus(nid, info=_decode(info), alive=hb is not None, telemetry=Telemetry.from_json(tele),
                          worker=WorkerStats.from_json(worker),
                          host_offset=_with_bound(estimate))  # fmt: skip
        node.host = node.info.get("host", "")
        try:
            beat = json.loads(hb) if hb else {}
            node.heartbeat_age_s = round(now - float(beat.get("time", now)), 3) if hb else None
            node.priority = int(beat.get("priority", node.info.get("priority", 0)))
        except (ValueError, TypeError, AttributeError):
            pass
        nodes[nid] = node
    devices = [DeviceStatus.from_mapping(did, m) for did, m in ((did, next(replies)) for did in device_ids) if m]
    sensor_rows = [(next(replies), next(replies), next(replies)) for _ in sensor_ids]
    acks = sorted(x.decode() for x in next(replies)) if proposal_id else []

    rates: dict[str, float] = {}
    silent_of: dict[str, float | None] = {}
    gaps: dict[str, float] = {}
    device_state: dict[str, str] = {}
    for d in devices:
        state = "offline" if now - d.updated > OFFLINE_AFTER_S else d.state
        rates.update({sid: finite_or_zero(r) for sid, r in (d.health.get("rates") or {}).items()})
        last = {sid: finite_or_zero(t) for sid, t in (d.health.get("last_data") or {}).items()}
        silent_of.update({sid: silence_s(now, d.updated, t) for sid, t in last.items()})
        gaps.update({sid: finite_or_zero(g) for sid, g in (d.health.get("gaps") or {}).items()})
        device_state.update(dict.fromkeys(d.sensor_ids, state))
    sensors = []
    for m, clock, length in sensor_rows:
        info = decode_sensor(m)
        if info is None:
            continue
        sid = info.sensor_id
        silent = silent_of.get(sid)
        health = sensor_health(rates.get(sid, 0.0), info.nominal_rate, silent, device_state.get(sid, "offline"),
                               gaps.get(sid, 0.0))  # fmt: skip
        sensors.append(SensorStatus(sid, info.attribute, info.device_id, info.node_id, info.nominal_rate,
                                    round(health.rate, 3), health.state, health.text,
                                    None if silent is None else round(silent, 3), int(length),
                                    _decode(clock), quality.get(sid, {})))  # fmt: skip
    return LabStatus(
        time=now, nodes=nodes, leader=(leader or {}).get(b"node", b"").decode(), term=int(term) if term else 0,
        checkpoint=_checkpoint(committed), proposal=_checkpoint(proposed, acks) if proposal_id else None,
        groups=int(groups), sensors=sensors,
        devices=[DeviceSummary(d.device_id, d.name, "offline" if now - d.updated > OFFLINE_AFTER_S else d.state,
                               d.uri, d.node_id, d.message) for d in devices],
    )  # fmt: skip


def read_backpressure(c: redis.Redis, keys: Keys, sensor_ids: list[str]) -> dict[str, BackpressureConfig]:
    """The 8-field backpressure config each node published per sensor (one pipeline); a
    malformed hash is logged and left out."""
    pipe = c.pipeline(transaction=False)
    for sid in sensor_ids:
        pipe.hgetall(keys.backpressure(sid))
    out: dict[str, BackpressureConfig] = {}
    for sid, raw in zip(sensor_ids, pipe.execute(), strict=True):
        if not raw:
            continue
        cfg: dict[str, object] = {}
        for k, v in raw.items():
            try:
                cfg[k.decode()] = json.loads(v)
            except ValueError:
                cfg[k.decode()] = v.decode("utf-8", "replace")
        try:
            out[sid] = BackpressureConfig.from_dict(cfg)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("backpressure config of %s is malformed (%s: %s): not shown", sid, type(exc).__name__, exc)
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


def _with_bound(estimate: OffsetEstimate | None) -> dict[str, str]:
    """The published offset as stored, plus ``asymmetry_bound`` (s): half the fastest round trip."""
    if estimate is None:
        return {}
    return {**estimate.to_mapping(), "asymmetry_bound": repr(estimate.rtt / 2)}


def format_status(s: LabStatus) -> str:
    """Human-readable status."""
    lines = [f"leader: {s.leader or '(none)'}   term: {s.term}"]
    cp = s.checkpoint
    if cp:
        age = s.time - (cp.committed_at if math.isfinite(cp.committed_at) else s.time)
        lines.append(f"last committed checkpoint: {cp.id} by {cp.leader} {age:.1f} s ago, "
                     f"ACKs {', '.join(cp.acks)} of {cp.live_nodes or '?'} live")  # fmt: skip
    else:
        lines.append("last committed checkpoint: none")
    pr = s.proposal
    if pr and (not cp or pr.id != cp.id):
        lines.append(f"pending proposal: {pr.id} ACKs {', '.join(pr.acks)}")
    lines.append(f"groups written: {s.groups}")
    lines.append(f"nodes ({len(s.nodes)}):")
    for nid, n in s.nodes.items():
        beat = n.heartbeat_age_s
        alive = f"heartbeat {beat:.1f} s ago" if beat is not None else ("alive" if n.alive else "DOWN")
        tele = n.telemetry
        lat = tele.latency_ms if tele else {}
        has_lat = "p50" in lat and "p99" in lat
        lat_txt = f", arrival→redis p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms" if has_lat else ""
        role = "LEADER" if s.leader == nid else "follower"
        wtxt = f", worker lag {n.worker.lag_s:.2f} s" if n.worker else ""
        prio = n.priority if n.priority is not None else n.info.get("priority", "?")
        lines.append(f"  {nid:<24} {role:<8} prio {prio}  {alive}"
                     f"  queue {tele.queue_depth if tele else '?'}{lat_txt}{wtxt}")  # fmt: skip
        if n.host_offset:
            lines.append(f"    {host_clock_text(n.host_offset)}")
    lines.append(f"devices ({len(s.devices)}):")
    for d in s.devices:
        msg = f"  ({d.message})" if d.message else ""
        lines.append(f"  {d.device_id:<24} {d.state:<12} {d.uri}{msg}")
    lines.append(f"sensors ({len(s.sensors)}):")
    for x in s.sensors:
        cl = "  " + clock_summary(x.clock, s.time) if x.clock else ""
        qt = f"  quality {quality_text(x.quality)}" if x.quality else ""
        lines.append(f"  {x.sensor_id:<28} {x.attribute:<12} {x.rate:8.1f}/{x.nominal_rate:g} Hz"
                     f"  {x.health_text}{qt}{cl}")  # fmt: skip
    return "\n".join(lines)
