"""Headless recording (``sensorium record``): a node, one session, a fixed duration.

The node is the same one the GUI starts (acquisition, sync worker, recorder component); the
session is created in Redis exactly as the GUI does, so a headless run exercises the same
recording path the operator uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .. import exitcodes
from ..bus.connection import async_client
from ..bus.globalclock import local_offset_async
from ..bus.registry import list_sensors_async
from ..bus.sentinel import primary_address
from ..bus.sessions import (
    Session,
    global_now,
    new_session_id,
    recording_status,
    save_session,
    start_recording,
    stop_recording,
)
from ..bus.streams import first_sample_times
from ..core.samples import EVENT_INTERVAL_KEY, SensorInfo
from ..core.timemap import host_to_global
from .context import NodeConfig
from .node import Node

log = logging.getLogger(__name__)

FINALIZE_TIMEOUT_S = 30.0
#: How long ``record`` waits for every sensor's first sample before its duration starts (s).
FIRST_SAMPLE_TIMEOUT_S = 10.0
#: With only irregular streams (no nominal rate) the recording starts this long before the
#: first sample's estimated time (s): the estimate, from its arrival, may be late by the transport
IRREGULAR_MARGIN_S = 0.1


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


#: With every requested device failing and no sensor announced, ``record`` gives up after (s).
NO_DEVICE_GIVE_UP_S = 4.0


@dataclass
class RecordOutcome:
    """How a headless recording went: ``state`` is the recorder's (complete, failed, …) or
    ``not started``; ``failed_devices`` (URI, why) never delivered; ``silent_sensors`` were
    recorded but delivered no sample; ``samples`` per sensor from ``session.json``."""

    session_id: str
    state: str
    directory: Path
    status: dict[str, str]
    failed_devices: list[tuple[str, str]] = field(default_factory=list)
    silent_sensors: list[str] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=dict)
    error: str = ""
    #: the recording's one name (its folder's, or its BIDS name)
    name: str = ""
    #: stopped early (a signal, ``stop_flag``, or a ``during`` that did not finish)
    interrupted: bool = False
    #: event sensors without an event in a recording shorter than their typical interval
    #: (sensor id, that interval in s): reported, not counted as silent
    quiet_event_sensors: list[tuple[str, float]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """OK only when complete with every device and sensor delivering; PARTIAL when some
        did; FAILED when nothing was recorded (:mod:`sensorium_desktop.exitcodes`)."""
        if self.state != "complete" or not any(self.samples.values()):
            return exitcodes.FAILED
        return exitcodes.PARTIAL if self.failed_devices or self.silent_sensors else exitcodes.OK


def _recorded_samples(directory: Path) -> dict[str, int]:
    """Samples per sensor the recorder wrote (``session.json``); {} when unreadable."""
    try:
        meta = json.loads((directory / "session.json").read_text(encoding="utf-8"))
        return {str(k): int(v) for k, v in (meta.get("samples") or {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


async def _wait_for_sensors(node: Node, c: object, wanted: list[str], timeout: float) -> list[str]:
    """Sensor ids to record: ``wanted`` once registered, else this node's (or the lab's) sensors."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        known = {s.sensor_id for s in await list_sensors_async(c, node.keys)}
        waited = time.monotonic() - began
        if (
            node.config.devices
            and not node.acquisition.sensor_infos()
            and waited > NO_DEVICE_GIVE_UP_S
            and len(node.acquisition.failed_devices()) == len(node.devices) + len(node.acquisition.device_errors)
        ):
            return []  # every device we were asked to open failed: nothing to wait for
        if wanted:
            if set(wanted) <= known or time.monotonic() > deadline:
                missing = sorted(set(wanted) - known)
                if missing:
                    log.warning("recording sensors that are not registered (yet): %s", ", ".join(missing))
                return wanted
        else:
            mine = [i.sensor_id for i in node.acquisition.sensor_infos()]
            # a device that announces its sensors only once data flows (serial) is waited for
            # until it has or has failed: otherwise the recording would start without it
            failed = {uri for uri, _why in node.acquisition.failed_devices()}
            announced = all(d.sensors() or str(d.uri) in failed for d in node.devices)
            if mine and set(mine) <= known and announced:
                return mine
            if time.monotonic() > deadline:  # with devices asked for, only theirs; else the lab's
                return mine if node.config.devices else mine or sorted(known)
        await asyncio.sleep(0.1)


