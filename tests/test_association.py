"""Grouping: small deterministic cases and invariants (accuracy targets live in benchmarks/)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.association import make_trial, pair_f1
from sensorium_desktop.core.association import AssociationParams, Group, Member, group_observations


def _mass(groups, index: int) -> float:
    return sum(m.probability for g in groups for m in g.members if m.index == index)


def test_three_sensors_agreeing_form_one_group() -> None:
    g = group_observations(["a", "b", "c"], [1.0, 1.001, 1.0005], 0.001)
    best = max(g, key=lambda grp: len(grp.members))
    assert best.sensors == {"a", "b", "c"}
    assert best.t_global == pytest.approx(1.0005, abs=1e-4)
    assert all(m.probability > 0.9 for m in best.members)
    assert isinstance(best, Group) and isinstance(best.members[0], Member)


def test_a_distractor_300ms_away_is_not_pulled_in() -> None:
    for jitter in (0.005, 0.02, 0.05):
        g = group_observations(["correct", "distractor"], [0.0, 0.3], jitter)
        own = max(g, key=lambda grp: sum(m.probability for m in grp.members if m.sensor_id == "correct"))
        assert sum(m.probability for m in own.members if m.sensor_id == "distractor") < 0.01


def test_two_events_and_the_one_per_sensor_constraint() -> None:
    # sensor a reports twice close together: only one of them can join the event with b and c
    ids = ["a", "b", "a", "c", "b", "c"]
    t = [0.0, 0.0005, 0.0011, 0.0002, 1.0, 1.0003]
    g = group_observations(ids, t, 0.001)
    first = max(g, key=lambda grp: sum(m.probability for m in grp.members if grp.t_global < 0.5))
    a_mass = sum(m.probability for m in first.members if m.sensor_id == "a")
    assert a_mass <= 1.0 + 1e-9  # never more than one observation of a per event
    assert _mass(g, 4) > 0.9 and _mass(g, 5) > 0.9
    assert abs(first.t_global) < 0.002


def test_spurious_detection_far_from_everything_is_an_outlier() -> None:
    rng = np.random.default_rng(0)
    events = np.arange(0, 20, 1.0)
    ids, t = [], []
    for s in ("a", "b", "c", "d"):
        ids += [s] * events.size
        t += list(events + rng.normal(0, 0.002, events.size))
    ids.append("a")
    t.append(10.5)  # halfway between events
    g = group_observations(ids, t, 0.002)
    assert g.outlier[-1] > 0.9
    assert len([grp for grp in g if len(grp.members) >= 4]) == 20
    assert g.detection["a"] > 0.8


def test_recovers_events_in_a_simulated_lab() -> None:
    tr = make_trial(np.random.default_rng(5), n_sensors=5, n_events=200)
    g = group_observations(tr.names, tr.t, tr.sigma)
    lab = g.assignment()
    assert pair_f1(tr.event, lab, tr.sensor) > 0.95


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="sensor ids"):
        group_observations(["a"], [1.0, 2.0], 0.1)
    with pytest.raises(ValueError, match="finite"):
        group_observations(["a", "b"], [1.0, np.nan], 0.1)
    with pytest.raises(ValueError, match="> 0"):
        group_observations(["a", "b"], [1.0, 2.0], 0.0)
    empty = group_observations([], [], 0.1)
    assert len(empty) == 0 and empty.outlier.size == 0


obs_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.floats(0, 5), st.floats(0.0005, 0.05)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(obs_strategy)
def test_probabilities_are_valid_and_sum_to_one(obs: list[tuple[str, float, float]]) -> None:
    ids, t, sig = zip(*obs, strict=True)
    g = group_observations(list(ids), list(t), list(sig))
    total = g.outlier.copy()
    for grp in g:
        assert np.isfinite(grp.t_global)
        per_sensor: dict[str, float] = {}
        for m in grp.members:
            assert 0.0 <= m.probability <= 1.0 + 1e-12
            total[m.index] += m.probability
            per_sensor[m.sensor_id] = per_sensor.get(m.sensor_id, 0.0) + m.probability
        assert all(v <= 1.0 + 1e-6 for v in per_sensor.values())  # at most one per sensor (in expectation)
    assert np.all(g.outlier >= -1e-12) and np.all(g.outlier <= 1 + 1e-12)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(obs_strategy, st.randoms(use_true_random=False))
def test_permutation_invariance(obs: list[tuple[str, float, float]], rnd) -> None:
    ids, t, sig = (list(x) for x in zip(*obs, strict=True))
    perm = list(range(len(ids)))
    rnd.shuffle(perm)
    a = group_observations(ids, t, sig)
    b = group_observations([ids[i] for i in perm], [t[i] for i in perm], [sig[i] for i in perm])

    # identical observations are interchangeable: identify members by their values
    def canon(groups, values):
        return sorted(
            (round(grp.t_global, 9), tuple(sorted((values[m.index], round(m.probability, 9)) for m in grp.members)))
            for grp in groups
        )

    values_a = list(zip(ids, t, sig, strict=True))
    values_b = [values_a[i] for i in perm]
    assert canon(a, values_a) == canon(b, values_b)
    np.testing.assert_allclose(np.sort(a.outlier), np.sort(b.outlier), atol=1e-12)


def test_fixed_parameters_are_respected() -> None:
    p = AssociationParams(detection_prob=0.9, event_rate=5.0, clutter_rate=0.01)
    g = group_observations(["a", "b"], [0.0, 0.0001], 0.001, p)
    assert g.detection == {"a": 0.9, "b": 0.9} and g.event_rate == 5.0
    assert max(len(grp.members) for grp in g) == 2
