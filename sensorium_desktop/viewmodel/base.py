"""A tiny observer primitive (Qt signals stay in ui/)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Event:
    """Callbacks invoked with the emitted arguments; a failing callback is logged, not raised."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, cb: Callable[..., Any]) -> None:
        self._callbacks.append(cb)

    def disconnect(self, cb: Callable[..., Any]) -> None:
        if cb in self._callbacks:
            self._callbacks.remove(cb)

    def emit(self, *args: Any) -> None:
        for cb in list(self._callbacks):
            try:
                cb(*args)
            except Exception:
                log.exception("event callback %r failed", cb)
