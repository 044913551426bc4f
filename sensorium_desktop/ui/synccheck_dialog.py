"""Session → Sync check…: run a check from the window and read its result.

The form sets the flashes, where they are drawn and the lab's tolerance; Start records the
live sensors that can see a flash while the flash window presents, then shows per sensor its
event-locked traces (0 = the flash's frame swap) and the table. The same dialog shows a stored
result read-only (the review opens it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from ..core.synccheck import PATCHES, Tolerance
from ..recording.synccheck import CheckOptions, summary_lines
from .flash import FlashStimulus
from .style import text_style

if TYPE_CHECKING:
    from ..viewmodel.synccheck import SyncCheckModel
    from .host import WindowHost

COLUMNS = ("Sensor", "Detector", "Detected", "Mean ms", "SD ms", "Min ms", "Max ms", "Clock σ µs", "Verdict")
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _ms(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and math.isfinite(value) else "—"


class SyncCheckDialog(QtWidgets.QDialog):
    """Run a sync check (``window`` given) or show ``result`` (read-only)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, window: WindowHost | None = None,
                 result: dict[str, Any] | None = None, directory: Path | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setObjectName("syncCheckDialog")
        self.setWindowTitle("Sync check")
        self.main_window = window
        self.stimulus: FlashStimulus | None = None
        self.model: SyncCheckModel | None = None
        layout = QtWidgets.QVBoxLayout(self)
        self.form_box = QtWidgets.QGroupBox("Flashes and tolerance")
        form = QtWidgets.QFormLayout(self.form_box)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.flashes = QtWidgets.QSpinBox(minimum=1, maximum=500, value=20)
        self.interval = QtWidgets.QDoubleSpinBox(minimum=0.3, maximum=10.0, value=1.0, singleStep=0.1, suffix=" s")
        self.interval.setToolTip("mean time between flashes; each gap is jittered by ±25 %")
        self.flash_ms = QtWidgets.QSpinBox(minimum=10, maximum=1000, value=100, suffix=" ms")
        self.patch = QtWidgets.QComboBox()
        self.patch.addItems(list(PATCHES))
        self.patch.setToolTip("full screen (cameras) or the corner where a photodiode sits")
        self.patch_size = QtWidgets.QSpinBox(minimum=20, maximum=2000, value=200, suffix=" px")
        self.max_mean = QtWidgets.QDoubleSpinBox(minimum=0.01, maximum=1000.0, value=2.0, suffix=" ms")
        self.max_sd = QtWidgets.QDoubleSpinBox(minimum=0.01, maximum=1000.0, value=1.0, suffix=" ms")
        self.apply = QtWidgets.QCheckBox("store each sensor's mean latency as a correction exports use")
        self.fullscreen = QtWidgets.QCheckBox("full screen")
        self.fullscreen.setChecked(True)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.patch)
        row.addWidget(self.patch_size)
        row.addWidget(self.fullscreen)
        row.addStretch(1)
        tol = QtWidgets.QHBoxLayout()
        tol.addWidget(QtWidgets.QLabel("|mean| ≤"))
        tol.addWidget(self.max_mean)
        tol.addWidget(QtWidgets.QLabel("SD ≤"))
        tol.addWidget(self.max_sd)
        tol.addStretch(1)
        form.addRow("Flashes", self.flashes)
        form.addRow("Interval", self.interval)
        form.addRow("Each lit for", self.flash_ms)
        form.addRow("Drawn", row)
        form.addRow("Tolerance", tol)
        form.addRow("", self.apply)
        layout.addWidget(self.form_box)
        buttons = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setObjectName("syncCheckStart")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.status = QtWidgets.QLabel("")
        self.status.setObjectName("syncCheckStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.status, 1)
        layout.addLayout(buttons)
        self.header = QtWidgets.QLabel("")
        self.header.setWordWrap(True)
        self.header.setStyleSheet(text_style("muted"))
        layout.addWidget(self.header)
        self.traces = pg.GraphicsLayoutWidget()
        self.traces.setBackground("w")
        self.traces.setMinimumHeight(200)
        layout.addWidget(self.traces, 3)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("syncCheckTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.where = QtWidgets.QLabel("")
        self.where.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where.setStyleSheet(text_style("muted"))
        layout.addWidget(self.where)
        self.resize(980, 720)
        if window is None:
            self.form_box.hide()
            self.start_button.hide()
            self.stop_button.hide()
        if result is not None:
            self.show_result(result, directory)

    # -- running ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start a check with the form's settings (needs the window's model and node)."""
        if self.main_window is None:
            return
        from ..viewmodel.synccheck import SyncCheckModel

        app = self.main_window.model
        if self.model is None:
            self.model = SyncCheckModel(app.redis_url, app.keys, app.sessions)
            self.model.progress.connect(self._progress)
            self.model.failed.connect(self._failed)
            self.model.finished.connect(self._finished)
        screen = (self.main_window.screen() or QtGui.QGuiApplication.primaryScreen()).geometry()
        self.stimulus = FlashStimulus(self.patch.currentText(), self.patch_size.value(), self.fullscreen.isChecked(),
                                      None if self.fullscreen.isChecked() else QtCore.QRect(screen.x() + 40,
                                      screen.y() + 40, 640, 400))  # fmt: skip
        opts = CheckOptions(tolerance=Tolerance(self.max_mean.value(), self.max_sd.value()))
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("starting: recording the sensors that can see a flash…")
        run = self.model.run(self.stimulus, self.flashes.value(), self.interval.value(), self.flash_ms.value() / 1000.0,
                             opts, self.apply.isChecked())  # fmt: skip
        self.main_window.spawn(run)

    def stop(self) -> None:
        if self.model is not None:
            self.model.stop()
        self.status.setText("stopping: what was measured is analysed…")

    def _progress(self, text: str) -> None:
        self.status.setText(text)

    def _failed(self, why: str) -> None:
        self.status.setText(f"<span style='{text_style('error')}'>Not done: {why}</span>")
        self._idle()

    def _finished(self, result: dict[str, Any], directory: Path) -> None:
        self.status.setText("done" + (" (INTERRUPTED)" if result.get("interrupted") else ""))
        self._idle()
        self.show_result(result, directory)

    def _idle(self) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self.model is not None and self.model.running:
            self.model.stop()
        super().closeEvent(event)

    # -- the result -------------------------------------------------------------------------
    def show_result(self, result: dict[str, Any], directory: Path | None = None) -> None:
        """Fill the traces and the table from a stored or fresh result."""
        lines = summary_lines(result)
        self.header.setText(
            lines[0]
            + (f" — 0 ms = {result['timing']}" if result.get("timing") else "")
            + (f"; {result['audio']}" if result.get("audio") else "")
        )
        self.where.setText(f"stored in {directory}" if directory else "")
        rows = list(result.get("sensors", {}).items())
        self.table.setRowCount(len(rows))
        applied = result.get("applied_ms") or {}
        for r, (sid, row) in enumerate(rows):
            sigma = row.get("claimed_sigma_ms")
            verdict = row["verdict"] + (f": {'; '.join(row['reasons'])}" if row.get("reasons") else "")
            if sid in applied:
                verdict += f" (corrected by −{applied[sid]:.2f} ms)"
            if "truth_mean_ms" in row:
                verdict += f" [simulated truth {row['truth_mean_ms']:.2f} ms]"
            cells = (sid, row.get("detector", ""), f"{row['detected']} of {row['presented']}", _ms(row["mean_ms"]),
                     _ms(row["sd_ms"]), _ms(row["min_ms"]), _ms(row["max_ms"]),
                     _ms(sigma * 1e3 if isinstance(sigma, int | float) else None, 1), verdict)  # fmt: skip
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if col == len(cells) - 1:
                    good = row["verdict"] == "pass"
                    item.setForeground(QtGui.QColor("#2e7d32" if good else "#c62828"))
                    item.setToolTip(verdict)
                self.table.setItem(r, col, item)
        self._draw_traces(result, rows)

    def _draw_traces(self, result: dict[str, Any], rows: list[tuple[str, dict[str, Any]]]) -> None:
        self.traces.clear()
        t0, t1 = result.get("trace_window_ms", [-50.0, 200.0])
        first = None
        for lane, (sid, row) in enumerate(rows):
            plot = self.traces.addPlot(row=lane, col=0)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setMouseEnabled(x=False, y=False)
            plot.getAxis("left").setWidth(40)
            plot.setYRange(-0.1, 1.15, padding=0)
            plot.setXRange(t0, t1, padding=0)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            if lane < len(rows) - 1:
                plot.getAxis("bottom").setStyle(showValues=False)
            else:
                plot.setLabel("bottom", "ms after the flash's presentation")
            color = _PALETTE[lane % len(_PALETTE)]
            traces = row.get("traces") or []
            x = np.linspace(t0, t1, len(traces[0])) if traces else np.empty(0)
            for trace in traces:
                y = np.array([np.nan if v is None else v for v in trace], dtype=float)
                plot.plot(x, y, pen=pg.mkPen(color, width=1), connect="finite")
            plot.addLine(x=0.0, pen=pg.mkPen("#d00", width=1))
            if isinstance(row.get("mean_ms"), int | float):
                plot.addLine(x=row["mean_ms"], pen=pg.mkPen("#555", width=1, style=QtCore.Qt.PenStyle.DashLine))
            title = f"{sid}: {row['detected']} of {row['presented']}"
            if row["mean_ms"] is not None:
                title += f", mean {row['mean_ms']:.2f} ms, SD {_ms(row['sd_ms'])} ms"
            good = row["verdict"] == "pass"
            plot.setTitle(f"<span style='color:{'#2e7d32' if good else '#c62828'}'>{title} — {row['verdict']}</span>",
                          size="9pt")  # fmt: skip
