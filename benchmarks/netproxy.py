"""A userspace network link for tests: a TCP proxy that delays, jitters, loses and stalls.

The kernel here has no ``netem`` qdisc, so a lab of several "PCs" on one machine gets its
network conditions from this proxy instead. Each direction has its own :class:`LinkSpec`;
bytes keep their order (TCP), so a chunk is delivered at ``max(previous delivery, arrival +
delay + jitter)``. TCP hides loss behind retransmission: a lost chunk arrives one
retransmission timeout late (``rto_s``). A burst holds every chunk until it ends.

    proxy = DelayProxy(("127.0.0.1", redis_port), up=LinkSpec(0.001), down=LinkSpec(0.006)).start()
    ...                          # proxy.port forwards to the Redis port
    proxy.stop()

``python -m benchmarks.netproxy LISTEN_PORT TARGET_HOST:PORT --up MS[,JITTER_MS[,LOSS]] --down …``
runs one in the foreground (``scripts/lab-netns.sh`` starts them between namespaces).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One direction: fixed ``delay_s``, + exponential jitter of mean ``jitter_s``; each chunk
    lost with probability ``loss`` (delivered ``rto_s`` later); every ``burst_every_s`` a stall
    of ``burst_s`` (0: none). Seconds."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    burst_every_s: float = 0.0
    burst_s: float = 0.0
    rto_s: float = 0.2

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        """``delay_ms[,jitter_ms[,loss[,burst_every_s,burst_ms]]]``."""
        v = [float(x) for x in text.split(",")]
        burst = (v[3], v[4] / 1e3) if len(v) >= 5 else (0.0, 0.0)
        return cls(v[0] / 1e3, (v[1] if len(v) > 1 else 0.0) / 1e3, v[2] if len(v) > 2 else 0.0, *burst)


class _Direction:
    """Delivers chunks read from one socket to the other at their scheduled times, in order
    (a reader thread stamps them, a writer thread sleeps until each is due: ``time.sleep`` is
    precise to tens of µs, an event loop's timers only to a millisecond)."""

    def __init__(self, spec: LinkSpec, rng: np.random.Generator, epoch: float) -> None:
        self.spec = spec
        self.rng = rng
        self.epoch = epoch
        self.last_due = 0.0

    def due(self, now: float) -> float:
        """Monotonic time (s) a chunk read at ``now`` is delivered."""
        s = self.spec
        t = now + s.delay_s
        if s.jitter_s > 0:
            t += float(self.rng.exponential(s.jitter_s))
        if s.loss > 0 and self.rng.random() < s.loss:
            t += s.rto_s
        if s.burst_every_s > 0 and s.burst_s > 0:
            phase = (t - self.epoch) % s.burst_every_s
            if phase < s.burst_s:  # inside a stall: held until it ends
                t += s.burst_s - phase
        self.last_due = max(self.last_due, t)
        return self.last_due

    def start(self, src: socket.socket, dst: socket.socket) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                chunks.put((self.due(time.monotonic()), data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()


class DelayProxy:
    """Listens on ``listen`` (port 0: a free one, see :attr:`port`) and forwards each
    connection to ``target`` through ``up`` (client → target) and ``down`` (back)."""

    def __init__(self, target: tuple[str, int], up: LinkSpec, down: LinkSpec,
                 listen: tuple[str, int] = ("127.0.0.1", 0), seed: int = 1) -> None:  # fmt: skip
        self.target = target
        self.up = up
        self.down = down
        self.rng = np.random.default_rng(seed)
        self.listener = socket.create_server(listen, reuse_port=False)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._open: list[socket.socket] = []

    def start(self) -> DelayProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        for s in self._open:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                target = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            target.settimeout(None)
            for s in (client, target):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._open += [client, target]
            self.connections += 1
            epoch = time.monotonic()
            _Direction(self.up, self.rng, epoch).start(client, target)
            _Direction(self.down, self.rng, epoch).start(target, client)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.netproxy", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("listen_port", type=int)
    ap.add_argument("target", help="HOST:PORT")
    ap.add_argument("--listen-host", default="0.0.0.0")
    ap.add_argument("--up", type=LinkSpec.parse, default=LinkSpec())
    ap.add_argument("--down", type=LinkSpec.parse, default=LinkSpec())
    args = ap.parse_args(argv)
    host, _, port = args.target.rpartition(":")

    proxy = DelayProxy((host, int(port)), args.up, args.down, (args.listen_host, args.listen_port)).start()
    print(f"proxy :{proxy.port} → {args.target} up {args.up} down {args.down}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
