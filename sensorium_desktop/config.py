"""The configuration file (``sensorium.toml``): lab Redis, key prefix, data directory, the
node's id, priority, devices and default attention. ``resources/sensorium.toml`` is the
documented default (a test keeps it equal to :class:`Config`'s defaults). Command-line
flags and environment variables win over the file."""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from .paths import APP_AUTHOR, APP_NAME

log = logging.getLogger(__name__)

ENV_CONFIG = "SENSORIUM_CONFIG"
ATTENTION_LEVELS = ("none", "low", "medium", "high")


@dataclass
class Config:
    redis_url: str = ""
    prefix: str = "sensorium"
    data_dir: str = ""
    node_id: str = ""
    priority: int = 0
    devices: list[str] = field(default_factory=list)
    attention: str = "none"
    #: folders (besides the data directory) that session folders and device files named by
    #: other PCs through Redis may use; anything else is refused and logged
    allowed_roots: list[str] = field(default_factory=list)
    #: network ingest endpoint ``HOST:PORT`` ("" = off) and the token its clients must present
    ingest: str = ""
    ingest_token: str = ""
    #: Pupil Capture / Service hosts discovery asks besides this PC (``HOST[:PORT]``)
    pupil_hosts: list[str] = field(default_factory=list)
    source: str = ""  # the file it came from ("" = defaults)


class ConfigError(ValueError):
    """The configuration file is unreadable or has wrong types."""


def config_path() -> Path:
    """``$SENSORIUM_CONFIG`` or ``<user config dir>/sensorium.toml``."""
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)) / "sensorium.toml"


def parse_config(text: str, source: str = "") -> Config:
    """A :class:`Config` from TOML text; unknown keys are ignored with a warning."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source or 'config'}: {exc}") from exc
    flat: dict[str, Any] = {k: v for k, v in raw.items() if k != "node"}
    flat.update(raw.get("node", {}) if isinstance(raw.get("node"), dict) else {})
    cfg = Config(source=source)
    known = {f.name: f for f in fields(Config) if f.name != "source"}
    for key, value in flat.items():
        f = known.get(key)
        if f is None:
            log.warning("%s: unknown setting %r ignored", source or "config", key)
            continue
        default = getattr(cfg, key)
        if not isinstance(value, type(default)) or (
            isinstance(default, list) and not all(isinstance(x, str) for x in value)
        ):
            raise ConfigError(f"{source or 'config'}: {key} must be {type(default).__name__}, got {value!r}")
        setattr(cfg, key, value)
    if cfg.attention not in ATTENTION_LEVELS:
        raise ConfigError(f"{source or 'config'}: attention must be one of {ATTENTION_LEVELS}")
    return cfg


def load_config() -> Config:
    """The user's configuration, or the defaults when there is no file. A broken file is an
    error the caller reports (it is never silently replaced by defaults)."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(text, str(path))
