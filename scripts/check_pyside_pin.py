"""Reproduce the PySide6 6.12.0 crash that pins ``pyside6<6.12``.

Run with an interpreter that has the PySide6 version under test and pyqtgraph installed:
``QT_QPA_PLATFORM=offscreen python scripts/check_pyside_pin.py``. Prints ``ok 2000`` and
exits 0 when 2000 repaints of a 5000-point curve survive; 6.12.0 aborts with
``Fatal Python error: none_dealloc`` (exit code 134) within a few hundred.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets, __version__

REPAINTS = 2000


def main() -> int:
    app = QtWidgets.QApplication(sys.argv[:1])
    plot = pg.PlotWidget()
    curve = plot.plot(pen=pg.mkPen(width=1))
    plot.resize(640, 480)
    plot.show()
    count = 0
    rng = np.random.default_rng(0)

    def tick() -> None:
        nonlocal count
        count += 1
        curve.setData(rng.normal(size=5000))
        plot.repaint()
        if count >= REPAINTS:
            print(f"PySide6 {__version__}: ok {count}")
            app.quit()

    timer = QtCore.QTimer()
    timer.timeout.connect(tick)
    timer.start(0)
    app.exec()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
