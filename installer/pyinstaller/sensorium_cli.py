"""Bundle entry point of ``sensorium`` (console: the CLI, ``selftest``, the node child)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # spawned sync-worker processes start here
    from sensorium_desktop.cli import main

    sys.exit(main())
