"""Supervising a node child process (the GUI starts, watches and stops its node)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..bus.connection import ENV_URL
from ..logfiles import NODE_CONSOLE, NODE_LOG, log_path, rotate_if_large
from .spawn import self_command

log = logging.getLogger(__name__)


@dataclass
class NodeProcess:
    """A ``sensorium node`` child with ``--parent-pid`` so it exits if we die.

    ``restart_if_dead`` restarts it with backoff (1 s · 2^(n-1), max 30 s).
    """

    redis_url: str
    node_args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    proc: subprocess.Popen | None = None
    restarts: int = 0
    last_exit: int | None = None
    _next_restart: float = 0.0

    def start(self) -> None:
        env = dict(os.environ)
        env[ENV_URL] = self.redis_url
        log_file = self.log_path or log_path(NODE_LOG)
        cmd = self_command("--log-file", str(log_file), "node", "--parent-pid", str(os.getpid()), *self.node_args)
        console = log_path(NODE_CONSOLE) if self.log_path is None else log_file.with_suffix(".console.log")
        rotate_if_large(console)
        self._log = open(console, "ab")  # noqa: SIM115 - owned by the child's lifetime
        kwargs: dict = {}
        if os.name == "nt":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, **kwargs)  # fmt: skip
        log.info("node child started: pid %d (%s)", self.proc.pid, " ".join(cmd[1:]))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def restart_if_dead(self) -> bool:
        """Restart a crashed child (with backoff). True if a restart happened."""
        if self.proc is None or self.running:
            return False
        if self.last_exit is None:
            self.last_exit = self.proc.returncode
            delay = min(30.0, 2.0 ** min(self.restarts, 5))
            self._next_restart = time.monotonic() + delay
            log.error("node child exited with %s; restarting in %.0f s", self.last_exit, delay)
        if time.monotonic() < self._next_restart:
            return False
        self.restarts += 1
        self.last_exit = None
        self.start()
        return True

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait (the node flushes its queue), then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("node child did not stop in %.0f s; killing it", timeout)
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        if hasattr(self, "_log"):
            self._log.close()
        return code


def python_executable() -> str:
    return sys.executable
