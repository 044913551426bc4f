"""A lab on this machine for benchmarks and tests: a private ``redis-server`` process, a
node subprocess, a free port. One copy, used by ``tests/conftest.py`` and every benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from sensorium_desktop.bus.embedded import find_redis_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A real redis-server process the test controls (can be killed and restarted)."""

    directory: Path
    port: int
    password: str
    binary: Path
    proc: subprocess.Popen | None = None
    appendfsync: str = "everysec"

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--requirepass", self.password, "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5, **kw)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGTERM is SHUTDOWN (AOF flushed): no client round trip that redis-py may retry
            # for minutes against a server that is going away
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def make_server(directory: Path) -> RedisServer:
    binary, _ = find_redis_server()
    return RedisServer(directory, free_port(), uuid.uuid4().hex, binary)


def start_redis(directory: Path) -> RedisServer:
    """A private redis-server (AOF every second, password) in ``directory``, started."""
    server = make_server(directory)
    server.start()
    return server


def node_process(url: str, prefix: str, devices: list[str], data: Path | None = None, *extra: str,
                 node_id: str = "bench", log_level: str = "WARNING", stdout: int | None = subprocess.DEVNULL,
                 stderr: int | None = subprocess.DEVNULL) -> subprocess.Popen:
    """``sensorium node`` as a subprocess on Redis ``url`` with key ``prefix``, acquiring
    ``devices`` (its data dir ``data`` when given); ``extra`` are more node flags."""
    env = dict(os.environ, SENSORIUM_REDIS_URL=url)
    if data is not None:
        env["SENSORIUM_DATA_DIR"] = str(data)
    args = [sys.executable, "-m", "sensorium_desktop", "node", "--redis-url", url, "--prefix", prefix,
            "--node-id", node_id, "--log-level", log_level, *extra]  # fmt: skip
    for d in devices:
        args += ["--device", d]
    return subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr)
