"""Headless recording (``sensorium record``): a node, one session, a fixed duration.

The node is the same one the GUI starts (acquisition, sync worker, recorder component); the
session is created in Redis exactly as the GUI does, so a headless run exercises the same
recording path the operator uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..bus.connection import async_client
from ..bus.registry import list_sensors_async
from ..bus.sessions import Session, new_session_id, recording_status, save_session, start_recording, stop_recording
from .node import Node, NodeConfig

log = logging.getLogger(__name__)

FINALIZE_TIMEOUT_S = 30.0


@dataclass
class RecordRequest:
    duration: float
    directory: Path
    sensors: list[str] = field(default_factory=list)  # empty: every sensor of this node (or of the lab)
    participant: str = ""
    session: str = ""
    task: str = ""
    run: str = ""
    notes: str = ""
    compact: bool = False


@dataclass
class RecordOutcome:
    session_id: str
    state: str
    directory: Path
    status: dict[str, str]


async def _wait_for_sensors(node: Node, c: object, wanted: list[str], timeout: float) -> list[str]:
    """Sensor ids to record: ``wanted`` once registered, else this node's (or the lab's) sensors."""
    deadline = time.monotonic() + timeout
    while True:
        known = {s.sensor_id for s in await list_sensors_async(c, node.keys)}  # type: ignore[arg-type]
        if wanted:
            if set(wanted) <= known or time.monotonic() > deadline:
                missing = sorted(set(wanted) - known)
                if missing:
                    log.warning("recording sensors that are not registered (yet): %s", ", ".join(missing))
                return wanted
        else:
            mine = [i.sensor_id for i in node.sensor_infos()]
            if mine and set(mine) <= known:
                return mine
            if time.monotonic() > deadline:
                return mine or sorted(known)
        await asyncio.sleep(0.1)


def record(
    config: NodeConfig, request: RecordRequest, report: Callable[[dict[str, str]], None] | None = None
) -> RecordOutcome:
    """Run a node, record ``request.duration`` seconds, finalize; returns the outcome."""

    async def main() -> RecordOutcome:
        stop = asyncio.Event()
        interrupted = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, interrupted.set)
        node = Node(config)
        node_task = asyncio.create_task(node.run(stop))
        c = async_client(config.redis_url)
        session = Session(new_session_id(), request.participant, request.session, request.task, request.run,
                          request.notes, directory=str(request.directory), compact=request.compact)  # fmt: skip
        status: dict[str, str] = {}
        try:
            session.sensors = await _wait_for_sensors(node, c, request.sensors, 10.0)
            await save_session(c, config.keys, session)
            await start_recording(c, config.keys, session, config.node_id)
            log.info("recording %s (%s) for %.1f s into %s", session.session_id, ", ".join(session.sensors),
                     request.duration, request.directory)  # fmt: skip
            end = time.monotonic() + request.duration
            while time.monotonic() < end and not interrupted.is_set() and not node_task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupted.wait(), min(1.0, max(end - time.monotonic(), 0.0)))
                status = await recording_status(c, config.keys, session.session_id)
                if report is not None and status:
                    report(status)
                if status.get("state") == "failed":
                    break
            await stop_recording(c, config.keys, session)
            deadline = time.monotonic() + FINALIZE_TIMEOUT_S
            while time.monotonic() < deadline and not node_task.done():
                status = await recording_status(c, config.keys, session.session_id)
                if status.get("state") in ("complete", "failed"):
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await node_task
            await c.aclose()
        return RecordOutcome(session.session_id, status.get("state", "unknown"), request.directory, status)

    return asyncio.run(main())
