"""Window commands: ``gui``, ``demo``, ``open`` (review), ``replay``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import exitcodes

if TYPE_CHECKING:
    pass

from .base import (
    arguments,
    bad_device_uris,
    command,
    lab,
    log,
    network_ingest_args,
    redis_args,
    remote_args,
    valid_node_id,
)


def _gui_args(p: argparse.ArgumentParser) -> None:
    redis_args(p)
    p.add_argument("--simulate", action="store_true", help="run the simulated lab in the node")
    p.add_argument("--device", action="append", default=[], metavar="URI", help="connect this device (repeatable)")
    p.add_argument("--no-node", action="store_true", help="only watch; do not start a node")
    p.add_argument("--node-id", default=None)
    p.add_argument("--quit-after", type=float, default=None, metavar="S", help="close after S seconds")
    p.add_argument("--screenshot", type=Path, default=None, help="save a window screenshot before quitting")
    p.add_argument("--select", action="append", default=[], metavar="SENSOR", help="plot this sensor at start")
    remote_args(p)
    network_ingest_args(p)


def _run_gui(args: argparse.Namespace, simulate: bool) -> int:
    from ..ui.app import GuiOptions, run_gui

    if not valid_node_id(args.node_id):
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
    from .. import paths

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
    from ..recording.review import ReviewError, open_review

    try:
        data = open_review(args.path)
    except ReviewError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    for warning in data.warnings:
        log.warning("%s", warning)
    from ..ui.app import run_review

    return run_review(data, args.quit_after, args.screenshot)


def _replay_args(p: argparse.ArgumentParser) -> None:
    redis_args(p)
    p.add_argument("path", type=Path, help="a session folder or an XDF file")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (0.25–16; 1 = real time)")
    p.add_argument("--loop", action="store_true", help="start over at the end (until Ctrl+C)")
    p.add_argument("--delay", type=float, default=0.0, metavar="S", help="wait S s before the first sample")
    p.add_argument("--node-id", default=None)


@command("replay", "publish a recording's streams into the lab as live sensors (a node with replay:PATH)")
@arguments(_replay_args)
def cmd_replay(args: argparse.Namespace) -> int:
    from ..recording.review import ReviewError, open_review
    from ..worker.context import NodeConfig, default_node_id
    from ..worker.node import run_node

    path = args.path.resolve()
    try:
        t0, t1 = open_review(path).span
    except ReviewError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED
    uri = f"replay:{path}?speed={args.speed:g}&delay={args.delay:g}" + ("&loop=1" if args.loop else "")
    if bad_device_uris([uri]) or not valid_node_id(args.node_id):
        return exitcodes.USAGE
    with lab(args) as endpoint:
        duration = None if args.loop else args.delay + (t1 - t0) / args.speed + 3.0
        log.info("replaying %s (%.1f s of recording at %g×)%s", path.name, t1 - t0, args.speed,
                 " in a loop" if args.loop else "")  # fmt: skip
        cfg = NodeConfig(redis_url=endpoint.url, keys=endpoint.keys, node_id=args.node_id or default_node_id(),
                         devices=[uri], allowed_roots=[path.parent])  # fmt: skip
        return run_node(cfg, duration)
