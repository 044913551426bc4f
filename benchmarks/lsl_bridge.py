"""LSL bridge latency: a sample's arrival at the node → the LSL consumer receiving it.

    python -m benchmarks.lsl_bridge [--seconds 20]

A ``sensorium node --device sim:chest`` process streams into a private redis-server at its
default attention; ``LslOutletBridge`` publishes ``sim-chest-ecg`` (512 Hz, 16-sample
packets) to LSL on loopback and a ``pylsl`` inlet in this process pulls it. Each sample's
latency is the host time the inlet returned it minus the host time the node stamped its
arrival (``t_arrival``, read back from Redis; the k-th sample pulled is the k-th published
after the bridge started). Two runs in the same process: the bridge as shipped (holds its
sensors at ``high`` attention) and the same bridge without the hold (the baseline, what
``lsl-outlet`` did before: the sensors' default attention decides the batching).

Targets: median <= 50 ms, p99 <= 150 ms with the hold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import redis

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.backpressure import Attention
from sensorium_desktop.core.hostclock import host_time
from sensorium_desktop.worker.lsl_outlet import LslOutletBridge

from .lab import node_process, start_redis

SENSOR = "sim-chest-ecg"


def measure(url: str, keys: Keys, seconds: float, attention: Attention | None) -> np.ndarray:
    """Latencies (s) of every ECG sample bridged during ``seconds``."""
    c = redis.Redis.from_url(url)
    stop = threading.Event()
    bridge = LslOutletBridge(url, keys, [SENSOR], attention=attention)
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    found = pylsl.resolve_bypred(f"source_id='sensorium:{SENSOR}'", 1, 10.0)
    if not found:
        raise RuntimeError("the bridge's outlet did not appear on LSL")
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(5.0)
    start_pos = bridge.positions[SENSOR]
    time.sleep(2.5)  # the hold (or its absence) reaches the node's batcher
    inlet.flush()
    received: list[float] = []
    values: list[np.ndarray] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        chunk, stamps = inlet.pull_chunk(timeout=0.0, max_samples=4096)  # what is there now
        if stamps:
            received.extend([host_time()] * len(stamps))
            values.append(np.asarray(chunk, dtype=np.float32)[:, 0])
        else:
            time.sleep(0.001)  # a consumer polling every millisecond
    stop.set()
    thread.join(5)
    entries = [e for e in read_all(c, keys, SENSOR) if e.stream_id > start_pos]
    arrivals = np.concatenate([e.batch.t_arrival for e in entries])
    published = np.concatenate([e.batch.values[:, 0] for e in entries]).astype(np.float32)
    got = np.concatenate(values)
    # the k-th sample pulled is published sample (offset + k): find the pulled values' start
    probe = got[:16]
    windows = np.lib.stride_tricks.sliding_window_view(published, probe.size)
    hits = np.flatnonzero((windows == probe).all(axis=1))
    if hits.size != 1:
        raise RuntimeError(f"cannot align the pulled samples with the published ones ({hits.size} matches)")
    k0 = int(hits[0])
    n = min(got.size, published.size - k0)
    if not np.array_equal(got[:n], published[k0 : k0 + n]):
        raise RuntimeError("the bridge lost or reordered samples")
    return np.array(received[:n]) - arrivals[k0 : k0 + n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-lsl-"))
    cfg = work / "lsl_api.cfg"
    cfg.write_text(f"[lab]\nSessionID = bench-{uuid.uuid4().hex}\n")
    os.environ["LSLAPICFG"] = str(cfg)  # before liblsl reads its configuration
    server = start_redis(work)
    keys = Keys(f"bench{uuid.uuid4().hex[:6]}")
    node = node_process(server.url, keys.prefix, ["sim:chest"], work / "data", "--no-sync-worker")
    try:
        c = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 30
        while c.xlen(keys.stream(SENSOR)) < 3:
            if time.monotonic() > deadline:
                raise RuntimeError("the node did not stream")
            time.sleep(0.1)
        rows = []
        for label, attention in (("bridge (holds high)", Attention.HIGH), ("baseline (no hold)", None)):
            lat = measure(server.url, keys, args.seconds, attention) * 1e3
            rows.append((label, lat))
            time.sleep(3.0)  # the hold expires or is released
    finally:
        node.terminate()
        node.wait(20)
        server.stop()
    print("| run | samples | median ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for label, lat in rows:
        p = np.percentile(lat, [50, 90, 99])
        print(f"| {label} | {lat.size} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {lat.max():.1f} |")
    ours, base = rows[0][1], rows[1][1]
    med, p99 = float(np.median(ours)), float(np.percentile(ours, 99))
    print(f"\nmedian {float(np.median(base)) / med:.1f}x lower than the baseline measured in this run")
    ok = med <= 50 and p99 <= 150
    print(f"[{'PASS' if med <= 50 else 'FAIL'}] median <= 50 ms ({med:.1f})")
    print(f"[{'PASS' if p99 <= 150 else 'FAIL'}] p99 <= 150 ms ({p99:.1f})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
