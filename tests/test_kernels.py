"""core's C kernels (sensorium_desktop/core/_kernels.c) against the code they replace: the
clock model's hull vertices and posterior bits and errors (Python), the frames' CRC (zlib)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks import clock_scenarios
from sensorium_desktop.core import clock, framing
from sensorium_desktop.core.clock import EnvelopePosterior, envelope_posterior, lower_hull

kernels = clock._kernels


def test_the_kernels_are_built_and_used() -> None:
    """scripts/setup.sh builds them (a C compiler is one of its packages); the model uses them."""
    assert kernels is not None
    assert clock._scan_lower_hull is kernels.scan_lower_hull
    assert clock.SMALL_POSTERIOR == 64
    assert framing._crc32 is kernels.crc32


def _points(rng: np.random.Generator, n: int, curved: bool) -> tuple[np.ndarray, np.ndarray]:
    """x increasing, d: a line plus one-sided delays (``curved``: plus a parabola, so the
    hull has many vertices)."""
    x = np.cumsum(rng.uniform(0.05, 0.5, n)) * 10 ** rng.uniform(-1, 2)
    d = rng.normal(0, 1e-2) + rng.normal(0, 5e-5) * x
    if curved:
        d = d + rng.uniform(1e-9, 1e-5) * ((x - x.mean()) / (x.std() + 1e-12)) ** 2
        return x, d + rng.exponential(10 ** rng.uniform(-9, -6), n)
    return x, d + rng.exponential(10 ** rng.uniform(-6, -2), n)


def _posterior_args(rng: np.random.Generator, x: np.ndarray, h: np.ndarray, d: np.ndarray) -> tuple:
    return (x[h].tolist(), d[h].tolist(), float(rng.uniform(1, 500)), float(rng.uniform(x[0], x[-1])),
            float(10 ** rng.uniform(-7, -2)), float(x[-1] + rng.uniform(-1, 5)),
            float(rng.normal(0, 3e-5) if rng.random() < 0.8 else rng.choice([-1.0, 1.0])),
            float(10 ** rng.uniform(-6, 3)))  # fmt: skip


def test_scan_gives_the_python_scans_vertices() -> None:
    rng = np.random.default_rng(3)
    for _ in range(2000):
        x, d = _points(rng, int(rng.integers(0, 300)), bool(rng.random() < 0.5))
        if rng.random() < 0.1 and x.size > 2:  # collinear runs: the scan drops points on a chord
            d[: x.size // 2] = 1e-3 * x[: x.size // 2]
        xs, ds = x.tolist(), d.tolist()
        assert kernels.scan_lower_hull(xs, ds) == clock._scan_lower_hull_py(xs, ds)


def test_posterior_gives_the_python_and_numpy_paths_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hull size up to 64 vertices, both interval branches (series and exponentials),
    the prior's mean inside and outside the edges: C, Python floats and numpy agree to the bit."""
    rng = np.random.default_rng(11)
    sizes: set[int] = set()
    for _ in range(4000):
        x, d = _points(rng, 1 if rng.random() < 0.02 else int(rng.integers(2, 1500)), bool(rng.random() < 0.6))
        h = lower_hull(x, d)
        if h.size > 64:
            continue
        sizes.add(int(h.size))
        args = _posterior_args(rng, x, h, d)
        c = EnvelopePosterior(*kernels.posterior_small(*args))
        assert c == clock._posterior_small_py(*args)
        monkeypatch.setattr(clock, "SMALL_POSTERIOR", -1)
        assert c == envelope_posterior(np.array(args[0]), np.array(args[1]), *args[2:])
        monkeypatch.undo()
    assert {1, 2, 8, 14, 15, 30} <= sizes and max(sizes) >= 50


