"""LSL timing end to end, as a stimulus PC does it: an 8-channel 250 Hz EEG outlet and a
Markers outlet stamping each marker with an EEG sample's own LSL time, in their own LSL
session, recorded by ``sensorium record --device lsl:… --device lsl:…``, exported, read back
with pyxdf. Equal LSL stamps must come out equal; the EEG keeps its spacing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyxdf
from conftest import RedisServer

from benchmarks.lsl_timing import from_xdf, record_outlets
from sensorium_desktop.bus.keys import Keys


def test_lsl_marker_and_eeg_with_equal_stamps_export_equal_times(
    redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(data_dir))
    run = record_outlets(tmp_path, env, keys.prefix, 6.0)
    streams, _ = pyxdf.load_xdf(str(run.xdf), dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg, mk = by_name[run.name], by_name[f"{run.name}-markers"]
    assert eeg["info"]["type"] == ["EEG"] and mk["info"]["type"] == ["Markers"]
    assert eeg["info"]["source_id"] == [f"amp-{run.name}"] and mk["info"]["source_id"] == [f"stim-{run.name}"]
    desc = eeg["info"]["desc"][0]
    assert desc["acquisition"][0]["manufacturer"] == ["TestAmp"]  # the outlet's own desc, whole
    assert [c["label"][0] for c in desc["channels"][0]["channel"]] == [f"C{i}" for i in range(1, 9)]
    assert desc["synchronization"][0]["domain_kind"] == ["measured"]
    index = eeg["time_series"][:, 0].astype(np.int64)
    assert len(index) > 5 * 250 and np.all(np.diff(index) == 1), "EEG samples missing or reordered"
    got = from_xdf(run)
    assert got["marker"].size >= 20
    assert np.max(np.abs(got["marker"])) <= 50e-6, f"marker to sample {np.max(np.abs(got['marker'])) * 1e6:.1f} us"
    assert np.max(np.abs(got["residual"])) <= 50e-6, f"spacing residual {np.max(np.abs(got['residual'])) * 1e6} us"
    assert abs(got["rate_ppm"][0]) <= 1.0, f"EEG rate error {got['rate_ppm'][0]:.2f} ppm"
    # with pyxdf's defaults (clock sync and dejitter on) too
    streams, _ = pyxdf.load_xdf(str(run.xdf))
    by_name = {s["info"]["name"][0]: s for s in streams}
    eeg, mk = by_name[run.name], by_name[f"{run.name}-markers"]
    pos = {int(k): t for k, t in zip(eeg["time_series"][:, 0].astype(np.int64), eeg["time_stamps"], strict=True)}
    diff = np.array([t - pos[int(v[0])] for t, v in zip(mk["time_stamps"], mk["time_series"], strict=True)
                     if int(v[0]) in pos])  # fmt: skip
    assert np.max(np.abs(diff)) <= 50e-6, f"(dejittered) marker to sample up to {np.max(np.abs(diff)) * 1e6:.1f} us"
