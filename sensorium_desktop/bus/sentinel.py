"""Redis behind Redis Sentinel: ``redis+sentinel://`` URLs for a lab that must survive losing
the PC its Redis runs on.

URL: ``redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/SERVICE[/DB]``
with optional query ``sentinel_password=…`` (when the sentinels themselves require one). The
password is the data nodes' (primary and replicas share it, so it stays valid after a
failover). Clients come from redis-py's :class:`redis.sentinel.Sentinel`: each connection asks
the sentinels for the current primary, and a connection still held to a demoted primary turns
its ``READONLY`` answer into a reconnect to the new one — nothing is ever written to a
replica. See docs/multi-pc.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

SCHEME = "redis+sentinel"
#: reconnect backoff (base s, cap s) behind sentinels: an attempt only asks them for the
#: primary, and a failover ends at a moment nobody knows, so retry often
SENTINEL_BACKOFF = (0.1, 0.5)
#: how long a sentinel may take to answer (s) before the next one is asked
SENTINEL_TIMEOUT_S = 0.5
#: how long a write that must survive a failover waits for a replica to acknowledge it (ms)
REPLICA_WAIT_MS = 500
#: the service name a lab's sentinels monitor unless told otherwise
DEFAULT_SERVICE = "sensorium"
DEFAULT_SENTINEL_PORT = 26379


class SentinelURLError(ValueError):
    """A ``redis+sentinel://`` URL that cannot name a sentinel set and a service."""


@dataclass(frozen=True)
class SentinelURL:
    """The parts of a ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    @property
    def hosts(self) -> str:
        """``h1:p1,h2:p2`` (no credentials), for logs and spill identities."""
        return ",".join(f"{h}:{p}" for h, p in self.sentinels)

    def masked(self) -> str:
        """The URL with passwords replaced by ``***``."""
        cred = ""
        if self.password is not None:
            cred = f"{self.username or ''}:***@"
        elif self.username:
            cred = f"{self.username}@"
        query = "?sentinel_password=***" if self.sentinel_password is not None else ""
        db = f"/{self.db}" if self.db else ""
        return f"{SCHEME}://{cred}{self.hosts}/{self.service}{db}{query}"


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(f"{SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """Split a ``redis+sentinel://`` URL; raises :class:`SentinelURLError` saying what is wrong."""
    if not is_sentinel_url(url):
        raise SentinelURLError(f"not a {SCHEME}:// URL")
    rest = url[len(SCHEME) + 3 :]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        cred, _, netloc = netloc.rpartition("@")
        user, has_pw, pw = cred.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if has_pw else None
    sentinels: list[tuple[str, int]] = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [IPv6]:port
            host, _, port = part[1:].partition("]")
            port = port.lstrip(":")
        elif part.count(":") == 1:
            host, port = part.split(":")
        else:
            host, port = part, ""
        try:
            sentinels.append((host, int(port) if port else DEFAULT_SENTINEL_PORT))
        except ValueError as exc:
            raise SentinelURLError(f"sentinel address {part!r}: the port is not a number") from exc
    if not sentinels:
        raise SentinelURLError("no sentinel host:port in the URL (redis+sentinel://h1:26379,h2:26379/SERVICE)")
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise SentinelURLError("no service name in the URL (redis+sentinel://h1:26379,…/SERVICE)")
    db = 0
    if len(segments) > 1:
        try:
            db = int(segments[1])
        except ValueError as exc:
            raise SentinelURLError(f"database {segments[1]!r} is not a number") from exc
    params = parse_qs(query)
    sentinel_password = params["sentinel_password"][0] if "sentinel_password" in params else None
    return SentinelURL(tuple(sentinels), unquote(segments[0]), db, username, password, sentinel_password)


def _sentinel_kwargs(u: SentinelURL, timeout: float, is_async: bool = False) -> dict[str, Any]:
    """Connections to the sentinels: a dead one (its PC is off) is skipped at once for the
    next, never retried with backoff — that delayed following a failover by seconds."""
    t = min(timeout, SENTINEL_TIMEOUT_S)
    retry = AsyncRetry(NoBackoff(), 0) if is_async else Retry(NoBackoff(), 0)
    kw: dict[str, Any] = {"socket_timeout": t, "socket_connect_timeout": t, "retry": retry}
    if u.sentinel_password is not None:
        kw["password"] = u.sentinel_password
    return kw


def _data_kwargs(u: SentinelURL, timeout: float, decode: bool) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 15,
        "decode_responses": decode,
        "db": u.db,
        "username": u.username,
        "password": u.password,
    }


