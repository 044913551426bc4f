"""Bundle entry point of ``sensorium-gui`` (windowed: no arguments opens the operator window)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from sensorium_desktop.cli import main_gui

    sys.exit(main_gui())
