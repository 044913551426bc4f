"""Devices panel: a tree by transport → device → sensor with rate and state."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6 import QtCore, QtWidgets

from ...core.quality import quality_text
from ...viewmodel.devices import TRANSPORTS, DeviceControl, DeviceTree, DeviceTreeModel
from ..mime import SENSORS_MIME, sensors_mime
from ..style import state_brush, text_style

SENSOR_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
DEVICE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2
AVAILABLE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 3  # URI of a discovered, unconnected device
NODE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 4
URI_ROLE = QtCore.Qt.ItemDataRole.UserRole + 5
FAILED_ROLE = QtCore.Qt.ItemDataRole.UserRole + 6  # URI of a connect the node refused
GROUP_OF_SCHEME = {"sim": "simulated"}
KNOWN_SCHEMES = ("sim", "ble", "serial", "camera", "lsl", "ws")
#: sensor health state → the device-state colour it is drawn in (green, amber, red)
#: how long an outcome (discovery result, connect answer) stays in the panel's message line
#: before the device and sensor counts take it back (s)
OUTCOME_S = 15.0
QUALITY_COLOUR = {"good": "streaming", "suspect": "reconnecting", "bad": "error", "learning": "idle"}
SENSOR_STATE_COLOUR = {"ok": "streaming", "stale": "reconnecting", "no data": "error", "waiting": "connecting"}


class SensorTree(QtWidgets.QTreeWidget):
    """The device tree; dragging selected sensors carries their ids (to sessions, plots)."""

    def mimeTypes(self) -> list[str]:
        return [SENSORS_MIME]

    def mimeData(self, items: list[QtWidgets.QTreeWidgetItem]) -> QtCore.QMimeData:  # type: ignore[override]
        ids = [it.data(0, SENSOR_ROLE) for it in items if it.data(0, SENSOR_ROLE)]
        return sensors_mime(ids)


class DevicesPanel(QtWidgets.QWidget):
    """Shows :class:`DeviceTreeModel`; emits ``sensorsSelected`` with sensor ids."""

    sensorsSelected = QtCore.Signal(list)
    #: a one-line outcome for the status bar (connect/disconnect answers, failures)
    statusMessage = QtCore.Signal(str)

    def __init__(
        self,
        model: DeviceTreeModel,
        control: DeviceControl | None = None,
        spawn: Callable[[Coroutine[Any, Any, Any]], None] | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.control = control
        self.spawn = spawn
        self.tree = SensorTree()
        self.tree.setObjectName("deviceTree")
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QtWidgets.QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setHeaderLabels(["Device / sensor", "Rate", "Status", "Quality"])
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        if (quality_header := self.tree.headerItem()) is not None:
            quality_header.setToolTip(3, "Signal quality learned from each sensor's own history: good, suspect or "
                                         "bad with the reason (flat, clipped, nan, jump, noise, drift, dropout); "
                                         "learning while it learns what normal is")  # fmt: skip
        self.message = QtWidgets.QLabel("Waiting for devices…")
        self._outcome_until = 0.0
        self.message.setWordWrap(True)
        self.message.setObjectName("devicesMessage")
        self.discover_button = QtWidgets.QPushButton("Discover")
        self.discover_button.setToolTip("Ask this PC's node to scan every transport (BLE, serial, cameras, LSL)")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.uri_edit = QtWidgets.QLineEdit()
        self.uri_edit.setPlaceholderText("device URI, e.g. serial:/dev/ttyUSB0?baud=115200")
        self.connect_button = QtWidgets.QPushButton("Connect")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.discover_button)
        bar.addWidget(self.progress, 1)
        uri_bar = QtWidgets.QHBoxLayout()
        uri_bar.addWidget(self.uri_edit, 1)
        uri_bar.addWidget(self.connect_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addLayout(uri_bar)
        layout.addWidget(self.message)
        layout.addWidget(self.tree)
        self._available: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._failed: dict[str, QtWidgets.QTreeWidgetItem] = {}  # URI → row of a connect that failed
        self._unavailable: dict[str, str] = {}  # transport group → why (from the last discovery)
        self.tree.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.discover_button.clicked.connect(self.discover)
        self.connect_button.clicked.connect(lambda: self.connect_uri(self.uri_edit.text().strip()))
        self.uri_edit.returnPressed.connect(lambda: self.connect_uri(self.uri_edit.text().strip()))
        if control is not None:
            control.discovery_changed.connect(self.show_discovery)
            control.error.connect(self._error)
            control.result.connect(self.show_result)
        else:
            for w in (self.discover_button, self.uri_edit, self.connect_button):
                w.setEnabled(False)
        self._groups: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._devices: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._sensors: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._connectors: dict[str, QtWidgets.QTreeWidgetItem] = {}  # network connector name → item
        for key, label in TRANSPORTS:
            item = QtWidgets.QTreeWidgetItem([label, "", ""])
            item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsSelectable & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled)
            self.tree.addTopLevelItem(item)
            self._groups[key] = item
        self.tree.itemSelectionChanged.connect(self._on_selection)
        model.changed.connect(self.show_tree)

    def _connector(self, group: QtWidgets.QTreeWidgetItem, name: str) -> QtWidgets.QTreeWidgetItem:
        """The item a network connector's sensors hang under (made on first use)."""
        item = self._connectors.get(name)
        if item is None:
            item = self._connectors[name] = QtWidgets.QTreeWidgetItem(group, [name, "", "connector"])
            item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsSelectable & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled)
            item.setExpanded(True)
            group.setExpanded(True)
        return item

    def _group(self, transport: str) -> QtWidgets.QTreeWidgetItem:
        if transport not in self._groups:
            item = QtWidgets.QTreeWidgetItem([transport.title(), "", ""])
            self.tree.addTopLevelItem(item)
            self._groups[transport] = item
        return self._groups[transport]

    def show_tree(self, tree: DeviceTree) -> None:
        """Update items in place so selection and expansion survive refreshes. The columns that
        fit their contents are fitted once per refresh, not once per changed cell (with 500
        sensors that was 3000 re-measurements of the whole tree: 7 s a refresh)."""
        header = self.tree.header()
        mode = QtWidgets.QHeaderView.ResizeMode
        fitted = [col for col in (1, 2) if header.sectionResizeMode(col) == mode.ResizeToContents]
        for col in fitted:
            header.setSectionResizeMode(col, mode.Interactive)
        try:
            self._show_tree(tree)
        finally:
            for col in fitted:
                header.setSectionResizeMode(col, mode.ResizeToContents)

    def _show_tree(self, tree: DeviceTree) -> None:
        if tree.error:
            self.message.setText(f"⚠ {tree.error}")
            self.message.setStyleSheet(text_style("error"))
        elif tree.device_count() == 0:
            self.message.setText("No devices yet: start a node or the simulated lab.")
            self.message.setStyleSheet("")
        elif time.monotonic() >= self._outcome_until:  # an outcome (discovery, connect) stays readable
            offline = sum(r.stale for rows in tree.groups.values() for r in rows)
            hint = f" ({offline} offline: right-click → Forget)" if offline else ""
            self.message.setText(f"{tree.device_count() - offline} devices{hint}, {len(tree.sensors)} sensors")
            self.message.setStyleSheet("")
        seen_devices: set[str] = set()
        seen_sensors: set[str] = set()
        for transport, rows in tree.groups.items():
            group = self._group(transport)
            group.setText(1, "")
            problem = self._unavailable.get(transport)
            group.setText(2, f"{len(rows)}" if rows else ("unavailable" if problem else "none"))
            group.setToolTip(2, problem or "")
            group.setForeground(2, state_brush("unavailable" if problem and not rows else "idle"))
            for row in rows:
                did = row.status.device_id
                seen_devices.add(did)
                ditem = self._devices.get(did)
                parent = self._connector(group, row.network["connector"]) if row.network.get("connector") else group
                if ditem is not None and ditem.parent() is not parent:  # renamed connector: move it
                    old = ditem.parent()
                    if old is not None:
                        old.removeChild(ditem)
                    parent.addChild(ditem)
                if ditem is None:
                    ditem = QtWidgets.QTreeWidgetItem(parent)
                    ditem.setData(0, DEVICE_ROLE, did)
                    ditem.setData(0, NODE_ROLE, row.status.node_id)
                    ditem.setData(0, URI_ROLE, row.status.uri)
                    ditem.setFlags(
                        ditem.flags() & ~QtCore.Qt.ItemFlag.ItemIsSelectable & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled
                    )
                    self._devices[did] = ditem
                    group.setExpanded(True)
                    ditem.setExpanded(True)
                ditem.setText(0, row.status.name)
                ditem.setText(1, row.backpressure_text)
                ditem.setText(2, row.state)
                ditem.setForeground(2, state_brush(row.state))
                ditem.setToolTip(0, f"{row.status.name}\n{row.status.uri}\nnode {row.status.node_id}\n{row.detail}")
                ditem.setToolTip(2, row.detail or row.state)
                for srow in row.sensors:
                    sid = srow.info.sensor_id
                    seen_sensors.add(sid)
                    sitem = self._sensors.get(sid)
                    if sitem is None:
                        sitem = QtWidgets.QTreeWidgetItem(ditem)
                        sitem.setData(0, SENSOR_ROLE, sid)
                        sitem.setFlags(sitem.flags() | QtCore.Qt.ItemFlag.ItemIsDragEnabled)
                        self._sensors[sid] = sitem
                    info = srow.info
                    sitem.setText(0, f"{info.attribute}  ({info.sensor_id})")
                    nominal = f" / {srow.nominal:g}" if srow.nominal > 0 else ""
                    health = srow.health
                    sitem.setText(1, f"{health.rate:.1f}{nominal} Hz")
                    sitem.setText(2, health.text)
                    sitem.setToolTip(2, f"{health.state}: {health.text}")
                    sitem.setForeground(2, state_brush(SENSOR_STATE_COLOUR.get(health.state, "reconnecting")))
                    self._show_quality(sitem, srow.quality)
                    sitem.setToolTip(0, f"{info.attribute} ({info.sensor_id}) of {row.status.name}\n"
                                        f"{info.channel_count} channels: {', '.join(info.channel_names[:12])}"
                                        + (" …" if info.channel_count > 12 else ""))  # fmt: skip
        for sid in set(self._sensors) - seen_sensors:
            gone = self._sensors.pop(sid)
            if (holder := gone.parent()) is not None:
                holder.removeChild(gone)
        for did in set(self._devices) - seen_devices:
            gone = self._devices.pop(did)
            if (holder := gone.parent()) is not None:
                holder.removeChild(gone)
        for key, item in list(self._connectors.items()):
            if item.childCount() == 0:
                self._connectors.pop(key)
                if (holder := item.parent()) is not None:
                    holder.removeChild(item)

        self._drop_available_connected()

    # -- discovery, connect, disconnect --------------------------------------------------------
    def _show_quality(self, item: QtWidgets.QTreeWidgetItem, q: dict[str, Any]) -> None:
        """Column 3: the sensor's quality state (reason beside a suspect/bad one), the whole
        verdict as its tooltip; empty for sensors that are not scored (events, text)."""
        if not q:
            item.setText(3, "")
            item.setToolTip(
                3,
                "not scored: the quality rules judge continuous physiological, motion and "
                "environment signals (ECG, EEG, EMG, respiration, IMU, temperature, …)",
            )
            return
        state, reason = str(q.get("state", "")), str(q.get("reason") or "")
        item.setText(3, f"{state}: {reason}" if reason and state in ("suspect", "bad") else state)
        item.setToolTip(3, quality_text(q))
        item.setForeground(3, state_brush(QUALITY_COLOUR.get(state, "idle")))

    def _run(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self.spawn is not None:
            self.spawn(coro)
        else:
            coro.close()

    def _say(self, text: str) -> None:
        """An outcome for the operator: shown for :data:`OUTCOME_S` before the tree's counts return."""
        self.message.setText(text)
        self._outcome_until = time.monotonic() + OUTCOME_S

    def _error(self, message: str) -> None:
        self._say(f"⚠ {message}")
        self.message.setStyleSheet(text_style("error"))
        self.statusMessage.emit(message)

    def show_result(self, op: str, ok: bool, message: str, target: str) -> None:
        """A node's answer to connect/disconnect: a failed connect gets a ``failed`` row under
        its transport (tooltip: why) until the device shows up or the row is dismissed."""
        if not ok:
            self._error(f"{op} {target}: {message}")
            if op == "connect" and target not in self._connected_uris():
                self._failed_row(target, message)
            return
        self._say(message)
        self.message.setStyleSheet("")
        self.statusMessage.emit(message)
        self.dismiss_failed(target)

    def _failed_row(self, uri: str, why: str) -> None:
        item = self._failed.get(uri)
        if item is None:
            scheme = uri.partition(":")[0].lower()
            group = self._group(GROUP_OF_SCHEME.get(scheme, scheme) if scheme in KNOWN_SCHEMES else "other")
            item = QtWidgets.QTreeWidgetItem(group, [uri, "", "failed"])
            item.setData(0, FAILED_ROLE, uri)
            item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled & ~QtCore.Qt.ItemFlag.ItemIsSelectable)
            item.setForeground(2, state_brush("error"))
            group.setExpanded(True)
            self._failed[uri] = item
        item.setToolTip(0, f"{uri}\n{why}")
        item.setToolTip(2, why)

    def dismiss_failed(self, uri: str) -> None:
        item = self._failed.pop(uri, None)
        if item is not None and (parent := item.parent()) is not None:
            parent.removeChild(item)

    def discover(self) -> None:
        """Discover, or Stop a running discovery (the same button)."""
        if self.control is not None and self.control.discovery.get("state") == "running":
            self.discover_button.setEnabled(False)
            self._run(self.control.stop_discovery())
            return
        if self.control is not None:
            self.progress.setValue(0)
            self.progress.setFormat("asking the node…")
            self.progress.show()
            self.discover_button.setEnabled(False)
            self._run(self.control.discover())

    def connect_uri(self, uri: str) -> None:
        if self.control is not None and uri:
            self._say(f"connecting {uri}…")
            self._run(self.control.connect(uri))

    def show_discovery(self, d: dict[str, Any]) -> None:
        running = d.get("state") == "running"
        self.progress.setVisible(running)
        self.discover_button.setEnabled(True)
        self.discover_button.setText("Stop discovery" if running else "Discover")
        self.progress.setValue(int(100 * float(d.get("progress", 0.0))))
        self.progress.setFormat(f"%p% {d.get('message', '')}")
        if running:
            return
        if d.get("state") == "failed":  # the node never answered or went silent: what was offered stays
            self._error(str(d.get("message", "discovery failed")))
            return
        connected = self._connected_uris()
        for item in self._available.values():
            parent = item.parent()
            if parent is not None:
                parent.removeChild(item)
        self._available.clear()
        self._unavailable.clear()
        for desc in d.get("found", []):
            key = GROUP_OF_SCHEME.get(desc["transport"], desc["transport"])
            group = self._group(key)
            if not desc.get("available", True):
                self._unavailable[key] = desc.get("error", "unavailable")
                group.setText(2, "unavailable")
                group.setToolTip(2, self._unavailable[key])
                group.setForeground(2, state_brush("unavailable"))
                continue
            if desc.get("connected") or desc["uri"] in connected:
                continue
            item = QtWidgets.QTreeWidgetItem(group, [desc["name"], "", "available"])
            item.setData(0, AVAILABLE_ROLE, desc["uri"])
            item.setToolTip(0, f"{desc['uri']}\n" + "\n".join(f"{k}: {v}" for k, v in desc.get("details", {}).items()))
            item.setForeground(0, state_brush("idle"))
            item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled & ~QtCore.Qt.ItemFlag.ItemIsSelectable)
            group.setExpanded(True)
            self._available[desc["uri"]] = item
        if d.get("state") == "stopped":
            self._say("discovery stopped before it finished: nothing new is offered")
        else:
            self._say(f"discovery: {d.get('message', '')}; double-click an available device to connect it")

    def _connected_uris(self) -> set[str]:
        return {str(item.data(0, URI_ROLE)) for item in self._devices.values()}

    def _drop_available_connected(self) -> None:
        connected = self._connected_uris()
        for uri in [u for u in self._failed if u in connected]:  # the device row says it now
            self.dismiss_failed(uri)
        for uri in [u for u in self._available if u in connected]:
            item = self._available.pop(uri)
            if (parent := item.parent()) is not None:
                parent.removeChild(item)

    def _double_clicked(self, item: QtWidgets.QTreeWidgetItem, _col: int) -> None:
        uri = item.data(0, AVAILABLE_ROLE)
        if uri:
            self.connect_uri(str(uri))

    def _context_menu(self, pos: QtCore.QPoint) -> None:
        item = self.tree.itemAt(pos)
        if item is None or self.control is None:
            return
        menu = QtWidgets.QMenu(self)
        uri = item.data(0, AVAILABLE_ROLE)
        did = item.data(0, DEVICE_ROLE)
        failed = item.data(0, FAILED_ROLE)
        if failed:
            menu.addAction("Retry", lambda: self.connect_uri(str(failed)))
            menu.addAction("Dismiss", lambda: self.dismiss_failed(str(failed)))
        elif uri:
            menu.addAction("Connect", lambda: self.connect_uri(str(uri)))
        elif did:
            node = str(item.data(0, NODE_ROLE))
            if item.text(2) == "offline":
                menu.addAction("Forget", lambda: self.forget_device(str(did)))
            else:
                menu.addAction("Disconnect", lambda: self.disconnect_device(str(did), node))
        if not menu.isEmpty():
            menu.exec(self.tree.viewport().mapToGlobal(pos))

    def disconnect_device(self, device_id: str, node_id: str) -> None:
        if self.control is not None:
            self._say(f"disconnecting {device_id}…")
            self._run(self.control.disconnect(device_id, node_id))

    def forget_device(self, device_id: str) -> None:
        """Take an offline device (and its sensors) out of the lab's registry."""
        if self.control is not None:
            self._say(f"forgetting {device_id}…")
            self._run(self.control.forget(device_id))

    def sensor_item(self, sensor_id: str) -> QtWidgets.QTreeWidgetItem | None:
        return self._sensors.get(sensor_id)

    def selected_sensors(self) -> list[str]:
        return [it.data(0, SENSOR_ROLE) for it in self.tree.selectedItems() if it.data(0, SENSOR_ROLE)]

    def _on_selection(self) -> None:
        self.sensorsSelected.emit(self.selected_sensors())
