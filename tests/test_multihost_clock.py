"""Clocks across hosts (issue 32): the host-clock test hook, the userspace delay link, and the
host → global estimate of a skewed node seen through that link against a real redis-server."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from conftest import RedisServer

from benchmarks.multihost import run_setup
from benchmarks.netproxy import DelayProxy, LinkSpec
from sensorium_desktop.bus.globalclock import GlobalClockProbe, OffsetEstimate
from sensorium_desktop.core.hostclock import HostClock


def test_skewed_host_clock_reads_the_documented_mapping() -> None:
    t_ref = time.time() - 100.0
    clock = HostClock(f"0.25,30,{t_ref!r}")
    true = time.time()
    host = clock.now()
    assert host - (true + 0.25 + 30e-6 * (true - t_ref)) == pytest.approx(0.0, abs=2e-3)
    assert HostClock().now() == pytest.approx(time.time(), abs=2e-3)  # no hook: the wall clock
    for bad in ("0.25", "a,b", "1,2,3,4", "nan,1"):
        with pytest.raises(ValueError):
            HostClock(bad)


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(4096), b"")],
                             daemon=True).start()  # fmt: skip

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def _round_trips(port: int, n: int) -> list[float]:
    out = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for k in range(n):
            t0 = time.perf_counter()
            msg = f"{k:06d}".encode()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(64)
            assert got == msg  # in order, nothing lost: TCP through the link
            out.append(time.perf_counter() - t0)
    return out


def test_delay_link_adds_its_asymmetric_delays_and_stalls_in_order() -> None:
    server, port = _echo_server()
    proxy = DelayProxy(("127.0.0.1", port), LinkSpec(0.005), LinkSpec(0.020)).start()
    try:
        rtts = np.array(_round_trips(proxy.port, 20))
        assert rtts.min() >= 0.025 and np.median(rtts) < 0.035  # 5 ms up + 20 ms down, little else
    finally:
        proxy.stop()
    stalls = DelayProxy(("127.0.0.1", port), LinkSpec(0.0, 0.0, 0.0, 0.5, 0.1), LinkSpec()).start()
    try:
        rtts = np.array(_round_trips(stalls.port, 60))
        assert rtts.max() >= 0.05  # some round trips hit a 100 ms stall
        assert np.median(rtts) < 0.01
    finally:
        stalls.stop()
        server.close()


def test_probe_fits_the_drift_between_two_hosts() -> None:
    """30 ppm between the host and Redis clocks: a median over a minute lags by ~0.9 ms;
    the line through the best probes is right at the newest one and beyond it."""
    probe = GlobalClockProbe()
    rng = np.random.default_rng(4)
    t0 = 1_800_000_000.0
    truth = [(t0 + k * 5.0, 0.25 + 30e-6 * k * 5.0) for k in range(13)]
    for t, off in truth:
        probe.add(t, 0.0004 + rng.exponential(0.0001), off + rng.normal(0, 5e-6))
    est = probe.estimate()
    assert est is not None and est.drift == pytest.approx(30e-6, abs=2e-6)
    later = truth[-1][0] + 4.0
    assert float(est.host_offset().at(later)) == pytest.approx(truth[-1][1] + 30e-6 * 4.0, abs=2e-5)
    again = OffsetEstimate.from_mapping({k.encode(): v.encode() for k, v in est.to_mapping().items()})
    assert again == est
    old = OffsetEstimate.from_mapping({b"offset": b"0.1", b"rtt": b"0.001", b"uncertainty": b"0.0003",
                                       b"probes": b"3", b"updated": b"1.0"})  # fmt: skip
    assert old is not None and old.drift == 0.0  # what older nodes published still reads


def test_skewed_node_through_a_lan_link_knows_the_global_clock_within_100_us(redis_server: RedisServer) -> None:
    """A node process whose host clock is 250 ms ahead and 30 ppm fast probes a real Redis
    through a LAN-like link (0.1 ms + jitter each way): its estimate, as every reader maps it,
    is within 100 µs RMS of the truth, and better than the NTP clock filter over the same probes."""
    up = down = LinkSpec(0.0001, 0.000025)
    r = run_setup(redis_server.port, redis_server.password, up, down, seconds=16.0, interval=0.5)
    assert r["bursts"] >= 8
    assert r["ours_rms_us"] <= 100.0
    assert r["ours_rms_us"] <= r["ntp8_rms_us"]


def test_a_failover_to_another_pcs_redis_is_a_logged_step_of_the_global_clock(caplog: pytest.LogCaptureFixture) -> None:
    """The global clock is the primary's TIME: after a failover it is another PC's clock. The
    probe says by how much it stepped and drops the old server's probes (no bent fit)."""
    from sensorium_desktop.bus.globalclock import GlobalClockProbe

    probe = GlobalClockProbe()
    probe._follow_server("pc1:6379", 0.0, 0.0)
    for k in range(20):
        probe.add(1000.0 + k, 2e-4, 0.010 + 20e-6 * k)  # 20 µs/s drift between host and pc1
    assert probe.steps == []
    with caplog.at_level("WARNING"):
        probe._follow_server("pc2:6379", 1020.0, 0.0123 + 20e-6 * 20)
    ((_t, server, step),) = probe.steps
    assert server == "pc2:6379" and step == pytest.approx(0.0023, abs=1e-6)
    assert "stepped by +2.300 ms" in caplog.text and not probe.samples


def test_status_states_the_bound_a_route_asymmetry_leaves() -> None:
    from sensorium_desktop.core.status import host_clock_short, host_clock_text

    published = {"offset": "0.25", "uncertainty": "1.5e-05", "rtt": "0.0002"}
    text = host_clock_text(published)
    assert "offset +250.000 ms ± 15 µs" in text and "±0.10 ms" in text and "0.20 ms" in text
    assert host_clock_short("pc2", published) == "pc2: ±15 µs, route ≤ ±0.10 ms"
    assert "not measured" in host_clock_text({}) and "not measured" in host_clock_short("pc3", {"rtt": "x"})
