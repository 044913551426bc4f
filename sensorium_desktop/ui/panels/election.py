"""Election panel: nodes, priorities, heartbeats, leader, term, the last checkpoint and its ACKs."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from ...viewmodel.lab import LabSnapshot
from ..style import roles
from ..widgets import RowTable, empty_label
from . import PanelSpec, render_while_visible

if TYPE_CHECKING:
    from ..host import WindowHost


class ElectionPanel(QtWidgets.QWidget):
    def __init__(self, window: WindowHost) -> None:
        super().__init__()
        self.summary = empty_label("No node has reported yet.")
        self.checkpoint = empty_label("")
        self.table = RowTable(["node", "role", "priority", "heartbeat", "host", "queue", "worker lag"])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.checkpoint)
        layout.addWidget(self.table, 1)
        render_while_visible(self, window.model.lab.changed, self.render_snapshot)

    def render_snapshot(self, snap: LabSnapshot) -> None:
        st = snap.status
        nodes = st.nodes
        if snap.error:
            self.summary.setText(f"⚠ {snap.error}")
        elif not nodes:
            self.summary.setText("No node has reported yet: start one (sensorium node) or the simulated lab.")
        else:
            alive = sum(1 for n in nodes.values() if n.alive)
            leader = snap.leader or "(none)"
            self.summary.setText(f"Leader <b>{leader}</b> · term <b>{snap.term}</b> · {alive}/{len(nodes)} nodes alive")
        cp = st.checkpoint
        if cp:
            age = time.time() - (cp.committed_at if math.isfinite(cp.committed_at) else time.time())
            self.checkpoint.setText(
                f"Last committed checkpoint <b>{cp.id}</b> by {cp.leader}, {age:.1f} s ago; "
                f"ACKs {', '.join(cp.acks)} of {cp.live_nodes or '?'} live nodes"
            )
        else:
            self.checkpoint.setText("No checkpoint committed yet (the leader proposes one every few seconds).")
        rows, colours = [], []
        for nid, n in nodes.items():
            role = "leader" if nid == snap.leader else "follower"
            beat = n.heartbeat_age_s
            rows.append([
                nid, role, str(n.priority if n.priority is not None else n.info.get("priority", "?")),
                f"{beat:.1f} s ago" if beat is not None else ("alive" if n.alive else "DOWN"),
                n.host, str(n.telemetry.queue_depth) if n.telemetry else "",
                f"{n.worker.lag_s:.2f} s" if n.worker else "",
            ])  # fmt: skip
            colours.append(roles().error if not n.alive else (roles().accent if role == "leader" else None))
        self.table.set_rows(rows, colours)


PANEL = PanelSpec(
    "election", "Election", QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, ElectionPanel, "sync", order=50
)
