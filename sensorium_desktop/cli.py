"""The ``sensorium`` command line. Each subcommand is one decorated function below."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import exitcodes
from .version import __version__

if TYPE_CHECKING:
    from .bus.connection import RedisEndpoint
    from .config import Config
    from .worker.ingest import IngestOptions
    from .worker.rcs import RcsOptions
    from .worker.record import RecordOutcome

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


def _redis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", default=None,
                   help="Redis URL (redis://, rediss://, with password); default: $SENSORIUM_REDIS_URL "
                        "or the embedded server")  # fmt: skip
    p.add_argument("--prefix", default=None, help="key prefix (default: $SENSORIUM_PREFIX or 'sensorium')")


@contextlib.contextmanager
def _lab(args: argparse.Namespace) -> Iterator[RedisEndpoint]:
    """The Redis of ``--redis-url``/``--prefix`` (embedded when none), closed on leaving;
    :class:`RedisUnavailableError` when there is none (``main`` says why, exit 1)."""
    from .bus.connection import open_endpoint

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
    for c in COMMANDS.values():
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        c.configure(p)
        p.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING, ERROR")
    return parser


def setup_logging(level: str) -> None:
    from .logfiles import LOG_FORMAT

    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT, stream=sys.stderr)


# -----------------------------------------------------------------------------------------
# GUI
# -----------------------------------------------------------------------------------------


def _gui_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--simulate", action="store_true", help="run the simulated lab in the node")
    p.add_argument("--device", action="append", default=[], metavar="URI", help="connect this device (repeatable)")
    p.add_argument("--no-node", action="store_true", help="only watch; do not start a node")
    p.add_argument("--node-id", default=None)
    p.add_argument("--quit-after", type=float, default=None, metavar="S", help="close after S seconds")
    p.add_argument("--screenshot", type=Path, default=None, help="save a window screenshot before quitting")
    p.add_argument("--select", action="append", default=[], metavar="SENSOR", help="plot this sensor at start")
    _remote_args(p)
    _network_ingest_args(p)


def _run_gui(args: argparse.Namespace, simulate: bool) -> int:
    from .ui.app import GuiOptions, run_gui

    if not _valid_node_id(args.node_id):
        return exitcodes.USAGE
    node_args: list[str] = []
    if simulate:
        node_args.append("--simulate")
    for uri in args.device:
        node_args += ["--device", uri]
    if args.node_id:
        node_args += ["--node-id", args.node_id]
    if args.rcs_port is not None:
        node_args += ["--rcs-port", str(args.rcs_port)]
    if args.labrecorder_config is not None:
        node_args += ["--labrecorder-config", str(args.labrecorder_config.resolve())]
    node_args += ["--remote-bind", args.remote_bind, "--pupil-port", str(args.pupil_port)]
    if args.ingest:
        node_args += ["--ingest", args.ingest]
        if args.ingest_token:
            os.environ["SENSORIUM_INGEST_TOKEN"] = args.ingest_token  # not on the node's command line
    opts = GuiOptions(
        redis_url=args.redis_url,
        prefix=args.prefix,
        node_args=node_args,
        start_node=not args.no_node,
        quit_after=args.quit_after,
        screenshot=args.screenshot,
        select=args.select,
    )
    return run_gui(opts)


@command("gui", "open the operator window (starts the embedded Redis and a node unless told otherwise)")
@arguments(_gui_args)
def cmd_gui(args: argparse.Namespace) -> int:
    return _run_gui(args, args.simulate)


@command("demo", "open the window with the simulated lab (no hardware needed), apart from the operator's lab: "
         "its own data dir (<data dir>/demo) and key prefix (<prefix>-demo)")  # fmt: skip
@arguments(_gui_args)
def cmd_demo(args: argparse.Namespace) -> int:
    from . import paths

    os.environ["SENSORIUM_DATA_DIR"] = str(paths.data_dir() / "demo")  # the node inherits it
    args.prefix = f"{args.prefix or 'sensorium'}-demo"
    if not args.select:
        args.select = ["sim-chest-ecg"]
    return _run_gui(args, True)


def _open_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="a session folder (or its session.json) or an XDF file")
    p.add_argument("--quit-after", type=float, default=None, metavar="S", help="close after S seconds")
    p.add_argument("--screenshot", type=Path, default=None, help="save the window before quitting")


@command("open", "review a recording or any XDF file: plots, video, gaze, skeleton and markers on one timeline")
@arguments(_open_args)
def cmd_open(args: argparse.Namespace) -> int:
    from .recording.review import ReviewError, open_review

    try:
        data = open_review(args.path)
    except ReviewError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    for warning in data.warnings:
        log.warning("%s", warning)
    from .ui.app import run_review

    return run_review(data, args.quit_after, args.screenshot)


def _replay_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("path", type=Path, help="a session folder or an XDF file")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (0.25–16; 1 = real time)")
    p.add_argument("--loop", action="store_true", help="start over at the end (until Ctrl+C)")
    p.add_argument("--delay", type=float, default=0.0, metavar="S", help="wait S s before the first sample")
    p.add_argument("--node-id", default=None)


@command("replay", "publish a recording's streams into the lab as live sensors (a node with replay:PATH)")
@arguments(_replay_args)
def cmd_replay(args: argparse.Namespace) -> int:
    from .recording.review import ReviewError, open_review
    from .worker.context import NodeConfig, default_node_id
    from .worker.node import run_node

    path = args.path.resolve()
    try:
        t0, t1 = open_review(path).span
    except ReviewError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    uri = f"replay:{path}?speed={args.speed:g}&delay={args.delay:g}" + ("&loop=1" if args.loop else "")
    if _bad_device_uris([uri]) or not _valid_node_id(args.node_id):
        return exitcodes.USAGE
    with _lab(args) as endpoint:
        duration = None if args.loop else args.delay + (t1 - t0) / args.speed + 3.0
        log.info("replaying %s (%.1f s of recording at %g×)%s", path.name, t1 - t0, args.speed,
                 " in a loop" if args.loop else "")  # fmt: skip
        cfg = NodeConfig(redis_url=endpoint.url, keys=endpoint.keys, node_id=args.node_id or default_node_id(),
                         devices=[uri], allowed_roots=[path.parent])  # fmt: skip
        return run_node(cfg, duration)


# -----------------------------------------------------------------------------------------
# Node and Redis
# -----------------------------------------------------------------------------------------


def _node_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--node-id", default=None, help="node id (default: host name)")
    p.add_argument("--priority", type=int, default=None, help="election priority (higher wins; config: 0)")
    p.add_argument("--heartbeat-ttl", type=float, default=5.0, help="heartbeat TTL in seconds")
    p.add_argument("--simulate", action="store_true", help="run the simulated lab (sim:lab)")
    p.add_argument("--device", action="append", default=[], metavar="URI",
                   help="connect this device URI (repeatable), e.g. sim:chest, serial:/dev/ttyUSB0")  # fmt: skip
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-sync-worker", action="store_true", help="do not start the sync worker process")
    p.add_argument("--checkpoint-interval", type=float, default=10.0, help="seconds between checkpoints (leader)")
    p.add_argument("--attention", default=None, choices=["none", "low", "medium", "high"],
                   help="attention assumed when no viewer says otherwise (backpressure; config: none)")  # fmt: skip
    _remote_args(p)
    _network_ingest_args(p)


def _remote_args(p: argparse.ArgumentParser) -> None:
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


def _network_ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ingest", default=None, metavar="HOST:PORT",
                   help="accept network sensors: Sensocto clients (ws://HOST:PORT/socket/websocket) and HTTP "
                        "JSON (POST /api/measurements); loopback unless HOST says otherwise (then a token is "
                        "required)")  # fmt: skip
    p.add_argument("--ingest-token", default=None, metavar="TOKEN",
                   help="token network clients must present (also SENSORIUM_INGEST_TOKEN or ingest_token in the "
                        "config)")  # fmt: skip


def _ingest_options(args: argparse.Namespace) -> IngestOptions | None:
    """The ingest endpoint the flags ask for (None: off); raises ValueError for a bad HOST:PORT."""
    from .worker.ingest import IngestOptions

    if not getattr(args, "ingest", None):
        return None
    token = args.ingest_token or os.environ.get("SENSORIUM_INGEST_TOKEN", "")
    return IngestOptions.parse(args.ingest, token)


def _without_ingest_uris(args: argparse.Namespace, devices: list[str]) -> list[str]:
    """``devices`` less the ``ws:`` URIs this node's ingest endpoint will answer."""
    return [u for u in devices if not (getattr(args, "ingest", None) and u.startswith("ws:"))]


