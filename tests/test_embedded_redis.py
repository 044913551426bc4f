"""The embedded redis-server: private, password-protected, AOF, never orphaned."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
import redis
from conftest import RedisServer, wait_for

from sensorium_desktop.bus import embedded
from sensorium_desktop.bus.connection import check_reachable, mask_url, open_endpoint
from sensorium_desktop.bus.embedded import EmbeddedRedis, RedisUnavailableError


def gone(pid: int) -> bool:
    """Exited (zombies count: an orphan's reaper may be slow inside containers)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _spawn_owner(directory: Path, die_with_parent: bool) -> tuple[subprocess.Popen, dict]:
    """A separate process that starts the embedded server and then waits to be killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from sensorium_desktop.bus.embedded import EmbeddedRedis
        s = EmbeddedRedis.start({str(directory)!r}, die_with_parent={die_with_parent})
        print(s.pid, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.strip().isdigit(), "owner process failed to start the server"
    state = json.loads((directory / "server.json").read_text())
    return proc, state


def test_start_is_private_and_stop_cleans_up(tmp_path: Path) -> None:
    server = EmbeddedRedis.start(tmp_path)
    try:
        c = redis.Redis.from_url(server.url)
        assert c.ping()
        assert c.config_get("appendonly")["appendonly"] == "yes"
        assert c.config_get("appendfsync")["appendfsync"] == "everysec"
        assert c.config_get("bind")["bind"] == "127.0.0.1"
        assert c.config_get("dir")["dir"] == str(tmp_path)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=server.port).ping()
        state_file = tmp_path / "server.json"
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "redis.conf").stat().st_mode) == 0o600
        c.set("k", "v")
        c.close()
    finally:
        server.stop()
    assert gone(server.pid)
    assert not (tmp_path / "server.json").exists()
    again = EmbeddedRedis.start(tmp_path)  # AOF: data survives a restart
    try:
        assert redis.Redis.from_url(again.url).get("k") == b"v"
    finally:
        again.stop()


def test_dies_with_its_owner_and_next_start_recovers(tmp_path: Path) -> None:
    proc, state = _spawn_owner(tmp_path, die_with_parent=True)
    proc.kill()
    proc.wait()
    wait_for(lambda: gone(state["pid"]), message="server to exit")
    server = EmbeddedRedis.start(tmp_path)
    try:
        assert server.pid != state["pid"] and not server.reused
    finally:
        server.stop()


def test_orphan_of_a_crashed_app_is_found_and_reused(tmp_path: Path) -> None:
    proc, state = _spawn_owner(tmp_path, die_with_parent=False)
    proc.kill()
    proc.wait()
    assert not gone(state["pid"])  # orphaned: this is what a crash on Windows/macOS leaves
    server = EmbeddedRedis.start(tmp_path)
    try:
        assert server.reused and server.owned and server.pid == state["pid"]
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()
    wait_for(lambda: gone(state["pid"]), message="reused orphan to stop")


def test_unresponsive_orphan_is_stopped(tmp_path: Path) -> None:
    proc, state = _spawn_owner(tmp_path, die_with_parent=False)
    proc.kill()
    proc.wait()
    os.kill(state["pid"], signal.SIGSTOP)
    try:
        server = EmbeddedRedis.start(tmp_path)
    finally:
        if not gone(state["pid"]):
            os.kill(state["pid"], signal.SIGCONT)
    try:
        assert server.pid != state["pid"]
        assert gone(state["pid"])
    finally:
        server.stop()


def test_running_owner_is_shared_not_stolen(tmp_path: Path) -> None:
    proc, state = _spawn_owner(tmp_path, die_with_parent=True)
    try:
        shared = EmbeddedRedis.start(tmp_path)
        assert not shared.owned and shared.pid == state["pid"]
        shared.stop()  # not ours: must not stop it
        assert redis.Redis.from_url(shared.url).ping()
    finally:
        proc.kill()
        proc.wait()


def test_clear_error_without_any_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    monkeypatch.setattr(embedded, "_bundled_binary", lambda: None)
    with pytest.raises(RedisUnavailableError, match="--redis-url"):
        EmbeddedRedis.start(tmp_path)


def test_old_redis_on_path_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=5.0.7 sha=0'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(embedded.shutil, "which", lambda name: str(fake))
    binary, version = embedded.find_redis_server()
    assert binary != fake and version[:2] >= (6, 2)


def test_external_url(redis_server: RedisServer) -> None:
    ep = open_endpoint(redis_server.url)
    assert ep.embedded is None and ep.client().ping()
    assert "***" in ep.description and redis_server.password not in ep.description
    ep.close()
    with pytest.raises(RedisUnavailableError, match="refused the password"):
        check_reachable(f"redis://:wrong@127.0.0.1:{redis_server.port}/0")
    with pytest.raises(RedisUnavailableError, match="Cannot reach Redis"):
        check_reachable("redis://127.0.0.1:1/0", timeout=1)
    with pytest.raises(RedisUnavailableError):
        check_reachable("rediss://127.0.0.1:1/0", timeout=1)


def test_mask_url() -> None:
    assert mask_url("redis://:secret@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("rediss://user:pw@host/2") == "rediss://user:***@host/2"
    assert mask_url("redis://h:1") == "redis://h:1"
