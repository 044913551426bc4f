"""BIDS export: a recording written into a BIDS dataset (appended to an existing root).

Per recording (entities from the session: ``sub``, ``ses``, ``task``, ``acq``, ``run``):

- EEG streams (attribute ``eeg``) as BrainVision (``.vhdr``/``.vmrk``/``.eeg``, float32,
  written here and read back by MNE in the tests) with ``*_eeg.json`` and ``*_channels.tsv``;
- every other numeric stream as ``*_recording-<label>_physio.tsv.gz`` + ``.json``
  (SamplingFrequency, StartTime, Columns, units) next to the EEG (``eeg/``) or in ``beh/``;
- the markers as ``*_events.tsv`` (onset relative to the data's time zero, duration,
  trial_type, value, source) + ``*_events.json``; the clock report (domains, offsets, drift,
  σ) goes in the sidecars under ``SensoriumSync``.

BIDS requires a constant sampling rate for physio: streams are put on a uniform grid at their
nominal rate (irregular ones at their median rate) by linear interpolation of our refined
global timestamps — said in each sidecar. Time zero is the first EEG sample when there is EEG,
else the start of the recording. Existing files of the same run are never overwritten: the
export stops with an error naming them. ``dataset_description.json``, ``README``,
``participants.tsv/json`` and the session's ``scans.tsv`` are created or appended to.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.samples import SensorInfo
from .export import ExporterSpec
from .reader import ExportOptions, Recording

BIDS_VERSION = "1.10.0"
EEG_ATTRIBUTES = frozenset({"eeg"})
#: attribute → motion channel type per channel-name prefix (BIDS motion datatype)
MOTION_ATTRIBUTES = frozenset({"imu", "accelerometer", "gyroscope", "magnetometer", "skeleton", "pose_world",
                               "quaternion", "euler"})  # fmt: skip
MOTION_TYPES = {"acc": "ACCEL", "gyro": "GYRO", "mag": "MAGN", "accelerometer": "ACCEL", "gyroscope": "GYRO",
                "magnetometer": "MAGN", "quaternion": "ORNT", "euler": "ORNT"}  # fmt: skip
GAZE_ATTRIBUTES = frozenset({"eye_gaze"})
_LABEL = re.compile(r"[^A-Za-z0-9]+")


class BidsExportError(ValueError):
    """The recording cannot be written into this BIDS root (the message says why)."""


def label(text: object) -> str:
    """A BIDS label: letters and digits only."""
    return _LABEL.sub("", str(text or ""))


def _entities(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """BIDS entities of the recording; raises :class:`BidsExportError` without a participant or
    a task (BIDS requires both: they are asked for, never invented)."""
    missing = [what for what in ("participant", "task") if not label(meta.get(what))]
    if missing:
        flags = " and ".join("--" + m for m in missing)
        raise BidsExportError(f"the recording has no {' and no '.join(missing)}: BIDS needs both; give {flags} "
                              "(or fill them in the export dialog)")  # fmt: skip
    run = label(meta.get("run"))
    out = [("sub", label(meta.get("participant"))), ("ses", label(meta.get("session"))),
           ("task", label(meta.get("task"))), ("acq", label(meta.get("acquisition"))),
           ("run", str(int(run)) if run.isdigit() else "")]  # fmt: skip
    return [(k, v) for k, v in out if v]


def _write_json(path: Path, obj: dict[str, Any]) -> Path:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _write_tsv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def _na(v: Any) -> Any:
    return "n/a" if v is None or v == "" or (isinstance(v, float) and not math.isfinite(v)) else v


def export_bids(
    rec: Recording, root: Path, options: ExportOptions, progress: Callable[[float, str], None] | None
) -> list[Path]:
    """Write ``rec`` into the BIDS dataset at ``root`` (created when missing); files written."""
    from ..version import __version__

    root.mkdir(parents=True, exist_ok=True)
    meta = rec.meta
    ents = _entities(meta)
    sub = dict(ents)["sub"]
    ses = dict(ents).get("ses")
    base = "_".join(f"{k}-{v}" for k, v in ents)
    sess_dir = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "")
    eeg = [sid for sid, d in rec.sensors.items() if d.info.attribute in EEG_ATTRIBUTES and len(d)]
    datatype = "eeg" if eeg else "beh"
    folder = sess_dir / datatype
    clash = sorted(p.name for p in folder.glob(f"{base}_*")) if folder.is_dir() else []
    if clash:
        raise BidsExportError(f"{folder} already holds {', '.join(clash[:4])}{' …' if len(clash) > 4 else ''}: "
                              "this run was exported there before; give the session another run number")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    written += _dataset_files(root, meta, __version__)
    clock = options.clock
    t_zero = float(rec.global_times(eeg[0], clock)[0]) if eeg else _start(rec, clock)
    sync = _sync_report(rec, clock)
    for sid in eeg:
        written += _write_eeg(rec, sid, folder, base if len(eeg) == 1 else f"{base}_acq-{label(sid)}", meta, clock,
                              sync)  # fmt: skip
    others = [sid for sid, d in rec.sensors.items() if sid not in eeg and len(d) and d.values.dtype != object]
    for i, sid in enumerate(others):
        if progress is not None:
            progress(0.2 + 0.6 * i / max(len(others), 1), f"BIDS {sid}")
        attribute = rec.sensors[sid].info.attribute
        if attribute in MOTION_ATTRIBUTES:
            written += _write_motion(rec, sid, sess_dir / "motion", ents, t_zero, clock, sync)
        else:
            written += _write_physio(rec, sid, folder, base, t_zero, clock, sync)
    written += _write_events(rec, folder, base, t_zero, clock)
    written.append(_append_scans(sess_dir, sub, ses, [p for p in written if p.parent.parent == sess_dir], meta))
    return written


def _start(rec: Recording, clock: str) -> float:
    """The recording's start (global s), else its first sample's time."""
    if math.isfinite(rec.bounds[0]):
        return float(rec.bounds[0])
    firsts = [float(rec.global_times(s, clock)[0]) for s, d in rec.sensors.items() if len(d)]
    return min(firsts, default=0.0)


def _dataset_files(root: Path, meta: dict[str, Any], version: str) -> list[Path]:
    out = []
    desc = root / "dataset_description.json"
    if not desc.exists():
        out.append(_write_json(desc, {
            "Name": f"Sensorium Desktop recordings ({meta.get('task') or 'lab'})", "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "GeneratedBy": [{"Name": "Sensorium Desktop", "Version": version,
                             "Description": "synchronized multi-sensor recording exported to BIDS"}],
        }))  # fmt: skip
    readme = root / "README"
    if not readme.exists():
        readme.write_text("Recorded and exported with Sensorium Desktop: every stream on one clock (see the\n"
                          "SensoriumSync field of each sidecar for the clock domains, offsets, drift and sigma).\n",
                          encoding="utf-8")  # fmt: skip
        out.append(readme)
    sub = label(meta.get("participant"))
    parts = root / "participants.tsv"
    rows = []
    if parts.exists():
        with open(parts, encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter="\t")][1:]
    if f"sub-{sub}" not in {r[0] for r in rows if r}:
        rows.append([f"sub-{sub}"])
        out.append(_write_tsv(parts, ["participant_id"], rows))
    pj = root / "participants.json"
    if not pj.exists():
        out.append(_write_json(pj, {"participant_id": {"Description": "the participant's label in the session"}}))
    return out


def _sync_report(rec: Recording, clock: str) -> dict[str, dict[str, Any]]:
    """Per sensor: clock domain, kind, offset (s), drift (ppm), sigma (s), and its host's
    host → global sigma and asymmetry bound (s)."""
    out = {}
    for sid, d in rec.sensors.items():
        if not len(d):
            continue
        rep = rec.sync_report(sid, clock)
        out[sid] = {k: (float(v) if isinstance(v, int | float | np.floating) else v) for k, v in rep.items()
                    if k in ("domain", "kind", "offset", "drift_ppm", "sigma", "latency", "resets")}  # fmt: skip
        out[sid].update(rec.host_clock(d.info.node_id))  # host → global sigma, asymmetry bound (s)
        check = rec.sync_check_of(sid)
        if check is not None:  # what a physical sync check measured (and corrected, if applied)
            out[sid]["sync_check"] = check
    return out


def _write_eeg(rec: Recording, sid: str, folder: Path, base: str, meta: dict[str, Any], clock: str,
               sync: dict[str, Any]) -> list[Path]:  # fmt: skip
    data = rec.sensors[sid]
    info = data.info
    t = rec.global_times(sid, clock)
    rate = info.nominal_rate or (1.0 / float(np.median(np.diff(t))) if t.size > 1 else 1.0)
    values = np.asarray(data.values, dtype=np.float32)
    names = [n or f"ch{i + 1}" for i, n in enumerate(info.channel_names)]
    units = [u if u else "uV" for u in info.units]
    stem = folder / f"{base}_eeg"
    vhdr, vmrk, eeg = stem.with_suffix(".vhdr"), stem.with_suffix(".vmrk"), stem.with_suffix(".eeg")
    values.astype("<f4").tofile(eeg)
    chans = "\n".join(f"Ch{i + 1}={n.replace(',', ' ')},,1,{_bv_unit(u)}"
                      for i, (n, u) in enumerate(zip(names, units, strict=True)))  # fmt: skip
    vhdr.write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n; written by Sensorium Desktop\n\n[Common Infos]\n"
        f"Codepage=UTF-8\nDataFile={eeg.name}\nMarkerFile={vmrk.name}\nDataFormat=BINARY\n"
        f"DataOrientation=MULTIPLEXED\nNumberOfChannels={len(names)}\nSamplingInterval={1e6 / rate:.6f}\n\n"
        f"[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n\n[Channel Infos]\n{chans}\n", encoding="utf-8")  # fmt: skip
    start = time.strftime("%Y%m%d%H%M%S", time.gmtime(float(t[0]))) + f"{int((float(t[0]) % 1) * 1e6):06d}"
    vmrk.write_text("Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
                    f"DataFile={eeg.name}\n\n[Marker Infos]\nMk1=New Segment,,1,1,0,{start}\n",
                    encoding="utf-8")  # fmt: skip
    sidecar = _write_json(folder / f"{base}_eeg.json", {
        "TaskName": str(meta.get("task")), "SamplingFrequency": rate, "EEGReference": "n/a",
        "PowerLineFrequency": "n/a", "SoftwareFilters": "n/a", "EEGChannelCount": len(names),
        "RecordingDuration": float(values.shape[0] / rate), "RecordingType": "continuous",
        "Manufacturer": str(info.extra.get("manufacturer", "n/a")),
        "SensoriumSync": {"clock": clock, "timestamps": "global", **sync.get(sid, {})},
    })  # fmt: skip
    channels = _write_tsv(folder / f"{base}_channels.tsv", ["name", "type", "units", "sampling_frequency"],
                          [[n, "EEG", u, rate] for n, u in zip(names, units, strict=True)])  # fmt: skip
    return [vhdr, vmrk, eeg, sidecar, channels]


def _bv_unit(unit: str) -> str:
    return "µV" if unit in ("uV", "microvolts", "µV") else unit


def _uniform(t: np.ndarray, values: np.ndarray, rate: float,
             coded: frozenset[int] = frozenset()) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``values`` (n, c) at times ``t`` on a uniform grid at ``rate`` Hz from t[0] (linear; the
    columns in ``coded`` — codes of a state — take the newest sample at or before each point)."""
    n = math.floor((t[-1] - t[0]) * rate + 1e-9) + 1
    grid = t[0] + np.arange(n) / rate
    v = np.asarray(values, dtype=np.float64)
    if n == 0:
        return grid, np.zeros((0, v.shape[1]))
    before = np.clip(np.searchsorted(t, grid + 1e-9, side="right") - 1, 0, len(t) - 1)
    return grid, np.column_stack([v[before, k] if k in coded else np.interp(grid, t, v[:, k])
                                  for k in range(v.shape[1])])  # fmt: skip


