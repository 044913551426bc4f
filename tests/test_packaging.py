"""Packaging files stay consistent (the Windows installer cannot be built here: these checks
keep it honest by review). The bundle itself is built and self-tested by .ci/run."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]


def test_inno_setup_script_points_at_files_that_exist() -> None:
    iss = (ROOT / "installer" / "windows" / "sensorium.iss").read_text()
    here = ROOT / "installer" / "windows"
    for rel in re.findall(r'Source: "([^"]+)"', iss) + re.findall(r"SetupIconFile=(\S+)", iss):
        if rel.startswith("..\\..\\dist\\"):
            continue  # the bundle, built before ISCC runs
        assert (here / rel.replace("\\", "/")).exists(), rel
    for section in ("[Setup]", "[Files]", "[Icons]", "{uninstallexe}", "sensorium-gui.exe", "selftest"):
        assert section in iss


APP_ID = "io.sensorium.Desktop"


def test_desktop_entry_appstream_and_icons() -> None:
    """One application id everywhere: the desktop file's name, the AppStream id and launchable,
    the window's setDesktopFileName (Wayland matches the icon by it) and the .deb; the
    official validators accept both files when they are installed (scripts/dist.sh runs them)."""
    desktop = ROOT / "resources" / f"{APP_ID}.desktop"
    metainfo = ROOT / "resources" / f"{APP_ID}.metainfo.xml"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(desktop)
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"] == "sensorium-gui" and d["Icon"] == "sensorium"
    meta = ElementTree.parse(metainfo).getroot()
    assert meta.findtext("id") == APP_ID and meta.find("launchable").text == f"{APP_ID}.desktop"
    assert f'setDesktopFileName("{APP_ID}")' in (ROOT / "sensorium_desktop" / "ui" / "app.py").read_text()
    assert f"APP_ID={APP_ID}" in (ROOT / "installer" / "linux" / "build.sh").read_text()
    for tool, args in (("desktop-file-validate", [str(desktop)]),
                       ("appstreamcli", ["validate", "--no-net", str(metainfo)])):  # fmt: skip
        if shutil.which(tool):
            out = subprocess.run([tool, *args], capture_output=True, text=True)
            assert out.returncode == 0 and "error" not in out.stdout.lower(), out.stdout + out.stderr
    sizes = re.search(r"sizes=\(([^)]*)\)", (ROOT / "installer" / "linux" / "build.sh").read_text())
    assert sizes is not None
    for s in sizes.group(1).split():
        assert (ROOT / "resources" / "icons" / f"sensorium-{s}.png").is_file(), s
    assert (ROOT / "resources" / "icons" / "sensorium.ico").is_file()


def test_spec_and_scripts_parse() -> None:
    compile((ROOT / "sensorium.spec").read_text(), "sensorium.spec", "exec")
    for script in ("installer/linux/build.sh", "scripts/dist.sh", ".ci/run"):
        out = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
        assert out.returncode == 0, f"{script}: {out.stderr}"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci and "scripts/dist.sh bundle" in ci


def test_frozen_entry_points_start_children_from_the_executable(monkeypatch) -> None:
    import sys

    from sensorium_desktop.worker.spawn import self_command

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/sensorium/sensorium-gui")
    assert self_command("node", "--simulate") == ["/opt/sensorium/sensorium-gui", "node", "--simulate"]
