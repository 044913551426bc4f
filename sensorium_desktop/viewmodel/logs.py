"""The log viewer's model (no Qt): the window's own log records and the lines its node writes
to ``sensorium-node.log``, in one bounded list, filtered by level and text."""

from __future__ import annotations

import collections
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from .base import Event

#: ``2026-11-30 18:32:24,615 INFO    name: message`` (logfiles.LOG_FORMAT)
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+([^:]+): (.*)$")
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
MAX_LINES = 5000
#: the most a file tail reads per refresh (bytes): a huge backlog is skipped to its end
MAX_READ = 1_000_000


@dataclass(slots=True)
class LogLine:
    """One log record: ``when`` as the log prints it, its ``source`` (window, node)."""

    when: str
    level: str
    source: str
    name: str
    message: str

    @property
    def levelno(self) -> int:
        return LEVELS.get(self.level, 20)

    def text(self) -> str:
        return f"{self.when} {self.level:<7} [{self.source}] {self.name}: {self.message}"

    def short(self) -> str:
        """For a narrow dock: the time of day, the logger's last part."""
        return f"{self.when[11:]} {self.level} [{self.source}] {self.name.rsplit('.', 1)[-1]}: {self.message}"


class _Capture(logging.Handler):
    def __init__(self, model: LogModel) -> None:
        super().__init__(logging.DEBUG)
        self.model = model
        self.times = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self.times.formatException(record.exc_info)
            self.model.add(LogLine(self.times.formatTime(record), record.levelname, "window", record.name, message))
        except Exception:  # a log handler must never raise into the code that logged
            self.handleError(record)


class LogModel:
    """``lines`` (oldest first, at most :data:`MAX_LINES`); ``changed`` fires with the new ones.
    Thread-safe: records logged in any thread are collected; the window drains them."""

    def __init__(self, node_log: Path | None = None, max_lines: int = MAX_LINES) -> None:
        self.lines: collections.deque[LogLine] = collections.deque(maxlen=max_lines)
        self.changed = Event()
        self.node_log = node_log
        self._pending: list[LogLine] = []
        self._lock = threading.Lock()
        self._offset: int | None = None
        self._inode: int | None = None
        self._handler: _Capture | None = None
        self.read_errors = 0

    def attach(self, logger: logging.Logger | None = None) -> None:
        """Collect the window's own records (root logger by default)."""
        if self._handler is None:
            self._handler = _Capture(self)
            (logger or logging.getLogger()).addHandler(self._handler)

    def detach(self, logger: logging.Logger | None = None) -> None:
        if self._handler is not None:
            (logger or logging.getLogger()).removeHandler(self._handler)
            self._handler = None

    def add(self, line: LogLine) -> None:
        with self._lock:
            self._pending.append(line)

    def refresh(self) -> list[LogLine]:
        """Read what the node appended to its log since the last call, take the window's new
        records, and return (and announce) everything new."""
        self._tail()
        with self._lock:
            new, self._pending = self._pending, []
        self.lines.extend(new)
        if new:
            self.changed.emit(new)
        return new

    def _tail(self) -> None:
        path = self.node_log
        if path is None:
            return
        try:
            st = path.stat()
        except OSError:
            return
        if self._inode != st.st_ino or (self._offset or 0) > st.st_size:  # rotated or truncated
            start = max(0, st.st_size - MAX_READ) if self._offset is None else 0
            self._inode, self._offset = st.st_ino, start
        if st.st_size <= (self._offset or 0):
            return
        try:
            with open(path, "rb") as f:
                f.seek(self._offset or 0)
                data = f.read(MAX_READ)
        except OSError:
            self.read_errors += 1
            return
        end = data.rfind(b"\n")
        if end < 0:
            return  # a line still being written
        self._offset = (self._offset or 0) + end + 1
        for raw in data[:end].decode("utf-8", "replace").splitlines():
            m = _LINE.match(raw)
            if m:
                self.add(LogLine(m.group(1), m.group(2), "node", m.group(3), m.group(4)))
            elif raw.strip():
                with self._lock:
                    if self._pending and self._pending[-1].source == "node":
                        self._pending[-1].message += "\n" + raw  # a traceback's lines
                    else:
                        self._pending.append(LogLine("", "INFO", "node", "", raw))

    def visible(self, min_level: str = "INFO", text: str = "") -> list[LogLine]:
        """Lines at ``min_level`` or above whose text contains ``text`` (case-insensitive)."""
        return [x for x in self.lines if matches(x, min_level, text)]


def matches(line: LogLine, min_level: str = "INFO", text: str = "") -> bool:
    """``line`` is at ``min_level`` or above and its text contains ``text`` (case-insensitive)."""
    needle = text.lower()
    return line.levelno >= LEVELS.get(min_level, 20) and (not needle or needle in line.text().lower())
