"""Sessions the operator prepares: sensors dropped in, BIDS metadata, markers (no Qt)."""

from __future__ import annotations

import logging
import math
import socket
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio

from ..bus.keys import Keys
from ..bus.sessions import (
    Session,
    add_marker,
    delete_session,
    list_sessions,
    new_session_id,
    recording_status,
    save_session,
    start_recording,
    stop_recording,
)
from .base import Event

log = logging.getLogger(__name__)

METADATA_FIELDS = ("participant", "session", "task", "run", "notes")
#: Markers kept per session for the list (the newest; the recording holds them all).
MARKERS_KEPT = 2000
MARKERS_READ = 500


@dataclass(frozen=True)
class MarkerRow:
    """One marker of a session as the list shows it: global time (s), what, from where
    (``window``, ``cli``, ``rcs``, ``pupil``, ``lsl:<stream>``…) and the sender's own time."""

    entry_id: str
    t_global: float
    label: str
    source: str
    t_original: str = ""
    clock_original: str = ""
    clock: str = ""

    @classmethod
    def from_fields(cls, entry_id: str, f: dict[str, str]) -> MarkerRow:
        try:
            t = float(f.get("t_global", "nan"))
        except ValueError:
            t = math.nan
        return cls(entry_id, t, f.get("label", ""), f.get("source", "?"), f.get("t_original", ""),
                   f.get("clock_original", ""), f.get("clock", ""))  # fmt: skip


