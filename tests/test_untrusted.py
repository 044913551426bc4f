"""Redis is a trust boundary (issue 16 item 5): commands and sessions written by another process
or PC may not make this PC read or write files outside its data dir and the folders configured
locally, and ids that name files follow the id rule. Refusals are logged and counted."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import NodeThread, RedisServer, sensorium, wait_for

from sensorium_desktop import exitcodes, paths
from sensorium_desktop.bus.commands import send_command
from sensorium_desktop.bus.connection import async_client
from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.sessions import Session
from sensorium_desktop.core.ids import InvalidIdError
from sensorium_desktop.devices import DeviceError, open_device
from sensorium_desktop.worker.context import NodeConfig
from sensorium_desktop.worker.node import Node


def test_confine_resolves_links_and_dots(tmp_path: Path) -> None:
    root = (tmp_path / "root").resolve()
    (root / "inside").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    assert paths.confine(root / "inside" / "a.avi", [root], "file") == root / "inside" / "a.avi"
    with pytest.raises(paths.OutsideRootsError, match=r"path traversal.*outside the folders"):
        paths.confine(f"{root}/inside/../../x", [root], "session directory")
    with pytest.raises(paths.OutsideRootsError, match="outside the folders"):
        paths.confine(root / "escape" / "passwd", [root], "file")
    with pytest.raises(paths.OutsideRootsError, match="must be an absolute path"):
        paths.confine("relative/dir", [root], "session directory")


def _events(c, keys: Keys) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _i, f in c.xrange(keys.events)]


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("camera:0?record=/etc/cron.d/evil.avi", "camera record= file '/etc/cron.d/evil.avi' is outside the folders"),
        ("camera:{data}/../../../etc/x.mp4", "path traversal"),
        ("serial:/etc/passwd", "is not a serial port"),
        ("serial:/dev/../etc/passwd", "is not a serial port"),
    ],
)
def test_connect_commands_naming_files_outside_the_roots_are_refused(
    redis_server: RedisServer, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture, uri: str, why: str
) -> None:
    node = NodeThread(redis_server.url, keys, ["sim:room"], node_id="trust", components=False).start()
    c = redis_server.client()
    try:
        wait_for(lambda: c.exists(keys.telemetry("trust")), message="node up")
        uri = uri.format(data=paths.data_dir())

        async def send() -> str:
            a = async_client(redis_server.url)
            try:
                return await send_command(a, keys, "trust", "connect", uri=uri)
            finally:
                await a.aclose()

        import asyncio

        with caplog.at_level(logging.ERROR):
            cid = asyncio.run(send())
            wait_for(lambda: any(e.get("id") == cid for e in _events(c, keys)), message="answer")
        answer = next(e for e in _events(c, keys) if e.get("id") == cid)
        assert answer["ok"] == "0" and why in answer["message"], answer
        assert [d.device_id for d in node.node.devices] == ["sim-room"]
        assert node.node.counters["refused_commands"] == 1
        assert any("REFUSED a connect from Redis" in r.getMessage() for r in caplog.records)
        assert not Path("/etc/cron.d/evil.avi").exists()
    finally:
        node.stop()


def test_connect_of_a_file_inside_the_data_dir_is_accepted(redis_server: RedisServer, keys: Keys) -> None:
    """The check lets the operator's own files through (a video in the data dir is read)."""
    import cv2
    import numpy as np

    video = paths.sub_dir("video") / "trusted.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for i in range(5):
        writer.write(np.full((24, 32, 3), i * 40, np.uint8))
    writer.release()
    node = Node(NodeConfig(redis_server.url, keys, "trust-ok", [], components=False))
    device = open_device(f"camera:{video}?record={paths.sub_dir('video') / 'copy.avi'}", node.allowed_roots())
    assert device.device_id == "camera-trusted"
    with pytest.raises(DeviceError, match="outside the folders"):
        open_device(f"camera:{video}?record=/tmp/elsewhere.avi", node.allowed_roots())


def _session_refused(c, keys: Keys, session: Session, node_id: str, sessions_dir: Path) -> dict:
    session.state, session.recorder, session.started = "recording", node_id, time.time()
    c.hset(keys.sessions, session.session_id, session.to_json())
    wait_for(lambda: json.loads(c.hget(keys.sessions, session.session_id)).get("error"), 15, message="refusal")
    return json.loads(c.hget(keys.sessions, session.session_id))


def test_sessions_pointing_outside_the_roots_or_with_bad_ids_are_refused(
    redis_server: RedisServer, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sessions_dir = tmp_path / "sessions"
    node = NodeThread(redis_server.url, keys, ["sim:room"], node_id="rec-trust", sessions_dir=sessions_dir).start()
    c = redis_server.client()
    victim = tmp_path / "victim"
    try:
        with caplog.at_level(logging.ERROR):
            out = _session_refused(c, keys, Session("evil-dir", sensors=["sim-room-temperature"],
                                                    directory=str(victim)), "rec-trust", sessions_dir)  # fmt: skip
            assert out["state"] == "stopped" and "outside the folders" in out["error"]
            out = _session_refused(c, keys, Session("../../escape", sensors=["sim-room-temperature"]), "rec-trust",
                                   sessions_dir)  # fmt: skip
            assert "session id '../../escape' is invalid" in out["error"]
        assert not victim.exists() and not (tmp_path / "escape").exists()
        assert node.node.counters["refused_sessions"] == 2
        assert sum("REFUSED to record session" in r.getMessage() for r in caplog.records) == 2
        # inside the node's sessions dir it records as always
        good = Session("good-one", sensors=["sim-room-temperature"], directory=str(sessions_dir / "good"),
                       state="recording", recorder="rec-trust", started=time.time())  # fmt: skip
        c.hset(keys.sessions, "good-one", good.to_json())
        wait_for(lambda: (sessions_dir / "good" / "session.json").exists(), 15, message="recording")
    finally:
        node.stop()


def test_node_ids_follow_the_id_rule(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(InvalidIdError):
        Node(NodeConfig(redis_server.url, keys, "../x", []))
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(tmp_path))
    for cmd in (("node", "--duration", "1"), ("record", "--duration", "1", "--simulate")):
        run = subprocess.run(sensorium(*cmd, "--node-id", "../x"), env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == exitcodes.USAGE and "node id '../x' is invalid" in run.stderr, run.stderr
    assert not (tmp_path / "spill").exists() or not list((tmp_path / "spill").glob("*x*"))
