"""Node component ``quality``: is each of this node's signals still good?

Every delivery of a regular numeric sensor goes to its :class:`~..core.quality.SignalQuality`
(a sample tap: no Redis read); every :data:`ASSESS_EVERY_S` each is judged and the verdicts
are written to the ``quality`` hash (sensor → JSON), which ``sensorium status``, the device
tree and the review read. A bad spell that ends is put into every running recording as a
marker ``BAD_<reason>`` at the spell's start with its duration — BIDS ``events.tsv`` rows
that MNE reads as annotations marking the span bad. A forecaster trained for the sensor and
its attribute (``sensorium train``, :mod:`..core.forecast`) is used when its file is in the
data dir's ``models/``; never one trained for another sensor or attribute.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis
import redis.asyncio

from .. import paths
from ..bus.connection import async_client
from ..bus.keys import Keys
from ..bus.sessions import mark_recordings
from ..bus.streams import entry_fields, top_of_entries
from ..core.attributes import category, get_type
from ..core.forecast import Forecaster, model_name
from ..core.hostclock import host_time
from ..core.quality import (
    ANOMALY_ATTRIBUTE,
    ANOMALY_RATE_HZ,
    MAX_JUDGED_RATE_HZ,
    NAN_WARNINGS,
    History,
    SampleTimes,
    SignalQuality,
    Verdict,
    anomaly_row,
    anomaly_sensor_id,
    checks_off,
    verdict_json,
)
from ..core.samples import SampleBatch, SensorInfo
from .context import NodeContext, Run

log = logging.getLogger(__name__)

#: how often every sensor is judged (s)
ASSESS_EVERY_S = 1.0 / ANOMALY_RATE_HZ
#: ``Anomaly`` samples kept in Redis per sensor (10 min)
ANOMALY_KEEP = int(600 / ASSESS_EVERY_S)
#: a sensor is scored when it is regular, numeric and has at most this many channels
MAX_CHANNELS = 64


def value_range(info: SensorInfo) -> tuple[float | None, float | None] | None:
    """The attribute's valid range when its schema has one numeric value with bounds."""
    at = get_type(info.attribute)
    if at is None or len(at.fields) != 1:
        return None
    f = at.fields[0]
    return (f.minimum, f.maximum) if f.minimum is not None or f.maximum is not None else None


@dataclass
class _Scored:
    quality: SignalQuality
    verdict: Verdict
    times: SampleTimes
    bad_since: float | None = None  # host time the current bad spell began (s)
    #: during a bad spell: how many assessments each reason was the verdict's, and its verdict
    spell: dict[str, tuple[int, Verdict]] = field(default_factory=dict)

    def spell_verdict(self) -> Verdict | None:
        """The verdict of the reason that held longest in the current bad spell (None: none)."""
        return max(self.spell.values(), key=lambda nv: nv[0])[1] if self.bad_since is not None and self.spell else None


