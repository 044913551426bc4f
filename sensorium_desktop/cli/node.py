"""Serving commands: ``node``, ``lsl-outlet``, ``redis``."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from .. import exitcodes

if TYPE_CHECKING:
    pass

from .base import (
    arguments,
    bad_device_uris,
    command,
    ingest_options,
    lab,
    log,
    network_ingest_args,
    rcs_options,
    redis_args,
    remote_args,
    valid_node_id,
    without_ingest_uris,
)


def _node_args(p: argparse.ArgumentParser) -> None:
    redis_args(p)
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
    remote_args(p)
    network_ingest_args(p)


@command("node", "run a headless node: acquisition, sync worker, election, recorder")
@arguments(_node_args)
def cmd_node(args: argparse.Namespace) -> int:
    from ..core.backpressure import Attention
    from ..worker.context import NodeConfig, default_node_id
    from ..worker.node import run_node

    devices = list(args.device)
    if args.simulate:
        devices.insert(0, "sim:lab")
    if args.parent_pid is None and bad_device_uris(without_ingest_uris(args, devices)):  # the window shows them
        return exitcodes.USAGE
    try:
        ingest = ingest_options(args)
    except ValueError as exc:
        log.error("%s", exc)
        return exitcodes.USAGE
    if not valid_node_id(args.node_id):
        return exitcodes.USAGE
    with lab(args) as endpoint:
        from ..worker.pupil_remote import PupilOptions

        rcs = rcs_options(args)
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
    redis_args(p)
    p.add_argument("--sensor", action="append", default=None, metavar="ID", help="only this sensor (repeatable)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")


@command("lsl-outlet", "publish the synchronized sensor streams as LSL outlets (for LabRecorder)")
@arguments(_lsl_outlet_args)
def cmd_lsl_outlet(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ..worker.lsl_outlet import LslOutletBridge

    with lab(args) as endpoint:
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
    from .. import paths
    from ..bus.embedded import EmbeddedRedis, RedisUnavailableError

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


