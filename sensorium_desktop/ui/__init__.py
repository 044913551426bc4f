"""Qt widgets only: thin views over the headless models in ``viewmodel/``."""

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