async def _data_start(
    c: object, config: NodeConfig, sensors: list[str], since: float, interrupted: asyncio.Event
) -> float:
    """Global time (s) at which the recording starts: the first sample since ``since`` of the
    fastest recorded continuous sensor (a nominal rate > 0; event streams such as blinks,
    triggers or HRV deliver when something happens and are not waited for), half a sample
    period early (its time is estimated from its arrival, before any clock is fitted, and must
    not fall outside; :data:`IRREGULAR_MARGIN_S` early when no stream has a rate), mapped with
    this host's global offset. Devices opened together start together, so each continuous
    stream holds the requested duration. Sensors silent for
    ``FIRST_SAMPLE_TIMEOUT_S`` are not waited for."""
    infos = {i.sensor_id: i for i in await list_sensors_async(c, config.keys)}
    continuous = [sid for sid in sensors if sid in infos and infos[sid].nominal_rate > 0] or sensors
    wanted = {sid: infos[sid].fixed_latency if sid in infos else 0.0 for sid in continuous}
    deadline = time.monotonic() + FIRST_SAMPLE_TIMEOUT_S
    first: dict[str, float] = {}
    while not interrupted.is_set():
        first = await first_sample_times(c, config.keys, wanted, since)
        if len(first) == len(wanted) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    silent = sorted(set(wanted) - set(first))
    if silent:
        log.warning("no samples yet from %s; recording without waiting for them", ", ".join(silent))
    est = await local_offset_async(c, config.keys)
    if not first:
        return await global_now(c)
    rate = {sid: infos[sid].nominal_rate if sid in infos else 0.0 for sid in first}
    fastest = max(rate.values())
    t0 = min(t for sid, t in first.items() if rate[sid] == fastest)
    margin = min(0.5 / fastest, 0.5) if fastest > 0 else IRREGULAR_MARGIN_S
    return float(host_to_global(est.host_offset() if est is not None else None, t0 - margin))


async def _recorder_running(c: object, config: NodeConfig, session_id: str, node_task: asyncio.Task[None]) -> None:
    """Wait (up to ``FIRST_SAMPLE_TIMEOUT_S``) until the node's recorder took the session: a stop
    sent before that would end a recording that never started (it reads from the start on, so
    the wait costs no sample)."""
    deadline = time.monotonic() + FIRST_SAMPLE_TIMEOUT_S
    while time.monotonic() < deadline and not node_task.done():
        if (await recording_status(c, config.keys, session_id)).get("state") in ("recording", "failed"):
            return
        await asyncio.sleep(0.05)
    log.warning("the recorder did not report session %s as recording within %.0f s", session_id,
                FIRST_SAMPLE_TIMEOUT_S)  # fmt: skip


#: ``during(client, session) -> bool`` runs once the recording has started; the recording
#: ends when it returns (True: it did all it meant to) or after the duration, whichever is first.
During = Callable[[Any, Session], Coroutine[Any, Any, bool]]


def record(
    config: NodeConfig,
    request: RecordRequest,
    report: Callable[[dict[str, str]], None] | None = None,
    during: During | None = None,
    stop_flag: threading.Event | None = None,
) -> RecordOutcome:
    """Run a node, record ``request.duration`` seconds (or while ``during`` runs), finalize;
    returns the outcome. ``stop_flag`` (set from another thread) interrupts like SIGINT."""

    async def main() -> RecordOutcome:
        stop = asyncio.Event()
        interrupted = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # ValueError: not the main thread
                loop.add_signal_handler(sig, interrupted.set)
        watch_flag = asyncio.create_task(_watch_flag(stop_flag, interrupted)) if stop_flag is not None else None
        during_task: asyncio.Task[bool] | None = None
        c = async_client(config.redis_url)
        started = await global_now(c)  # before the node opens its devices: their first samples are in
        node = Node(config)
        node_task = asyncio.create_task(node.run(stop))
        session = Session(new_session_id(), request.participant, request.session, request.task, request.run,
                          request.notes, directory=str(request.directory), compact=request.compact)  # fmt: skip
        status: dict[str, str] = {}
        try:
            session.sensors = await _wait_for_sensors(node, c, request.sensors, 10.0)
            if not session.sensors:
                node.acquisition.report_devices()
                failed = node.acquisition.failed_devices(pending_too=True)
                return RecordOutcome(session.session_id, "not started", request.directory, {}, failed,
                                     error="no sensor to record")  # fmt: skip
            await save_session(c, config.keys, session)
            await start_recording(c, config.keys, session, config.node_id, started=started)
            await _recorder_running(c, config, session.session_id, node_task)
            first = max(await _data_start(c, config, session.sensors, started, interrupted), started)
            stop_at = first + request.duration
            # the recording is [first, first + duration]: every continuous stream holds exactly
            # the requested duration (the spool keeps what came before; exports cut it off)
            session.started = first
            await save_session(c, config.keys, session)
            log.info("recording %s (%s) for %.1f s from the first samples (%.3f s after the node started) into %s",
                     session.session_id, ", ".join(session.sensors), request.duration, first - started,
                     request.directory)  # fmt: skip
            if during is not None:
                during_task = asyncio.create_task(during(c, session))
            bus = _Outage(c)
            while not interrupted.is_set() and not node_task.done() and not (during_task and during_task.done()):
                left = stop_at - await bus.now()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupted.wait(), min(0.2 if during_task else 1.0, left))
                status = await bus.call(recording_status(c, config.keys, session.session_id)) or status
                if report is not None and status:
                    report(status)
                if status.get("state") == "failed" or bus.given_up:
                    break
            now = await bus.now()
            # the stop command must not be lost: re-driven until Redis (or its promoted replica) takes it
            while not await bus.call(stop_recording(c, config.keys, session, stopped=min(now, stop_at)), True):
                if bus.given_up:
                    break
                await asyncio.sleep(OUTAGE_RETRY_S)
            deadline = time.monotonic() + FINALIZE_TIMEOUT_S
            while time.monotonic() < deadline and not node_task.done() and not bus.given_up:
                status = await bus.call(recording_status(c, config.keys, session.session_id)) or status
                if status.get("state") in ("complete", "failed"):
                    break
                await asyncio.sleep(0.1)
            if bus.given_up:
                status = {**status, "state": "failed", "error": bus.error}
        finally:
            completed = (
                during_task is not None
                and during_task.done()
                and not during_task.cancelled()
                and during_task.exception() is None
                and during_task.result()
            )
            if during_task is not None and not during_task.done():
                during_task.cancel()
                with contextlib.suppress(BaseException):
                    await during_task
            if watch_flag is not None:
                watch_flag.cancel()
            stop.set()
            with contextlib.suppress(Exception):
                await node_task
            await c.aclose()
        samples = _recorded_samples(request.directory)
        silent, quiet = _split_silent([sid for sid in session.sensors if not samples.get(sid)],
                                      node.acquisition.sensor_infos(), request.duration)  # fmt: skip
        failed = node.acquisition.failed_devices(pending_too=True)
        return RecordOutcome(session.session_id, status.get("state", "unknown"), request.directory, status,
                             failed, silent, samples, status.get("error", ""), status.get("name", ""),
                             interrupted=interrupted.is_set() or (during is not None and not completed),
                             quiet_event_sensors=quiet)  # fmt: skip

    return asyncio.run(main())