def sentinel_client(url: str, *, timeout: float = 5.0, decode: bool = False, **extra: Any) -> redis.Redis:
    """A synchronous client of the service's current primary (follows failovers)."""
    u = parse_sentinel_url(url)
    s = redis.sentinel.Sentinel(list(u.sentinels), sentinel_kwargs=_sentinel_kwargs(u, timeout))
    return s.master_for(u.service, **_data_kwargs(u, timeout, decode), **extra)


def async_sentinel_client(url: str, *, timeout: float = 5.0, decode: bool = False) -> redis.asyncio.Redis:
    """An asyncio client of the service's current primary (follows failovers)."""
    u = parse_sentinel_url(url)
    s = redis.asyncio.sentinel.Sentinel(list(u.sentinels), sentinel_kwargs=_sentinel_kwargs(u, timeout, True))
    return s.master_for(u.service, **_data_kwargs(u, timeout, decode))


def discover_primary(url: str, timeout: float = 3.0) -> tuple[str, int]:
    """(host, port) of the primary the sentinels name now; raises ``redis.RedisError`` with
    what went wrong (no sentinel answered / none knows the service / it is down)."""
    u = parse_sentinel_url(url)
    s = redis.sentinel.Sentinel(list(u.sentinels), sentinel_kwargs=_sentinel_kwargs(u, timeout))
    errors: list[str] = []
    for i, sc in enumerate(s.sentinels):
        host, port = u.sentinels[i]
        try:
            state = sc.sentinel_master(u.service)
        except redis.ResponseError as exc:
            errors.append(f"{host}:{port} does not monitor {u.service!r} ({exc})")
            continue
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            errors.append(f"{host}:{port} unreachable ({exc})")
            continue
        finally:
            sc.close()
        if state.get("is_master") and not state.get("is_sdown") and not state.get("is_odown"):
            return str(state["ip"]), int(state["port"])
        errors.append(f"{host}:{port} sees the primary of {u.service!r} down")
    raise redis.ConnectionError(f"no sentinel of {u.hosts} names a primary for {u.service!r}: " + "; ".join(errors))


def role(c: redis.Redis) -> str:
    """``master``, ``slave`` or ``sentinel``: what the server ``c`` talks to is (``ROLE``)."""
    reply = c.execute_command("ROLE")
    first = reply[0]
    return first.decode() if isinstance(first, bytes) else str(first)


def is_sentinel_client(c: object) -> bool:
    """True when ``c`` follows a sentinel set's primary (a ``redis+sentinel://`` client)."""
    pool = getattr(c, "connection_pool", None)
    return isinstance(pool, redis.sentinel.SentinelConnectionPool | redis.asyncio.sentinel.SentinelConnectionPool)


def primary_address(c: object) -> str:
    """``host:port`` of the primary a sentinel client last talked to ("" when unknown)."""
    addr = getattr(getattr(c, "connection_pool", None), "master_address", None)
    return f"{addr[0]}:{addr[1]}" if addr else ""


def _replicas_in(reply: list[Any]) -> int:
    """Connected replicas in a ``ROLE`` reply of a primary; -1 when it is not one."""
    first = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    return len(reply[2]) if first == "master" and len(reply) > 2 else -1


def _judge_wait(acked: int, replicas: int, what: str) -> int:
    if replicas < 0:
        raise redis.ReadOnlyError(f"{what}: the server is no longer the primary (ROLE)")
    if replicas and acked < 1:
        log.warning("%s: no replica acknowledged it within %d ms; a failover now could lose it", what,
                    REPLICA_WAIT_MS)  # fmt: skip
    return acked


async def replicated(c: redis.asyncio.Redis, what: str) -> int | None:
    """After a write that must survive a failover (recording commands, session state): wait
    up to :data:`REPLICA_WAIT_MS` for one replica to have it (``WAIT``), when the primary has
    replicas; returns how many acknowledged (None: not a sentinel lab, nothing to wait for).
    A server that answers ``ROLE`` as a replica raises ``ReadOnlyError``."""
    if not is_sentinel_client(c):
        return None
    replicas = _replicas_in(await c.execute_command("ROLE"))
    acked = int(await c.execute_command("WAIT", 1, REPLICA_WAIT_MS)) if replicas > 0 else 0
    return _judge_wait(acked, replicas, what)


def replicated_sync(c: redis.Redis, what: str) -> int | None:
    """:func:`replicated` for a synchronous client (checkpoint commits)."""
    if not is_sentinel_client(c):
        return None
    replicas = _replicas_in(c.execute_command("ROLE"))
    acked = int(c.execute_command("WAIT", 1, REPLICA_WAIT_MS)) if replicas > 0 else 0
    return _judge_wait(acked, replicas, what)
