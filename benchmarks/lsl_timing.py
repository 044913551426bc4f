"""LSL timing through a recording: an EEG outlet and a Markers outlet stamping each marker
with an EEG sample's own LSL time (as a stimulus PC does) → ``sensorium record`` → XDF →
pyxdf. Equal LSL stamps should come out equal and the EEG should keep its spacing.

    python -m benchmarks.lsl_timing [--seconds 8] [--runs 3]

Each run: 8-channel 250 Hz EEG (channel 0 = sample index) and a Markers outlet (one marker
every 0.2 s on sample k's stamp, value k) in their own LSL session; a private redis-server;
``sensorium record --device lsl:… --device lsl:… --duration S``; ``sensorium export``; pyxdf
with ``dejitter_timestamps=False``. Reported: marker − sample time for equal stamps, the EEG
spacing residual and its rate error — for the export (the LSL clock domain, measured) and,
from the same recording, the baseline that fits each LSL stream's clock from its own
arrival jitter (what every ``lsl:`` stream got before clock domains).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import numpy as np

OUTLETS = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import pylsl

    name, seconds = sys.argv[1], float(sys.argv[2])
    info = pylsl.StreamInfo(name, "EEG", 8, 250.0, pylsl.cf_float32, f"amp-{name}")
    chans = info.desc().append_child("channels")
    for i in range(8):
        ch = chans.append_child("channel")
        ch.append_child_value("label", f"C{i + 1}")
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "EEG")
    info.desc().append_child("acquisition").append_child_value("manufacturer", "TestAmp")
    eeg = pylsl.StreamOutlet(info)
    mk = pylsl.StreamOutlet(pylsl.StreamInfo(f"{name}-markers", "Markers", 1, 0, pylsl.cf_string, f"stim-{name}"))
    print("ready", flush=True)
    t0 = pylsl.local_clock() + 0.05
    k = 0
    end = t0 + seconds
    while pylsl.local_clock() < end:
        due = int((pylsl.local_clock() - t0) * 250.0)
        if due > k:
            idx = np.arange(k, due)
            data = np.zeros((idx.size, 8), dtype=np.float32)
            data[:, 0] = idx
            data[:, 1:] = np.sin(idx / 25.0)[:, None]
            eeg.push_chunk(data, (t0 + idx / 250.0).tolist())
            for j in idx[idx % 50 == 7].tolist():  # a marker every 0.2 s on EEG sample j's own stamp
                mk.push_sample([str(j)], t0 + j / 250.0)
            k = due
        time.sleep(0.004)
    """
)


@dataclasses.dataclass
class LslRun:
    """One recording of the two outlets: where it is and what the outlets were called."""

    name: str
    recording: Path
    xdf: Path
    stderr: str


