"""Binary batch codec (bit-exact round trips, malformed input) and the ring buffer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sensorium_desktop.core.codec import MAX_BATCH_BYTES, CodecError, decode_batch, encode_batch
from sensorium_desktop.core.framing import frame, scan_frames, valid_length
from sensorium_desktop.core.ring import RingBuffer
from sensorium_desktop.core.samples import SampleBatch, SampleError


def _batch(n: int = 5, ch: int = 3, dtype: str = "float32", local: bool = True) -> SampleBatch:
    rng = np.random.default_rng(1)
    t = 1.8e9 + np.cumsum(rng.random(n))
    vals = (rng.normal(size=(n, ch)) * 100).astype(dtype)
    return SampleBatch("s1", "ecg", t, vals, t - 1000.25 if local else None)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "int16", "int8"])
@pytest.mark.parametrize("local", [True, False])
def test_round_trip_is_bit_exact(dtype: str, local: bool) -> None:
    b = _batch(dtype=dtype, local=local)
    out = decode_batch(encode_batch(b), "s1", "ecg", 7, 70)
    assert out.values.dtype == b.values.dtype
    assert out.values.tobytes() == b.values.tobytes()
    assert out.t_arrival.tobytes() == b.t_arrival.tobytes()
    assert (out.t_local is None) == (not local)
    if local:
        assert out.t_local.tobytes() == b.t_local.tobytes()
    assert (out.seq, out.first_index) == (7, 70)


def test_string_values_round_trip() -> None:
    vals = np.array([["a"], ["ünïcode ✓"], [""]], dtype=object)
    b = SampleBatch("m", "marker", [1.0, 2.0, 3.0], vals)
    out = decode_batch(encode_batch(b), "m", "marker")
    assert out.values.tolist() == vals.tolist()


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(-1e12, 1e12)),
    st.integers(1, 8),
    st.booleans(),
)
def test_round_trip_property(t: np.ndarray, ch: int, local: bool) -> None:
    vals = np.arange(t.size * ch, dtype=np.float32).reshape(t.size, ch)
    b = SampleBatch("s", "x", t, vals, t * 2 if local else None)
    out = decode_batch(encode_batch(b), "s", "x")
    assert np.array_equal(out.t_arrival, b.t_arrival) and np.array_equal(out.values, b.values)


def test_truncated_and_padded_input_rejected() -> None:
    data = encode_batch(_batch())
    for cut in (0, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(CodecError):
            decode_batch(data[:cut], "s", "ecg")
    with pytest.raises(CodecError):
        decode_batch(data + b"\0", "s", "ecg")
    with pytest.raises(CodecError, match="magic"):
        decode_batch(b"XXXX" + data[4:], "s", "ecg")


def test_oversized_payload_rejected() -> None:
    with pytest.raises(CodecError, match="limit"):
        decode_batch(b"\0" * (MAX_BATCH_BYTES + 1), "s", "ecg")


def test_non_finite_timestamps_rejected() -> None:
    with pytest.raises(SampleError, match="NaN"):
        SampleBatch("s", "x", [1.0, np.nan], [[1.0], [2.0]])
    data = bytearray(encode_batch(_batch(n=2)))
    data[12:20] = np.array([np.inf]).tobytes()
    with pytest.raises(CodecError, match="NaN/inf"):
        decode_batch(bytes(data), "s", "ecg")


def test_shape_mismatch_rejected() -> None:
    with pytest.raises(SampleError, match="does not match"):
        SampleBatch("s", "x", [1.0, 2.0], np.zeros((3, 1)))


def test_frames_survive_a_torn_tail() -> None:
    blob = frame(b"one") + frame(b"two") + frame(b"three")[:-2]
    assert [bytes(p) for _, p in scan_frames(blob)] == [b"one", b"two"]
    assert valid_length(blob) == len(frame(b"one") + frame(b"two"))
    corrupt = bytearray(frame(b"abc") + frame(b"def"))
    corrupt[-1] ^= 0xFF
    assert [bytes(p) for _, p in scan_frames(bytes(corrupt))] == [b"abc"]


def test_ring_buffer_wraps_and_orders() -> None:
    r = RingBuffer(5, 2)
    for i in range(4):
        r.append(np.array([i * 2.0, i * 2.0 + 1]), np.array([[i, 0], [i, 1]], dtype=np.float32))
    t, v = r.latest()
    assert t.tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert v[:, 0].tolist() == [1, 2, 2, 3, 3]
    assert r.total == 8 and r.version == 4
    t, _ = r.latest(t_min=5.0)
    assert t.tolist() == [5.0, 6.0, 7.0]
    r.append(np.arange(12.0), np.zeros((12, 2), dtype=np.float32))
    assert r.latest()[0].tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert r.last_time() == 11.0
    with pytest.raises(ValueError):
        r.append(np.zeros(1), np.zeros((1, 3)))
