"""How each cost grows with the work, and whether memory stays flat over a long recording.

    python -m benchmarks.growth [--sensors 10,100,500] [--rate 100] [--seconds 20]
                                [--soak-minutes 0] [--out docs/growth]

1. **growth**: for each count N, a node with N simulated one-channel sensors (``--rate`` Hz
   each) records all of them while the operator window (offscreen, in this process) shows
   the lab; measured over ``--seconds``: samples/s published, CPU (% of one core) of node,
   sync worker, redis-server and window, their RSS, and the window's refresh time (Redis →
   models → panels, p50/p95). The baseline in the same run is the smallest N: each cost is
   also printed per sensor, so linear growth shows as a flat column.
2. **soak** (``--soak-minutes M``): the default simulated lab + a 32-channel 512 Hz EEG recorded
   for M minutes; node and worker RSS every 15 s, first and last minute compared.

Pictures (matplotlib, Agg) go to ``--out``: ``growth.png`` and ``soak.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import redis

from sensorium_desktop.bus.keys import Keys

from .lab import RedisServer, node_process, start_redis


def _proc(pid: int | None) -> psutil.Process | None:
    try:
        return psutil.Process(pid) if pid else None
    except psutil.NoSuchProcess:
        return None


def _cpu(p: psutil.Process | None) -> float:
    try:
        t = p.cpu_times() if p else None
        return (t.user + t.system) if t else 0.0
    except psutil.NoSuchProcess:
        return 0.0


def _rss_mb(p: psutil.Process | None) -> float:
    try:
        return p.memory_info().rss / 1e6 if p else float("nan")
    except psutil.NoSuchProcess:
        return float("nan")


def start_node(url: str, prefix: str, devices: list[str], data: Path) -> subprocess.Popen:
    return node_process(url, prefix, devices, data, "--rcs-port", "0", "--pupil-port", "0")


def wait_sensors(c: redis.Redis, keys: Keys, n: int, timeout: float) -> list[str]:
    from sensorium_desktop.bus.registry import list_sensors

    deadline = time.monotonic() + timeout
    sensors: list[str] = []
    while time.monotonic() < deadline:
        sensors = [s.sensor_id for s in list_sensors(c, keys)]
        if len(sensors) >= n and c.get(keys.worker_telemetry("bench")):
            return sensors
        time.sleep(0.5)
    raise RuntimeError(f"{len(sensors)} of {n} sensors registered after {timeout:.0f} s")


def record(url: str, keys: Keys, sensors: list[str], directory: Path) -> str:
    from sensorium_desktop.bus.connection import async_client
    from sensorium_desktop.bus.sessions import Session, new_session_id, save_session, start_recording

    async def go() -> str:
        c = async_client(url)
        try:
            s = Session(new_session_id(), "bench", task="growth", directory=str(directory))
            s.sensors = sensors
            await save_session(c, keys, s)
            await start_recording(c, keys, s, "bench")
            return s.session_id
        finally:
            await c.aclose()

    return asyncio.run(go())


def stop(url: str, keys: Keys, session_id: str) -> dict[str, str]:
    from sensorium_desktop.bus.connection import async_client
    from sensorium_desktop.bus.sessions import list_sessions, recording_status, stop_recording

    async def go() -> dict[str, str]:
        c = async_client(url)
        try:
            s = next(x for x in await list_sessions(c, keys) if x.session_id == session_id)
            await stop_recording(c, keys, s)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                st = await recording_status(c, keys, session_id)
                if st.get("state") in ("complete", "failed"):
                    return st
                await asyncio.sleep(0.2)
            return await recording_status(c, keys, session_id)
        finally:
            await c.aclose()

    return asyncio.run(go())


class Window:
    """The operator window, offscreen, refreshed as the app's loop does."""

    def __init__(self, url: str, keys: Keys, tmp: Path) -> None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6 import QtCore, QtWidgets

        from sensorium_desktop.ui.main_window import MainWindow
        from sensorium_desktop.viewmodel.app import AppModel

        self.app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        settings = QtCore.QSettings(str(tmp / "gui.ini"), QtCore.QSettings.Format.IniFormat)
        self.model = AppModel(url, keys, "bench-gui")
        self.model.sessions.recorder_node = "bench"
        self.win = MainWindow(self.model, settings=settings)
        self.win.resize(1366, 768)
        self.win.show()
        self.loop = asyncio.new_event_loop()
        self.url = url

    def refresh(self) -> float:
        """One refresh cycle; its duration (s)."""
        from PySide6 import QtWidgets

        from sensorium_desktop.bus.connection import async_client

        async def once() -> None:
            c = async_client(self.url)
            try:
                await self.model.refresh(c)
                await self.model.live.read_once(c, block_ms=5)
                await self.model.lab.refresh()
            finally:
                await c.aclose()

        t = time.perf_counter()
        self.loop.run_until_complete(once())
        QtWidgets.QApplication.processEvents()
        return time.perf_counter() - t

    def close(self) -> None:
        self.win.close()
        self.model.shutdown()
        self.loop.close()


