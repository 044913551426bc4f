"""Small reusable widgets: a read-only table filled from rows, an empty-state label, the
alert banner."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from ..viewmodel.alerts import Alert, AlertsModel
from .style import roles

#: Item data role holding the text colour a cell was given (so an unchanged colour is not set again).
_COLOUR_ROLE = QtCore.Qt.ItemDataRole.UserRole + 7


class RowTable(QtWidgets.QTableWidget):
    """A read-only table replaced row by row (selection kept by the first column's text)."""

    def __init__(self, headers: Sequence[str], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, len(headers), parent)
        self.setHorizontalHeaderLabels(list(headers))
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(20)
        self.setAlternatingRowColors(True)
        self.horizontalHeader().setStretchLastSection(True)

    def set_rows(self, rows: Sequence[Sequence[str]], colours: Sequence[str | None] | None = None) -> None:
        """Show ``rows`` (``colours``: a text colour per row): only cells whose text or colour
        changed are touched, and columns are sized again only when some text changed (a
        refresh that changes nothing costs no layout)."""
        selected = self.selected_key()
        changed = self.rowCount() != len(rows)
        if changed:
            self.setRowCount(len(rows))
        align = QtCore.Qt.AlignmentFlag
        for r, row in enumerate(rows):
            colour = (colours[r] if colours else None) or ""
            for col, text in enumerate(row):
                item = self.item(r, col)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    if col > 0:  # numbers right-aligned; the stretched last column's at its left edge
                        side = align.AlignLeft if col == len(row) - 1 else align.AlignRight
                        item.setTextAlignment(side | align.AlignVCenter)
                    self.setItem(r, col, item)
                if item.text() != text:
                    item.setText(text)
                    changed = True
                if item.data(_COLOUR_ROLE) != colour:
                    item.setData(_COLOUR_ROLE, colour)
                    item.setForeground(QtGui.QBrush(QtGui.QColor(colour)) if colour else QtGui.QBrush())
            if selected is not None and row and row[0] == selected and self.currentRow() != r:
                self.selectRow(r)
        if changed:
            self.resizeColumnsToContents()

    def selected_key(self) -> str | None:
        items = self.selectedItems()
        first = self.item(items[0].row(), 0) if items else None
        return first.text() if first is not None else None


def empty_label(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #616161; padding: 4px")
    return label


def vertical_scroll(widget: QtWidgets.QWidget, name: str) -> QtWidgets.QScrollArea:
    """``widget`` in a frameless area that scrolls vertically only (stacked plots that keep a
    minimum height each instead of being squeezed)."""
    area = QtWidgets.QScrollArea()
    area.setObjectName(name)
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    return area


class AlertBanner(QtWidgets.QFrame):
    """A banner over the plots with every unacknowledged alert (node restarted, device lost)
    and an Acknowledge button; hidden when there is none."""

    def __init__(self, alerts: AlertsModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.alerts = alerts
        self.setObjectName("alertBanner")
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.text = QtWidgets.QLabel()
        self.text.setObjectName("alertText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.ack = QtWidgets.QPushButton("Acknowledge")
        self.ack.setToolTip("I have seen this: hide the banner (the log keeps it)")
        self.ack.clicked.connect(lambda: alerts.acknowledge())
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.text, 1)
        row.addWidget(self.ack, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        alerts.changed.connect(self.show_alerts)
        self.show_alerts(alerts.active())

    def show_alerts(self, active: Sequence[Alert]) -> None:
        self.setVisible(bool(active))
        if not active:
            return
        level = "error" if any(a.level == "error" for a in active) else "warning"
        colour = getattr(roles(), level)
        self.setStyleSheet(f"#alertBanner {{ border: 2px solid {colour}; border-radius: 4px; }}"
                           f" #alertText {{ color: {colour}; font-weight: bold; }}")  # fmt: skip
        self.text.setText("\n".join(f"⚠ {a.text}" for a in active))