def _stream_id(entry_id: str) -> tuple[int, int]:
    """A Redis stream id as a comparable (ms, seq) pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class SessionsModel:
    """Sessions in Redis; ``changed`` fires with the list after every refresh or edit,
    ``error`` with a message when Redis refuses (the edit is not lost silently: it is reported)."""

    def __init__(self, keys: Keys, viewer_id: str) -> None:
        self.keys = keys
        self.viewer_id = viewer_id
        self.sessions: dict[str, Session] = {}
        self.current: str | None = None
        self.markers_set: dict[str, int] = {}
        #: the node whose recorder records (the GUI's own node); None: a node on this PC
        self.recorder_node: str | None = None
        #: recorder progress per session (``<p>:recording:<id>``), for sessions recorded here
        self.recording: dict[str, dict[str, str]] = {}
        self.changed = Event()
        self.error = Event()
        self.c: redis.asyncio.Redis | None = None
        #: session id → its newest markers (``markers_changed`` fires with the session id)
        self.markers: dict[str, list[MarkerRow]] = {}
        self._marker_cursor: dict[str, str] = {}
        self.markers_changed = Event()

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
        for s in found:
            if s.state == "recording" or (s.state == "stopped" and s.recorder and s.session_id in self.recording):
                try:
                    self.recording[s.session_id] = await recording_status(c, self.keys, s.session_id)
                except (redis.RedisError, OSError):
                    pass
        if self.current not in self.sessions:
            self.current = found[-1].session_id if found else None
        self.changed.emit(found)
        if self.current is not None:
            await self.refresh_markers(self.current)
        return found

    async def refresh_markers(self, session_id: str) -> list[MarkerRow]:
        """Read the session's markers added since the last call (every source: window, CLI,
        remote controls, LSL marker streams) into :attr:`markers`."""
        if self.c is None:
            return self.markers.get(session_id, [])
        rows = self.markers.setdefault(session_id, [])
        cursor = self._marker_cursor.get(session_id)
        try:
            entries = await self.c.xrange(self.keys.markers(session_id), f"({cursor}" if cursor else "-", "+",
                                          count=MARKERS_READ)  # fmt: skip
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"markers of {session_id}: Redis unreachable: {exc}")
            return rows
        added = False
        for eid, fields in entries:
            entry_id = eid.decode() if isinstance(eid, bytes) else str(eid)
            newest = self._marker_cursor.get(session_id)
            if newest is not None and _stream_id(entry_id) <= _stream_id(newest):
                continue  # a refresh running at the same time took it already: one marker, one row
            decoded = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
            rows.append(MarkerRow.from_fields(entry_id, decoded))
            self._marker_cursor[session_id] = entry_id
            added = True
        if added:
            del rows[:-MARKERS_KEPT]
            self.markers_changed.emit(session_id)
        return rows

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
        s = Session(new_session_id())
        for k, v in metadata.items():
            if k in METADATA_FIELDS:
                setattr(s, k, v)
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

    async def _local_node(self) -> str | None:
        if self.recorder_node:
            return self.recorder_node
        assert self.c is not None
        me = socket.gethostname()
        for raw in sorted(await self.c.smembers(self.keys.nodes)):
            node = raw.decode() if isinstance(raw, bytes) else str(raw)
            host = await self.c.hget(self.keys.node_info(node), "host")
            if host is not None and host.decode() == me:
                return node
        return None

    async def start_recording(self, session_id: str | None = None) -> bool:
        """Record ``session_id`` (default: current) with this PC's node; False + error if not."""
        s = self.sessions.get(session_id or self.current or "")
        if s is None or self.c is None:
            self.error.emit("create a session before recording")
            return False
        if not s.sensors:
            self.error.emit(f"{s.bids_name}: drop sensors on the session before recording")
            return False
        if s.state == "recording":
            return True
        if s.state != "idle":
            self.error.emit(f"{s.bids_name} was recorded already: New session (Ctrl+N) starts the next run")
            return False
        try:
            node = await self._local_node()
            if node is None:
                self.error.emit("no node runs on this PC to record (start one: sensorium node)")
                return False
            await start_recording(self.c, self.keys, s, node)
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"recording not started: {exc}")
            return False
        self.recording[s.session_id] = {"state": "starting"}
        self.changed.emit(list(self.sessions.values()))
        return True

    async def stop_recording(self, session_id: str | None = None) -> bool:
        s = self.sessions.get(session_id or self.current or "")
        if s is None or self.c is None or s.state != "recording":
            return False
        try:
            await stop_recording(self.c, self.keys, s)
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"recording not stopped (it goes on): {exc}")
            return False
        self.changed.emit(list(self.sessions.values()))
        return True

    def recording_directory(self, session_id: str) -> Path | None:
        """Where ``session_id`` was recorded, if it was (the recorder's report, else the
        session's own directory when it holds a recording)."""
        reported = self.recording.get(session_id, {}).get("directory")
        if reported:
            return Path(reported)
        s = self.sessions.get(session_id)
        if s is not None and s.directory and (Path(s.directory) / "session.json").is_file():
            return Path(s.directory)
        return None

    def active_recording(self) -> tuple[Session, dict[str, str]] | None:
        """The session recording now (or the last one recorded here) and its progress."""
        live = [s for s in self.sessions.values() if s.state == "recording"]
        done = [s for s in self.sessions.values() if s.session_id in self.recording]
        pick = live[-1] if live else (max(done, key=lambda s: s.started or 0.0) if done else None)
        if pick is None:
            return None
        return pick, self.recording.get(pick.session_id, {})

    async def marker(self, label: str, session_id: str | None = None) -> dict[str, str] | None:
        """Set a marker in ``session_id`` (default: the current session) while it records;
        otherwise nothing is stored and :attr:`error` says why."""
        sid = session_id or self.current
        if sid is None or self.c is None:
            self.error.emit("create a session before setting markers")
            return None
        s = self.sessions.get(sid)
        if s is None or s.state != "recording":
            self.error.emit(f"marker {label!r} not set: {s.bids_name if s else sid} is not recording (Record: Ctrl+R)")
            return None
        try:
            m = await add_marker(self.c, self.keys, sid, label, "window", extra={"viewer": self.viewer_id})
        except (redis.RedisError, OSError) as exc:
            self.error.emit(f"marker {label!r} not stored: {exc}")
            return None
        self.markers_set[sid] = self.markers_set.get(sid, 0) + 1
        await self.refresh_markers(sid)
        return m
