"""The lab's Redis across PCs: a primary, replicas and sentinels run from the same embedded
``redis-server`` binary (``sensorium redis --listen / --replica-of / --sentinel``).

Unlike the private embedded server (127.0.0.1, random port and password), these listen where
the other PCs reach them. Primary and replicas share one password (``requirepass`` and
``masterauth``), so a replica promoted by the sentinels accepts the same clients and a former
primary that comes back can follow the new one. See docs/multi-pc.md.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from .embedded import _write_private, find_redis_server
from .sentinel import DEFAULT_SENTINEL_PORT, DEFAULT_SERVICE

DEFAULT_PORT = 6379
#: a primary unreachable this long (ms) is subjectively down for a sentinel. 10 s, not less:
#: a sentinel asks a replica for INFO every 10 s (every 1 s once the replica reports its link
#: down) and will not promote one whose INFO is over 5 s old; with a shorter down-after the
#: first attempt fails about half the time and the next comes 2 failover timeouts later
DEFAULT_DOWN_AFTER_MS = 10000
#: the sentinels' failover timeout (ms): a failover that could not start (the sentinels' last
#: INFO of the replica was older than 5 s) is tried again after twice this
DEFAULT_FAILOVER_TIMEOUT_MS = 10000


@dataclass(frozen=True)
class LabRedisSpec:
    """One lab Redis process: ``role`` is ``primary``, ``replica`` or ``sentinel``."""

    role: str
    bind: str
    port: int
    password: str = ""
    #: replica: the primary to follow; sentinel: the primary to monitor
    primary: tuple[str, int] | None = None
    service: str = DEFAULT_SERVICE
    quorum: int = 2
    down_after_ms: int = DEFAULT_DOWN_AFTER_MS
    failover_timeout_ms: int = DEFAULT_FAILOVER_TIMEOUT_MS
    #: the address other PCs reach this one at, when not ``bind`` (0.0.0.0, NAT)
    announce_ip: str = ""

    @property
    def url(self) -> str:
        """What clients give as ``--redis-url`` for this server (sentinel: a one-sentinel
        ``redis+sentinel://`` URL; list all of the lab's sentinels in practice)."""
        host = self.announce_ip or ("127.0.0.1" if self.bind in ("0.0.0.0", "::", "*") else self.bind)
        if self.role == "sentinel":
            cred = f":{quote(self.password, safe='')}@" if self.password else ""
            return f"redis+sentinel://{cred}{host}:{self.port}/{self.service}"
        return f"redis://:{quote(self.password, safe='')}@{host}:{self.port}/0"


def parse_primary_url(url: str) -> tuple[tuple[str, int], str]:
    """((host, port), password) of a ``redis://`` URL naming the lab's primary."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"{url!r}: give the primary as redis://:PASSWORD@HOST:PORT")
    return (parts.hostname, parts.port or DEFAULT_PORT), parts.password or ""


def new_password() -> str:
    """A random password for a new lab (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(24)


def lab_config(spec: LabRedisSpec, directory: Path) -> list[str]:
    """redis.conf / sentinel.conf lines for ``spec`` with its data in ``directory``."""
    lines = [f"port {spec.port}", f"bind {spec.bind}", f'dir "{directory}"', 'logfile ""', "daemonize no"]
    if spec.announce_ip:
        directive = "sentinel announce-ip" if spec.role == "sentinel" else "replica-announce-ip"
        lines.append(f"{directive} {spec.announce_ip}")
    if spec.role == "sentinel":
        if spec.primary is None:
            raise ValueError("a sentinel needs the primary to monitor")
        host, port = spec.primary
        name = spec.service
        lines += [
            "protected-mode no",  # sentinels are asked by every PC; they hold no data
            "sentinel resolve-hostnames yes",
            f"sentinel monitor {name} {host} {port} {spec.quorum}",
            f"sentinel down-after-milliseconds {name} {spec.down_after_ms}",
            f"sentinel failover-timeout {name} {spec.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if spec.password:
            lines.append(f"sentinel auth-pass {name} {spec.password}")
        return lines
    if not spec.password:
        raise ValueError("a lab Redis reachable from other PCs needs a password")
    lines += [
        f"requirepass {spec.password}",
        f"masterauth {spec.password}",  # a demoted primary must be able to follow the new one
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        "databases 4",
        "maxmemory-policy noeviction",
        "replica-read-only yes",
    ]
    if spec.role == "replica":
        if spec.primary is None:
            raise ValueError("a replica needs the primary to follow")
        lines.append(f"replicaof {spec.primary[0]} {spec.primary[1]}")
    return lines


def start_lab_server(spec: LabRedisSpec, directory: Path) -> subprocess.Popen[bytes]:
    """Write the config into ``directory`` and start the server (logging to stdout)."""
    directory.mkdir(parents=True, exist_ok=True)
    binary, _ = find_redis_server()
    conf = directory / ("sentinel.conf" if spec.role == "sentinel" else "redis.conf")
    _write_private(conf, "\n".join(lab_config(spec, directory)) + "\n")  # the sentinel rewrites it
    cmd = [str(binary), str(conf)] + (["--sentinel"] if spec.role == "sentinel" else [])
    return subprocess.Popen(cmd, cwd=directory, stdin=subprocess.DEVNULL, start_new_session=os.name != "nt")


def default_port(role: str) -> int:
    return DEFAULT_SENTINEL_PORT if role == "sentinel" else DEFAULT_PORT
