"""The host → global clock across a network: error of each estimator against the known truth.

    python -m benchmarks.multihost [--seconds 60] [--interval 2] [--setups lan,wifi,asymmetric,congested] [--lsl]

A private redis-server plays the lab's Redis PC. For each setup a :class:`DelayProxy`
(``benchmarks/netproxy.py``; the kernel has no ``netem``) sits between it and a "node"
process whose host clock is skewed through the documented test hook
(``SENSORIUM_HOST_CLOCK_SKEW=0.25,30,<t_ref>``: 250 ms ahead, 30 ppm fast), so the true
global − host offset is known at every instant (Redis ``TIME`` and the unskewed clock are the
same kernel clock). The node probes Redis every ``--interval`` s in bursts of 8 round trips,
exactly as the node's ``global_clock`` component does, and after each burst records:

- **ours**: :class:`GlobalClockProbe`'s published estimate (best probes of the last 60 s);
- baseline **NTP clock filter**: the minimum-RTT midpoint of the last 8 bursts' probes;
- baseline **last burst**: the minimum-RTT midpoint of the newest burst alone;
- **before**: what the node published until issue 32 — the median of the best probes of the
  last 60 s, with no drift.

Error = estimate − truth at the moment of the estimate (ours: its line evaluated there, as
every reader maps it); RMS and max over the run after the first 10 s, and the bound a round
trip leaves for asymmetry (half the minimum RTT). An asymmetric link shifts every round-trip
estimate by (up − down)/2, which none can see: the comparison with the baselines is made
with that known shift removed, and the raw error is printed beside it.

Setups (one-way delay each direction): LAN 0.1 ms + Exp(0.025 ms); Wi-Fi 1.5 ms + Exp(1 ms),
1 % loss; asymmetric 1 ms up / 6 ms down; congested LAN with 50 ms stalls every 2 s.
Goal (issue 32): ours ≤ every baseline in every setup, ≤ 100 µs on LAN.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .lab import start_redis
from .netproxy import DelayProxy, LinkSpec

SKEW_OFFSET_S = 0.25
SKEW_DRIFT_PPM = 30.0
WARMUP_S = 10.0

SETUPS: dict[str, tuple[LinkSpec, LinkSpec]] = {
    "lan": (LinkSpec(0.0001, 0.000025), LinkSpec(0.0001, 0.000025)),
    "wifi": (LinkSpec(0.0015, 0.001, 0.01), LinkSpec(0.0015, 0.001, 0.01)),
    "asymmetric": (LinkSpec(0.001), LinkSpec(0.006)),
    "congested": (LinkSpec(0.0001, 0.000025, 0.0, 2.0, 0.05), LinkSpec(0.0001, 0.000025, 0.0, 2.0, 0.05)),
}


def child(url: str, seconds: float, interval: float) -> None:
    """The skewed node: probe bursts through the proxy; one JSON line per burst."""
    import redis

    from sensorium_desktop.bus.globalclock import GlobalClockProbe
    from sensorium_desktop.core.hostclock import SKEW_ENV, host_time, parse_skew

    offset, drift, t_ref = parse_skew(os.environ[SKEW_ENV], 0.0)
    c = redis.Redis.from_url(url, socket_timeout=5)
    probe = GlobalClockProbe()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        raw = []
        for _ in range(probe.burst):
            t0 = host_time()
            sec, usec = c.time()
            t1 = host_time()
            raw.append((t0, t1, sec + usec / 1e6))
        best = min(raw, key=lambda r: r[1] - r[0])
        probe.add(0.5 * (best[0] + best[1]), best[1] - best[0], best[2] - 0.5 * (best[0] + best[1]))
        est = probe.estimate()
        h = host_time()
        true_global = (h - offset + drift * t_ref) / (1.0 + drift)
        ours = float(est.host_offset().at(h)) if est else None  # as every reader maps it: the line at h
        print(json.dumps({"h": h, "truth": true_global - h, "ours": ours,
                          "ours_sigma": est.uncertainty if est else None, "raw": raw}), flush=True)  # fmt: skip
        time.sleep(interval)


def _midpoint(r: list[float]) -> float:
    return r[2] - 0.5 * (r[0] + r[1])


def analyse(lines: list[dict], asymmetry_s: float = 0.0) -> dict[str, float]:
    """RMS / max error (µs) of ours and the baselines after the warm-up; the asymmetry bound.
    ``asymmetry_s``: the link's own (up − down)/2 mean delay difference, which shifts every
    round-trip estimate alike and no estimator can see; ``*_beyond`` errors have it removed."""
    t_start = lines[0]["h"]
    errs: dict[str, list[float]] = {"ours": [], "ntp8": [], "last": [], "median60": []}
    min_rtt = math.inf
    for i, row in enumerate(lines):
        min_rtt = min(min_rtt, min(r[1] - r[0] for r in row["raw"]))
        if row["h"] - t_start < WARMUP_S or row["ours"] is None:
            continue
        window = [r for w in lines[max(0, i - 7) : i + 1] for r in w["raw"]]
        ntp = _midpoint(min(window, key=lambda r: r[1] - r[0]))
        last = _midpoint(min(row["raw"], key=lambda r: r[1] - r[0]))
        bests = [min(w["raw"], key=lambda r: r[1] - r[0]) for w in lines[: i + 1] if row["h"] - w["h"] <= 60.0]
        fastest = min(r[1] - r[0] for r in bests)
        median60 = float(np.median([_midpoint(r) for r in bests if r[1] - r[0] <= 1.5 * fastest + 1e-6]))
        for name, v in (("ours", row["ours"]), ("ntp8", ntp), ("last", last), ("median60", median60)):
            errs[name].append(v - row["truth"])
    out = {"min_rtt_us": 1e6 * min_rtt, "bursts": float(len(errs["ours"]))}
    for name, e in errs.items():
        a = np.asarray(e)
        b = a - asymmetry_s
        out[f"{name}_rms_us"] = 1e6 * float(np.sqrt(np.mean(a**2))) if a.size else math.nan
        out[f"{name}_max_us"] = 1e6 * float(np.max(np.abs(a))) if a.size else math.nan
        out[f"{name}_beyond_us"] = 1e6 * float(np.sqrt(np.mean(b**2))) if b.size else math.nan
    return out


def run_setup(url_port: int, password: str, up: LinkSpec, down: LinkSpec, seconds: float,
              interval: float) -> dict[str, float]:  # fmt: skip
    proxy = DelayProxy(("127.0.0.1", url_port), up, down).start()
    t_ref = time.time()
    env = dict(os.environ, SENSORIUM_HOST_CLOCK_SKEW=f"{SKEW_OFFSET_S},{SKEW_DRIFT_PPM},{t_ref!r}")
    url = f"redis://:{password}@127.0.0.1:{proxy.port}/0"
    cmd = [sys.executable, "-m", "benchmarks.multihost", "--child", url, "--seconds", str(seconds), "--interval",
           str(interval)]  # fmt: skip
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, check=False, timeout=seconds + 120).stdout
    proxy.stop()
    lines = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError("the skewed node reported nothing")
    asymmetry = 0.5 * ((up.delay_s + up.jitter_s) - (down.delay_s + down.jitter_s))
    return analyse(lines, asymmetry)


LAB_NETNS = Path(__file__).resolve().parent.parent / "scripts" / "lab-netns.sh"
LSL_STREAM = "sensorium-multihost-clock"


def lsl_outlet_child(seconds: float) -> None:
    """pc1 of the namespace lab: an LSL outlet whose inlets ask it for time corrections."""
    import pylsl

    info = pylsl.StreamInfo(LSL_STREAM, "Clock", 1, 10.0, "float32", "multihost-bench")
    outlet = pylsl.StreamOutlet(info)
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        outlet.push_sample([0.0])
        time.sleep(0.1)


def lsl_inlet_child(url: str, seconds: float, interval: float) -> None:
    """pc2 of the namespace lab: pylsl's ``time_correction()`` of pc1's outlet (true value 0:
    namespaces share the kernel's monotonic clock) beside our probe of pc1's Redis (its truth
    known through the skew hook); one JSON line per interval."""
    import pylsl
    import redis

    from sensorium_desktop.bus.globalclock import GlobalClockProbe
    from sensorium_desktop.core.hostclock import SKEW_ENV, host_time, parse_skew

    found = pylsl.resolve_byprop("name", LSL_STREAM, timeout=20.0)
    if not found:
        raise SystemExit("no LSL outlet found across the namespaces")
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=10.0)
    offset, drift, t_ref = parse_skew(os.environ[SKEW_ENV], 0.0)
    c = redis.Redis.from_url(url, socket_timeout=5)
    probe = GlobalClockProbe()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        lsl = inlet.time_correction(timeout=5.0)
        probe.probe(c)
        est = probe.estimate()
        h = host_time()
        true_global = (h - offset + drift * t_ref) / (1.0 + drift)
        ours = float(est.host_offset().at(h)) if est else None
        print(json.dumps({"h": h, "truth": true_global - h, "ours": ours, "lsl": lsl}), flush=True)
        time.sleep(interval)


def run_lsl_netns(seconds: float, interval: float) -> dict[str, float]:
    """Ours and pylsl's time correction across two network namespaces joined by a bridge (no
    delay can be added: LSL's time probes are UDP, the delay proxy is TCP and this kernel has no
    netem), measured at the same time over the same link."""
    env = dict(os.environ, LAB_NETNS_PREFIX="mhl", LAB_NETNS_BRIDGE="mhlbr", LAB_NETNS_NET="66")
    env.pop("SENSORIUM_REDIS_URL", None)
    subprocess.run([str(LAB_NETNS), "up", "2"], env=env, check=True, capture_output=True)
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-multihost-lsl-"))
    try:
        py = [sys.executable, "-m"]
        redis_env = dict(env, SENSORIUM_DATA_DIR=str(tmp / "pc1"))
        procs.append(subprocess.Popen([str(LAB_NETNS), "exec", "1", *py, "sensorium_desktop", "redis", "--listen",
                                       "10.66.0.11:6379", "--password", "bench"], env=redis_env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        procs.append(subprocess.Popen([str(LAB_NETNS), "exec", "1", *py, "benchmarks.multihost", "--lsl-outlet",
                                       "--seconds", str(seconds + 40)], env=env))  # fmt: skip
        time.sleep(2.0)
        child_env = dict(env, SENSORIUM_HOST_CLOCK_SKEW=f"{SKEW_OFFSET_S},{SKEW_DRIFT_PPM},{time.time()!r}")
        out = subprocess.run([str(LAB_NETNS), "exec", "2", *py, "benchmarks.multihost", "--lsl-inlet",
                              "redis://:bench@10.66.0.11:6379/0", "--seconds", str(seconds), "--interval",
                              str(interval)], env=child_env, stdout=subprocess.PIPE, timeout=seconds + 120,
                             check=False).stdout  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
        subprocess.run([str(LAB_NETNS), "down"], env=env, capture_output=True)
    lines = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError("the LSL inlet in the second namespace reported nothing")
    t0 = lines[0]["h"]
    kept = [r for r in lines if r["h"] - t0 >= WARMUP_S and r["ours"] is not None]
    ours = np.array([r["ours"] - r["truth"] for r in kept])
    lsl = np.array([r["lsl"] for r in kept])
    return {"ours_rms_us": 1e6 * float(np.sqrt(np.mean(ours**2))), "ours_max_us": 1e6 * float(np.max(np.abs(ours))),
            "lsl_rms_us": 1e6 * float(np.sqrt(np.mean(lsl**2))), "lsl_max_us": 1e6 * float(np.max(np.abs(lsl))),
            "samples": float(len(kept))}  # fmt: skip


#: pc1's LSL outlet for the end-to-end runs: each sample's value is the true global time of its stamp
E2E_OUTLET = """
import sys, time, pylsl
info = pylsl.StreamInfo(sys.argv[1], "Clock", 1, 50.0, "double64", "netns-e2e")
outlet = pylsl.StreamOutlet(info)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    stamp = pylsl.local_clock()
    outlet.push_sample([time.time()], stamp)
    time.sleep(0.02)
