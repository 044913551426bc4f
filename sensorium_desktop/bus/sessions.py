"""Sessions and markers in Redis (``<p>:sessions`` hash, ``<p>:markers:<id>`` streams).

A session is what the operator will record: its sensors and BIDS-style metadata. The GUI
creates and edits sessions here; the recorder (recording issue) records them. Markers carry
the host time they were set and, when a node on the same host publishes its host → global
offset, the global time too (``t_global``; equal to ``t_host`` otherwise, flagged by
``clock=host``).
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio

from ..core.hostclock import host_time
from ..core.timemap import host_to_global
from .globalclock import local_offset_async
from .keys import Keys
from .sentinel import replicated

SESSION_STATES = ("idle", "recording", "stopped")
_BIDS_LABEL = re.compile(r"[^A-Za-z0-9]+")


def bids_label(value: str) -> str:
    """A BIDS entity label: letters and digits only (``"pilot 2"`` → ``"pilot2"``)."""
    return _BIDS_LABEL.sub("", value)


@dataclass(slots=True)
class Session:
    """One session: ``sensors`` (ids, in the operator's order) and BIDS metadata."""

    session_id: str
    participant: str = ""
    session: str = ""
    task: str = ""
    run: str = ""
    notes: str = ""
    acquisition: str = ""
    sensors: list[str] = field(default_factory=list)
    state: str = "idle"
    created: float = field(default_factory=time.time)
    started: float | None = None
    stopped: float | None = None
    #: node whose recorder records it, recording directory ("" = the node's default), last error
    recorder: str = ""
    directory: str = ""
    error: str = ""
    #: store ecg/respiration values delta-encoded (0.01 steps) in the spool
    compact: bool = False

    @property
    def bids_name(self) -> str:
        """``sub-<p>_ses-<s>_task-<t>_run-<r>`` with the entities that are set."""
        entities = (("sub", self.participant), ("ses", self.session), ("task", self.task),
                    ("acq", self.acquisition), ("run", self.run))  # fmt: skip
        parts = [f"{key}-{bids_label(val)}" for key, val in entities if bids_label(val)]
        return "_".join(parts) or self.session_id

    def add_sensors(self, sensor_ids: list[str]) -> list[str]:
        """Append sensors not already in the session; returns the ones added."""
        added = [s for s in dict.fromkeys(sensor_ids) if s not in self.sensors]
        self.sensors.extend(added)
        return added

    def remove_sensors(self, sensor_ids: list[str]) -> None:
        gone = set(sensor_ids)
        self.sensors = [s for s in self.sensors if s not in gone]

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Session:
        d = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


async def list_sessions(c: redis.asyncio.Redis, keys: Keys) -> list[Session]:
    """All sessions, oldest first; malformed entries are skipped."""
    out = []
    for raw in (await c.hgetall(keys.sessions)).values():
        try:
            out.append(Session.from_json(raw))
        except (ValueError, TypeError):
            continue
    return sorted(out, key=lambda s: s.created)


async def save_session(c: redis.asyncio.Redis, keys: Keys, s: Session) -> None:
    if s.state not in SESSION_STATES:
        raise ValueError(f"unknown session state {s.state!r}")
    await c.hset(keys.sessions, s.session_id, s.to_json())
    await replicated(c, f"session {s.session_id} ({s.state})")


async def global_now(c: redis.asyncio.Redis) -> float:
    """The lab's global clock now (s): the Redis server's ``TIME``, read in the middle of
    the round trip."""
    t0 = time.monotonic()
    sec, usec = await c.time()
    return float(sec) + usec / 1e6 + (time.monotonic() - t0) / 2


async def start_recording(
    c: redis.asyncio.Redis, keys: Keys, s: Session, node_id: str, started: float | None = None
) -> Session:
    """Ask ``node_id``'s recorder to record ``s`` from ``started`` (global s; default now):
    the recording holds exactly the samples whose global time is in [started, stopped]."""
    t = started if started is not None else await global_now(c)
    s.state, s.recorder, s.started, s.stopped, s.error = "recording", node_id, t, None, ""
    await save_session(c, keys, s)
    return s


async def stop_recording(c: redis.asyncio.Redis, keys: Keys, s: Session, stopped: float | None = None) -> Session:
    """End the recording at ``stopped`` (global s; default now): the recorder drains what
    arrived until then, then closes the spool."""
    s.state, s.stopped = "stopped", stopped if stopped is not None else await global_now(c)
    await save_session(c, keys, s)
    return s


async def recording_status(c: redis.asyncio.Redis, keys: Keys, session_id: str) -> dict[str, str]:
    """The recorder's progress hash (state, directory, bytes, samples, seconds, error)."""
    raw = await c.hgetall(keys.recording(session_id))
    return {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}


async def delete_session(c: redis.asyncio.Redis, keys: Keys, session_id: str) -> None:
    await c.hdel(keys.sessions, session_id)


async def add_marker(
    c: redis.asyncio.Redis,
    keys: Keys,
    session_id: str,
    label: str,
    source: str,
    t_host: float | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Append a marker to a session at host time ``t_host`` (s; default now), mapped to the
    global clock; ``extra`` fields are stored with it (``t_original``: the sender's own
    timestamp, in its ``clock_original``; default the host time it was stamped at)."""
    t = host_time() if t_host is None else t_host
    est = await local_offset_async(c, keys)
    marker = {
        "t_original": repr(t),
        "clock_original": "host",
        **(extra or {}),
        "label": label,
        "source": source,
        "t_host": repr(t),
        "t_global": repr(float(host_to_global(est.host_offset() if est is not None else None, t))),
        "clock": "global" if est is not None else "host",
        "host": socket.gethostname(),
    }
    await c.xadd(keys.markers(session_id), marker)
    return marker


async def mark_recordings(
    c: redis.asyncio.Redis,
    keys: Keys,
    label: str,
    source: str,
    t_host: float | None = None,
    extra: dict[str, str] | None = None,
) -> list[str]:
    """Add a marker to every session being recorded (the lab's one marker inbox); returns
    their ids (empty: nothing records, the marker is not stored)."""
    t = host_time() if t_host is None else t_host
    recording = [s.session_id for s in await list_sessions(c, keys) if s.state == "recording"]
    for sid in recording:
        await add_marker(c, keys, sid, label, source, t, extra)
    return recording


async def read_markers(c: redis.asyncio.Redis, keys: Keys, session_id: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        for _eid, fields in await c.xrange(keys.markers(session_id))
    ]
