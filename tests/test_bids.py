"""BIDS export checked by the official validator (bids-validator-deno, offline) and read back
by MNE and MNE-BIDS; ``sensorium_desktop.io.read_raw`` compared with the XDF export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
import pyxdf
import redis
from conftest import RedisServer, record_session, sensorium

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.recording.export import export_recording

VALIDATOR = shutil.which("bids-validator-deno") or str(Path(sys.executable).parent / "bids-validator-deno")


def validate(root: Path) -> tuple[list[dict], list[dict]]:
    """(errors, warnings) the official validator reports for ``root``."""
    r = subprocess.run([VALIDATOR, str(root), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(r.stdout)
    issues = report["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    return errors, [i for i in issues if i["severity"] == "warning"]


def record(redis_server: RedisServer, keys: Keys, devices: list[str], tmp: Path, meta: dict[str, str]) -> Path:
    def ready(c: redis.Redis) -> bool:
        ids = [x.decode() for x in c.smembers(keys.sensors)]
        return len(ids) >= 2 and c.xlen(keys.stream(ids[0])) > 3

    return record_session(redis_server, keys, devices, tmp / "sessions", "bidsrec", ["go", "stop"], ready,
                          node_id="bids-node", settle_s=1.0, **meta)  # fmt: skip


def test_simulated_session_is_valid_bids(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    devices = ["sim:chest", "sim:belt", "sim:room", "sim:wrist", "sim:pose", "sim:eyes"]
    rec = record(redis_server, keys, devices, tmp_path, {"participant": "P01", "session": "S1", "task": "rest",
                                                         "run": "1"})  # fmt: skip
    root = tmp_path / "bids"
    r = subprocess.run(sensorium("export", str(rec), "--format", "bids", "-o", str(root)), capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    errors, warnings = validate(root)
    assert errors == [], json.dumps(errors, indent=1)[:3000]
    beh = root / "sub-P01" / "ses-S1" / "beh"
    ecg = json.loads((beh / "sub-P01_ses-S1_task-rest_run-1_recording-simchestecg_physio.json").read_text())
    assert ecg["SamplingFrequency"] == 512.0 and ecg["Columns"] == ["ecg"] and ecg["ecg"]["Units"] == "mV"
    assert "linear interpolation" in ecg["Resampling"] and ecg["SensoriumSync"]["domain"]
    # the host's host → global mapping and the bound a route asymmetry leaves (½ fastest round trip)
    assert 0 < ecg["SensoriumSync"]["asymmetry_bound"] < 0.01 and ecg["SensoriumSync"]["host_to_global_sigma"] > 0
    events = (beh / "sub-P01_ses-S1_task-rest_run-1_events.tsv").read_text().splitlines()
    assert events[0].split("\t") == ["onset", "duration", "trial_type", "value", "source"]
    assert [e.split("\t")[2] for e in events[1:]] == ["go", "stop"]
    assert float(events[2].split("\t")[0]) - float(events[1].split("\t")[0]) == pytest.approx(1.0, abs=0.2)
    motion = root / "sub-P01" / "ses-S1" / "motion"
    imu = motion / "sub-P01_ses-S1_task-rest_tracksys-simwristimu_run-1_channels.tsv"
    rows = [r.split("\t") for r in imu.read_text().splitlines()]
    assert rows[0] == ["name", "component", "type", "tracked_point", "units"]
    assert rows[1][:3] == ["acc_x", "x", "ACCEL"] and {r[2] for r in rows[1:]} >= {"ACCEL", "GYRO"}
    pose = json.loads((motion / "sub-P01_ses-S1_task-rest_tracksys-simposeskeleton_run-1_motion.json").read_text())
    assert pose["POSChannelCount"] == 66 and pose["SamplingFrequency"] == 30.0
    gaze = json.loads((beh / "sub-P01_ses-S1_task-rest_run-1_recording-simeyeseyegaze_physio.json").read_text())
    assert gaze["PhysioType"] == "eyetrack" and gaze["Columns"][:3] == ["timestamp", "x_coordinate", "y_coordinate"]
    scans = (root / "sub-P01" / "ses-S1" / "sub-P01_ses-S1_scans.tsv").read_text()
    assert "beh/sub-P01_ses-S1_task-rest_run-1_recording-simchestecg_physio.tsv.gz" in scans
    # the same run again: refused, nothing overwritten
    again = subprocess.run(sensorium("export", str(rec), "--format", "bids", "-o", str(root)), capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert again.returncode != 0 and "run number" in again.stderr
    assert {w["code"] for w in warnings} <= {"README_FILE_MISSING", "TOO_FEW_AUTHORS", "NO_AUTHORS",
                                             "JSON_KEY_RECOMMENDED", "SIDECAR_KEY_RECOMMENDED"}  # fmt: skip


def test_lsl_eeg_session_is_valid_bids_and_mne_reads_it(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    mne = pytest.importorskip("mne", reason="mne is in the dev extra")
    mne_bids = pytest.importorskip("mne_bids", reason="mne-bids is in the dev extra")
    from sensorium_desktop.io import read_raw

    name = f"Amp{uuid.uuid4().hex[:6]}"
    info = pylsl.StreamInfo(name, "EEG", 8, 250.0, pylsl.cf_float32, f"amp-{name}")
    chans = info.desc().append_child("channels")
    for i in range(8):
        ch = chans.append_child("channel")
        ch.append_child_value("label", f"C{i + 1}")
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "EEG")
    outlet = pylsl.StreamOutlet(info)
    stop = False

    def push() -> None:
        k = 0
        while not stop:
            t = (k + np.arange(25)) / 250.0
            outlet.push_chunk((20 * np.sin(2 * np.pi * 10 * t[:, None] + np.arange(8))).astype(np.float32).tolist())
            k += 25
            time.sleep(0.1)

    import threading

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    try:
        rec = record(redis_server, keys, [f"lsl:{name}", "sim:chest"], tmp_path,
                     {"participant": "P02", "task": "flash", "run": "2"})  # fmt: skip
    finally:
        stop = True
        pusher.join(5)
    root = tmp_path / "bids"
    export_recording(rec, "bids", root)
    errors, _warnings = validate(root)
    assert errors == [], json.dumps(errors, indent=1)[:3000]
    eeg_dir = root / "sub-P02" / "eeg"
    assert (eeg_dir / "sub-P02_task-flash_run-2_eeg.vhdr").is_file()
    assert (eeg_dir / "sub-P02_task-flash_run-2_recording-simchestecg_physio.tsv.gz").is_file()
    path = mne_bids.BIDSPath(subject="P02", task="flash", run=2, datatype="eeg", root=root)
    raw_bids = mne_bids.read_raw_bids(path, verbose="error")
    export_recording(rec, "xdf", tmp_path / "rec.xdf")
    streams, _ = pyxdf.load_xdf(str(tmp_path / "rec.xdf"), synchronize_clocks=False, dejitter_timestamps=False)
    xdf_eeg = next(s for s in streams if s["info"]["type"][0] == "EEG")
    uv = np.asarray(xdf_eeg["time_series"], dtype=np.float64)
    np.testing.assert_allclose(raw_bids.get_data().T * 1e6, uv, rtol=1e-6, atol=1e-4)
    assert raw_bids.info["sfreq"] == 250.0 and raw_bids.ch_names == [f"C{i + 1}" for i in range(8)]
    assert [a["description"] for a in raw_bids.annotations] == ["go", "stop"]
    raw = read_raw(rec)  # our loader, on the session itself
    np.testing.assert_allclose(raw.get_data().T * 1e6, uv, rtol=1e-6, atol=1e-4)
    assert set(raw.get_channel_types()) == {"eeg"} and [a["description"] for a in raw.annotations] == ["go", "stop"]
    onsets = np.array([a["onset"] for a in raw.annotations])
    np.testing.assert_allclose(onsets, np.array([a["onset"] for a in raw_bids.annotations]), atol=1e-3)
    assert isinstance(raw, mne.io.BaseRaw)
    ecg = read_raw(rec, stream="sim-chest-ecg")
    assert ecg.get_channel_types() == ["ecg"] and ecg.info["sfreq"] == 512.0


def test_bids_asks_for_participant_and_task_instead_of_inventing_them(
    redis_server: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    """Before: a session without them silently became sub-01 / task-recording."""
    rec = record(redis_server, keys, ["sim:chest"], tmp_path, {})
    root = tmp_path / "bids"
    refused = subprocess.run(sensorium("export", str(rec), "--format", "bids", "-o", str(root)), capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert refused.returncode != 0
    assert "no participant and no task" in refused.stderr and "--participant and --task" in refused.stderr
    assert not (root / "sub-01").exists()
    given = subprocess.run(sensorium("export", str(rec), "--format", "bids", "-o", str(root), "--participant", "P9",
                                     "--task", "rest"), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert given.returncode == 0, given.stderr[-2000:]
    assert (root / "sub-P9" / "beh" / "sub-P9_task-rest_recording-simchestecg_physio.tsv.gz").is_file()
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("sub-")) == ["sub-P9"]