def _rcs_options(args: argparse.Namespace) -> RcsOptions | None:
    """Remote-control options from the flags (None after logging why, for a bad config file)."""
    from .worker.rcs import DEFAULT_PORT, LabRecorderConfig, RcsOptions

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


def _valid_node_id(node_id: str | None) -> bool:
    """False (after saying why) for a node id that breaks the id rule (it names files and keys)."""
    from .core.ids import InvalidIdError, validate_id

    try:
        if node_id is not None:
            validate_id(node_id, "node id")
    except InvalidIdError as exc:
        log.error("--node-id: %s", exc)
        return False
    return True


def _bad_device_uris(uris: list[str]) -> bool:
    """Log every URI that names no device (and why); True when there is one."""
    from .devices import uri_errors

    errors = uri_errors(uris)
    for uri, why in errors:
        log.error("device %s: %s", uri, why)
    return bool(errors)


@command("node", "run a headless node: acquisition, sync worker, election, recorder")
@arguments(_node_args)
def cmd_node(args: argparse.Namespace) -> int:
    from .core.backpressure import Attention
    from .worker.context import NodeConfig, default_node_id
    from .worker.node import run_node

    devices = list(args.device)
    if args.simulate:
        devices.insert(0, "sim:lab")
    if args.parent_pid is None and _bad_device_uris(_without_ingest_uris(args, devices)):  # the window shows them
        return exitcodes.USAGE
    try:
        ingest = _ingest_options(args)
    except ValueError as exc:
        log.error("%s", exc)
        return exitcodes.USAGE
    if not _valid_node_id(args.node_id):
        return exitcodes.USAGE
    with _lab(args) as endpoint:
        from .worker.pupil_remote import PupilOptions

        rcs = _rcs_options(args)
        if rcs is None:
            return exitcodes.USAGE
        remotes = {"rcs": rcs, "pupil": PupilOptions(args.pupil_port, args.remote_bind), "ingest": ingest}
        cfg = NodeConfig(
            component_options={name: options for name, options in remotes.items() if options is not None},
            redis_url=endpoint.url,
            keys=endpoint.keys,
            node_id=args.node_id or default_node_id(),
            devices=devices,
            priority=args.priority,
            heartbeat_ttl=args.heartbeat_ttl,
            parent_pid=args.parent_pid,
            sync_worker=not args.no_sync_worker,
            checkpoint_interval=args.checkpoint_interval,
            attention_default=Attention.parse(args.attention),
        )
        log.info("node %s using %s", cfg.node_id, endpoint.description)
        return run_node(cfg, args.duration)


