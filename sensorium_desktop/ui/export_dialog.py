"""Export a recording from the window: choose the recording, format and clock, watch the
progress; the export runs in a thread so plots keep moving."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from .. import paths
from ..recording.export import EXPORTERS, ExportCancelled, ExportResult, export_recording
from .style import text_style


class _Bridge(QtCore.QObject):
    progress = QtCore.Signal(float, str)
    finished = QtCore.Signal(object)  # ExportResult or an exception


class ExportDialog(QtWidgets.QDialog):
    """Pick a recording directory and export it (never overwrites: old files are renamed)."""

    def __init__(
        self,
        parent: QtWidgets.QWidget | None = None,
        directory: Path | None = None,
        time_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(parent)
        #: export only [start, end] (global s; from the review window's selection)
        self.time_range = time_range
        self.setWindowTitle("Export recording")
        self.setObjectName("exportDialog")
        self.directory = QtWidgets.QLineEdit(str(directory or ""))
        self.directory.setPlaceholderText("recording directory (holds session.json)")
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.format = QtWidgets.QComboBox()
        for name, spec in EXPORTERS.load_all().items():
            self.format.addItem(name, name)
            self.format.setItemData(self.format.count() - 1, spec.title, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.format.setCurrentText("xdf")
        #: participant and task: the recording's, or typed here (BIDS needs both; never invented)
        self.participant = QtWidgets.QLineEdit()
        self.participant.setObjectName("exportParticipant")
        self.task = QtWidgets.QLineEdit()
        self.task.setObjectName("exportTask")
        for w, what in ((self.participant, "participant"), (self.task, "task")):
            w.setPlaceholderText(f"the recording has no {what}: BIDS needs one")
        self.directory.textChanged.connect(self._load_metadata)
        self.clock = QtWidgets.QComboBox()
        self.clock.addItems(["refined", "causal"])
        self.clock.setToolTip("refined: non-causal clock fit over the whole recording; causal: what the live view used")
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("exportMessage")
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setMinimumWidth(520)
        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = self.buttons.addButton("Cancel export", QtWidgets.QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button.setObjectName("cancelExport")
        self.cancel_button.setToolTip("stop the export and remove what it wrote so far")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.buttons.rejected.connect(self.reject)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.directory, 1)
        row.addWidget(browse)
        form = QtWidgets.QFormLayout(self)
        form.addRow("Recording", row)
        form.addRow("Format", self.format)
        form.addRow("Participant", self.participant)
        form.addRow("Task", self.task)
        form.addRow("Clock", self.clock)
        if time_range is not None:
            form.addRow("Range", QtWidgets.QLabel(f"{time_range[1] - time_range[0]:.3f} s selected in the review"))
        form.addRow(self.bar)
        form.addRow(self.message)
        form.addRow(self.buttons)
        self.resize(560, 0)
        self.bridge = _Bridge()
        self.bridge.progress.connect(self._progress)
        self.bridge.finished.connect(self._finished)
        self.outcome: ExportResult | Exception | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._load_metadata()

    def _load_metadata(self) -> None:
        """Participant and task of the chosen recording (editable when it has none)."""
        from ..recording.spool import SpoolError, read_session_file

        try:
            meta = read_session_file(Path(self.directory.text().strip()))
        except (SpoolError, OSError):
            meta = {}
        for w, key in ((self.participant, "participant"), (self.task, "task")):
            value = str(meta.get(key) or "")
            w.setText(value)
            w.setReadOnly(bool(value))  # the recording's own name is not changed here

    def _browse(self) -> None:
        start = self.directory.text() or str(paths.sessions_dir())
        chosen = QtWidgets.QFileDialog.getExistingDirectory(self, "Recording directory", start)
        if chosen:
            self.directory.setText(chosen)

    def start(self) -> None:
        """Run the export in a thread; progress and the outcome come back as signals."""
        if self._thread is not None and self._thread.is_alive():
            return
        directory = Path(self.directory.text().strip())
        fmt, clock = self.format.currentText(), self.clock.currentText()
        metadata = {"participant": self.participant.text().strip(), "task": self.task.text().strip()}
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.message.setText("exporting…")
        self.outcome = None
        self._cancel.clear()

        progress = self.bridge.progress.emit

        def work() -> None:
            try:
                result: ExportResult | Exception = export_recording(directory, fmt, None, clock, progress,
                                                                      time_range=self.time_range, cancel=self._cancel,
                                                                      metadata=metadata)  # fmt: skip
            except Exception as exc:  # shown in the dialog, never a crash
                result = exc
            self.bridge.finished.emit(result)

        self._thread = threading.Thread(target=work, name="export", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop a running export at its next step (its partial output is removed)."""
        if self._thread is not None and self._thread.is_alive():
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.message.setText("cancelling…")

    def reject(self) -> None:
        """Closing the dialog cancels a running export first."""
        self.cancel()
        self.wait(30.0)
        super().reject()

    def _progress(self, frac: float, msg: str) -> None:
        self.bar.setValue(int(1000 * min(max(frac, 0.0), 1.0)))
        self.message.setText(msg)

    def _finished(self, result: ExportResult | Exception) -> None:
        self.outcome = result
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if isinstance(result, ExportCancelled):
            self.bar.setValue(0)
            self.message.setText(f"cancelled: {result}; nothing was left behind")
            self.message.setStyleSheet("")
            return
        if isinstance(result, Exception):
            self.message.setText(f"⚠ export failed: {result}")
            self.message.setStyleSheet(text_style("error"))
            self.adjustSize()
            return
        self.bar.setValue(1000)
        out = result.files[0]
        lines = [f"{result.samples:,} samples exported in {result.seconds:.1f} s to {out.name}", f"in {out.parent}"]
        if result.renamed is not None:
            lines.append(f"the previous export was kept as {result.renamed.name}")
        lines += [f"⚠ {w}" for w in result.warnings[:6]]
        self.message.setText("\n".join(lines))
        self.message.setStyleSheet("")
        self.adjustSize()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the export thread ends (tests)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
