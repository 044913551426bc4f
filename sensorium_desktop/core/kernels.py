"""core's C kernels (``_kernels.c``, built by setup.py) and what runs where they are not built.

``native`` is the C module, or None after an install without a C compiler (scripts/setup.sh
installs one): then the clock model runs its Python code (the same bits, slower), frames are
checked with zlib's CRC and byte ranges are copied in Python.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

try:
    from . import _kernels as native
except ImportError:  # pragma: no cover - every supported install builds them
    native = None  # type: ignore[assignment]

#: zlib.crc32 of a bytes-like object: by carry-less multiplication in C on x86-64 (~3x zlib)
crc32: Callable[[bytes | memoryview], int] = zlib.crc32 if native is None else native.crc32


def concat_into(dst: np.ndarray, sources: list[memoryview], offsets: np.ndarray, lengths: np.ndarray) -> None:
    """Write ``sources[i][offsets[i] : offsets[i] + lengths[i]]`` (bytes) back to back into
    the C-contiguous array ``dst`` from its start; ``offsets``, ``lengths``: int64 (k,). In C
    with the GIL released (a thread can fill an array while Python goes on)."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    if native is not None:
        native.concat_into(dst.reshape(-1).view(np.uint8), sources, offsets, lengths)
        return
    out = dst.reshape(-1).view(np.uint8).data  # pragma: no cover - without the C kernels
    at = 0
    for src, off, n in zip(sources, offsets.tolist(), lengths.tolist(), strict=True):
        out[at : at + n] = src[off : off + n]
        at += n
