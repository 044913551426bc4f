"""Damaged recordings: flipped bytes, zeroed pages and cuts in the spool. Every intact frame
is still read and exported; every damaged range and every loss is reported; the CLI exits 3
(``export`` without ``--allow-loss``, ``verify``) and ``sessions`` calls the session damaged."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyxdf
from conftest import sensorium
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_recording import make_recording

from sensorium_desktop.core.framing import FRAME_OVERHEAD, scan_frames
from sensorium_desktop.recording.export import export_recording
from sensorium_desktop.recording.reader import list_recordings, load_recording
from sensorium_desktop.recording.spool import RecordKind, parse_batch_record, recover, spool_files
from sensorium_desktop.recording.xdf import xdf_stream_key

TEMPLATE: dict[str, object] = {}


def template(tmp_root: Path) -> Path:
    """One intact recording, made once and copied for every example."""
    if "dir" not in TEMPLATE:
        d = tmp_root / "template"
        make_recording(d, seconds=6)
        TEMPLATE["dir"] = d
    return TEMPLATE["dir"]  # type: ignore[return-value]


def batches_by_frame(path: Path) -> list[tuple[int, int, str, int, int]]:
    """(start, end, sensor, seq, samples) of every batch frame of an intact spool file."""
    out = []
    data = path.read_bytes()
    for off, payload in scan_frames(data):
        if payload[0] == RecordKind.BATCH:
            b = parse_batch_record(payload[1:])
            out.append((off, off + FRAME_OVERHEAD + len(payload), b.sensor_id, b.seq, b.t_arrival.size))
    return out


damage_ops = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 64)),
        st.tuples(st.just("zero"), st.floats(0, 1), st.just(4096)),
        st.tuples(st.just("cut"), st.floats(0.3, 1), st.just(0)),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(ops=[("zero", 0.0, 4096), ("zero", 0.15625, 4096), ("cut", 0.5, 0)])  # every app-note batch lost
@given(ops=damage_ops)
def test_every_intact_frame_is_read_and_every_damage_reported(tmp_path_factory, ops) -> None:
    root = tmp_path_factory.mktemp("dmg")
    rec_dir = root / "rec"
    shutil.copytree(template(tmp_path_factory.getbasetemp()), rec_dir)
    spool = spool_files(rec_dir)[0]
    frames = batches_by_frame(spool)
    original = spool.read_bytes()
    data = bytearray(original)
    hit = np.zeros(len(data), dtype=bool)
    cut = len(data)
    for kind, where, n in ops:
        at = int(where * (len(data) - 1))
        if kind == "flip":
            for k in range(at, min(at + n, len(data))):
                data[k] ^= 0xA5
            hit[at : at + n] = True
        elif kind == "zero":
            data[at : at + n] = bytes(min(n, len(data) - at))
            hit[at : at + n] = True
        else:
            cut = min(cut, at)
    data = data[:cut]
    hit[cut:] = True
    spool.write_bytes(bytes(data))
    intact = [f for f in frames if not hit[f[0] : f[1]].any()]
    damaged = [f for f in frames if hit[f[0] : f[1]].any()]
    rec = load_recording(rec_dir, trim=False)
    got = {(sid, int(s)) for sid, d in rec.sensors.items() for s in d.batch_seq.tolist()}
    for _a, _b, sid, seq, _n in intact:
        assert (sid, seq) in got, f"intact batch {sid}#{seq} not read"
    # every byte that changed lies in a reported damaged range (a changed frame fails its CRC)
    changed = np.flatnonzero(np.frombuffer(bytes(data), np.uint8) != np.frombuffer(original[: len(data)], np.uint8))
    covered = np.zeros(len(data), dtype=bool)
    for _name, a, b in rec.damage:
        covered[a:b] = True
    assert covered[changed].all(), f"{int((~covered[changed]).sum())} changed bytes outside the reported damage"
    # every batch that could not be read is reported as a loss of its sensor
    lost = [(sid, seq) for _a, _b, sid, seq, _n in damaged if (sid, seq) not in got]
    if lost:
        assert {sid for sid, _ in lost} <= {x["sensor"] for x in rec.losses}, (lost, rec.losses)
    # recover() (a recorder resuming) keeps every intact frame after the damage
    recover(rec_dir)
    again = load_recording(rec_dir, trim=False)
    got_again = {(sid, int(s)) for sid, d in again.sensors.items() for s in d.batch_seq.tolist()}
    assert {(sid, seq) for _a, _b, sid, seq, _n in intact} <= got_again


def test_cli_export_verify_and_sessions_say_a_flipped_spool_is_damaged(tmp_path: Path, data_dir: Path) -> None:
    rec_dir = tmp_path / "rec"
    make_recording(rec_dir, seconds=8)
    spool = spool_files(rec_dir)[0]
    data = bytearray(spool.read_bytes())
    mid = len(data) // 2
    for k in range(mid, mid + 64):
        data[k] ^= 0xFF
    spool.write_bytes(bytes(data))
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(data_dir))
    out = tmp_path / "out.xdf"
    run = subprocess.run(sensorium("export", str(rec_dir), "-o", str(out)), env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 3, run.stderr[-2000:]
    assert "WITH LOSSES" in run.stderr and "not in the recording between" in run.stderr
    streams, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)
    by_key = {xdf_stream_key(s): s for s in streams}
    sensors = {k: s for k, s in by_key.items() if k not in ("Markers", "MarkerSources")}
    lossy = [k for k, s in sensors.items() if "losses" in s["info"]["desc"][0]["sensorium"][0]]
    assert lossy, "the loss is not in the file's metadata"
    full = export_recording(rec_dir, "xdf", tmp_path / "again.xdf")
    assert full.samples > 0.9 * sum(len(s["time_stamps"]) for s in streams)  # the rest after the damage is there
    ok = subprocess.run(sensorium("export", str(rec_dir), "-o", str(out), "--allow-loss"), env=env,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    verify = subprocess.run(sensorium("verify", str(rec_dir)), env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 3 and "DAMAGED" in verify.stdout and "damaged:" in verify.stdout
    listing = subprocess.run(sensorium("sessions", str(tmp_path)), env=env, capture_output=True, text=True)
    assert "damaged" in listing.stdout and "DAMAGED" in listing.stdout
    assert list_recordings([tmp_path])[0]["damaged_bytes"] > 0
    clean = tmp_path / "clean"
    make_recording(clean, seconds=2)
    assert subprocess.run(sensorium("verify", str(clean)), env=env, capture_output=True).returncode == 0
