"""The Redis key schema (documented in docs/redis-schema.md); every key under one prefix."""

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
        return ":".join((self.prefix, *parts))

    # sensors and devices
    @property
    def sensors(self) -> str:
        return self._k("sensors")

    def sensor(self, sensor_id: str) -> str:
        return self._k("sensor", sensor_id)

    def stream(self, sensor_id: str) -> str:
        return self._k("stream", sensor_id)

    def latest(self, sensor_id: str) -> str:
        return self._k("latest", sensor_id)

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
    def observations(self) -> str:
        return self._k("observations")

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

    def recording(self, session_id: str) -> str:
        """Recorder progress of a session (state, bytes, samples, error)."""
        return self._k("recording", session_id)