class QualityScorer:
    """The verdicts of one node's sensors (no I/O: fed by a tap, read by the component)."""

    def __init__(self, info_of: Callable[[str], SensorInfo | None], models_dir: str | None = None) -> None:
        self.sensors: dict[str, _Scored] = {}
        self.skipped: set[str] = set()
        self.info_of = info_of
        self.models_dir = models_dir
        #: CPU time (s) of the last :meth:`judge`, in the thread that ran it
        self.judge_cpu_s = 0.0

    def tap(self, batch: SampleBatch) -> None:
        """Take one delivery (a sensor's description is looked up only the first time it is seen)."""
        sid = batch.sensor_id
        scored = self.sensors.get(sid)
        if scored is None:
            if sid in self.skipped:
                return
            info = self.info_of(sid)
            if info is None:  # not announced yet: asked again at its next delivery
                return
            off = checks_off(info.attribute, str(category(info.attribute)))
            if (
                off is None
                or info.nominal_rate <= 0
                or info.channel_format == "string"
                or info.channel_count > MAX_CHANNELS
            ):
                self.skipped.add(sid)  # events, text, gaze, a skeleton: not a signal to judge this way
                return
            model = load_forecaster(self.models_dir, info.sensor_id, info.attribute) if self.models_dir else None
            if model is not None and info.nominal_rate > MAX_JUDGED_RATE_HZ:
                log.warning("%s: its model is not used: at %.0f Hz the sensor is judged in blocks (rules only above "
                            "%.0f Hz)", sid, info.nominal_rate, MAX_JUDGED_RATE_HZ)  # fmt: skip
                model = None
            q = SignalQuality(info.nominal_rate, info.channel_count, value_range(info), model, off=off)
            scored = self.sensors[sid] = _Scored(q, Verdict("learning", 0.0), SampleTimes(info.nominal_rate))
        values = batch.values
        if values.dtype == object:
            return
        scored.quality.update(scored.times.of(batch.t_arrival), values)

    def assess(self, now: float) -> list[tuple[str, Verdict, float, float]]:
        """Judge every sensor at host time ``now``; returns the bad spells that just ended
        (sensor, the verdict of the reason that held longest, its start and end s)."""
        return self.judge(now, self.snapshots(now), quiet=True)

    def snapshots(self, now: float) -> list[tuple[str, float, History]]:
        """Every scored sensor's rows at host time ``now``: (sensor, the time its window ends
        (s), a copy of its history) — taken where samples are tapped."""
        out = []
        for sid, s in list(self.sensors.items()):
            at = s.times.judged_at(now)
            out.append((sid, at, s.quality.snapshot(at)))
        return out

    def judge(
        self, now: float, snapshots: list[tuple[str, float, History]], quiet: bool = False
    ) -> list[tuple[str, Verdict, float, float]]:
        """Judge the sensors of ``snapshots`` (may run in another thread than :meth:`tap`);
        returns the bad spells that just ended (see :meth:`assess`). ``quiet``: numpy's all-NaN
        warnings silenced here (not thread-safe); else the caller's filters do it."""
        started = time.thread_time()
        ended = []
        for sid, at, history in snapshots:
            s = self.sensors[sid]
            if quiet:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    v = s.quality.judge(at, history)
            else:
                v = s.quality.judge(at, history)
            ended += self._record(sid, s, v, now)
        self.judge_cpu_s = time.thread_time() - started
        return ended

    @staticmethod
    def _record(sid: str, s: _Scored, v: Verdict, now: float) -> list[tuple[str, Verdict, float, float]]:
        """Keep ``s``'s new verdict ``v``; the bad spell it ends, if one (sensor, verdict, start, end)."""
        s.verdict = v
        if v.state == "bad":
            if s.bad_since is None:
                s.bad_since, s.spell = now - s.quality.window_s, {}
            n, _ = s.spell.get(v.reason, (0, v))
            s.spell[v.reason] = (n + 1, v)
        elif s.bad_since is not None:
            ended = (sid, s.spell_verdict() or v, s.bad_since, now)
            s.bad_since = None
            return [ended]
        return []


def load_forecaster(models_dir: str | Path, sensor_id: str, attribute: str) -> Forecaster | None:
    """The model trained for exactly this sensor and attribute in ``models_dir``, or None
    (none, unreadable — logged — or trained for another: never used silently)."""
    path = Path(models_dir) / model_name(sensor_id, attribute)
    if not path.is_file():
        return None
    try:
        f = Forecaster.from_bytes(path.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("quality: %s: %s; %s scored by the rules alone", path, exc, sensor_id)
        return None
    if (f.sensor_id, f.attribute) != (sensor_id, attribute):
        log.warning("quality: %s was trained for %s/%s, not %s/%s: not used", path, f.sensor_id, f.attribute,
                    sensor_id, attribute)  # fmt: skip
        return None
    log.info("quality: %s scored with its forecaster (%s, %d epochs)", sensor_id, f.backend, f.epochs)
    return f


def quality(node: NodeContext) -> Run:
    """Score this node's sensors every :data:`ASSESS_EVERY_S` (on a fixed schedule: the
    ``Anomaly`` streams are regular); publish the verdicts and one ``Anomaly`` sample per
    scored sensor; mark ended bad spells in recordings."""
    scorer = QualityScorer(node.sensor_info, str(paths.data_dir() / "models"))
    # set once for the node process (catch_warnings in the judging thread would race the loop's)
    warnings.filterwarnings("ignore", NAN_WARNINGS, RuntimeWarning)
    node.add_sample_tap(scorer.tap)
    node.counters.setdefault("quality_samples_lost", 0)

    async def run(stop: asyncio.Event) -> None:
        c = async_client(node.config.redis_url, timeout=2.0)
        streams = AnomalyStreams(node.keys, node.node_id)
        t0 = host_time()
        tick = 0
        spells: list[tuple[str, Verdict, float, float]] = []  # ended bad spells not yet marked
        try:
            while not stop.is_set():
                now = host_time()
                t_cpu = time.thread_time()
                snapshots = scorer.snapshots(now)
                snapshot_cpu = time.thread_time() - t_cpu
                # judged in a thread (numpy lets the loop run meanwhile): inline, a 32-channel
                # EEG's judgement stalled the loop 4–12 ms and arrival → Redis p99 rose 3 → 11 ms
                spells.extend(await asyncio.to_thread(scorer.judge, now, snapshots))
                node.counters["quality_cpu_us"] = int(1e6 * (snapshot_cpu + scorer.judge_cpu_s))
                try:
                    if scorer.sensors:
                        await streams.publish(c, scorer, now, tick)
                    while spells:  # kept while Redis is unreachable; ended at the tick they were seen
                        sid, v, start, end = spells[0]
                        extra = {"sensor_id": sid, "duration": repr(round(end - start, 3)), "detail": v.detail}
                        await mark_recordings(c, node.keys, f"BAD_{v.reason.replace(' ', '_')}", "quality", start,
                                              extra)  # fmt: skip
                        spells.pop(0)
                except (redis.RedisError, OSError) as exc:
                    log.debug("quality: Redis unreachable (%d Anomaly samples kept): %s", len(streams.pending), exc)
                if streams.lost > node.counters["quality_samples_lost"]:
                    log.warning("quality: %d Anomaly samples lost (Redis unreachable too long)",
                                streams.lost - node.counters["quality_samples_lost"])  # fmt: skip
                    node.counters["quality_samples_lost"] = streams.lost
                tick = max(tick + 1, math.floor((host_time() - t0) / ASSESS_EVERY_S) + 1)  # an overrun skips ticks
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, t0 + tick * ASSESS_EVERY_S - host_time()))
                except TimeoutError:
                    pass
        finally:
            await c.aclose()

    return run


