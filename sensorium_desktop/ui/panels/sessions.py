"""Sessions panel: sessions with their sensors (drop sensors from the device tree onto a
session; remove with Delete or by dragging them out), BIDS metadata, markers."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from ...bus.sessions import Session
from ...viewmodel.sessions import METADATA_FIELDS
from ..mime import SENSORS_MIME, SESSION_SENSORS_MIME, read_sensors, sensors_mime
from ..style import state_brush
from ..widgets import empty_label
from . import PanelAction, PanelSpec

if TYPE_CHECKING:
    from ..host import WindowHost

SESSION_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
SENSOR_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2


class SessionTree(QtWidgets.QTreeWidget):
    """Sessions (top level) and their sensors; a drop target for sensor drags."""

    sensorsDropped = QtCore.Signal(str, list)  # session id, sensor ids
    sensorsRemoved = QtCore.Signal(str, list)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("sessionTree")
        self.setHeaderLabels(["Session / sensor", "State"])
        self.setAcceptDrops(True)
        self.setDragEnabled(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QtWidgets.QAbstractItemView.DragDropMode.DragDrop)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.header().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)

    def session_at(self, pos: QtCore.QPoint) -> str | None:
        item = self.itemAt(pos)
        while item is not None and item.data(0, SESSION_ROLE) is None:
            item = item.parent()
        if item is None:  # dropped on empty space: the only/current session
            return None
        return str(item.data(0, SESSION_ROLE))

    def _accepts(self, event: QtGui.QDropEvent) -> bool:
        return event.mimeData().hasFormat(SENSORS_MIME)

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if self._accepts(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:
        if self._accepts(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        ids, _ = read_sensors(event.mimeData())
        target = self.session_at(event.position().toPoint())
        if not ids:
            event.ignore()
            return
        event.acceptProposedAction()
        self.sensorsDropped.emit(target or "", ids)

    def selected_session_sensors(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for item in self.selectedItems():
            sid = item.data(0, SENSOR_ROLE)
            parent = item.parent()
            if sid and parent is not None:
                out.setdefault(str(parent.data(0, SESSION_ROLE)), []).append(str(sid))
        return out

    def startDrag(self, actions: QtCore.Qt.DropAction) -> None:
        """Dragging sensors out of a session: dropped anywhere that does not take them → removed."""
        chosen = self.selected_session_sensors()
        if len(chosen) != 1:
            return
        session_id, ids = next(iter(chosen.items()))
        drag = QtGui.QDrag(self)
        drag.setMimeData(sensors_mime(ids, SESSION_SENSORS_MIME, session_id))
        if drag.exec(QtCore.Qt.DropAction.MoveAction) == QtCore.Qt.DropAction.IgnoreAction:
            self.sensorsRemoved.emit(session_id, ids)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if event.key() in (QtCore.Qt.Key.Key_Delete, QtCore.Qt.Key.Key_Backspace):
            for session_id, ids in self.selected_session_sensors().items():
                self.sensorsRemoved.emit(session_id, ids)
            event.accept()
            return
        super().keyPressEvent(event)


class SessionsPanel(QtWidgets.QWidget):
    def __init__(self, window: WindowHost) -> None:
        super().__init__()
        self.main_window = window
        self.model = window.model.sessions
        self.tree = SessionTree()
        self.hint = empty_label("Create a session, then drag sensors from the device tree onto it.")
        self.new_button = QtWidgets.QPushButton("New session")
        self.new_button.clicked.connect(self.new_session)
        self.fields: dict[str, QtWidgets.QLineEdit | QtWidgets.QPlainTextEdit] = {}
        # two fields a row: the device tree above keeps its room on a 768-px screen
        form = QtWidgets.QGridLayout()
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        for k, name in enumerate(METADATA_FIELDS):
            w: QtWidgets.QLineEdit | QtWidgets.QPlainTextEdit
            if name == "notes":
                w = QtWidgets.QPlainTextEdit()
                w.setFixedHeight(40)
                form.addWidget(QtWidgets.QLabel("Notes"), 2, 0)
                form.addWidget(w, 2, 1, 1, 3)
            else:
                w = QtWidgets.QLineEdit()
                w.editingFinished.connect(self._save_metadata)
                form.addWidget(QtWidgets.QLabel(name.capitalize()), k // 2, 2 * (k % 2))
                form.addWidget(w, k // 2, 2 * (k % 2) + 1)
            w.setObjectName(f"session_{name}")
            self.fields[name] = w
        self.bids = QtWidgets.QLabel()
        self.bids.setObjectName("bidsName")
        self.bids.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addWidget(QtWidgets.QLabel("File name"), 3, 0)
        form.addWidget(self.bids, 3, 1, 1, 3)
        self.marker_text = QtWidgets.QLineEdit()
        self.marker_text.setPlaceholderText("marker text (Enter) — or press 1…9")
        self.marker_text.returnPressed.connect(self._text_marker)
        self.marker_button = QtWidgets.QPushButton("Marker")
        self.marker_button.clicked.connect(lambda: self.marker("marker"))
        self.marker_log = QtWidgets.QLabel("")
        self.marker_log.setObjectName("markerLog")
        self.marker_list = QtWidgets.QTreeWidget()
        self.marker_list.setObjectName("markerList")
        self.marker_list.setHeaderLabels(["time", "marker", "source"])
        self.marker_list.setRootIsDecorated(False)
        self.marker_list.setUniformRowHeights(True)
        self.marker_list.setMinimumHeight(90)
        self.marker_list.setToolTip("The current session's markers from every source: this window, the CLI, "
                                    "LabRecorder/Pupil remote control and LSL marker streams")  # fmt: skip
        markers = QtWidgets.QHBoxLayout()
        markers.addWidget(self.marker_text, 1)
        markers.addWidget(self.marker_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.hint, 1)
        top.addWidget(self.new_button)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addLayout(form)
        layout.addLayout(markers)
        layout.addWidget(self.marker_log)
        layout.addWidget(self.marker_list, 1)
        self.tree.sensorsDropped.connect(self._dropped)
        self.tree.sensorsRemoved.connect(lambda sid, ids: window.spawn(self.model.remove_sensors(sid, ids)))
        self.tree.currentItemChanged.connect(self._current_changed)
        self.tree.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.fields["notes"].textChanged.connect(self._notes_changed)
        self.model.changed.connect(self.show_sessions)
        self.model.markers_changed.connect(self._markers_changed)
        self.model.error.connect(self._error)
        self._notes_timer = QtCore.QTimer(self, singleShot=True, interval=800)
        self._notes_timer.timeout.connect(self._save_metadata)
        self._loading = False

    def _error(self, message: str) -> None:
        """A refused action (marker while nothing records, Record without sensors…): said here
        and in the window's status bar."""
        self.hint.setText(f"⚠ {message}")
        self.main_window.statusBar().showMessage(f"⚠ {message}", 15_000)

    def shown_sensors(self) -> list[str]:
        s = self.model.session(self.model.current or "")
        return list(s.sensors) if s else []

    # -- actions -----------------------------------------------------------------------------
    def session_menu(self, session_id: str) -> QtWidgets.QMenu:
        """Record / stop / export / delete for one session (its right-click menu)."""
        s = self.model.session(session_id)
        menu = QtWidgets.QMenu(self)
        recording = s is not None and s.state == "recording"
        record = menu.addAction("Record", lambda: self.main_window.spawn(self.model.start_recording(session_id)))
        record.setEnabled(s is not None and bool(s.sensors) and s.state == "idle")
        stop = menu.addAction("Stop", lambda: self.main_window.spawn(self.model.stop_recording(session_id)))
        stop.setEnabled(recording)
        directory = self.model.recording_directory(session_id)
        export = menu.addAction("Export recording…", lambda: self.main_window.export_recording(directory))
        export.setEnabled(directory is not None and not recording)
        menu.addSeparator()
        delete = menu.addAction("Delete session", lambda: self.main_window.spawn(self.model.delete(session_id)))
        delete.setEnabled(not recording)
        return menu

    def _context_menu(self, pos: QtCore.QPoint) -> None:
        item = self.tree.itemAt(pos)
        while item is not None and item.data(0, SESSION_ROLE) is None:
            item = item.parent()
        if item is not None:
            self.session_menu(str(item.data(0, SESSION_ROLE))).exec(self.tree.viewport().mapToGlobal(pos))

    def new_session(self) -> None:
        current = self.model.session(self.model.current or "")
        meta = {k: getattr(current, k) for k in ("participant", "session", "task")} if current else {}
        if current and current.run.isdigit():
            meta["run"] = f"{int(current.run) + 1:0{len(current.run)}d}"
        self.main_window.spawn(self.model.create(**meta))

    def _dropped(self, session_id: str, sensor_ids: list[str]) -> None:
        target = session_id or self.model.current
        if target is None:
            self.hint.setText("⚠ Create a session first, then drop sensors on it.")
            return
        self.main_window.spawn(self.model.add_sensors(target, sensor_ids))

    def marker(self, label: str) -> None:
        self.main_window.spawn(self._marker(label))

    def focus_marker_text(self) -> None:
        """Ctrl+K: the marker text gets the keyboard (what is typed next is the marker's label)."""
        self.marker_text.setFocus(QtCore.Qt.FocusReason.ShortcutFocusReason)
        self.marker_text.selectAll()

    async def _marker(self, label: str) -> None:
        m = await self.model.marker(label)
        if m is None:
            return
        s = self.model.session(self.model.current or "")
        n = self.model.markers_set.get(self.model.current or "", 0)
        t = float(m["t_global"])
        when = f"+{t - s.started:.3f} s" if s is not None and s.started else clock_text(t)
        self.marker_log.setText(f"marker #{n} “{label}” at {when} ({m['clock']} clock)")
        self.marker_log.setStyleSheet("")

    def _text_marker(self) -> None:
        text = self.marker_text.text().strip()
        if text:
            self.marker(text)
            self.marker_text.clear()

    def _current_changed(self, item: QtWidgets.QTreeWidgetItem | None, _prev: object) -> None:
        while item is not None and item.data(0, SESSION_ROLE) is None:
            item = item.parent()
        if item is not None:
            self.model.current = str(item.data(0, SESSION_ROLE))
            self._load_form()
            self.show_markers()
            self.main_window.spawn(self.model.refresh_markers(self.model.current))

    def _markers_changed(self, session_id: str) -> None:
        if session_id == self.model.current:
            self.show_markers()

    def _notes_changed(self) -> None:
        if not self._loading:
            self._notes_timer.start()

    def commit(self) -> None:
        """Save what is typed in the form now (before Record takes the session's name)."""
        self._save_metadata()

    def _save_metadata(self) -> None:
        if self._loading or not self.model.current:
            return
        meta = {
            k: (w.toPlainText() if isinstance(w, QtWidgets.QPlainTextEdit) else w.text()).strip()
            for k, w in self.fields.items()
        }
        s = self.model.session(self.model.current)
        if s is not None and s.state == "recording":  # the name is fixed while it records
            meta = {"notes": meta["notes"]}
        if s is not None and any(getattr(s, k) != v for k, v in meta.items()):
            self.main_window.spawn(self.model.update_metadata(self.model.current, **meta))

    # -- view --------------------------------------------------------------------------------
    def _load_form(self) -> None:
        s = self.model.session(self.model.current or "")
        self._loading = True
        for k, w in self.fields.items():
            value = getattr(s, k) if s else ""
            if isinstance(w, QtWidgets.QPlainTextEdit):  # what is being typed (not saved yet) is kept
                if w.toPlainText() != value and not w.hasFocus() and not self._notes_timer.isActive():
                    w.setPlainText(value)
            elif w.text() != value and not w.hasFocus():
                w.setText(value)
            locked = s is not None and s.state == "recording" and k != "notes"
            w.setEnabled(s is not None)
            w.setReadOnly(locked)
            w.setToolTip("the recording's name is fixed while it records (notes stay editable)" if locked else "")
        self._loading = False
        self.bids.setText(s.bids_name if s else "")
        recording = s is not None and s.state == "recording"
        self.marker_text.setEnabled(recording)
        self.marker_button.setEnabled(recording)
        self.marker_text.setPlaceholderText("marker text (Enter) — or press 1…9" if recording
                                            else "markers go into a recording: Record first (Ctrl+R)")  # fmt: skip

    def show_sessions(self, sessions: list[Session]) -> None:
        devices = self.main_window.model.devices
        tops = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        expanded = {item.data(0, SESSION_ROLE) for item in tops if item is not None and item.isExpanded()}
        self.tree.clear()
        for s in sessions:
            item = QtWidgets.QTreeWidgetItem([f"{s.bids_name}", s.state])
            item.setData(0, SESSION_ROLE, s.session_id)
            item.setToolTip(0, f"{s.bids_name}\nsession {s.session_id}\n{s.notes}".rstrip())
            item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled)
            self.tree.addTopLevelItem(item)
            for sid in s.sensors:
                info = devices.sensor(sid)
                child = QtWidgets.QTreeWidgetItem([sid, info.attribute if info else "not connected"])
                child.setData(0, SENSOR_ROLE, sid)
                if info is None:
                    child.setForeground(1, state_brush("error"))
                item.addChild(child)
            item.setExpanded(s.session_id in expanded or s.session_id == self.model.current)
            if s.session_id == self.model.current:
                f = item.font(0)
                f.setBold(True)
                item.setFont(0, f)
        if sessions:
            current = self.model.session(self.model.current or "")
            n = len(current.sensors) if current else 0
            self.hint.setText(f"{len(sessions)} session(s); current has {n} sensor(s). Drop sensors on a session.")
        else:
            self.hint.setText("Create a session, then drag sensors from the device tree onto it.")
        self._load_form()

    def show_markers(self) -> None:
        """The current session's markers, oldest first, times from its start (s)."""
        s = self.model.session(self.model.current or "")
        rows = self.model.markers.get(self.model.current or "", [])
        at_end = self.marker_list.verticalScrollBar().value() >= self.marker_list.verticalScrollBar().maximum()
        self.marker_list.clear()
        origin = s.started if s and s.started else None
        items = []
        for m in rows:
            when = f"+{m.t_global - origin:.3f} s" if origin is not None else clock_text(m.t_global)
            item = QtWidgets.QTreeWidgetItem([when, m.label, m.source])
            item.setToolTip(1, f"{m.label}\nglobal {m.t_global:.6f} s ({m.clock or '?'} clock)"
                               f"\nsender's time {m.t_original or '?'} ({m.clock_original or '?'} clock)")  # fmt: skip
            items.append(item)
        self.marker_list.addTopLevelItems(items)
        for col in (0, 2):
            self.marker_list.resizeColumnToContents(col)
        if at_end:
            self.marker_list.scrollToBottom()


def clock_text(t: float) -> str:
    """``HH:MM:SS.mmm`` local time of ``t`` (s, epoch-based global clock); ``?`` if not finite."""
    if not math.isfinite(t):
        return "?"
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"


def _numbered_marker(n: int) -> PanelAction:
    return PanelAction("", f"Marker {n}", lambda panel: panel.marker(str(n)), str(n), f"marker {n!r} (digit key)")


PANEL = PanelSpec(
    "sessions", "Sessions", QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, SessionsPanel, order=10,
    actions=(
        PanelAction("&Session", "&New session", SessionsPanel.new_session, "Ctrl+N",
                    "a new session: next run number, the same sensors"),
        # Ctrl+K, not Ctrl+M: Cmd+M minimizes on macOS
        PanelAction("&Session", "&Marker…", lambda panel: panel.focus_marker_text(), "Ctrl+K",
                    "type a marker's text (Enter puts it into the recording)"),
        *(_numbered_marker(n) for n in range(1, 10)),
    ),
)  # fmt: skip
