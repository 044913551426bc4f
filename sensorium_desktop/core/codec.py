"""Binary encoding of sample batches (what goes into a Redis stream entry and the spool).

Layout, little-endian::

    magic   4s   b"SDB1"
    flags   u8   bit0: t_local present, bit1: string values
    dtype   u8   value dtype code (see _DTYPES), 0 for strings
    chans   u16  channels per sample
    n       u32  samples
    t_arrival  f64[n]
    t_local    f64[n]            (if flag bit0)
    values     dtype[n*chans]    numeric, row-major
               or u32[n*chans] byte lengths + UTF-8 blob   (strings)

No pickle, no JSON per sample; decoding validates every length so truncated or padded
input raises :class:`CodecError` instead of producing wrong data.
"""

from __future__ import annotations

import struct

import numpy as np

from .samples import SampleBatch

MAGIC = b"SDB1"
_HEADER = struct.Struct("<4sBBHI")
HEADER_SIZE = _HEADER.size
#: Largest encoded batch accepted (bytes); bigger payloads are rejected, not truncated.
MAX_BATCH_BYTES = 64 * 1024 * 1024

_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("<i8"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
}
_CODES = {dt.name: code for code, dt in _DTYPES.items()}


class CodecError(ValueError):
    """Encoded bytes are malformed, truncated, or too large."""


def encode_batch(batch: SampleBatch) -> bytes:
    """Encode ``batch`` (timestamps and values; ids travel in the stream entry fields)."""
    n, chans = batch.values.shape
    flags = 0
    parts: list[bytes] = []
    if batch.t_local is not None:
        flags |= 1
    if batch.values.dtype == object:
        flags |= 2
        code = 0
        blobs = [str(v).encode("utf-8") for v in batch.values.ravel()]
        lengths = np.fromiter((len(b) for b in blobs), dtype="<u4", count=len(blobs))
        parts = [lengths.tobytes(), b"".join(blobs)]
    else:
        dt = batch.values.dtype.newbyteorder("<") if batch.values.dtype.byteorder == ">" else batch.values.dtype
        known = _CODES.get(dt.name)
        if known is None:
            raise CodecError(f"unsupported value dtype {batch.values.dtype}")
        code = known
        parts = [np.ascontiguousarray(batch.values, dtype=_DTYPES[code]).tobytes()]
    if chans > 0xFFFF or n > 0xFFFFFFFF:
        raise CodecError(f"batch too large: {n} samples x {chans} channels")
    head = _HEADER.pack(MAGIC, flags, code, chans, n)
    times = [batch.t_arrival.astype("<f8", copy=False).tobytes()]
    if batch.t_local is not None:
        times.append(batch.t_local.astype("<f8", copy=False).tobytes())
    out = b"".join([head, *times, *parts])
    if len(out) > MAX_BATCH_BYTES:
        raise CodecError(f"encoded batch is {len(out)} bytes (max {MAX_BATCH_BYTES})")
    return out


def _header(buf: bytes | memoryview, offset: int) -> tuple[int, int, int, int]:
    """(flags, dtype code, channels, samples) of the encoded batch at ``offset`` of ``buf``
    (running to its end), its size, magic and flags checked; raises :class:`CodecError`."""
    size = len(buf) - offset
    if size > MAX_BATCH_BYTES:
        raise CodecError(f"batch of {size} bytes exceeds the {MAX_BATCH_BYTES} byte limit")
    if size < HEADER_SIZE:
        raise CodecError(f"batch of {size} bytes is shorter than the header")
    magic, flags, code, chans, n = _HEADER.unpack_from(buf, offset)
    if magic != MAGIC:
        raise CodecError(f"bad magic {bytes(magic)!r}")
    if flags & ~3:
        raise CodecError(f"unknown flags 0x{flags:02x}")
    return flags, code, chans, n


def decode_arrays(data: bytes | memoryview) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(t_arrival (n,), t_local (n,) or None, values (n, channels)) of an encoded batch, as
    read-only views into ``data`` (no copy, no per-sample work); lengths are validated."""
    buf = memoryview(data)
    flags, code, chans, n = _header(buf, 0)
    off = HEADER_SIZE
    need = off + 8 * n * (2 if flags & 1 else 1)
    if len(buf) < need:
        raise CodecError(f"truncated timestamps: {len(buf)} < {need} bytes")
    t_arrival = np.frombuffer(buf, dtype="<f8", count=n, offset=off)
    off += 8 * n
    t_local = None
    if flags & 1:
        t_local = np.frombuffer(buf, dtype="<f8", count=n, offset=off)
        off += 8 * n
    count = n * chans
    if flags & 2:
        if len(buf) < off + 4 * count:
            raise CodecError("truncated string lengths")
        lengths = np.frombuffer(buf, dtype="<u4", count=count, offset=off).astype(np.int64)
        off += 4 * count
        total = int(lengths.sum())
        if len(buf) != off + total:
            raise CodecError(f"string blob is {len(buf) - off} bytes, header says {total}")
        ends = np.cumsum(lengths) + off
        starts = ends - lengths
        raw = bytes(buf)
        try:
            strings = [raw[s:e].decode("utf-8") for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        except UnicodeDecodeError as exc:
            raise CodecError(f"string value is not UTF-8: {exc}") from exc
        flat = np.empty(count, dtype=object)
        flat[:] = strings
        values = flat.reshape(n, chans)
    else:
        dt = _DTYPES.get(code)
        if dt is None:
            raise CodecError(f"unknown value dtype code {code}")
        size = count * dt.itemsize
        if len(buf) != off + size:
            raise CodecError(f"value block is {len(buf) - off} bytes, header says {size}")
        values = np.frombuffer(buf, dtype=dt, count=count, offset=off).reshape(n, chans)
    return t_arrival, t_local, values


def numeric_layout(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int, np.dtype, bool, int] | None:
    """Where the arrays of a numeric encoded batch starting at ``offset`` of ``buf`` lie, with
    every length validated as :func:`decode_arrays` does, without making arrays:
    ``(n samples, channels, value dtype, t_local present, byte offset of the values)`` (the
    times start right after the header). None for string values or anything malformed
    (:func:`decode_arrays` then says what is wrong)."""
    try:
        flags, code, chans, n = _header(buf, offset)
    except CodecError:
        return None
    dt = _DTYPES.get(code)
    if flags & 2 or dt is None:  # string values
        return None
    values_at = offset + HEADER_SIZE + 8 * n * (1 + (flags & 1))
    if len(buf) != values_at + n * chans * dt.itemsize:
        return None
    return n, chans, dt, bool(flags & 1), values_at


def decode_batch(
    data: bytes | memoryview, sensor_id: str, attribute: str, seq: int = -1, first_index: int = -1
) -> SampleBatch:
    """Decode bytes produced by :func:`encode_batch` into a :class:`SampleBatch`."""
    t_arrival, t_local, values = decode_arrays(data)
    try:
        return SampleBatch(sensor_id, attribute, t_arrival, values, t_local, seq, first_index)
    except ValueError as exc:
        raise CodecError(str(exc)) from exc