def _codes(info: SensorInfo) -> dict[str, dict[str, Any]]:
    """Channel → {name: code} of a stream whose channels hold codes (``extra["codes"]``)."""
    codes = info.extra.get("codes")
    return {str(k): v for k, v in codes.items() if isinstance(v, dict)} if isinstance(codes, dict) else {}


def _on_grid(rec: Recording, sid: str, clock: str) -> tuple[SensorInfo, float, np.ndarray, np.ndarray] | None:
    """A stream at a constant rate (its nominal rate, else its median one): (info, rate Hz,
    grid (m,) global s, values (m, c)); None (with a warning) when it has under two samples."""
    data = rec.sensors[sid]
    t = rec.global_times(sid, clock)
    if t.size < 2:
        rec.warn(f"BIDS: {sid} has {t.size} sample(s): no sampling rate, not written")
        return None
    rate = data.info.nominal_rate or round(1.0 / float(np.median(np.diff(t))), 6)
    coded = frozenset(i for i, c in enumerate(data.info.channel_names) if c in _codes(data.info))
    grid, values = _uniform(t, data.values, rate, coded)
    return data.info, rate, grid, values


def _write_physio(rec: Recording, sid: str, folder: Path, base: str, t_zero: float, clock: str,
                  sync: dict[str, Any]) -> list[Path]:  # fmt: skip
    gridded = _on_grid(rec, sid, clock)
    if gridded is None:
        return []
    info, rate, grid, values = gridded
    gaze = info.attribute in GAZE_ATTRIBUTES
    name = f"{base}_recording-{label(sid)}_physio"
    if gaze:  # BIDS eye tracking: a timestamp column first
        values = np.column_stack([grid, values])
    tsv = folder / f"{name}.tsv.gz"
    with open(tsv, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        np.savetxt(gz, values, fmt="%.9g", delimiter="\t")  # no name, no time in the header (BIDS asks)
    columns = [label(c) or f"ch{i + 1}" for i, c in enumerate(info.channel_names)]
    sidecar: dict[str, Any] = {
        "TaskName": str(rec.meta.get("task")),
        "PhysioType": "eyetrack" if gaze else "generic",
        "SamplingFrequency": rate, "StartTime": float(grid[0] - t_zero), "Columns": columns,
        "Resampling": (f"linear interpolation of the recorded samples onto a uniform {rate:g} Hz grid from the first "
                       "sample (global clock); BIDS physio needs a constant rate"),
        "SensoriumSync": {"clock": clock, "sensor_id": sid, "attribute": info.attribute, **sync.get(sid, {})},
    }  # fmt: skip
    codes = _codes(info)
    for c, channel, u in zip(columns, info.channel_names, info.units, strict=False):
        sidecar[c] = {"Units": u or "n/a"}
        if channel in codes:  # BIDS: the meaning of each value of a categorical column
            sidecar[c]["Levels"] = {f"{float(code):g}": name for name, code in codes[channel].items()}
    if gaze:  # BIDS eye tracking: timestamp, then the gaze columns by their names
        columns = ["timestamp", "x_coordinate", "y_coordinate", *columns[2:]]
        sidecar.update({"Columns": columns, "RecordedEye": "cyclopean", "SampleCoordinateSystem": "custom",
                        "SampleCoordinateSystemDescription": "normalized coordinates of the tracker's scene image "
                        "or screen: (0, 0) top left, (1, 1) bottom right", "SampleCoordinateUnits": "n/a",
                        "EnvironmentCoordinates": "top-left",
                        "timestamp": {"Units": "s", "Description": "global clock time of the sample (Sensorium)"},
                        "x_coordinate": {"Units": "n/a", "Description": "horizontal gaze, 0 = left, 1 = right"},
                        "y_coordinate": {"Units": "n/a", "Description": "vertical gaze, 0 = top, 1 = bottom"},
                        })  # fmt: skip
    return [tsv, _write_json(folder / f"{name}.json", sidecar)]


def _write_events(rec: Recording, folder: Path, base: str, t_zero: float, clock: str) -> list[Path]:
    times = rec.marker_times(clock)
    rows = [[f"{t - t_zero:.6f}", _na(m.get("duration")) if m.get("duration") not in (None, "", "0.0") else "n/a",
             _na(str(m.get("label", ""))), _na(m.get("label")), _na(m.get("source"))]
            for m, t in zip(rec.markers, times, strict=True)]  # fmt: skip
    tsv = _write_tsv(folder / f"{base}_events.tsv", ["onset", "duration", "trial_type", "value", "source"], rows)
    js = _write_json(folder / f"{base}_events.json", {
        "onset": {"Description": "time of the marker from the data's start (first EEG sample, else the "
                                 "recording's start)", "Units": "s"},
        "duration": {"Description": "duration the sender gave, else n/a", "Units": "s"},
        "trial_type": {"Description": "the marker's text"},
        "value": {"Description": "the marker's text, as sent"},
        "source": {"Description": "where the marker came from: window, cli, rcs, pupil, lsl:<stream>, …"},
    })  # fmt: skip
    return [tsv, js]


def _append_scans(sess_dir: Path, sub: str, ses: str | None, files: list[Path], meta: dict[str, Any]) -> Path:
    scans = sess_dir / (f"sub-{sub}_ses-{ses}_scans.tsv" if ses else f"sub-{sub}_scans.tsv")
    rows = []
    if scans.exists():
        with open(scans, encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter="\t")][1:]
    started = float(meta.get("started") or time.time())
    acq = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))
    data_files = [p for p in files if p.name.endswith((".vhdr", "_physio.tsv.gz", "_motion.tsv"))]
    for p in data_files:
        rows.append([f"{p.parent.name}/{p.name}", acq])
    return _write_tsv(scans, ["filename", "acq_time"], rows)


