"""Publish the lab's synchronized sensor streams as LSL outlets (for LabRecorder & co).

Each sensor stream in Redis becomes one outlet: name = the sensor's display name, type = its
XDF/LSL content type (:mod:`sensorium_desktop.core.contenttypes`; the attribute id in
``desc``), ``source_id`` ``sensorium:<sensor id>`` (so LabRecorder can resume after a restart
and our own LSL transport does not read it back), channel labels and units in
``desc/channels``. The session markers (every session's marker stream) go to one ``Markers``
string outlet. Sample timestamps are the synchronized times — device clock → host clock
through the sensor's clock domain, as the live plots use — expressed on this host's LSL
clock (``pylsl.local_clock()``), so LSL tools align them with every other stream on the
network. The bridge holds its sensors at ``high`` attention: the nodes publish each packet
as it arrives instead of batching it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import numpy as np
import redis

from ..bus.attention import hold_attention, release_attention
from ..bus.connection import client
from ..bus.globalclock import local_offset
from ..bus.keys import Keys
from ..bus.registry import list_sensors
from ..bus.streams import decode_entry, sensor_of_stream
from ..core.backoff import Backoff
from ..core.backpressure import Attention
from ..core.codec import CodecError
from ..core.contenttypes import content_type, display_name
from ..core.samples import SensorInfo
from ..core.timemap import TimeMap
from ..devices.lsl import LSL_FORMATS, OWN_SOURCE_PREFIX, measure_lsl_offset

log = logging.getLogger(__name__)

REFRESH_S = 2.0
BLOCK_MS = 100
#: attention hold: level, lifetime (s); refreshed every REFRESH_S
HOLD_TTL_S = 10.0
MARKERS_SOURCE_ID = OWN_SOURCE_PREFIX + "markers"
#: channel format → liblsl's numeric code (the inverse of what inlets read)
LSL_CODES = {fmt: code for code, fmt in LSL_FORMATS.items()}


def make_outlet(info: SensorInfo, shares_device: bool = False) -> Any:
    """An LSL outlet describing ``info``: its display name, content type, channel labels
    and units, our source id (``sensorium:<sensor id>``), the attribute id in ``desc``."""
    import pylsl

    si = pylsl.StreamInfo(
        display_name(
            info.device_name or info.device_id, info.attribute, shares_device, str(info.extra.get("stream_word", ""))
        ),
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


def make_markers_outlet() -> Any:
    """The ``Markers`` string outlet of the lab's session markers."""
    import pylsl

    si = pylsl.StreamInfo("Sensorium markers", "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, MARKERS_SOURCE_ID)
    si.desc().append_child_value("manufacturer", "Sensorium Desktop")
    return pylsl.StreamOutlet(si)


class LslOutletBridge:
    """Follows sensor streams in Redis from now on and pushes them to LSL outlets.

    ``sensors``: only these sensor ids (default: every registered sensor, including ones
    that appear later). Counters in :attr:`stats`.
    """

    def __init__(
        self, redis_url: str, keys: Keys, sensors: list[str] | None = None, attention: Attention | None = Attention.HIGH
    ) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.only = set(sensors) if sensors else None
        self.outlets: dict[str, Any] = {}
        self.infos: dict[str, SensorInfo] = {}
        self.positions: dict[str, str] = {}
        #: device → host (causal), and this host's host → global for session markers
        self.time = TimeMap()
        self.host = socket.gethostname()
        self.lsl_offset, _ = measure_lsl_offset()  # host - LSL clock (s)
        self.attention = attention  # None: no hold (the sensors' own attention decides the latency)
        self.holder = f"lsl-outlet:{socket.gethostname()}:{os.getpid()}"
        self.marker_positions: dict[str, str] = {}  # marker stream key → last id read
        self.marker_outlet: Any = None
        self.stats = {"samples": 0, "batches": 0, "markers": 0, "malformed": 0, "reconnects": 0}

    def _refresh(self, c: redis.Redis) -> None:
        infos = list_sensors(c, self.keys)
        for info in infos:
            sid = info.sensor_id
            if sid in self.outlets or (self.only is not None and sid not in self.only):
                continue
            siblings = sum(1 for i in infos if i.device_id == info.device_id and i.node_id == info.node_id)
            self.outlets[sid] = make_outlet(info, siblings > 1)
            self.infos[sid] = info
            self.time.register(info)
            top = c.xrevrange(self.keys.stream(sid), count=1)
            self.positions[sid] = top[0][0].decode() if top else "0-0"
            log.info("lsl outlet: %s (%s, %d ch)", sid, info.attribute, info.channel_count)
        if self.outlets and self.attention is not None:
            hold_attention(c, self.keys, list(self.outlets), self.holder, self.attention, HOLD_TTL_S)
        for raw in c.hkeys(self.keys.sessions):
            key = self.keys.markers(raw.decode() if isinstance(raw, bytes) else str(raw))
            if key not in self.marker_positions:
                top = c.xrevrange(key, count=1)
                self.marker_positions[key] = top[0][0].decode() if top else "0-0"
        if self.marker_positions and self.marker_outlet is None:  # before any marker: inlets can connect
            self.marker_outlet = make_markers_outlet()

    def _refresh_host_offset(self, c: redis.Redis) -> None:
        """This host's host → global offset, as a node on it publishes it (none: host clock)."""
        est = local_offset(c, self.keys)
        if est is not None:
            self.time.set_host_offset(self.host, est.offset, est.uncertainty, est.drift, est.t_ref)

    def _push_markers(self, c: redis.Redis, key: str, entries: list[tuple[bytes, dict[bytes, Any]]]) -> None:
        """Session markers → the ``Markers`` outlet (made by :meth:`_refresh` when it follows
        their streams), stamped on this host's LSL clock."""
        fresh = False
        for eid, fields in entries:
            self.marker_positions[key] = eid.decode()
            try:
                label = fields[b"label"].decode("utf-8", "replace")
                same_host = fields.get(b"host", b"").decode() == self.host and b"t_host" in fields
                if same_host:
                    t = float(fields[b"t_host"])
                else:
                    if not fresh:
                        self._refresh_host_offset(c)
                        fresh = True
                    t = float(self.time.to_host_from_global(self.host, float(fields[b"t_global"])))
            except (KeyError, ValueError) as exc:
                self.stats["malformed"] += 1
                log.error("lsl outlet: skipping a malformed marker in %s: %s", key, exc)
                continue
            self.marker_outlet.push_sample([label], t - self.lsl_offset)
            self.stats["markers"] += 1

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
            stamps = self.time.map_batch(batch) + offset
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
                if not self.positions and not self.marker_positions:
                    stop.wait(0.2)
                    continue
                streams = {self.keys.stream(sid): pos for sid, pos in self.positions.items()}
                streams.update(self.marker_positions)
                for raw_key, entries in c.xread(streams, block=BLOCK_MS, count=1000) or []:
                    key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                    if key in self.marker_positions:
                        self._push_markers(c, key, entries)
                    else:
                        self._push(sensor_of_stream(self.keys, key), entries)
                backoff.reset()
            except (redis.RedisError, OSError) as exc:
                self.stats["reconnects"] += 1
                log.warning("lsl outlet: Redis unavailable (%s); retrying", exc)
                c = None
                stop.wait(backoff.next_delay())
        if c is not None and self.outlets and self.attention is not None:
            try:
                release_attention(c, self.keys, list(self.outlets), self.holder)
            except (redis.RedisError, OSError):
                pass  # the hold expires by itself
        self.outlets.clear()
        self.marker_outlet = None
