"""Bully election over Redis heartbeats, with fenced (term-checked) leader writes.

- Every node keeps ``heartbeat:<node>`` alive (``SET ... PX ttl``, refreshed every ttl/3)
  and is registered in ``nodes``.
- Among live nodes the highest ``(priority, node id)`` leads. It claims leadership with an
  atomic Lua script that increments ``election:term`` and records ``{node, priority, term}``
  in ``election:leader``; a live leader of higher rank cannot be displaced, a lower one is
  bullied out, a dead one (heartbeat expired) is replaced.
- Everything only the leader may write goes through :func:`fenced_exec`: a Lua script
  that first checks ``election:leader`` still names this node *and* term, so a leader that
  was frozen (SIGSTOP, GC pause, network partition) and wakes up after a new term started
  cannot write; it gets :class:`StaleTermError` and steps down.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import redis

from ..core.hostclock import host_time
from .keys import Keys

log = logging.getLogger(__name__)

#: KEYS: leader hash, term counter, my heartbeat, the heartbeat of the leader the caller saw
#: (every key it touches is declared, as Redis Cluster requires); ARGV: my node id, my priority,
#: the leader the caller saw ("" = none), since (s). Returns the new term; -1 a live leader
#: outranks me, -2 my heartbeat expired, -3 the leader changed since the caller looked.
CLAIM_SCRIPT = """
local cur = redis.call('HMGET', KEYS[1], 'node', 'priority', 'term')
if cur[1] == ARGV[1] then return tonumber(cur[3]) end
if (cur[1] or '') ~= ARGV[3] then return -3 end
if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end
if cur[1] then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    local p_cur, p_me = tonumber(cur[2]), tonumber(ARGV[2])
    if p_cur > p_me or (p_cur == p_me and cur[1] > ARGV[1]) then return -1 end
  end
end
local term = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'priority', ARGV[2], 'term', term, 'since', ARGV[4])
return term
"""

#: KEYS[1] the leader hash, KEYS[1 + k] the key command k writes (declared, as Redis Cluster
#: requires); ARGV: node id, term, then per command: its argument count n, its name, its n - 1
#: arguments after the key.
FENCED_EXEC = """
local cur = redis.call('HMGET', KEYS[1], 'node', 'term')
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then
  return redis.error_reply('STALE_TERM leader=' .. tostring(cur[1]) .. ' term=' .. tostring(cur[2]))
end
local i = 3
local n_cmds = 0
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local cmd = {ARGV[i + 1], KEYS[n_cmds + 2]}
  for j = 2, n do cmd[j + 1] = ARGV[i + j] end
  redis.call(unpack(cmd))
  n_cmds = n_cmds + 1
  i = i + n + 1
