"""LSL timing end to end, as a stimulus PC does it: an 8-channel 250 Hz EEG outlet and a
Markers outlet stamping each marker with an EEG sample's own LSL time, in their own LSL
session, recorded by ``sensorium record --device lsl:… --device lsl:…``, exported, read back
with pyxdf. Equal LSL stamps must come out equal; the EEG keeps its spacing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pyxdf
from conftest import RedisServer, sensorium

from sensorium_desktop.bus.keys import Keys

OUTLETS = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import pylsl

    name, seconds = sys.argv[1], float(sys.argv[2])
    info = pylsl.StreamInfo(name, "EEG", 8, 250.0, pylsl.cf_float32, f"amp-{name}")
    chans = info.desc().append_child("channels")
    for i in range(8):
        ch = chans.append_child("channel")
        ch.append_child_value("label", f"C{i + 1}")
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "EEG")
    info.desc().append_child("acquisition").append_child_value("manufacturer", "TestAmp")
    eeg = pylsl.StreamOutlet(info)
    mk = pylsl.StreamOutlet(pylsl.StreamInfo(f"{name}-markers", "Markers", 1, 0, pylsl.cf_string, f"stim-{name}"))
    print("ready", flush=True)
    t0 = pylsl.local_clock() + 0.05
    k = 0
    end = t0 + seconds
    while pylsl.local_clock() < end:
        due = int((pylsl.local_clock() - t0) * 250.0)
        if due > k:
            n = due - k
            idx = np.arange(k, due)
            data = np.zeros((n, 8), dtype=np.float32)
            data[:, 0] = idx
            data[:, 1:] = np.sin(idx / 25.0)[:, None]
            stamps = (t0 + idx / 250.0).tolist()
            eeg.push_chunk(data, stamps)
            for j in idx[idx % 50 == 7].tolist():  # a marker every 0.2 s on EEG sample j's own stamp
                mk.push_sample([str(j)], t0 + j / 250.0)
            k = due
        time.sleep(0.004)
    """
)


def test_lsl_marker_and_eeg_with_equal_stamps_export_equal_times(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(f"[lab]\nSessionID = sensorium-test-{uuid.uuid4().hex}\n")
    env = dict(os.environ, LSLAPICFG=str(cfg), SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir))
    name = f"EEG{uuid.uuid4().hex[:6]}"
    script = tmp_path / "outlets.py"
    script.write_text(OUTLETS)
    outlets = subprocess.Popen([sys.executable, str(script), name, "40"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert outlets.stdout is not None and outlets.stdout.readline().strip() == "ready"
        out = tmp_path / "rec"
        run = subprocess.run(
            sensorium("record", "--prefix", keys.prefix, "--device", f"lsl:{name}", "--device", f"lsl:{name}-markers",
                      "--duration", "6", "--out", str(out)),
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        xdf = tmp_path / "lsl.xdf"
        exp = subprocess.run(sensorium("export", str(out), "--format", "xdf", "-o", str(xdf)), env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert exp.returncode == 0, exp.stderr[-3000:]
    finally:
        outlets.kill()
        outlets.wait()
    # pyxdf as LSL users load it (clock sync on; dejitter off to see our own stamps)
    streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg, mk = by_name[name], by_name[f"{name}-markers"]
    assert eeg["info"]["type"] == ["EEG"] and mk["info"]["type"] == ["Markers"]
    assert eeg["info"]["source_id"] == [f"amp-{name}"] and mk["info"]["source_id"] == [f"stim-{name}"]
    desc = eeg["info"]["desc"][0]
    assert desc["acquisition"][0]["manufacturer"] == ["TestAmp"]
    assert [c["label"][0] for c in desc["channels"][0]["channel"]] == [f"C{i}" for i in range(1, 9)]
    assert desc["synchronization"][0]["domain_kind"] == ["measured"]
    index = eeg["time_series"][:, 0].astype(np.int64)
    t_eeg = eeg["time_stamps"]
    assert len(index) > 5 * 250 and np.all(np.diff(index) == 1), "EEG samples missing or reordered"
    residual = np.diff(t_eeg) - 1 / 250.0
    assert np.max(np.abs(residual)) <= 50e-6, f"EEG spacing residual {np.max(np.abs(residual)) * 1e6:.1f} us"
    rate = (t_eeg[-1] - t_eeg[0]) / ((index[-1] - index[0]) / 250.0) - 1
    assert abs(rate) <= 1e-6, f"EEG rate error {rate * 1e6:.2f} ppm"
    pos = {int(k): i for i, k in enumerate(index)}
    pairs = [(float(t), pos[int(v[0])]) for t, v in zip(mk["time_stamps"], mk["time_series"], strict=True)
             if int(v[0]) in pos]  # fmt: skip
    assert len(pairs) >= 20
    diff = np.array([t - t_eeg[i] for t, i in pairs])
    assert np.max(np.abs(diff)) <= 50e-6, f"marker to sample up to {np.max(np.abs(diff)) * 1e6:.1f} us"
    # with pyxdf's defaults (dejitter on) too
    streams, _ = pyxdf.load_xdf(str(xdf))
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg, mk = by_name[name], by_name[f"{name}-markers"]
    pos = {int(k): t for k, t in zip(eeg["time_series"][:, 0].astype(np.int64), eeg["time_stamps"], strict=True)}
    diff = np.array([t - pos[int(v[0])] for t, v in zip(mk["time_stamps"], mk["time_series"], strict=True)
                     if int(v[0]) in pos])  # fmt: skip
    assert np.max(np.abs(diff)) <= 50e-6, f"(dejittered) marker to sample up to {np.max(np.abs(diff)) * 1e6:.1f} us"
