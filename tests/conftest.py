"""Shared fixtures: a real redis-server per test session, isolated data dirs, offscreen Qt."""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
_SESSION_DATA = Path(tempfile.mkdtemp(prefix="sensorium-test-data-"))
os.environ["SENSORIUM_DATA_DIR"] = str(_SESSION_DATA)
os.environ.pop("SENSORIUM_REDIS_URL", None)

import redis  # noqa: E402

from benchmarks.lab import RedisServer, free_port, make_server  # noqa: E402
from sensorium_desktop.bus.keys import Keys  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["RedisServer", "free_port", "make_server"]  # shared with the benchmarks (benchmarks/lab.py)


@pytest.fixture(autouse=True)
def collect_qt_garbage(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a window test, collect its garbage now, in the main thread while Qt is alive:
    otherwise Qt wrappers are destroyed by a later collection in whatever thread triggers it."""
    yield
    if request.node.get_closest_marker("gui") is not None:
        gc.collect()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session (tests isolate by key prefix)."""
    server = make_server(Path(tempfile.mkdtemp(prefix="sensorium-redis-")))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def keys() -> Keys:
    """A fresh key prefix per test."""
    return Keys(f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def rclient(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    yield c
    c.close()


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (for kill/restart tests)."""
    server = make_server(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private SENSORIUM_DATA_DIR for this test."""
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(d))
    return d


def sensorium(*args: str) -> list[str]:
    """argv running the CLI with this interpreter."""
    return [sys.executable, "-m", "sensorium_desktop", *args]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until truthy; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DATA, ignore_errors=True)


class NodeThread:
    """A real :class:`Node` running its own asyncio loop in a background thread."""

    def __init__(self, url: str, keys: Keys, devices: list[str], node_id: str = "test-node", **kw: object) -> None:
        import asyncio
        import threading

        from sensorium_desktop.core.backpressure import Attention
        from sensorium_desktop.worker.context import NodeConfig
        from sensorium_desktop.worker.node import Node

        kw.setdefault("attention_default", Attention.HIGH)
        kw.setdefault("spill_dir", Path(tempfile.mkdtemp(prefix="spill-")))
        kw.setdefault("sync_worker", False)
        self.node = Node(NodeConfig(url, keys, node_id, devices, **kw))  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)

        async def run() -> None:
            self.stop_event = asyncio.Event()
            self._ready.set()
            await self.node.run(self.stop_event)

        self.loop.run_until_complete(run())

    def remote(self, name: str) -> Any:
        """The node's running remote control ``name`` (None: not running yet)."""
        return self.node.remote(name)

    def start(self) -> NodeThread:
        self.thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self.stop_event is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


def with_async_redis(url: str, work):  # type: ignore[no-untyped-def]
    """Run ``work(client)`` (a coroutine function) on a fresh async Redis client; its result."""
    import asyncio

    import redis.asyncio

    async def go():  # type: ignore[no-untyped-def]
        c = redis.asyncio.Redis.from_url(url)
        try:
            return await work(c)
        finally:
            await c.aclose()

    return asyncio.run(go())


