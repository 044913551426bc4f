"""The Redis key schema (documented in docs/redis-schema.md); every key under one prefix.

The prefix is a Redis Cluster hash tag (``{sensorium}:stream:…``): every key of one lab hashes
to the same slot, so the Lua scripts and MULTI blocks that touch several keys (election,
fenced leader writes, the publisher's append, the seed import) are valid on a cluster too.
Every key is built here; nothing appends to a key elsewhere."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PREFIX = "sensorium"


def default_prefix() -> str:
    return os.environ.get("SENSORIUM_PREFIX", DEFAULT_PREFIX)


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builders. ``prefix`` separates independent labs sharing one Redis."""

    prefix: str = DEFAULT_PREFIX

    def _k(self, *parts: str) -> str:
        return ":".join((f"{{{self.prefix}}}", *parts))

    @property
    def pattern(self) -> str:
        """A SCAN/KEYS pattern matching every key of this lab (braces are literal in globs)."""
        return self._k("*")

    # sensors and devices
    @property
    def sensors(self) -> str:
        return self._k("sensors")

    def sensor(self, sensor_id: str) -> str:
        return self._k("sensor", sensor_id)

    def stream(self, sensor_id: str) -> str:
        return self._k("stream", sensor_id)

    @property
    def devices(self) -> str:
        return self._k("devices")

    def device(self, device_id: str) -> str:
        return self._k("device", device_id)

    # sync state
    def clock(self, sensor_id: str) -> str:
        return self._k("clock", sensor_id)

    @property
    def groups(self) -> str:
        return self._k("groups")

    @property
    def groups_cursor(self) -> str:
        """Global time (s) up to which the leader's sync worker has grouped observations."""
        return self._k("groups", "cursor")

    @property
    def observations(self) -> str:
        return self._k("observations")

    def observations_read(self, node_id: str) -> str:
        """How far ``node_id``'s :class:`SyncEngine` has read :attr:`observations` (a stream id)."""
        return self._k("observations", "read", node_id)

    def seed_import_mark(self, seed_key: str) -> str:
        """Set once a seed library ``obs:*`` key was imported into :attr:`observations`."""
        return self._k("seedobs", seed_key)

    @property
    def global_clock(self) -> str:
        return self._k("globalclock")

    def host_offset(self, node_id: str) -> str:
        return self._k("hostoffset", node_id)

    # nodes, election, checkpoints
    @property
    def lab(self) -> str:
        """A random id made once per lab (Redis + prefix): tells a spill file whose data it holds."""
        return self._k("lab")

    @property
    def nodes(self) -> str:
        return self._k("nodes")

    def heartbeat(self, node_id: str) -> str:
        return self._k("heartbeat", node_id)

    def node_info(self, node_id: str) -> str:
        return self._k("node", node_id)

    def node_connected(self, node_id: str) -> str:
        """Devices the operator connected on ``node_id`` through a command (hash: device id →
        URI): reconnected when the node starts again, until disconnected or forgotten."""
        return self._k("node", node_id, "connected")

    @property
    def term(self) -> str:
        return self._k("election", "term")

    @property
    def leader(self) -> str:
        return self._k("election", "leader")

    @property
    def checkpoint_proposed(self) -> str:
        return self._k("checkpoint", "proposed")

    @property
    def checkpoint_committed(self) -> str:
        return self._k("checkpoint", "committed")

    def checkpoint_acks(self, checkpoint_id: str) -> str:
        return self._k("checkpoint", "acks", checkpoint_id)

    # backpressure and attention
    def backpressure(self, sensor_id: str) -> str:
        return self._k("bp", sensor_id)

    def attention(self, sensor_id: str) -> str:
        return self._k("attention", sensor_id)

    # commands, events, telemetry
    def commands(self, node_id: str) -> str:
        return self._k("commands", node_id)

    @property
    def events(self) -> str:
        return self._k("events")

    def telemetry(self, node_id: str) -> str:
        return self._k("telemetry", node_id)

    def worker_telemetry(self, node_id: str) -> str:
        """The sync worker's statistics (JSON, :class:`core.status.WorkerStats`) of ``node_id``."""
        return self._k("telemetry", node_id, "worker")

    @property
    def quality(self) -> str:
        """Hash: sensor id → its signal quality now (JSON: state, score, reason, detail, channel, time)."""
        return self._k("quality")

    def discovery(self, node_id: str) -> str:
        return self._k("discovery", node_id)

    def preview(self, sensor_id: str) -> str:
        return self._k("preview", sensor_id)

    # sessions and recordings
    @property
    def sessions(self) -> str:
        return self._k("sessions")

    def session(self, session_id: str) -> str:
        return self._k("session", session_id)

    def markers(self, session_id: str) -> str:
        return self._k("markers", session_id)

    @property
    def sync_flashes(self) -> str:
        """Stream of the flashes sync checks presented (what a simulated room's light shows)."""
        return self._k("synccheck", "flashes")

    def recording(self, session_id: str) -> str:
        """Recorder progress of a session (state, bytes, samples, error)."""
        return self._k("recording", session_id)
