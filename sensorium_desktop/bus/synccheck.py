"""The sync check on the bus: presented flashes as markers and as the room's light.

Every presented flash goes (1) as a marker (label ``flash``, source ``sync-check``) into each
session being recorded — the recording's presentation times — and (2) onto the
``synccheck:flashes`` stream, with its onset and end in global time, which a node reads to
light its simulated room (:mod:`sensorium_desktop.worker.components`).
"""

from __future__ import annotations

import math
import socket

import redis.asyncio

from ..core.timemap import host_to_global
from .globalclock import local_offset_async
from .keys import Keys
from .sessions import mark_recordings

#: Label and source of a sync check's markers.
FLASH_LABEL = "flash"
MARKER_SOURCE = "sync-check"
#: The flashes stream keeps about this many entries.
FLASHES_MAXLEN = 10_000


async def present(
    c: redis.asyncio.Redis, keys: Keys, check_id: str, index: int, t_host: float, lit: bool
) -> tuple[float, list[str]]:
    """A flash ``index`` of check ``check_id`` went on (``lit``) or off at host time ``t_host``
    (s, the frame's swap): published on the flashes stream and, for an onset, as a marker in
    every recording session. Returns (global time s, sessions marked)."""
    est = await local_offset_async(c, keys)
    t_global = float(host_to_global(est.host_offset() if est is not None else None, t_host))
    flash_id = f"{check_id}-{index}"
    await c.xadd(keys.sync_flashes, {"check": check_id, "flash": flash_id, "index": str(index),
                                     "phase": "on" if lit else "off", "t_global": repr(t_global),
                                     "t_host": repr(t_host), "host": socket.gethostname()},
                 maxlen=FLASHES_MAXLEN, approximate=True)  # fmt: skip
    if not lit:
        return t_global, []
    extra = {"check": check_id, "flash": flash_id, "index": str(index)}
    return t_global, await mark_recordings(c, keys, FLASH_LABEL, MARKER_SOURCE, t_host, extra)


async def read_flashes(
    c: redis.asyncio.Redis, keys: Keys, after: str, block_ms: int = 500
) -> tuple[str, list[tuple[str, str, float]]]:
    """Flash phases published after stream id ``after`` ("$": from now on, none missed between
    calls when the returned id is passed back): (last id, [(flash id, "on"/"off", global time
    s)]); malformed entries are skipped."""
    if after == "$":  # "$" sees only what arrives while blocked: start from the newest id instead
        newest = await c.xrevrange(keys.sync_flashes, count=1)
        after = (newest[0][0].decode() if isinstance(newest[0][0], bytes) else str(newest[0][0])) if newest else "0-0"
    got = await c.xread({keys.sync_flashes: after}, count=500, block=block_ms)
    out: list[tuple[str, str, float]] = []
    last = after
    for _key, entries in got or []:
        for eid, fields in entries:
            last = eid.decode() if isinstance(eid, bytes) else str(eid)
            try:
                flash = fields[b"flash"].decode()
                phase = fields[b"phase"].decode()
                t = float(fields[b"t_global"])
            except (KeyError, ValueError, UnicodeDecodeError):
                continue
            if phase in ("on", "off") and math.isfinite(t):
                out.append((flash, phase, t))
    return last, out
