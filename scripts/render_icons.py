"""Render the application icon (resources/sensorium.svg) to the PNG sizes desktops want and a
Windows .ico, into resources/icons/. Run after editing the SVG:

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/render_icons.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6 import QtCore, QtGui, QtSvg

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    root = Path(__file__).resolve().parents[1] / "resources"
    out = root / "icons"
    out.mkdir(exist_ok=True)
    _app = QtGui.QGuiApplication(sys.argv)
    renderer = QtSvg.QSvgRenderer(str(root / "sensorium.svg"))
    if not renderer.isValid():
        print("invalid SVG", file=sys.stderr)
        return 1
    for size in SIZES:
        img = QtGui.QImage(size, size, QtGui.QImage.Format.Format_ARGB32)
        img.fill(QtCore.Qt.GlobalColor.transparent)
        painter = QtGui.QPainter(img)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        img.save(str(out / f"sensorium-{size}.png"))
        if size == 256 and not img.save(str(out / "sensorium.ico"), "ICO"):
            print("no ICO writer in this Qt: sensorium.ico not written", file=sys.stderr)
            return 1
    print(f"icons in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