end
return n_cmds
"""


class StaleTermError(RuntimeError):
    """A leader-only write was rejected: this node no longer leads (or the term moved on)."""


def fenced_exec(c: redis.Redis, keys: Keys, node_id: str, term: int, commands: list[list[object]]) -> int:
    """Run ``commands`` (each ``[CMD, key, arg, ...]``: the key it writes comes first, as in
    SET, HSET, XADD, DEL) atomically iff ``node_id`` still leads in ``term``; raises
    :class:`StaleTermError` otherwise."""
    args: list[object] = [node_id, str(term)]
    written: list[object] = []
    for cmd in commands:
        if len(cmd) < 2:
            raise ValueError(f"fenced command {cmd!r} names no key")
        written.append(cmd[1])
        args += [len(cmd) - 1, cmd[0], *cmd[2:]]
    try:
        return int(c.eval(FENCED_EXEC, 1 + len(written), keys.leader, *written, *args))
    except redis.ResponseError as exc:
        if "STALE_TERM" in str(exc):
            raise StaleTermError(f"{node_id} (term {term}) may not write: {exc}") from exc
        raise


@dataclass(slots=True)
class NodeBeat:
    node_id: str
    priority: int
    time: float
    age: float


@dataclass(slots=True)
class ElectionState:
    """What a node knows about leadership right now."""

    leader: str = ""
    term: int = 0
    is_leader: bool = False
    live: list[NodeBeat] = field(default_factory=list)
    changed_at: float = 0.0


class Elector:
    """One node's side of the election. Call :meth:`tick` every ``check_interval`` s (it
    refreshes the heartbeat when due, reads who is alive and claims when rightful)."""

    def __init__(self, keys: Keys, node_id: str, priority: int = 0, ttl: float = 5.0, info: dict | None = None) -> None:
        self.keys = keys
        self.node_id = node_id
        self.priority = int(priority)
        self.ttl = float(ttl)
        self.info = info or {}
        self.state = ElectionState()
        self.step_downs = 0
        self._last_beat = 0.0
        self._claim = None

    @property
    def beat_interval(self) -> float:
        return self.ttl / 3.0

    @property
    def check_interval(self) -> float:
        """Seconds between ticks: fast enough for failover within ttl + 1 s."""
        return min(0.25, self.ttl / 10.0)

    def heartbeat(self, c: redis.Redis) -> None:
        beat = {"node": self.node_id, "priority": self.priority, "time": time.time(), "host_time": host_time(),
                "term_seen": self.state.term, **self.info}  # fmt: skip
        pipe = c.pipeline(transaction=False)
        pipe.set(self.keys.heartbeat(self.node_id), json.dumps(beat), px=int(self.ttl * 1000))
        pipe.sadd(self.keys.nodes, self.node_id)
        pipe.execute()
        self._last_beat = time.monotonic()

    def live_nodes(self, c: redis.Redis) -> list[NodeBeat]:
        """Nodes whose heartbeat key exists, highest rank first."""
        ids = sorted(x.decode() for x in c.smembers(self.keys.nodes))
        if not ids:
            return []
        raws = c.mget([self.keys.heartbeat(n) for n in ids])
        now = time.time()
        live = []
        for nid, raw in zip(ids, raws, strict=True):
            if raw is None:
                continue
            try:
                beat = json.loads(raw)
                live.append(NodeBeat(nid, int(beat.get("priority", 0)), float(beat["time"]), now - float(beat["time"])))
            except (ValueError, KeyError, TypeError):
                continue
        live.sort(key=lambda b: (b.priority, b.node_id), reverse=True)
        return live

    def tick(self, c: redis.Redis) -> ElectionState:
        """One election round (blocking Redis calls; run it in a thread from asyncio)."""
        if time.monotonic() - self._last_beat >= self.beat_interval:
            self.heartbeat(c)
        live = self.live_nodes(c)
        raw = c.hmget(self.keys.leader, ["node", "term"])
        leader = raw[0].decode() if raw[0] else ""
        term = int(raw[1]) if raw[1] else 0
        leader_alive = any(b.node_id == leader for b in live)
        rightful = live[0].node_id if live else ""
        # a leader that finds another node in charge (it was frozen or partitioned) steps down
        # first; it may claim again on a later tick, in a new term
        lost = self.state.is_leader and leader != self.node_id
        if rightful == self.node_id and not lost and (leader != self.node_id or not leader_alive):
            claimed = int(c.eval(CLAIM_SCRIPT, 4, self.keys.leader, self.keys.term, self.keys.heartbeat(self.node_id),
                                 self.keys.heartbeat(leader or self.node_id), self.node_id, self.priority, leader,
                                 repr(time.time())))  # fmt: skip
            if claimed > 0:
                leader, term = self.node_id, claimed
        was_leader = self.state.is_leader
        is_leader = leader == self.node_id
        if was_leader and not is_leader:
            self.step_downs += 1
            log.warning("node %s steps down: %s leads in term %d", self.node_id, leader or "nobody", term)
        elif is_leader and (not was_leader or term != self.state.term):
            log.info("node %s leads in term %d", self.node_id, term)
        changed = (leader, term, is_leader) != (self.state.leader, self.state.term, self.state.is_leader)
        self.state = ElectionState(leader, term, is_leader, live, time.time() if changed else self.state.changed_at)
        return self.state

    def resign(self, c: redis.Redis) -> None:
        """Leave cleanly: drop the heartbeat so others take over at once."""
        c.delete(self.keys.heartbeat(self.node_id))
        if self.state.is_leader:
            try:
                fenced_exec(c, self.keys, self.node_id, self.state.term, [["HDEL", self.keys.leader, "node"]])
            except StaleTermError:
                pass
        self.state = ElectionState()


def read_leader(c: redis.Redis, keys: Keys) -> tuple[str, int]:
    """(leader node id or "", term) as stored in Redis."""
    raw = c.hmget(keys.leader, ["node", "term"])
    return (raw[0].decode() if raw[0] else ""), (int(raw[1]) if raw[1] else 0)