def test_kernels_raise_what_the_python_code_raises() -> None:
    with pytest.raises(ValueError):
        kernels.scan_lower_hull([0.0, 1.0], [0.0])
    with pytest.raises(TypeError):
        kernels.scan_lower_hull([0.0, "a"], [0.0, 1.0])
    args = ([0.0, 1.0, 2.0], [0.0, -1e-3, 0.0], 10.0, 1.0, 0.0, 2.0, 0.0, 1e-4)  # scale 0
    for fn in (kernels.posterior_small, clock._posterior_small_py):
        with pytest.raises(ZeroDivisionError):
            fn(*args)
    with pytest.raises(ValueError):
        kernels.posterior_small([], [], 10.0, 1.0, 1e-3, 2.0, 0.0, 1e-4)
    nan = kernels.posterior_small([0.0, 1.0, 2.0], [0.0, float("nan"), 0.0], 10.0, 1.0, 1e-3, 2.0, 0.0, 1e-4)
    py = clock._posterior_small_py([0.0, 1.0, 2.0], [0.0, float("nan"), 0.0], 10.0, 1.0, 1e-3, 2.0, 0.0, 1e-4)
    assert np.array_equal(np.array(nan), np.array(_fields(py)), equal_nan=True)


def _fields(p: EnvelopePosterior) -> tuple[float, float, float, float]:
    return p.offset, p.slope, p.sigma, p.slope_sigma


def test_crc32_is_zlibs() -> None:
    """Every length 0..300 (the tables alone below 64 bytes, carry-less multiplication and a
    table tail above), random slices up to 200 kB of a random buffer, and the table path on
    its own (the path of CPUs without PCLMULQDQ)."""
    rng = np.random.default_rng(5)
    data = memoryview(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    for n in range(301):
        assert kernels.crc32(data[:n]) == zlib.crc32(data[:n])
        assert kernels.crc32_tables(data[1 : n + 1]) == zlib.crc32(data[1 : n + 1])
    for _ in range(500):
        a = int(rng.integers(0, len(data)))
        b = min(len(data), a + int(rng.integers(0, 200_000)))
        assert kernels.crc32(data[a:b]) == zlib.crc32(data[a:b]) == kernels.crc32_tables(data[a:b])
    assert kernels.crc32(b"") == 0 and kernels.crc32(bytearray(b"123456789")) == 0xCBF43926
    with pytest.raises(TypeError):
        kernels.crc32("text")  # type: ignore[arg-type]


def test_bin_minima_gives_the_numpy_codes_arrays() -> None:
    """Random device clocks with resets and sub-millisecond backsteps, packets (runs of equal
    arrival times), ties in the offset, clockless sensors, several bin widths; NaN goes to
    the numpy code."""
    rng = np.random.default_rng(2)
    for trial in range(1500):
        n = int(rng.integers(2, 3000))
        x = np.cumsum(rng.uniform(0, 0.01, n)) + rng.uniform(-1e3, 1e6)
        if rng.random() < 0.5:
            for _ in range(int(rng.integers(1, 5))):
                k = int(rng.integers(1, n))
                x[k:] -= rng.uniform(0, 2e-3) if rng.random() < 0.5 else rng.uniform(0, 50)
        y = np.maximum.accumulate(x + rng.exponential(1e-3, n))
        if rng.random() < 0.5:
            per = int(rng.integers(1, 20))
            y = np.repeat(y[::per], per)[:n]
        if rng.random() < 0.2:
            y[rng.integers(0, n, 3)] = x[rng.integers(0, n, 3)]
        if rng.random() < 0.1:
            y = x.copy()
        width = float(rng.choice([0.0625, 0.25, 0.01, 1.0]))
        got, want = clock.bin_minima(x, y, width), clock._bin_minima_py(x, y, width)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), trial
    x = np.arange(10.0)
    y = x + 1e-3
    y[4] = np.nan
    keep = np.empty(10, dtype=np.int64)
    assert kernels.bin_minima(x, y, 0.25, clock.RESET_BACKSTEP_S, keep, np.empty(10)) == -1
    assert [a.size for a in clock.bin_minima(x, y, 0.25)] == [a.size for a in clock._bin_minima_py(x, y, 0.25)]


