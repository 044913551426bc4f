"""``SyncEngine``: the seed's Python API, on top of the Redis spine.

.. code-block:: python

    from sensorium_desktop import SyncEngine
    engine = SyncEngine(redis_url="redis://127.0.0.1/", node_id="node-1", heartbeat_ttl=5)
    engine.ingest("camera-1", "camera", 10.5, sigma=0.01)
    for group in engine.step():
        print(group["t_global"], [(m["sensor_id"], m["probability"]) for m in group["members"]])

``ingest`` appends an observation to the lab's ``observations`` stream (any process, any
PC). ``step`` takes part in the election, maps every new observation to global time with
the sensor's clock model, groups them, writes the groups (fenced) when this engine leads,
and returns them as ``[{"t_global", "sigma", "term", "node", "members": [{"sensor_id",
"sensor_type", "probability", "t_local", "index"}]}]``.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import numpy as np
import redis

from ..core.association import AssociationParams
from ..core.hostclock import host_time
from ..core.ids import make_id, validate_attribute_id, validate_sensor_id
from ..core.sync import SyncCore
from .connection import RedisEndpoint, open_endpoint
from .election import Elector, StaleTermError, fenced_exec
from .globalclock import GlobalClockProbe
from .seed_import import SeedImporter


class SyncEngine:
    """Ingest observations and run synchronization steps (see module docstring)."""

    def __init__(
        self,
        redis_url: str | None = None,
        node_id: str | None = None,
        heartbeat_ttl: float = 5.0,
        priority: int = 0,
        prefix: str | None = None,
        params: AssociationParams | None = None,
        use_global_clock: bool = True,
        import_seed: bool = True,
    ) -> None:
        import socket

        self.endpoint: RedisEndpoint = open_endpoint(redis_url, prefix)
        self.keys = self.endpoint.keys
        self.node_id = node_id or make_id(socket.gethostname(), "engine")
        self.c: redis.Redis = self.endpoint.client()
        self.elector = Elector(self.keys, self.node_id, priority, heartbeat_ttl)
        self.core = SyncCore(params)
        self.probe = GlobalClockProbe() if use_global_clock else None
        self._cursor_key = self.keys.observations_read(self.node_id)
        #: observations written the seed library's way (``obs:*``) join ours, each once
        self.seed_importer = SeedImporter(self.keys) if import_seed else None

    # -- API --------------------------------------------------------------------------------
    def configure_sensor(self, sensor_id: str, fixed_latency: float = 0.0, **clock_options: Any) -> None:
        """Tell the engine a sensor's known constant transport delay (s) before ingesting."""
        validate_sensor_id(sensor_id)
        self.core.add_sensor(sensor_id, fixed_latency=fixed_latency, **clock_options)

    def ingest(
        self,
        sensor_id: str,
        sensor_type: str,
        t_local: float,
        sigma: float = 0.001,
        t_arrival: float | None = None,
    ) -> str:
        """Record that ``sensor_id`` (of ``sensor_type``) observed an event at ``t_local`` (s,
        its own clock) with timing noise ``sigma`` (s); ``t_arrival`` defaults to now (host)."""
        validate_sensor_id(sensor_id)
        validate_attribute_id(sensor_type)
        t_arr = host_time() if t_arrival is None else float(t_arrival)
        for name, v in (("t_local", t_local), ("t_arrival", t_arr), ("sigma", sigma)):
            if not math.isfinite(float(v)):
                raise ValueError(f"{name} must be finite, got {v!r}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        obs_id = uuid.uuid4().hex[:12]
        eid = self.c.xadd(self.keys.observations, {
            "sensor": sensor_id, "type": sensor_type, "t_local": repr(float(t_local)), "sigma": repr(float(sigma)),
            "t_arrival": repr(t_arr), "node": self.node_id, "id": obs_id,
        })  # fmt: skip
        return eid.decode() if isinstance(eid, bytes) else str(eid)

    def step(self) -> list[dict[str, Any]]:
        """One synchronization step over the observations ingested since the last one."""
        state = self.elector.tick(self.c)
        offset = 0.0
        if self.probe is not None:
            self.probe.probe(self.c)
            est = self.probe.estimate()
            offset = est.offset if est else 0.0
        if self.seed_importer is not None:
            self.seed_importer.run(self.c)
        last = self.c.get(self._cursor_key)
        start = "(" + last.decode() if last else "-"
        entries = self.c.xrange(self.keys.observations, start, "+")
        if not entries:
            return []
        ids, types, local, arrival, sigma = [], [], [], [], []
        for _, f in entries:
            sid = f[b"sensor"].decode()
            t_l, t_a = float(f[b"t_local"]), float(f[b"t_arrival"])
            self.core.observe(sid, np.array([t_l]), np.array([t_a]))
            ids.append(sid)
            types.append(f[b"type"].decode())
            local.append(t_l)
            arrival.append(t_a)
            sigma.append(float(f[b"sigma"]))
        groups = self.core.group(ids, local, sigma, arrival)
        out = []
        for g in groups:
            members = [
                {"sensor_id": m.sensor_id, "sensor_type": types[m.index], "probability": m.probability,
                 "t_local": local[m.index], "index": m.index}
                for m in g.members
            ]  # fmt: skip
            out.append({"t_global": g.t_global + offset, "sigma": g.sigma, "term": state.term,
                        "node": self.node_id, "members": members})  # fmt: skip
        last_id = entries[-1][0]
        commands: list[list[object]] = [
            ["XADD", self.keys.groups, "MAXLEN", "~", "100000", "*", "t_global", repr(o["t_global"]),
             "sigma", repr(o["sigma"]), "term", state.term, "node", self.node_id, "members", json.dumps(o["members"])]
            for o in out
        ]  # fmt: skip
        if state.is_leader and commands:
            try:
                fenced_exec(self.c, self.keys, self.node_id, state.term, commands)
            except StaleTermError:
                pass  # lost leadership between the tick and the write: groups are returned, not written
        self.c.set(self._cursor_key, last_id)
        return out

    @property
    def is_leader(self) -> bool:
        return self.elector.state.is_leader

    def close(self) -> None:
        try:
            self.elector.resign(self.c)
        except redis.RedisError:
            pass
        self.c.close()
        self.endpoint.close()

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
