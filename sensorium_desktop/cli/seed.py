"""The seed API's commands: ``ingest``, ``sync``, ``experiment``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from .base import arguments, command, log, redis_args


def _engine_args(p: argparse.ArgumentParser) -> None:
    redis_args(p)
    p.add_argument("--node-id", default=None, help="this engine's node id (default: host name + '-engine')")
    p.add_argument("--json", action="store_true")


def _engine(args: argparse.Namespace):
    from ..bus.engine import SyncEngine

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
    engine = _engine(args)  # no Redis: main says why (exit 1)
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
    engine = _engine(args)  # no Redis: main says why (exit 1)
    try:
        _print_groups(engine.step(), args.json)
    finally:
        engine.close()
    return 0


def _experiment_args(p: argparse.ArgumentParser) -> None:
    redis_args(p)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", action="store_true")


@command("experiment", "deterministic single time slice with membership probabilities (seed experiment)")
@arguments(_experiment_args)
def cmd_experiment(args: argparse.Namespace) -> int:
    from ..bus.experiment import run_experiment

    result = run_experiment(args.seed, args.redis_url)  # no Redis: main says why (exit 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"seed {result['seed']}: event at {result['event_time']:.6f}s, distractor 300 ms later")
        _print_groups(result["groups"], False)
    return 0
