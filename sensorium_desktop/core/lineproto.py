"""Line protocols of serial instruments (pure): CSV with a header, Sensocto JSON lines, numbers.

A :class:`LineDecoder` is fed raw bytes as they are read (with the host arrival time of each
read) and returns decoded rows. The protocol is auto-detected from the first lines:

- ``json``: one Sensocto measurement per line, ``{"attribute_id", "payload", "timestamp"}``
  (timestamp in ms on the device clock; a line may also hold a JSON list of measurements);
- ``csv``: a header line naming the channels, then rows of numbers; a column named like a
  time (``t``, ``time``, ``timestamp``, ``t_ms``, ``millis``, ``micros``, ...) becomes the
  device timestamp;
- ``numbers``: rows of numbers with no header (channels ``ch1``..``chN``).

Delimiters are commas, semicolons, tabs or spaces. Bad input never raises: garbage lines,
wrong column counts, undecodable bytes, invalid JSON or payloads, oversized lines and
non-finite values are counted in :attr:`LineDecoder.counters` (the last reason is kept in
:attr:`LineDecoder.last_error`). Non-finite *values* are kept as NaN (and counted); rows
whose *timestamp* is not a finite number cannot be placed in time and are rejected (counted).
Numeric rows are parsed a whole read at a time with numpy; only a read that contains bad
lines falls back to line-by-line parsing.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .attributes import layout
from .measurements import MeasurementError, decode_measurement

PROTOCOLS = ("auto", "csv", "json", "numbers")
MAX_LINE_BYTES = 64 * 1024
DETECT_MAX_LINES = 64
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_TIME_NAME = re.compile(r"^(t|time|timestamp|ts|device_time)(?:[_ ]?\(?(s|ms|us|ns)\)?)?$")
_TIME_WORDS = {"seconds": 1.0, "millis": 1e-3, "ms": 1e-3, "micros": 1e-6, "us": 1e-6, "ns": 1e-9}


def time_column_scale(name: str) -> float | None:
    """Seconds per unit if a header ``name`` denotes a device timestamp (``t``, ``time_ms``,
    ``ts_us``, ``millis``, ``timestamp (ns)``, ...), else None."""
    low = name.strip().lower()
    if low in _TIME_WORDS:
        return _TIME_WORDS[low]
    m = _TIME_NAME.match(low)
    return TIME_UNITS[m.group(2)] if m and m.group(2) else (1.0 if m else None)


_DELIMS = re.compile(rb"[ \t]*[,;\t][ \t]*|[ ]+")
_EDGES = re.compile(rb"^[ \t,;]+|[ \t,;]+$", re.MULTILINE)
_HEADER_TOKEN = re.compile(rb"^[\"']?[A-Za-z_][^\"',;\t]*[\"']?$")
_NUMBER = re.compile(rb"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|NaN|NAN|inf|Inf|INF|infinity)$")


@dataclass(slots=True)
class DecodedRows:
    """Rows of one stream decoded from one read.

    ``values`` (n, channels) float64 (object for string attribute types), ``t_device`` (n,)
    seconds on the device clock or None, ``t_arrival`` (n,) host seconds. ``stream`` is the
    attribute id for JSON lines, ``""`` for CSV/numbers.
    """

    stream: str
    channels: tuple[str, ...]
    values: np.ndarray
    t_arrival: np.ndarray
    t_device: np.ndarray | None = None


def split_fields(line: bytes) -> list[bytes]:
    """Fields of one delimited line (commas, semicolons, tabs or spaces)."""
    line = _EDGES.sub(b"", line.replace(b"\r", b""))
    return _DELIMS.split(line) if line else []


def _is_header(fields: list[bytes]) -> bool:
    return bool(fields) and all(_HEADER_TOKEN.match(f) and not _NUMBER.match(f) for f in fields)


def _is_numeric(fields: list[bytes]) -> bool:
    return bool(fields) and all(_NUMBER.match(f) for f in fields)


def parse_numeric_block(lines: list[bytes], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse lines of ``k`` delimited numbers at once.

    Returns (values (m, k) float64 for the good lines, good mask (len(lines),) bool). The
    column count of every line is checked with numpy on the joined bytes; conversion of a
    block without bad lines is one numpy call.
    """
    n = len(lines)
    if n == 0:
        return np.empty((0, k)), np.zeros(0, bool)
    blob = _DELIMS.sub(b",", _EDGES.sub(b"", b"\n".join(lines).replace(b"\r", b"")))
    arr = np.frombuffer(blob, dtype=np.uint8)
    ends = np.append(np.flatnonzero(arr == 10), arr.size)
    if ends.size != n:  # a line became empty or gained a newline: parse line by line
        return _parse_lines_slow(lines, k)
    commas = np.concatenate([[0], np.cumsum(arr == 44)])
    per_line = np.diff(np.concatenate([[0], commas[ends]]))
    good = per_line == k - 1
    if not good.any():
        return np.empty((0, k)), good
    if good.all():
        tokens = blob.replace(b"\n", b",").split(b",")
    else:
        kept = list(itertools.compress(lines, good))
        sub = _DELIMS.sub(b",", _EDGES.sub(b"", b"\n".join(kept).replace(b"\r", b"")))
        tokens = sub.replace(b"\n", b",").split(b",")
    try:
        values = np.array(tokens, dtype=np.bytes_).astype(np.float64).reshape(-1, k)
    except ValueError:
        return _parse_lines_slow(lines, k)
    return values, good


