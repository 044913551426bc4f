"""The window's sync check: a session of the lab's live sensors recorded by this PC's node
while the flash window presents, then analysed like ``sensorium sync-check`` does
(:mod:`sensorium_desktop.worker.synccheck`). No Qt: the flash window comes in as a
:class:`~sensorium_desktop.worker.synccheck.Stimulus`."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from ..bus.connection import async_client
from ..bus.keys import Keys
from ..bus.registry import live_sensors_async
from ..bus.sessions import recording_status
from ..core.synccheck import flash_schedule
from ..recording.synccheck import CheckOptions, SyncCheckError
from ..worker.synccheck import (
    LEAD_S,
    TAIL_S,
    Stimulus,
    finish_check,
    no_detector_message,
    present_flashes,
    simulated_truth,
    usable_sensors,
)
from .base import Event
from .sessions import SessionsModel

#: How long the recorder may take to start and to finalize the check's session (s).
RECORDER_WAIT_S = 15.0, 60.0


class SyncCheckModel:
    """Runs one check at a time. ``progress(text)`` while it runs, ``failed(why)`` when it
    cannot start or be analysed, ``finished(result, directory)`` with the stored result."""

    def __init__(self, redis_url: str, keys: Keys, sessions: SessionsModel) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.sessions = sessions
        self.progress = Event()
        self.failed = Event()
        self.finished = Event()
        self.running = False
        self._presenting: asyncio.Task[bool] | None = None
        self._stopped = False

    def stop(self) -> None:
        """Stop presenting; what was measured so far is analysed (the check says interrupted)."""
        self._stopped = True
        if self._presenting is not None:
            self._presenting.cancel()

    async def run(self, stimulus: Stimulus, flashes: int, interval_s: float, flash_s: float, opts: CheckOptions,
                  apply: bool = False) -> dict[str, Any] | None:  # fmt: skip
        """One check of the live sensors (``opts.sensors``: only those); the result or None."""
        if self.running:
            self.failed.emit("a sync check is running already")
            return None
        self.running, self._stopped = True, False
        c = async_client(self.redis_url)
        try:
            return await self._run(c, stimulus, flashes, interval_s, flash_s, opts, apply)
        except (redis.RedisError, OSError) as exc:
            self.failed.emit(f"sync check stopped: Redis: {exc}")
            return None
        finally:
            self.running = False
            self._presenting = None
            await c.aclose()

    async def _run(self, c: redis.asyncio.Redis, stimulus: Stimulus, flashes: int, interval_s: float, flash_s: float,
                   opts: CheckOptions, apply: bool) -> dict[str, Any] | None:  # fmt: skip
        infos = await live_sensors_async(c, self.keys)
        usable = usable_sensors(infos, opts)
        if not usable:
            self.failed.emit(no_detector_message(infos, opts))
            return None
        session = await self.sessions.create(task="synccheck", notes=f"sync check: {flashes} flashes")
        await self.sessions.add_sensors(session.session_id, usable)
        if not await self.sessions.start_recording(session.session_id):
            self.failed.emit("the check's session could not be recorded (see the log)")
            return None
        sid = session.session_id
        started = await self._recorder_state(c, sid, ("recording",), RECORDER_WAIT_S[0])
        if started is None or started.get("state") != "recording":
            self.failed.emit(f"the recorder did not start the check's session: {(started or {}).get('error', '')}")
            return None
        self.progress.emit(f"recording {len(usable)} sensors: {', '.join(usable)}")
        check_id = uuid.uuid4().hex[:8]
        onsets = flash_schedule(flashes, interval_s)
        completed = False
        if not self._stopped:
            await asyncio.sleep(LEAD_S)
            self._presenting = asyncio.ensure_future(
                present_flashes(c, self.keys, check_id, stimulus, onsets, flash_s, self.progress.emit)
            )
            with contextlib.suppress(asyncio.CancelledError):
                completed = await self._presenting
            if completed:
                await asyncio.sleep(TAIL_S)
        self.progress.emit("stopping the recording")
        await self.sessions.stop_recording(sid)
        status = await self._recorder_state(c, sid, ("complete", "failed"), RECORDER_WAIT_S[1])
        directory = self.sessions.recording_directory(sid) or (Path(status["directory"]) if status else None)
        if not status or status.get("state") != "complete" or directory is None:
            self.failed.emit(f"the check's recording did not complete: {(status or {}).get('error', 'no answer')}")
            return None
        self.progress.emit("analysing")
        truth = await asyncio.to_thread(simulated_truth, self.redis_url, self.keys)
        about = {"check_id": check_id, "timing": getattr(stimulus, "timing", ""),
                 "audio": getattr(stimulus, "audio", ""), "interval_s": interval_s, "flash_s": flash_s}  # fmt: skip
        try:
            result, _files = await asyncio.to_thread(finish_check, directory, opts, truth, not completed, flashes,
                                                     about, apply)  # fmt: skip
        except (SyncCheckError, OSError, ValueError) as exc:
            self.failed.emit(f"the check could not be analysed: {exc}")
            return None
        self.finished.emit(result, directory)
        return result

    async def _recorder_state(self, c: redis.asyncio.Redis, session_id: str, states: tuple[str, ...],
                              timeout: float) -> dict[str, str] | None:  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = await recording_status(c, self.keys, session_id)
            if status.get("state") in states:
                return status
            if status.get("state") == "failed":
                return status
            await asyncio.sleep(0.1)
        return None