def test_window_posterior_gives_the_python_codes_bits() -> None:
    """The drift check's posterior of the last bins (count: numpy's pairwise sum, also past
    128 rows; mean x summed in order; hull; posterior) in one C call: the same bits as the
    Python code, the same ZeroDivisionError when the window holds no delivery, None past 64
    hull vertices."""
    rng = np.random.default_rng(4)
    compared = declined = 0
    for _ in range(1500):
        n = int(rng.integers(1, 3000 if rng.random() < 0.2 else 130))
        x, d = _points(rng, n, bool(rng.random() < 0.4))
        deliveries = rng.integers(1, 20, n).astype(float)
        if rng.random() < 0.3:
            deliveries[rng.integers(0, n, 3)] = 0.0
        bins = np.ascontiguousarray(np.column_stack([x, d, deliveries]))
        lo = int(rng.integers(0, n))
        args = (float(x[-1] + rng.uniform(-1, 5)), float(10 ** rng.uniform(-7, -2)),
                float(rng.normal(0, 3e-5) if rng.random() < 0.8 else rng.choice([-1.0, 1.0])),
                float(10 ** rng.uniform(-6, 3)))  # fmt: skip
        try:
            want = clock._window_posterior_py(bins, lo, *args)
        except ZeroDivisionError:
            with pytest.raises(ZeroDivisionError):
                kernels.window_posterior(bins, lo, *args)
            continue
        got = kernels.window_posterior(bins, lo, *args)
        if got is None:
            declined += 1
            assert clock._window_posterior(bins, lo, *args) == want
            continue
        assert EnvelopePosterior(*got) == want
        compared += 1
    assert compared > 1000 and declined > 10
    with pytest.raises(ValueError):
        kernels.window_posterior(np.zeros((4, 3)), 4, 1.0, 1e-3, 0.0, 1e-4)


@pytest.mark.parametrize("scenario", ["ble", "drift_change", "reset", "camera", "no_clock"])
def test_refined_knots_give_the_python_codes_bits(scenario: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """RefinedClock.from_model's knots in C (window hull, count, mean, slope, median excess,
    posterior) against the Python code, over 15 minutes with drift changes and a reset."""
    sc = getattr(clock_scenarios, scenario)(seed=2, duration=900.0)
    model = clock.ClockModel(fixed_latency=sc.fixed_latency)
    model.update(sc.t_local, sc.t_arrival)
    with_c = clock.RefinedClock.from_model(model)
    monkeypatch.setattr(clock, "_kernels", None)
    python = clock.RefinedClock.from_model(model)
    assert len(with_c.epochs) == len(python.epochs)
    for a, b in zip(with_c.epochs, python.epochs, strict=True):
        assert np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3], equal_nan=True)


def test_refine_knots_leaves_what_it_cannot_do_to_python() -> None:
    """A window without deliveries (the Python code divides by zero) and a NaN are left undone."""
    bins = np.array([[0.0, 1e-3, 1.0], [1.0, 2e-3, 0.0], [2.0, np.nan, 0.0], [3.0, 1e-3, 1.0]])
    knots = np.array([0.5, 1.5, 2.5])
    lo, hi = np.array([0, 1, 1], dtype=np.int64), np.array([2, 3, 4], dtype=np.int64)
    values, done = np.full(3, -1.0), np.zeros(3, dtype=np.uint8)
    kernels.refine_knots(bins, knots, lo, hi, 0.0, 1e-4, 1e-9, values, done)
    assert done.tolist() == [1, 0, 0] and np.isfinite(values[0])
    with pytest.raises(ValueError):
        kernels.refine_knots(bins, knots, lo, hi + 1, 0.0, 1e-4, 1e-9, values, done)


