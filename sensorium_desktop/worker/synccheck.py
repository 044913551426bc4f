"""Running a sync check: record a short session while flashes are presented, then analyse it.

The flashes come from a :class:`Stimulus` (the flash window of :mod:`sensorium_desktop.ui.flash`,
which reports the host time of every frame swap) or, with ``events_from``, from a stimulus
PC's LSL marker stream recorded alongside. Each swap is published at once
(:func:`sensorium_desktop.bus.synccheck.present`): a marker in the recording and the light of
the simulated room. The recording is the ordinary headless one (:func:`.record.record`), so a
check measures exactly the times a recording exports.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import exitcodes
from ..bus.connection import client as make_client
from ..bus.keys import Keys
from ..bus.registry import list_devices, list_sensors_async
from ..bus.synccheck import present
from ..core.samples import SensorInfo
from ..core.synccheck import Tolerance, flash_schedule
from ..recording.reader import load_recording
from ..recording.synccheck import (
    CheckOptions,
    SyncCheckError,
    analyse,
    apply_corrections,
    detector_for,
    write_result,
)
from .context import NodeConfig
from .record import RecordOutcome, RecordRequest, record

log = logging.getLogger(__name__)

#: Recording before the first flash (s): every clock has a few samples to fit on.
LEAD_S = 2.0
#: Recording after the last flash went off (s): the slowest device's latency and delivery.
TAIL_S = 1.5
#: A flash whose swap is not reported within this long (s) ends the check as interrupted.
SWAP_TIMEOUT_S = 5.0

#: ``on_swap(index, lit, t_host)``: flash ``index`` was put on (``lit``) or off the screen by
#: the frame swap at host time ``t_host`` (s).
SwapCallback = Callable[[int, bool, float], None]


class Stimulus(Protocol):
    """Something that presents flashes and reports each frame swap (any thread may call)."""

    #: how presentation times are taken ("frame swap", "backing store flush", …)
    timing: str

    def start(self, onsets: np.ndarray, flash_s: float, on_swap: SwapCallback) -> None:
        """Present a flash at each of ``onsets`` (s from now), each lit ``flash_s`` s."""

    def stop(self) -> None:
        """Stop presenting (the screen goes dark)."""


@dataclass
class SyncCheckRequest:
    """A check: ``flashes`` about ``interval_s`` apart (jittered ±25 %), each lit ``flash_s``."""

    directory: Path
    flashes: int = 20
    interval_s: float = 1.0
    flash_s: float = 0.1
    options: CheckOptions = field(default_factory=CheckOptions)
    apply: bool = False
    seed: int | None = None
    participant: str = ""
    session: str = ""


@dataclass
class SyncCheckOutcome:
    """The recording's outcome and the analysis (``result`` None with ``error`` when none)."""

    recording: RecordOutcome
    result: dict[str, Any] | None
    error: str = ""
    files: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """OK: every measured sensor passed a complete check; OUT_OF_TOLERANCE: one failed or
        saw nothing; PARTIAL: interrupted; FAILED: nothing could be measured."""
        if self.result is None:
            return exitcodes.FAILED
        if self.result.get("interrupted"):
            return exitcodes.PARTIAL
        verdicts = {row["verdict"] for row in self.result["sensors"].values()}
        return exitcodes.OK if verdicts == {"pass"} else exitcodes.OUT_OF_TOLERANCE


def simulated_truth(redis_url: str, keys: Keys) -> dict[str, dict[str, float]]:
    """Sensor id → flash id → true latency (ms) reported by simulated devices (none: {})."""
    c = make_client(redis_url, timeout=2.0, retries=0)
    try:
        out: dict[str, dict[str, float]] = {}
        for d in list_devices(c, keys):
            truth = (d.health.get("details") or {}).get("flash_truth_ms") or {}
            if isinstance(truth, dict):
                for sid, flashes in truth.items():
                    if isinstance(flashes, dict):
                        out[str(sid)] = {str(k): float(v) for k, v in flashes.items()}
        return out
    finally:
        c.close()


def usable_sensors(infos: list[SensorInfo], opts: CheckOptions) -> list[str]:
    """The sensors of ``infos`` a check can measure (a detector fits; among ``opts.sensors``)."""
    return [i.sensor_id for i in infos if detector_for(i, explicit=bool(opts.sensors))
            and (not opts.sensors or i.sensor_id in opts.sensors)]  # fmt: skip


async def present_flashes(
    c: Any, keys: Keys, check_id: str, stimulus: Stimulus, onsets: np.ndarray, flash_s: float,
    say: Callable[[str], None],
) -> bool:  # fmt: skip
    """Have ``stimulus`` present the flashes and publish every swap as it comes (markers, the
    room's light); False when the window stopped reporting swaps. Cancelling stops it."""
    loop = asyncio.get_running_loop()
    swaps: asyncio.Queue[tuple[int, bool, float]] = asyncio.Queue()

    def on_swap(index: int, lit: bool, t_host: float) -> None:
        loop.call_soon_threadsafe(swaps.put_nowait, (index, lit, t_host))

    stimulus.start(onsets, flash_s, on_swap)
    began = time.monotonic()
    try:
        for _ in range(2 * onsets.size):
            due = began + float(onsets[-1]) + flash_s + SWAP_TIMEOUT_S - time.monotonic()
            index, lit, t_host = await asyncio.wait_for(swaps.get(), max(due, SWAP_TIMEOUT_S))
            await present(c, keys, check_id, index, t_host, lit)
            if lit:
                say(f"flash {index + 1} of {onsets.size}")
    except TimeoutError:
        log.error("sync check: the flash window stopped reporting frame swaps")
        return False
    finally:
        stimulus.stop()
    return True


