"""The lab's Redis behind Redis Sentinel: URLs, bad sentinel sets, and a failover in the middle
of a recording (primary killed, replica promoted, old primary back as a replica) with nothing
lost or duplicated. Real redis-server processes (primary, replica, 3 sentinels) started by
``sensorium redis --listen / --replica-of / --sentinel``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis
from conftest import WindowDriver, free_port, sensorium, wait_for

from sensorium_desktop.bus.connection import check_reachable, mask_url
from sensorium_desktop.bus.embedded import RedisUnavailableError
from sensorium_desktop.bus.labredis import LabRedisSpec, lab_config
from sensorium_desktop.bus.sentinel import SentinelURLError, parse_sentinel_url
from sensorium_desktop.viewmodel.alerts import AlertsModel

PASSWORD = "lab-pw"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


def test_sentinel_urls_parse_and_never_show_passwords() -> None:
    u = parse_sentinel_url("redis+sentinel://:p%40ss@pc1:26379,pc2,[::1]:26380/lab/2?sentinel_password=s")
    assert u.sentinels == (("pc1", 26379), ("pc2", 26379), ("::1", 26380)) and u.service == "lab" and u.db == 2
    assert u.password == "p@ss" and u.sentinel_password == "s"
    masked = mask_url("redis+sentinel://:p%40ss@pc1:26379,pc2/lab?sentinel_password=s")
    assert "p%40ss" not in masked and "=s" not in masked and "pc1:26379,pc2:26379/lab" in masked
    for bad, why in (("redis+sentinel://pc1:26379", "service"), ("redis+sentinel:///lab", "sentinel host"),
                     ("redis+sentinel://pc1:x/lab", "port"), ("redis+sentinel://pc1/lab/x", "database")):  # fmt: skip
        with pytest.raises(SentinelURLError, match=why):
            parse_sentinel_url(bad)


def test_lab_configs_share_one_password_and_demoted_primaries_can_follow(tmp_path: Path) -> None:
    primary = lab_config(LabRedisSpec("primary", "0.0.0.0", 6379, "pw"), tmp_path)
    assert "requirepass pw" in primary and "masterauth pw" in primary and not any("replicaof" in x for x in primary)
    replica = lab_config(LabRedisSpec("replica", "0.0.0.0", 6380, "pw", ("pc1", 6379)), tmp_path)
    assert "replicaof pc1 6379" in replica and "masterauth pw" in replica
    sentinel = lab_config(LabRedisSpec("sentinel", "0.0.0.0", 26379, "pw", ("pc1", 6379), "lab", 2, 3000), tmp_path)
    assert "sentinel monitor lab pc1 6379 2" in sentinel and "sentinel auth-pass lab pw" in sentinel
    assert "sentinel down-after-milliseconds lab 3000" in sentinel
    with pytest.raises(ValueError, match="password"):
        lab_config(LabRedisSpec("primary", "0.0.0.0", 6379, ""), tmp_path)


@dataclass
class SentinelLab:
    data_ports: list[int]
    sentinel_ports: list[int]
    procs: dict[str, subprocess.Popen]
    env: dict[str, str]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://:{PASSWORD}@{hosts}/sensorium"

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(Path(self.env["SENSORIUM_DATA_DIR"]) / f"{name}.log", "ab")  # noqa: SIM115 - held by the child
        self.procs[name] = subprocess.Popen(sensorium("redis", *args), env=self.env, stdout=log, stderr=log)
        return self.procs[name]

    def server_pid(self, port: int) -> int:
        """The redis-server process serving ``port`` (a child of ``sensorium redis``)."""
        for p in psutil.process_iter(["cmdline"]):
            if any(f"127.0.0.1:{port}" in part for part in p.info["cmdline"] or []) and "redis-server" in " ".join(
                p.info["cmdline"] or []
            ):
                return p.pid
        raise AssertionError(f"no redis-server on port {port}")

    def role(self, port: int) -> str:
        c = redis.Redis(port=port, password=PASSWORD, socket_timeout=2)
        try:
            return c.execute_command("ROLE")[0].decode()
        finally:
            c.close()


@pytest.fixture
def sentinel_lab(tmp_path: Path) -> Iterator[SentinelLab]:
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    env.pop("SENSORIUM_REDIS_URL", None)
    lab = SentinelLab([free_port(), free_port()], [free_port() for _ in range(3)], {}, env)
    primary = f"redis://:{PASSWORD}@127.0.0.1:{lab.data_ports[0]}"
    try:
        lab.start("primary", "--listen", f"127.0.0.1:{lab.data_ports[0]}", "--password", PASSWORD)
        wait_for(lambda: _answers(lab.data_ports[0]), 15, message="the primary")
        lab.start("replica", "--listen", f"127.0.0.1:{lab.data_ports[1]}", "--replica-of", primary)
        for i, port in enumerate(lab.sentinel_ports):
            timing = ("--down-after-ms", str(DOWN_AFTER_MS), "--failover-timeout-ms", str(FAILOVER_TIMEOUT_MS))
            lab.start(f"sentinel{i}", "--listen", f"127.0.0.1:{port}", "--sentinel", primary, *timing)
        wait_for(lambda: _sentinels_see_everyone(lab), 30, 0.2, "the sentinels to know the replica and each other")
        yield lab
    finally:
        for p in lab.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in lab.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, password=PASSWORD, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _sentinels_see_everyone(lab: SentinelLab) -> bool:
    try:
        for port in lab.sentinel_ports:
            s = redis.Redis(port=port, socket_timeout=1)
            if len(s.sentinel_slaves("sensorium")) < 1 or len(s.sentinel_sentinels("sensorium")) < 2:
                return False
        return True
    except redis.RedisError:
        return False


def test_wrong_or_unreachable_sentinels_are_named(sentinel_lab: SentinelLab) -> None:
    closed = free_port()
    with pytest.raises(RedisUnavailableError, match=f"127.0.0.1:{closed} unreachable"):
        check_reachable(f"redis+sentinel://127.0.0.1:{closed}/sensorium", timeout=1.0)
    with pytest.raises(RedisUnavailableError, match="does not monitor 'nolab'"):
        check_reachable(sentinel_lab.url.replace("/sensorium", "/nolab"), timeout=1.0)
    run = subprocess.run(sensorium("status", "--redis-url", f"redis+sentinel://:{PASSWORD}@127.0.0.1:{closed}"),
                         env=sentinel_lab.env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1 and "no service name" in run.stderr and PASSWORD not in run.stderr
    ok = subprocess.run(sensorium("status", "--redis-url", sentinel_lab.url), env=sentinel_lab.env,
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"primary is 127.0.0.1:{sentinel_lab.data_ports[0]}" in ok.stderr


def test_primary_killed_mid_recording_fails_over_without_loss(sentinel_lab: SentinelLab, tmp_path: Path) -> None:
    lab = sentinel_lab
    out = tmp_path / "rec"
    rec = subprocess.Popen(
        sensorium("record", "--redis-url", lab.url, "--simulate", "--duration", "12", "--out", str(out),
                  "--sensors", "sim-chest-ecg", "sim-eyes-eye_gaze", "sim-room-temperature"),
        env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: (out / "session.json").exists() or rec.poll() is not None, 30, message="the recording to start")
    time.sleep(4.0)
    os.kill(lab.server_pid(lab.data_ports[0]), signal.SIGKILL)
    killed = time.time()
    wait_for(lambda: lab.role(lab.data_ports[1]) == "master", 20, 0.1, "the replica to be promoted")
    promoted = time.time() - killed
    time.sleep(1.0)
    # the old primary comes back as it was configured (a primary): the sentinels demote it
    lab.start("primary-again", "--listen", f"127.0.0.1:{lab.data_ports[0]}", "--password", PASSWORD)
    wait_for(lambda: _answers(lab.data_ports[0]) and lab.role(lab.data_ports[0]) == "slave", 30, 0.2,
             "the old primary to follow the new one")  # fmt: skip
    _, stderr = rec.communicate(timeout=90)
    assert rec.returncode == 0, stderr[-4000:]
    back = re.search(r"Redis reachable again after ([\d.]+) s \(primary now 127\.0\.0\.1:(\d+)\)", stderr)
    assert back and int(back.group(2)) == lab.data_ports[1], stderr[-4000:]
    assert float(back.group(1)) <= promoted + 2.0  # the app follows within 2 s of the promotion
    assert promoted <= (DOWN_AFTER_MS + 4 * FAILOVER_TIMEOUT_MS) / 1000 + 1.0  # one retry of the sentinels at most
    verify = subprocess.run(sensorium("verify", str(out)), env=lab.env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout
    # nothing was ever written to the demoted server: it holds exactly what the new primary has
    new, old = (redis.Redis(port=p, password=PASSWORD) for p in lab.data_ports)
    wait_for(lambda: new.dbsize() == old.dbsize(), 10, message="the old primary to catch up")
    print(f"promoted {promoted:.1f} s after the kill; the recording resumed after {back.group(1)} s")


def test_follow_redis_says_how_long_and_who_took_over() -> None:
    alerts = AlertsModel()
    alerts.follow_redis("", "10.0.0.1:6379", now=100.0)
    assert alerts.active() == []
    alerts.follow_redis("Connection refused", "", now=101.0)
    alerts.follow_redis("No master found", "", now=102.0)
    (down,) = alerts.active()
    assert "Redis unreachable since" in down.text and "Connection refused" in down.text and down.level == "error"
    alerts.follow_redis("", "10.0.0.2:6379", now=103.5)
    (back,) = alerts.active()
    assert "(2.5 s)" in back.text and "now 10.0.0.2:6379 (was 10.0.0.1:6379)" in back.text and back.level == "warning"


@pytest.mark.gui
def test_the_window_follows_a_failover(qtbot, arun, sentinel_lab: SentinelLab, tmp_path: Path,  # type: ignore[no-untyped-def]
                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from sensorium_desktop.bus.keys import Keys
    from sensorium_desktop.worker.supervisor import NodeProcess

    lab = sentinel_lab
    monkeypatch.setenv("SENSORIUM_DATA_DIR", lab.env["SENSORIUM_DATA_DIR"])
    keys = Keys(f"sen{os.getpid()}")
    node = NodeProcess(lab.url, ["--prefix", keys.prefix, "--node-id", "pc2", "--device", "sim:chest",
                                 "--rcs-port", "0", "--pupil-port", "0"], log_path=tmp_path / "node.log")  # fmt: skip
    driver = WindowDriver(qtbot, arun, lab.url, keys, "gui-sentinel", tmp_path, redis_timeout=1.0)
    model, win = driver.model, driver.win

    def until(what: str, predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
        driver.until(what, predicate, timeout, lambda: win.status_redis.text())

    node.start()
    try:
        first = f"127.0.0.1:{lab.data_ports[0]}"
        until("the node streaming", lambda: "sim-chest-ecg" in model.devices.tree.sensors, 40)
        assert f"primary {first}" in win.status_redis.text()
        os.kill(lab.server_pid(lab.data_ports[0]), signal.SIGKILL)
        until("the outage alert", lambda: any(a.key == "redis" for a in model.alerts.active()), 20)
        second = f"127.0.0.1:{lab.data_ports[1]}"
        until("the promoted replica", lambda: f"primary {second}" in win.status_redis.text(), 30)
        (alert,) = [a for a in model.alerts.active() if a.key == "redis"]
        assert f"now {second} (was {first})" in alert.text, alert.text
        until("the node writing again", lambda: redis.Redis(port=lab.data_ports[1], password=PASSWORD).exists(
            keys.telemetry("pc2")) and model.status.nodes.get("pc2") is not None, 30)  # fmt: skip
        if os.environ.get("SENSORIUM_SHOTS"):
            win.grab().save(os.path.join(os.environ["SENSORIUM_SHOTS"], "failover-window.png"))
    finally:
        node.stop()
