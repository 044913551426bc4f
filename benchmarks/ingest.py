"""Network ingest under load: Sensocto clients over WebSocket into a real node and Redis.

    python -m benchmarks.ingest [--seconds 10] [--clients 100] [--rate 50]

1. **fan-in**: ``--clients`` clients (one sensor each) send one ``measurement`` at ``--rate``
   Hz, plus one client streaming a 512 Hz ECG as ``measurements_batch`` of 32-value lists
   every 62.5 ms; afterwards every stream in Redis is checked sample for sample against what
   was sent (zero loss), and the node's CPU (one core = 100 %) is reported.
2. **batch throughput**: one client sends ``measurements_batch`` frames of 100 heartrate
   measurements as fast as the endpoint takes them; measurements/s per core of the node,
   next to a raw ``websockets`` echo server (same frames, one JSON parse each, no validation,
   no Redis) measured in this run: the ratio says what validation, batching and Redis cost.

The node runs as a subprocess (``sensorium node --ingest``) against a private redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import redis
import websockets

from benchmarks.lab import free_port, node_process, start_redis
from benchmarks.pipeline import cpu_seconds
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.streams import read_all

BATCH = 100


def frame(topic: str, event: str, payload: object, ref: int) -> str:
    return json.dumps({"topic": topic, "event": event, "payload": payload, "ref": str(ref)})


async def join(ws: websockets.ClientConnection, sensor: str) -> str:
    topic = f"sensocto:sensor:{sensor}"
    await ws.send(frame(topic, "phx_join", {
        "connector_id": "bench", "connector_name": "bench", "sensor_id": sensor, "sensor_name": sensor,
        "sensor_type": "bench", "attributes": [], "sampling_rate": 50, "batch_size": 1,
        "bearer_token": ""}, 1))  # fmt: skip
    while True:
        msg = json.loads(await ws.recv())
        if msg["event"] == "phx_reply":
            assert msg["payload"]["status"] == "ok", msg
            return topic


async def drain(ws: websockets.ClientConnection) -> None:
    """Read pushes (backpressure configs) so the client is never a slow reader."""
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass


async def fan_in(url: str, clients: int, rate: float, seconds: float) -> dict[str, int]:
    """Returns samples sent per client sensor id."""
    sent: dict[str, int] = {}
    start = time.monotonic() + 1.0

    async def scalar(i: int) -> None:
        sensor = f"hr{i:03d}"
        async with websockets.connect(url, max_queue=None) as ws:
            topic = await join(ws, sensor)
            reader = asyncio.create_task(drain(ws))
            n = int(seconds * rate)
            await asyncio.sleep(max(0.0, start - time.monotonic()) + (i / clients) / rate)
            t0 = time.monotonic()
            for k in range(n):
                hr = {"attribute_id": "heartrate", "payload": {"bpm": 40 + k % 100}, "timestamp": 1_000 + k * 20}
                await ws.send(frame(topic, "measurement", hr, k + 2))
                await asyncio.sleep(max(0.0, t0 + (k + 1) / rate - time.monotonic()))
            sent[sensor] = n
            await asyncio.sleep(0.5)
            reader.cancel()

    async def ecg() -> None:
        sensor = "ecg512"
        async with websockets.connect(url, max_queue=None) as ws:
            topic = await join(ws, sensor)
            reader = asyncio.create_task(drain(ws))
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            t0, n = time.monotonic(), int(seconds * 16)
            for k in range(n):
                values = [round(((k * 32 + j) % 512) / 512, 4) for j in range(32)]
                m = {"attribute_id": "ecg", "timestamp": 1_000 + k * 62.5,
                     "payload": {"values": values, "sample_rate": 512}}
                await ws.send(frame(topic, "measurements_batch", [m], k + 2))
                await asyncio.sleep(max(0.0, t0 + (k + 1) / 16 - time.monotonic()))
            sent[sensor] = n * 32
            await asyncio.sleep(0.5)
            reader.cancel()

    await asyncio.gather(*(scalar(i) for i in range(clients)), ecg())
    return sent


async def blast(url: str, seconds: float) -> tuple[int, float]:
    """Batch frames for ``seconds``, then a ping whose reply says every frame was taken;
    (measurements, s until that reply)."""
    async with websockets.connect(url, max_queue=None) as ws:
        topic = await join(ws, "blast")
        payload = [{"attribute_id": "heartrate", "payload": {"bpm": 60 + k % 50}, "timestamp": 1_000 + k * 10}
                   for k in range(BATCH)]  # fmt: skip
        done = asyncio.get_running_loop().create_future()

        async def read() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["event"] == "phx_reply" and msg["ref"] == "end" and not done.done():
                    done.set_result(None)

        reader = asyncio.create_task(read())
        t0 = time.monotonic()
        frames = 0
        while time.monotonic() - t0 < seconds:
            await ws.send(frame(topic, "measurements_batch", payload, frames + 2))
            frames += 1
        await ws.send(json.dumps({"topic": topic, "event": "ping", "payload": {}, "ref": "end"}))
        await asyncio.wait_for(done, 300)
        elapsed = time.monotonic() - t0
        reader.cancel()
        return frames * BATCH, elapsed


def echo_server(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """The baseline: a websockets server that parses each frame once and echoes it."""

    async def handler(ws: websockets.ServerConnection) -> None:
        async for msg in ws:
            json.loads(msg)
            await ws.send(msg)

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", port, max_size=1 << 22):
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


async def echo_blast(url: str, seconds: float) -> int:
    payload = [{"attribute_id": "heartrate", "payload": {"bpm": 60 + k % 50}, "timestamp": 1_000 + k * 10}
               for k in range(BATCH)]  # fmt: skip
    async with websockets.connect(url, max_queue=None) as ws:
        reader = asyncio.create_task(drain(ws))
        t0, frames = time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            await ws.send(frame("sensocto:sensor:echo", "measurements_batch", payload, frames))
            frames += 1
        await asyncio.sleep(0.2)
        reader.cancel()
        return frames * BATCH


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate", type=float, default=50.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server = start_redis(tmp)
    prefix = f"b{uuid.uuid4().hex[:8]}"
    port = free_port()
    node = node_process(server.url, prefix, [], tmp / "data", "--no-sync-worker", "--rcs-port", "0", "--pupil-port",
                        "0", "--ingest", f"127.0.0.1:{port}", log_level="ERROR", stdout=None, stderr=None)  # fmt: skip
    url = f"ws://127.0.0.1:{port}/socket/websocket"
    ok = True
    try:
        time.sleep(3.0)
        c = redis.Redis.from_url(server.url)
        keys = Keys(prefix)
        cpu0, t0 = cpu_seconds(node.pid), time.monotonic()
        sent = asyncio.run(fan_in(url, args.clients, args.rate, args.seconds))
        elapsed = time.monotonic() - t0
        cpu_fan = (cpu_seconds(node.pid) - cpu0) / elapsed * 100
        time.sleep(2.0)
        missing = {}
        for sensor, n in sent.items():
            attr = "ecg" if sensor == "ecg512" else "heartrate"
            got = sum(len(e.batch) for e in read_all(c, keys, f"ws-{sensor}-{attr}"))
            if got != n:
                missing[sensor] = n - got
        total = sum(sent.values())
        print(f"fan-in: {args.clients} clients x {args.rate:g} Hz + 1 ECG 512 Hz for {args.seconds:g} s: "
              f"{total} samples sent, {total - sum(missing.values())} in Redis, "
              f"{'0 lost' if not missing else f'LOST {missing}'}; node CPU {cpu_fan:.0f} % of one core")  # fmt: skip
        ok &= not missing
        cpu0 = cpu_seconds(node.pid)
        measurements, blast_s = asyncio.run(blast(url, args.seconds / 2))
        cpu_blast = cpu_seconds(node.pid) - cpu0
        stored, deadline = 0, time.monotonic() + 60
        while stored < measurements and time.monotonic() < deadline:  # the publisher's last batches
            time.sleep(0.5)
            stored = sum(len(e.batch) for e in read_all(c, keys, "ws-blast-heartrate"))
        ok &= stored == measurements
        ours = measurements / max(cpu_blast, 1e-9)
        echo_port = free_port()
        ready = multiprocessing.Event()
        echo = multiprocessing.Process(target=echo_server, args=(echo_port, ready), daemon=True)
        echo.start()
        ready.wait(10)
        echo_cpu0 = psutil.Process(echo.pid).cpu_times()
        echoed = asyncio.run(echo_blast(f"ws://127.0.0.1:{echo_port}", args.seconds / 2))
        echo_cpu1 = psutil.Process(echo.pid).cpu_times()
        echo.terminate()
        echo_cpu = (echo_cpu1.user + echo_cpu1.system) - (echo_cpu0.user + echo_cpu0.system)
        baseline = echoed / max(echo_cpu, 1e-9)
        print(f"batches of {BATCH}: {measurements / blast_s:,.0f} measurements/s taken in {blast_s:.1f} s, "
              f"{ours:,.0f} measurements/s per core of the node ({stored} stored, "
              f"{'0 lost' if stored == measurements else f'{measurements - stored} LOST'})")  # fmt: skip
        print(f"baseline websockets echo (parse + echo only): {baseline:,.0f} measurements/s per core; "
              f"ingest/echo ratio {ours / baseline:.2f}")  # fmt: skip
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
