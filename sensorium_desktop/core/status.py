"""Typed state shared by the node, its sync worker, the status reader and the window.

Written to Redis as JSON (``to_json``) and read back tolerantly (``from_json``: unknown fields
are ignored, missing ones take their defaults, a wrong type becomes the default), so nodes of
different versions in one lab can still read each other. Pure data: no Redis, no Qt.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def _coerce(cls: type[T], raw: object) -> T:
    """``cls`` from a decoded JSON object, field by field (see the module docstring)."""
    if not isinstance(raw, dict):
        return cls()
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for f in fields(cls):  # type: ignore[arg-type]  # cls is a dataclass
        if f.name not in raw:
            continue
        value, default = raw[f.name], getattr(defaults, f.name)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, dict):
            ok = isinstance(value, dict)
        elif isinstance(default, list):
            ok = isinstance(value, list)
        else:  # Optional fields (None default): numbers
            ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        if ok:
            kwargs[f.name] = value
    return cls(**kwargs)


def _json_object(raw: bytes | str | None) -> dict[str, Any] | None:
    """The JSON object in ``raw``; None when missing, not JSON or not an object."""
    if not raw:
        return None
    try:
        d = json.loads(raw)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


@dataclass(slots=True)
class NodeState:
    """What a node's components report (election, host offset, checkpoints, worker, recorder,
    load); part of the node's :class:`Telemetry`."""

    leader: str = ""
    term: int = 0
    is_leader: bool = False
    election_error: str = ""
    #: global − host clock (s), the round trip of the best probes (s), 1-sigma (s)
    host_offset_s: float | None = None
    host_offset_rtt_s: float | None = None
    host_offset_uncertainty_s: float | None = None
    #: the last checkpoint this node committed as leader: id, node ids that acknowledged, live nodes
    checkpoint_id: str = ""
    checkpoint_acks: list[str] = field(default_factory=list)
    checkpoint_live: int = 0
    worker_pid: int | None = None
    worker_restarts: int = 0
    #: session id → recorder state (recording, stopping, complete, failed)
    recordings: dict[str, str] = field(default_factory=dict)
    system_load: str = ""
    pressure: float = 0.0
    memory_protection: bool = False


@dataclass(slots=True)
class Telemetry:
    """A node's report, every second (``<p>:telemetry:<node>``, TTL 30 s).
    ``rates``: sensor id → samples/s; ``latency_ms``: arrival → Redis percentiles (p50, p99…);
    ``remote_control``: one summary dict per running server (LabRecorder RCS, Pupil Remote,
    network ingest), each with its ``server`` name."""

    node: str = ""
    pid: int = 0
    time: float = 0.0
    cpu_percent: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    queue_depth: int = 0
    spilled: int = 0
    connected: bool = False
    latency_ms: dict[str, float] = field(default_factory=dict)
    publisher: dict[str, int] = field(default_factory=dict)
    #: sensor id → batches flushed to the publisher
    batch_flushes: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    device_errors: list[list[str]] = field(default_factory=list)
    remote_control: list[dict[str, Any]] = field(default_factory=list)
    state: NodeState = field(default_factory=NodeState)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> Telemetry | None:
        """None for a missing or undecodable entry."""
        d = _json_object(raw)
        if d is None:
            return None
        tele = _coerce(cls, {k: v for k, v in d.items() if k != "state"})
        tele.state = _coerce(NodeState, d.get("state"))
        return tele


@dataclass(slots=True)
class WorkerStats:
    """A sync worker's counters (``<p>:telemetry:<node>:worker``). ``lag_s``: host time since
    the newest batch it read (s); ``positions``: last batch seq read per sensor."""

    pid: int = 0
    time: float = 0.0
    batches: int = 0
    samples: int = 0
    duplicates: int = 0
    missing: int = 0
    decode_errors: int = 0
    groups_written: int = 0
    slices_written: int = 0
    stale_rejections: int = 0
    observations_pending: int = 0
    lag_s: float = 0.0
    is_leader: bool = False
    term: int = 0
    started: float = 0.0
    rebuilt_batches: int = 0
    seed_imported: int = 0
    seed_malformed: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    #: sensor id → clock summary (offset s, drift_ppm, uncertainty s, epoch, resets, late, domain, kind, latency s)
    sensors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=float)

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> WorkerStats | None:
        d = _json_object(raw)
        return None if d is None else _coerce(cls, d)


