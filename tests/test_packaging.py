"""Packaging files stay consistent (the Windows installer cannot be built here: these checks
keep it honest by review). The bundle itself is built and self-tested by .ci/run."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

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


def test_desktop_entry_and_icons() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(ROOT / "resources" / "sensorium.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"] == "sensorium-gui" and d["Icon"] == "sensorium"
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
