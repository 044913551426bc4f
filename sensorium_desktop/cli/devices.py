"""Lab commands: ``selftest``, ``devices``, ``plugins``, ``marker``, ``forget``, ``status``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING

from .. import exitcodes

if TYPE_CHECKING:
    pass

from .base import arguments, command, lab, log, redis_args


def _devices_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=5.0, help="discovery time per transport (s)")
    p.add_argument("--transport", action="append", default=None,
                   help="only these transports (URI schemes: see `sensorium plugins`; repeatable)")  # fmt: skip


@command("devices", "discover devices on every transport and print their URIs")
@arguments(_devices_args)
def cmd_devices(args: argparse.Namespace) -> int:
    from ..devices import TRANSPORTS, discover_all

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

    from ..plugins import PluginInfo
    from ..ui.desktop import plugin_registries

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
    redis_args(p)
    p.add_argument("text", help="the marker's label")


@command("marker", "put a marker into every session being recorded (exit 1 when nothing records)")
@arguments(_marker_args)
def cmd_marker(args: argparse.Namespace) -> int:
    from ..bus.sessions import mark_recordings

    with lab(args) as endpoint:

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
    redis_args(p)
    p.add_argument("device_ids", nargs="*", metavar="DEVICE_ID", help="devices to forget (as `status` lists them)")
    p.add_argument("--offline", action="store_true", help="forget every device whose node stopped reporting")


@command("forget", "take offline devices and their sensors out of the lab's registry (DEVICE_ID… or --offline)")
@arguments(_forget_args)
def cmd_forget(args: argparse.Namespace) -> int:
    from ..bus.registry import OFFLINE_AFTER_S, forget_device, list_devices_async

    if not args.device_ids and not args.offline:
        log.error("name the devices to forget or pass --offline")
        return exitcodes.USAGE
    with lab(args) as endpoint:

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
    redis_args(p)
    p.add_argument("--json", action="store_true")


@command("status", "show nodes, leader, checkpoints and sensors with their clock states")
@arguments(_status_args)
def cmd_status(args: argparse.Namespace) -> int:
    from ..bus.status import format_status, read_status

    with lab(args) as endpoint:
        c = endpoint.client()
        status = read_status(c, endpoint.keys)
        print(json.dumps(status.to_dict(), indent=2, default=str) if args.json else format_status(status))
    return 0
