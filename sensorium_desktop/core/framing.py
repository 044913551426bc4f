"""Length + CRC32 framed records for append-only files (spill queue, recording spool).

Frame: ``u32 length | u32 crc32(payload) | payload``. A torn tail (crash mid-write) or a
corrupted record ends the valid prefix; :func:`scan_frames` reports where it ends so the
file can be truncated back to its last complete record. :func:`scan_frames_resync` reads on
past damage (flipped bytes, a zeroed page, a cut) to every intact frame after it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .kernels import crc32 as _crc32

if TYPE_CHECKING:
    from mmap import mmap

_FRAME = struct.Struct("<II")
FRAME_OVERHEAD = _FRAME.size
MAX_FRAME = 256 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in a frame."""
    if len(payload) > MAX_FRAME:
        raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_FRAME}")
    return _FRAME.pack(len(payload), _crc32(payload)) + payload


def scan_frames(buf: bytes | memoryview, start: int = 0, min_length: int = 0) -> Iterator[tuple[int, memoryview]]:
    """Yield (offset, payload) of each complete, intact frame from ``start``; stops at the
    first torn or corrupt frame (its offset is where valid data ends). ``min_length``: a
    shorter payload is corruption (1 where empty records are never written: a zeroed page
    would otherwise read as a run of valid empty frames)."""
    view = memoryview(buf)
    off = start
    end = len(view)
    while off + FRAME_OVERHEAD <= end:
        length, crc = _FRAME.unpack_from(view, off)
        body_start = off + FRAME_OVERHEAD
        if length > MAX_FRAME or length < min_length or body_start + length > end:
            return
        payload = view[body_start : body_start + length]
        if _crc32(payload) != crc:
            return
        yield off, payload
        off = body_start + length


#: Bytes searched per step when resynchronising after a damaged frame.
RESYNC_WINDOW = 1 << 20


def find_frame(buf: bytes | memoryview, start: int, first_bytes: frozenset[int] | None = None) -> int:
    """Offset of the first intact frame at or after ``start`` (-1 when there is none): every
    offset whose length field fits in the buffer (and whose payload starts with one of
    ``first_bytes``, when given) is a candidate, the first whose CRC matches is the frame.
    Searched in windows of ``RESYNC_WINDOW`` bytes, vectorized."""
    view = memoryview(buf)
    end = len(view)
    arr = np.frombuffer(view, dtype=np.uint8)
    lo = start
    while lo + FRAME_OVERHEAD <= end:
        hi = min(lo + RESYNC_WINDOW, end - FRAME_OVERHEAD + 1)
        b = arr[lo : hi + 3].astype(np.uint64)
        n = hi - lo
        length = b[:n] | (b[1 : n + 1] << 8) | (b[2 : n + 2] << 16) | (b[3 : n + 3] << 24)
        offs = np.arange(lo, hi, dtype=np.uint64)
        ok = (length >= 1) & (length <= MAX_FRAME) & (offs + FRAME_OVERHEAD + length <= end)
        cand = np.flatnonzero(ok)
        if first_bytes is not None and cand.size:
            firsts = arr[np.minimum(cand + lo + FRAME_OVERHEAD, end - 1)]
            cand = cand[np.isin(firsts, np.fromiter(first_bytes, dtype=np.uint8))]
        for k in cand.tolist():
            off = lo + k
            n_body, crc = _FRAME.unpack_from(view, off)
            if _crc32(view[off + FRAME_OVERHEAD : off + FRAME_OVERHEAD + n_body]) == crc:
                return off
        lo = hi
    return -1


def scan_frames_resync(
    buf: bytes | memoryview | mmap, start: int = 0, first_bytes: frozenset[int] | None = None
) -> Iterator[tuple[int, int, memoryview | None]]:
    """Like :func:`scan_frames`, but a torn or corrupt frame does not end the scan: the
    damaged bytes are reported and the scan resumes at the next intact frame
    (:func:`find_frame`). Yields ``(offset, end, payload)`` for each frame and
    ``(offset, end, None)`` for each damaged range (a damaged tail runs to the end). Empty
    frames count as damage."""
    view = memoryview(buf)
    off = start
    end = len(view)
    while off < end:
        last = off
        for frame_off, payload in scan_frames(view, off, min_length=1):
            last = frame_off + FRAME_OVERHEAD + len(payload)
            yield frame_off, last, payload
        if last >= end:
            return
        nxt = find_frame(view, last + 1, first_bytes)
        yield last, (nxt if nxt >= 0 else end), None
        if nxt < 0:
            return
        off = nxt


def valid_length(buf: bytes | memoryview, start: int = 0) -> int:
    """Byte length of the intact frame prefix of ``buf`` from ``start``."""
    end = start
    for off, payload in scan_frames(buf, start):
        end = off + FRAME_OVERHEAD + len(payload)
    return end


_STR = struct.Struct("<H")


def pack_strings(*items: str) -> bytes:
    """Length-prefixed UTF-8 strings (u16 lengths)."""
    out = bytearray()
    for s in items:
        b = s.encode("utf-8")
        out += _STR.pack(len(b)) + b
    return bytes(out)


def unpack_strings(buf: bytes | memoryview, count: int, offset: int = 0) -> tuple[list[str], int]:
    """Read ``count`` strings written by :func:`pack_strings`; returns (strings, new offset)."""
    view = memoryview(buf)
    out = []
    for _ in range(count):
        (n,) = _STR.unpack_from(view, offset)
        offset += _STR.size
        if offset + n > len(view):
            raise ValueError("truncated string")
        out.append(bytes(view[offset : offset + n]).decode("utf-8"))
        offset += n
    return out, offset
