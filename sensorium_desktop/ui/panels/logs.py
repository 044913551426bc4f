"""Log viewer dock: the window's log records and its node's log file, filtered by level and
text, errors and warnings in the palette's colours; Open folder shows the files."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from ...logfiles import NODE_LOG, log_path
from ...viewmodel.logs import LEVELS, LogLine, LogModel, matches
from ..style import roles
from . import PanelAction, PanelSpec

if TYPE_CHECKING:
    from ..host import WindowHost

REFRESH_MS = 500


class LogPanel(QtWidgets.QWidget):
    def __init__(self, window: WindowHost | None = None, model: LogModel | None = None) -> None:
        super().__init__()
        self.model = model or LogModel(log_path(NODE_LOG))
        self.model.attach()
        self.level = QtWidgets.QComboBox()
        self.level.addItems(list(LEVELS))
        self.level.setCurrentText("INFO")
        self.level.setToolTip("show records at this level and above")
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("filter (text, logger, window/node)")
        self.filter.setClearButtonEnabled(True)
        self.follow = QtWidgets.QCheckBox("Follow")
        self.follow.setChecked(True)
        folder = QtWidgets.QPushButton("Open folder")
        folder.setToolTip(str(log_path(NODE_LOG).parent))
        folder.clicked.connect(lambda: QtGui.QDesktopServices.openUrl(
            QtCore.QUrl.fromLocalFile(str(log_path(NODE_LOG).parent))))  # fmt: skip
        self.text = QtWidgets.QPlainTextEdit()
        self.text.setObjectName("logText")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(5000)
        self.text.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.count = QtWidgets.QLabel("")
        bar = QtWidgets.QHBoxLayout()
        for w in (QtWidgets.QLabel("Level"), self.level, self.filter, self.follow, folder):
            bar.addWidget(w)
        bar.setStretch(2, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.count)
        self.level.currentTextChanged.connect(lambda _t: self.rebuild())
        self.filter.textChanged.connect(lambda _t: self.rebuild())
        self.model.changed.connect(self.append)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.model.refresh)
        self.timer.start()
        self.destroyed.connect(lambda *_: self.model.detach())
        self.rebuild()

    def _shown(self, line: LogLine) -> bool:
        return matches(line, self.level.currentText(), self.filter.text().strip())

    def _html(self, line: LogLine) -> str:
        r = roles()
        colour = r.error if line.levelno >= 40 else r.warning if line.levelno >= 30 else ""
        body = html.escape(line.short()).replace("\n", "<br>")
        return f'<span style="color:{colour}">{body}</span>' if colour else body

    def append(self, new: list[LogLine]) -> None:
        """Add new lines that pass the filter (scrolls to the end while Follow is on)."""
        shown = [x for x in new if self._shown(x)]
        for line in shown:
            self.text.appendHtml(self._html(line))
        if shown and self.follow.isChecked():
            bar = self.text.verticalScrollBar()
            bar.setValue(bar.maximum())  # to the newest line, never sideways
        self._count()

    def rebuild(self) -> None:
        """Show every kept line that passes the filter."""
        self.text.clear()
        lines = self.model.visible(self.level.currentText(), self.filter.text().strip())
        self.text.appendHtml("<br>".join(self._html(x) for x in lines[-5000:]))
        self._count()

    def _count(self) -> None:
        errors = sum(1 for x in self.model.lines if x.levelno >= 40)
        warnings = sum(1 for x in self.model.lines if 30 <= x.levelno < 40)
        self.count.setText(f"{len(self.model.lines)} lines kept · {errors} errors · {warnings} warnings")

    def show_errors(self) -> None:
        """Only warnings and errors."""
        self.level.setCurrentText("WARNING")


PANEL = PanelSpec(
    "log", "Log", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, LogPanel, "sessions", order=70,
    actions=(PanelAction("&Help", "Show &warnings and errors", LogPanel.show_errors, "",
                         "the log viewer, filtered to warnings and errors", reveal=True),),
)  # fmt: skip