def _lsl_outlet_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--sensor", action="append", default=None, metavar="ID", help="only this sensor (repeatable)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")


@command("lsl-outlet", "publish the synchronized sensor streams as LSL outlets (for LabRecorder)")
@arguments(_lsl_outlet_args)
def cmd_lsl_outlet(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .worker.lsl_outlet import LslOutletBridge

    with _lab(args) as endpoint:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        bridge = LslOutletBridge(endpoint.url, endpoint.keys, args.sensor)
        bridge.run(stop, args.duration)
    log.info("lsl outlet stopped: %s", bridge.stats)
    return 0


def _redis_cmd_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stop", action="store_true", help="stop a running embedded server")


@command("redis", "start the embedded Redis in the foreground and print its URL (Ctrl-C stops it)")
@arguments(_redis_cmd_args)
def cmd_redis(args: argparse.Namespace) -> int:
    from . import paths
    from .bus.embedded import EmbeddedRedis, RedisUnavailableError

    if args.stop:
        running = EmbeddedRedis.running()
        if running is None:
            log.error("no embedded Redis is running for the data dir %s: nothing stopped", paths.redis_dir())
            return exitcodes.FAILED
        running.owned = True
        running.stop()
        print(f"embedded redis pid {running.pid} (port {running.port}) stopped")
        return exitcodes.OK
    try:
        server = EmbeddedRedis.start(die_with_parent=True)
    except RedisUnavailableError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    print(server.url, flush=True)
    try:
        while server.alive():
            time.sleep(0.5)
        log.info("embedded redis pid %d was stopped (sensorium redis --stop)", server.pid)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return exitcodes.OK


# -----------------------------------------------------------------------------------------
# Recording and export
# -----------------------------------------------------------------------------------------


def _record_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--simulate", action="store_true", help="run the simulated lab in this node and record it")
    p.add_argument("--device", action="append", default=[], metavar="URI", help="connect this device (repeatable)")
    p.add_argument("--duration", type=float, required=True, metavar="S", help="seconds to record")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="recording directory (new); default: <data dir>/sessions/<session id>")  # fmt: skip
    p.add_argument("--sensors", nargs="+", default=[], metavar="ID", help="only these sensors (default: all)")
    for name in ("participant", "session", "task", "run", "notes"):
        p.add_argument(f"--{name}", default="", help=f"BIDS metadata: {name}")
    p.add_argument("--compact", action="store_true", help="delta-encode ecg/respiration in the spool (0.01 steps)")
    p.add_argument("--node-id", default=None)
    _network_ingest_args(p)


@command("record", "record a session headless (e.g. --simulate --duration 10 --out DIR) and exit")
@arguments(_record_args)
def cmd_record(args: argparse.Namespace) -> int:
    from . import paths
    from .worker.context import NodeConfig, default_node_id
    from .worker.record import RecordRequest, record

    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        log.error("%s exists and is not empty; recordings are never overwritten", args.out)
        return exitcodes.USAGE
    devices = (["sim:lab"] if args.simulate else []) + list(args.device)
    if _bad_device_uris(_without_ingest_uris(args, devices)) or not _valid_node_id(args.node_id):
        return exitcodes.USAGE
    try:
        ingest = _ingest_options(args)
    except ValueError as exc:
        log.error("%s", exc)
        return exitcodes.USAGE
    with _lab(args) as endpoint:
        node_id = args.node_id or default_node_id()
        out = args.out
        if out is None:
            out = paths.sessions_dir() / time.strftime("%Y%m%d-%H%M%S")
        cfg = NodeConfig(redis_url=endpoint.url, keys=endpoint.keys, node_id=node_id, devices=devices,
                         allowed_roots=[out.resolve()],
                         component_options={"ingest": ingest} if ingest is not None else {})  # fmt: skip
        req = RecordRequest(args.duration, out.resolve(), args.sensors, args.participant, args.session, args.task,
                            args.run, args.notes, args.compact)  # fmt: skip

        tty = sys.stderr.isatty()

        def report(status: dict[str, str]) -> None:
            mb = int(status.get("bytes", 0) or 0) / 1e6
            line = (f"  recording {float(status.get('seconds', 0)):5.1f} s  {int(status.get('samples', 0)):>9} samples"
                    f"  {mb:7.2f} MB  {status.get('state', '')}")  # fmt: skip
            print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

        outcome = record(cfg, req, report)
    if tty:
        print(file=sys.stderr)
    return _report_recording(outcome)


