"""Election panel: nodes, priorities, heartbeats, leader, term, the last checkpoint and its ACKs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from ...viewmodel.lab import LabSnapshot
from ..widgets import RowTable, empty_label
from . import PanelSpec

if TYPE_CHECKING:
    from ..main_window import MainWindow


class ElectionPanel(QtWidgets.QWidget):
    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.summary = empty_label("No node has reported yet.")
        self.checkpoint = empty_label("")
        self.table = RowTable(["node", "role", "priority", "heartbeat", "host", "queue", "worker lag"])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.checkpoint)
        layout.addWidget(self.table, 1)
        window.model.lab.changed.connect(self.render)

    def render(self, snap: LabSnapshot) -> None:
        st = snap.status
        nodes = st.get("nodes") or {}
        if snap.error:
            self.summary.setText(f"⚠ {snap.error}")
        elif not nodes:
            self.summary.setText("No node has reported yet: start one (sensorium node) or the simulated lab.")
        else:
            alive = sum(1 for n in nodes.values() if n.get("alive"))
            leader = snap.leader or "(none)"
            self.summary.setText(f"Leader <b>{leader}</b> · term <b>{snap.term}</b> · {alive}/{len(nodes)} nodes alive")
        cp = st.get("checkpoint")
        if cp:
            age = time.time() - float(cp.get("committed_at") or time.time())
            self.checkpoint.setText(
                f"Last committed checkpoint <b>{cp.get('id')}</b> by {cp.get('leader')}, {age:.1f} s ago; "
                f"ACKs {', '.join(cp.get('acks') or [])} of {cp.get('live_nodes', '?')} live nodes"
            )
        else:
            self.checkpoint.setText("No checkpoint committed yet (the leader proposes one every few seconds).")
        rows, colours = [], []
        for nid, n in nodes.items():
            role = "leader" if nid == snap.leader else "follower"
            age = n.get("heartbeat_age_s")
            tele = n.get("telemetry") or {}
            lag = (n.get("worker") or {}).get("lag_s")
            rows.append([
                nid, role, str(n.get("priority", n.get("info", {}).get("priority", "?"))),
                f"{age:.1f} s ago" if age is not None else ("alive" if n.get("alive") else "DOWN"),
                str(n.get("info", {}).get("host", "")), str(tele.get("queue_depth", "")),
                f"{lag:.2f} s" if isinstance(lag, int | float) else "",
            ])  # fmt: skip
            colours.append("#c62828" if not n.get("alive") else ("#1565c0" if role == "leader" else None))
        self.table.set_rows(rows, colours)


PANEL = PanelSpec(
    "election", "Election", QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, ElectionPanel, "sync", order=50)