"""


def run_e2e(setups: list[str], seconds: float) -> dict[str, dict[str, float]]:
    """Exported timestamps against the truth, per link: pc1 holds Redis and an LSL outlet
    whose values are the true global times of their stamps; pc2's ``sensorium record`` (host
    clock 250 ms ahead) reaches Redis only through the delay link (in the root namespace) and
    records the outlet; the XDF export is compared with the values (error µs: median, RMS, max)."""
    import pyxdf

    env = dict(os.environ, LAB_NETNS_PREFIX="mhe", LAB_NETNS_BRIDGE="mhebr", LAB_NETNS_NET="67")
    env.pop("SENSORIUM_REDIS_URL", None)
    subprocess.run([str(LAB_NETNS), "up", "2"], env=env, check=True, capture_output=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-multihost-e2e-"))
    py = [sys.executable, "-m"]
    procs: list[subprocess.Popen] = []
    out: dict[str, dict[str, float]] = {}
    try:
        procs.append(subprocess.Popen([str(LAB_NETNS), "exec", "1", *py, "sensorium_desktop", "redis", "--listen",
                                       "10.67.0.11:6379", "--password", "bench"],
                                      env=dict(env, SENSORIUM_DATA_DIR=str(tmp / "pc1")), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))  # fmt: skip
        procs.append(subprocess.Popen([str(LAB_NETNS), "exec", "1", sys.executable, "-c", E2E_OUTLET, "mh-e2e",
                                       str(len(setups) * (seconds + 60))], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))  # fmt: skip
        time.sleep(2.0)
        for name in setups:
            up, down = SETUPS[name]
            proxy = DelayProxy(("10.67.0.11", 6379), up, down, listen=("10.67.0.1", 0)).start()
            rec = tmp / f"rec-{name}"
            skew = f"0.25,0,{time.time()!r}"
            child_env = dict(env, SENSORIUM_DATA_DIR=str(tmp / "pc2"), SENSORIUM_HOST_CLOCK_SKEW=skew)
            run = subprocess.run([str(LAB_NETNS), "exec", "2", *py, "sensorium_desktop", "record", "--redis-url",
                                  f"redis://:bench@10.67.0.1:{proxy.port}/0", "--prefix", f"e2e{name}", "--device",
                                  "lsl:mh-e2e", "--duration", str(seconds), "--out", str(rec)], env=child_env,
                                 capture_output=True, text=True, timeout=seconds + 180)  # fmt: skip
            proxy.stop()
            if run.returncode != 0:
                raise RuntimeError(f"{name}: record exited {run.returncode}: {run.stderr[-1500:]}")
            xdf = tmp / f"{name}.xdf"
            exp = subprocess.run([*py, "sensorium_desktop", "export", str(rec), "--format", "xdf", "-o", str(xdf)],
                                 env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
            if exp.returncode != 0:
                raise RuntimeError(f"{name}: export failed: {exp.stderr[-1500:]}")
            streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)
            (st,) = [x for x in streams if x["info"]["name"][0] == "mh-e2e"]
            err = np.asarray(st["time_stamps"]) - np.asarray(st["time_series"])[:, 0]
            asym = 0.5 * ((up.delay_s + up.jitter_s) - (down.delay_s + down.jitter_s))
            out[name] = {"median_us": 1e6 * float(np.median(err)), "rms_us": 1e6 * float(np.sqrt(np.mean(err**2))),
                         "max_us": 1e6 * float(np.max(np.abs(err))), "beyond_us": 1e6 * float(np.sqrt(np.mean(
                             (err - asym) ** 2))), "samples": float(err.size)}  # fmt: skip
            r = out[name]
            print(f"{name:<11} exported timestamps: median {r['median_us']:+9.1f} µs, RMS {r['rms_us']:9.1f}, max "
                  f"{r['max_us']:9.1f}; less the link's asymmetry {r['beyond_us']:9.1f} µs RMS "
                  f"({r['samples']:.0f} samples)", flush=True)  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
        subprocess.run([str(LAB_NETNS), "down"], env=env, capture_output=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.multihost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--lsl", action="store_true",
                    help="also compare with pylsl's time_correction() across two network namespaces (root)")
    ap.add_argument("--e2e", action="store_true",
                    help="exported timestamps end to end across two network namespaces, through each link (root)")
    ap.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--lsl-outlet", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lsl-inlet", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.seconds, args.interval)
        return 0
    if args.lsl_outlet:
        lsl_outlet_child(args.seconds)
        return 0
    if args.lsl_inlet:
        lsl_inlet_child(args.lsl_inlet, args.seconds, args.interval)
        return 0
    if args.e2e:
        run_e2e([x for x in args.setups.split(",") if x], args.seconds)
        return 0
    lsl_ok = True
    if args.lsl:
        r = run_lsl_netns(args.seconds, args.interval)
        lsl_ok = r["ours_rms_us"] <= r["lsl_rms_us"]
        print(f"{'netns LAN':<11} ours {r['ours_rms_us']:9.1f} µs RMS (max {r['ours_max_us']:9.1f})   "
              f"pylsl time_correction() {r['lsl_rms_us']:9.1f} (max {r['lsl_max_us']:9.1f})   "
              f"{r['samples']:.0f} estimates, same link, same time", flush=True)
        print(f"[{'PASS' if lsl_ok else 'FAIL'}] ours ≤ pylsl's time correction across namespaces", flush=True)
        if not args.setups:
            return 0 if lsl_ok else 1
    server = start_redis(Path(tempfile.mkdtemp(prefix="bench-multihost-")))
    rows = {}
    try:
        for name in args.setups.split(","):
            up, down = SETUPS[name]
            rows[name] = run_setup(server.port, server.password, up, down, args.seconds, args.interval)
            r = rows[name]
            print(f"{name:<11} ours {r['ours_rms_us']:9.1f} µs RMS (max {r['ours_max_us']:9.1f})   "
                  f"NTP filter {r['ntp8_rms_us']:9.1f} (max {r['ntp8_max_us']:9.1f})   "
                  f"last burst {r['last_rms_us']:9.1f} (max {r['last_max_us']:9.1f})   "
                  f"before (median, no drift) {r['median60_rms_us']:8.1f}   "
                  f"asymmetry bound ½ min RTT {r['min_rtt_us'] / 2:8.1f} µs   {r['bursts']:.0f} bursts", flush=True)
            if abs(up.delay_s - down.delay_s) > 0:
                print(f"{'':<11} less the link's asymmetry (no round trip sees it): ours {r['ours_beyond_us']:.1f}, "
                      f"NTP filter {r['ntp8_beyond_us']:.1f}, last burst {r['last_beyond_us']:.1f} µs RMS", flush=True)
    finally:
        server.stop()
    ok = all(r["ours_beyond_us"] <= min(r["ntp8_beyond_us"], r["last_beyond_us"]) for r in rows.values())
    lan = rows.get("lan", {}).get("ours_rms_us", math.nan)
    print(f"skewed node: host clock {SKEW_OFFSET_S * 1e3:.0f} ms ahead, {SKEW_DRIFT_PPM:+.0f} ppm; "
          f"probes every {args.interval:g} s, bursts of 8; errors after the first {WARMUP_S:.0f} s")
    print(f"[{'PASS' if ok else 'FAIL'}] ours ≤ every baseline in every setup (less the links' own asymmetry)")
    print(f"[{'PASS' if lan <= 100 else 'FAIL'}] ours ≤ 100 µs RMS on LAN ({lan:.1f} µs)")
    return 0 if ok and lan <= 100 and lsl_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
