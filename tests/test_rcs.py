"""LabRecorder remote control against real sockets: the LabRecorder README's Python client
records a pyxdf-readable file at LabRecorder's BIDS path; selections, status, required streams,
LabRecorder.cfg, and bad clients that must never block the node or another client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyxdf
from conftest import NodeThread, RedisServer, free_port, sensorium, wait_for

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.recording.xdf import xdf_stream_key
from sensorium_desktop.worker.rcs import FileFields, LabRecorderConfig, RcsOptions, rename_old

SENSORS = {"sim-chest-ecg", "sim-chest-hr", "sim-chest-hrv", "sim-room-temperature"}


class Client:
    """What LabRecorder's README does: ``socket.create_connection(("localhost", 22345))``."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("localhost", port), timeout=20)

    def send(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\n")
        return self.sock.recv(2)

    def status(self) -> dict:
        self.sock.sendall(b"status\n")
        buf = b""
        while not buf.endswith(b"\n"):
            buf += self.sock.recv(65536)
        return json.loads(buf)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def lab(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> Iterator[tuple[NodeThread, int]]:
    port = free_port()
    node = NodeThread(redis_server.url, keys, ["sim:chest", "sim:room"], node_id="rcs-node",
                      sessions_dir=tmp_path / "sessions",
                      component_options={"rcs": RcsOptions(port)}).start()  # fmt: skip
    c = redis_server.client()
    wait_for(lambda: c.scard(keys.devices) >= 2 and c.xlen(keys.stream("sim-chest-ecg")) > 3, 20, message="streams")
    wait_for(lambda: node.remote("rcs") is not None and node.remote("rcs").listening, 10, message="rcs listening")
    yield node, port
    node.stop()


def test_labrecorder_readme_client_records_at_the_bids_path(
    lab: tuple[NodeThread, int], tmp_path: Path, redis_server: RedisServer, keys: Keys
) -> None:
    _node, port = lab
    redis_url = redis_server.url
    root = tmp_path / "study"
    s = Client(port)
    try:
        assert s.send(f"filename {{root:{root}}} {{task:flash}} {{run:2}} {{participant:P003}} {{session:S1}} "
                      f"{{acquisition:A}} {{modality:EEG}}") == b"OK"  # fmt: skip
        assert s.send("select all") == b"OK"
        assert s.send("start") == b"OK"
        time.sleep(1.0)
        assert s.send("marker go") == b"OK"  # extension: one marker inbox
        cli = subprocess.run(sensorium("marker", "from the cli", "--prefix", keys.prefix), capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, SENSORIUM_REDIS_URL=redis_url))  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        time.sleep(1.5)
        st = s.status()
        assert st["recording"] and st["samples"] > 0 and set(st["sensors"]) >= SENSORS
        assert s.send("stop") == b"OK"
        path = root / "sub-P003" / "ses-S1" / "eeg" / "sub-P003_ses-S1_task-flash_acq-A_run-002_eeg.xdf"
        wait_for(lambda: s.status()["state"] == "written", 60, message="XDF written")
        assert s.status()["file"] == str(path) and path.is_file()
        streams, _header = pyxdf.load_xdf(str(path))
        by_key = {xdf_stream_key(x): x for x in streams}
        assert set(by_key) >= SENSORS
        assert len(by_key["sim-chest-ecg"]["time_stamps"]) > 500
        markers = [m[0] for x in streams if x["info"]["type"][0] == "Markers" for m in x["time_series"]]
        assert "go" in markers and "from the cli" in markers
        # again with the same name: the first file is kept as _old1, never overwritten
        first = path.stat().st_size
        assert s.send("start") == b"OK"
        time.sleep(1.0)
        assert s.send("stop") == b"OK"
        wait_for(lambda: s.status()["state"] == "written" and path.exists(), 60, message="second XDF")
        old = path.with_name(path.stem + "_old1.xdf")
        assert old.stat().st_size == first
    finally:
        s.close()


def test_a_selection_is_what_start_records(lab: tuple[NodeThread, int], tmp_path: Path) -> None:
    _node, port = lab
    s = Client(port)
    try:
        s.send(f"filename {{root:{tmp_path / 'sel'}}} {{template:exp%n/block_%b.xdf}} {{task:Rest}} {{run:7}}")
        assert s.send("select none") == b"OK"
        assert s.send("select sim-chest-ecg") == b"OK"
        assert s.send("regexselect ^sim-room-") == b"OK"
        assert s.send("start") == b"OK"  # LabRecorder would select everything here
        assert s.status()["sensors"] == ["sim-chest-ecg", "sim-room-temperature"]
        time.sleep(1.5)
        s.send("stop")
        path = tmp_path / "sel" / "exp007" / "block_Rest.xdf"  # the legacy template
        wait_for(lambda: s.status()["state"] == "written", 60, message="XDF written")
        assert s.status()["file"] == str(path)
        keys_in_file = {xdf_stream_key(x) for x in pyxdf.load_xdf(str(path))[0]}
        assert {"sim-chest-ecg", "sim-room-temperature"} <= keys_in_file and "sim-chest-hr" not in keys_in_file
        assert s.send("select no-such-sensor") == b"OK" and "no such sensor" in s.status()["error"]
        assert s.send("marker nobody records") == b"OK" and s.status()["error"] == "marker: nothing records"
    finally:
        s.close()


def test_bad_clients_never_block_the_node_or_another_client(lab: tuple[NodeThread, int]) -> None:
    node, port = lab
    garbage = socket.create_connection(("localhost", port))
    garbage.sendall(b"\xff\xfe garbage \x00\n" + b"x" * (1 << 20) + b"\nwhatever\nselect\n")
    silent = socket.socket()  # sends commands, never reads a reply
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    silent.connect(("localhost", port))
    dropped = threading.Event()

    def flood() -> None:
        try:
            while True:
                silent.sendall(b"update\n" * 512)
        except OSError:
            dropped.set()

    threading.Thread(target=flood, daemon=True).start()
    half_open = socket.create_connection(("localhost", port))
    half_open.sendall(b"sta")  # never finished
    good = Client(port)
    try:
        t0 = time.monotonic()
        st = good.status()
        assert time.monotonic() - t0 < 2.0 and st["state"] == "idle"
        assert garbage.recv(16).startswith(b"OK")
        assert node.remote("rcs") is not None and node.remote("rcs").clients >= 3
        assert dropped.wait(40), "the client that never reads was not dropped"
        assert good.send("update") == b"OK"
        delivered = sum(d.health.samples.get("sim-chest-ecg", 0) for d in node.node.devices)
        wait_for(lambda: sum(d.health.samples.get("sim-chest-ecg", 0) for d in node.node.devices) > delivered,
                 message="acquisition goes on")  # fmt: skip
    finally:
        for sock in (garbage, silent, half_open):
            sock.close()
        good.close()


def test_required_streams_block_start_and_status_says_why(
    redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    cfg = LabRecorderConfig.parse(
        '\ufeff; LabRecorder.cfg\nStudyRoot="{root}"\nRequiredStreams="BioSemi (labpc)", "sim-chest-ecg (x)"\n'
        'SessionBlocks="Rest", "Task"\nBidsModalities="eeg", "beh"\nRCSEnabled=1\nRCSPort=22345\nAutoStart=0\n'
        .replace("{root}", str(tmp_path / "root"))
    )  # fmt: skip
    assert cfg.required_streams == ["BioSemi (labpc)", "sim-chest-ecg (x)"] and cfg.session_blocks == ["Rest", "Task"]
    assert cfg.rcs_port == 22345 and cfg.rcs_enabled is True and cfg.study_root == str(tmp_path / "root")
    port = free_port()
    node = NodeThread(redis_server.url, keys, ["sim:chest"], node_id="rcs-req", sessions_dir=tmp_path / "s",
                      component_options={"rcs": RcsOptions(port, config=cfg)}).start()  # fmt: skip
    try:
        wait_for(lambda: node.remote("rcs") is not None and node.remote("rcs").listening, 20, message="rcs")
        wait_for(lambda: redis_server.client().xlen(keys.stream("sim-chest-ecg")) > 3, 20, message="data")
        s = Client(port)
        assert s.send("start") == b"OK"
        st = s.status()
        assert not st["recording"] and st["state"] == "blocked"
        assert st["missing_required"] == ["BioSemi (labpc)"] and "BioSemi (labpc)" in st["error"]
        assert "task-Rest" in st["next_file"] and st["next_file"].startswith(str(tmp_path / "root"))
        s.close()
    finally:
        node.stop()


def test_a_taken_port_is_reported_and_the_node_carries_on(redis_server: RedisServer, keys: Keys) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    node = NodeThread(redis_server.url, keys, ["sim:room"], node_id="rcs-taken",
                      component_options={"rcs": RcsOptions(port)}).start()  # fmt: skip
    try:
        wait_for(lambda: node.remote("rcs") is not None and node.remote("rcs").listening, 20, message="rcs tried")
        assert node.remote("rcs").listening == f"off: port {port} in use"  # type: ignore[union-attr]
        wait_for(lambda: node.node.acquisition.last_data, 10, message="the node still acquires")
    finally:
        node.stop()
        taken.close()


def test_file_names_follow_labrecorder() -> None:
    f = FileFields(root="/data")
    f.update("filename {root:/study} {task:go} {run:12} {participant:07} {session:2} {modality:MEG} {foo:bar}")
    assert f.relative_path() == "sub-07/ses-2/meg/sub-07_ses-2_task-go_run-012_meg.xdf"
    f.update("filename {acquisition:hi}")
    assert f.path(Path("/x")) == Path("/study/sub-07/ses-2/meg/sub-07_ses-2_task-go_acq-hi_run-012_meg.xdf")
    f.update("filename {template:Exp%n/%P_Block_%b.XDF}")
    assert f.relative_path() == "exp012/07_block_go.xdf"  # LabRecorder lower-cases the template, not the values


def test_rename_old_takes_the_next_free_number(tmp_path: Path) -> None:
    p = tmp_path / "a.xdf"
    p.write_text("1")
    (tmp_path / "a_old1.xdf").write_text("0")
    assert rename_old(p) == tmp_path / "a_old2.xdf" and not p.exists()
    assert rename_old(p) is None


@pytest.mark.gui
def test_the_window_shows_the_remote_controls(qtbot, redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    from conftest import AsyncRunner
    from test_gui_panels import make_window, pump

    from sensorium_desktop.worker.pupil_remote import PupilOptions

    rcs_port, pupil_port = free_port(), free_port()
    node = NodeThread(redis_server.url, keys, ["sim:room"], node_id="remote-gui", sessions_dir=tmp_path,
                      component_options={"rcs": RcsOptions(rcs_port),
                                         "pupil": PupilOptions(pupil_port)}).start()  # fmt: skip
    arun = AsyncRunner()
    try:
        win = make_window(qtbot, redis_server.url, keys, tmp_path / "s.ini")
        wait_for(lambda: node.remote("rcs") is not None and node.remote("rcs").listening, 20, message="rcs listening")
        s = Client(rcs_port)
        s.send("select none")
        qtbot.waitUntil(lambda: (pump(arun, win), f"LabRecorder 127.0.0.1:{rcs_port} (1 client)"
                                 in win.status_remote.text())[1], timeout=15000)  # fmt: skip
        assert f"Pupil {pupil_port}" in win.status_remote.text()
        tip = win.status_remote.toolTip()
        assert "last command 'select none'" in tip and f"Pupil Remote port {pupil_port}" in tip
        win.statusBar().grab().save(str(tmp_path / "statusbar.png"))
        s.close()
    finally:
        arun.close()
        node.stop()


def test_marker_cli_fails_when_nothing_records(redis_server: RedisServer, keys: Keys) -> None:
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url)
    run = subprocess.run(sensorium("marker", "lost?", "--prefix", keys.prefix + "-idle"), capture_output=True,
                         text=True, timeout=60, env=env)  # fmt: skip
    assert run.returncode == 1 and "not stored: no session is being recorded" in run.stderr
