"""Failures are loud (issue 16 items 2, 3, 6): a device that cannot be opened is named with the
reason within 5 s, ``record``/``node`` exit non-zero when asked-for devices or sensors delivered
nothing, sensors without data are never "ok", and every CLI error names the object and reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import AsyncRunner, NodeThread, RedisServer, sensorium, wait_for
from test_serial import Pty

from sensorium_desktop import exitcodes
from sensorium_desktop.bus.connection import async_client
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.registry import DeviceStatus, register_sensors
from sensorium_desktop.bus.status import format_status, read_status
from sensorium_desktop.core.health import sensor_health, silence_s, stale_after
from sensorium_desktop.core.samples import SensorInfo
from sensorium_desktop.devices import DeviceState
from sensorium_desktop.viewmodel.devices import DeviceTreeModel

MISSING_PORT = "serial:/dev/nonexistent-sensorium"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def run_cli(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sensorium(*args), env=env, capture_output=True, text=True, timeout=timeout)


def cli_env(redis_server: RedisServer, data_dir: Path) -> dict[str, str]:
    return dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir))


def log_time(line: str) -> float:
    m = LOG_TIME.match(line)
    assert m, line
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def seconds_to_report(stderr: str, needle: str) -> float:
    """Log time from the node's start line to the first ERROR line naming ``needle``."""
    lines = stderr.splitlines()
    start = next(log_time(x) for x in lines if re.search(r"node \S+: \d+ devices", x))
    error = next(log_time(x) for x in lines if " ERROR " in x and needle in x)
    return error - start