def test_refined_to_host_gives_numpys_bits() -> None:
    """The refined clock's mapping in one C pass against np.interp plus the end segments'
    lines: sorted and shuffled times, times on the knots, outside them, NaN times and NaN
    knot values; declined (False) for knots that are not strictly increasing."""
    rng = np.random.default_rng(8)
    for _ in range(300):
        m = int(rng.integers(2, 800))
        kx = np.cumsum(rng.uniform(0.1, 5.0, m))
        kv = rng.normal(0, 1e-3, m) + 1e-5 * kx
        if rng.random() < 0.1:
            kv[rng.integers(0, m)] = np.nan
        x0 = float(rng.uniform(-1e3, 1e9))
        x = x0 + rng.uniform(kx[0] - 50, kx[-1] + 50, int(rng.integers(1, 5000)))
        if rng.random() < 0.5:
            x.sort()
        x[: min(5, x.size)] = x0 + kx[rng.integers(0, m, min(5, x.size))]  # exactly on knots
        if rng.random() < 0.1:
            x[rng.integers(0, x.size)] = np.nan
        out = np.empty_like(x)
        assert kernels.refined_to_host(x, x0, kx, kv, out)
        want = clock.RefinedClock._to_host_numpy(x, x0, kx, kv)
        np.testing.assert_array_equal(out, want)
    assert not kernels.refined_to_host(np.zeros(3), 0.0, np.array([1.0, 1.0]), np.zeros(2), np.empty(3))


def test_refit_spread_gives_numpys_values() -> None:
    """The refit's ptp of d and the (n // 2)-th smallest deliveries × excess, with and without
    the open bin, against np.ptp and np.partition; None for a NaN."""
    rng = np.random.default_rng(6)
    for _ in range(1000):
        n = int(rng.integers(1, 1500))
        x = np.cumsum(rng.uniform(0.05, 0.5, n))
        d = 1e-3 + 2e-5 * x + rng.exponential(1e-3, n)
        if rng.random() < 0.2:
            d[: n // 2] = d[0]  # ties
        bins = np.ascontiguousarray(np.column_stack([x, d, rng.integers(1, 9, n).astype(float)]))
        lo = int(rng.integers(0, n))
        open_row = np.array([x[-1] + 0.1, float(rng.uniform(0, 5e-3)), 1.0]) if rng.random() < 0.5 else np.array([])
        alpha, beta = float(rng.normal(1e-3, 1e-4)), float(rng.normal(2e-5, 1e-6))
        win = np.vstack([bins[lo:], open_row[None, :]]) if open_row.size else bins[lo:]
        excess = np.maximum(win[:, 1] - (alpha + beta * win[:, 0]), 0.0) * win[:, 2]
        m = win.shape[0]
        assert kernels.refit_spread(bins, lo, open_row, alpha, beta) == (
            float(np.ptp(win[:, 1])), float(np.partition(excess, m // 2)[m // 2]))  # fmt: skip
    bins = np.array([[0.0, np.nan, 1.0], [1.0, 1e-3, 1.0]])
    assert kernels.refit_spread(bins, 0, np.array([]), 0.0, 0.0) is None


def test_without_the_kernels_an_export_is_the_same_file(tmp_path: Path) -> None:
    """An install without a C compiler runs the Python code: a 3-minute 32-channel recording
    exported in a process where the kernels cannot be imported is byte for byte the file the
    kernels write (spool CRCs, copies, bin minima, causal and refined clock, mapping)."""
    import subprocess
    import sys

    from benchmarks.export import make_spool
    from sensorium_desktop.recording.export import export_recording

    rec = tmp_path / "rec"
    make_spool(rec, 3.0, 32, 512.0)
    export_recording(rec, "xdf", tmp_path / "c.xdf")
    script = (
        "import sys; sys.modules['sensorium_desktop.core._kernels'] = None\n"
        "from pathlib import Path\n"
        "from sensorium_desktop.core import kernels, clock\n"
        "assert kernels.native is None and clock.SMALL_POSTERIOR == 14\n"
        "from sensorium_desktop.recording.export import export_recording\n"
        f"export_recording(Path({str(rec)!r}), 'xdf', Path({str(tmp_path / 'py.xdf')!r}))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert (tmp_path / "c.xdf").read_bytes() == (tmp_path / "py.xdf").read_bytes()
