#!/usr/bin/env bash
# Install (if needed) and run the whole test suite: ruff, then pytest against real
# redis-server processes, real pseudo-terminals and an offscreen Qt.
# `scripts/test.sh --slow` adds the long soak variants; other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
markers=(-m "not slow")
args=()
for a in "$@"; do
  if [ "$a" = "--slow" ]; then markers=(); else args+=("$a"); fi
done
echo "test: ruff"
.venv/bin/ruff check sensorium_desktop sensorium tests benchmarks
echo "test: mypy"
.venv/bin/mypy
echo "test: pytest"
set +e
QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest "${markers[@]}" ${args[@]+"${args[@]}"}
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
