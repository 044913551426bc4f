"""Delta encoding of ECG/respiration values in the Sensocto binary layout (SENSOCTO_FACTS.md).

Layout, little-endian::

    header   u8 version | i64 base timestamp (ms) | f32 first value          13 bytes
    normal   i8 q (-127..127) | u16 timestamp delta (ms)                      3 bytes
    reset    0x80 | f32 value | u16 timestamp delta (ms)                      7 bytes

Values are quantized in steps of :data:`STEP` (0.01, mV for ECG): ``q = round((v - prev) /
0.01)`` rounded half away from zero, ``prev`` being the *reconstructed* previous value, so
errors never accumulate (every decoded value is within 0.005 of the input, plus float32
rounding of reset values). ``|q| > 127`` emits a reset carrying the raw value.

Sensocto clamps timestamp deltas to 0..65535 ms, so after a long gap (or a clock step back)
its decoder drifts for ever. Ours does not: a delta outside 0..65534 is written as the
escape ``0xFFFF`` followed by the full delta as i64, and such a stream says version 2.
Streams without long gaps are version 1 and byte-identical to Sensocto's.

Encoding and decoding are vectorized; the only Python loops run once per reset or escape.
"""

from __future__ import annotations

import struct

import numpy as np

STEP = 0.01
RESET = 0x80
ESCAPE = 0xFFFF
VERSION_PLAIN = 1
VERSION_LONG_GAPS = 2
_HEAD = struct.Struct("<Bqf")
HEADER_SIZE = _HEAD.size  # 13
#: Attribute types this codec is meant for.
DELTA_ATTRIBUTES = frozenset({"ecg", "respiration"})


