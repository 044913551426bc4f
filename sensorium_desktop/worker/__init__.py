"""Processes: the node (acquisition, sync worker, recorder) and their supervision."""