def _sync_check_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--simulate", action="store_true", help="run the simulated lab in this node")
    p.add_argument("--device", action="append", default=[], metavar="URI", help="connect this device (repeatable)")
    p.add_argument("--flashes", type=int, default=20, metavar="N", help="flashes to present (default 20)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="mean s between flashes (±25 %%)")
    p.add_argument("--flash-ms", type=float, default=100.0, metavar="MS", help="how long each flash is lit")
    p.add_argument("--sensor", action="append", default=[], metavar="ID",
                   help="measure only this sensor (repeatable; a named numeric sensor is read as an analog channel)")
    p.add_argument("--region", default=None, metavar="x,y,w,h", help="camera frame region to average (px)")
    p.add_argument("--patch", default="full", help="where the flash is drawn: full, top-left, top-right, "
                   "bottom-left, bottom-right (a photodiode's corner)")
    p.add_argument("--patch-size", type=int, default=200, metavar="PX", help="side of a corner patch")
    p.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    p.add_argument("--no-clicks", action="store_true", help="no click with each flash (clicks need an audio output)")
    p.add_argument("--events-from", default="", metavar="lsl:NAME",
                   help="the presentations are this LSL marker stream's events (a stimulus PC flashing on its own)")
    p.add_argument("--label", default="flash", help="the marker label of a presentation (default flash)")
    p.add_argument("--max-mean-ms", type=float, default=2.0, help="tolerance: largest |mean latency| (ms)")
    p.add_argument("--max-sd-ms", type=float, default=1.0, help="tolerance: largest latency SD (ms)")
    p.add_argument("--apply", action="store_true", help="store each sensor's mean latency as a correction exports use")
    p.add_argument("--seed", type=int, default=None, help="seed of the jittered flash times")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="the check's recording directory (new)")
    p.add_argument("--participant", default="", help="BIDS metadata of the check's recording: participant")
    p.add_argument("--session", default="", help="BIDS metadata of the check's recording: session")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--node-id", default=None)


@command("sync-check", "measure every device against presented flashes (latency per sensor vs the lab's tolerance)")
@arguments(_sync_check_args)
def cmd_sync_check(args: argparse.Namespace) -> int:
    from . import paths
    from .core.synccheck import PATCHES
    from .recording.synccheck import summary_lines
    from .worker.context import NodeConfig, default_node_id
    from .worker.synccheck import SyncCheckRequest, check_options, run_sync_check

    devices = (["sim:lab"] if args.simulate else []) + list(args.device)
    events_from = args.events_from
    if events_from and not events_from.startswith("lsl:"):
        log.error("--events-from must name an LSL marker stream as lsl:NAME, not %r", events_from)
        return exitcodes.USAGE
    if events_from and events_from not in devices:
        devices.append(events_from)
    if not devices:
        log.error("nothing to check: give --device URI (repeatable) or --simulate")
        return exitcodes.USAGE
    if args.flashes < 1 or args.interval < 0.3 or not 10.0 <= args.flash_ms <= 0.5 * args.interval * 1000.0:
        log.error("need --flashes ≥ 1, --interval ≥ 0.3 s and 10 ms ≤ --flash-ms ≤ half the interval")
        return exitcodes.USAGE
    if _bad_device_uris(devices) or not _valid_node_id(args.node_id):
        return exitcodes.USAGE
    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        log.error("%s exists and is not empty; recordings are never overwritten", args.out)
        return exitcodes.USAGE
    try:
        options = check_options(args.sensor, args.region, events_from, args.label, args.max_mean_ms, args.max_sd_ms)
        if args.patch not in PATCHES:
            raise ValueError(f"--patch {args.patch!r}: one of {', '.join(PATCHES)}")
    except ValueError as exc:
        log.error("%s", exc)
        return exitcodes.USAGE
    with _lab(args) as endpoint:
        out = (args.out or paths.sessions_dir() / time.strftime("synccheck-%Y%m%d-%H%M%S")).resolve()
        cfg = NodeConfig(redis_url=endpoint.url, keys=endpoint.keys, node_id=args.node_id or default_node_id(),
                         devices=devices, allowed_roots=[out])  # fmt: skip
        req = SyncCheckRequest(out, args.flashes, args.interval, args.flash_ms / 1000.0, options, args.apply, args.seed,
                               args.participant, args.session)  # fmt: skip

        def say(msg: str) -> None:
            if not args.json:
                print(f"  {msg}", file=sys.stderr, flush=True)

        if events_from:
            outcome = run_sync_check(cfg, req, None, say)
        else:
            from .ui.flash import present_while

            outcome = present_while(lambda stim, flag: run_sync_check(cfg, req, stim, say, flag),
                                    args.patch, args.patch_size, not args.windowed, not args.no_clicks)  # fmt: skip
    result = outcome.result
    if result is None:
        log.error("sync check failed: %s", outcome.error)
        if args.json:
            print(json.dumps({"error": outcome.error, "directory": str(out)}))
        return outcome.exit_code
    if args.json:
        rows = {sid: {k: v for k, v in row.items() if k != "traces"} for sid, row in result["sensors"].items()}
        print(json.dumps({**{k: v for k, v in result.items() if k not in ("sensors", "presented_at")},
                          "directory": str(out), "sensors": rows}, indent=1))  # fmt: skip
    else:
        print("\n".join(summary_lines(result)))
        print(f"stored in {out} (sync-check.json, sync-check.png)")
    if result.get("interrupted"):
        log.error("the check was interrupted after %d of %d flashes; the table holds what was measured",
                  result["presented"], result["planned"])  # fmt: skip
    return outcome.exit_code


