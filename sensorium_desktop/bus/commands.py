"""Commands to a node (``<p>:commands:<node>`` stream) and its discovery results.

The GUI (or a script) asks a node to ``discover`` devices, ``connect`` a device URI or
``disconnect`` a device; the node answers through Redis state: discovery progress and
results in ``<p>:discovery:<node>`` (hash), connected devices in the registry as usual,
and each command's outcome in ``<p>:events`` (``op``, ``node``, ``ok``, ``message``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis
import redis.asyncio

from .keys import Keys
from .sentinel import replicated

COMMAND_OPS = ("discover", "stop_discovery", "connect", "disconnect")
COMMANDS_MAXLEN = 1000
EVENTS_MAXLEN = 10_000
#: The consumer group a node reads its commands through (its consumer name: the node id).
COMMAND_GROUP = "node"
#: A command older than this when the node reads it is answered "not done" instead (s): the
#: window gave up on it long ago (it waits :data:`REPLY_TIMEOUT_S`).
COMMAND_TTL_S = 30.0
#: How long a sender waits for a node to answer a command (s).
REPLY_TIMEOUT_S = 5.0


async def ensure_command_group(c: redis.asyncio.Redis, keys: Keys, node_id: str) -> None:
    """Create ``node_id``'s command group at the stream's start (idempotent): commands queued
    before the node's first start are read too (the too old ones answered as expired)."""
    try:
        await c.xgroup_create(keys.commands(node_id), COMMAND_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def command_age_s(entry_id: str, now_ms: int) -> float:
    """Seconds since a stream entry was added (its id's millisecond part), on Redis's clock."""
    try:
        return max(0.0, (now_ms - int(entry_id.split("-", 1)[0])) / 1000.0)
    except ValueError:
        return 0.0


async def send_command(c: redis.asyncio.Redis, keys: Keys, node_id: str, op: str, **args: Any) -> str:
    """Queue ``op`` for ``node_id``; returns the command id."""
    if op not in COMMAND_OPS:
        raise ValueError(f"unknown command {op!r} (one of {', '.join(COMMAND_OPS)})")
    cid = uuid.uuid4().hex[:12]
    await c.xadd(keys.commands(node_id), {"id": cid, "op": op, "args": json.dumps(args), "time": repr(time.time())},
                 maxlen=COMMANDS_MAXLEN, approximate=True)  # fmt: skip
    await replicated(c, f"command {op} for {node_id}")
    return cid


def parse_command(fields: dict[bytes, bytes]) -> tuple[str, str, dict[str, Any]]:
    """(command id, op, args) of a stream entry; raises ValueError when malformed."""
    try:
        op = fields[b"op"].decode()
        args = json.loads(fields.get(b"args", b"{}"))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed command: {exc}") from exc
    if op not in COMMAND_OPS or not isinstance(args, dict):
        raise ValueError(f"unknown command {op!r}")
    return fields.get(b"id", b"").decode(), op, args


async def last_event_id(c: redis.asyncio.Redis, keys: Keys) -> str:
    """ID of the newest entry of ``<p>:events`` ("0-0" when empty): replies come after it."""
    top = await c.xrevrange(keys.events, count=1)
    if not top:
        return "0-0"
    eid = top[0][0]
    return eid.decode() if isinstance(eid, bytes) else str(eid)


async def await_reply(
    c: redis.asyncio.Redis, keys: Keys, command_id: str, after: str, timeout: float
) -> dict[str, str] | None:
    """The ``<p>:events`` entry answering ``command_id`` (op, node, ok, message), or None
    when none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = after
    while (left := deadline - time.monotonic()) > 0:
        result = await c.xread({keys.events: last}, block=max(1, int(left * 1000)), count=50)
        for _key, entries in result or []:
            for eid, fields in entries:
                last = eid.decode() if isinstance(eid, bytes) else str(eid)
                event = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
                if event.get("id") == command_id:
                    return event
    return None


async def read_discovery(c: redis.asyncio.Redis, keys: Keys, node_id: str) -> dict[str, Any]:
    """``{"state", "progress", "message", "found": [descriptor dicts], "updated", "command"}``
    (empty if none); ``command``: the id of the discover command the node is answering."""
    raw = await c.hgetall(keys.discovery(node_id))
    if not raw:
        return {}
    d = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
    try:
        found = json.loads(d.get("found", "[]"))
    except ValueError:
        found = []
    return {"state": d.get("state", ""), "progress": float(d.get("progress", 0) or 0), "message": d.get("message", ""),
            "found": found, "updated": float(d.get("updated", 0) or 0), "command": d.get("command", "")}  # fmt: skip