class AnomalyStreams:
    """Writes the verdicts: the ``quality`` hash and each scored sensor's ``Anomaly`` stream
    (:func:`~..core.quality.anomaly_info`; one sample per tick, its index the tick's, so a
    skipped tick is a gap, continued after a node restart from the stream's newest entry).
    Samples not written while Redis is unreachable are kept (up to :data:`ANOMALY_KEEP` per
    sensor, the older ones counted as lost) and written when it is back."""

    def __init__(self, keys: Keys, node_id: str) -> None:
        self.keys = keys
        self.node_id = node_id
        self.seq: dict[str, int] = {}
        self.index_base: dict[str, int] = {}  # sample index = base + tick
        self.pending: list[tuple[str, dict[str, object]]] = []  # (stream key, entry) not yet written
        self.lost = 0

    async def publish(self, c: redis.asyncio.Redis, scorer: QualityScorer, now: float, tick: int) -> None:
        """Queue this tick's samples, then write everything queued (raises RedisError/OSError:
        the samples stay queued for the next call)."""
        new = [sid for sid in scorer.sensors if sid not in self.seq]
        if new:
            try:
                pipe = c.pipeline(transaction=False)
                for sid in new:
                    pipe.xrevrange(self.keys.stream(anomaly_sensor_id(sid)), "+", "-", count=1)
                for sid, top in zip(new, await pipe.execute(), strict=True):
                    seq, next_index, _ms = top_of_entries(top)
                    self.seq[sid], self.index_base[sid] = seq + 1, next_index - tick
            except (redis.RedisError, OSError):
                self.lost += len(new)  # not numbered yet: their first samples cannot be kept
                raise
        hashed = {}
        t = np.array([now])
        for sid, s in scorer.sensors.items():
            spell = s.spell_verdict()
            hashed[sid] = verdict_json(s.verdict, now, s.bad_since, spell.reason if spell else "")
            if sid not in self.seq:
                continue
            batch = SampleBatch(anomaly_sensor_id(sid), ANOMALY_ATTRIBUTE, t, anomaly_row(s.verdict)[None, :], None,
                                self.seq[sid], self.index_base[sid] + tick)  # fmt: skip
            self.pending.append((self.keys.stream(batch.sensor_id), entry_fields(batch, self.node_id, now)))
            self.seq[sid] += 1
        excess = len(self.pending) - ANOMALY_KEEP * max(len(self.seq), 1)
        if excess > 0:
            self.lost += excess
            del self.pending[:excess]
        pipe = c.pipeline(transaction=False)
        for key, fields in self.pending:
            pipe.xadd(key, fields, maxlen=ANOMALY_KEEP, approximate=True)
        pipe.hset(self.keys.quality, mapping=hashed)
        await pipe.execute()
        self.pending = []
