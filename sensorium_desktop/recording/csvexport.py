"""CSV export: one CSV per stream, ``session.json``, and ``slices.csv`` — the synchronized
table of time slices (groups of observations of one event) with, per sensor, its
observation time, value and membership probability."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .export import ExporterSpec
from .reader import ExportOptions, Recording
from .synccheck import PICTURE_FILE, RESULT_FILE

#: markers.csv: global time (s), the sender's own time and its clock, host time, what and from where.
MARKER_COLUMNS = ("t_global", "t_original", "clock_original", "t_host", "clock", "label", "source", "duration",
                  "sensor_id", "host")  # fmt: skip
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    return _SAFE.sub("_", name)


def _write_numeric(path: Path, header: list[str], columns: list[np.ndarray], fmts: list[str]) -> int:
    """Write columns (each (n,) or (n, k)) row by row in blocks; returns rows written."""
    n = columns[0].shape[0] if columns else 0
    fmt = ",".join(fmts)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(header) + "\n")
        block = 20000
        for a in range(0, n, block):
            b = min(a + block, n)
            table = np.column_stack([c[a:b].reshape(b - a, -1).astype(np.float64) for c in columns])
            np.savetxt(f, table, fmt=fmt, delimiter=",")
    return n


def export_csv(
    rec: Recording, out_dir: Path, options: ExportOptions, progress: Callable[[float, str], None] | None
) -> list[Path]:
    """Write the CSV export of ``rec`` into the new directory ``out_dir``; returns files written."""
    out_dir.mkdir(parents=True, exist_ok=False)
    clock = options.clock
    written: list[Path] = []
    global_times: dict[str, np.ndarray] = {}
    n_sensors = max(len(rec.sensors), 1)
    for i, (sid, data) in enumerate(rec.sensors.items()):
        tg = rec.global_times(sid, clock)
        global_times[sid] = tg
        path = out_dir / f"{_safe(sid)}.csv"
        labels = [f"{lab} [{unit}]" if unit else lab for lab, unit in zip(data.info.channel_names, data.info.units,
                                                                           strict=True)]  # fmt: skip
        if data.values.shape[1] != len(labels):
            labels = [f"ch{k + 1}" for k in range(data.values.shape[1])]
        header = ["t_global", "t_arrival"] + (["t_local"] if data.t_local is not None else []) + labels
        if data.values.dtype == object:
            with open(path, "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                tl = data.t_local if data.t_local is not None else None
                for k in range(len(data)):
                    times = [repr(float(tg[k])), repr(float(data.t_arrival[k]))]
                    if tl is not None:
                        times.append(repr(float(tl[k])))
                    w.writerow(times + [str(v) for v in data.values[k]])
        else:
            cols = [tg, data.t_arrival] + ([data.t_local] if data.t_local is not None else []) + [data.values]
            fmts = ["%.6f"] * (len(cols) - 1) + ["%.9g"] * data.values.shape[1]
            _write_numeric(path, header, cols, fmts)
        written.append(path)
        if progress is not None:
            progress(0.8 * (i + 1) / n_sensors, f"CSV {sid}")
    markers = out_dir / "markers.csv"
    marker_times = rec.marker_times(clock)
    with open(markers, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(MARKER_COLUMNS)
        for m, t in zip(rec.markers, marker_times, strict=True):
            w.writerow([repr(float(t))] + [m.get(col, "") for col in MARKER_COLUMNS[1:]])
    written.append(markers)
    written.append(_write_slices(rec, out_dir / "slices.csv", global_times))
    summary = {**rec.meta, "clock_model": clock, "warnings": rec.warnings, "losses": rec.losses,
               "damaged_bytes": [list(x) for x in rec.damage],
               "streams": {sid: {"samples": len(d), "file": f"{_safe(sid)}.csv", "channels": list(d.info.channel_names),
                                 "units": list(d.info.units), "nominal_srate": d.info.nominal_rate,
                                 "missing_batches": d.missing_batches} for sid, d in rec.sensors.items()}}  # fmt: skip
    checked = {sid: rec.sync_check_of(sid) for sid in rec.sensors if rec.sync_check_of(sid) is not None}
    if checked:  # the sync check: per stream in the summary, and its own files beside
        summary["sync_check"] = checked
        for name in (RESULT_FILE, PICTURE_FILE):
            if (rec.directory / name).exists():
                shutil.copyfile(rec.directory / name, out_dir / name)
                written.append(out_dir / name)
    meta_path = out_dir / "session.json"
    meta_path.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    written.append(meta_path)
    if progress is not None:
        progress(1.0, "CSV done")
    return written


def _write_slices(rec: Recording, path: Path, global_times: dict[str, np.ndarray]) -> Path:
    """One row per group: its event time and σ, then per session sensor time/value/probability."""
    sensors = list(rec.sensors)
    header = ["group", "t_global", "sigma"]
    for sid in sensors:
        header += [f"{sid}.t_global", f"{sid}.value", f"{sid}.probability"]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for g_index, g in enumerate(sorted(rec.groups, key=lambda g: float(g.get("t_global", 0.0)))):
            row: list[Any] = [g_index, g.get("t_global", ""), g.get("sigma", "")]
            members = {m.get("sensor_id"): m for m in g.get("members", [])}
            for sid in sensors:
                m = members.get(sid)
                if m is None:
                    row += ["", "", ""]
                    continue
                row += [m.get("t_global", ""), _value_at(rec, sid, m.get("t_local")), m.get("probability", "")]
            w.writerow(row)
    return path


def _value_at(rec: Recording, sensor_id: str, t_local: Any) -> str:
    """The sensor's value for the sample whose device time is ``t_local`` (first channel)."""
    data = rec.sensors.get(sensor_id)
    if data is None or t_local is None or len(data) == 0:
        return ""
    x = data.device_times
    k = int(np.clip(np.searchsorted(x, float(t_local)), 0, x.size - 1))
    if k > 0 and abs(x[k - 1] - float(t_local)) < abs(x[k] - float(t_local)):
        k -= 1
    if abs(x[k] - float(t_local)) > 1e-6:
        return ""
    return str(data.values[k, 0])


EXPORTER = ExporterSpec(export_csv, "", "CSV folder (one file per sensor, markers.csv)")
