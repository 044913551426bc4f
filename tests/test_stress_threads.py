"""No silent thread deaths (issue 16 item 4): producer threads announce new sensors at runtime
while publishing near 1 M samples/s through one :class:`StreamPublisher`, and Redis is restarted
twice (SIGTERM, then SIGKILL). Every batch must be in Redis exactly once, in order, and no
thread may die. The CI runs 12 s; the soak (``-m slow``) runs 3 minutes."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import RedisServer, wait_for

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.publisher import StreamPublisher
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.samples import SampleBatch, SensorInfo

BATCH = 4096
PRODUCERS = 2
#: samples/s in total (the producers pace themselves to it)
RATE = 1_000_000
NEW_SENSOR_EVERY_S = 0.4


def _run(server: RedisServer, keys: Keys, tmp_path: Path, seconds: float) -> None:
    deaths: list[str] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: deaths.append(f"{args.thread.name if args.thread else '?'}: {args.exc_value}")
    pub = StreamPublisher(server.url, keys, "stress", tmp_path / "spill", warm_seconds=3600.0, max_batch=512)
    pub.add_sensors([SensorInfo("p0-s0", "signal", "p0"), SensorInfo("p1-s0", "signal", "p1")])
    pub.start()
    began = time.monotonic()
    published: Counter[str] = Counter()
    stop = threading.Event()
    values = np.arange(BATCH, dtype=np.float32).reshape(BATCH, 1)

    def producer(p: int) -> None:
        sensors = [f"p{p}-s0"]
        announced = time.monotonic()
        k = 0
        while not stop.is_set():
            if time.monotonic() - announced > NEW_SENSOR_EVERY_S:  # a device found a new stream
                announced = time.monotonic()
                sensors.append(f"p{p}-s{len(sensors)}")
            sid = sensors[k % len(sensors)]
            t = time.time() + np.arange(BATCH) * 1e-6
            pub.publish(SampleBatch(sid, "signal", t, values + published[sid], t))
            published[sid] += BATCH
            k += 1
            ahead = began + k * BATCH * PRODUCERS / RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    threads = [threading.Thread(target=producer, args=(p,), name=f"producer-{p}") for p in range(PRODUCERS)]
    for t in threads:
        t.start()
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # two restarts, one graceful, one not
            time.sleep(seconds / 3)
            server.kill(sig)
            time.sleep(0.5)
            server.start()
        time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    elapsed = time.monotonic() - began
    total = sum(published.values())
    assert pub._thread is not None and pub._thread.is_alive(), "the publisher thread died"
    wait_for(lambda: pub.queue_depth == 0 and pub.connected, timeout=120, message="drain")
    pub.stop()
    threading.excepthook = previous_hook
    c = server.client()
    for sid, n in published.items():
        entries = read_all(c, keys, sid)
        seqs = [e.batch.seq for e in entries]
        assert seqs == list(range(len(seqs))), f"{sid}: gaps or duplicates in {len(seqs)} batches"
        assert sum(len(e.batch) for e in entries) == n, f"{sid}: {n} published"
        idx = np.array([e.batch.first_index for e in entries])
        assert np.array_equal(idx, np.arange(len(entries)) * BATCH), f"{sid}: sample numbering"
        for e in entries[:: max(1, len(entries) // 5)]:
            assert e.batch.values[0, 0] == e.batch.first_index, f"{sid}: values of batch {e.batch.seq}"
    assert not deaths, deaths
    assert pub.stats["thread_errors"] == 0 and pub.stats["duplicate_batches"] >= 0
    print(f"stress: {total / elapsed / 1e6:.2f} M samples/s for {elapsed:.0f} s into {len(published)} sensors "
          f"(announced at runtime), 2 Redis restarts, {pub.stats['resent_batches']} batches re-sent, "
          f"{pub.stats['spilled_batches']} spilled, 0 lost, 0 duplicated, 0 dead threads")  # fmt: skip
    assert len(published) > 2 * PRODUCERS


def test_sensors_announced_while_publishing_through_two_redis_restarts(
    private_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    _run(private_server, keys, tmp_path, 12.0)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_soak_sensors_announced_while_publishing_through_two_redis_restarts(
    private_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    _run(private_server, keys, tmp_path, 180.0)


def test_publisher_survives_sensors_added_during_every_send(
    private_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    """The race of the issue given chances: a thousand sensors, a producer adding a new one with
    every other batch and a tiny GIL switch interval, so inserts land while the publisher thread
    walks its per-sensor table (a RuntimeError there ended the thread for good). Every new sensor
    is anchored to its stream before its first append; every sample arrives."""
    import sys

    deaths: list[str] = []
    previous_hook, previous_interval = threading.excepthook, sys.getswitchinterval()
    threading.excepthook = lambda args: deaths.append(str(args.exc_value))
    pub = StreamPublisher(private_server.url, keys, "race", tmp_path / "spill", warm_seconds=3600.0)
    pub.add_sensors([SensorInfo(f"r-{i}", "signal", "r") for i in range(1000)])
    pub.start()
    one = np.zeros((1, 1), np.float32)
    published: Counter[str] = Counter()
    sys.setswitchinterval(1e-6)
    try:
        deadline = time.monotonic() + 2.0
        n = 0
        while time.monotonic() < deadline:
            sid = f"new-{n}" if n % 2 else f"r-{n % 1000}"
            t = np.array([time.time()])
            pub.publish(SampleBatch(sid, "signal", t, one, t))
            published[sid] += 1
            n += 1
    finally:
        sys.setswitchinterval(previous_interval)
    assert pub._thread is not None and pub._thread.is_alive(), f"publisher thread died: {deaths}"
    wait_for(lambda: pub.queue_depth == 0, timeout=120, message="drain")
    pub.stop()
    threading.excepthook = previous_hook
    assert not deaths and pub.stats["thread_errors"] == 0
    assert pub.stats["published_samples"] == sum(published.values())
