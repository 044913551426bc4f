"""Serial line protocols: detection, vectorized parsing, and bad input counted, never raised."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium_desktop.core.lineproto import LineDecoder, LineSplitter, parse_numeric_block


def feed_all(dec: LineDecoder, chunks: list[bytes], t0: float = 100.0) -> list:
    out = []
    for i, c in enumerate(chunks):
        out.extend(dec.feed(c, t0 + i))
    return out


def test_csv_header_with_time_column_in_ms() -> None:
    dec = LineDecoder()
    rows = feed_all(dec, [b"Booting sensor fw 1.2...\r\n", b"millis;ax;ay\r\n10;1.5;2\r\n20;-1;", b"3e2\r\n"])
    assert dec.protocol == "csv" and dec.channels == ("ax", "ay") and dec.time_index == 0
    values = np.concatenate([r.values for r in rows])
    t_dev = np.concatenate([r.t_device for r in rows])
    np.testing.assert_array_equal(values, [[1.5, 2.0], [-1.0, 300.0]])
    np.testing.assert_allclose(t_dev, [0.010, 0.020])
    assert [float(r.t_arrival[0]) for r in rows] == [101.0, 102.0]  # the read that completed each line
    assert dec.error_counts() == {"garbage": 1}


def test_plain_numbers_whitespace_and_tabs() -> None:
    dec = LineDecoder()
    (rows,) = feed_all(dec, [b"1 2 3\n4\t5\t6\n  7,  8 ,9 \n"])
    assert dec.protocol == "numbers" and dec.channels == ("ch1", "ch2", "ch3")
    np.testing.assert_array_equal(rows.values, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert rows.t_device is None


def test_named_columns_skip_a_line_cut_by_opening_the_port_mid_stream() -> None:
    """The operator named the columns (t, light): a first line with another number of fields
    (the tail of a line sent before the port opened) is garbage, not the layout."""
    dec = LineDecoder(time_column="t", time_unit="s", channels=("t", "light"))
    (rows,) = feed_all(dec, [b"5012\n1.000,0.05\n1.001,0.06\n"])
    assert dec.protocol == "numbers" and dec.channels == ("light",) and dec.time_index == 0
    np.testing.assert_allclose(rows.t_device, [1.0, 1.001])
    assert dec.error_counts() == {"garbage": 1}


def test_json_lines_sensocto_shape() -> None:
    dec = LineDecoder()
    lines = [
        {"attribute_id": "heartrate", "payload": {"bpm": 72}, "timestamp": 1000},
        {"attribute_id": "ecg", "payload": {"values": [0.1, 0.2, 0.3, 0.4], "sample_rate": 4}, "timestamp": 2000},
        {"attribute_id": "heartrate", "payload": 300, "timestamp": 3000},  # out of range: rejected
        {"attribute_id": "Bad Id!", "payload": 1, "timestamp": 4000},
        {"attribute_id": "temperature", "payload": 21.5},  # no timestamp
    ]
    blob = b"".join(json.dumps(m).encode() + b"\n" for m in lines) + b"{not json\n"
    rows = {r.stream: r for r in dec.feed(blob, 50.0)}
    assert set(rows) == {"heartrate", "ecg"}
    np.testing.assert_array_equal(rows["heartrate"].values, [[72.0]])
    np.testing.assert_allclose(rows["ecg"].t_device, [2.0, 2.25, 2.5, 2.75])
    assert rows["ecg"].values.shape == (4, 1)
    assert dec.error_counts() == {"payload_invalid": 2, "bad_timestamp": 1, "json_invalid": 1}
    dec2 = LineDecoder("json")
    dec2.feed(json.dumps(lines[2]).encode() + b"\n", 0.0)
    assert "bpm" in dec2.last_error


def test_garbage_wrong_columns_encoding_nan_inf_counted() -> None:
    dec = LineDecoder()
    rows = feed_all(
        dec,
        [b"a,b\n1,2\n", b"3,4,5\n\xff\xfe\x00garbage\nnan,inf\n-inf,7\n12,\n", b"\x00\x01\x02\n8,9\n"],
    )
    values = np.concatenate([r.values for r in rows])
    assert values.shape == (4, 2)
    assert np.isnan(values[1]).all() and np.isnan(values[2, 0]) and values[2, 1] == 7
    errs = dec.error_counts()
    assert errs["nonfinite"] == 3 and errs["wrong_columns"] == 2 and errs["encoding"] == 1 and errs["garbage"] == 1


def test_oversized_line_is_discarded_and_stream_recovers() -> None:
    split = LineSplitter(max_line_bytes=1000)
    assert split.feed(b"1,2\n" + b"x" * 600) == [b"1,2"]
    assert split.feed(b"y" * 600) == []  # 1200 bytes without a newline: dropped from here on
    assert split.feed(b"z" * 5000 + b"\n3,4\n") == [b"3,4"]
    assert split.feed(b"q" * 1500 + b"\n5,6\n") == [b"5,6"]
    assert split.oversized == 2


def test_one_megabyte_line_through_the_decoder() -> None:
    dec = LineDecoder()
    rows = feed_all(dec, [b"x,y\n1,2\n", b"9" * (1 << 20) + b"\n", b"3,4\n"])
    assert np.concatenate([r.values for r in rows]).tolist() == [[1, 2], [3, 4]]
    assert dec.error_counts() == {"oversized": 1}


def test_numeric_block_matches_line_by_line() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, 4))
    lines = [",".join(f"{v:.17g}" for v in row).encode() for row in data]
    values, good = parse_numeric_block(lines, 4)
    assert good.all()
    np.testing.assert_array_equal(values, data)
    lines[7] = b"1,2"
    lines[9] = b"1,2,x,4"
    values, good = parse_numeric_block(lines, 4)
    assert (~good).sum() == 2 and values.shape == (498, 4)


def test_explicit_protocol_and_time_column_index() -> None:
    dec = LineDecoder("numbers", time_column="0", time_unit="us", channels=("t", "v"))
    (rows,) = dec.feed(b"1000000,5\n2000000,6\n", 1.0)
    np.testing.assert_allclose(rows.t_device, [1.0, 2.0])
    assert rows.values.tolist() == [[5.0], [6.0]]
    with pytest.raises(ValueError, match="line protocol"):
        LineDecoder("xml")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    dec = LineDecoder()
    for i, c in enumerate(chunks):
        for r in dec.feed(c, float(i)):
            assert r.values.shape[0] == r.t_arrival.shape[0]
            if r.t_device is not None:
                assert np.isfinite(r.t_device).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.floats(-1e6, 1e6)), min_size=1, max_size=50), st.data())
def test_csv_survives_any_chunking(rows: list[tuple[int, float]], data: st.DataObject) -> None:
    blob = b"ts_ms,value\n" + b"".join(f"{t},{v!r}\n".encode() for t, v in rows)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=10)))
    chunks = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True)]
    dec = LineDecoder()
    out = feed_all(dec, chunks)
    values = np.concatenate([r.values for r in out]) if out else np.empty((0, 1))
    assert values[:, 0].tolist() == [v for _, v in rows]
    assert dec.error_counts() == {}


def test_csv_block_fast_path_refuses_what_it_cannot_prove() -> None:
    from sensorium_desktop.core.lineproto import parse_csv_block

    np.testing.assert_array_equal(parse_csv_block(b"1,2\n3,4", 2), [[1, 2], [3, 4]])
    assert parse_csv_block(b"1,2,3\n4", 2) is None  # same comma count, wrong rows
    assert parse_csv_block(b"1,x\n3,4", 2) is None
    assert parse_csv_block(b"1;2\n3;4", 2) is None  # other delimiters go line by line
    assert parse_csv_block(b"1,,\n3,4", 3) is None