def record_session(redis_server: RedisServer, keys: Keys, devices: list[str], sessions_dir: Path, session_id: str,
                   markers: list[str], ready, node_id: str = "rec-node", settle_s: float = 0.0,
                   **meta: str) -> Path:  # fmt: skip
    """Record every sensor of a real node running ``devices`` once ``ready(client)`` holds (and
    ``settle_s`` more), with a window marker each second (``markers``), stopped a second after
    the last; the recording's folder."""
    from sensorium_desktop.bus.sessions import Session, add_marker

    node = NodeThread(redis_server.url, keys, devices, node_id=node_id, sessions_dir=sessions_dir).start()
    c = redis_server.client()
    try:
        wait_for(lambda: ready(c), 20, message="the devices streaming")
        time.sleep(settle_s)
        sensors = [x.decode() for x in c.smembers(keys.sensors)]
        s = Session(session_id, sensors=sensors, state="recording", recorder=node_id, started=time.time(), **meta)
        c.hset(keys.sessions, session_id, s.to_json())
        wait_for(lambda: c.hget(keys.recording(session_id), "state") == b"recording", 20, message="recording")
        for label in markers:
            time.sleep(1.0)
            with_async_redis(redis_server.url,
                             lambda ac, label=label: add_marker(ac, keys, session_id, label, "window"))  # fmt: skip
        time.sleep(1.0)
        s.state, s.stopped = "stopped", time.time()
        c.hset(keys.sessions, session_id, s.to_json())
        wait_for(lambda: c.hget(keys.recording(session_id), "state") == b"complete", 30, message="complete")
        folder = Path(c.hget(keys.recording(session_id), "directory").decode())  # named after the metadata
    finally:
        node.stop()
    assert folder.parent == sessions_dir
    return folder


@pytest.fixture
def sim_node(redis_server: RedisServer, keys: Keys) -> Iterator[NodeThread]:
    """A node streaming sim:chest, sim:eyes and sim:pose into the session Redis."""
    node = NodeThread(redis_server.url, keys, ["sim:chest", "sim:eyes", "sim:pose"]).start()
    yield node
    node.stop()


class AsyncRunner:
    """One asyncio loop for a test thread (the views' models are asyncio; Qt runs here too)."""

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def arun() -> Iterator[AsyncRunner]:
    r = AsyncRunner()
    yield r
    r.close()


class WindowDriver:
    """The real main window (1366×768) on ``url``/``keys``, refreshed as the app's loop refreshes
    it: Redis → models (and the live store with ``live``) → panels."""

    def __init__(self, qtbot, arun: AsyncRunner, url: str, keys: Keys, name: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                 live: bool = False, redis_timeout: float = 5.0) -> None:  # fmt: skip
        from PySide6 import QtCore

        from sensorium_desktop.ui.main_window import MainWindow
        from sensorium_desktop.viewmodel.app import AppModel

        self.arun, self.url, self.live, self.redis_timeout = arun, url, live, redis_timeout
        self.model = AppModel(url, keys, name)
        settings = QtCore.QSettings(str(tmp_path / f"{name}.ini"), QtCore.QSettings.Format.IniFormat)
        self.win = MainWindow(self.model, settings=settings)
        qtbot.addWidget(self.win)
        self.win.resize(1366, 768)
        self.win.show()

    async def refresh(self) -> None:
        from sensorium_desktop.bus.connection import async_client

        c = async_client(self.url, timeout=self.redis_timeout)
        try:
            await self.model.refresh(c)
            if self.live:
                await self.model.live.read_once(c, block_ms=20)
            await self.win.drain()
        finally:
            await c.aclose()

    def until(self, what: str, predicate, timeout: float = 30.0, detail=lambda: "") -> None:  # type: ignore[no-untyped-def]
        """Refresh until ``predicate()``; fail saying ``what`` (and ``detail()``) after ``timeout`` s."""
        from PySide6 import QtWidgets

        deadline = time.monotonic() + timeout
        while not predicate():
            why = detail()
            assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}" + (f": {why}" if why else "")
            self.arun.run(self.refresh())
            if self.live:
                self.win.plots.redraw()
            QtWidgets.QApplication.processEvents()
            time.sleep(0.05)


def disk_filling_write(budget_bytes: int):
    """An ``os.write`` that writes ``budget_bytes`` in total, then fails with ENOSPC (a disk
    filling up mid-chunk); inject it with ``monkeypatch.setattr(spool, "_write", ...)``."""
    import errno
    import os

    left = [budget_bytes]

    def write(fd: int, data: bytes | memoryview) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), left[0])
        left[0] -= n
        return os.write(fd, bytes(data[:n]))

    return write
