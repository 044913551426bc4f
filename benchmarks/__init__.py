"""Speed and accuracy benchmarks: ``python -m benchmarks.NAME``; each prints ratios against a
baseline measured in the same run (these machines are shared and noisy)."""
