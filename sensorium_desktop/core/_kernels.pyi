"""Types of the C kernels in _kernels.c (see clock.py)."""

from collections.abc import Sequence
from typing import Any

def scan_lower_hull(xs: Sequence[float], ys: Sequence[float]) -> list[int]: ...
def posterior_small(
    hx: Sequence[float],
    hd: Sequence[float],
    count: float,
    x_mean: float,
    scale: float,
    x_eval: float,
    slope_prior: float,
    slope_prior_sigma: float,
) -> tuple[float, float, float, float]: ...
def crc32(data: bytes | bytearray | memoryview, /) -> int: ...
def crc32_tables(data: bytes | bytearray | memoryview, /) -> int: ...
def concat_into(dst: Any, sources: list[memoryview], offsets: Any, lengths: Any, /) -> None:
    """dst, offsets, lengths: buffers (numpy arrays); see kernels.concat_into."""

def bin_minima(x: Any, y: Any, width: float, backstep: float, keep: Any, counts: Any, /) -> int: ...
def window_posterior(
    bins: Any, lo: int, x_eval: float, scale: float, slope_prior: float, slope_prior_sigma: float, /
) -> tuple[float, float, float, float] | None: ...
def refine_knots(
    bins: Any,
    knots: Any,
    lo: Any,
    hi: Any,
    slope_fallback: float,
    slope_prior_sigma: float,
    scale_floor: float,
    values: Any,
    done: Any,
    /,
) -> None: ...
def refined_to_host(x: Any, x0: float, knots: Any, values: Any, out: Any, /) -> bool: ...
def refit_spread(bins: Any, lo: int, open_row: Any, alpha: float, beta: float, /) -> tuple[float, float] | None: ...
