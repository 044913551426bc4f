"""Observations written the seed library's way, imported into the lab's own engine.

Scripts written for the seed (``from sensorium import SyncEngine``) store each event
observation as ``obs:{sensor_id}:{int(t_local*1e9)}`` = JSON (``sensor_id``, ``sensor_type``,
``t_local`` s, ``sigma`` s) with a TTL, and the seed re-reads every unexpired key each step.
:func:`import_seed_observations` hands each such key to our engine exactly once, lab-wide:
one Lua call marks the key as imported (``<prefix>:seedobs:<key>``, kept as long as the
observation lives) and appends it to ``<prefix>:observations``, where the sync worker and
:class:`~sensorium_desktop.bus.engine.SyncEngine` group it with everything else (per-sensor
clock models, time slices, outliers). However many nodes import at once, the mark decides.

The seed records no arrival time; an observation's ``t_arrival`` is the moment it was
imported (host clock) unless its JSON carries one (``t_arrival``, s). Malformed entries are
marked too (so they are reported once), counted and logged with the reason.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import redis

from ..core.hostclock import host_time
from ..core.ids import ID_PATTERN, make_id
from .keys import Keys

log = logging.getLogger(__name__)

SEED_OBS_PATTERN = "obs:*"
#: An import mark outlives its observation by this much (ms), so a key read just before it
#: expires is never imported twice.
MARK_MARGIN_MS = 60_000
SCAN_COUNT = 1000

# KEYS[1] import mark, KEYS[2] observations stream; ARGV[1] mark TTL (ms, 0 = none),
# ARGV[2] mark value ("ok" imports, anything else only marks), ARGV[3..] stream fields.
_IMPORT_ONCE = """
local ok
if tonumber(ARGV[1]) > 0 then
  ok = redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[1])
else
  ok = redis.call('SET', KEYS[1], ARGV[2], 'NX')
end
if not ok then return 0 end
if ARGV[2] ~= 'ok' then return 2 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
return 1
"""


class SeedObservationError(ValueError):
    """A seed ``obs:*`` entry that cannot be an observation (why, in the message)."""


@dataclass
class SeedImportStats:
    """Counts since the importer started."""

    scans: int = 0
    imported: int = 0
    malformed: int = 0


def observation_fields(raw: bytes | str, now: float) -> dict[str, str]:
    """The observations-stream fields for one seed JSON entry; ``now`` (s, host) is its
    arrival unless it carries ``t_arrival``. Raises :class:`SeedObservationError`."""
    try:
        obs: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SeedObservationError(f"not JSON: {exc}") from exc
    if not isinstance(obs, dict):
        raise SeedObservationError("not a JSON object")
    sensor = obs.get("sensor_id")
    if not isinstance(sensor, str) or not sensor:
        raise SeedObservationError("no sensor_id")
    try:
        t_local, sigma = float(obs["t_local"]), float(obs.get("sigma", 0.001))
        t_arrival = float(obs.get("t_arrival", now))
    except (KeyError, TypeError, ValueError) as exc:
        raise SeedObservationError(f"t_local/sigma/t_arrival not numbers: {exc!r}") from exc
    if not all(math.isfinite(v) for v in (t_local, sigma, t_arrival)) or sigma <= 0:
        raise SeedObservationError("t_local, sigma, t_arrival must be finite and sigma > 0")
    kind = str(obs.get("sensor_type") or "event")
    return {
        "sensor": sensor if ID_PATTERN.match(sensor) else make_id(sensor),
        "type": kind if ID_PATTERN.match(kind) else make_id(kind),
        "t_local": repr(t_local), "sigma": repr(sigma), "t_arrival": repr(t_arrival), "node": "seed",
    }  # fmt: skip


class SeedImporter:
    """Imports ``obs:*`` keys into ``keys.observations``, each once (see module docstring)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.stats = SeedImportStats()
        self._import_once: Any = None  # the Lua script, registered on the first client

    def run(self, c: redis.Redis) -> int:
        """One pass over the seed's observation keys; returns how many were imported now."""
        self.stats.scans += 1
        found = [k for k in c.scan_iter(match=SEED_OBS_PATTERN, count=SCAN_COUNT)]
        if not found:
            return 0
        pipe = c.pipeline(transaction=False)
        for key in found:
            pipe.exists(self._mark(key))
        fresh = [k for k, marked in zip(found, pipe.execute(), strict=True) if not marked]
        if not fresh:
            return 0
        pipe = c.pipeline(transaction=False)
        for key in fresh:
            pipe.get(key)
            pipe.pttl(key)
        replies = pipe.execute()
        now = host_time()
        if self._import_once is None:
            self._import_once = c.register_script(_IMPORT_ONCE)
        imported = 0
        for key, raw, pttl in zip(fresh, replies[::2], replies[1::2], strict=True):
            if raw is None:  # expired meanwhile
                continue
            name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
            ttl = int(pttl) + MARK_MARGIN_MS if int(pttl) > 0 else 0
            try:
                fields = observation_fields(raw, now) | {"id": name}
            except SeedObservationError as exc:
                if self._import_once(keys=[self._mark(key), self.keys.observations], args=[ttl, "malformed"], client=c):
                    self.stats.malformed += 1
                    log.warning("seed import: %s skipped: %s", name, exc)
                continue
            args = [v for kv in fields.items() for v in kv]
            marks = [self._mark(key), self.keys.observations]
            if self._import_once(keys=marks, args=[ttl, "ok", *args], client=c) == 1:
                imported += 1
        self.stats.imported += imported
        return imported

    def _mark(self, key: bytes | str) -> str:
        return self.keys.seed_import_mark(key.decode("utf-8", "replace") if isinstance(key, bytes) else key)
