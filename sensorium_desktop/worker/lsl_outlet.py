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
from ..core.codec import CodecError
from ..core.hostclock import host_time
from ..core.samples import SensorInfo
from ..core.sync import ClockTimeMap
from ..devices.lsl import LSL_FORMATS, OWN_SOURCE_PREFIX

log = logging.getLogger(__name__)

REFRESH_S = 2.0
BLOCK_MS = 100
#: channel format → liblsl's numeric code (the inverse of what inlets read)
LSL_CODES = {fmt: code for code, fmt in LSL_FORMATS.items()}


def lsl_clock_offset() -> float:
    """``pylsl.local_clock() - host_time()`` (s), read back to back (both monotonic)."""
    import pylsl

    a = host_time()
    lc = pylsl.local_clock()
    b = host_time()
    return lc - (a + b) / 2.0


def make_outlet(info: SensorInfo) -> Any:
    """An LSL outlet describing ``info`` (channel labels and units, our source id)."""
    import pylsl

    si = pylsl.StreamInfo(
        info.sensor_id,
        info.attribute,
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
        self.times = ClockTimeMap()
        self.stats = {"samples": 0, "batches": 0, "malformed": 0, "reconnects": 0}

    def _refresh(self, c: redis.Redis) -> None:
        for info in list_sensors(c, self.keys):
            sid = info.sensor_id
            if sid in self.outlets or (self.only is not None and sid not in self.only):
                continue
            self.outlets[sid] = make_outlet(info)
            self.infos[sid] = info
            self.times.register(info)
            top = c.xrevrange(self.keys.stream(sid), count=1)
            self.positions[sid] = top[0][0].decode() if top else "0-0"
            log.info("lsl outlet: %s (%s, %d ch)", sid, info.attribute, info.channel_count)

    def _push(self, sid: str, entries: list[tuple[bytes, dict[bytes, Any]]]) -> None:
        outlet, info = self.outlets[sid], self.infos[sid]
        offset = lsl_clock_offset()
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
            stamps = self.times(batch) + offset
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
