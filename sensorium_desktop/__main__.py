"""``python -m sensorium_desktop`` == ``sensorium``."""

import sys

from sensorium_desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
