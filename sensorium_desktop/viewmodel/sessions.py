"""Sessions the operator prepares: sensors dropped in, BIDS metadata, markers (no Qt)."""

from __future__ import annotations

import logging

import redis
import redis.asyncio

from ..bus.keys import Keys
from ..bus.sessions import Session, add_marker, delete_session, list_sessions, new_session_id, save_session
from .base import Event

log = logging.getLogger(__name__)

METADATA_FIELDS = ("participant", "session", "task", "run", "notes")


class SessionsModel:
    """Sessions in Redis; ``changed`` fires with the list after every refresh or edit,
    ``error`` with a message when Redis refuses (the edit is not lost silently: it is reported)."""

    def __init__(self, keys: Keys, viewer_id: str) -> None:
        self.keys = keys
        self.viewer_id = viewer_id
        self.sessions: dict[str, Session] = {}
        self.current: str | None = None
        self.markers_set: dict[str, int] = {}
        self.changed = Event()
        self.error = Event()
        self.c: redis.asyncio.Redis | None = None

    def session(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    async def refresh(self, c: redis.asyncio.Redis) -> list[Session]:
        self.c = c
        try:
            found = await list_sessions(c, self.keys)
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"sessions: Redis unreachable: {exc}")
            return list(self.sessions.values())
        self.sessions = {s.session_id: s for s in found}
        if self.current not in self.sessions:
            self.current = found[-1].session_id if found else None
        self.changed.emit(found)
        return found

    async def _save(self, s: Session) -> bool:
        if self.c is None:
            self.error.emit("sessions: not connected to Redis yet")
            return False
        try:
            await save_session(self.c, self.keys, s)
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"could not save session {s.bids_name}: {exc}")
            return False
        self.sessions[s.session_id] = s
        self.changed.emit(list(self.sessions.values()))
        return True

    async def create(self, **metadata: str) -> Session:
        """A new session (becomes the current one)."""
        s = Session(new_session_id(), **{k: v for k, v in metadata.items() if k in METADATA_FIELDS})
        self.current = s.session_id
        await self._save(s)
        return s

    async def add_sensors(self, session_id: str, sensor_ids: list[str]) -> list[str]:
        s = self.sessions.get(session_id)
        if s is None:
            self.error.emit(f"no session {session_id}")
            return []
        added = s.add_sensors(sensor_ids)
        if added:
            await self._save(s)
        return added

    async def remove_sensors(self, session_id: str, sensor_ids: list[str]) -> None:
        s = self.sessions.get(session_id)
        if s is not None and set(sensor_ids) & set(s.sensors):
            s.remove_sensors(sensor_ids)
            await self._save(s)

    async def update_metadata(self, session_id: str, **metadata: str) -> None:
        s = self.sessions.get(session_id)
        if s is None:
            return
        for k, v in metadata.items():
            if k in METADATA_FIELDS:
                setattr(s, k, v)
        await self._save(s)

    async def delete(self, session_id: str) -> None:
        if self.c is None:
            return
        await delete_session(self.c, self.keys, session_id)
        self.sessions.pop(session_id, None)
        if self.current == session_id:
            self.current = next(reversed(self.sessions), None) if self.sessions else None
        self.changed.emit(list(self.sessions.values()))

    async def marker(self, label: str, session_id: str | None = None) -> dict[str, str] | None:
        """Set a marker in ``session_id`` (default: the current session)."""
        sid = session_id or self.current
        if sid is None or self.c is None:
            self.error.emit("create a session before setting markers")
            return None
        try:
            m = await add_marker(self.c, self.keys, sid, label, self.viewer_id)
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"marker {label!r} not stored: {exc}")
            return None
        self.markers_set[sid] = self.markers_set.get(sid, 0) + 1
        return m