def _report_recording(outcome: RecordOutcome) -> int:
    """Print what was recorded and what is missing (device, why; sensor); the exit code."""
    st = outcome.status
    for uri, why in outcome.failed_devices:
        log.error("device %s delivered nothing: %s", uri, why)
    for sid in outcome.silent_sensors:
        log.error("sensor %s delivered no sample during the recording", sid)
    code = outcome.exit_code
    if code == exitcodes.FAILED:
        log.error("recording %s %s: %s", outcome.session_id, outcome.state,
                  outcome.error or "no sample was recorded")  # fmt: skip
        return code
    kept = _samples_in_bounds(outcome.directory)
    held = f"{kept[0]} samples in {kept[1]:.3f} s" if kept else f"{st.get('samples')} samples"
    print(f"recorded {outcome.name or outcome.session_id}: {held} ({st.get('samples')} spooled with the margins "
          f"before the start and after the stop, which exports leave out), {int(st.get('bytes', 0)) / 1e6:.2f} MB "
          f"in {outcome.directory}")  # fmt: skip
    if code == exitcodes.PARTIAL:
        log.error("recording is INCOMPLETE: %d devices failed, %d sensors silent (listed above); exit code %d",
                  len(outcome.failed_devices), len(outcome.silent_sensors), code)  # fmt: skip
    return code


def _samples_in_bounds(directory: Path) -> tuple[int, float] | None:
    """(samples, seconds) between the recording's start and stop, as every export holds
    them; None when the recording cannot be read."""
    from .recording.reader import load_recording

    try:
        rec = load_recording(directory)
        rec.trim_to_bounds()
    except (OSError, ValueError):
        return None
    start, stop = rec.bounds
    return sum(len(d) for d in rec.sensors.values()), stop - start


def _sessions_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="*", type=Path, metavar="DIR", help="where to look (default: the data dir)")
    p.add_argument("--json", action="store_true")


@command("sessions", "list recordings (state, sensors, samples, size)")
@arguments(_sessions_args)
def cmd_sessions(args: argparse.Namespace) -> int:
    from . import paths
    from .recording.reader import list_recordings

    missing = [d for d in args.dirs if not d.is_dir()]
    for d in missing:
        log.error("%s %s", d, "is a file, not a folder" if d.exists() else "does not exist")
    if missing:
        return exitcodes.FAILED
    rows = list_recordings(args.dirs or [paths.sessions_dir()])
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"no recordings in {', '.join(str(d) for d in args.dirs or [paths.sessions_dir()])}")
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"])) if r.get("started") else "?"
        err = f"  [{r['error']}]" if r.get("error") else ""
        if r.get("damaged_bytes"):
            err += f"  [DAMAGED: {r['damaged_bytes']} bytes unreadable; see `sensorium verify`]"
        print(f"{r['name']:<36} {r['state']:<10} {started}  {r['sensors']:>3} sensors"
              f" {r['samples']:>10} samples spooled {r['bytes'] / 1e6:9.2f} MB  {r['directory']}{err}")  # fmt: skip
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", type=Path, metavar="DIR", help="a recording directory")
    p.add_argument("--allow-loss", action="store_true",
                   help=f"exit 0 even when parts of the recording are lost (default: exit {EXIT_LOSSES})")  # fmt: skip
    p.add_argument("--format", default="xdf", help="xdf or csv")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="output file (xdf) or directory (csv); default: the recording's name inside DIR")  # fmt: skip
    p.add_argument("--clock", default="refined", choices=["refined", "causal"],
                   help="clock model: non-causal fit over the recording, or what the live view used")  # fmt: skip
    p.add_argument("--timestamps", default="global", choices=["global", "local"],
                   help="xdf: global times (ClockOffsets 0) or device times + our model as ClockOffsets")  # fmt: skip
    p.add_argument("--participant", default="", help="participant label (for a recording made without one; BIDS)")
    p.add_argument("--task", default="", help="task label (for a recording made without one; BIDS)")


