"""Pupil Remote with a real pyzmq client doing what pupil-helpers' remote_annotations.py and
PsychoPy's Pupil Core plugin do: ask PUB_PORT, estimate Pupil time with ``t``, ``R``, publish an
annotation, ``r``. The annotation must become a session marker at the time it was stamped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import pyxdf
import zmq
from conftest import NodeThread, RedisServer, free_port, wait_for

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.sessions import Session
from sensorium_desktop.core.hostclock import host_time
from sensorium_desktop.recording.export import export_recording
from sensorium_desktop.worker.pupil_remote import PupilOptions


@pytest.fixture
def pupil(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> Iterator[tuple[NodeThread, int]]:
    port = free_port()
    node = NodeThread(redis_server.url, keys, ["sim:chest"], node_id="pupil-node", sessions_dir=tmp_path,
                      component_options={"pupil": PupilOptions(port)}).start()  # fmt: skip
    wait_for(lambda: node.remote("pupil") is not None and node.remote("pupil").ports.get("sub"), 20,
             message="pupil remote")
    wait_for(lambda: redis_server.client().xlen(keys.stream("sim-chest-ecg")) > 3, 20, message="data")
    yield node, port
    node.stop()


def request(req: zmq.Socket, text: str) -> str:
    req.send_string(text)
    return req.recv_string()


def test_psychopy_style_client_records_annotations_at_their_time(
    pupil: tuple[NodeThread, int], redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    _node, port = pupil
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")
    req.setsockopt(zmq.RCVTIMEO, 10_000)
    try:
        pub_port = int(request(req, "PUB_PORT"))
        sub_port = int(request(req, "SUB_PORT"))
        pub = ctx.socket(zmq.PUB)
        pub.connect(f"tcp://127.0.0.1:{pub_port}")
        sub = ctx.socket(zmq.SUB)
        sub.connect(f"tcp://127.0.0.1:{sub_port}")
        sub.subscribe("notify.")
        sub.setsockopt(zmq.RCVTIMEO, 10_000)
        time.sleep(0.5)  # as pupil-helpers do: let the PUB/SUB connections settle
        assert request(req, "T 1000.0") == "Timesync successful."
        t0 = host_time()
        pupil_now = float(request(req, "t"))
        t1 = host_time()
        offset = pupil_now - (t0 + t1) / 2  # the client's estimate, as the plugin makes it
        assert abs(pupil_now - 1000.0) < 1.0  # Pupil time restarted at 1000 s; our clock did not move
        assert request(req, "R psychopy run") == "OK"
        topic, body = sub.recv_multipart()
        assert topic == b"notify.recording.started"
        assert msgpack.unpackb(body)["session_name"] == "psychopy run"
        time.sleep(1.0)
        stamped_host = host_time()
        annotation = {"topic": "annotation", "label": "stimulus on", "timestamp": stamped_host + offset,
                      "duration": 0.5, "trial": 3}  # fmt: skip
        pub.send_string("annotation", flags=zmq.SNDMORE)
        pub.send(msgpack.packb(annotation, use_bin_type=True))
        time.sleep(1.0)
        assert request(req, "r") == "OK"
        assert request(req, "x-unknown") == "Unknown command."
        assert request(req, "T soon") == "'soon' cannot be converted to float."
        req.send_string("notify.calibration.should_start", flags=zmq.SNDMORE)
        req.send(msgpack.packb({"subject": "calibration.should_start"}))
        assert req.recv_string() == "Message forwarded."
        c = redis_server.client()
        sessions = [Session.from_json(v) for v in c.hvals(keys.sessions)]
        session = next(s for s in sessions if s.task == "psychopyrun")
        markers = [
            {k.decode(): v.decode() for k, v in f.items()} for _i, f in c.xrange(keys.markers(session.session_id))
        ]
        assert len(markers) == 1 and markers[0]["label"] == "stimulus on" and markers[0]["source"] == "pupil"
        assert abs(float(markers[0]["t_host"]) - stamped_host) < 0.005  # within 5 ms of when it was stamped
        assert float(markers[0]["t_original"]) == annotation["timestamp"]
        state = keys.recording(session.session_id)
        wait_for(lambda: c.hget(state, "state") == b"complete", 30, message="recorded")
        folder = Path(c.hget(state, "directory").decode())  # named after the session's metadata
        assert folder.parent == tmp_path and folder.name.endswith("task-psychopyrun")
        out = export_recording(folder, "xdf", tmp_path / "pupil.xdf")
        streams, _ = pyxdf.load_xdf(str(out.files[0]))
        labels = [m[0] for s in streams if s["info"]["type"][0] == "Markers" for m in s["time_series"]]
        assert "stimulus on" in labels
        assert _node.remote("pupil") is not None and _node.remote("pupil").counters["annotations"] == 1
    finally:
        ctx.destroy(0)


def test_malformed_annotations_and_garbage_are_counted_not_fatal(pupil: tuple[NodeThread, int]) -> None:
    node, port = pupil
    ctx = zmq.Context()
    try:
        req = ctx.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{port}")
        req.setsockopt(zmq.RCVTIMEO, 10_000)
        pub = ctx.socket(zmq.PUB)
        pub.connect(f"tcp://127.0.0.1:{request(req, 'PUB_PORT')}")
        time.sleep(0.5)
        assert request(req, "R") == "OK"
        pub.send_multipart([b"annotation", b"\xc1not msgpack"])
        pub.send_multipart([b"annotation", msgpack.packb({"label": "no time"})])
        wait_for(lambda: node.remote("pupil").counters["bad_messages"] >= 2, 10, message="counted")  # type: ignore[union-attr]
        assert request(req, "") == "Unknown command."
        assert request(req, "v").endswith("(Sensorium Desktop)")
        assert request(req, "r") == "OK"
    finally:
        ctx.destroy(0)
