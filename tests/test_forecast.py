"""The per-sensor forecaster (core/forecast.py) and ``sensorium train``: trained with numpy
(and PyTorch when it imports), saved, loaded in a fresh process with numpy alone, scoring the
same data identically; ``train`` from a real recording and from bootstrapped Redis readings;
a model is never used for another sensor or attribute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import RedisServer, sensorium

from sensorium_desktop.core.forecast import Forecaster, model_name, train_numpy, train_torch
from sensorium_desktop.core.quality import SignalQuality
from sensorium_desktop.devices.simulated import Physiology, ecg_waveform
from sensorium_desktop.worker.quality import load_forecaster

RATE = 512.0


def _ecg(seconds: float, seed: int = 0) -> np.ndarray:
    t = 1_800_000_000.0 + np.arange(int(seconds * RATE)) / RATE
    phys = Physiology(2)
    beats = phys.beats_between(float(t[0]) - 2, float(t[-1]) + 2)
    return (ecg_waveform(t, beats) + np.random.default_rng(seed).normal(0, 0.012, t.size)).reshape(-1, 1)


SCORE_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
from sensorium_desktop.core.forecast import Forecaster
f = Forecaster.from_bytes(open(sys.argv[1], "rb").read())
x = np.load(sys.argv[2])
print(json.dumps([f.standardized_error(x[:k]).tolist() for k in range(400, x.shape[0], 97)]))
assert "torch" not in sys.modules
"""


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_trained_saved_and_scored_identically_in_a_fresh_process(backend: str, tmp_path: Path) -> None:
    if backend == "torch":
        pytest.importorskip("torch", reason="PyTorch is not installed here: the torch path is not exercised")
    train = train_numpy if backend == "numpy" else train_torch
    model = train(_ecg(60.0), "chest-ecg", "ecg", window=32, stride=4, epochs=10)
    assert model.backend.startswith(backend) and model.resid_sd < 0.3  # it learned the waveform (no skill: 1)
    path = tmp_path / model_name("chest-ecg", "ecg")
    path.write_bytes(model.to_bytes())
    assert path.stat().st_size < 100_000
    test = _ecg(6.0, seed=7)
    test[2000:2300] += 3.0  # an electrode pop
    np.save(tmp_path / "test.npy", test)
    here = [model.standardized_error(test[:k]).tolist() for k in range(400, test.shape[0], 97)]
    out = subprocess.run([sys.executable, "-c", SCORE_IN_FRESH_PROCESS, str(path), str(tmp_path / "test.npy")],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert json.loads(out.stdout) == here  # bit for bit
    scores = np.array(here)[:, 0]
    pop = [i for i, k in enumerate(range(400, test.shape[0], 97)) if 2000 + 8 * 4 <= k <= 2300]
    assert scores[pop].max() > 4 * np.median(scores)  # the pop stands out


def test_a_model_is_used_only_for_its_own_sensor_and_attribute(tmp_path: Path) -> None:
    model = train_numpy(_ecg(20.0), "chest-ecg", "ecg", window=16, stride=8, epochs=1)
    (tmp_path / model_name("chest-ecg", "ecg")).write_bytes(model.to_bytes())
    (tmp_path / model_name("other-ecg", "ecg")).write_bytes(model.to_bytes())  # copied under another name
    (tmp_path / model_name("chest-ecg", "respiration")).write_bytes(b"not a model")
    assert isinstance(load_forecaster(tmp_path, "chest-ecg", "ecg"), Forecaster)
    assert load_forecaster(tmp_path, "other-ecg", "ecg") is None
    assert load_forecaster(tmp_path, "chest-ecg", "respiration") is None
    assert load_forecaster(tmp_path, "nobody", "ecg") is None


def test_train_from_a_recording_and_from_bootstrapped_readings(redis_server: RedisServer, tmp_path: Path) -> None:
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(tmp_path / "data"))
    rec = tmp_path / "rec"
    run = subprocess.run(sensorium("record", "--prefix", "trainrec", "--simulate", "--duration", "8", "--out",
                                   str(rec), "--sensors", "sim-chest-ecg"), env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = subprocess.run(sensorium("train", "--prefix", "trainrec", "--sensor", "sim-chest-ecg", "--from", str(rec),
                                   "--epochs", "3", "--backend", "numpy"), env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    saved = tmp_path / "data" / "models" / model_name("sim-chest-ecg", "ecg")
    assert saved.is_file() and "numpy, 3 epochs" in out.stdout
    assert load_forecaster(saved.parent, "sim-chest-ecg", "ecg") is not None
    boot = subprocess.run(sensorium("train", "--prefix", "trainboot", "--sensor", "lab-temperature", "--bootstrap",
                                    "--samples", "512", "--epochs", "2", "--backend", "numpy", "--checkpoint",
                                    str(tmp_path / "t.npz")), env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert boot.returncode == 0, boot.stderr[-2000:]
    assert "on 512 samples" in boot.stdout and (tmp_path / "t.npz").is_file()
    missing = subprocess.run(sensorium("train", "--prefix", "trainboot", "--sensor", "nobody-ecg"), env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 1 and "no sensor 'nobody-ecg'" in missing.stderr


def test_a_truncated_or_tampered_model_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = train_numpy(_ecg(20.0), "chest-ecg", "ecg", window=16, stride=8, epochs=1)
    good = model.to_bytes()
    Forecaster.from_bytes(good).check()
    nan_weights = Forecaster(**{**model.__dict__, "weights": [w.copy() for w in model.weights]})
    nan_weights.weights[2][0, 0] = np.nan
    bad = {
        "truncated": (good[: len(good) // 2], "not a forecaster file"),
        "empty": (b"", "not a forecaster file"),
        "wrong shapes": (Forecaster(**{**model.__dict__, "window": 32}).to_bytes(), "weights of shapes"),
        "not finite": (nan_weights.to_bytes(), "not finite"),
        "zero sd": (Forecaster(**{**model.__dict__, "sd": 0.0}).to_bytes(), "normalization"),
    }
    for name, (data, reason) in bad.items():
        with pytest.raises(ValueError, match=reason):
            Forecaster.from_bytes(data)
        path = tmp_path / model_name("chest-ecg", "ecg")
        path.write_bytes(data)
        assert load_forecaster(tmp_path, "chest-ecg", "ecg") is None, name  # logged, scored by the rules alone


def test_a_sensor_of_nans_only_is_bad_not_a_crash_with_or_without_a_model() -> None:
    model = train_numpy(_ecg(20.0), "chest-ecg", "ecg", window=16, stride=8, epochs=1)
    for forecaster in (None, model):
        q = SignalQuality(512.0, 1, forecaster=forecaster)
        for k in range(40):
            t = k * 0.125 + np.arange(64) / 512.0
            q.update(t, np.full((64, 1), np.nan))
            v = q.assess(float(t[-1]) + 1 / 512)
        assert (v.state, v.reason) == ("bad", "nan"), v
