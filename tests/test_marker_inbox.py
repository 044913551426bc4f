"""One marker inbox: markers from a LabRecorder script (RCS), the CLI, the window, a Pupil
annotation and a real LSL marker outlet land in one session marker stream on the global clock,
each with its source and its sender's own timestamp, and are exported to XDF and CSV."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import msgpack
import numpy as np
import pylsl
import pyxdf
import zmq
from conftest import NodeThread, RedisServer, free_port, sensorium, wait_for, with_async_redis

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.registry import live_sensors_async
from sensorium_desktop.bus.sessions import add_marker, list_sessions, read_markers
from sensorium_desktop.core.hostclock import host_time
from sensorium_desktop.recording.export import export_recording
from sensorium_desktop.recording.reader import load_recording
from sensorium_desktop.recording.xdf import xdf_stream_key
from sensorium_desktop.worker.pupil_remote import PupilOptions
from sensorium_desktop.worker.rcs import RcsOptions


def rcs_send(sock: socket.socket, line: str) -> bytes:
    sock.sendall(line.encode() + b"\n")
    return sock.recv(2)


def test_every_marker_source_lands_in_one_session_stream(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    name = f"Stim{uuid.uuid4().hex[:6]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, 0, pylsl.cf_string, f"psychopy-{name}"))
    rcs_port, pupil_port = free_port(), free_port()
    url = redis_server.url
    node = NodeThread(redis_server.url, keys, ["sim:room", f"lsl:{name}"], node_id="inbox-node",
                      sessions_dir=tmp_path / "sessions", component_options={"rcs": RcsOptions(rcs_port),
                      "pupil": PupilOptions(pupil_port)}).start()  # fmt: skip
    c = redis_server.client()
    ctx = zmq.Context()
    try:
        wait_for(lambda: c.xlen(keys.stream("sim-room-temperature")) > 2, 20, message="sim data")
        wait_for(lambda: node.remote("rcs") is not None and node.remote("rcs").listening, 10, message="rcs")
        wait_for(lambda: node.remote("pupil") is not None and node.remote("pupil").ports.get("pub"), 10,
                 message="pupil")
        lsl_dev = next(d for d in node.node.devices if d.uri.scheme == "lsl")
        wait_for(lambda: lsl_dev.sensors(), 15, message="the LSL marker stream described")
        lsl_sid = lsl_dev.sensors()[0].sensor_id
        live_ids = lambda: {x.sensor_id for x in with_async_redis(url, lambda ac: live_sensors_async(ac, keys))}  # noqa: E731
        wait_for(lambda: lsl_sid in live_ids(), 15, message="the LSL sensor online")
        rcs = socket.create_connection(("127.0.0.1", rcs_port), timeout=20)
        root = tmp_path / "study"
        assert rcs_send(rcs, f"filename {{root:{root}}} {{participant:P1}} {{task:inbox}} {{modality:beh}}") == b"OK"
        assert rcs_send(rcs, "select all") == b"OK"
        assert rcs_send(rcs, "start") == b"OK"
        recording = lambda: [x for x in with_async_redis(url, lambda ac: list_sessions(ac, keys))  # noqa: E731
                             if x.state == "recording"]  # fmt: skip
        wait_for(recording, 20, message="recording")
        session_id = recording()[0].session_id
        time.sleep(1.0)
        # LSL: stamped 0.2 s before it is pushed, as a stimulus script stamps its flip
        lsl_stamps = [pylsl.local_clock() - 0.2]
        outlet.push_sample(["flip 1"], lsl_stamps[0])
        time.sleep(0.3)
        lsl_stamps.append(pylsl.local_clock() - 0.2)
        outlet.push_sample(["flip 2"], lsl_stamps[1])
        assert rcs_send(rcs, "marker from rcs") == b"OK"
        cli = subprocess.run(sensorium("marker", "from cli", "--prefix", keys.prefix), capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url))  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        with_async_redis(url, lambda ac: add_marker(ac, keys, session_id, "from window", "window"))
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.RCVTIMEO, 10_000)
        req.connect(f"tcp://127.0.0.1:{pupil_port}")
        req.send_string("PUB_PORT")
        pub = ctx.socket(zmq.PUB)
        pub.connect(f"tcp://127.0.0.1:{int(req.recv_string())}")
        req.send_string("t")
        pupil_now, host_now = float(req.recv_string()), host_time()
        time.sleep(0.5)
        pub.send_string("annotation", flags=zmq.SNDMORE)
        pub.send(msgpack.packb({"topic": "annotation", "label": "from pupil", "timestamp": pupil_now,
                                "duration": 0.25}, use_bin_type=True))  # fmt: skip
        live = lambda: {m["source"] for m in with_async_redis(url, lambda ac: read_markers(ac, keys, session_id))}  # noqa: E731
        wanted = {f"lsl:{name}", "rcs", "cli", "window", "pupil"}
        wait_for(lambda: wanted <= live(), 20, message="every source in the live marker stream")
        assert rcs_send(rcs, "stop") == b"OK"
        wait_for(lambda: list((tmp_path / "sessions").glob("*/session.json")) and load_recording(
            next((tmp_path / "sessions").glob("*/session.json")).parent).meta.get("state") == "complete", 60,
            message="recording complete")  # fmt: skip
        rcs.close()
    finally:
        ctx.destroy(linger=0)
        node.stop()
    rec_dir = next((tmp_path / "sessions").glob("*/session.json")).parent
    rec = load_recording(rec_dir)
    by_label = {m["label"]: m for m in rec.markers}
    assert set(by_label) >= {"flip 1", "flip 2", "from rcs", "from cli", "from window", "from pupil"}
    assert [m["label"] for m in rec.markers].count("flip 1") == 1  # once, not per reader
    assert by_label["flip 1"]["sensor_id"] == lsl_sid and by_label["flip 1"]["clock_original"] == "lsl"
    assert abs(float(by_label["flip 1"]["t_original"]) - lsl_stamps[0]) < 1e-6
    assert abs(float(by_label["from pupil"]["t_original"]) - pupil_now) < 1e-9
    out = tmp_path / "inbox.xdf"
    export_recording(rec_dir, "xdf", out)
    streams, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)
    by_key = {xdf_stream_key(s): s for s in streams}
    markers, sources = by_key["Markers"], by_key["MarkerSources"]
    labels = [m[0] for m in markers["time_series"]]
    source_of = {m[0]: s[0] for m, s in zip(markers["time_series"], sources["time_series"], strict=True)}
    assert source_of["flip 1"] == f"lsl:{name}" and source_of["from rcs"] == "rcs" and source_of["from cli"] == "cli"
    assert source_of["from window"] == "window" and source_of["from pupil"] == "pupil"
    # the LSL markers sit exactly where the LSL stream's own samples are in the same file
    lsl_stream = by_key[lsl_sid]
    own = dict(zip([v[0] for v in lsl_stream["time_series"]], lsl_stream["time_stamps"], strict=True))
    t_of = dict(zip(labels, markers["time_stamps"], strict=True))
    for label in ("flip 1", "flip 2"):
        assert abs(t_of[label] - own[label]) < 1e-6, label
    assert abs((t_of["flip 2"] - t_of["flip 1"]) - (lsl_stamps[1] - lsl_stamps[0])) < 1e-4
    # the Pupil annotation is at the host time it was stamped (its Pupil time mapped back)
    window_host = float(by_label["from window"]["t_host"])
    assert abs((t_of["from pupil"] - t_of["from window"]) - (host_now - window_host)) < 0.005
    assert labels == sorted(labels, key=t_of.__getitem__)
    csv_dir = tmp_path / "csv"
    export_recording(rec_dir, "csv", csv_dir)
    with open(csv_dir / "markers.csv", encoding="utf-8") as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    assert rows["flip 2"]["source"] == f"lsl:{name}" and rows["from pupil"]["duration"] == "0.25"
    assert np.isclose(float(rows["flip 1"]["t_global"]), t_of["flip 1"], atol=1e-6)
    assert float(rows["flip 1"]["t_original"]) == float(by_label["flip 1"]["t_original"])