#: a lost Redis connection is retried every (s) …
OUTAGE_RETRY_S = 0.25
#: … for this long before ``record`` gives up (s): a sentinel failover takes down-after + a few s
OUTAGE_GIVE_UP_S = 60.0


class _Outage:
    """``record``'s calls to Redis through an outage (a restart, a sentinel failover): the
    global clock is carried on by the host clock from its last reading, commands are re-driven,
    and the outage is logged with its length; after :data:`OUTAGE_GIVE_UP_S` it gives up."""

    def __init__(self, c: Any) -> None:
        self.c = c
        self.offset = 0.0  # global − host at the last reading (s)
        self.down_since: float | None = None
        self.given_up = False
        self.error = ""

    async def now(self) -> float:
        """The global clock (s): Redis TIME, or the host clock plus the last offset while down."""
        t = await self.call(global_now(self.c))
        if t is not None:
            self.offset = t - time.time()
            return float(t)
        return time.time() + self.offset

    async def call(self, awaitable: Any, ok: Any = None) -> Any:
        """The awaitable's result (or ``ok`` when given), None while Redis is unreachable."""
        try:
            result = await awaitable
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OSError) as exc:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning("Redis unreachable (%s): the node spills its samples; retrying for up to %.0f s",
                            exc, OUTAGE_GIVE_UP_S)  # fmt: skip
            elif time.monotonic() - self.down_since > OUTAGE_GIVE_UP_S and not self.given_up:
                self.given_up = True
                self.error = f"Redis unreachable for {OUTAGE_GIVE_UP_S:.0f} s ({exc})"
                log.error("%s: giving up", self.error)
            return None
        if self.down_since is not None:
            primary = primary_address(self.c)
            log.warning("Redis reachable again after %.1f s%s", time.monotonic() - self.down_since,
                        f" (primary now {primary})" if primary else "")  # fmt: skip
            self.down_since = None
        return result if ok is None else ok


def _split_silent(
    no_samples: list[str], infos: list[SensorInfo], duration: float
) -> tuple[list[str], list[tuple[str, float]]]:
    """Of the sensors without a sample in a ``duration``-s recording: the silent ones, and the
    irregular ones whose device says they report less often than that ((id, interval s)):
    no event was due from them, so they did not fail."""
    interval = {
        i.sensor_id: float(i.extra[EVENT_INTERVAL_KEY])
        for i in infos
        if i.nominal_rate == 0 and isinstance(i.extra.get(EVENT_INTERVAL_KEY), int | float)
    }
    quiet = [(sid, interval[sid]) for sid in no_samples if interval.get(sid, 0.0) > duration]
    quiet_ids = {sid for sid, _ in quiet}
    return [sid for sid in no_samples if sid not in quiet_ids], quiet


async def _watch_flag(flag: threading.Event, interrupted: asyncio.Event) -> None:
    while not flag.is_set():
        await asyncio.sleep(0.1)
    interrupted.set()
