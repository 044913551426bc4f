#!/usr/bin/env bash
# Build the packaged app. Usage: scripts/dist.sh [bundle|deb|tar|all]   (default: bundle)
#   bundle  PyInstaller one-folder bundle in dist/sensorium, then `sensorium selftest` from it
#           (offscreen Qt); prints bundle size, build time and the self-test's result
#   deb/tar/all  the bundle plus the Linux packages (installer/linux/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-bundle}"
scripts/setup.sh dist
# the desktop entry and AppStream metadata the .deb installs (desktop-file-utils, appstream)
desktop-file-validate resources/io.sensorium.Desktop.desktop
appstreamcli validate --no-net --explain resources/io.sensorium.Desktop.metainfo.xml
start=$(date +%s)
rm -rf build/sensorium dist/sensorium
mkdir -p build
.venv/bin/python scripts/third_party_notices.py -o build/THIRD_PARTY_NOTICES.md
.venv/bin/pyinstaller --noconfirm --log-level WARN sensorium.spec 2>&1 | grep -v -E "Ignoring icon|list_ports_osx|required via ctypes not found|libgtk-3|libgdk-3|pyqtgraph.opengl|_cdflib" || true
[ -x dist/sensorium/sensorium ] || { echo "dist: the bundle was not built" >&2; exit 1; }
built=$(date +%s)
echo "dist: bundle built in $((built - start)) s, $(du -sh dist/sensorium | cut -f1) in dist/sensorium"
QT_QPA_PLATFORM=offscreen dist/sensorium/sensorium --log-level WARNING selftest
echo "dist: selftest of the bundle passed in $(( $(date +%s) - built )) s"
case "$what" in
  bundle) ;;
  deb|tar|all) installer/linux/build.sh "$what" ;;
  *) echo "usage: $0 [bundle|deb|tar|all]" >&2; exit 2 ;;
esac
