"""The ``sensorium`` command line: one module per group of commands (``window``, ``node``,
``recording``, ``devices``, ``seed``; ``config`` is here), each registering its commands in
:mod:`.base` by importing it."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import exitcodes
from . import devices, node, quality, recording, seed, window  # noqa: F401  (importing them registers their commands)
from .base import COMMANDS, build_parser, command, log, setup_logging

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["COMMANDS", "apply_config", "build_parser", "main", "main_gui"]


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

    from ..config import config_path, load_config

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
        from ..logfiles import add_rotating_file

        add_rotating_file(Path(args.log_file))
    from ..config import ConfigError, load_config

    try:
        apply_config(args, load_config())
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    if not args.command:
        parser.print_help()
        return 0
    from ..bus.embedded import RedisUnavailableError

    try:
        return COMMANDS[args.command].run(args)
    except RedisUnavailableError as exc:
        log.error("%s", exc)
        return exitcodes.FAILED


def main_gui() -> int:
    """Entry point of the windowed launcher: ``sensorium`` with no command opens the GUI."""
    return main(sys.argv[1:] or ["gui"])