def finish_check(
    directory: Path, opts: CheckOptions, truth: dict[str, dict[str, float]], interrupted: bool, planned: int,
    about: dict[str, Any], apply: bool,
) -> tuple[dict[str, Any], list[Path]]:  # fmt: skip
    """Analyse the check recorded in ``directory``, store the result (``about``: check id,
    timing, interval, …) and, with ``apply`` on a complete check, the corrections. Raises
    :class:`SyncCheckError` (or OSError/ValueError for an unreadable recording)."""
    rec = load_recording(directory, trim=False)  # nothing mapped yet: the corrections can go first
    rec.latency_corrections = {}  # measured as recorded, never through an earlier correction
    rec.trim_to_bounds()
    result = analyse(rec, opts, truth, interrupted=interrupted, planned=planned)
    result.update(about)
    files = write_result(directory, result)
    if apply and not interrupted:
        apply_corrections(directory, result)
    return result, files


def run_sync_check(
    config: NodeConfig,
    request: SyncCheckRequest,
    stimulus: Stimulus | None,
    report: Callable[[str], None] | None = None,
    stop_flag: threading.Event | None = None,
) -> SyncCheckOutcome:
    """Record while ``stimulus`` presents the flashes (None: ``options.events_from`` names the
    LSL marker stream that says when they were presented), analyse, store the result with the
    recording and, with ``apply``, the latency corrections. Blocks; the stimulus runs in its
    own (GUI) thread."""
    opts = request.options
    check_id = uuid.uuid4().hex[:8]
    onsets = flash_schedule(request.flashes, request.interval_s, seed=request.seed)
    span = float(onsets[-1]) + request.flash_s
    duration = LEAD_S + span + TAIL_S
    say = report or (lambda _msg: None)
    refused: list[str] = []

    async def during(c: Any, session: Any) -> bool:
        infos = [i for i in await list_sensors_async(c, config.keys) if i.sensor_id in session.sensors]
        usable = usable_sensors(infos, opts)
        if not usable:
            refused.append(no_detector_message(infos, opts))
            log.error("sync check not started: %s", refused[0])
            return False
        say(f"measuring {', '.join(usable)}")
        await asyncio.sleep(LEAD_S)
        if stimulus is None:
            say(f"waiting {span + TAIL_S:.1f} s for {request.flashes} {opts.label!r} events from {opts.events_from}")
            await asyncio.sleep(span + TAIL_S)
            return True
        if not await present_flashes(c, config.keys, check_id, stimulus, onsets, request.flash_s, say):
            return False
        await asyncio.sleep(TAIL_S)
        return True

    recorded = [] if opts.events_from else opts.sensors  # the marker stream is recorded too
    rr = RecordRequest(duration + 30.0, request.directory, recorded, request.participant, request.session, "synccheck",
                       notes=f"sync check {check_id}: {request.flashes} flashes")  # fmt: skip
    outcome = record(config, rr, None, during, stop_flag)
    if refused:
        return SyncCheckOutcome(outcome, None, refused[0])
    if outcome.state != "complete":
        return SyncCheckOutcome(outcome, None, outcome.error or f"the recording is {outcome.state}")
    try:
        truth = simulated_truth(config.redis_url, config.keys)
    except Exception as exc:  # the truth is a bonus of simulated devices; never fatal
        log.debug("no simulated truth: %s", exc)
        truth = {}
    about = {"check_id": check_id, "timing": stimulus.timing if stimulus is not None else "lsl markers",
             "audio": getattr(stimulus, "audio", ""), "interval_s": request.interval_s,
             "flash_s": request.flash_s}  # fmt: skip
    try:
        result, files = finish_check(request.directory, opts, truth, outcome.interrupted, request.flashes, about,
                                     request.apply)  # fmt: skip
    except (SyncCheckError, OSError, ValueError) as exc:
        return SyncCheckOutcome(outcome, None, str(exc))
    return SyncCheckOutcome(outcome, result, files=files)


def no_detector_message(infos: list[SensorInfo], opts: CheckOptions) -> str:
    """Why no sensor can see a flash, naming what there is and what would."""
    have = ", ".join(f"{i.sensor_id} ({i.attribute})" for i in infos) or "no sensor"
    return (
        f"no sensor can see a flash: have {have}; a check needs a camera (video or brightness), a photodiode "
        "or light channel, an audio stream, or a sensor named with --sensor (read as an analog channel)"
    )


def check_options(
    sensors: list[str], region: str | None, events_from: str, label: str, mean_ms: float, sd_ms: float
) -> CheckOptions:
    """Options from the command line's words (``region`` "x,y,w,h" px); ValueError when bad."""
    box = None
    if region:
        parts = [int(p) for p in region.split(",")]
        if len(parts) != 4 or parts[2] <= 0 or parts[3] <= 0 or min(parts[:2]) < 0:
            raise ValueError(f"--region must be x,y,w,h in pixels with w, h > 0, not {region!r}")
        box = (parts[0], parts[1], parts[2], parts[3])
    if events_from.startswith("lsl:"):
        events_from = events_from[4:]
    return CheckOptions(label, events_from, list(sensors), box, Tolerance(mean_ms, sd_ms))
