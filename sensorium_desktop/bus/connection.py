"""Connecting to Redis: an operator-given URL or the embedded server, with clear errors."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from .embedded import EmbeddedRedis, RedisUnavailableError
from .keys import Keys, default_prefix
from .sentinel import (
    SentinelURLError,
    async_sentinel_client,
    discover_primary,
    is_sentinel_url,
    parse_sentinel_url,
    sentinel_client,
)

log = logging.getLogger(__name__)

ENV_URL = "SENSORIUM_REDIS_URL"


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and the status bar)."""
    if is_sentinel_url(url):
        try:
            return parse_sentinel_url(url).masked()
        except SentinelURLError:
            return "redis+sentinel://(malformed)"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def client(url: str, *, timeout: float = 5.0, decode: bool = False, retries: int = 3) -> redis.Redis:
    """A synchronous client for ``url`` (redis://, rediss://, unix://, redis+sentinel://).

    ``retries=0`` makes a lost connection fail at once (for code that does its own
    reconnect/backoff, like the publisher).
    """
    extra = {} if retries else {"retry": Retry(NoBackoff(), 0)}
    if is_sentinel_url(url):
        return sentinel_client(url, timeout=timeout, decode=decode, **extra)
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        decode_responses=decode,
        **extra,
    )


def async_client(url: str, *, timeout: float = 5.0, decode: bool = False) -> redis.asyncio.Redis:
    """An asyncio client for ``url``."""
    if is_sentinel_url(url):
        return async_sentinel_client(url, timeout=timeout, decode=decode)
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        decode_responses=decode,
    )


def check_reachable(url: str, timeout: float = 3.0) -> None:
    """PING ``url``; raise :class:`RedisUnavailableError` with a readable reason (for a
    sentinel URL: which sentinels answered and what they said of the service)."""
    if is_sentinel_url(url):
        try:
            host, port = discover_primary(url, timeout)
        except SentinelURLError as exc:
            raise RedisUnavailableError(f"Bad Redis Sentinel URL {mask_url(url)}: {exc}") from exc
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"Redis Sentinel at {mask_url(url)}: {exc}") from exc
        log.info("redis sentinel %s: primary is %s:%d", mask_url(url), host, port)
    try:
        c = client(url, timeout=timeout)
        try:
            c.ping()
        finally:
            c.close()
    except redis.AuthenticationError as exc:
        raise RedisUnavailableError(f"Redis at {mask_url(url)} refused the password: {exc}") from exc
    except (redis.RedisError, OSError, ValueError) as exc:
        raise RedisUnavailableError(f"Cannot reach Redis at {mask_url(url)}: {exc}") from exc


@dataclass
class RedisEndpoint:
    """Where this process talks to Redis, and the embedded server if it started one."""

    url: str
    keys: Keys
    embedded: EmbeddedRedis | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def description(self) -> str:
        kind = "embedded" if self.embedded else "external"
        return f"{kind} {mask_url(self.url)}"

    def client(self, timeout: float = 5.0) -> redis.Redis:
        return client(self.url, timeout=timeout)

    def async_client(self, timeout: float = 5.0) -> redis.asyncio.Redis:
        return async_client(self.url, timeout=timeout)

    def close(self) -> None:
        """Stop the embedded server if this process owns it."""
        if self._closed:
            return
        self._closed = True
        if self.embedded is not None:
            self.embedded.stop()


def open_endpoint(
    url: str | None = None,
    prefix: str | None = None,
    redis_dir: Path | None = None,
    die_with_parent: bool = True,
) -> RedisEndpoint:
    """Use ``url`` (or ``$SENSORIUM_REDIS_URL``); without one, start the embedded server."""
    url = url or os.environ.get(ENV_URL) or None
    keys = Keys(prefix or default_prefix())
    if url:
        check_reachable(url)
        return RedisEndpoint(url, keys)
    embedded = EmbeddedRedis.start(redis_dir, die_with_parent=die_with_parent)
    return RedisEndpoint(embedded.url, keys, embedded)
