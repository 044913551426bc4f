"""Per-sensor batching under the backpressure policy (pure logic, caller supplies time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .backpressure import Attention, BackpressureConfig, compute_config, should_flush
from .samples import SampleBatch

#: A paused sensor still hands data on once this much is pending (it then queues/spills
#: in the publisher): backpressure delays data, it never drops it.
PAUSED_FLUSH_BYTES = 8 * 1024 * 1024
PAUSED_FLUSH_AGE_S = 60.0


@dataclass(slots=True)
class _Pending:
    batches: list[SampleBatch] = field(default_factory=list)
    since: float = 0.0
    nbytes: int = 0


class Batcher:
    """Collects device deliveries per sensor and emits them as one batch when the sensor's
    :class:`BackpressureConfig` says so (batch size reached or window elapsed)."""

    def __init__(self, emit: Callable[[SampleBatch], object], default: Attention = Attention.NONE) -> None:
        self.emit = emit
        self.default = compute_config(default)
        self.configs: dict[str, BackpressureConfig] = {}
        self._pending: dict[str, _Pending] = {}
        self.flushes: dict[str, int] = {}

    def config(self, sensor_id: str) -> BackpressureConfig:
        return self.configs.get(sensor_id, self.default)

    def set_config(self, sensor_id: str, config: BackpressureConfig, now: float) -> None:
        """Apply a new config; pending data is re-evaluated against it at once."""
        self.configs[sensor_id] = config
        self._maybe_flush(sensor_id, now)

    def add(self, batch: SampleBatch, now: float) -> None:
        """Queue one delivery (``now`` in seconds, host clock)."""
        if len(batch) == 0:
            return
        p = self._pending.get(batch.sensor_id)
        if p is None:
            p = self._pending[batch.sensor_id] = _Pending()
        if not p.batches:
            p.since = now
        p.batches.append(batch)
        p.nbytes += batch.values.nbytes + batch.t_arrival.nbytes * 2
        self._maybe_flush(batch.sensor_id, now)

    def tick(self, now: float) -> None:
        """Flush every sensor whose window has elapsed."""
        for sid in list(self._pending):
            self._maybe_flush(sid, now)

    def _maybe_flush(self, sensor_id: str, now: float) -> None:
        p = self._pending.get(sensor_id)
        if p is None or not p.batches:
            return
        cfg = self.config(sensor_id)
        decision = should_flush(len(p.batches), (now - p.since) * 1000.0, cfg)
        overfull = cfg.paused and (p.nbytes >= PAUSED_FLUSH_BYTES or now - p.since >= PAUSED_FLUSH_AGE_S)
        if decision.flush or overfull:
            self.flush(sensor_id)

    def flush(self, sensor_id: str) -> None:
        p = self._pending.get(sensor_id)
        if p is None or not p.batches:
            return
        batches, p.batches, p.nbytes = p.batches, [], 0
        self.flushes[sensor_id] = self.flushes.get(sensor_id, 0) + 1
        self.emit(SampleBatch.concat(batches))

    def flush_all(self) -> None:
        for sid in list(self._pending):
            self.flush(sid)

    def pending_messages(self, sensor_id: str) -> int:
        p = self._pending.get(sensor_id)
        return len(p.batches) if p else 0

    def next_deadline(self, now: float) -> float:
        """Seconds until the earliest window expires (for the caller's timer)."""
        best = 1.0
        for sid, p in self._pending.items():
            if p.batches:
                cfg = self.config(sid)
                left = p.since + cfg.recommended_batch_window / 1000.0 - now
                best = min(best, max(left, 0.0))
        return best