@command("export", "export a recording (DIR --format xdf -o FILE.xdf); never overwrites")
@arguments(_export_args)
def cmd_export(args: argparse.Namespace) -> int:
    from .recording.export import EXPORTERS, export_recording

    if args.format not in EXPORTERS:
        log.error("unknown format %r (known: %s)", args.format, ", ".join(EXPORTERS))
        return 2
    width = 30
    tty = sys.stderr.isatty()
    last_quarter = [-1]

    def bar(frac: float, msg: str) -> None:
        frac = min(max(frac, 0.0), 1.0)
        if not tty:  # a log, not a terminal: one line per quarter instead of a redrawn bar
            quarter = int(frac * 4)
            if quarter != last_quarter[0]:
                last_quarter[0] = quarter
                print(f"  {frac * 100:5.1f}%  {msg}", file=sys.stderr, flush=True)
            return
        done = int(width * frac)
        print(f"\r  [{'#' * done}{'.' * (width - done)}] {frac * 100:5.1f}%  {msg:<24}", end="", file=sys.stderr,
              flush=True)  # fmt: skip

    try:
        result = export_recording(args.directory, args.format, args.output, args.clock, bar, args.timestamps,
                                  metadata={"participant": args.participant, "task": args.task})  # fmt: skip
    except KeyboardInterrupt:
        if tty:
            print(file=sys.stderr)
        log.error("export cancelled (Ctrl-C): its partial output was removed")
        return 130
    except (ValueError, OSError) as exc:  # a missing or damaged recording (SpoolError is an OSError)
        if tty:
            print(file=sys.stderr)
        log.error("export failed: %s", exc)
        return 1
    if tty:
        print(file=sys.stderr)
    # result.warnings were logged as the recording was read (each once): not repeated here
    if result.renamed is not None:
        print(f"previous export kept as {result.renamed}")
    size = sum(f.stat().st_size for f in result.files if f.is_file()) / 1e6
    print(f"exported {result.samples} samples to {', '.join(str(f) for f in result.files[:3])}"
          f"{' …' if len(result.files) > 3 else ''} ({size:.2f} MB, {result.seconds:.2f} s)")  # fmt: skip
    if result.losses or result.damage:
        damaged = sum(b - a for _f, a, b in result.damage)
        log.error("exported WITH LOSSES: %d damaged spool bytes read around, %d losses (listed above and in the "
                  "file's metadata)%s", damaged, len(result.losses),
                  "" if args.allow_loss else f"; exit code {EXIT_LOSSES} (--allow-loss: 0)")  # fmt: skip
        return 0 if args.allow_loss else EXIT_LOSSES
    return 0


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", type=Path, metavar="DIR", help="a recording directory")
    p.add_argument("--json", action="store_true")


@command("verify", f"check a recording: every spool frame, and what was written against what can be read "
         f"(exit {EXIT_LOSSES} when anything is lost)")  # fmt: skip
@arguments(_verify_args)
def cmd_verify(args: argparse.Namespace) -> int:
    from .recording.reader import describe_loss, load_recording

    try:
        rec = load_recording(args.directory, trim=False)
    except (ValueError, OSError) as exc:
        log.error("cannot verify %s: %s", args.directory, exc)
        return 1
    samples = {sid: len(d) for sid, d in rec.sensors.items()}
    report = {"directory": str(args.directory), "samples": samples, "damaged_bytes": [list(x) for x in rec.damage],
              "losses": rec.losses, "ok": not (rec.losses or rec.damage)}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(f"{args.directory}: {sum(samples.values())} samples of {len(samples)} sensors read")
        for name, a, b in rec.damage:
            print(f"  damaged: {name} bytes {a}-{b} ({b - a} bytes), read around")
        for loss in rec.losses:
            print(f"  lost: {describe_loss(loss)}")
        print("  intact" if report["ok"] else "  DAMAGED")
    return 0 if report["ok"] else EXIT_LOSSES


def _selftest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory (logs, recording)")


@command("selftest", "check this installation end to end: Redis, node, record, export, read back, window")
@arguments(_selftest_args)
def cmd_selftest(args: argparse.Namespace) -> int:
    from .selftest import SelfTest

    return SelfTest(keep=args.keep, out=lambda line: print(line, flush=True)).run()


# -----------------------------------------------------------------------------------------
# Devices and status
# -----------------------------------------------------------------------------------------