@dataclass(slots=True)
class NodeStatus:
    """One node as the lab sees it: ``alive`` while its heartbeat key lives."""

    node_id: str
    host: str = ""
    alive: bool = False
    heartbeat_age_s: float | None = None
    priority: int | None = None
    info: dict[str, str] = field(default_factory=dict)
    telemetry: Telemetry | None = None
    worker: WorkerStats | None = None
    #: the node's measured global − host offset (``<p>:hostoffset:<node>``), as stored
    host_offset: dict[str, str] = field(default_factory=dict)


def host_clock_text(host_offset: dict[str, str]) -> str:
    """One line on a node's host → global mapping from its published offset (``offset``,
    ``uncertainty``, ``rtt`` in s): the offset, its 1-sigma, and the bound an asymmetric
    route leaves (half the fastest round trip), which no round trip can reveal."""
    try:
        offset, sigma, rtt = (float(host_offset[k]) for k in ("offset", "uncertainty", "rtt"))
    except (KeyError, ValueError):
        return "host → global: not measured yet"
    return (
        f"host → global: offset {offset * 1e3:+.3f} ms ± {sigma * 1e6:.0f} µs; an asymmetric route could add up "
        f"to ±{rtt / 2 * 1e3:.2f} ms (½ of the fastest round trip, {rtt * 1e3:.2f} ms)"
    )


def host_clock_short(node_id: str, host_offset: dict[str, str]) -> str:
    """``node: ±15 µs, route ≤ ±0.10 ms`` (1-sigma of host → global; the asymmetry bound)."""
    try:
        sigma, rtt = float(host_offset["uncertainty"]), float(host_offset["rtt"])
    except (KeyError, ValueError):
        return f"{node_id}: not measured yet"
    return f"{node_id}: ±{sigma * 1e6:.0f} µs, route ≤ ±{rtt / 2 * 1e3:.2f} ms"


@dataclass(slots=True)
class SensorStatus:
    """One registered sensor: measured ``rate`` (Hz) against ``nominal_rate``, its health
    (``core.health``), seconds since its last sample, its stream's length (entries) and its
    clock state as the leader's worker stored it (``<p>:clock:<sensor>``)."""

    sensor_id: str
    attribute: str
    device: str
    node: str
    nominal_rate: float
    rate: float
    health: str
    health_text: str
    silent_s: float | None
    stream_length: int
    clock: dict[str, str] = field(default_factory=dict)
    #: its signal quality now (``<p>:quality``: state, score, reason, detail), {} when not scored
    quality: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DeviceSummary:
    device_id: str
    name: str
    state: str
    uri: str
    node: str
    message: str


@dataclass(slots=True)
class CheckpointSummary:
    """The last committed checkpoint (or a pending proposal: ``committed_at`` NaN)."""

    id: str
    term: int
    leader: str = ""
    seq: int = 0
    time: float = math.nan
    committed_at: float = math.nan
    acks: list[str] = field(default_factory=list)
    live_nodes: int = 0
    groups_cursor: float = 0.0
    sensors: int = 0


@dataclass(slots=True)
class LabStatus:
    """The whole lab at ``time`` (s): what ``sensorium status`` prints and the window's status
    panels show."""

    time: float = 0.0
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    leader: str = ""
    term: int = 0
    checkpoint: CheckpointSummary | None = None
    proposal: CheckpointSummary | None = None
    groups: int = 0
    sensors: list[SensorStatus] = field(default_factory=list)
    devices: list[DeviceSummary] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``sensorium status --json``)."""
        return asdict(self)