def test_record_of_a_device_that_never_opens_names_it_and_fails(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(redis_server, data_dir)
    began = time.monotonic()
    run = run_cli(env, "record", "--prefix", keys.prefix, "--node-id", "rec-fail", "--device", MISSING_PORT,
                  "--duration", "2", "--out", str(tmp_path / "rec"))  # fmt: skip
    took = time.monotonic() - began
    assert run.returncode == exitcodes.FAILED, run.stderr[-3000:]
    assert seconds_to_report(run.stderr, MISSING_PORT) < 5.0
    assert "No such file or directory" in run.stderr and "delivered nothing" in run.stderr
    assert "no sensor to record" in run.stderr and "recorded " not in run.stdout
    assert not (tmp_path / "rec" / "session.json").exists()  # no empty "complete" session
    assert took < 30, f"gave up after {took:.1f} s"


def test_record_with_one_failing_device_is_partial(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(redis_server, data_dir)
    out = tmp_path / "rec"
    run = run_cli(env, "record", "--prefix", keys.prefix, "--node-id", "rec-part", "--device", "sim:room",
                  "--device", MISSING_PORT, "--duration", "2", "--out", str(out))  # fmt: skip
    assert run.returncode == exitcodes.PARTIAL, run.stderr[-3000:]
    assert f"device {MISSING_PORT} delivered nothing" in run.stderr
    assert "INCOMPLETE" in run.stderr and "recorded " in run.stdout
    meta = json.loads((out / "session.json").read_text())
    assert meta["state"] == "complete" and meta["samples"]["sim-room-temperature"] > 0


def test_record_of_a_requested_sensor_that_stays_silent_is_partial(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(redis_server, data_dir)
    run = run_cli(env, "record", "--prefix", keys.prefix, "--node-id", "rec-silent", "--device", "sim:room",
                  "--sensors", "sim-room-temperature", "sim-room-nothing", "--duration", "1.5",
                  "--out", str(tmp_path / "rec"))  # fmt: skip
    assert run.returncode == exitcodes.PARTIAL, run.stderr[-3000:]
    assert "sensor sim-room-nothing delivered no sample" in run.stderr
    assert "sim-room-temperature delivered" not in run.stderr


def test_record_and_node_refuse_unknown_transports_listing_the_known_ones(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(redis_server, data_dir)
    for args in (("record", "--duration", "1", "--out", str(tmp_path / "r")), ("node", "--duration", "1")):
        run = run_cli(env, *args, "--prefix", keys.prefix, "--device", "foo:bar", "--device", "sim:toaster")
        assert run.returncode == exitcodes.USAGE, run.stderr
        assert "unknown device transport 'foo'" in run.stderr
        assert "known: ble, camera, lsl, pose, pupil, replay, serial, sim, ws" in run.stderr
        assert "no simulated device 'toaster'" in run.stderr
    assert not (tmp_path / "r").exists()


def test_node_exits_failed_when_every_device_failed(redis_server: RedisServer, keys: Keys, data_dir: Path) -> None:
    env = cli_env(redis_server, data_dir)
    run = run_cli(env, "node", "--prefix", keys.prefix, "--node-id", "all-fail", "--device", MISSING_PORT,
                  "--duration", "3", "--no-sync-worker")  # fmt: skip
    assert run.returncode == exitcodes.FAILED, run.stderr[-3000:]
    assert seconds_to_report(run.stderr, MISSING_PORT) < 5.0
    reports = re.findall(rf"device {MISSING_PORT} \(serial-nonexistent-sensorium\) (?:error|lost): ", run.stderr)
    assert len(reports) == 1, run.stderr  # once, not once per retry
    assert "never delivered" in run.stderr
    part = run_cli(env, "node", "--prefix", keys.prefix, "--node-id", "some-fail", "--device", MISSING_PORT,
                   "--device", "sim:room", "--duration", "2.5", "--no-sync-worker")  # fmt: skip
    assert part.returncode == exitcodes.PARTIAL, part.stderr[-3000:]


def test_cli_errors_name_the_object_and_the_reason(tmp_path: Path) -> None:
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(tmp_path / "data"))
    missing = tmp_path / "no-such-folder"
    for args in (("sessions", str(missing)), ("export", str(missing)), ("verify", str(missing))):
        run = run_cli(env, *args)
        assert run.returncode == exitcodes.FAILED, (args, run.stderr)
        assert f"{missing} does not exist" in run.stderr, (args, run.stderr)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    run = run_cli(env, "export", str(a_file))
    assert run.returncode == exitcodes.FAILED and "is a file, not a recording folder" in run.stderr
    run = run_cli(env, "devices", "--transport", "foo", "--timeout", "0.5")
    assert (
        run.returncode == exitcodes.USAGE
        and "unknown transport 'foo' (known: ble, camera, lsl, pose, pupil, replay, serial, sim, ws)" in run.stderr
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_cli(env, "sessions", str(empty))
    assert run.returncode == exitcodes.OK and f"no recordings in {empty}" in run.stdout


def test_redis_stop_never_starts_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(data))
    env.pop("SENSORIUM_REDIS_URL", None)
    run = run_cli(env, "redis", "--stop")
    assert run.returncode == exitcodes.FAILED and "no embedded Redis is running" in run.stderr
    assert "started" not in run.stderr and not (data / "redis" / "server.json").exists()
    server = subprocess.Popen(sensorium("redis"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("redis://")
        stop = run_cli(env, "redis", "--stop")
        assert stop.returncode == exitcodes.OK and "stopped" in stop.stdout, stop.stderr
        assert server.wait(20) is not None
    finally:
        if server.poll() is None:
            server.kill()


def test_sensor_health_rules() -> None:
    assert stale_after(512) == 2.0 and stale_after(1.0) == 3.0 and stale_after(0.0) is None
    assert sensor_health(509, 512, 0.01).state == "ok"
    assert sensor_health(300, 512, 0.01).state == "rate low"
    h = sensor_health(509, 512, 3.0)
    assert (h.state, h.text, h.rate) == ("stale", "no data for 3 s", 0.0)
    assert sensor_health(509, 512, 12.4).text == "no data for 12 s" and sensor_health(509, 512, 12.4).state == "no data"
    assert sensor_health(509, 512, 0.5, "offline").state == "no data"  # a lost device's last rate means nothing
    assert sensor_health(0.0, 512, None).state == "waiting"
    assert sensor_health(0.2, 0.0, 30.0).state == "ok"  # irregular (markers): silence is allowed
    assert sensor_health(0.2, 0.0, 30.0, "lost").state == "no data"
    assert sensor_health(1.0, 1.0, 2.5).state == "ok" and sensor_health(1.0, 1.0, 3.5).state == "stale"
    # late only for this sensor's delivery pattern: batches every 1 s may be 2.6 s apart once
    assert sensor_health(509, 512, 2.6, delivery_gap_s=1.0).state == "ok"
    assert sensor_health(509, 512, 3.1, delivery_gap_s=1.0).state == "stale"
    # silence on the node's clock: a report a second old adds nothing, a late one all its age
    assert silence_s(100.0, 99.0, 98.5) == 0.5 and silence_s(110.0, 100.0, 99.0) == 11.0
    assert silence_s(100.0, 99.0, None) is None


def test_a_sensor_that_stops_sending_is_stale_in_the_tree_and_in_status(
    tmp_path: Path, redis_server: RedisServer, keys: Keys, arun: AsyncRunner
) -> None:
    pty = Pty(tmp_path / "ttyHEALTH")
    node = NodeThread(redis_server.url, keys, [f"serial:{pty.link}?rate=50&channels=x"], node_id="health").start()
    try:
        dev = node.node.devices[0]
        wait_for(lambda: dev.health.state == DeviceState.STREAMING, message="streaming")
        for _ in range(40):  # 50 Hz for 0.8 s
            pty.write(b"1.0\n")
            time.sleep(0.02)
        wait_for(lambda: dev.sensors(), message="sensor announced")
        sid = dev.sensors()[0].sensor_id
        model = DeviceTreeModel(keys)

        def row_state() -> tuple[str, str]:
            tree = arun.run(_refresh(model, redis_server.url))
            rows = [s for rows in tree.groups.values() for r in rows for s in r.sensors if s.info.sensor_id == sid]
            return (rows[0].health.state, rows[0].health.text) if rows else ("absent", "")

        wait_for(lambda: row_state()[0] in ("ok", "rate low"), 10, message="fresh")
        wait_for(lambda: row_state()[0] == "stale", 10, message="stale after 2 s without data")
        _state, text = row_state()
        assert re.fullmatch(r"no data for \d+ s", text) and dev.health.state == DeviceState.STREAMING
        status = read_status(redis_server.client(), keys)
        entry = next(s for s in status.sensors if s.sensor_id == sid)
        assert entry.health in ("stale", "no data") and entry.rate == 0.0 and (entry.silent_s or 0) >= 2.0
        assert "no data for" in format_status(status)
    finally:
        node.stop()
        pty.close()


async def _refresh(model: DeviceTreeModel, url: str):
    c = async_client(url)
    try:
        return await model.refresh(c)
    finally:
        await c.aclose()


def test_an_offline_device_never_shows_its_last_rate_as_ok(
    redis_server: RedisServer, keys: Keys, arun: AsyncRunner
) -> None:
    c = redis_server.client()
    info = SensorInfo("gone-ecg", "ecg", "gone", "Gone", channel_names=("ecg",), nominal_rate=512.0,
                      node_id="gone-node")  # fmt: skip
    register_sensors(c, keys, [info])
    now = time.time()
    status = DeviceStatus("gone", "Gone", "simulated", "sim:chest", "gone-node", "streaming", "",
                          {"rates": {"gone-ecg": 509.0}, "last_data": {"gone-ecg": now - 45}}, ["gone-ecg"],
                          updated=now - 45)  # fmt: skip
    c.hset(keys.device("gone"), mapping=status.to_mapping())
    c.sadd(keys.devices, "gone")
    tree = arun.run(_refresh(DeviceTreeModel(keys), redis_server.url))
    row = tree.groups["simulated"][0]
    assert row.state == "offline"
    health = row.sensors[0].health
    assert (health.state, health.text, health.rate) == ("no data", "no data for 45 s", 0.0)
    entry = next(s for s in read_status(c, keys).sensors if s.sensor_id == "gone-ecg")
    assert entry.health == "no data" and entry.health_text == "no data for 45 s" and entry.rate == 0.0


@pytest.mark.parametrize("flag", ["--json", ""])
def test_status_cli_reports_health(redis_server: RedisServer, keys: Keys, data_dir: Path, flag: str) -> None:
    node = NodeThread(redis_server.url, keys, ["sim:room"], node_id="stat").start()
    try:
        wait_for(lambda: node.node.acquisition.last_data, message="data")
        time.sleep(1.2)
        run = run_cli(cli_env(redis_server, data_dir), "status", "--prefix", keys.prefix, *([flag] if flag else []))
        assert run.returncode == 0, run.stderr
        if flag:
            entry = next(s for s in json.loads(run.stdout)["sensors"] if s["sensor_id"] == "sim-room-temperature")
            assert entry["health"] in ("ok", "rate low", "rate high") and entry["silent_s"] < 3
        else:
            assert re.search(r"sim-room-temperature .* Hz  (ok|rate low|rate high)", run.stdout), run.stdout
    finally:
        node.stop()