def _write_motion(rec: Recording, sid: str, folder: Path, ents: list[tuple[str, str]], t_zero: float, clock: str,
                  sync: dict[str, Any]) -> list[Path]:  # fmt: skip
    """IMU, orientation and skeleton streams as the BIDS ``motion`` datatype (one tracking system each)."""
    from ..core.pose import LANDMARK_NAMES

    gridded = _on_grid(rec, sid, clock)
    if gridded is None:
        return []
    info, rate, grid, values = gridded
    folder.mkdir(parents=True, exist_ok=True)
    with_sys = []
    for k, v in ents:
        with_sys.append((k, v))
        if k == "task":
            with_sys.append(("tracksys", label(sid)))
    base = "_".join(f"{k}-{v}" for k, v in with_sys)
    tsv = folder / f"{base}_motion.tsv"
    np.savetxt(tsv, values, fmt="%.9g", delimiter="\t")
    rows = []
    for name, unit in zip(info.channel_names, info.units, strict=True):
        prefix, _, comp = name.rpartition("_") if "_" in name else ("", "", name)
        if info.attribute in ("skeleton", "pose_world"):  # image (normalized) or world (m) landmarks
            point = LANDMARK_NAMES[int(prefix[2:])] if prefix[2:].isdigit() else prefix
            kind, comp = ("POS", comp) if comp in ("x", "y", "z") else ("MISC", "n/a")
            rows.append([name, comp, kind, point, "m" if unit == "m" else "n/a"])
            continue
        kind = MOTION_TYPES.get(prefix or info.attribute, "MISC")
        comp = f"quat_{comp}" if info.attribute == "quaternion" else comp
        rows.append([name, comp if comp in ("x", "y", "z", "quat_w", "quat_x", "quat_y", "quat_z") else "n/a", kind,
                     label(info.device_name) or "device", _si(unit)])  # fmt: skip
    channels = _write_tsv(folder / f"{base}_channels.tsv", ["name", "component", "type", "tracked_point", "units"],
                          rows)  # fmt: skip
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[2]] = counts.get(r[2], 0) + 1
    sidecar = _write_json(folder / f"{base}_motion.json", {
        "TaskName": str(rec.meta.get("task")), "SamplingFrequency": rate,
        "TrackingSystemName": info.device_name or info.device_id, "MotionChannelCount": len(rows),
        **{f"{k}ChannelCount": n for k, n in counts.items()},
        "RecordingDuration": float(grid[-1] - grid[0]), "StartTime": float(grid[0] - t_zero),
        "Resampling": f"linear interpolation onto a uniform {rate:g} Hz grid from the first sample (global clock)",
        "SensoriumSync": {"clock": clock, "sensor_id": sid, "attribute": info.attribute, **sync.get(sid, {})},
    })  # fmt: skip
    return [tsv, channels, sidecar]


def _si(unit: str) -> str:
    """Units as BIDS writes them (m/s^2, deg/s, uT …); n/a when none."""
    return {"m/s^2": "m/s^2", "deg/s": "deg/s", "uT": "uT", "deg": "deg"}.get(unit, unit or "n/a")


EXPORTER = ExporterSpec(export_bids, "", "BIDS (EEG BrainVision, physio, motion, events)", appends=True)
