"""Devices panel: a tree by transport → device → sensor with rate and state."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ...viewmodel.devices import TRANSPORTS, DeviceTree, DeviceTreeModel
from ..mime import SENSORS_MIME, sensors_mime
from ..style import state_brush

SENSOR_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
DEVICE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2


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

    def __init__(self, model: DeviceTreeModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.tree = SensorTree()
        self.tree.setObjectName("deviceTree")
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QtWidgets.QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setHeaderLabels(["Device / sensor", "Rate", "Status"])
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.message = QtWidgets.QLabel("Waiting for devices…")
        self.message.setWordWrap(True)
        self.message.setObjectName("devicesMessage")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.message)
        layout.addWidget(self.tree)
        self._groups: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._devices: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._sensors: dict[str, QtWidgets.QTreeWidgetItem] = {}
        for key, label in TRANSPORTS:
            item = QtWidgets.QTreeWidgetItem([label, "", ""])
            item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsSelectable & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled)
            self.tree.addTopLevelItem(item)
            self._groups[key] = item
        self.tree.itemSelectionChanged.connect(self._on_selection)
        model.changed.connect(self.show_tree)

    def _group(self, transport: str) -> QtWidgets.QTreeWidgetItem:
        if transport not in self._groups:
            item = QtWidgets.QTreeWidgetItem([transport.title(), "", ""])
            self.tree.addTopLevelItem(item)
            self._groups[transport] = item
        return self._groups[transport]

    def show_tree(self, tree: DeviceTree) -> None:
        """Update items in place so selection and expansion survive refreshes."""
        if tree.error:
            self.message.setText(f"⚠ {tree.error}")
            self.message.setStyleSheet("color: #c62828")
        elif tree.device_count() == 0:
            self.message.setText("No devices yet: start a node or the simulated lab.")
            self.message.setStyleSheet("")
        else:
            self.message.setText(f"{tree.device_count()} devices, {len(tree.sensors)} sensors")
            self.message.setStyleSheet("")
        seen_devices: set[str] = set()
        seen_sensors: set[str] = set()
        for transport, rows in tree.groups.items():
            group = self._group(transport)
            group.setText(1, "")
            group.setText(2, f"{len(rows)}" if rows else "none")
            for row in rows:
                did = row.status.device_id
                seen_devices.add(did)
                ditem = self._devices.get(did)
                if ditem is None:
                    ditem = QtWidgets.QTreeWidgetItem(group)
                    ditem.setData(0, DEVICE_ROLE, did)
                    ditem.setFlags(
                        ditem.flags() & ~QtCore.Qt.ItemFlag.ItemIsSelectable & ~QtCore.Qt.ItemFlag.ItemIsDragEnabled
                    )
                    self._devices[did] = ditem
                    group.setExpanded(True)
                    ditem.setExpanded(True)
                ditem.setText(0, row.status.name)
                ditem.setText(2, row.state)
                ditem.setForeground(2, state_brush(row.state))
                ditem.setToolTip(0, f"{row.status.uri}\nnode {row.status.node_id}\n{row.detail}")
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
                    sitem.setText(1, f"{srow.rate:.1f}{nominal} Hz")
                    rstate = srow.rate_state
                    sitem.setText(2, rstate)
                    sitem.setForeground(2, state_brush("streaming" if rstate == "ok" else "reconnecting"))
                    sitem.setToolTip(0, f"{info.channel_count} channels: {', '.join(info.channel_names[:12])}"
                                        + (" …" if info.channel_count > 12 else ""))  # fmt: skip
        for sid in set(self._sensors) - seen_sensors:
            item = self._sensors.pop(sid)
            parent = item.parent()
            if parent is not None:
                parent.removeChild(item)
        for did in set(self._devices) - seen_devices:
            item = self._devices.pop(did)
            parent = item.parent()
            if parent is not None:
                parent.removeChild(item)

    def sensor_item(self, sensor_id: str) -> QtWidgets.QTreeWidgetItem | None:
        return self._sensors.get(sensor_id)

    def selected_sensors(self) -> list[str]:
        return [it.data(0, SENSOR_ROLE) for it in self.tree.selectedItems() if it.data(0, SENSOR_ROLE)]

    def _on_selection(self) -> None:
        self.sensorsSelected.emit(self.selected_sensors())
