"""Length + CRC32 framed records for append-only files (spill queue, recording spool).

Frame: ``u32 length | u32 crc32(payload) | payload``. A torn tail (crash mid-write) or a
corrupted record ends the valid prefix; :func:`scan_frames` reports where it ends so the
file can be truncated back to its last complete record.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

_FRAME = struct.Struct("<II")
FRAME_OVERHEAD = _FRAME.size
MAX_FRAME = 256 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in a frame."""
    if len(payload) > MAX_FRAME:
        raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_FRAME}")
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def scan_frames(buf: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, memoryview]]:
    """Yield (offset, payload) of each complete, intact frame from ``start``; stops at the
    first torn or corrupt frame (its offset is where valid data ends)."""
    view = memoryview(buf)
    off = start
    end = len(view)
    while off + FRAME_OVERHEAD <= end:
        length, crc = _FRAME.unpack_from(view, off)
        body_start = off + FRAME_OVERHEAD
        if length > MAX_FRAME or body_start + length > end:
            return
        payload = view[body_start : body_start + length]
        if zlib.crc32(payload) != crc:
            return
        yield off, payload
        off = body_start + length


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
