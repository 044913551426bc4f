"""Reading a spool back: records left in the spool's bytes and copied once (spans) give the
same arrays as records parsed one by one, for every layout a recording can hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sensorium_desktop.core.samples import SampleBatch, SensorInfo
from sensorium_desktop.recording import reader
from sensorium_desktop.recording.spool import BatchRecord, BatchSpan, RecordKind, SpoolWriter, write_json_atomic

T0 = 1_795_000_000.0


def _batch(sid: str, seq: int, n: int, chans: int, dtype: str, local: bool, rng: np.random.Generator) -> SampleBatch:
    t = T0 + seq * 0.1 + np.arange(n) * 0.1 / n
    if dtype == "str":
        vals = np.array([[f"{sid}-{seq}-{i}-{c}" for c in range(chans)] for i in range(n)], dtype=object)
    else:
        vals = (rng.normal(0, 100, (n, chans))).astype(dtype)
    return SampleBatch(sid, "eeg", np.full(n, t[-1] + 0.01), vals, t - 5.0 if local else None, seq, seq * n)


def _write(directory: Path, plan: dict[str, list[SampleBatch]], delta: set[str]) -> None:
    w = SpoolWriter(directory)
    for sid, batches in plan.items():
        chans = batches[0].values.shape[1]
        fmt = "string" if batches[0].values.dtype == object else batches[0].values.dtype.name
        info = SensorInfo(sid, "eeg", sid, channel_names=tuple(f"c{i}" for i in range(chans)), channel_format=fmt,
                          node_id="n")  # fmt: skip
        w.add_json(RecordKind.SENSOR, json.loads(info.to_json()))
    rounds = max(len(b) for b in plan.values())
    for i in range(rounds):  # interleaved, as the recorder writes them
        for sid, batches in plan.items():
            if i < len(batches):
                w.add_batch(batches[i], f"{i}-0", use_delta=sid in delta)
        w.flush()
    w.close()
    write_json_atomic(directory / "session.json", {"session_id": "t", "state": "complete", "sensors": list(plan)})


def test_spans_and_records_give_the_same_arrays(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(4)
    plan = {
        # out of order, one batch delivered twice: sorted, the duplicate dropped
        "f32": [_batch("f32", s, 16, 4, "float32", True, rng) for s in (0, 1, 3, 2, 4)],
        "f64-nolocal": [_batch("f64-nolocal", s, 7, 2, "float64", False, rng) for s in range(5)],
        "i16": [_batch("i16", s, 5, 3, "int16", True, rng) for s in range(4)],
        # channel count changes: the record path pads
        "widening": [_batch("widening", s, 4, 2 if s < 2 else 3, "float32", True, rng) for s in range(4)],
        "strings": [_batch("strings", s, 3, 2, "str", True, rng) for s in range(3)],
        "delta": [_batch("delta", s, 8, 1, "float32", True, rng) for s in range(3)],
    }
    plan["f32"].insert(4, plan["f32"][3])  # seq 2 re-delivered
    rec_dir = tmp_path / "rec"
    _write(rec_dir, plan, delta={"delta"})
    fast = reader.load_recording(rec_dir, trim=False)
    seen: dict[str, set[type]] = {}
    original = reader.parse_batch_span

    def record_only(payload, names):
        out = original(payload, names)
        seen.setdefault(out.sensor_id, set()).add(type(out))
        return out.record() if isinstance(out, BatchSpan) else out

    monkeypatch.setattr(reader, "parse_batch_span", record_only)
    slow = reader.load_recording(rec_dir, trim=False)
    assert seen["f32"] == {BatchSpan} and seen["strings"] == {BatchRecord} and seen["delta"] == {BatchRecord}
    for sid, batches in plan.items():
        a, b = fast.sensors[sid], slow.sensors[sid]
        order = sorted({x.seq: x for x in batches}.values(), key=lambda x: x.seq)
        assert a.values.dtype == b.values.dtype, sid
        if sid == "widening":
            assert a.values.shape == (16, 3) and np.isnan(a.values[:8, 2]).all()
        elif sid != "delta":
            np.testing.assert_array_equal(a.values, np.concatenate([x.values for x in order]))
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.t_arrival, np.concatenate([x.t_arrival for x in order]))
        np.testing.assert_array_equal(a.t_arrival, b.t_arrival)
        if a.t_local is None:
            assert b.t_local is None and sid == "f64-nolocal"
        else:
            np.testing.assert_array_equal(a.t_local, b.t_local)
        np.testing.assert_array_equal(a.batch_seq, [x.seq for x in order])
        np.testing.assert_array_equal(a.batch_start, b.batch_start)
        assert a.values.flags.writeable and a.t_arrival.flags.writeable
    assert fast.sensors["f32"].duplicate_batches == 1


def test_a_damaged_span_is_skipped_like_a_damaged_record(tmp_path: Path) -> None:
    """Bytes flipped inside one batch: its frame's CRC fails, the rest is read (spans too)."""
    rng = np.random.default_rng(5)
    plan = {"f32": [_batch("f32", s, 32, 8, "float32", True, rng) for s in range(6)]}
    rec_dir = tmp_path / "rec"
    _write(rec_dir, plan, delta=set())
    spool = next(rec_dir.glob("spool-*.sdr"))
    data = bytearray(spool.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = b"\xff\xff\xff\xff"
    spool.write_bytes(bytes(data))
    rec = reader.load_recording(rec_dir, trim=False)
    assert rec.damage and len(rec.sensors["f32"]) == 5 * 32
    assert len(rec.sensors["f32"].batch_seq) == 5
