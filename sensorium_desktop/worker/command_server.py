"""A node's command stream (``<p>:commands:<node>``): discover, stop_discovery, connect,
disconnect — each answered on ``<p>:events``; and the devices an operator connected,
remembered so that a restarted node opens them again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import redis
import redis.asyncio

from ..bus.commands import (
    COMMAND_GROUP,
    COMMAND_TTL_S,
    EVENTS_MAXLEN,
    command_age_s,
    ensure_command_group,
    parse_command,
)
from ..bus.sessions import global_now
from ..devices import DeviceError, discover_all
from .acquisition import Acquisition

log = logging.getLogger(__name__)


class CommandServer:
    """Takes the node's commands and runs them on ``acquisition``; ``allowed_roots()``: the
    folders a URI from Redis may name. ``counters`` is the node's (shared)."""

    def __init__(self, acquisition: Acquisition, counters: dict[str, int],
                 allowed_roots: Callable[[], list[Path]]) -> None:  # fmt: skip
        self.acquisition = acquisition
        self.keys = acquisition.keys
        self.node_id = acquisition.node_id
        self.counters = counters
        self.allowed_roots = allowed_roots
        self.discovering: asyncio.Task[None] | None = None
        #: id of the newest discover command: the running discovery answers it
        self.discovery_command = ""
        #: the node's asyncio Redis client while it runs
        self.redis: redis.asyncio.Redis | None = None

    async def loop(self, stop: asyncio.Event) -> None:
        """Follow ``<p>:commands:<node>`` through the consumer group ``node``: no command is
        missed between two reads or while the node restarts, none runs twice (each is
        acknowledged as it is taken), and one older than
        :data:`~sensorium_desktop.bus.commands.COMMAND_TTL_S` is answered as expired."""
        key = self.keys.commands(self.node_id)
        ready = False
        backlog = True  # first what a previous run of this node took but never acknowledged
        while not stop.is_set():
            c = self.redis
            if c is None:
                await asyncio.sleep(0.2)
                continue
            try:
                if not ready:
                    await ensure_command_group(c, self.keys, self.node_id)
                    ready = True
                result = await c.xreadgroup(COMMAND_GROUP, self.node_id, {key: "0" if backlog else ">"},
                                            count=10, block=None if backlog else 300)  # fmt: skip
                entries = [e for _key, batch in result or [] for e in batch]
                if backlog and not entries:
                    backlog = False
                    continue
                now_ms = int(await global_now(c) * 1000)  # Redis's clock: the one stream ids are made of
            except (redis.RedisError, OSError) as exc:
                ready = False
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    continue  # the stream was deleted under us: make the group again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            for eid, fields in entries:
                entry_id = eid.decode() if isinstance(eid, bytes) else str(eid)
                with contextlib.suppress(redis.RedisError, OSError):
                    await c.xack(key, COMMAND_GROUP, entry_id)
                age_s = command_age_s(entry_id, now_ms)
                if age_s > COMMAND_TTL_S:
                    self.counters["expired_commands"] = self.counters.get("expired_commands", 0) + 1
                    cid = (fields.get(b"id") or b"").decode("utf-8", "replace")
                    op = (fields.get(b"op") or b"?").decode("utf-8", "replace")
                    log.warning("node %s: %s command %s expired (sent %.0f s ago)", self.node_id, op, cid, age_s)
                    await self.answer(op, cid, False, f"not done: sent {age_s:.0f} s ago, while node "
                                                      f"{self.node_id} was not running", logged=True)  # fmt: skip
                    continue
                await self._command(fields, stop)

    async def _command(self, fields: dict[bytes, bytes], stop: asyncio.Event) -> None:
        try:
            cid, op, args = parse_command(fields)
        except ValueError as exc:
            self.counters["bad_commands"] = self.counters.get("bad_commands", 0) + 1
            await self.answer("?", "", False, str(exc))
            return
        if op == "stop_discovery":
            if self.discovering is not None and not self.discovering.done():
                self.discovering.cancel()  # the discovery answers: "discovery stopped"
            else:
                await self.answer(op, cid, True, "no discovery is running")
            return
        if op == "discover":
            self.discovery_command = cid  # the discovery reports under the newest command's id
            if self.discovering is None or self.discovering.done():
                self.discovering = asyncio.create_task(self._discover(cid, args))
            else:  # every command is answered: this one joins the scan under way
                await self.answer(op, cid, True, "a discovery is running: its results answer this one too")
            return
        acq = self.acquisition
        if op == "connect":
            uri = str(args.get("uri", ""))
            try:
                started = acq.start_uri(uri, stop, self.allowed_roots())
            except DeviceError as exc:
                ok, message = False, str(exc)
            else:
                ok, message = await acq.first_outcome(started) if started else (False, f"{uri} is already connected")
                await self._remember(started)
        else:
            ok, message = await acq.disconnect(str(args.get("device_id", "")))
        await self.answer(op, cid, ok, message)

    async def answer(self, op: str, cid: str, ok: bool, message: str, logged: bool = False) -> None:
        """Answer command ``cid`` on ``<p>:events`` (a failure is logged unless ``logged``)."""
        if not ok and not logged:
            log.error("node %s: %s failed: %s", self.node_id, op, message)
        if self.redis is None:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            await self.redis.xadd(self.keys.events, {"op": op, "id": cid, "node": self.node_id, "ok": int(ok),
                                                     "message": message, "time": repr(time.time())},
                                  maxlen=EVENTS_MAXLEN, approximate=True)  # fmt: skip

    async def _discover(self, cid: str, args: dict[str, object]) -> None:
        """Run every transport's discovery here (radios and ports belong to the node's PC),
        publishing progress every 0.25 s and the descriptors at the end; the outcome answers
        ``cid``, the command that started it (those that joined it were answered at once)."""
        key = self.keys.discovery(self.node_id)
        timeout = float(args.get("timeout", 5.0))  # type: ignore[arg-type]
        schemes = args.get("schemes") or None
        progress: dict[str, float] = {}
        last = ["starting"]

        def report(frac: float, msg: str) -> None:
            progress[msg.split(":", 1)[0]] = frac
            last[0] = msg

        async def publish(state: str, extra: dict[str, str]) -> None:
            if self.redis is None:
                return
            done = sum(progress.values()) / max(len(progress), 1)
            mapping = {"state": state, "progress": repr(done), "message": last[0], "updated": repr(time.time()),
                       "command": self.discovery_command}  # fmt: skip
            with contextlib.suppress(redis.RedisError, OSError):
                await self.redis.hset(key, mapping=mapping | extra)

        await publish("running", {"found": "[]"})
        scan = asyncio.create_task(discover_all(timeout, report, schemes))  # type: ignore[arg-type]
        try:
            while not scan.done():
                await asyncio.wait([scan], timeout=0.25)
                await publish("running", {})
        except asyncio.CancelledError:  # the operator pressed Stop (or the node stops)
            scan.cancel()
            await asyncio.gather(scan, return_exceptions=True)
            last[0] = "stopped"
            await publish("stopped", {"found": "[]"})
            await self.answer("discover", cid, True, "discovery stopped")
            raise
        found = scan.result()
        connected = {str(d.uri) for d in self.acquisition.devices}
        rows = [dict(d.to_dict(), connected=d.uri in connected) for d in found]
        progress.clear()
        last[0] = f"{len(rows)} found"
        await publish("done", {"progress": "1", "found": json.dumps(rows, default=str)})
        await self.answer("discover", cid, True, f"{len(rows)} devices found")

    async def _remember(self, device_ids: list[str]) -> None:
        """Devices connected by command are reconnected when this node starts again."""
        uris = {d.device_id: str(d.uri) for d in self.acquisition.devices if d.device_id in device_ids}
        if uris and self.redis is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.redis.hset(self.keys.node_connected(self.node_id), mapping=uris)

    async def reconnect_remembered(self, stop: asyncio.Event) -> None:
        """Open again what the operator had connected before this node stopped (killed, crashed,
        the PC restarted); each outcome is logged, a failure counted, the device's row says why."""
        assert self.redis is not None
        try:
            remembered = await self.redis.hgetall(self.keys.node_connected(self.node_id))
        except (redis.RedisError, OSError) as exc:
            log.error("node %s: devices connected before the restart not known (Redis: %s)", self.node_id, exc)
            return
        acq = self.acquisition
        for raw_id, raw_uri in sorted(remembered.items()):
            device_id, uri = raw_id.decode("utf-8", "replace"), raw_uri.decode("utf-8", "replace")
            if any(d.device_id == device_id for d in acq.devices):
                continue
            try:
                started = acq.start_uri(uri, stop, self.allowed_roots())
            except DeviceError as exc:
                self.counters["reconnect_failures"] = self.counters.get("reconnect_failures", 0) + 1
                log.error("node %s: could not reconnect %s (connected before the restart): %s", self.node_id, uri, exc)
                continue
            log.warning("node %s: reconnected %s (%s), connected before the node restarted", self.node_id,
                        ", ".join(started) or device_id, uri)  # fmt: skip
