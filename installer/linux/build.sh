#!/usr/bin/env bash
# Package the PyInstaller bundle (dist/sensorium, built by scripts/dist.sh) for Linux:
#   dist/sensorium_<version>_<arch>.deb      installs to /opt/sensorium, /usr/bin links,
#                                            menu entry, icons, example config
#   dist/sensorium-<version>-linux-<arch>.tar.gz   the same tree with install.sh (per user)
# Usage: installer/linux/build.sh [deb|tar|all]
set -euo pipefail
cd "$(dirname "$0")/../.."
what="${1:-all}"
bundle=dist/sensorium
[ -x "$bundle/sensorium" ] || { echo "build.sh: no bundle in $bundle (run scripts/dist.sh bundle)" >&2; exit 1; }
version="$("$bundle/sensorium" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
sizes=(16 24 32 48 64 128 256 512)
APP_ID=io.sensorium.Desktop  # desktop file, AppStream id and the window's setDesktopFileName

install_tree() {  # $1: root, $2: prefix of the app (/opt/sensorium), $3: share dir
  local root="$1" app="$2" share="$3"
  mkdir -p "$root$app" "$root$share/applications" "$root$share/icons/hicolor/scalable/apps" "$root$share/doc/sensorium" \
    "$root$share/metainfo"
  cp -a "$bundle/." "$root$app/"
  sed "s|^Exec=.*|Exec=$app/sensorium-gui|" resources/$APP_ID.desktop > "$root$share/applications/$APP_ID.desktop"
  cp resources/$APP_ID.metainfo.xml "$root$share/metainfo/"
  cp LICENSE "$root$share/doc/sensorium/copyright"
  cp "$bundle/_internal/THIRD_PARTY_NOTICES.md" "$root$share/doc/sensorium/"
  cp resources/sensorium.svg "$root$share/icons/hicolor/scalable/apps/sensorium.svg"
  for s in "${sizes[@]}"; do
    mkdir -p "$root$share/icons/hicolor/${s}x${s}/apps"
    cp "resources/icons/sensorium-$s.png" "$root$share/icons/hicolor/${s}x${s}/apps/sensorium.png"
  done
  cp resources/sensorium.toml "$root$share/doc/sensorium/sensorium.toml.example"
}

build_deb() {
  local root; root="$(mktemp -d)"
  install_tree "$root" /opt/sensorium /usr/share
  mkdir -p "$root/usr/bin" "$root/DEBIAN"
  ln -s /opt/sensorium/sensorium "$root/usr/bin/sensorium"
  ln -s /opt/sensorium/sensorium-gui "$root/usr/bin/sensorium-gui"
  local size; size="$(du -sk "$root" | cut -f1)"
  cat > "$root/DEBIAN/control" <<CONTROL
Package: sensorium
Version: $version
Architecture: $arch
Maintainer: Sensorium Desktop <sensorium@localhost>
Installed-Size: $size
Section: science
Priority: optional
Depends: libc6, libegl1, libgl1, libfontconfig1, libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-image0, libxcb-render-util0, libxcb-shape0, libxcb-xinerama0, libxcb-xkb1, libdbus-1-3
Recommends: bluez
Description: Lab sensor recorder with clock synchronization
 Connects BLE, serial, camera, LSL and simulated sensors, puts them on one clock,
 shows them live and records synchronized sessions exported as XDF and CSV.
 Self-contained: ships its own Python, Qt and redis-server. Check an installation
 with: sensorium selftest
CONTROL
  cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q /usr/share/applications || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
exit 0
POSTINST
  cp "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
  chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
  local out="dist/sensorium_${version}_${arch}.deb"
  dpkg-deb -Zxz -z6 --root-owner-group --build "$root" "$out" >/dev/null
  rm -rf "$root"
  echo "built $out ($(du -h "$out" | cut -f1))"
}

build_tar() {
  local root; root="$(mktemp -d)"
  local name="sensorium-$version-linux-$arch"
  install_tree "$root/$name" /sensorium /share
  cat > "$root/$name/install.sh" <<'INSTALL'
#!/bin/sh
# Install for this user: ~/.local/opt/sensorium, ~/.local/bin links, menu entry and icons.
# Uninstall: ./install.sh --uninstall
set -e
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${XDG_DATA_HOME:-$HOME/.local/share}"
opt="$HOME/.local/opt/sensorium"
if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$opt" "$HOME/.local/bin/sensorium" "$HOME/.local/bin/sensorium-gui" "$prefix/applications/io.sensorium.Desktop.desktop"
  find "$prefix/icons/hicolor" -name 'sensorium.*' -delete 2>/dev/null || true
  echo "Sensorium Desktop removed (recordings in $prefix/sensorium are kept)"; exit 0
fi
mkdir -p "$opt" "$HOME/.local/bin" "$prefix/applications"
cp -a "$here/sensorium/." "$opt/"
cp -a "$here/share/icons" "$prefix/"
sed "s|^Exec=.*|Exec=$opt/sensorium-gui|" "$here/share/applications/io.sensorium.Desktop.desktop" > "$prefix/applications/io.sensorium.Desktop.desktop"
ln -sf "$opt/sensorium" "$HOME/.local/bin/sensorium"
ln -sf "$opt/sensorium-gui" "$HOME/.local/bin/sensorium-gui"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$prefix/applications" || true
echo "Sensorium Desktop installed in $opt; check it with: $opt/sensorium selftest"
INSTALL
  chmod 0755 "$root/$name/install.sh"
  local out="dist/$name.tar.gz"
  tar -C "$root" -czf "$out" "$name"
  rm -rf "$root"
  echo "built $out ($(du -h "$out" | cut -f1))"
}

case "$what" in
  deb) build_deb ;;
  tar) build_tar ;;
  all) build_deb; build_tar ;;
  *) echo "usage: $0 [deb|tar|all]" >&2; exit 2 ;;
esac
