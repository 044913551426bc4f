"""The operator's window with the default simulated lab + a 32-channel EEG, as an operator runs it.

    python -m benchmarks.window [--seconds 30] [--warmup 15] [--no-profile]

A private redis-server; ``sensorium gui --simulate --device sim:eeg?channels=32&rate=512
--select sim-eeg-eeg`` (offscreen unless a display is set) starts its node (and the node its
sync worker) exactly as the window does for an operator. Measured over ``--seconds`` after
``--warmup``: CPU (% of one core) of the window, node, sync worker and redis-server, and
their RSS. The window is profiled with py-spy meanwhile (when it is installed): the share
of the window's samples spent in each panel, view model and in Qt's paint/event loop,
so a cost shows where it is.

Baseline in the same run: the same window watching the same Redis with no node (``--no-node``):
what the window costs with nothing to show.

Goals (issue 30): window ≤ 30 %, node ≤ 20 %, worker ≤ 10 % of a core.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .lab import start_redis

EEG = "sim:eeg?channels=32&rate=512"


def _cpu_s(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def _rss_mb(p: psutil.Process) -> float:
    try:
        return p.memory_info().rss / 1e6
    except psutil.Error:
        return 0.0


def _window(url: str, data: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(data), SENSORIUM_REDIS_URL=url)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    cmd = [sys.executable, "-m", "sensorium_desktop", "gui", "--redis-url", url, "--prefix", "bench", "--rcs-port",
           "0", "--log-level", "WARNING", *args]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _processes(window: psutil.Process) -> dict[str, psutil.Process]:
    """The window and, by their command lines, its node and the node's sync worker."""
    out = {"window": window}
    for child in window.children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if " node " in f" {cmd} ":
            out["node"] = child
        elif "spawn_main" in cmd:
            out["worker"] = child
    return out


def _profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    cmd = [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50", "-f", "raw", "-o", str(out),
           "--nonblocking"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame_name(frame: str) -> str:
    """``function (package/module)`` of a py-spy raw frame ``function (path:line)``."""
    func, _, where = frame.partition(" (")
    path = where.split(":", 1)[0]
    short = path.split("site-packages/", 1)[-1].split("sensorium_desktop/", 1)[-1]
    return f"{func} ({short})"


def where_time_goes(raw: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]], float]:
    """From a py-spy raw profile: the share (%) of samples under each of our ui/viewmodel
    modules (inclusive, so nested ones overlap), the top functions by own time, and the share
    spent waiting for events (idle)."""
    by_module: collections.Counter[str] = collections.Counter()
    by_leaf: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        leaf = _frame_name(frames[-1])
        if leaf.startswith(("exec (", "select (", "poll (", "wait (", "processEvents (")):
            idle += count
        by_leaf[leaf] += count
        seen = set()
        for frame in frames:
            if "sensorium_desktop/" in frame:
                path = frame.split("sensorium_desktop/", 1)[1].split(":", 1)[0]
                if path.startswith(("ui/panels/", "viewmodel/")) or path in ("ui/main_window.py", "ui/widgets.py"):
                    seen.add(path.removesuffix(".py"))
            elif "pyqtgraph/" in frame and " paint " in f" {frame.split(' (')[0]} ":
                seen.add("pyqtgraph paint")
        by_module.update(dict.fromkeys(seen, count))
    def share(c: collections.Counter[str], k: int) -> list[tuple[str, float]]:
        return [(m, 100.0 * v / max(total, 1)) for m, v in c.most_common(k)]

    return share(by_module, 14), share(by_leaf, 12), 100.0 * idle / max(total, 1)


def phase(url: str, data: Path, warmup: float, seconds: float, profile: Path | None, *args: str) -> dict[str, float]:
    proc = _window(url, data, *args)
    try:
        window = psutil.Process(proc.pid)
        time.sleep(warmup)
        procs = _processes(window)
        spy = _profile(proc.pid, seconds, profile) if profile is not None else None
        before = {k: _cpu_s(p) for k, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        out = {f"cpu_{k}": 100.0 * (_cpu_s(p) - before[k]) / dt for k, p in procs.items()}
        out |= {f"rss_{k}": _rss_mb(p) for k, p in procs.items()}
        if spy is not None:
            spy.wait(seconds + 30)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.window", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-window-"))
    server = start_redis(tmp / "redis")
    redis_proc = psutil.Process(server.proc.pid) if server.proc else None
    try:
        idle = phase(server.url, tmp / "idle", 5.0, args.seconds / 2, None, "--no-node")
        r0 = _cpu_s(redis_proc) if redis_proc else 0.0
        t0 = time.monotonic()
        raw = None if args.no_profile else tmp / "window.txt"
        lab = phase(server.url, tmp / "lab", args.warmup, args.seconds, raw, "--simulate", "--device", EEG,
                    "--select", "sim-eeg-eeg")  # fmt: skip
        redis_cpu = 100.0 * ((_cpu_s(redis_proc) if redis_proc else 0.0) - r0) / (time.monotonic() - t0)
    finally:
        server.stop()
    print(f"the operator's window, default simulated lab + 32 ch × 512 Hz EEG plotted, {args.seconds:.0f} s:")
    print(f"{'process':<14}{'CPU % of a core':>16}{'RSS MB':>9}{'goal':>8}")
    goals = {"window": 30, "node": 20, "worker": 10}
    for k in ("window", "node", "worker"):
        print(f"{k:<14}{lab.get(f'cpu_{k}', float('nan')):>16.1f}{lab.get(f'rss_{k}', float('nan')):>9.0f}"
              f"{'≤ ' + str(goals[k]):>8}")  # fmt: skip
    print(f"{'redis-server':<14}{redis_cpu:>16.1f}   (whole phase, incl. warm-up)")
    print(f"baseline, same run: the window with no node (nothing to show) {idle.get('cpu_window', 0):.1f} %")
    verdict = all(lab.get(f"cpu_{k}", 1e9) <= g for k, g in goals.items())
    print(f"goals {'MET' if verdict else 'MISSED'}")
    if raw is not None and raw.exists():
        modules, leaves, waiting = where_time_goes(raw)
        print(f"where the window's time goes (py-spy, % of its samples; waiting for events {waiting:.0f} %):")
        for module, share in modules:
            print(f"  {share:5.1f} %  {module} (inclusive)")
        print("  by own time:")
        for leaf, share in leaves:
            print(f"  {share:5.1f} %  {leaf}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
