"""The command registry every ``sensorium`` command module registers into, and the helpers
they share (Redis arguments, the lab context manager, logging)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import exitcodes
from ..version import __version__

if TYPE_CHECKING:
    from ..bus.connection import RedisEndpoint
    from ..worker.ingest import IngestOptions
    from ..worker.rcs import RcsOptions

log = logging.getLogger("sensorium")

#: Exit code of ``export``, ``verify`` and ``record`` when parts of a recording are lost.
EXIT_LOSSES = exitcodes.PARTIAL


@dataclass
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``fn`` as subcommand ``name``; its ``configure`` attribute adds arguments."""

    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        configure = getattr(fn, "configure", lambda p: None)
        COMMANDS[name] = Command(name, help, configure, fn)
        return fn

    return wrap


def arguments(configure: Callable[[argparse.ArgumentParser], None]) -> Callable[[Callable], Callable]:
    def wrap(fn: Callable) -> Callable:
        fn.configure = configure  # type: ignore[attr-defined]
        return fn

    return wrap


def redis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", default=None,
                   help="Redis URL (redis://, rediss://, with password; a lab of several PCs: "
                        "redis+sentinel://:PW@h1:26379,h2:26379,h3:26379/sensorium, docs/multi-pc.md); "
                        "default: $SENSORIUM_REDIS_URL or the embedded server")  # fmt: skip
    p.add_argument("--prefix", default=None, help="key prefix (default: $SENSORIUM_PREFIX or 'sensorium')")


@contextlib.contextmanager
def lab(args: argparse.Namespace) -> Iterator[RedisEndpoint]:
    """The Redis of ``--redis-url``/``--prefix`` (embedded when none), closed on leaving;
    :class:`RedisUnavailableError` when there is none (``main`` says why, exit 1)."""
    from ..bus.connection import open_endpoint

    endpoint = open_endpoint(args.redis_url, args.prefix)
    try:
        yield endpoint
    finally:
        endpoint.close()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        if "invalid choice" in message and "argument COMMAND" in message:
            bad = message.split("'")[1] if "'" in message else ""
            close = difflib.get_close_matches(bad, list(COMMANDS), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            message = f"unknown command {bad!r}.{hint} Run 'sensorium --help' for the list."
        super().error(message)


#: the order ``--help`` lists the command modules in (a lab's first steps first)
HELP_ORDER = ("window", "node", "recording", "devices", "quality", "seed")


def _help_position(c: Command) -> int:
    group = c.run.__module__.rsplit(".", 1)[-1]
    return HELP_ORDER.index(group) if group in HELP_ORDER else len(HELP_ORDER)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sensorium",
        description="Sensorium Desktop: connect lab sensors, sync their clocks, watch live, record, export.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'sensorium COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"sensorium {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("SENSORIUM_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING, ERROR")  # fmt: skip
    parser.add_argument("--log-file", type=Path, default=os.environ.get("SENSORIUM_LOG_FILE") or None, metavar="PATH",
                        help="also log to PATH, rotated (the window starts its node with <data dir>/logs/"
                             "sensorium-node.log)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser)
    for c in sorted(COMMANDS.values(), key=_help_position):
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        c.configure(p)
        p.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING, ERROR")
    return parser


def setup_logging(level: str) -> None:
    from ..logfiles import LOG_FORMAT

    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT, stream=sys.stderr)


def remote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rcs-port", type=int, default=None, metavar="P",
                   help="LabRecorder remote control port (default 22345, or RCSPort of --labrecorder-config; "
                        "0 = off)")  # fmt: skip
    p.add_argument("--pupil-port", type=int, default=50020, metavar="P",
                   help="Pupil Remote port (Pupil Capture's protocol; 0 = off)")  # fmt: skip
    p.add_argument("--remote-bind", default="127.0.0.1", metavar="HOST",
                   help="address the remote controls listen on (default loopback; 0.0.0.0 opens them to the "
                        "lab network)")  # fmt: skip
    p.add_argument("--labrecorder-config", type=Path, default=None, metavar="FILE",
                   help="read a LabRecorder.cfg: StudyRoot, PathTemplate, SessionBlocks, RequiredStreams, "
                        "RCSPort, RCSEnabled, AutoStart")  # fmt: skip


def network_ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ingest", default=None, metavar="HOST:PORT",
                   help="accept network sensors: Sensocto clients (ws://HOST:PORT/socket/websocket) and HTTP "
                        "JSON (POST /api/measurements); loopback unless HOST says otherwise (then a token is "
                        "required)")  # fmt: skip
    p.add_argument("--ingest-token", default=None, metavar="TOKEN",
                   help="token network clients must present (also SENSORIUM_INGEST_TOKEN or ingest_token in the "
                        "config)")  # fmt: skip


def ingest_options(args: argparse.Namespace) -> IngestOptions | None:
    """The ingest endpoint the flags ask for (None: off); raises ValueError for a bad HOST:PORT."""
    from ..worker.ingest import IngestOptions

    if not getattr(args, "ingest", None):
        return None
    token = args.ingest_token or os.environ.get("SENSORIUM_INGEST_TOKEN", "")
    return IngestOptions.parse(args.ingest, token)


def without_ingest_uris(args: argparse.Namespace, devices: list[str]) -> list[str]:
    """``devices`` less the ``ws:`` URIs this node's ingest endpoint will answer."""
    return [u for u in devices if not (getattr(args, "ingest", None) and u.startswith("ws:"))]


def rcs_options(args: argparse.Namespace) -> RcsOptions | None:
    """Remote-control options from the flags (None after logging why, for a bad config file)."""
    from ..worker.rcs import DEFAULT_PORT, LabRecorderConfig, RcsOptions

    cfg = LabRecorderConfig()
    if args.labrecorder_config is not None:
        try:
            cfg = LabRecorderConfig.parse(args.labrecorder_config.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            log.error("--labrecorder-config %s: %s", args.labrecorder_config, exc)
            return None
    port = args.rcs_port if args.rcs_port is not None else cfg.rcs_port or DEFAULT_PORT
    if args.rcs_port is None and cfg.rcs_enabled is False:
        port = 0
    return RcsOptions(port, args.remote_bind, cfg)


def valid_node_id(node_id: str | None) -> bool:
    """False (after saying why) for a node id that breaks the id rule (it names files and keys)."""
    from ..core.ids import InvalidIdError, validate_id

    try:
        if node_id is not None:
            validate_id(node_id, "node id")
    except InvalidIdError as exc:
        log.error("--node-id: %s", exc)
        return False
    return True


def bad_device_uris(uris: list[str]) -> bool:
    """Log every URI that names no device (and why); True when there is one."""
    from ..devices import uri_errors

    errors = uri_errors(uris)
    for uri, why in errors:
        log.error("device %s: %s", uri, why)
    return bool(errors)