class DeltaFormatError(ValueError):
    """Encoded bytes are not a valid delta stream (version, header, truncation)."""


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def encode(t_ms: np.ndarray, values: np.ndarray) -> bytes:
    """Encode ``values`` (n,) at integer millisecond times ``t_ms`` (n,), n >= 2."""
    t = np.asarray(t_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or v.shape != t.shape:
        raise ValueError(f"t_ms {t.shape} and values {v.shape} must be 1-D of equal length")
    if t.size < 2:
        raise ValueError("delta encoding needs at least 2 samples")
    if not np.isfinite(v).all():
        raise ValueError("delta encoding cannot carry NaN/inf values")
    n = v.size
    q = np.zeros(n, dtype=np.int64)  # entries 1..n-1
    reset = np.zeros(n, dtype=bool)
    recon = np.empty(n, dtype=np.float64)
    base_i = 0
    base_v = float(np.float32(v[0]))
    recon[0] = base_v
    while base_i < n - 1:
        seg = slice(base_i + 1, n)
        qq = _round_half_away((v[seg] - base_v) / STEP).astype(np.int64)
        prev_q = np.concatenate(([0], qq[:-1]))
        step = qq - prev_q
        bad = np.flatnonzero(np.abs(step) > 127)
        stop = bad[0] if bad.size else qq.size
        q[base_i + 1 : base_i + 1 + stop] = step[:stop]
        recon[base_i + 1 : base_i + 1 + stop] = base_v + STEP * qq[:stop]
        if not bad.size:
            break
        base_i = base_i + 1 + stop
        reset[base_i] = True
        base_v = float(np.float32(v[base_i]))
        recon[base_i] = base_v
    dt = np.diff(t)
    escaped = (dt < 0) | (dt >= ESCAPE)
    version = VERSION_LONG_GAPS if escaped.any() else VERSION_PLAIN
    rs, es = reset[1:], escaped
    sizes = np.where(rs, 7, 3) + np.where(es, 8, 0)
    ends = np.cumsum(sizes) + HEADER_SIZE
    starts = ends - sizes
    out = np.zeros(int(ends[-1]), dtype=np.uint8)
    out[:HEADER_SIZE] = np.frombuffer(_HEAD.pack(version, int(t[0]), float(v[0])), dtype=np.uint8)
    qs = q[1:]
    normal = ~rs
    out[starts[normal]] = (qs[normal] & 0xFF).astype(np.uint8)
    if rs.any():
        ri = starts[rs]
        out[ri] = RESET
        fbytes = v[1:][rs].astype("<f4").view(np.uint8).reshape(-1, 4)
        for k in range(4):
            out[ri + 1 + k] = fbytes[:, k]
    ts_at = starts + np.where(rs, 5, 1)
    dts = np.where(es, ESCAPE, dt).astype("<u2").view(np.uint8).reshape(-1, 2)
    out[ts_at] = dts[:, 0]
    out[ts_at + 1] = dts[:, 1]
    if es.any():
        ei = ts_at[es] + 2
        long_bytes = dt[es].astype("<i8").view(np.uint8).reshape(-1, 8)
        for k in range(8):
            out[ei + k] = long_bytes[:, k]
    return out.tobytes()


def decode(data: bytes | memoryview) -> tuple[np.ndarray, np.ndarray]:
    """Decode to (t_ms int64 (n,), values float64 (n,)); raises :class:`DeltaFormatError`."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < HEADER_SIZE:
        raise DeltaFormatError(f"invalid format: {buf.size} bytes is shorter than the 13-byte header")
    version, t0, v0 = _HEAD.unpack_from(buf.tobytes()[:HEADER_SIZE])
    if version not in (VERSION_PLAIN, VERSION_LONG_GAPS):
        raise DeltaFormatError(f"invalid format: unknown version {version}")
    if buf.size == HEADER_SIZE:
        raise DeltaFormatError("invalid format: fewer than 2 samples")
    qs: list[np.ndarray] = []
    dts: list[np.ndarray] = []
    resets: list[tuple[int, float]] = []  # (entry index, value)
    pos = HEADER_SIZE
    count = 0
    end = buf.size
    while pos < end:
        # assume plain normal entries from here; stop at the first reset or escape
        k = (end - pos) // 3
        heads = buf[pos : pos + 3 * k : 3]
        lo = buf[pos + 1 : pos + 3 * k : 3].astype(np.int64)
        hi = buf[pos + 2 : pos + 3 * k : 3].astype(np.int64)
        dt = lo | (hi << 8)
        special = np.flatnonzero((heads == RESET) | (dt == ESCAPE))
        m = int(special[0]) if special.size else k
        qs.append(heads[:m].view(np.int8).astype(np.int64))
        dts.append(dt[:m])
        count += m
        pos += 3 * m
        if pos >= end:
            break
        if not special.size:
            raise DeltaFormatError(f"truncated: {end - pos} leftover bytes")
        is_reset = buf[pos] == RESET
        if pos + (7 if is_reset else 3) > end:
            raise DeltaFormatError("truncated: entry cut short")
        if is_reset:
            value = float(np.frombuffer(buf[pos + 1 : pos + 5].tobytes(), dtype="<f4")[0])
            resets.append((count, value))
            q = 0
            t_at = pos + 5
        else:
            q = int(buf[pos : pos + 1].view(np.int8)[0])
            t_at = pos + 1
        d = int(buf[t_at]) | (int(buf[t_at + 1]) << 8)
        pos = t_at + 2
        if d == ESCAPE:
            if version != VERSION_LONG_GAPS:
                raise DeltaFormatError("invalid format: long-gap escape in a version 1 stream")
            if pos + 8 > end:
                raise DeltaFormatError("truncated: long-gap entry cut short")
            d = int(np.frombuffer(buf[pos : pos + 8].tobytes(), dtype="<i8")[0])
            pos += 8
        qs.append(np.array([q], dtype=np.int64))
        dts.append(np.array([d], dtype=np.int64))
        count += 1
    q_all = np.concatenate(qs) if qs else np.zeros(0, np.int64)
    dt_all = np.concatenate(dts) if dts else np.zeros(0, np.int64)
    t = np.empty(count + 1, dtype=np.int64)
    t[0] = t0
    np.cumsum(dt_all, out=t[1:])
    t[1:] += t0
    values = np.empty(count + 1, dtype=np.float64)
    bounds = [(0, float(np.float32(v0)))] + [(i + 1, val) for i, val in resets]
    for j, (start, base) in enumerate(bounds):
        stop = bounds[j + 1][0] if j + 1 < len(bounds) else count + 1
        values[start] = base
        if stop > start + 1:
            values[start + 1 : stop] = base + STEP * np.cumsum(q_all[start : stop - 1])
    return t, values
