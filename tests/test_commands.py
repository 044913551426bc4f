"""Commands to a node are never lost: sent before it starts, between two of its reads, in
bursts, or to a node killed and started again; stale ones are answered as expired."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio
from conftest import NodeThread, RedisServer, with_async_redis

from sensorium_desktop.bus.commands import await_reply, last_event_id, send_command
from sensorium_desktop.bus.keys import Keys


async def _answers(c: redis.asyncio.Redis, keys: Keys, ids: list[str], after: str, timeout: float) -> dict[str, dict]:
    """Every ``<p>:events`` answer to ``ids`` that came within ``timeout`` s."""
    wanted, got, last = set(ids), {}, after
    deadline = time.monotonic() + timeout
    while wanted - set(got) and time.monotonic() < deadline:
        for _key, entries in await c.xread({keys.events: last}, block=200, count=500) or []:
            for eid, fields in entries:
                last = eid.decode()
                event = {k.decode(): v.decode() for k, v in fields.items()}
                if event.get("id") in wanted:
                    got[event["id"]] = event
    return got


def test_a_hundred_commands_right_after_start_are_all_answered(redis_server: RedisServer, keys: Keys) -> None:
    """The first commands race the node's start-up and its blocking reads (before: a command
    added between two reads, or before the first, was never seen)."""
    node = NodeThread(redis_server.url, keys, [], node_id="cmd-node")

    async def work(c: redis.asyncio.Redis) -> tuple[list[str], dict[str, dict]]:
        after = await last_event_id(c, keys)
        ids = [await send_command(c, keys, "cmd-node", "disconnect", device_id=f"nothing-{i}") for i in range(10)]
        node.start()  # ten were queued before the node existed
        for i in range(90):
            ids.append(await send_command(c, keys, "cmd-node", "disconnect", device_id=f"nothing-{10 + i}"))
            if i % 7 == 0:
                await asyncio.sleep(0.31)  # straddle the node's 300 ms blocking reads
        return ids, await _answers(c, keys, ids, after, 30.0)

    try:
        _ids, got = with_async_redis(redis_server.url, work)
    finally:
        node.stop()
    assert len(got) == 100, f"{100 - len(got)} of 100 commands never answered"
    assert all(e["ok"] == "0" and "no device 'nothing-" in e["message"] for e in got.values())


def test_commands_survive_a_node_restart_and_stale_ones_expire(redis_server: RedisServer, keys: Keys) -> None:
    first = NodeThread(redis_server.url, keys, ["sim:room"], node_id="cmd-restart").start()
    first.stop()  # the node is gone; the operator clicks Connect meanwhile

    async def queue(c: redis.asyncio.Redis) -> tuple[str, str, str]:
        after = await last_event_id(c, keys)
        sec, usec = await c.time()
        stale_ms = int(sec) * 1000 + usec // 1000 - 120_000  # sent two minutes ago
        await c.xadd(keys.commands("cmd-restart"), {"id": "stale1", "op": "connect", "args": '{"uri": "sim:chest"}'},
                     id=f"{stale_ms}-0")  # fmt: skip
        fresh = await send_command(c, keys, "cmd-restart", "connect", uri="sim:belt")
        return after, fresh, "stale1"

    after, fresh, stale = with_async_redis(redis_server.url, queue)
    second = NodeThread(redis_server.url, keys, ["sim:room"], node_id="cmd-restart").start()
    try:
        got = with_async_redis(redis_server.url, lambda c: _answers(c, keys, [fresh, stale], after, 20.0))
        assert got[fresh]["ok"] == "1" and "sim-belt" in got[fresh]["message"]
        assert got[stale]["ok"] == "0" and "sent 120 s ago" in got[stale]["message"]
        assert [d.device_id for d in second.node.devices] == ["sim-room", "sim-belt"]  # not sim-chest
        assert second.node.counters["expired_commands"] == 1

        async def once_more(c: redis.asyncio.Redis) -> dict | None:  # answered once, not again
            after = await last_event_id(c, keys)
            cid = await send_command(c, keys, "cmd-restart", "disconnect", device_id="sim-belt")
            return await await_reply(c, keys, cid, after, 10.0)

        reply = with_async_redis(redis_server.url, once_more)
        assert reply is not None and reply["ok"] == "1"
    finally:
        second.stop()
