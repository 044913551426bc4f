"""Recording commands: ``record``, ``sync-check``, ``sessions``, ``export``, ``verify``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import exitcodes

if TYPE_CHECKING:
    from ..worker.record import RecordOutcome

from .base import (
    EXIT_LOSSES,
    arguments,
    bad_device_uris,
    command,
    ingest_options,
    lab,
    log,
    network_ingest_args,
    redis_args,
    valid_node_id,
    without_ingest_uris,
)


def _record_args(p: argparse.ArgumentParser) -> None:
    redis_args(p)
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
    network_ingest_args(p)


@command("record", "record a session headless (e.g. --simulate --duration 10 --out DIR) and exit")
@arguments(_record_args)
def cmd_record(args: argparse.Namespace) -> int:
    from .. import paths
    from ..worker.context import NodeConfig, default_node_id
    from ..worker.record import RecordRequest, record

    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        log.error("%s exists and is not empty; recordings are never overwritten", args.out)
        return exitcodes.USAGE
    devices = (["sim:lab"] if args.simulate else []) + list(args.device)
    if bad_device_uris(without_ingest_uris(args, devices)) or not valid_node_id(args.node_id):
        return exitcodes.USAGE
    try:
        ingest = ingest_options(args)
    except ValueError as exc:
        log.error("%s", exc)
        return exitcodes.USAGE
    with lab(args) as endpoint:
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
    redis_args(p)
    p.add_argument("--simulate", action="store_true", help="run the simulated lab in this node")
    p.add_argument("--device", action="append", default=[], metavar="URI", help="connect this device (repeatable)")
    p.add_argument("--flashes", type=int, default=20, metavar="N", help="flashes to present (default 20)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="mean s between flashes (±25 %%)")
    p.add_argument("--flash-ms", type=float, default=100.0, metavar="MS", help="how long each flash is lit")
    p.add_argument(
        "--sensor",
        action="append",
        default=[],
        metavar="ID",
        help="measure only this sensor (repeatable; a named numeric sensor is read as an analog channel)",
    )
    p.add_argument("--region", default=None, metavar="x,y,w,h", help="camera frame region to average (px)")
    p.add_argument(
        "--patch",
        default="full",
        help="where the flash is drawn: full, top-left, top-right, bottom-left, bottom-right (a photodiode's corner)",
    )
    p.add_argument("--patch-size", type=int, default=200, metavar="PX", help="side of a corner patch")
    p.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    p.add_argument("--no-clicks", action="store_true", help="no click with each flash (clicks need an audio output)")
    p.add_argument(
        "--events-from",
        default="",
        metavar="lsl:NAME",
        help="the presentations are this LSL marker stream's events (a stimulus PC flashing on its own)",
    )
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
    from .. import paths
    from ..core.synccheck import PATCHES
    from ..recording.synccheck import summary_lines
    from ..worker.context import NodeConfig, default_node_id
    from ..worker.synccheck import SyncCheckRequest, check_options, run_sync_check

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
    if bad_device_uris(devices) or not valid_node_id(args.node_id):
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
    with lab(args) as endpoint:
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
            from ..ui.flash import present_while

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
    for sid, every in outcome.quiet_event_sensors:
        log.warning("sensor %s had no event in the recording: it reports about every %.1f s, longer than the "
                    "recording", sid, every)  # fmt: skip
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
    from ..recording.reader import load_recording

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
    from .. import paths
    from ..recording.reader import list_recordings

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
    from ..recording.export import EXPORTERS, export_recording

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
    from ..recording.reader import describe_loss, load_recording

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
    from ..selftest import SelfTest

    return SelfTest(keep=args.keep, out=lambda line: print(line, flush=True)).run()
