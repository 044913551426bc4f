"""Cancel in every long operation (issue 21): an export cancelled part-way leaves nothing behind —
no partial file, the previous export back under its name, an appended-to BIDS dataset exactly
as it was — from the API, the export dialog (Cancel) and the CLI (Ctrl-C)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from conftest import RedisServer, record_session

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.recording.export import ExportCancelled, export_recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Path:
    keys = Keys("cancel-" + str(time.time_ns()))

    def ready(c: redis.Redis) -> bool:
        ids = [x.decode() for x in c.smembers(keys.sensors)]
        return len(ids) >= 3 and all(c.xlen(keys.stream(i)) > 2 for i in ids[:3])

    return record_session(redis_server, keys, ["sim:chest", "sim:eeg?channels=32"], tmp_path_factory.mktemp("c"),
                          "cancelme", ["go"], ready, node_id="cancel-node", settle_s=2.0,
                          participant="C1", task="cancel", run="1")  # fmt: skip


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}  # fmt: skip


@pytest.mark.parametrize("fmt", ["xdf", "csv"])
def test_a_cancelled_export_removes_its_output_and_restores_the_previous_one(
    recording: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / ("out.xdf" if fmt == "xdf" else "out_csv")
    first = export_recording(recording, fmt, out)
    before = out.read_bytes() if out.is_file() else tree_digest(out)
    cancel = threading.Event()
    fractions: list[float] = []

    def progress(frac: float, _msg: str) -> None:
        fractions.append(frac)
        if frac >= 0.5:
            cancel.set()  # the writer starts: its first progress step raises

    with pytest.raises(ExportCancelled):
        export_recording(recording, fmt, out, progress=progress, cancel=cancel)
    assert max(fractions) < 1.0 and first.files
    assert (out.read_bytes() if out.is_file() else tree_digest(out)) == before  # the previous export, as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file, no renamed copy left


def test_a_cancelled_bids_export_leaves_the_dataset_as_it_was(recording: Path, tmp_path: Path) -> None:
    root = tmp_path / "bids"
    root.mkdir()
    (root / "README").write_text("a lab's dataset\n")
    before = tree_digest(root)
    cancel = threading.Event()

    def progress(frac: float, msg: str) -> None:
        if msg.startswith("BIDS"):
            cancel.set()  # EEG, participants.tsv and dataset_description.json are written by now

    with pytest.raises(ExportCancelled):
        export_recording(recording, "bids", root, progress=progress, cancel=cancel)
    assert tree_digest(root) == before
    done = export_recording(recording, "bids", root)  # the run can still be exported afterwards
    assert any(p.name.endswith("_eeg.vhdr") for p in done.files)


def test_the_export_dialog_cancels(qtbot, recording: Path, tmp_path: Path) -> None:
    from sensorium_desktop.ui.export_dialog import ExportDialog

    dialog = ExportDialog(directory=recording)
    qtbot.addWidget(dialog)
    dialog.format.setCurrentText("csv")
    before = sorted(p.name for p in recording.iterdir())
    dialog.start()
    assert dialog.cancel_button.isEnabled() and not dialog.export_button.isEnabled()
    dialog.cancel()  # while it reads the recording
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=60000)
    assert isinstance(dialog.outcome, ExportCancelled)
    assert "cancelled" in dialog.message.text() and not dialog.cancel_button.isEnabled()
    assert dialog.export_button.isEnabled() and sorted(p.name for p in recording.iterdir()) == before
    dialog.start()  # and exporting again works
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=60000)
    assert not isinstance(dialog.outcome, Exception), dialog.outcome


def test_ctrl_c_cancels_an_export(recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SIGINT in the middle of writing: the partial file is removed; the CLI says so, exit 130."""
    out = tmp_path / "ctrlc.xdf"
    code = ("import os, signal, sys\n"
            "from sensorium_desktop.recording.export import export_recording\n"
            "def progress(frac, msg):\n"
            "    if frac > 0.5: os.kill(os.getpid(), signal.SIGINT)\n"
            "try:\n"
            f"    export_recording({str(recording)!r}, 'xdf', {str(out)!r}, progress=progress)\n"
            "except KeyboardInterrupt:\n"
            "    sys.exit(130)\n")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 130, run.stderr[-2000:]
    assert "cancelled: partial output removed" in run.stderr and not out.exists()

    from sensorium_desktop import cli
    from sensorium_desktop.recording import export

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_recording", interrupted)
    assert cli.main(["export", str(recording), "--format", "xdf", "-o", str(out)]) == 130


def test_a_write_error_reaches_the_exporter() -> None:
    """The XDF writer writes in a thread behind the chunk builder: a full disk (/dev/full:
    every write fails with ENOSPC) is raised to the caller, not lost in the thread."""
    import errno

    import numpy as np

    from sensorium_desktop.recording.xdf import XdfStream, write_xdf

    n = 200_000
    stream = XdfStream(1, "EEG", "EEG", "src", "float32", 512.0, ["c1", "c2"], ["uV", "uV"],
                       1.7e9 + np.arange(n) / 512.0, np.zeros((n, 2), np.float32), "")  # fmt: skip
    with pytest.raises(OSError) as err:
        write_xdf(Path("/dev/full"), [stream], "s")
    assert err.value.errno == errno.ENOSPC
    assert not [t for t in threading.enumerate() if t.name == "xdf-write"]