def record_outlets(work: Path, env: dict[str, str], prefix: str, seconds: float) -> LslRun:
    """Start the outlets in their own LSL session, record them with ``sensorium record``
    and export XDF; raises ``RuntimeError`` with the tool's stderr when a step fails."""
    cfg = work / "lsl_api.cfg"
    cfg.write_text(f"[lab]\nSessionID = sensorium-{uuid.uuid4().hex}\n")
    env = dict(env, LSLAPICFG=str(cfg))
    name = f"EEG{uuid.uuid4().hex[:6]}"
    script = work / "outlets.py"
    script.write_text(OUTLETS)
    cli = [sys.executable, "-m", "sensorium_desktop"]
    outlets = subprocess.Popen([sys.executable, str(script), name, str(seconds + 30)], env=env, stdout=subprocess.PIPE,
                               text=True)  # fmt: skip
    try:
        if outlets.stdout is None or outlets.stdout.readline().strip() != "ready":
            raise RuntimeError("the LSL outlets did not start")
        out = work / f"rec-{name}"
        run = subprocess.run([*cli, "record", "--prefix", prefix, "--device", f"lsl:{name}", "--device",
                              f"lsl:{name}-markers", "--duration", str(seconds), "--out", str(out)],
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"record failed: {run.stderr[-3000:]}")
        xdf = work / f"{name}.xdf"
        exp = subprocess.run([*cli, "export", str(out), "--format", "xdf", "-o", str(xdf)], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        if exp.returncode != 0:
            raise RuntimeError(f"export failed: {exp.stderr[-3000:]}")
    finally:
        outlets.kill()
        outlets.wait()
    return LslRun(name, out, xdf, run.stderr)


def timing(index: np.ndarray, t_eeg: np.ndarray, mk_values: list[str], t_mk: np.ndarray) -> dict[str, np.ndarray]:
    """marker − sample (s) for equal stamps, spacing residual (s), rate error (ppm)."""
    pos = {int(k): i for i, k in enumerate(index)}
    diff = np.array([t - t_eeg[pos[int(v)]] for t, v in zip(t_mk, mk_values, strict=True) if int(v) in pos])
    residual = np.diff(t_eeg) - np.diff(index) / 250.0
    rate = (t_eeg[-1] - t_eeg[0]) / ((index[-1] - index[0]) / 250.0) - 1
    return {"marker": diff, "residual": residual, "rate_ppm": np.array([rate * 1e6])}


def from_xdf(run: LslRun) -> dict[str, np.ndarray]:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(run.xdf), dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg, mk = by_name[run.name], by_name[f"{run.name}-markers"]
    return timing(eeg["time_series"][:, 0].astype(np.int64), eeg["time_stamps"],
                  [v[0] for v in mk["time_series"]], mk["time_stamps"])  # fmt: skip


def baseline(run: LslRun) -> dict[str, np.ndarray]:
    """The same recording with each LSL stream's clock fitted from its own arrivals."""
    from sensorium_desktop.recording.reader import load_recording

    rec = load_recording(run.recording)
    for data in rec.sensors.values():
        data.info = dataclasses.replace(data.info, clock_domain="", clock_offset=None, device_id=data.info.sensor_id)
    rec._host_cache.clear()
    rec._global_cache.clear()
    eeg = next(s for s in rec.sensors if not s.endswith("marker"))
    mk = next(s for s in rec.sensors if s.endswith("marker"))
    return timing(rec.sensors[eeg].values[:, 0].astype(np.int64), rec.global_times(eeg),
                  [str(v) for v in rec.sensors[mk].values[:, 0]], rec.global_times(mk))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    from .lab import start_redis

    work = Path(tempfile.mkdtemp(prefix="bench-lsl-timing-"))
    server = start_redis(work)
    env = dict(os.environ, SENSORIUM_REDIS_URL=server.url, SENSORIUM_DATA_DIR=str(work / "data"))
    ours: list[dict[str, np.ndarray]] = []
    base: list[dict[str, np.ndarray]] = []
    try:
        for k in range(args.runs):
            run = record_outlets(work, env, f"lslt{k}", args.seconds)
            ours.append(from_xdf(run))
            base.append(baseline(run))
    finally:
        server.stop()

    def row(label: str, results: list[dict[str, np.ndarray]]) -> tuple[str, float, float, float]:
        mk = np.concatenate([r["marker"] for r in results]) * 1e6
        res = np.concatenate([r["residual"] for r in results]) * 1e6
        rate = np.concatenate([r["rate_ppm"] for r in results])
        print(f"| {label} | {mk.size} | {np.mean(mk):+.1f} | {np.max(np.abs(mk)):.1f} | {np.max(np.abs(res)):.1f} "
              f"| {np.max(np.abs(rate)):.2f} |")  # fmt: skip
        return label, float(np.max(np.abs(mk))), float(np.max(np.abs(res))), float(np.max(np.abs(rate)))

    print(f"{args.runs} recordings of {args.seconds:g} s")
    print("| clock | markers | marker − sample mean µs | max µs | EEG spacing residual max µs | rate error max ppm |")
    print("|---|---|---|---|---|---|")
    _, mk_max, res_max, rate_max = row("LSL domain (measured)", ours)
    row("baseline: each stream fitted from its arrivals", base)
    checks = [("marker to sample <= 50 us", mk_max <= 50), ("EEG spacing residual <= 50 us", res_max <= 50),
              ("EEG rate error <= 1 ppm", rate_max <= 1.0)]  # fmt: skip
    for label, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
