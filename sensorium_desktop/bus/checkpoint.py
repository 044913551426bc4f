"""Checkpoint agreement (seed 002): the leader proposes, followers validate and ACK, the
checkpoint is committed when a majority of the live nodes acknowledged it.

A checkpoint is JSON: ``{"id", "seq", "term", "leader", "time", "clocks": {sensor: state},
"positions": {sensor: last seq}, "groups_cursor", "sessions": {...}}``. Proposal and commit
are fenced leader writes; ACKs are set members (idempotent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis

from .election import fenced_exec
from .keys import Keys
from .sentinel import replicated_sync

log = logging.getLogger(__name__)


def majority(live: int) -> int:
    """ACKs needed among ``live`` nodes (the proposer's own ACK counts)."""
    return live // 2 + 1


def digest(body: dict[str, Any]) -> str:
    raw = json.dumps({k: v for k, v in body.items() if k != "digest"}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def make_checkpoint(seq: int, term: int, leader: str, clocks: dict, positions: dict, groups_cursor: float,
                    sessions: dict | None = None) -> dict[str, Any]:  # fmt: skip
    body = {
        "id": f"{term}-{seq}",
        "seq": seq,
        "term": term,
        "leader": leader,
        "time": time.time(),
        "clocks": clocks,
        "positions": positions,
        "groups_cursor": groups_cursor,
        "sessions": sessions or {},
    }
    body["digest"] = digest(body)
    return body


def read_json(c: redis.Redis, key: str) -> dict[str, Any] | None:
    raw = c.get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def propose(c: redis.Redis, keys: Keys, node_id: str, term: int, cp: dict[str, Any], ttl: float = 600.0) -> None:
    """Leader: publish the proposal and ACK it ourselves (fenced)."""
    acks = keys.checkpoint_acks(cp["id"])
    fenced_exec(c, keys, node_id, term, [
        ["SET", keys.checkpoint_proposed, json.dumps(cp)],
        ["DEL", acks],
        ["SADD", acks, node_id],
        ["EXPIRE", acks, int(ttl)],
    ])  # fmt: skip


def validate(c: redis.Redis, keys: Keys, cp: dict[str, Any], leader: str, term: int) -> str:
    """Follower check; returns "" when the proposal is acceptable, else the reason."""
    if cp.get("digest") != digest(cp):
        return "digest mismatch"
    if cp.get("leader") != leader or int(cp.get("term", -1)) != term:
        return f"not from the current leader ({leader}, term {term})"
    committed = read_json(c, keys.checkpoint_committed)
    if committed and (int(committed["term"]), int(committed["seq"])) >= (int(cp["term"]), int(cp["seq"])):
        return "older than the committed checkpoint"
    for sid, seq in cp.get("positions", {}).items():
        top = c.xrevrange(keys.stream(sid), "+", "-", count=1)
        top_seq = int(top[0][1][b"seq"]) if top else -1
        if int(seq) > top_seq:
            return f"position of {sid} ({seq}) is beyond its stream ({top_seq})"
    for sid, st in cp.get("clocks", {}).items():
        for field in ("offset_mean", "drift"):
            v = st.get(field)
            if v is not None and not math.isfinite(float(v)):
                return f"clock state of {sid} is not finite"
    return ""


def acknowledge(c: redis.Redis, keys: Keys, cp_id: str, node_id: str) -> None:
    c.sadd(keys.checkpoint_acks(cp_id), node_id)


@dataclass(slots=True)
class CommitResult:
    committed: bool
    acks: list[str]
    needed: int
    live: int


def try_commit(c: redis.Redis, keys: Keys, node_id: str, term: int, cp: dict[str, Any], live: int) -> CommitResult:
    """Leader: commit ``cp`` if a majority of the ``live`` nodes acknowledged it (fenced)."""
    acks = sorted(x.decode() for x in c.smembers(keys.checkpoint_acks(cp["id"])))
    need = majority(live)
    if len(acks) < need:
        return CommitResult(False, acks, need, live)
    committed = {**cp, "acks": acks, "live_nodes": live, "committed_at": time.time()}
    fenced_exec(c, keys, node_id, term, [["SET", keys.checkpoint_committed, json.dumps(committed)]])
    replicated_sync(c, f"checkpoint {cp['id']}")
    return CommitResult(True, acks, need, live)
