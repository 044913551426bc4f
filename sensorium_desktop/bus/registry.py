"""Sensor and device registry in Redis."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from ..core.samples import SensorInfo
from .keys import Keys


def sensor_mapping(info: SensorInfo) -> dict[str, str]:
    return {"info": info.to_json(), "node": info.node_id, "device": info.device_id, "updated": repr(time.time())}


def queue_sensor_registration(pipe: Any, keys: Keys, infos: list[SensorInfo]) -> None:
    """Queue the writes that register ``infos`` on a pipeline (sync or asyncio; the caller executes)."""
    for info in infos:
        pipe.hset(keys.sensor(info.sensor_id), mapping=sensor_mapping(info))
        pipe.sadd(keys.sensors, info.sensor_id)


def register_sensors(c: redis.Redis, keys: Keys, infos: list[SensorInfo]) -> None:
    """Write sensor descriptions (idempotent; called again after every reconnect)."""
    pipe = c.pipeline(transaction=False)
    queue_sensor_registration(pipe, keys, infos)
    pipe.execute()


@dataclass(slots=True)
class DeviceStatus:
    """A device as the registry shows it: descriptor fields + health + its sensors."""

    device_id: str
    name: str
    transport: str
    uri: str
    node_id: str
    state: str = "idle"
    message: str = ""
    health: dict[str, Any] = field(default_factory=dict)
    sensor_ids: list[str] = field(default_factory=list)
    updated: float = 0.0

    def to_mapping(self) -> dict[str, str]:
        return {
            "name": self.name,
            "transport": self.transport,
            "uri": self.uri,
            "node": self.node_id,
            "state": self.state,
            "message": self.message,
            "health": json.dumps(self.health, separators=(",", ":")),
            "sensors": json.dumps(self.sensor_ids),
            "updated": repr(self.updated or time.time()),
        }

    @classmethod
    def from_mapping(cls, device_id: str, m: dict[bytes, bytes]) -> DeviceStatus:
        def g(k: str, default: str = "") -> str:
            v = m.get(k.encode())
            return v.decode() if v is not None else default

        return cls(
            device_id=device_id,
            name=g("name"),
            transport=g("transport"),
            uri=g("uri"),
            node_id=g("node"),
            state=g("state", "idle"),
            message=g("message"),
            health=json.loads(g("health", "{}") or "{}"),
            sensor_ids=json.loads(g("sensors", "[]") or "[]"),
            updated=float(g("updated", "0") or 0),
        )


def decode_sensor(m: dict[bytes, bytes] | None) -> SensorInfo | None:
    """The sensor a ``<p>:sensor:<id>`` hash describes; None when it is missing or malformed."""
    if not m or b"info" not in m:
        return None
    try:
        return SensorInfo.from_json(m[b"info"])
    except (ValueError, TypeError, KeyError):
        return None


def _decode_sensors(raw: list[Any]) -> list[SensorInfo]:
    return [info for info in map(decode_sensor, raw) if info is not None]


def list_sensors(c: redis.Redis, keys: Keys) -> list[SensorInfo]:
    """All registered sensors, sorted by id (malformed entries are skipped)."""
    ids = sorted(x.decode() for x in c.smembers(keys.sensors))
    pipe = c.pipeline(transaction=False)
    for sid in ids:
        pipe.hgetall(keys.sensor(sid))
    return _decode_sensors(pipe.execute())


async def list_sensors_async(c: redis.asyncio.Redis, keys: Keys) -> list[SensorInfo]:
    ids = sorted(x.decode() for x in await c.smembers(keys.sensors))
    pipe = c.pipeline(transaction=False)
    for sid in ids:
        pipe.hgetall(keys.sensor(sid))
    return _decode_sensors(await pipe.execute())


def list_devices(c: redis.Redis, keys: Keys) -> list[DeviceStatus]:
    ids = sorted(x.decode() for x in c.smembers(keys.devices))
    pipe = c.pipeline(transaction=False)
    for did in ids:
        pipe.hgetall(keys.device(did))
    return [DeviceStatus.from_mapping(did, m) for did, m in zip(ids, pipe.execute(), strict=True) if m]


async def list_devices_async(c: redis.asyncio.Redis, keys: Keys) -> list[DeviceStatus]:
    ids = sorted(x.decode() for x in await c.smembers(keys.devices))
    pipe = c.pipeline(transaction=False)
    for did in ids:
        pipe.hgetall(keys.device(did))
    rows = await pipe.execute()
    return [DeviceStatus.from_mapping(did, m) for did, m in zip(ids, rows, strict=True) if m]


#: A device whose node has not refreshed it for this long is offline (window, status, forget).
OFFLINE_AFTER_S = 5.0


async def forget_device(c: redis.asyncio.Redis, keys: Keys, device_id: str, now: float | None = None) -> list[str]:
    """Take an offline device and its sensors out of the registry (their streams stay until
    trimmed); returns the sensor ids. Raises KeyError for an unknown device and ValueError for
    one that is online (its node would only register it again)."""
    raw = await c.hgetall(keys.device(device_id))
    if not raw:
        raise KeyError(f"no device {device_id!r} in the registry")
    d = DeviceStatus.from_mapping(device_id, raw)
    age = (now if now is not None else time.time()) - d.updated
    if age <= OFFLINE_AFTER_S:
        raise ValueError(f"device {device_id} is online on node {d.node_id} (reported {age:.0f} s ago): "
                         "disconnect it first")  # fmt: skip
    pipe = c.pipeline(transaction=True)
    pipe.srem(keys.devices, device_id)
    pipe.delete(keys.device(device_id))
    for sid in d.sensor_ids:
        pipe.srem(keys.sensors, sid)
        pipe.delete(keys.sensor(sid))
    pipe.hdel(keys.node_connected(d.node_id), device_id)  # not reconnected when its node starts again
    await pipe.execute()
    return d.sensor_ids


async def live_sensors_async(c: redis.asyncio.Redis, keys: Keys, now: float | None = None) -> list[SensorInfo]:
    """Registered sensors whose device reports now (an offline device's would record nothing)."""
    now = time.time() if now is None else now
    devices = await list_devices_async(c, keys)
    online = {sid for d in devices if now - d.updated <= OFFLINE_AFTER_S for sid in d.sensor_ids}
    return [s for s in await list_sensors_async(c, keys) if s.sensor_id in online]