def _parse_lines_slow(lines: list[bytes], k: int) -> tuple[np.ndarray, np.ndarray]:
    rows: list[list[float]] = []
    good = np.zeros(len(lines), dtype=bool)
    for i, line in enumerate(lines):
        fields = split_fields(line)
        if len(fields) != k:
            continue
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            continue
        good[i] = True
    return (np.array(rows, dtype=np.float64).reshape(-1, k), good)


class LineSplitter:
    """Splits a byte stream into complete lines; bounds line length (``max_line_bytes``)."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._tail = b""
        self._discarding = False
        self.oversized = 0

    def feed_block(self, data: bytes) -> bytes:
        """The complete lines in ``data`` as one block: ``\n``-separated, no ``\r``, no empty
        lines, none longer than ``max_line_bytes`` (the unterminated rest is kept)."""
        buf = self._tail + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            block, self._tail = b"", buf
        else:
            block, self._tail = buf[:cut], buf[cut + 1 :]
            if self._discarding:  # the rest of an oversized line
                nl = block.find(b"\n")
                block = b"" if nl < 0 else block[nl + 1 :]
                self._discarding = False
        if len(self._tail) > self.max_line_bytes:
            self._tail = b""
            if not self._discarding:
                self.oversized += 1
            self._discarding = True
        if b"\r" in block:
            block = block.replace(b"\r", b"")
        if len(block) > self.max_line_bytes:
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            lengths = np.diff(np.concatenate([[-1], ends, [len(block)]])) - 1
            if (lengths > self.max_line_bytes).any():
                keep = lengths <= self.max_line_bytes
                self.oversized += int((~keep).sum())
                block = b"\n".join(itertools.compress(block.split(b"\n"), keep))
        while b"\n\n" in block:
            block = block.replace(b"\n\n", b"\n")
        block = block.strip(b"\n")
        return b"" if not block.strip() else block

    def feed(self, data: bytes) -> list[bytes]:
        """Complete, non-empty lines in ``data`` (see :meth:`feed_block`)."""
        block = self.feed_block(data)
        return [line for line in block.split(b"\n") if line.strip()] if block else []


def parse_csv_block(block: bytes, k: int) -> np.ndarray | None:
    """Fast path for a block of ``\n``-separated rows of exactly ``k`` comma-separated numbers.

    Returns (rows, k) float64, or None when anything in the block differs (other delimiters,
    a wrong column count, a token that is not a number): the caller then goes line by line.
    The column count of every row is checked with numpy; conversion is one C call.
    """
    if not block or b" " in block or b";" in block or b"\t" in block:
        return None
    arr = np.frombuffer(block, dtype=np.uint8)
    seps = np.flatnonzero((arr == 44) | (arr == 10))
    newline_at = np.flatnonzero(arr[seps] == 10)
    n = newline_at.size + 1
    if seps.size != n * k - 1 or not np.array_equal(newline_at, np.arange(1, n) * k - 1):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            values = np.fromstring(block.replace(b"\n", b",").decode("ascii"), sep=",")
    except (ValueError, DeprecationWarning, UnicodeDecodeError):
        return None
    return values.reshape(n, k) if values.size == n * k else None


class LineDecoder:
    """Stateful decoder of one serial line stream (see the module docstring).

    ``protocol``: auto, csv, json or numbers. ``time_column``: a header name or 0-based column
    index to use as device time (default: detected by name for CSV, none for numbers).
    ``time_unit``: s, ms, us or ns (default: from the column name, else seconds).
    ``channels``: names for headerless numbers.
    """

    def __init__(
        self,
        protocol: str = "auto",
        time_column: str | None = None,
        time_unit: str | None = None,
        channels: tuple[str, ...] = (),
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown line protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
        if time_unit is not None and time_unit not in TIME_UNITS:
            raise ValueError(f"unknown time unit {time_unit!r} (one of {', '.join(TIME_UNITS)})")
        self.requested = protocol
        self.protocol = "" if protocol == "auto" else protocol
        self.time_column = time_column
        self.time_unit = time_unit
        self.splitter = LineSplitter(max_line_bytes)
        self.counters: Counter[str] = Counter()
        self.last_error = ""
        self.columns: tuple[str, ...] = tuple(channels)  # every column, time included
        self.time_index: int | None = None
        self.time_scale = 1.0
        self._pending: list[tuple[bytes, float]] = []
        self._header_fields: list[bytes] | None = None
        if self.protocol == "numbers" and self.columns:
            self._set_columns(self.columns)

    # -- public ---------------------------------------------------------------------------
    @property
    def channels(self) -> tuple[str, ...]:
        """Value channel names (the time column excluded); empty until detected."""
        return tuple(c for i, c in enumerate(self.columns) if i != self.time_index)

    def feed(self, data: bytes, t_arrival: float) -> list[DecodedRows]:
        """Decode the complete lines in ``data`` read at host time ``t_arrival`` (s)."""
        block = self.splitter.feed_block(data)
        if self.splitter.oversized > self.counters["oversized"]:
            self.counters["oversized"] = self.splitter.oversized
            self.last_error = f"line longer than {self.splitter.max_line_bytes} bytes discarded"
        if not block:
            return []
        if self.protocol in ("csv", "numbers") and self.columns:
            values = parse_csv_block(block, len(self.columns))
            if values is not None:
                self.counters["lines"] += values.shape[0]
                return self._rows(values, np.full(values.shape[0], t_arrival))
        lines = [line for line in block.split(b"\n") if line.strip()]
        self.counters["lines"] += len(lines)
        if not self.protocol or (not self.columns and self.protocol != "json"):
            self._pending.extend((line, t_arrival) for line in lines)
            return self._detect()
        return self._decode(lines, np.full(len(lines), t_arrival))

    def error_counts(self) -> dict[str, int]:
        """Counters of rejected input (without the bookkeeping ones)."""
        return {k: v for k, v in self.counters.items() if k not in ("lines", "rows", "header") and v}

    # -- detection --------------------------------------------------------------------------
    def _reject(self, kind: str, message: str, n: int = 1) -> None:
        self.counters[kind] += n
        self.last_error = message

    def _detect(self) -> list[DecodedRows]:
        decided_at = -1
        for i, (line, _) in enumerate(self._pending):
            stripped = line.strip()
            if self.protocol in ("", "json") and stripped[:1] in (b"{", b"["):
                self.protocol = "json"
                decided_at = i
                break
            if self.protocol == "json":
                continue
            fields = split_fields(line)
            if _is_header(fields):
                self._header_fields = fields
                continue
            if _is_numeric(fields):
                header = self._header_fields
                if header is not None and len(header) == len(fields) and self.protocol in ("", "csv"):
                    self.protocol = "csv"
                    self._set_columns(tuple(f.strip(b"\"'").decode("ascii", "replace").strip() for f in header))
                elif self.columns and len(self.columns) != len(fields):
                    continue  # not the layout the operator named: a line cut by opening the port mid-stream
                elif self.protocol in ("", "numbers") or (self.protocol == "csv" and header is None and i >= 16):
                    self.protocol = self.protocol or "numbers"
                    names = self.columns if len(self.columns) == len(fields) else ()
                    self._set_columns(names or tuple(f"ch{j + 1}" for j in range(len(fields))))
                else:
                    continue
                decided_at = i
                break
        if decided_at < 0:
            overflow = len(self._pending) - DETECT_MAX_LINES
            if overflow > 0:
                self._reject("garbage", "no recognisable protocol in the first lines", overflow)
                del self._pending[:overflow]
            return []
        before, rest = self._pending[:decided_at], self._pending[decided_at:]
        self._pending = []
        for line, _ in before:
            if _is_header(split_fields(line)):
                self.counters["header"] += 1
            else:
                self._reject("garbage", f"unrecognised line before the data: {line[:60]!r}")
        return self._decode([r[0] for r in rest], np.array([r[1] for r in rest], dtype=np.float64))

    def _set_columns(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.time_index = None
        self.time_scale = TIME_UNITS[self.time_unit] if self.time_unit else 1.0
        tc = self.time_column
        if tc is not None and tc != "":
            if tc.isdigit():
                self.time_index = int(tc) if int(tc) < len(columns) else None
            elif tc in columns:
                self.time_index = columns.index(tc)
        elif self.protocol == "csv":
            for i, name in enumerate(columns):
                scale = time_column_scale(name)
                if scale is not None:
                    self.time_index = i
                    if not self.time_unit:
                        self.time_scale = scale
                    break

    # -- decoding ---------------------------------------------------------------------------
    def _decode(self, lines: list[bytes], t_arrival: np.ndarray) -> list[DecodedRows]:
        if self.protocol == "json":
            return self._decode_json(lines, t_arrival)
        return self._decode_numeric(lines, t_arrival)

    def _decode_numeric(self, lines: list[bytes], t_arrival: np.ndarray) -> list[DecodedRows]:
        k = len(self.columns)
        values, good = parse_numeric_block(lines, k)
        n_bad = int((~good).sum())
        if n_bad:
            for line in itertools.compress(lines, ~good):
                fields = split_fields(line)
                if self._header_fields is not None and fields == self._header_fields:
                    self.counters["header"] += 1
                elif _is_numeric(fields):
                    self._reject("wrong_columns", f"{len(fields)} columns, expected {k}: {line[:60]!r}")
                else:
                    try:
                        line.decode("utf-8")
                        self._reject("garbage", f"not a row of numbers: {line[:60]!r}")
                    except UnicodeDecodeError:
                        self._reject("encoding", f"undecodable bytes: {line[:60]!r}")
        return self._rows(values, t_arrival[good])

    def _rows(self, values: np.ndarray, t_arr: np.ndarray) -> list[DecodedRows]:
        """Split off the time column, reject rows without a finite time, count NaN/inf."""
        t_dev = None
        if self.time_index is not None:
            t_dev = values[:, self.time_index] * self.time_scale
            values = np.delete(values, self.time_index, axis=1)
            ok = np.isfinite(t_dev)
            if not ok.all():
                self._reject("bad_timestamp", "row with a non-finite device timestamp rejected", int((~ok).sum()))
                values, t_dev, t_arr = values[ok], t_dev[ok], t_arr[ok]
        nonfinite = ~np.isfinite(values)
        if nonfinite.any():
            self._reject("nonfinite", "NaN/inf value kept as NaN", int(nonfinite.sum()))
            values[nonfinite] = np.nan
        if values.shape[0] == 0:
            return []
        self.counters["rows"] += values.shape[0]
        return [DecodedRows("", self.channels, values, t_arr, t_dev)]

    def _decode_json(self, lines: list[bytes], t_arrival: np.ndarray) -> list[DecodedRows]:
        rows: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}
        for line, t_arr in zip(lines, t_arrival.tolist(), strict=True):
            try:
                obj = json.loads(line)
            except UnicodeDecodeError:
                self._reject("encoding", f"undecodable bytes: {line[:60]!r}")
                continue
            except ValueError as exc:
                self._reject("json_invalid", f"invalid JSON ({exc}): {line[:60]!r}")
                continue
            for m in obj if isinstance(obj, list) else [obj]:
                decoded = self._measurement(m)
                if decoded is None:
                    continue
                attr, vals, t_dev = decoded
                acc = rows.setdefault(attr, ([], [], []))
                acc[0].append(vals)
                acc[1].append(t_dev)
                acc[2].append(np.full(vals.shape[0], t_arr))
        out = []
        for attr, (value_parts, t_dev_parts, t_arr_parts) in rows.items():
            v = np.concatenate(value_parts)
            self.counters["rows"] += v.shape[0]
            out.append(DecodedRows(attr, layout(attr)[0], v, np.concatenate(t_arr_parts), np.concatenate(t_dev_parts)))
        return out

    def _measurement(self, m: object) -> tuple[str, np.ndarray, np.ndarray] | None:
        try:
            decoded = decode_measurement(m)
        except MeasurementError as exc:
            untimed = exc.reason == "bad_timestamp" or exc.fields == ("timestamp",)
            self._reject("bad_timestamp" if untimed else "payload_invalid", str(exc))
            return None
        return decoded.attribute, decoded.values, decoded.t_device
