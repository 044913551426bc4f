"""Live-plot benchmark: the operator window drawing N channels at R Hz, against a naive plot.

    python -m benchmarks.gui --channels 32 --rate 512 --seconds 20

A private redis-server and a node child streaming ``sim:eeg?channels=N&rate=R`` at attention
high; the real window (offscreen unless a display is set) plots the EEG sensor. Two phases of
``--seconds`` each, in this process, on the same stream:

1. **ours**: :class:`LivePlotPanel` (ring buffers, 60 Hz timer; a stacked plot is a picture of
   pixel columns, each frame writes only the columns new samples fall in and blits the rest);
2. **naive baseline**: the same curves fed by appending every batch to growing arrays and
   calling ``setData`` with all of them on every batch (no downsampling, no clipping).

Reported per phase: frames/s actually painted, GUI-process CPU (% of one core) and
data-to-pixel latency percentiles: host arrival time of new data → the first paint that
shows it (node batching, Redis, the GUI's read, the next frame).
Targets (ours): ≥ 60 fps, ≤ 25 % of one core, p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

import numpy as np
import psutil


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gui", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--rate", type=float, default=512.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("SENSORIUM_DATA_DIR", tempfile.mkdtemp(prefix="sensorium-bench-gui-"))

    import pyqtgraph as pg
    import qasync
    from PySide6 import QtCore, QtWidgets

    from sensorium_desktop.bus.connection import open_endpoint
    from sensorium_desktop.bus.keys import Keys
    from sensorium_desktop.ui.app import make_app
    from sensorium_desktop.ui.main_window import MainWindow
    from sensorium_desktop.viewmodel.app import AppModel

    from .lab import node_process

    prefix = "benchgui"
    endpoint = open_endpoint(None, prefix)
    device = f"sim:eeg?channels={args.channels}&rate={args.rate:g}"
    node = node_process(
        endpoint.url, prefix, [device], None, "--attention", "high", "--no-sync-worker", stdout=None, stderr=None
    )
    app = make_app()
    settings = QtCore.QSettings(tempfile.mktemp(suffix=".ini"), QtCore.QSettings.Format.IniFormat)
    model = AppModel(endpoint.url, Keys(prefix), "bench-gui")
    win = MainWindow(model, settings=settings)
    win.resize(1600, 1000)
    win.show()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    proc = psutil.Process()
    results: dict[str, dict[str, float]] = {}
    sid = "sim-eeg-eeg"

    class PaintProbe(QtCore.QObject):
        """Counts paints of the plot viewport and the sample time shown at each paint."""

        def __init__(self, target: QtWidgets.QWidget, newest: object) -> None:
            super().__init__()
            self.newest = newest
            self.paints = 0
            self.latency: list[float] = []
            self.shown: float | None = None
            target.installEventFilter(self)

        def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:
            if ev.type() == QtCore.QEvent.Type.Paint:
                t = self.newest()  # type: ignore[operator]
                if t is not None:
                    self.paints += 1
                    if t != self.shown:  # the first paint that shows new data
                        self.shown = t
                        self.latency.append(time.time() - t)
            return False

    async def wait_sensor() -> None:
        deadline = time.time() + 30
        while model.devices.sensor(sid) is None:
            if time.time() > deadline:
                raise SystemExit("bench-gui: the EEG sensor never appeared (is the node running?)")
            await asyncio.sleep(0.2)

    async def phase(name: str, newest: object, viewport: QtWidgets.QWidget) -> None:
        probe = PaintProbe(viewport, newest)
        await asyncio.sleep(2.0)  # warm up: history back-fill, first layouts
        probe.paints, probe.latency = 0, []
        proc.cpu_percent(None)
        t0 = time.time()
        await asyncio.sleep(args.seconds)
        cpu = proc.cpu_percent(None)
        dt = time.time() - t0
        lat = np.asarray(probe.latency[len(probe.latency) // 10 :]) * 1e3 if probe.latency else np.array([np.nan])
        results[name] = {"fps": probe.paints / dt, "cpu": cpu, "p50": float(np.percentile(lat, 50)),
                         "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99))}  # fmt: skip
        viewport.removeEventFilter(probe)

    async def run() -> None:
        runner = asyncio.ensure_future(model.run())
        await wait_sensor()
        # ours
        win.plot_sensors([sid])

        def newest_plotted() -> float | None:
            sub = model.live.subs.get(sid)
            return sub.last_arrival or None if sub is not None else None

        await phase("ours", newest_plotted, win.plots.graphics.viewport())
        # naive: a plain PlotWidget fed on every batch with everything so far
        win.plot_sensors([])
        info = model.devices.sensor(sid)
        model.live.subscribe(info, "naive")
        naive = pg.PlotWidget(background="w")
        win.plot_area.layout().addWidget(naive)
        curves = [naive.plot(pen=pg.mkPen("#4e79a7")) for _ in range(args.channels)]
        state = {"t": np.empty(0), "v": np.empty((0, args.channels)), "seen": -np.inf, "arrival": np.nan}

        def on_update(changed: set[str]) -> None:
            if sid not in changed:
                return
            t, v = model.live.subs[sid].ring.latest(state["seen"] + 1e-9 if np.isfinite(state["seen"]) else None)
            if not t.size:
                return
            state["seen"] = float(t[-1])
            state["arrival"] = model.live.subs[sid].last_arrival
            state["t"] = np.append(state["t"], t)
            state["v"] = np.append(state["v"], v, axis=0)
            for ch, curve in enumerate(curves):
                curve.setData(state["t"] - state["t"][0], state["v"][:, ch])

        model.live.updated.connect(on_update)
        await phase("naive", lambda: state["arrival"] if np.isfinite(state["arrival"]) else None, naive.viewport())
        model.shutdown()
        await runner

    try:
        with loop:
            loop.run_until_complete(run())
    finally:
        node.terminate()
        node.wait(20)
        endpoint.close()
    ours, naive = results["ours"], results["naive"]
    print(f"bench-gui: {args.channels} ch x {args.rate:g} Hz, {args.seconds:g} s per phase, "
          f"{QtWidgets.QApplication.platformName()} platform")  # fmt: skip
    for name, r in results.items():
        print(f"  {name:<6} {r['fps']:6.1f} frames/s  CPU {r['cpu']:5.1f} % of a core  "
              f"data-to-pixel p50 {r['p50']:6.1f} / p95 {r['p95']:6.1f} / p99 {r['p99']:6.1f} ms")  # fmt: skip
    fps_ratio = ours["fps"] / max(naive["fps"], 1e-9)
    cpu_ratio = ours["cpu"] / max(naive["cpu"], 1e-9)
    lat_ratio = ours["p95"] / max(naive["p95"], 1e-9)
    print(f"  ratios ours/naive: fps {fps_ratio:.2f}x, CPU {cpu_ratio:.2f}x, p95 latency {lat_ratio:.2f}x")
    ok = ours["fps"] >= 60 and ours["cpu"] <= 25 and ours["p95"] <= 50
    print(f"[{'PASS' if ok else 'MISS'}] ours: >= 60 fps, <= 25 % of one core, p95 <= 50 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