def growth_step(server: RedisServer, n: int, rate: float, seconds: float, tmp: Path) -> dict[str, float]:
    prefix = f"g{n}"
    keys = Keys(prefix)
    devices = [f"sim:eeg?channels=1&rate={rate:g}&participant={k + 1}&packet=10" for k in range(n)]
    node = start_node(server.url, prefix, devices, tmp / prefix)
    c = redis.Redis.from_url(server.url)
    window = None
    try:
        sensors = wait_sensors(c, keys, n, 60 + n * 0.2)
        tele = json.loads(c.get(keys.telemetry("bench")) or "{}")
        procs = {"node": _proc(node.pid), "worker": _proc((tele.get("state") or {}).get("worker_pid")),
                 "redis": _proc(int(c.info("server")["process_id"])), "window": psutil.Process()}  # fmt: skip
        session = record(server.url, keys, sensors, tmp / prefix / "rec")
        window = Window(server.url, keys, tmp)
        for _ in range(5):
            window.refresh()
        tele = json.loads(c.get(keys.telemetry("bench")) or "{}")
        procs["worker"] = procs["worker"] or _proc((tele.get("state") or {}).get("worker_pid"))
        pub0, tel_t0 = (tele.get("publisher") or {}).get("published_samples", 0), float(tele.get("time", 0) or 0)
        cpu0 = {k: _cpu(p) for k, p in procs.items()}
        t0 = time.monotonic()
        refresh: list[float] = []
        while time.monotonic() - t0 < seconds:
            refresh.append(window.refresh())
            time.sleep(max(0.0, 0.25 - refresh[-1]))  # the app refreshes about 4× a second
        elapsed = time.monotonic() - t0
        cpu = {k: (_cpu(p) - cpu0[k]) / elapsed * 100 for k, p in procs.items()}
        rss = {k: _rss_mb(p) for k, p in procs.items()}
        tele = json.loads(c.get(keys.telemetry("bench")) or "{}")
        tel_span = float(tele.get("time", 0) or 0) - tel_t0  # between the two telemetry writes
        published = ((tele.get("publisher") or {}).get("published_samples", 0) - pub0) / (
            tel_span if tel_span > 1.0 else elapsed)
        status = stop(server.url, keys, session)
        return {"sensors": n, "samples_s": published, **{f"cpu_{k}": v for k, v in cpu.items()},
                **{f"rss_{k}": v for k, v in rss.items()}, "refresh_p50_ms": float(np.percentile(refresh, 50)) * 1e3,
                "refresh_p95_ms": float(np.percentile(refresh, 95)) * 1e3,
                "recorded": float(status.get("samples", 0) or 0), "state": status.get("state", "?")}  # fmt: skip
    finally:
        if window is not None:
            window.close()
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
        for key in c.scan_iter(match=f"{prefix}:*"):
            c.delete(key)


def soak(server: RedisServer, minutes: float, tmp: Path) -> list[tuple[float, float, float]]:
    """(minutes, node RSS MB, worker RSS MB) every 15 s while the lab + EEG are recorded."""
    keys = Keys("soak")
    node = start_node(server.url, "soak", ["sim:lab", "sim:eeg?channels=32&rate=512"], tmp / "soak")
    c = redis.Redis.from_url(server.url)
    try:
        sensors = wait_sensors(c, keys, 14, 120)
        node_p, worker_p = _proc(node.pid), None
        deadline = time.monotonic() + 30
        while worker_p is None and time.monotonic() < deadline:  # the worker reports its pid a little later
            tele = json.loads(c.get(keys.telemetry("bench")) or "{}")
            worker_p = _proc((tele.get("state") or {}).get("worker_pid"))
            time.sleep(0.5)
        session = record(server.url, keys, sensors, tmp / "soak" / "rec")
        t0 = time.monotonic()
        out = []
        while (time.monotonic() - t0) / 60 < minutes:
            out.append(((time.monotonic() - t0) / 60, _rss_mb(node_p), _rss_mb(worker_p)))
            print(f"  soak {out[-1][0]:5.1f} min: node {out[-1][1]:.0f} MB, worker {out[-1][2]:.0f} MB", flush=True)
            time.sleep(15)
        status = stop(server.url, keys, session)
        print(f"  soak recording {status.get('state')}: {status.get('samples')} samples, "
              f"{int(status.get('bytes', 0) or 0) / 1e6:.0f} MB")  # fmt: skip
        return out
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()


