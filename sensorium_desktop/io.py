"""Recordings for MNE-Python: ``read_raw(session_or_xdf, stream=...)`` → ``mne.io.Raw``.

MNE has no XDF reader of its own; this one reads our sessions (on our refined clocks) and any
XDF file (pyxdf's clock sync and dejitter) through :mod:`sensorium_desktop.recording.review`.
Channel types come from the stream's attribute or XDF type (EEG → ``eeg``, ECG → ``ecg``, …),
units are converted to MNE's SI units (µV → V, mV → V), and every marker of the recording
becomes an annotation (onset from the stream's first sample, its source in the description's
``extras``). ``mne`` is an optional dependency: ``pip install mne``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from .recording.review import ReviewData, ReviewError, ReviewStream, open_review

#: attribute or XDF type (lower case) → MNE channel type
CHANNEL_TYPES = {"eeg": "eeg", "exg": "eeg", "ecg": "ecg", "emg": "emg", "eog": "eog", "respiration": "resp",
                 "resp": "resp", "ppg": "bio", "gsr": "gsr", "eda": "gsr", "temperature": "temperature"}  # fmt: skip
#: unit → factor to SI volts (MNE stores voltages in V)
TO_VOLTS = {"uv": 1e-6, "µv": 1e-6, "microvolts": 1e-6, "mv": 1e-3, "millivolts": 1e-3, "v": 1.0, "volts": 1.0}


def pick_stream(data: ReviewData, stream: str | None = None) -> ReviewStream:
    """The stream asked for (key or name), else the first EEG stream, else the fastest numeric one."""
    numeric = [s for s in data.streams.values() if s.kind == "signal" and s.times.size > 1]
    if stream is not None:
        for s in data.streams.values():
            if stream in (s.key, s.name):
                if s.kind != "signal" or s.times.size < 2:
                    raise ReviewError(f"{data.path.name}: stream {stream!r} holds no numeric samples")
                return s
        raise ReviewError(f"{data.path.name}: no stream {stream!r} (there are: {', '.join(data.streams)})")
    eeg = [s for s in numeric if s.attribute.lower() in ("eeg", "exg")]
    if eeg:
        return eeg[0]
    if not numeric:
        raise ReviewError(f"{data.path.name}: no numeric stream to read")
    return max(numeric, key=lambda s: s.nominal_rate)


def read_raw(path: str | Path, stream: str | None = None, preload: bool = True) -> Any:
    """An ``mne.io.RawArray`` of one stream of a session folder or XDF file (see module doc)."""
    import mne

    data = open_review(path)
    s = pick_stream(data, stream)
    sfreq = s.nominal_rate or float(1.0 / np.median(np.diff(s.times)))
    kind = CHANNEL_TYPES.get(s.attribute.lower(), "misc")
    values = np.asarray(s.values, dtype=np.float64).T.copy()
    for i, unit in enumerate(s.units):
        factor = TO_VOLTS.get(unit.strip().lower()) if kind in ("eeg", "ecg", "emg", "eog") else None
        if factor is not None:
            values[i] *= factor
    names = [n or f"ch{i + 1}" for i, n in enumerate(s.channel_names)]
    if len(set(names)) != len(names):
        names = [f"{n}-{i + 1}" for i, n in enumerate(names)]
    info = mne.create_info(names, sfreq, ch_types=kind)
    raw = mne.io.RawArray(values, info, first_samp=0, verbose="error")
    raw.set_meas_date(dt.datetime.fromtimestamp(float(s.times[0]), tz=dt.UTC))
    t0 = float(s.times[0])
    keep = (data.marker_times >= t0) & (data.marker_times <= float(s.times[-1]))
    if keep.any():
        # BAD_<reason> spells of the quality scorer keep their length: MNE treats them as bad spans
        durations = data.marker_durations if data.marker_durations is not None else np.zeros(keep.size)
        raw.set_annotations(mne.Annotations(
            onset=data.marker_times[keep] - t0, duration=durations[keep],
            description=[lbl for lbl, k in zip(data.marker_labels, keep, strict=True) if k],
            extras=[{"source": src} for src, k in zip(data.marker_sources, keep, strict=True) if k]))  # fmt: skip
    raw.info["description"] = f"{s.name} from {data.path.name}; clock: {data.clock}"
    return raw
