"""Publish the lab's synchronized sensor streams as LSL outlets (for LabRecorder & co).

Each sensor stream in Redis becomes one outlet: name = sensor id, type = attribute,
``source_id`` ``sensorium:<sensor id>`` (so LabRecorder can resume after a restart and our own
LSL transport does not read it back), channel labels and units in ``desc/channels``.
Sample timestamps are the synchronized times — device clock → host clock through the causal
clock model, as the live plots use — expressed on this host's LSL clock
(``pylsl.local_clock()``), so LSL tools align them with every other stream on the network.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import redis

from ..bus.connection import Backoff, client
from ..bus.keys import Keys
from ..bus.registry import list_sensors
from ..bus.streams import decode_entry, sensor_of_stream
from ..core.clockdomain import ClockDomains
from ..core.codec import CodecError
from ..core.contenttypes import content_type, display_name
from ..core.samples import SensorInfo
from ..devices.lsl import LSL_FORMATS, OWN_SOURCE_PREFIX, measure_lsl_offset

log = logging.getLogger(__name__)

REFRESH_S = 2.0
BLOCK_MS = 100
#: channel format → liblsl's numeric code (the inverse of what inlets read)
LSL_CODES = {fmt: code for code, fmt in LSL_FORMATS.items()}


def make_outlet(info: SensorInfo, shares_device: bool = False) -> Any:
    """An LSL outlet describing ``info``: its display name, content type, channel labels
    and units, our source id (``sensorium:<sensor id>``), the attribute id in ``desc``."""
    import pylsl

    si = pylsl.StreamInfo(
        display_name(info.device_name or info.device_id, info.attribute, shares_device),
        content_type(info.attribute),
        info.channel_count,
        info.nominal_rate if info.nominal_rate > 0 else pylsl.IRREGULAR_RATE,
        LSL_CODES.get(info.channel_format, LSL_CODES["float64"]),
        OWN_SOURCE_PREFIX + info.sensor_id,
    )
    chans = si.desc().append_child("channels")
    for name, unit in zip(info.channel_names, info.units, strict=True):
        ch = chans.append_child("channel")
        ch.append_child_value("label", name)
        ch.append_child_value("unit", unit)
    si.desc().append_child_value("manufacturer", "Sensorium Desktop")
    si.desc().append_child_value("device", info.device_name or info.device_id)
    si.desc().append_child_value("attribute", info.attribute)
    return pylsl.StreamOutlet(si)


class LslOutletBridge:
    """Follows sensor streams in Redis from now on and pushes them to LSL outlets.

    ``sensors``: only these sensor ids (default: every registered sensor, including ones
    that appear later). Counters in :attr:`stats`.
    """

    def __init__(self, redis_url: str, keys: Keys, sensors: list[str] | None = None) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.only = set(sensors) if sensors else None
        self.outlets: dict[str, Any] = {}
        self.infos: dict[str, SensorInfo] = {}
        self.positions: dict[str, str] = {}
        self.times = ClockDomains()
        self.lsl_offset, _ = measure_lsl_offset()  # host - LSL clock (s)
        self.stats = {"samples": 0, "batches": 0, "malformed": 0, "reconnects": 0}

    def _refresh(self, c: redis.Redis) -> None:
        infos = list_sensors(c, self.keys)
        for info in infos:
            sid = info.sensor_id
            if sid in self.outlets or (self.only is not None and sid not in self.only):
                continue
            siblings = sum(1 for i in infos if i.device_id == info.device_id and i.node_id == info.node_id)
            self.outlets[sid] = make_outlet(info, siblings > 1)
            self.infos[sid] = info
            self.times.register(info)
            top = c.xrevrange(self.keys.stream(sid), count=1)
            self.positions[sid] = top[0][0].decode() if top else "0-0"
            log.info("lsl outlet: %s (%s, %d ch)", sid, info.attribute, info.channel_count)

    def _push(self, sid: str, entries: list[tuple[bytes, dict[bytes, Any]]]) -> None:
        outlet, info = self.outlets[sid], self.infos[sid]
        offset = -self.lsl_offset
        for eid, fields in entries:
            self.positions[sid] = eid.decode()
            try:
                batch = decode_entry(sid, eid, fields).batch
            except CodecError as exc:
                self.stats["malformed"] += 1
                log.error("lsl outlet: %s: skipping malformed entry: %s", sid, exc)
                continue
            if not len(batch):
                continue
            stamps = self.times.map_batch(batch) + offset
            values = batch.values
            if info.channel_format == "string":
                outlet.push_chunk([[str(v) for v in row] for row in values.tolist()], stamps.tolist())
            else:
                outlet.push_chunk(np.ascontiguousarray(values, dtype=info.channel_format), stamps.tolist())
            self.stats["samples"] += len(batch)
            self.stats["batches"] += 1

    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        """Bridge until ``stop`` is set (or ``duration`` s); survives Redis restarts."""
        deadline = time.monotonic() + duration if duration else None
        backoff = Backoff()
        c: redis.Redis | None = None
        next_refresh = 0.0
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                if c is None:
                    c = client(self.redis_url)
                    next_refresh = 0.0
                if time.monotonic() >= next_refresh:
                    self._refresh(c)
                    next_refresh = time.monotonic() + REFRESH_S
                if not self.positions:
                    stop.wait(0.2)
                    continue
                streams = {self.keys.stream(sid): pos for sid, pos in self.positions.items()}
                for key, entries in c.xread(streams, block=BLOCK_MS, count=1000) or []:
                    self._push(sensor_of_stream(self.keys, key), entries)
                backoff.reset()
            except (redis.RedisError, OSError) as exc:
                self.stats["reconnects"] += 1
                log.warning("lsl outlet: Redis unavailable (%s); retrying", exc)
                c = None
                stop.wait(backoff.next_delay())
        self.outlets.clear()
