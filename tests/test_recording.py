"""Delta codec, spool crash safety and disk-full handling, XDF/CSV exports read back with pyxdf."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from conftest import disk_filling_write
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium_desktop.core import delta
from sensorium_desktop.core.samples import SampleBatch, SensorInfo
from sensorium_desktop.recording import spool as spool_mod
from sensorium_desktop.recording.export import export_recording
from sensorium_desktop.recording.reader import load_recording
from sensorium_desktop.recording.spool import RecordKind, SpoolFullError, SpoolWriter, recover, write_json_atomic
from sensorium_desktop.recording.xdf import xdf_stream_key

# -- delta codec ----------------------------------------------------------------------------

values_st = st.lists(st.floats(-500, 500, allow_nan=False, width=32), min_size=2, max_size=300)


@settings(max_examples=150, deadline=None)
@given(values_st, st.data())
def test_delta_round_trip_is_exact_within_quantization(values: list[float], data: st.DataObject) -> None:
    v = np.array(values)
    gaps = data.draw(st.lists(st.integers(-5000, 200_000), min_size=v.size - 1, max_size=v.size - 1))
    t = np.concatenate(([1_700_000_000_000], 1_700_000_000_000 + np.cumsum(gaps))).astype(np.int64)
    blob = delta.encode(t, v)
    t2, v2 = delta.decode(blob)
    assert np.array_equal(t2, t), "timestamps must survive long gaps and steps back (Sensocto's clamp flaw)"
    assert np.all(np.abs(v2 - v) <= 0.005 + 1e-6 + np.abs(v) * 6e-8)
    assert delta.encode(t2, v2) == blob  # decoding then encoding again gives the same bytes
    long_gap = any(g < 0 or g >= 0xFFFF for g in gaps)
    assert blob[0] == (2 if long_gap else 1)


def test_delta_layout_matches_sensocto_for_plain_ecg() -> None:
    t = 1_000 + np.arange(50) * 8
    v = 0.8 * np.sin(np.arange(50) / 4)
    blob = delta.encode(t, v)
    assert len(blob) == 13 + 3 * 49  # header + one 3-byte entry per sample: ~84 % smaller than JSON
    assert blob[0] == 1
    assert int.from_bytes(blob[1:9], "little") == 1000
    assert int.from_bytes(blob[14:16], "little") == 8  # first entry's timestamp delta
    jump = v.copy()
    jump[10] += 5.0  # > 127 steps: a 7-byte reset entry with the raw value
    blob2 = delta.encode(t, jump)
    assert len(blob2) == len(blob) + 8  # the reset going up and the one coming back
    _t, back = delta.decode(blob2)
    assert abs(back[10] - jump[10]) < 1e-5


@pytest.mark.parametrize(
    ("blob", "message"),
    [(b"\x01\x00", "header"), (b"\x07" + bytes(12) + b"\x01\x00\x00", "version"), (bytes([1]) + bytes(12), "fewer"),
     (bytes([1]) + bytes(12) + b"\x01\x00", "truncated")],
)  # fmt: skip
def test_delta_rejects_malformed_input(blob: bytes, message: str) -> None:
    with pytest.raises(delta.DeltaFormatError, match=message):
        delta.decode(blob)


# -- a synthetic recording ------------------------------------------------------------------


def _info(sid: str, attribute: str, **kw: object) -> SensorInfo:
    return SensorInfo(sid, attribute, sid.split("-")[0], node_id="n1", **kw)  # type: ignore[arg-type]


def make_recording(directory: Path, seconds: float = 12.0, compact: bool = False) -> dict[str, list[SampleBatch]]:
    """A spool with an 8-channel 250 Hz EEG-like sensor (device clock 40 ppm fast, BLE-ish
    delays), ECG, a string sensor, a described sensor that never sends, markers and clocks."""
    rng = np.random.default_rng(7)
    eeg = _info("amp-eeg", "eeg", channel_names=tuple(f"C{i}" for i in range(8)), units=("uV",) * 8,
                channel_format="float32", nominal_rate=250.0, has_clock=True, fixed_latency=0.0075)  # fmt: skip
    ecg = _info("chest-ecg", "ecg", nominal_rate=130.0, has_clock=True, fixed_latency=0.0075)
    notes = _info("app-note", "note", channel_names=("text",), channel_format="string")
    silent = _info("mute-hr", "hr", nominal_rate=1.0)
    t0 = 1_795_000_000.0
    writer = SpoolWriter(directory)
    sent: dict[str, list[SampleBatch]] = {"amp-eeg": [], "chest-ecg": [], "app-note": []}
    for info in (eeg, ecg, notes, silent):
        writer.add_json(RecordKind.SENSOR, json.loads(info.to_json()))
    seq = {"amp-eeg": 0, "chest-ecg": 0, "app-note": 0}
    for step in range(int(seconds * 4)):
        for info, rate in ((eeg, 250.0), (ecg, 130.0)):
            n = int(rate / 4)
            k0 = seq[info.sensor_id] * n
            t_true = t0 + (k0 + np.arange(n)) / rate
            t_local = 100.0 + (t_true - t0) * (1 + 40e-6)
            t_arr = t_true + 0.0075 + rng.exponential(0.002, n)
            t_arr = np.maximum.accumulate(t_arr)
            vals = rng.normal(0, 1, (n, info.channel_count)).astype(np.float32)
            b = SampleBatch(info.sensor_id, info.attribute, t_arr, vals, t_local, seq[info.sensor_id], k0)
            writer.add_batch(b, f"{int(t_arr[0] * 1000)}-{b.seq}", use_delta=compact and info.attribute == "ecg")
            sent[info.sensor_id].append(b)
            seq[info.sensor_id] += 1
        if step % 8 == 3:
            vals = np.array([[f'note {step} ünïcode, "quoted"']], dtype=object)
            b = SampleBatch("app-note", "note", np.array([t0 + step / 4]), vals, None, seq["app-note"], seq["app-note"])
            writer.add_batch(b, f"{int((t0 + step / 4) * 1000)}-{b.seq}")
            sent["app-note"].append(b)
            seq["app-note"] += 1
        if step % 4 == 0:
            writer.add_json(RecordKind.CLOCK, {"time": t0 + step / 4, "clocks": {},
                                               "hostoffsets": {"n1": {"offset": "0.25"}}})  # fmt: skip
        if step in (5, 30):
            marker = {"label": f"stim {step}", "t_global": repr(t0 + step / 4 + 0.25), "t_host": repr(t0 + step / 4),
                      "source": "window", "t_original": repr(t0 + step / 4), "clock_original": "host"}  # fmt: skip
            writer.add_json(RecordKind.MARKER, marker | {"clock": "global", "id": f"{step}-0"})
        writer.flush()
    writer.close()
    meta = {"session_id": "s1", "bids_name": "sub-01_task-rest", "state": "complete", "started": t0,
            "sensors": ["amp-eeg", "chest-ecg", "app-note", "mute-hr"], "sensor_infos": []}  # fmt: skip
    write_json_atomic(directory / "session.json", meta)
    return sent


def _expected(sent: list[SampleBatch]) -> SampleBatch:
    return SampleBatch.concat(sent)


def test_xdf_export_reads_back_identical_with_pyxdf(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    sent = make_recording(rec_dir)
    result = export_recording(rec_dir, "xdf", tmp_path / "out.xdf")
    assert any("mute-hr" in w and "no samples" in w for w in result.warnings)
    rec = load_recording(rec_dir)
    streams, header = pyxdf.load_xdf(str(tmp_path / "out.xdf"), dejitter_timestamps=False)
    assert header["info"]["version"] == ["1.0"]
    by_name = {xdf_stream_key(s): s for s in streams}
    assert set(by_name) == {"amp-eeg", "chest-ecg", "app-note", "mute-hr", "Markers", "MarkerSources"}
    for sid in ("amp-eeg", "chest-ecg"):
        s = by_name[sid]
        exp = _expected(sent[sid])
        assert np.array_equal(s["time_series"], exp.values), sid
        want = rec.global_times(sid)
        assert np.max(np.abs(s["time_stamps"] - want)) < 1e-6
        # the clock model removed the delays: true time + the recorded 0.25 s host offset
        n = len(exp)
        rate = 250.0 if sid == "amp-eeg" else 130.0
        t_true = 1_795_000_000.0 + np.arange(n) / rate + 0.25
        assert np.sqrt(np.mean((s["time_stamps"][n // 4 :] - t_true[n // 4 :]) ** 2)) < 1e-3
        assert int(s["footer"]["info"]["sample_count"][0]) == n
    eeg = by_name["amp-eeg"]["info"]
    assert eeg["channel_count"] == ["8"] and eeg["nominal_srate"] == ["250.0"] and eeg["channel_format"] == ["float32"]
    chans = eeg["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == [f"C{i}" for i in range(8)] and chans[0]["unit"] == ["uV"]
    sync = eeg["desc"][0]["synchronization"][0]
    assert sync["clock_model"] == ["refined"] and sync["timestamps"] == ["global"]
    assert by_name["app-note"]["time_series"] == [[str(b.values[0, 0])] for b in sent["app-note"]]
    assert len(by_name["mute-hr"]["time_stamps"]) == 0
    markers = by_name["Markers"]
    assert [m[0] for m in markers["time_series"]] == ["stim 5", "stim 30"]
    assert np.allclose(markers["time_stamps"], [1_795_000_000.0 + 5 / 4 + 0.25, 1_795_000_000.0 + 30 / 4 + 0.25])
    sources = by_name["MarkerSources"]
    assert np.array_equal(sources["time_stamps"], markers["time_stamps"])
    assert [c["label"][0] for c in sources["info"]["desc"][0]["channels"][0]["channel"]] == [
        "source", "t_original", "clock_original", "duration"]  # fmt: skip
    assert [(m[0], float(m[1]), m[2]) for m in sources["time_series"]] == [
        ("window", 1_795_000_000.0 + 5 / 4, "host"), ("window", 1_795_000_000.0 + 30 / 4, "host")]  # fmt: skip
    # default pyxdf settings (clock sync on) read the same times: our ClockOffsets are identities
    synced, _ = pyxdf.load_xdf(str(tmp_path / "out.xdf"), dejitter_timestamps=False)
    s2 = {xdf_stream_key(s): s for s in synced}
    assert np.max(np.abs(s2["amp-eeg"]["time_stamps"] - rec.global_times("amp-eeg"))) < 1e-6
    raw = (tmp_path / "out.xdf").read_bytes()
    assert raw.count(bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")) >= 3  # boundary chunks


def test_xdf_local_timestamps_carry_the_clock_model_in_clock_offsets(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    make_recording(rec_dir, seconds=20)
    export_recording(rec_dir, "xdf", tmp_path / "local.xdf", clock="causal", timestamps="local")
    rec = load_recording(rec_dir)
    raw, _ = pyxdf.load_xdf(str(tmp_path / "local.xdf"), synchronize_clocks=False, dejitter_timestamps=False)
    synced, _ = pyxdf.load_xdf(str(tmp_path / "local.xdf"), dejitter_timestamps=False)
    eeg_raw = next(s for s in raw if xdf_stream_key(s) == "amp-eeg")
    eeg = next(s for s in synced if xdf_stream_key(s) == "amp-eeg")
    assert eeg_raw["time_stamps"][0] == pytest.approx(100.0, abs=1e-3)  # device clock
    span = eeg_raw["time_stamps"][-1] - eeg_raw["time_stamps"][0]
    assert len(eeg["clock_times"]) >= int(span)  # a ClockOffset every second of the device clock
    assert np.all(np.diff(eeg["clock_times"]) <= 1.0 + 1e-3)
    ours = rec.global_times("amp-eeg", "causal")
    err = eeg["time_stamps"] - ours
    assert np.sqrt(np.mean(err[len(err) // 2 :] ** 2)) < 2e-4  # LSL-style linear re-sync lands on our times
    # readers that apply each offset as a step until the next one agree with pyxdf's regression
    # to within the drift over one offset interval (40 ppm x 1 s = 40 us). The rule is libxdf's
    # syncTimeStamps (v1.0.4): the last offset collected strictly before the sample, else the first
    ct, cv = np.asarray(eeg["clock_times"]), np.asarray(eeg["clock_values"])
    local = eeg_raw["time_stamps"]
    stepped = local + cv[np.clip(np.searchsorted(ct, local, side="left") - 1, 0, ct.size - 1)]
    assert np.max(np.abs(stepped - eeg["time_stamps"])[len(local) // 10 :]) < 1e-4


def test_csv_export_has_streams_markers_slices_and_metadata(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    sent = make_recording(rec_dir, seconds=4)
    result = export_recording(rec_dir, "csv", tmp_path / "csv")
    names = {p.name for p in result.files}
    assert {"amp-eeg.csv", "chest-ecg.csv", "app-note.csv", "markers.csv", "slices.csv", "session.json"} <= names
    with open(tmp_path / "csv" / "amp-eeg.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["t_global", "t_arrival", "t_local", "C0 [uV]"]
    exp = _expected(sent["amp-eeg"])
    assert len(rows) - 1 == len(exp)
    assert np.allclose(np.array(rows[1:], dtype=float)[:, 3:], exp.values, rtol=1e-6, atol=1e-7)
    with open(tmp_path / "csv" / "app-note.csv") as f:
        notes = list(csv.reader(f))
    assert notes[1][-1] == str(sent["app-note"][0].values[0, 0])
    meta = json.loads((tmp_path / "csv" / "session.json").read_text())
    assert meta["streams"]["amp-eeg"]["samples"] == len(exp)


def test_compact_spool_stores_ecg_delta_encoded(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    compact = tmp_path / "compact"
    sent = make_recording(plain, seconds=4)
    make_recording(compact, seconds=4, compact=True)
    a = load_recording(plain).sensors["chest-ecg"]
    b = load_recording(compact).sensors["chest-ecg"]
    assert np.array_equal(a.t_arrival, b.t_arrival) and np.array_equal(a.t_local, b.t_local)
    assert np.max(np.abs(a.values - b.values)) <= 0.005 + 1e-6
    assert np.array_equal(a.values, _expected(sent["chest-ecg"]).values)


def test_export_never_overwrites(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    make_recording(rec_dir, seconds=2)
    first = export_recording(rec_dir, "xdf")
    assert first.files[0].name == "sub-01_task-rest.xdf"
    before = first.files[0].read_bytes()
    second = export_recording(rec_dir, "xdf")
    assert second.renamed is not None and second.renamed.read_bytes() == before
    assert second.files[0].exists()


def test_empty_session_exports_cleanly_with_a_warning(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    SpoolWriter(d).close()
    write_json_atomic(d / "session.json", {"session_id": "e", "sensors": [], "state": "complete"})
    result = export_recording(d, "xdf", tmp_path / "e.xdf")
    assert any("no sensors" in w for w in result.warnings)
    streams, _ = pyxdf.load_xdf(str(tmp_path / "e.xdf"))
    assert [xdf_stream_key(s) for s in streams] == ["Markers"]


# -- crash safety ---------------------------------------------------------------------------


def test_torn_tail_is_cut_and_the_rest_survives(tmp_path: Path) -> None:
    d = tmp_path / "rec"
    sent = make_recording(d, seconds=3)
    path = d / "spool-000001.sdr"
    good = path.stat().st_size
    with open(path, "ab") as f:  # a chunk cut short by a power cut: length says more than is there
        f.write(b"\x00\x10\x00\x00" + b"\x12\x34\x56\x78" + b"partial")
    stats = recover(d)
    assert path.stat().st_size == good
    assert stats.samples["amp-eeg"] == len(_expected(sent["amp-eeg"]))
    w = SpoolWriter(d)  # appending after recovery continues the file
    w.add_json(RecordKind.MARKER, {"label": "after", "t_global": "1795000010.0", "id": "x"})
    w.flush()
    w.close()
    assert [m["label"] for m in load_recording(d).markers][-1] == "after"


def test_disk_full_stops_the_writer_and_leaves_a_valid_spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "rec"
    w = SpoolWriter(d)
    info = _info("amp-eeg", "eeg", channel_names=("a", "b"), nominal_rate=100.0)
    w.add_json(RecordKind.SENSOR, json.loads(info.to_json()))
    batches = [SampleBatch("amp-eeg", "eeg", np.arange(100) / 100 + k, np.ones((100, 2)), None, k, 100 * k)
               for k in range(6)]  # fmt: skip
    for b in batches[:3]:
        w.add_batch(b, f"{b.seq}-0")
        w.flush()
    monkeypatch.setattr(spool_mod, "_write", disk_filling_write(3000))
    for b in batches[3:]:
        w.add_batch(b, "x-0")
    with pytest.raises(SpoolFullError, match="disk full"):
        w.flush()
    monkeypatch.undo()
    w.close()
    write_json_atomic(d / "session.json", {"session_id": "full", "sensors": ["amp-eeg"], "state": "failed"})
    rec = load_recording(d)
    assert len(rec.sensors["amp-eeg"]) == 300  # the three complete chunks, nothing torn
    assert recover(d).samples["amp-eeg"] == 300
