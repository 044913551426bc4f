"""Serving commands: ``node``, ``lsl-outlet``, ``redis``."""

from __future__ import annotations

import argparse
import time

from .. import exitcodes
from ..bus.labredis import (
    DEFAULT_DOWN_AFTER_MS,
    DEFAULT_FAILOVER_TIMEOUT_MS,
    LabRedisSpec,
    default_port,
    new_password,
    parse_primary_url,
    start_lab_server,
)
from ..bus.sentinel import DEFAULT_SERVICE
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
    lab_pcs = p.add_argument_group("the lab's Redis across PCs (docs/multi-pc.md)")
    lab_pcs.add_argument("--listen", metavar="HOST:PORT",
                         help="serve the lab from this PC as its primary, reachable at HOST:PORT (default port 6379; "
                              "with --replica-of/--sentinel: where that one listens)")  # fmt: skip
    lab_pcs.add_argument("--password", help="the lab's Redis password (default: a new random one for a primary; "
                                            "a replica or sentinel takes the one in the primary's URL)")  # fmt: skip
    lab_pcs.add_argument("--replica-of", metavar="URL", help="run a replica of the primary redis://:PW@HOST:PORT")
    lab_pcs.add_argument(
        "--sentinel",
        metavar="URL",
        help="run a sentinel monitoring the primary redis://:PW@HOST:PORT (3 sentinels on 3 PCs)",
    )
    lab_pcs.add_argument("--service", default=DEFAULT_SERVICE, help="the name sentinels give the lab's Redis")
    lab_pcs.add_argument("--quorum", type=int, default=2, help="sentinels that must agree the primary is down")
    lab_pcs.add_argument("--down-after-ms", type=int, default=DEFAULT_DOWN_AFTER_MS,
                         help="a primary unreachable this long is down (ms)")  # fmt: skip
    lab_pcs.add_argument("--failover-timeout-ms", type=int, default=DEFAULT_FAILOVER_TIMEOUT_MS)
    lab_pcs.add_argument("--announce-ip", default="", help="the address other PCs reach this one at (NAT, 0.0.0.0)")


@command("redis", "start the embedded Redis in the foreground and print its URL (Ctrl-C stops it)")
@arguments(_redis_cmd_args)
def cmd_redis(args: argparse.Namespace) -> int:
    from .. import paths
    from ..bus.embedded import EmbeddedRedis, RedisUnavailableError

    if args.listen or args.replica_of or args.sentinel:
        return _run_lab_server(args)
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


def _lab_spec(args: argparse.Namespace) -> LabRedisSpec:
    """The lab server the command line asks for; ValueError saying what is wrong."""
    if args.replica_of and args.sentinel:
        raise ValueError("--replica-of and --sentinel are two processes: run each with its own command")
    role = "replica" if args.replica_of else "sentinel" if args.sentinel else "primary"
    primary, password = None, args.password or ""
    if role != "primary":
        primary, url_password = parse_primary_url(args.replica_of or args.sentinel)
        password = password or url_password
        if not password:
            raise ValueError("the primary's URL has no password (redis://:PASSWORD@HOST:PORT)")
    elif not password:
        password = new_password()
    host, _, port = (args.listen or f"0.0.0.0:{default_port(role)}").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {args.listen!r}: give HOST:PORT")
    if args.quorum < 1:
        raise ValueError("--quorum must be at least 1")
    return LabRedisSpec(role, host, int(port), password, primary, args.service, args.quorum, args.down_after_ms,
                        args.failover_timeout_ms, args.announce_ip)  # fmt: skip


def _run_lab_server(args: argparse.Namespace) -> int:
    """A primary, replica or sentinel of the lab's Redis in the foreground (Ctrl-C stops it)."""
    import signal

    from .. import paths
    from ..bus.embedded import RedisUnavailableError

    try:
        spec = _lab_spec(args)
    except ValueError as exc:
        log.error("%s", exc)
        return exitcodes.USAGE
    directory = paths.data_dir() / "redis-lab" / f"{spec.role}-{spec.port}"
    try:
        proc = start_lab_server(spec, directory)
    except (RedisUnavailableError, OSError, ValueError) as exc:
        log.error("cannot start the lab's Redis %s: %s", spec.role, exc)
        return exitcodes.FAILED
    print(f"{spec.role} listening on {spec.bind}:{spec.port}, data in {directory}", flush=True)
    print(f"clients: --redis-url {spec.url}" if spec.role != "sentinel" else
          f"clients: --redis-url {spec.url} (list all of the lab's sentinels: redis+sentinel://H1:P,H2:P,H3:P/"
          f"{spec.service})", flush=True)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        code = proc.wait()
    if code not in (0, -signal.SIGTERM):
        log.error("the lab's Redis %s exited with %d (its log is above)", spec.role, code)
        return exitcodes.FAILED
    return exitcodes.OK
