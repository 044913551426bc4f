"""Backpressure policy (the Sensocto table, load levels, pause rule) and the batcher."""

from __future__ import annotations

import numpy as np
import pytest

from sensorium_desktop.core.backpressure import (
    Attention,
    AttentionTracker,
    BackpressureConfig,
    LoadEstimator,
    SystemLoad,
    ViewState,
    compute_config,
    load_level,
    pressure,
)
from sensorium_desktop.core.batching import PAUSED_FLUSH_BYTES, Batcher
from sensorium_desktop.core.samples import SampleBatch


@pytest.mark.parametrize(
    ("att", "window", "size"), [("high", 100, 1), ("medium", 500, 5), ("low", 2000, 10), ("none", 5000, 20)]
)
def test_base_table(att: str, window: int, size: int) -> None:
    cfg = compute_config(att, now_ms=123)
    assert (cfg.recommended_batch_window, cfg.recommended_batch_size) == (window, size)
    assert cfg.load_multiplier == 1.0 and not cfg.paused and cfg.timestamp == 123
    assert set(cfg.to_dict()) == {
        "attention_level", "system_load", "memory_protection_active", "paused",
        "recommended_batch_window", "recommended_batch_size", "load_multiplier", "timestamp",
    }  # fmt: skip


@pytest.mark.parametrize(("load", "mult"), [("normal", 1.0), ("elevated", 1.5), ("high", 3.0), ("critical", 5.0)])
def test_load_multipliers_scale_window_not_size(load: str, mult: float) -> None:
    cfg = compute_config("medium", load)
    assert cfg.load_multiplier == mult
    assert cfg.recommended_batch_window == int(500 * mult)
    assert cfg.recommended_batch_size == 5


def test_memory_protection_multiplies_by_five_and_pauses_low_priority() -> None:
    cfg = compute_config("high", "elevated", memory_protection=True)
    assert cfg.load_multiplier == 7.5 and cfg.recommended_batch_window == 750 and not cfg.paused
    assert compute_config("low", memory_protection=True).paused
    assert compute_config("none", memory_protection=True).paused
    assert compute_config("low", "critical").paused
    assert not compute_config("medium", "critical").paused
    assert not compute_config("low", "high").paused


def test_pressure_and_levels() -> None:
    assert pressure(1, 1, 1, 1) == pytest.approx(1.0)
    assert pressure(1, 0, 0, 0) == pytest.approx(0.45)
    assert load_level(0.49) is SystemLoad.NORMAL
    assert load_level(0.5) is SystemLoad.ELEVATED
    assert load_level(0.7) is SystemLoad.HIGH
    assert load_level(0.85) is SystemLoad.CRITICAL
    est = LoadEstimator()
    for x in (1, 1, 1, 1, 1, 0, 0):
        est.add_cpu_sample(x)
    assert est.cpu == pytest.approx(3 / 5)  # only the last 5 samples count
    level, mem, _ = est.assess(1.0, 1.0, 0.75)
    assert level is SystemLoad.HIGH and mem


def test_config_round_trips_through_strings() -> None:
    cfg = compute_config("low", "high", True, 99)
    raw = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in cfg.to_dict().items()}
    assert BackpressureConfig.from_dict(raw) == cfg


def test_attention_rules_and_boost() -> None:
    tr = AttentionTracker()
    tr.set_view("s", "tree", ViewState(registered=True), 0.0)
    assert tr.level("s", 0.0) is Attention.LOW
    tr.set_view("s", "plot", ViewState(visible=True), 0.0)
    assert tr.level("s", 0.0) is Attention.MEDIUM
    tr.set_view("s", "plot", ViewState(visible=True, focused=True), 1.0)
    assert tr.level("s", 1.0) is Attention.HIGH
    tr.set_view("s", "plot", ViewState(visible=True), 2.0)  # focus lost: boost 15 s
    assert tr.level("s", 16.9) is Attention.HIGH
    assert tr.level("s", 17.1) is Attention.MEDIUM
    assert tr.level("s", 6.9, SystemLoad.HIGH) is Attention.HIGH  # boost / 3 under high load
    assert tr.level("s", 7.1, SystemLoad.HIGH) is Attention.MEDIUM
    tr.set_view("s", "plot", ViewState(visible=True, hovered=True), 20.0)
    tr.set_view("s", "plot", ViewState(visible=False), 21.0)
    assert tr.level("s", 28.9) is Attention.HIGH and tr.level("s", 29.1) is Attention.LOW
    tr.force_minimum("s", Attention.MEDIUM)
    assert tr.level("s", 100.0) is Attention.MEDIUM
    assert tr.level("other", 0.0) is Attention.NONE


def _b(n: int = 3) -> SampleBatch:
    return SampleBatch("s", "ecg", np.arange(n, dtype=float), np.zeros((n, 1), dtype=np.float32))


def test_batcher_flushes_by_size_and_window() -> None:
    out: list[SampleBatch] = []
    b = Batcher(out.append)
    b.set_config("s", compute_config("medium"), 0.0)
    for i in range(4):
        b.add(_b(), 0.1 * i)
    assert out == []
    b.add(_b(), 0.45)  # fifth delivery: batch size 5 reached
    assert len(out) == 1 and len(out[0]) == 15
    b.add(_b(), 1.0)
    b.tick(1.4)
    assert len(out) == 1
    b.tick(1.5)  # 500 ms window elapsed
    assert len(out) == 2
    b.set_config("s", compute_config("high"), 2.0)
    b.add(_b(), 2.0)
    assert len(out) == 3  # high attention: every delivery at once


def test_paused_sensor_keeps_data_and_hands_it_on_when_overfull() -> None:
    out: list[SampleBatch] = []
    b = Batcher(out.append)
    b.set_config("s", compute_config("none", memory_protection=True), 0.0)
    big = SampleBatch("s", "x", np.arange(1000.0), np.zeros((1000, 200), dtype=np.float32))
    n = 0
    while not out:
        b.add(big, 0.001 * n)
        n += 1
    assert n * big.values.nbytes >= PAUSED_FLUSH_BYTES
    assert sum(len(x) for x in out) == n * 1000
    b.set_config("s", compute_config("high"), 1.0)
    b.add(_b(), 1.0)
    b.flush_all()
    assert sum(len(x) for x in out) == n * 1000 + 3
