#!/usr/bin/env bash
# Install (if needed) and launch Sensorium Desktop with the embedded Redis and the simulated lab.
# Extra arguments go to `sensorium demo` (e.g. --quit-after 10 --screenshot shot.png).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh app
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
  echo "run-app: no display found; running on a virtual X server (xvfb-run)."
  echo "run-app: use --quit-after S --screenshot FILE to look at it, or run on a desktop."
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/sensorium demo "$@"
fi
exec .venv/bin/sensorium demo "$@"
