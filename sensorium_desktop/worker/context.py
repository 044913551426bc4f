"""The node component contract: what a component gets of its node (:class:`NodeContext`),
what a remote control shows of itself (:class:`Remote`) and the node's configuration.

A component is ``factory(ctx: NodeContext) -> async def run(stop_event)``, registered by an
entry point in the ``sensorium_desktop.components`` group (see :mod:`.components`). The
built-in ones (election, global clock, checkpoints, sync worker, recorder, LabRecorder remote
control, Pupil Remote, network ingest) use nothing of the node beyond this module, as a lab's
own component does. Options for one component travel in ``NodeConfig.component_options``
under the component's name.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..bus.election import Elector
from ..bus.globalclock import GlobalClockProbe
from ..bus.keys import Keys
from ..core.backpressure import Attention
from ..core.ids import make_id
from ..core.samples import SampleBatch, SensorInfo
from ..core.status import NodeState
from ..devices.network import IngestHub

log = logging.getLogger(__name__)


def default_node_id() -> str:
    """This host's node id (its host name, made a valid id)."""
    return make_id(socket.gethostname() or "node")


@dataclass
class NodeConfig:
    """Everything a node needs to run (built from CLI flags or by the GUI)."""

    redis_url: str
    keys: Keys = field(default_factory=Keys)
    node_id: str = field(default_factory=default_node_id)
    devices: list[str] = field(default_factory=list)
    priority: int = 0
    heartbeat_ttl: float = 5.0
    parent_pid: int | None = None
    spill_dir: Path | None = None
    attention_default: Attention = Attention.NONE
    sync_worker: bool = True
    checkpoint_interval: float = 10.0
    components: bool = True  # election, global clock, checkpoints, sync worker, recorder
    sessions_dir: Path | None = None  # recordings (default: the data dir's sessions/)
    #: folders besides the data dir that paths from Redis may name (chosen locally, e.g. record --out)
    allowed_roots: list[Path] = field(default_factory=list)
    #: component name → its options (``rcs``: RcsOptions, ``pupil``: PupilOptions, ``ingest``:
    #: IngestOptions; a lab's component its own); a remote control without options is off
    component_options: dict[str, object] = field(default_factory=dict)


class Remote(Protocol):
    """A server a component runs for other tools (LabRecorder RCS, Pupil Remote, ingest)."""

    #: the component's name ("rcs", "pupil", "ingest", …)
    name: str

    def summary(self) -> dict[str, Any]:
        """What the node's status shows of it: ``{"server": name, "listening": …, …}``."""
        ...


class NodeContext(Protocol):
    """What a node component may use of its node. Attributes are the node's live state;
    ``elector`` and ``clock_probe`` are set by the components that run them."""

    config: NodeConfig
    keys: Keys
    node_id: str
    pid: int
    hostname: str
    #: node-wide counters shown in its status (a component adds its own names)
    counters: dict[str, int]
    #: what the node publishes of its election, checkpoints, recordings and worker
    state: NodeState
    elector: Elector | None
    clock_probe: GlobalClockProbe | None
    #: the network ingest's devices (None unless the node was started with ingest options)
    ingest_hub: IngestHub | None

    @property
    def attention(self) -> Mapping[str, Attention]:
        """Current attention level per sensor id."""
        ...

    def allowed_roots(self) -> list[Path]:
        """Folders that paths read from Redis may name (data dir, sessions, configured)."""
        ...

    def add_remote(self, remote: Remote) -> None:
        """Show ``remote`` in the node's status (``remote_control``) while it runs."""
        ...

    def add_sample_tap(self, tap: Callable[[SampleBatch], None]) -> None:
        """Call ``tap`` with every batch this node's devices deliver (in the event loop, before
        it is queued; keep it cheap — an exception is counted and logged, never lost data)."""
        ...

    def sensor_info(self, sensor_id: str) -> SensorInfo | None:
        """The description of one of this node's sensors (None: not this node's)."""
        ...

    def remote(self, name: str) -> Remote | None:
        """The running remote called ``name`` (None: not running)."""
        ...


Run = Callable[[asyncio.Event], Awaitable[None]]
#: a node component: built once per node run, then ``run(stop)`` (restarted after a crash)
Component = Callable[[NodeContext], Run]
OptionsT = TypeVar("OptionsT")


def remote_component(
    name: str,
    options_type: type[OptionsT],
    serve: Callable[[NodeContext, OptionsT, asyncio.Event], Awaitable[None]],
    port_zero_is_off: bool = True,
) -> Component:
    """The one shape of a remote control's component: off unless ``component_options[name]``
    is an ``options_type`` (and, when ``port_zero_is_off``, its ``port`` is not 0); else
    ``serve(ctx, options, stop)``."""

    def factory(ctx: NodeContext) -> Run:
        async def run(stop: asyncio.Event) -> None:
            options = ctx.config.component_options.get(name)
            if not isinstance(options, options_type) or (port_zero_is_off and getattr(options, "port", 1) == 0):
                return
            await serve(ctx, options, stop)

        return run

    factory.__doc__ = f"Node component {name!r} (off without {options_type.__name__} options or with port 0)."
    return factory