def _devices_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=5.0, help="discovery time per transport (s)")
    p.add_argument("--transport", action="append", default=None,
                   help="only these transports (URI schemes: see `sensorium plugins`; repeatable)")  # fmt: skip


@command("devices", "discover devices on every transport and print their URIs")
@arguments(_devices_args)
def cmd_devices(args: argparse.Namespace) -> int:
    from .devices import TRANSPORTS, discover_all

    def progress(frac: float, msg: str) -> None:
        if not args.json:
            print(f"  [{frac * 100:3.0f}%] {msg}", file=sys.stderr)

    unknown = sorted(set(args.transport or []) - set(TRANSPORTS))
    if unknown:
        log.error("unknown transport %s (known: %s)", ", ".join(map(repr, unknown)), ", ".join(sorted(TRANSPORTS)))
        return exitcodes.USAGE
    found = asyncio.run(discover_all(args.timeout, progress, args.transport))
    if args.json:
        print(json.dumps([d.to_dict() for d in found], indent=2))
        return 0
    for d in found:
        state = "" if d.available else f"  [unavailable: {d.error}]"
        print(f"{d.uri:<48} {d.transport:<10} {d.name}{state}")
    return 0


def _plugins_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


@command("plugins", "list the transports, exporters, panels and node components (built-in and installed "
         "packages'), import each and say which fail (exit 1 when one does)")  # fmt: skip
@arguments(_plugins_args)
def cmd_plugins(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .plugins import PluginInfo
    from .ui.desktop import plugin_registries

    rows: list[PluginInfo] = []
    for registry in plugin_registries():
        registry.load_all()
        rows += registry.infos()
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        for r in rows:
            where = f"{r.distribution} {r.version}".strip()
            state = f"  FAILED: {r.error}" if r.error else ""
            print(f"{r.kind:<11} {r.name:<14} {where:<26} {r.target}{state}")
    failed = [r for r in rows if r.error]
    for r in failed:
        log.error("plugin %s %r: %s", r.kind, r.name, r.error)
    return exitcodes.FAILED if failed else 0


def _marker_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("text", help="the marker's label")


@command("marker", "put a marker into every session being recorded (exit 1 when nothing records)")
@arguments(_marker_args)
def cmd_marker(args: argparse.Namespace) -> int:
    from .bus.sessions import mark_recordings

    with _lab(args) as endpoint:

        async def mark() -> list[str]:
            c = endpoint.async_client()
            try:
                return await mark_recordings(c, endpoint.keys, args.text, "cli")
            finally:
                await c.aclose()

        sessions = asyncio.run(mark())
    if not sessions:
        log.error("marker %r not stored: no session is being recorded", args.text)
        return exitcodes.FAILED
    print(f"marker {args.text!r} in {', '.join(sessions)}")
    return exitcodes.OK


def _forget_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("device_ids", nargs="*", metavar="DEVICE_ID", help="devices to forget (as `status` lists them)")
    p.add_argument("--offline", action="store_true", help="forget every device whose node stopped reporting")


@command("forget", "take offline devices and their sensors out of the lab's registry (DEVICE_ID… or --offline)")
@arguments(_forget_args)
def cmd_forget(args: argparse.Namespace) -> int:
    from .bus.registry import OFFLINE_AFTER_S, forget_device, list_devices_async

    if not args.device_ids and not args.offline:
        log.error("name the devices to forget or pass --offline")
        return exitcodes.USAGE
    with _lab(args) as endpoint:

        async def forget() -> int:
            c = endpoint.async_client()
            failed = 0
            try:
                ids = list(args.device_ids)
                if args.offline:
                    now = time.time()
                    devices = await list_devices_async(c, endpoint.keys)
                    ids += [d.device_id for d in devices if now - d.updated > OFFLINE_AFTER_S]
                if not ids:
                    print("no offline devices")
                for did in ids:
                    try:
                        sensors = await forget_device(c, endpoint.keys, did)
                        print(f"forgot {did} ({len(sensors)} sensors: {', '.join(sensors)})")
                    except (KeyError, ValueError) as exc:
                        log.error("%s", exc.args[0])
                        failed += 1
            finally:
                await c.aclose()
            return exitcodes.FAILED if failed else exitcodes.OK

        return asyncio.run(forget())


def _status_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--json", action="store_true")


@command("status", "show nodes, leader, checkpoints and sensors with their clock states")
@arguments(_status_args)
def cmd_status(args: argparse.Namespace) -> int:
    from .bus.status import format_status, read_status

    with _lab(args) as endpoint:
        c = endpoint.client()
        status = read_status(c, endpoint.keys)
        print(json.dumps(status.to_dict(), indent=2, default=str) if args.json else format_status(status))
    return 0


# -----------------------------------------------------------------------------------------
# Seed API: ingest, sync, experiment
# -----------------------------------------------------------------------------------------


def _engine_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--node-id", default=None, help="this engine's node id (default: host name + '-engine')")
    p.add_argument("--json", action="store_true")


def _engine(args: argparse.Namespace):
    from .bus.engine import SyncEngine

    return SyncEngine(args.redis_url, node_id=args.node_id, prefix=args.prefix)


def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sensor_id")
    p.add_argument("sensor_type")
    p.add_argument("t_local", type=float, help="event time on the sensor's clock (s)")
    p.add_argument("--sigma", type=float, default=0.001, help="timing noise (s)")
    p.add_argument("--t-arrival", type=float, default=None, help="host arrival time (s); default now")
    _engine_args(p)


@command("ingest", "record one observation of an event (seed API): SENSOR TYPE T_LOCAL [--sigma S]")
@arguments(_ingest_args)
def cmd_ingest(args: argparse.Namespace) -> int:
    from .bus.embedded import RedisUnavailableError

    try:
        engine = _engine(args)
    except RedisUnavailableError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    try:
        eid = engine.ingest(args.sensor_id, args.sensor_type, args.t_local, args.sigma, args.t_arrival)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    finally:
        engine.close()
    print(json.dumps({"id": eid}) if args.json else f"ingested {args.sensor_id} ({args.sensor_type}) as {eid}")
    return 0


def _print_groups(groups: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(groups, indent=2))
        return
    if not groups:
        print("no new observations")
    for g in groups:
        print(f"Global time: {g['t_global']:.6f}s  (term {g['term']})")
        for m in g["members"]:
            print(f"  {m['sensor_id']}: P={m['probability']:.4f}")


@command("sync", "group the observations ingested since the last sync and print them (seed API)")
@arguments(_engine_args)
def cmd_sync(args: argparse.Namespace) -> int:
    from .bus.embedded import RedisUnavailableError

    try:
        engine = _engine(args)
    except RedisUnavailableError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    try:
        _print_groups(engine.step(), args.json)
    finally:
        engine.close()
    return 0


def _experiment_args(p: argparse.ArgumentParser) -> None:
    _redis_args(p)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", action="store_true")


@command("experiment", "deterministic single time slice with membership probabilities (seed experiment)")
@arguments(_experiment_args)
def cmd_experiment(args: argparse.Namespace) -> int:
    from .bus.embedded import RedisUnavailableError
    from .bus.experiment import run_experiment

    try:
        result = run_experiment(args.seed, args.redis_url)
    except RedisUnavailableError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"seed {result['seed']}: event at {result['event_time']:.6f}s, distractor 300 ms later")
        _print_groups(result["groups"], False)
    return 0


