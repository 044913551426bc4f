"""Exporting recordings: the exporter registry, output names and never overwriting.

An exporter is an :class:`ExporterSpec` named by an entry point in the
``sensorium_desktop.exporters`` group (the entry point's name is the format); its ``write`` is
``fn(recording, output path, options, progress) -> files written``. The built-ins (XDF, CSV,
BIDS) are registered that way too (see :mod:`sensorium_desktop.plugins`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..plugins import PluginRegistry
from .reader import CLOCK_MODES, ExportOptions, Progress, Recording, load_recording
from .spool import SESSION_FILE, not_a_recording

log = logging.getLogger(__name__)

Exporter = Callable[[Recording, Path, ExportOptions, Progress | None], list[Path]]


@dataclass(frozen=True, slots=True)
class ExporterSpec:
    """One export format. ``write(recording, out, options, progress)`` writes ``out`` and returns
    the files written (progress: fraction 0..1, message). ``suffix``: the output file's (".xdf");
    "" = the output is a folder. ``appends``: written into an existing folder (a BIDS root
    grows by one run) instead of moving an old output aside."""

    write: Exporter
    suffix: str
    title: str
    appends: bool = False


def _check_exporter(name: str, obj: object) -> ExporterSpec:
    if not isinstance(obj, ExporterSpec):
        raise TypeError(f"{obj!r} is not an ExporterSpec")
    if not callable(obj.write):
        raise TypeError(f"exporter {name!r}: write is not callable")
    return obj


#: format name → exporter, from the ``sensorium_desktop.exporters`` entry points
EXPORTERS: PluginRegistry[ExporterSpec] = PluginRegistry("exporters", _check_exporter)


@dataclass
class ExportResult:
    files: list[Path]
    warnings: list[str] = field(default_factory=list)
    renamed: Path | None = None
    seconds: float = 0.0
    samples: int = 0
    #: what the spool says was written but could not be read (see ``reader.find_losses``)
    losses: list[dict[str, Any]] = field(default_factory=list)
    damage: list[tuple[str, int, int]] = field(default_factory=list)


class ExportCancelled(RuntimeError):
    """The export was cancelled; its partial output was removed (and an older one restored)."""


#: files of an appended-to folder kept in memory to restore them after a cancel (bytes each)
RESTORE_LIMIT = 4 * 1024 * 1024


@dataclass
class _FolderSnapshot:
    """What an appending export may change in a folder: the files there before (the small
    ones' contents) and its folders."""

    files: dict[Path, bytes | None]
    dirs: set[Path]

    @classmethod
    def of(cls, root: Path) -> _FolderSnapshot:
        files: dict[Path, bytes | None] = {}
        dirs: set[Path] = set()
        if root.is_dir():
            for p in root.rglob("*"):
                if p.is_dir():
                    dirs.add(p)
                elif p.is_file():
                    files[p] = p.read_bytes() if p.stat().st_size <= RESTORE_LIMIT else None
        return cls(files, dirs)

    def restore(self, root: Path) -> None:
        """Remove what was added under ``root`` and put back the small files that changed."""
        if not root.is_dir():
            return
        for p in sorted(root.rglob("*"), key=lambda x: len(x.parts), reverse=True):
            if p.is_file() and p not in self.files:
                p.unlink()
            elif p.is_dir() and p not in self.dirs and not any(p.iterdir()):
                p.rmdir()
        for p, data in self.files.items():
            if data is not None and (not p.exists() or p.read_bytes() != data):
                p.write_bytes(data)


def _remove_output(out: Path, renamed: Path | None) -> None:
    if out.is_dir():
        shutil.rmtree(out, ignore_errors=True)
    elif out.exists():
        out.unlink()
    if renamed is not None:
        renamed.rename(out)


#: what ``export_recording(metadata=…)`` may set
METADATA_KEYS = ("participant", "session", "task", "run")


def default_output(directory: Path, fmt: str) -> Path:
    """``<recording dir>/<recording name>.<ext>`` (or ``<name>_<fmt>/`` for folder formats)."""
    from .spool import read_session_file, recording_name

    name = recording_name(read_session_file(directory), directory)
    suffix = EXPORTERS[fmt].suffix
    return directory / (f"{name}{suffix}" if suffix else f"{name}_{fmt}")


def move_aside(path: Path) -> Path | None:
    """Rename an existing ``path`` to ``<stem>.<n><suffix>`` (first free n); returns the new name."""
    if not path.exists():
        return None
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        if not candidate.exists():
            path.rename(candidate)
            log.info("kept the previous %s as %s", path.name, candidate.name)
            return candidate
    raise FileExistsError(f"too many old versions of {path}")


def export_recording(
    directory: Path,
    fmt: str = "xdf",
    out: Path | None = None,
    clock: str = "refined",
    progress: Progress | None = None,
    timestamps: str = "global",
    time_range: tuple[float, float] | None = None,
    cancel: threading.Event | None = None,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Export the recording in ``directory``; an existing output is renamed, never overwritten.
    ``time_range`` (global s): only the samples and markers in it (a trimmed export).
    ``cancel`` set (or Ctrl-C): :class:`ExportCancelled` at the next progress step; the partial
    output is removed, a renamed older output put back, an appended-to folder restored.
    ``metadata``: participant, session, task, run given now (for a recording made without
    them; BIDS needs a participant and a task); empty values keep the recording's."""
    if fmt not in EXPORTERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(EXPORTERS)}")
    exporter = EXPORTERS[fmt]
    if clock not in CLOCK_MODES:
        raise ValueError(f"clock must be one of {CLOCK_MODES}")
    directory = Path(directory)
    if not (directory / SESSION_FILE).is_file():
        raise FileNotFoundError(not_a_recording(directory))
    started = time.perf_counter()
    out = Path(out) if out is not None else default_output(directory, fmt)
    if out.is_dir() and exporter.suffix:
        out = out / default_output(directory, fmt).name

    def step(frac: float, msg: str) -> None:
        if cancel is not None and cancel.is_set():
            raise ExportCancelled(f"export of {directory.name} cancelled")
        if progress is not None:
            progress(frac, msg)

    step(0.0, "reading the recording")
    rec = load_recording(directory, step)
    rec.meta.update({k: v for k, v in (metadata or {}).items() if k in METADATA_KEYS and v})
    if time_range is not None:
        rec.trim_to(*time_range)
    step(0.5, f"writing {fmt}")
    snapshot = _FolderSnapshot.of(out) if exporter.appends else None
    renamed = None if exporter.appends else move_aside(out)
    try:
        files = exporter.write(rec, out, ExportOptions(clock, timestamps), lambda f, m: step(0.5 + 0.5 * f, m))
    except (ExportCancelled, KeyboardInterrupt):
        if snapshot is not None:
            snapshot.restore(out)
        else:
            _remove_output(out, renamed)
        log.warning("export of %s cancelled: partial output removed%s", directory,
                    f", {out.name} restored" if renamed is not None else "")  # fmt: skip
        raise
    if not rec.sensors:
        rec.warn("the session has no sensors")
    elif all(len(d) == 0 for d in rec.sensors.values()):
        rec.warn("no sensor sent any samples during the recording")
    samples = sum(len(d) for d in rec.sensors.values())
    return ExportResult(files, rec.warnings, renamed, time.perf_counter() - started, samples, rec.losses, rec.damage)