def pictures(rows: list[dict[str, float]], soaked: list[tuple[float, float, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    if rows:
        n = [r["sensors"] for r in rows]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for key, label in (("cpu_node", "node"), ("cpu_worker", "sync worker"), ("cpu_redis", "redis-server"),
                           ("cpu_window", "window")):  # fmt: skip
            axes[0].plot(n, [r[key] for r in rows], "o-", label=label)
        axes[0].set(xscale="log", xlabel="simulated sensors", ylabel="CPU, % of one core", title="CPU")
        axes[0].legend(fontsize=8)
        for key, label in (("rss_node", "node"), ("rss_worker", "sync worker"), ("rss_window", "window")):
            axes[1].plot(n, [r[key] for r in rows], "o-", label=label)
        axes[1].set(xscale="log", xlabel="simulated sensors", ylabel="RSS, MB", title="memory")
        axes[1].legend(fontsize=8)
        axes[2].plot(n, [r["refresh_p50_ms"] for r in rows], "o-", label="p50")
        axes[2].plot(n, [r["refresh_p95_ms"] for r in rows], "o-", label="p95")
        axes[2].set(xscale="log", yscale="log", xlabel="simulated sensors", ylabel="ms",
                    title="window refresh (Redis → models → panels)")  # fmt: skip
        axes[2].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "growth.png", dpi=110)
        plt.close(fig)
    if soaked:
        t, node_mb, worker_mb = (np.array(c) for c in zip(*soaked, strict=True))
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.plot(t, node_mb, label="node")
        ax.plot(t, worker_mb, label="sync worker")
        ax.set(xlabel="minutes recording (simulated lab + 32 ch × 512 Hz EEG)", ylabel="RSS, MB",
               title="memory over a long recording")  # fmt: skip
        ax.set_ylim(bottom=0)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "soak.png", dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", default="10,100,500")
    ap.add_argument("--rate", type=float, default=100.0, help="Hz per sensor")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--soak-minutes", type=float, default=0.0)
    ap.add_argument("--out", type=Path, default=None, help="where the pictures go (default: none)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="sensorium-growth-"))
    server = start_redis(tmp)
    rows: list[dict[str, float]] = []
    soaked: list[tuple[float, float, float]] = []
    try:
        counts = [int(v) for v in args.sensors.split(",") if v]
        head = (f"{'sensors':>7} {'samples/s':>10} {'node %':>7} {'worker %':>8} {'redis %':>7} {'window %':>8} "
                f"{'node MB':>7} {'worker MB':>9} {'window MB':>9} {'refresh p50/p95 ms':>18} "
                f"{'node %/sensor':>13}  recording")  # fmt: skip
        print(head, flush=True)
        for n in counts:
            r = growth_step(server, n, args.rate, args.seconds, tmp)
            rows.append(r)
            print(f"{n:>7} {r['samples_s']:>10.0f} {r['cpu_node']:>7.1f} {r['cpu_worker']:>8.1f} "
                  f"{r['cpu_redis']:>7.1f} {r['cpu_window']:>8.1f} {r['rss_node']:>7.0f} {r['rss_worker']:>9.0f} "
                  f"{r['rss_window']:>9.0f} {r['refresh_p50_ms']:>8.1f}/{r['refresh_p95_ms']:<9.1f} "
                  f"{r['cpu_node'] / n:>13.3f}  {r['state']}, {r['recorded']:.0f} samples", flush=True)  # fmt: skip
        if args.soak_minutes > 0:
            soaked = soak(server, args.soak_minutes, tmp)
            first = [s for s in soaked if s[0] <= 1.0] or soaked[:1]
            last = [s for s in soaked if s[0] >= soaked[-1][0] - 1.0]
            print(f"soak: node RSS {np.mean([s[1] for s in first]):.0f} → {np.mean([s[1] for s in last]):.0f} MB, "
                  f"worker {np.mean([s[2] for s in first]):.0f} → {np.mean([s[2] for s in last]):.0f} MB "
                  f"over {soaked[-1][0]:.0f} min")  # fmt: skip
        if args.out is not None:
            pictures(rows, soaked, args.out)
            print(f"pictures in {args.out}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
