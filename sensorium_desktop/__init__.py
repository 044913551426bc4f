"""Sensorium Desktop: connect lab sensors, put them on one clock, watch live, record, export."""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["SyncEngine", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "SyncEngine":
        from .bus.engine import SyncEngine

        return SyncEngine
    raise AttributeError(name)
