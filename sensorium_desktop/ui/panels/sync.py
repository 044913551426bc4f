"""Sync panel: per clock domain and sensor, the clock's offset, σ, drift, latency, resets and
residual trace; group rate; breathing synchrony (Kuramoto R) between people."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from ...core.clockdomain import format_offset, offset_origin
from ...core.status import host_clock_short
from ...viewmodel.lab import ClockRow, LabSnapshot, breathing_synchrony
from ..style import colour, roles
from ..widgets import RowTable, empty_label
from . import PanelSpec, render_while_visible

if TYPE_CHECKING:
    from ..host import WindowHost

HOLDER = "sync"
MAX_TRACES = 8


COLUMNS = ["clock domain", "sensors", "offset to host", "σ\n(µs)", "drift\n(ppm)", "latency\n(ms)",
           "resets/\nlate", "age\n(s)"]  # fmt: skip
COLUMN_TIPS = [
    "the clock that stamps these sensors (measured: mapped by reading both clocks, not fitted)",
    "the sensors stamped by this clock",
    "host time minus domain time: in ms when both count from the same epoch, else the host time at which "
    "the domain's clock read 0 (t=0 at HH:MM:SS)",
    "1-sigma of the mapping at the newest sample (µs)", "rate error of the clock against the host clock (ppm)",
    "typical delay from the sample to its arrival (ms)",
    "clock resets (device reboots) detected / samples delivered after later ones (reordered), used as late samples",
    "seconds since the last clock update",
]  # fmt: skip
#: the domain and sensors columns are elided beyond these widths (px); tooltips hold the text
ELIDE_WIDTHS = {0: 125, 1: 95}


def domain_rows(clocks: list[ClockRow]) -> list[tuple[str, list[ClockRow]]]:
    """Sensors grouped by clock domain (sorted), one table row each: they share one clock."""
    groups: dict[str, list[ClockRow]] = {}
    for c in sorted(clocks, key=lambda r: (r.domain or r.sensor_id, r.sensor_id)):
        groups.setdefault(c.domain or c.sensor_id, []).append(c)
    return list(groups.items())


def domain_label(domain: str, kind: str) -> str:
    """``node/device:sim-chest`` → ``sim-chest``; ``node/lsl`` → ``lsl (measured)``;
    ``node/arrival:x`` → ``x (no clock)``."""
    name = domain.split("/", 1)[-1]
    if name.startswith("device:"):
        name = name[len("device:") :]
    elif name.startswith("arrival:"):
        name = name[len("arrival:") :] + " (no clock)"
    return name + (" (measured)" if kind == "measured" else "")


def clock_cells(domain: str, members: list[ClockRow]) -> list[str]:
    """The table row of one clock domain (see :data:`COLUMNS`)."""
    c = members[0]
    ages = [m.updated_age for m in members if math.isfinite(m.updated_age)]
    return [
        domain_label(domain, c.kind), ", ".join(m.attribute for m in members), format_offset(c.offset),
        f"{c.uncertainty * 1e6:.1f}", f"{c.drift_ppm:+.2f}",
        f"{c.latency * 1e3:.1f}" if math.isfinite(c.latency) else "—", f"{c.resets}/{c.late}",
        f"{min(ages):.1f}" if ages else "—",
    ]  # fmt: skip


class SyncPanel(QtWidgets.QWidget):
    """One row per clock domain with its sensors: offset to the host clock, σ, drift,
    transport latency, resets, late deliveries, rate and the age of the last update; beside
    them the residual of each domain's offset around its trend (µs), legend next to the data."""

    def __init__(self, window: WindowHost) -> None:
        super().__init__()
        self.main_window = window
        self.model = window.model
        self.summary = empty_label("No clock states yet: the sync worker writes them once sensors stream.")
        self.hosts = QtWidgets.QLabel()
        self.hosts.setObjectName("hostClocks")
        self.hosts.setWordWrap(True)
        self.hosts.setToolTip("Each PC's host clock → the lab's global clock (Redis TIME): 1-sigma of the fitted "
                              "offset, and ½ of the fastest round trip — an asymmetric route can shift the offset "
                              "by up to that, and no round trip can reveal it")  # fmt: skip
        self.table = RowTable(COLUMNS)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        for col, tip in enumerate(COLUMN_TIPS):
            if (header := self.table.horizontalHeaderItem(col)) is not None:
                header.setToolTip(tip)
        self.table.verticalHeader().setDefaultSectionSize(18)
        self.table.verticalHeader().setMinimumSectionSize(16)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("residualPlot")
        left = self.plot.getAxis("left")
        left.enableAutoSIPrefix(False)  # µs stay µs (no "kµs")
        left.setWidth(52)
        self.plot.setLabel("left", "µs")
        self.plot.setLabel("bottom", "seconds ago")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMinimumSize(220, 120)
        self.legend = QtWidgets.QLabel()
        self.legend.setObjectName("residualLegend")
        self.legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.legend.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.legend.setMinimumWidth(0)
        self.legend.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.legend.setStyleSheet("font-size: 8pt")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.kuramoto = float("nan")
        traces = QtWidgets.QWidget()
        tl = QtWidgets.QHBoxLayout(traces)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.plot, 3)
        tl.addWidget(self.legend, 2)
        self.plot.setMinimumSize(150, 80)
        self.split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.split.addWidget(self.table)
        self.split.addWidget(traces)
        self.split.setChildrenCollapsible(False)
        self._fitted_rows = -1
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.hosts)
        layout.addWidget(self.split, 1)
        render_while_visible(self, self.model.lab.changed, self.render_snapshot)

    def _fit_rows(self, n: int) -> None:
        """Give the table the height of all its rows when the panel has it, the residual plot
        the rest (at least its minimum: on a small screen the table scrolls, it never covers
        the plot)."""
        if self._fitted_rows == n:
            return
        self._fitted_rows = n
        header = self.table.horizontalHeader().height() + 6
        row = self.table.verticalHeader().defaultSectionSize()
        if self.table.horizontalScrollBar().isVisible():
            header += self.table.horizontalScrollBar().height()
        self.table.setMinimumHeight(header + min(n, 2) * row)
        total = sum(self.split.sizes())
        room = total - self.plot.minimumHeight()
        table = max(self.table.minimumHeight(), min(header + n * row, room))
        self.split.setSizes([table, max(total - table, self.plot.minimumHeight())])

    def _breathing(self) -> tuple[float, int]:
        resp = [s for s in self.model.devices.tree.sensors.values() if s.attribute == "respiration"]
        rings = []
        for info in resp:
            sub = self.model.live.subscribe(info, HOLDER)
            t, v = sub.ring.latest()
            rings.append((t, v[:, 0].astype(np.float64) if v.size else v.reshape(-1)))
        return breathing_synchrony(rings), len(resp)

    def render_snapshot(self, snap: LabSnapshot) -> None:
        self.kuramoto, n_resp = self._breathing()
        if math.isnan(self.kuramoto):
            kura = f"breathing sync: needs ≥ 2 respiration sensors with 20 s of data ({n_resp} now)"
        else:
            kura = f"breathing sync (Kuramoto R): <b>{self.kuramoto * 100:.0f}</b> / 100 over {n_resp} people"
        domains = {c.domain for c in snap.clocks}
        if snap.error:
            self.summary.setText(f"⚠ {snap.error}")
        elif not snap.clocks:
            self.summary.setText(f"No clock states yet (the leader's sync worker writes them). {kura}")
        else:
            self.summary.setText(f"{len(domains)} clock domains, {len(snap.clocks)} sensors · groups "
                                 f"{snap.group_rate:.2f}/s · {kura}")  # fmt: skip
        hosts = [host_clock_short(nid, n.host_offset) for nid, n in sorted(snap.status.nodes.items())]
        self.hosts.setText("host → global: " + " · ".join(hosts) if hosts else "")
        self.hosts.setVisible(bool(hosts))
        rows = domain_rows(snap.clocks)
        colours = [roles().error if m[0].uncertainty > 0.005 else None for _d, m in rows]
        self.table.set_rows([clock_cells(d, m) for d, m in rows], colours)
        for r in range(self.table.rowCount()):
            for col in ELIDE_WIDTHS:
                if (item := self.table.item(r, col)) is not None:
                    item.setToolTip(item.text())
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter)
        for r, (_d, m) in enumerate(rows):
            origin = offset_origin(m[0].offset)
            if abs(m[0].offset) >= 10.0 and origin and (cell := self.table.item(r, 2)) is not None:
                cell.setToolTip(f"offset {m[0].offset:+.6f} s: the clock read 0 at {origin}")
        for col, width in ELIDE_WIDTHS.items():
            if self.table.columnWidth(col) > width:
                self.table.setColumnWidth(col, width)
        self._fit_rows(len(rows))
        chosen = self.table.selected_key()
        traced = [(clock_cells(d, m)[0], m[0].sensor_id) for d, m in rows if any(x.rate > 0 for x in m)]
        if chosen:
            traced = [t for t in traced if t[0] == chosen]
        traced = traced[:MAX_TRACES]
        for key in set(self.curves) - {t[0] for t in traced}:
            self.plot.removeItem(self.curves.pop(key))
        legend = []
        for i, (key, sid) in enumerate(traced):
            x, y = self.model.lab.residuals(sid)
            curve = self.curves.get(key)
            if curve is None:
                curve = self.curves[key] = self.plot.plot()
            curve.setPen(pg.mkPen(colour(i), width=1))
            curve.setData(x, y)
            legend.append(f'<td><span style="color:{colour(i)}">━</span> {key}</td>')
        per_row = 2 if len(legend) > 4 else 1  # beside the data, in as few lines as fit
        cells = ["<tr>" + "".join(legend[i : i + per_row]) + "</tr>" for i in range(0, len(legend), per_row)]
        head = "<b>offset − trend (µs)</b>"
        self.legend.setText(head + "<table cellspacing=2>" + "".join(cells) + "</table>" if cells else head)


PANEL = PanelSpec("sync", "Sync", QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, SyncPanel, order=40)
