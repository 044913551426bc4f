"""The plugin contract (issue 21): a lab's package, installed with pip outside this source tree,
adds a transport and an exporter through entry points; Sensorium discovers its devices,
connects and records them, exports with its exporter, and names a broken plugin without
stopping. Built-ins are registered the same way and heavy libraries load only when used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from conftest import RedisServer, sensorium

from sensorium_desktop.bus.keys import Keys

PLUGINS = Path(__file__).parent / "data" / "plugins"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the two lab packages are pip-installed into (as a lab's site-packages would be)."""
    root = tmp_path_factory.mktemp("plugins")
    sources = []
    for name in ("lab-metronome", "lab-broken"):
        shutil.copytree(PLUGINS / name, root / name)
        sources.append(str(root / name))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--no-index", "--target", str(site), *sources],
                   check=True, timeout=300, capture_output=True)  # fmt: skip
    assert (site / "lab_metronome-1.2.0.dist-info" / "entry_points.txt").is_file()
    return site


def plugin_env(site: Path, redis_server: RedisServer | None = None, data_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    if redis_server is not None:
        env["SENSORIUM_REDIS_URL"] = redis_server.url
    if data_dir is not None:
        env["SENSORIUM_DATA_DIR"] = str(data_dir)
    return env


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sensorium(*args), env=env, capture_output=True, text=True, timeout=timeout)


def test_plugins_lists_the_lab_package_and_names_the_broken_one(plugin_site: Path) -> None:
    out = run(plugin_env(plugin_site), "plugins", "--json")
    assert out.returncode == 1, out.stderr[-2000:]  # a plugin failed: said, and the exit code says so
    rows = {(r["kind"], r["name"], r["distribution"]): r for r in json.loads(out.stdout)}
    metronome = rows["transports", "metronome", "lab-metronome"]
    assert metronome["loaded"] and not metronome["error"] and metronome["version"] == "1.2.0"
    assert rows["exporters", "npz", "lab-metronome"]["loaded"]
    assert "MissingTransport" in rows["transports", "wobbly", "lab-broken"]["error"]
    assert "ModuleNotFoundError" in rows["exporters", "mat", "lab-broken"]["error"]
    refused = rows["transports", "sim", "lab-broken"]
    assert "already taken by sensorium-desktop" in refused["error"]
    builtin_sim = rows["transports", "sim", "sensorium-desktop"]
    assert builtin_sim["loaded"] and not builtin_sim["error"]  # the built-in keeps its name
    for kind, count in (("transports", 9), ("exporters", 3), ("panels", 7), ("components", 10)):
        ours = [r for r in rows.values() if r["kind"] == kind and r["distribution"] == "sensorium-desktop"]
        assert len(ours) == count and all(r["loaded"] and not r["error"] for r in ours), kind
    assert "lab_broken" in out.stderr and "wobbly" in out.stderr


def test_devices_discovers_the_lab_transport(plugin_site: Path) -> None:
    out = run(plugin_env(plugin_site), "devices", "--json", "--timeout", "2", "--transport", "metronome",
              "--transport", "wobbly")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    found = {d["uri"]: d for d in json.loads(out.stdout)}
    assert found["metronome:bench?rate=50"]["available"]
    assert not found["wobbly:"]["available"] and "MissingTransport" in found["wobbly:"]["error"]


def test_a_lab_transport_is_connected_recorded_and_exported(
    plugin_site: Path, redis_server: RedisServer, keys: Keys, data_dir: Path, tmp_path: Path
) -> None:
    env = plugin_env(plugin_site, redis_server, data_dir)
    rec = tmp_path / "rec"
    out = run(env, "record", "--prefix", keys.prefix, "--node-id", "plug", "--device", "metronome:bench?rate=50",
              "--duration", "3", "--out", str(rec))  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    xdf_file, npz_file = tmp_path / "m.xdf", tmp_path / "m.npz"
    for fmt, path in (("xdf", xdf_file), ("npz", npz_file)):
        exported = run(env, "export", str(rec), "--format", fmt, "-o", str(path))
        assert exported.returncode == 0, exported.stderr[-3000:]
    streams, _ = pyxdf.load_xdf(str(xdf_file), synchronize_clocks=False, dejitter_timestamps=False)
    ticks = next(s for s in streams if s["info"]["name"][0].startswith("Metronome"))
    values = ticks["time_series"][:, 0]
    assert len(values) >= 100  # 3 s at 50 Hz
    assert np.array_equal(values, np.arange(values[0], values[0] + len(values)))  # no tick lost
    assert float(ticks["info"]["nominal_srate"][0]) == 50.0
    assert abs(float(np.median(np.diff(ticks["time_stamps"]))) - 0.02) < 1e-3  # on the device's clock
    arrays = np.load(npz_file)
    sid = next(k[: -len("__values")] for k in arrays.files if k.endswith("__values"))
    assert np.array_equal(arrays[f"{sid}__values"][:, 0], values)
    assert np.allclose(arrays[f"{sid}__time"], ticks["time_stamps"], atol=1e-6)


def test_heavy_libraries_load_only_when_their_transport_is_used() -> None:
    code = (
        "import sys\n"
        "from sensorium_desktop.devices import open_device, TRANSPORTS\n"
        "import sensorium_desktop.worker.node, sensorium_desktop.recording.export\n"
        "assert len(TRANSPORTS) >= 7\n"
        "open_device('sim:chest')\n"
        "heavy = ('cv2', 'bleak', 'pylsl', 'zmq', 'PySide6', 'aiohttp')\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "open_device('camera:0')\n"
        "print('cv2' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "True"]