# -----------------------------------------------------------------------------------------
# entry points
# -----------------------------------------------------------------------------------------


def apply_config(args: argparse.Namespace, cfg: Config) -> None:
    """Fill what the command line left open from the configuration file (flags and
    environment variables win)."""
    if cfg.data_dir and "SENSORIUM_DATA_DIR" not in os.environ:
        os.environ["SENSORIUM_DATA_DIR"] = cfg.data_dir
    if cfg.allowed_roots and "SENSORIUM_ALLOWED_ROOTS" not in os.environ:
        os.environ["SENSORIUM_ALLOWED_ROOTS"] = os.pathsep.join(cfg.allowed_roots)
    if getattr(args, "redis_url", "") is None and "SENSORIUM_REDIS_URL" not in os.environ and cfg.redis_url:
        args.redis_url = cfg.redis_url
    if getattr(args, "prefix", "") is None and "SENSORIUM_PREFIX" not in os.environ:
        args.prefix = cfg.prefix
    if getattr(args, "node_id", "") is None and cfg.node_id:
        args.node_id = cfg.node_id
    if getattr(args, "priority", 0) is None:
        args.priority = cfg.priority
    if getattr(args, "attention", "") is None:
        args.attention = cfg.attention
    if hasattr(args, "device") and not args.device and cfg.devices and args.command in ("node", "gui"):
        args.device = list(cfg.devices)
    if hasattr(args, "ingest") and args.ingest is None and cfg.ingest:
        args.ingest = cfg.ingest
    if hasattr(args, "ingest_token") and args.ingest_token is None and cfg.ingest_token:
        args.ingest_token = cfg.ingest_token


@command("config", "show the configuration file in use and the effective settings")
def cmd_config(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .config import config_path, load_config

    cfg = load_config()
    print(f"# {cfg.source or f'{config_path()} (not present: defaults)'}")
    print(json.dumps({k: v for k, v in asdict(cfg).items() if k != "source"}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.log_file:
        from .logfiles import add_rotating_file

        add_rotating_file(Path(args.log_file))
    from .config import ConfigError, load_config

    try:
        apply_config(args, load_config())
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    if not args.command:
        parser.print_help()
        return 0
    from .bus.embedded import RedisUnavailableError

    try:
        return COMMANDS[args.command].run(args)
    except RedisUnavailableError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED


def main_gui() -> int:
    """Entry point of the windowed launcher: ``sensorium`` with no command opens the GUI."""
    return main(sys.argv[1:] or ["gui"])


if __name__ == "__main__":
    raise SystemExit(main())
