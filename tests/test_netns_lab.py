"""A lab of three PCs as network namespaces (``scripts/lab-netns.sh``): pc1 holds the Redis
primary, pc2 a replica and a node streaming the eye tracker, pc3 records; a sentinel on each.
Then pc1 loses power — every process in its namespace is killed — in the middle of the
recording. Nodes, recorder and the headless ``record`` follow the promoted replica; the
recording is complete and ``sensorium verify`` finds nothing lost or duplicated. Needs root
and ``ip netns`` (skipped, saying so, without them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
from conftest import sensorium, wait_for

from benchmarks.multihost import E2E_OUTLET
from sensorium_desktop.bus.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "lab-netns.sh"
PASSWORD = "netns-lab"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


def _netns_usable() -> str:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no 'ip' command (iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"ip netns does not work here: {probe.stderr.strip()}"


pytestmark = pytest.mark.skipif(bool(_netns_usable()), reason=_netns_usable() or "ok")


@dataclass
class NetnsLab:
    env: dict[str, str]
    tmp: Path
    procs: list[subprocess.Popen]

    def addr(self, k: int) -> str:
        return f"10.{self.env['LAB_NETNS_NET']}.0.{10 + k}"

    def run_in(self, k: int, name: str, *argv: str) -> subprocess.Popen:
        """``sensorium ARGV`` inside PC ``k`` with its own data dir; output in ``name``.log."""
        env = dict(self.env, SENSORIUM_DATA_DIR=str(self.tmp / f"pc{k}"))
        (self.tmp / f"pc{k}").mkdir(exist_ok=True)
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - held by the child
        p = subprocess.Popen([str(SCRIPT), "exec", str(k), *sensorium(*argv)], env=env, stdout=log, stderr=log)
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"redis+sentinel://:{PASSWORD}@" + ",".join(f"{self.addr(k)}:26379" for k in (1, 2, 3)) + "/sensorium"

    def role(self, k: int) -> str:
        out = subprocess.run([str(SCRIPT), "exec", str(k), sys.executable, "-c",
                              "import redis,sys; print(redis.Redis(host=sys.argv[1], password=sys.argv[2], "
                              "socket_timeout=1).execute_command('ROLE')[0].decode())", self.addr(k), PASSWORD],
                             env=self.env, capture_output=True, text=True, timeout=20)  # fmt: skip
        return out.stdout.strip()


@pytest.fixture
def netns_lab(tmp_path: Path) -> Iterator[NetnsLab]:
    tag = os.getpid() % 1000
    env = dict(os.environ, LAB_NETNS_PREFIX=f"sn{tag}p", LAB_NETNS_BRIDGE=f"sn{tag}br",
               LAB_NETNS_NET=str(100 + tag % 150))  # fmt: skip
    env.pop("SENSORIUM_REDIS_URL", None)
    lab = NetnsLab(env, tmp_path, [])
    subprocess.run([str(SCRIPT), "up", "3"], env=env, check=True, capture_output=True, timeout=60)
    try:
        yield lab
    finally:
        for p in lab.procs:
            if p.poll() is None:
                p.terminate()
        for p in lab.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, timeout=60)


def test_a_pc_with_the_redis_primary_dies_mid_recording(netns_lab: NetnsLab) -> None:
    lab = netns_lab
    primary = f"redis://:{PASSWORD}@{lab.addr(1)}:6379"
    lab.run_in(1, "primary", "redis", "--listen", f"{lab.addr(1)}:6379", "--password", PASSWORD)
    wait_for(lambda: lab.role(1) == "master", 30, 0.3, "the primary in pc1")
    lab.run_in(2, "replica", "redis", "--listen", f"{lab.addr(2)}:6379", "--replica-of", primary)
    timing = ("--down-after-ms", str(DOWN_AFTER_MS), "--failover-timeout-ms", str(FAILOVER_TIMEOUT_MS))
    for k in (1, 2, 3):
        lab.run_in(k, f"sentinel{k}", "redis", "--listen", f"{lab.addr(k)}:26379", "--sentinel", primary, *timing)

    def sentinels_ready() -> bool:
        try:
            for k in (1, 2, 3):  # the bridge reaches every PC from the root namespace
                s = redis.Redis(host=lab.addr(k), port=26379, socket_timeout=1)
                if len(s.sentinel_slaves("sensorium")) < 1 or len(s.sentinel_sentinels("sensorium")) < 2:
                    return False
            return True
        except redis.RedisError:
            return False

    wait_for(sentinels_ready, 40, 0.3, "the sentinels to know the replica and each other")
    eyes = lab.run_in(2, "node-pc2", "node", "--redis-url", lab.url, "--node-id", "pc2", "--device", "sim:eyes",
                      "--no-sync-worker", "--rcs-port", "0", "--pupil-port", "0")  # fmt: skip
    out = lab.tmp / "rec"
    rec = lab.run_in(3, "record-pc3", "record", "--redis-url", lab.url, "--node-id", "pc3", "--device",
                     "sim:chest", "--duration", "14", "--out", str(out), "--sensors", "sim-chest-ecg",
                     "sim-eyes-eye_gaze")  # fmt: skip
    wait_for(lambda: "for 14.0 s from the first samples" in lab.log("record-pc3") or rec.poll() is not None, 60,
             0.2, "the recording to start")  # fmt: skip
    time.sleep(4.0)
    subprocess.run([str(SCRIPT), "kill", "1"], env=lab.env, check=True, timeout=20)  # pc1 loses power
    killed = time.time()  # every process of pc1 is gone (kill -9 returned)
    wait_for(lambda: lab.role(2) == "master", 30, 0.1, "the replica in pc2 to be promoted")
    promoted = time.time() - killed
    # when each node writes to the promoted replica: the newest entry of its stream there changes
    new = redis.Redis(host=lab.addr(2), password=PASSWORD, socket_timeout=5)
    streams = {"pc3": Keys("sensorium").stream("sim-chest-ecg"), "pc2": Keys("sensorium").stream("sim-eyes-eye_gaze")}
    newest = {node: new.xrevrange(key, count=1) for node, key in streams.items()}
    resumed: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while len(resumed) < len(streams) and time.monotonic() < deadline:
        for node, key in streams.items():
            if node not in resumed and new.xrevrange(key, count=1) != newest[node]:
                resumed[node] = time.time() - killed
        time.sleep(0.02)
    assert len(resumed) == len(streams), f"never wrote to the promoted replica: {set(streams) - set(resumed)}"
    assert rec.wait(120) == 0, lab.log("record-pc3")[-4000:]
    log = lab.log("record-pc3")
    moved = re.search(r"the lab's Redis moved from [\d.]+:6379 to ([\d.]+):6379", log)
    assert moved and moved.group(1) == lab.addr(2), log[-4000:]
    assert max(resumed.values()) <= promoted + 2.0, (promoted, resumed)
    assert eyes.poll() is None  # pc2's node streams on
    verify = subprocess.run(sensorium("verify", str(out)), capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    print(f"pc1 killed: replica promoted after {promoted:.1f} s; nodes wrote to it again after "
          + ", ".join(f"{n} {t:.1f} s" for n, t in resumed.items()) + f"; verify: {verify.stdout.strip()}")




def test_lsl_samples_from_another_pc_are_exported_on_the_global_clock(netns_lab: NetnsLab) -> None:
    """End to end across PCs: pc1 holds Redis (the global clock) and a pylsl outlet whose each
    sample carries the true global time of its LSL stamp; pc2's node — its host clock 250 ms
    ahead — records it; the XDF export's timestamps are compared with the truth. (No drift:
    the hook skews only this app's reads of the host clock, not liblsl's clock of the same PC,
    and a drift between the two is what no real PC has — both follow one oscillator. The
    host → global drift is measured in benchmarks.multihost.)"""
    import pyxdf

    lab = netns_lab
    lab.run_in(1, "redis", "redis", "--listen", f"{lab.addr(1)}:6379", "--password", PASSWORD)
    wait_for(lambda: lab.role(1) == "master", 30, 0.3, "Redis in pc1")
    outlet = subprocess.Popen([str(SCRIPT), "exec", "1", sys.executable, "-c", E2E_OUTLET, "netns-e2e", "60"],
                              env=lab.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    lab.procs.append(outlet)
    out = lab.tmp / "lslrec"
    env_skew = f"0.25,0,{time.time()!r}"
    lab.env["SENSORIUM_HOST_CLOCK_SKEW"] = env_skew
    try:
        rec = lab.run_in(2, "record-lsl", "record", "--redis-url", f"redis://:{PASSWORD}@{lab.addr(1)}:6379/0",
                         "--device", "lsl:netns-e2e", "--duration", "10", "--out", str(out))  # fmt: skip
    finally:
        del lab.env["SENSORIUM_HOST_CLOCK_SKEW"]
    assert rec.wait(120) == 0, lab.log("record-lsl")[-4000:]
    xdf = lab.tmp / "lsl.xdf"
    exp = subprocess.run(sensorium("export", str(out), "--format", "xdf", "-o", str(xdf)), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-3000:]
    streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)
    (s,) = [s for s in streams if s["info"]["name"][0] == "netns-e2e"]
    err = np.asarray(s["time_stamps"]) - np.asarray(s["time_series"])[:, 0]
    assert err.size > 400
    rms, worst = float(np.sqrt(np.mean(err**2))), float(np.max(np.abs(err)))
    print(f"LSL across namespaces → XDF on the global clock: {err.size} samples, error median "
          f"{np.median(err) * 1e6:+.0f} µs, RMS {rms * 1e6:.0f} µs, max {worst * 1e6:.0f} µs "
          f"(the node's host clock was 250 ms ahead of pc1's)")
    assert rms <= 200e-6 and worst <= 1e-3  # measured: RMS 14 µs, max 47 µs
