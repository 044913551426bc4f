"""Probabilistic grouping of timed observations into events (time slices).

Model: events happen at unknown times ``tau_k`` (rate ``event_rate`` per second). Sensor
``s`` detects an event with probability ``p_s`` and reports ``t ~ N(tau_k, sigma_i^2)`` —
at most once per event — and also reports spurious detections at rate ``lambda_s`` per
second. Given the observations, every observation gets a probability of belonging to each
nearby event, to an event only it saw, or to nothing (outlier); they sum to 1.

Inference, vectorized over arrays (no per-observation Python loops):

1. **Partition** by agglomerative merging: starting from one event per observation, events
   that are close in time and share no sensor merge when the Bayes factor
   ``N(tau_A - tau_B; 0, v_A + v_B) / (event_rate * prod_s (1 - p_s))`` exceeds 1 — the
   Gaussian consistency of their times against "two events, each missed by every other
   sensor". Mutually-best pairs merge in rounds until none remain.
2. **Memberships**: each observation connects to the <= 4 nearest events; the predictive
   density of an edge uses the event's members *without the observation's own sensor*, so
   two observations of one sensor compete for an event through the one-per-sensor
   constraint (loopy belief propagation, exact on the tree-like graphs that separated
   events give) and nothing is counted twice. Alternatives: an event only this
   observation saw, or a spurious detection.
3. ``p_s``, ``lambda_s`` and the event rate are re-estimated from the memberships (priors
   worth ``PRIOR_EVENTS`` events) and the partition is redone, ``iterations`` times.

No thresholds beyond the model: observations end up together when one event explains them
better than the alternatives.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

CLUTTER_PRIOR = 0.1  # prior fraction of a sensor's observations that are spurious
DETECTION_PRIOR = 0.5  # prior detection probability of a sensor
PRIOR_EVENTS = 10.0  # strength of the priors, in events: data dominate once there are more
EDGE_SIGMAS = 6.0  # observations connect to events within this many combined sigmas
CANDIDATES = 4
MIN_SPAN_S = 1.0  # shortest slice duration used for rates (s)
MIN_REPORTED = 1e-6  # memberships below this are reported as outlier mass instead
MERGE_REACH = 6  # events this many places apart in time order are merge candidates
MERGE_SIGMAS = 4.5  # ... if their times are within this many combined sigmas
REFINE_ROUNDS = 1  # merge + reassignment rounds per parameter update
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class Member(NamedTuple):
    """One observation's membership of a group (``index``: position in the input)."""

    sensor_id: str
    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose: a member's position
    probability: float


_new_member = partial(tuple.__new__, Member)  # Member from a (sensor_id, index, probability) tuple, in C


@dataclass(slots=True)
class Group:
    """An event: its precision-weighted time (s), 1-sigma (s) and members."""

    t_global: float
    members: list[Member]
    sigma: float = 0.0

    @property
    def sensors(self) -> set[str]:
        return {m.sensor_id for m in self.members}


@dataclass(slots=True)
class AssociationParams:
    """Model parameters (None = estimate from the observations, with weak priors)."""

    detection_prob: float | None = None
    event_rate: float | None = None
    clutter_rate: float | None = None
    iterations: int = 2
    bp_sweeps: int = 6


class Groups(list[Group]):
    """The groups, plus per-observation ``outlier`` probability (input order) and the
    parameters used (``detection``, ``clutter`` per sensor; ``event_rate``)."""

    outlier: np.ndarray
    partition: np.ndarray  # event label of the hard partition behind the memberships
    detection: dict[str, float]
    clutter: dict[str, float]
    event_rate: float

    def assignment(self) -> np.ndarray:
        """MAP group index per observation (input order), -1 for outliers."""
        best = np.full(self.outlier.size, -1)
        best_p = self.outlier.copy()
        for g, group in enumerate(self):
            for m in group.members:
                if m.probability > best_p[m.index]:
                    best_p[m.index] = m.probability
                    best[m.index] = g
        return best


def _gauss_log(delta: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * delta**2 / var - 0.5 * np.log(var) - _LOG_SQRT_2PI


def _event_stats(
    labels: np.ndarray, ts: np.ndarray, w: np.ndarray, score: np.ndarray, k: int
) -> tuple[np.ndarray, ...]:
    """Per event: W, tau, log-likelihood (without the constant per-event term)."""
    wk = np.bincount(labels, weights=w, minlength=k)
    tau = np.bincount(labels, weights=w * ts, minlength=k) / np.where(wk > 0, wk, 1.0)
    ss = np.bincount(labels, weights=w * (ts - tau[labels]) ** 2, minlength=k)
    m = np.bincount(labels, minlength=k)
    half_logw = np.bincount(labels, weights=0.5 * np.log(w) + score, minlength=k)
    ll = half_logw - 0.5 * (m - 1) * math.log(2 * math.pi) - 0.5 * ss - 0.5 * np.log(np.where(wk > 0, wk, 1.0))
    return wk, tau, ll


def _initial_partition(ts: np.ndarray, sg: np.ndarray, ss: np.ndarray, n_sensors: int) -> np.ndarray:
    """Starting events: runs of time-sorted observations of different sensors whose gaps are
    within 3 combined sigmas; a sensor appearing twice in a run splits it by occurrence."""
    n = ts.size
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    gap = np.diff(ts)
    link = (gap < 3.0 * np.sqrt(sg[:-1] ** 2 + sg[1:] ** 2)) & (ss[:-1] != ss[1:])
    cluster = np.concatenate([[0], np.cumsum(~link)])
    key = cluster * n_sensors + ss
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.concatenate([[True], sk[1:] != sk[:-1]])
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first
    return np.unique(cluster * (int(rank.max()) + 1) + rank, return_inverse=True)[1]


def _compact(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..k-1 keeping order (O(n), no sort)."""
    present = np.bincount(labels) > 0
    return (np.cumsum(present) - 1)[labels]


def _duplicates(key: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Mask of rows that share ``key`` with a row of smaller ``dist`` (keep the closest;
    exact ties go to the earlier row)."""
    dup = np.zeros(key.size, dtype=bool)
    if key.size == 0:
        return dup
    multi = np.flatnonzero(np.bincount(key)[key] > 1)
    if multi.size:
        o = np.lexsort((dist[multi], key[multi]))
        sk = key[multi][o]
        later = np.concatenate([[False], sk[1:] == sk[:-1]])
        dup[multi[o[later]]] = True
    return dup


def _pair_rows(labels: np.ndarray, k: int, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair index, observation) rows for the members of both events of each pair."""
    by_event = np.argsort(labels, kind="stable")
    size = np.bincount(labels, minlength=k)
    ptr = np.concatenate([[0], np.cumsum(size)])
    out_q, out_i = [], []
    for side in (left, right):
        cnt = size[side]
        q = np.repeat(np.arange(side.size), cnt)
        offs = np.arange(q.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        out_q.append(q)
        out_i.append(by_event[np.repeat(ptr[side], cnt) + offs])
    return np.concatenate(out_q), np.concatenate(out_i)


def _merge(
    ts: np.ndarray,
    w: np.ndarray,
    ss: np.ndarray,
    labels: np.ndarray,
    log_odds: np.ndarray,
    log_alone: np.ndarray,
    event_cost: float,
    gate_var: float,
) -> np.ndarray:
    """Merge neighbouring events when it raises the partition likelihood; where both have a
    member of the same sensor, the one closer to the merged time stays and the other stands
    alone (compound move that gets past spurious detections holding a sensor's place).

    Partition log-likelihood: per event ``event_cost + sum(log_odds[s]) + log ∫prod N dtau``,
    per lone observation ``log_alone``. ``event_cost = log(event_rate) + sum_s log(1 - p_s)``.
    Only events within MERGE_SIGMAS of each other (``gate_var``: typical member variance)
    are compared: beyond that the Gaussian term cannot pay for a merge.
    """
    score = log_odds[ss]
    n_s = int(ss.max()) + 1
    for _ in range(64):
        labels = _compact(labels)
        k = int(labels.max()) + 1
        if k < 2:
            break
        wk, tau, ll = _event_stats(labels, ts, w, score, k)
        size = np.bincount(labels, minlength=k)
        lone_alt = np.zeros(k)
        lone_alt[labels] = log_alone[ss]  # meaningful for one-member events only
        ll_event = np.where(size >= 2, event_cost + ll, lone_alt)  # a lone observation: event or spurious
        order = np.argsort(tau, kind="stable")
        rank = np.empty(k, dtype=np.int64)
        rank[order] = np.arange(k)
        lefts, rights = [], []
        for off in range(1, min(MERGE_REACH, k - 1) + 1):
            lo, hi = order[:-off], order[off:]
            near = np.abs(tau[hi] - tau[lo]) <= MERGE_SIGMAS * np.sqrt(1.0 / wk[lo] + 1.0 / wk[hi] + 2.0 * gate_var)
            lefts.append(lo[near])
            rights.append(hi[near])
        left, right = np.concatenate(lefts), np.concatenate(rights)
        if left.size == 0:
            break
        nq = left.size
        rows_q, rows_i = _pair_rows(labels, k, left, right)
        wq = np.bincount(rows_q, weights=w[rows_i], minlength=nq)
        tq = np.bincount(rows_q, weights=w[rows_i] * ts[rows_i], minlength=nq) / wq
        # duplicates of a sensor within a pair: keep the closer one to the merged time
        dup = _duplicates(rows_q * n_s + ss[rows_i], np.abs(ts[rows_i] - tq[rows_q]))
        kq, ki = rows_q[~dup], rows_i[~dup]
        wkq = np.bincount(kq, weights=w[ki], minlength=nq)
        tkq = np.bincount(kq, weights=w[ki] * ts[ki], minlength=nq) / np.where(wkq > 0, wkq, 1.0)
        ssq = np.bincount(kq, weights=w[ki] * (ts[ki] - tkq[kq]) ** 2, minlength=nq)
        mq = np.bincount(kq, minlength=nq)
        hq = np.bincount(kq, weights=0.5 * np.log(w[ki]) + score[ki], minlength=nq)
        ll_merged = hq - 0.5 * (mq - 1) * math.log(2 * math.pi) - 0.5 * ssq - 0.5 * np.log(wkq)
        kept_alone = np.zeros(nq)
        kept_alone[kq] = log_alone[ss[ki]]
        l_merged = np.where(mq >= 2, event_cost + ll_merged, kept_alone)
        evicted = np.bincount(rows_q[dup], weights=log_alone[ss[rows_i[dup]]], minlength=nq)
        gain = (l_merged + evicted) - (ll_event[left] + ll_event[right])
        best_gain = np.zeros(k)
        best_partner = np.full(k, -1)
        better = gain > 0
        for x in (left, right):
            np.maximum.at(best_gain, x[better], gain[better])
        for x, y in ((left, right), (right, left)):
            hit = (gain > 0) & (gain >= best_gain[x])
            best_partner[x[hit]] = y[hit]
        cand = np.flatnonzero(best_partner >= 0)
        mutual = cand[best_partner[best_partner[cand]] == cand]
        mutual = mutual[rank[mutual] < rank[best_partner[mutual]]]
        if mutual.size == 0:
            break
        target = np.arange(k)
        target[best_partner[mutual]] = mutual
        merged = target[labels]
        # evict the worse duplicate of each sensor in the merged events
        touched = np.flatnonzero(np.isin(merged, mutual))
        mt = merged[touched]
        tau_sum = np.bincount(mt, weights=w[touched] * ts[touched], minlength=k)
        tau_m = tau_sum / np.maximum(np.bincount(mt, weights=w[touched], minlength=k), 1e-300)
        dup = touched[_duplicates(mt * n_s + ss[touched], np.abs(ts[touched] - tau_m[mt]))]
        merged[dup] = k + np.arange(dup.size)
        labels = merged
    return _compact(labels)


def _reassign(
    ts: np.ndarray,
    sg: np.ndarray,
    ss: np.ndarray,
    w: np.ndarray,
    labels: np.ndarray,
    n_sensors: int,
    log_odds: np.ndarray,
    log_alone: np.ndarray,
    event_cost: float,
) -> np.ndarray:
    """Move every observation to its likeliest event (given the event without the
    observation's own sensor), an event of its own, or nothing; within an (event, sensor)
    the best-fitting observation wins and the others stand alone."""
    n = ts.size
    k = int(labels.max()) + 1
    wk = np.bincount(labels, weights=w, minlength=k)
    tk = np.bincount(labels, weights=w * ts, minlength=k)
    key_own = labels * n_sensors + ss
    ws = np.bincount(key_own, weights=w, minlength=k * n_sensors)
    wts = np.bincount(key_own, weights=w * ts, minlength=k * n_sensors)
    obs, ev = _candidate_edges(ts, sg, tk / wk, 1.0 / wk)
    kk = ev * n_sensors + ss[obs]
    w_rest = wk[ev] - ws[kk]
    has = w_rest > 1e-9 * w[obs]
    safe = np.where(has, w_rest, 1.0)
    # joining a lone observation also turns it into an event member (as in the likelihood)
    cnt = np.bincount(key_own, minlength=k * n_sensors)
    m_rest = np.bincount(labels, minlength=k)[ev] - cnt[kk]
    member_gain = (log_odds - log_alone)[ss]
    gain_rest = np.bincount(labels, weights=member_gain, minlength=k)[ev]
    gain_rest -= np.bincount(key_own, weights=member_gain, minlength=k * n_sensors)[kk]
    pair = np.where(m_rest == 1, event_cost + gain_rest, 0.0)
    pred = _gauss_log(ts[obs] - (tk[ev] - wts[kk]) / safe, sg[obs] ** 2 + 1.0 / safe)
    score = np.where(has, log_odds[ss[obs]] + pred + pair, -np.inf)
    best = np.full(n, -np.inf)
    np.maximum.at(best, obs, score)
    alone = log_alone[ss]
    choose = (score >= best[obs]) & (score > alone[obs]) & np.isfinite(score)
    new = np.arange(n) + k  # default: stand alone
    new[obs[choose]] = ev[choose]
    score_new = np.where(new < k, best, -np.inf)
    joined = new < k
    dup = np.zeros(n, dtype=bool)
    dup[joined] = _duplicates(new[joined] * n_sensors + ss[joined], -score_new[joined])
    new[dup] = np.flatnonzero(dup) + k
    return _compact(new)


@dataclass(slots=True)
class _Memberships:
    """Edges (observation ↔ event) with their marginal probabilities, sorted-order indices."""

    obs: np.ndarray
    ev: np.ndarray
    prob: np.ndarray
    p_alone: np.ndarray  # per observation: an event only it saw (not reported as a group)
    p_out: np.ndarray  # per observation: spurious
    k_events: int


def _memberships(
    ts: np.ndarray,
    sg: np.ndarray,
    ss: np.ndarray,
    w: np.ndarray,
    labels: np.ndarray,
    n_sensors: int,
    det: np.ndarray,
    clutter: np.ndarray,
    ev_rate: float,
    sweeps: int,
) -> _Memberships:
    """Marginal memberships given the partition: each edge's predictive density uses the
    event without the observation's own sensor; one-per-sensor-per-event by loopy BP."""
    n = ts.size
    k = int(labels.max()) + 1
    log_miss = float(np.sum(np.log1p(-det)))
    log_odds = np.log(det / (1.0 - det))
    event_cost = math.log(ev_rate) + log_miss
    log_event_alone = event_cost + log_odds  # per sensor
    log_alone_any = np.maximum(log_event_alone, np.log(clutter))
    wk = np.bincount(labels, weights=w, minlength=k)
    tk = np.bincount(labels, weights=w * ts, minlength=k)
    obs, ev = _candidate_edges(ts, sg, tk / wk, 1.0 / wk)
    obs = np.concatenate([obs, np.arange(n)])  # every observation ↔ its own event
    ev = np.concatenate([ev, labels])
    first = np.unique(obs * k + ev, return_index=True)[1]
    obs, ev = obs[first], ev[first]
    es = ss[obs]
    key_es = ev * n_sensors + es
    own_key = labels * n_sensors + ss
    size_ks = k * n_sensors
    w_rest = wk[ev] - np.bincount(own_key, weights=w, minlength=size_ks)[key_es]
    t_rest = tk[ev] - np.bincount(own_key, weights=w * ts, minlength=size_ks)[key_es]
    has_rest = w_rest > 1e-9 * w[obs]
    safe = np.where(has_rest, w_rest, 1.0)
    log_pred = _gauss_log(ts[obs] - t_rest / safe, sg[obs] ** 2 + 1.0 / safe)
    # joining a lone observation turns it from "alone" into an event member: charge that
    m_rest = np.bincount(labels, minlength=k)[ev] - np.bincount(own_key, minlength=size_ks)[key_es]
    member_gain = (log_odds - log_alone_any)[ss]
    gain_rest = np.bincount(labels, weights=member_gain, minlength=k)[ev]
    gain_rest -= np.bincount(own_key, weights=member_gain, minlength=size_ks)[key_es]
    pair_term = np.where(m_rest == 1, event_cost + gain_rest, 0.0)
    log_clutter = np.log(clutter)
    log_a = np.where(has_rest, log_odds[es] + log_pred + pair_term, log_event_alone[es]) - log_clutter[es]
    a = np.exp(np.minimum(log_a, 700.0))
    # "an event only I saw" is already an edge when my own event has nobody else
    alone_edge = np.zeros(n, dtype=bool)
    alone_edge[obs[(~has_rest) & (ev == labels[obs])]] = True
    b = np.where(alone_edge, 0.0, np.exp(np.minimum(log_event_alone[ss] - log_clutter[ss], 700.0)))
    key = np.unique(key_es, return_inverse=True)[1]
    n_keys = int(key.max()) + 1
    nu = np.ones(obs.size)
    for _ in range(sweeps):
        row = np.bincount(obs, weights=a * nu, minlength=n)
        msg = a / (1.0 + b[obs] + row[obs] - a * nu)
        col = np.bincount(key, weights=msg, minlength=n_keys)
        nu = 1.0 / (1.0 + col[key] - msg)
    z = 1.0 + b + np.bincount(obs, weights=a * nu, minlength=n)
    prob, p_out = a * nu / z[obs], 1.0 / z
    # loopy BP is exact on trees only: where a cycle (identical events) lets one sensor's
    # expected count in an event exceed 1, scale its memberships down to 1 and count the
    # excess as spurious, so each observation's probabilities still sum to 1
    per_key = np.bincount(key, weights=prob, minlength=n_keys)
    over = per_key > 1.0
    if over.any():
        scaled = prob / np.where(over, per_key, 1.0)[key]
        p_out = p_out + np.bincount(obs, weights=prob - scaled, minlength=n)
        prob = scaled
    return _Memberships(obs, ev, prob, b / z, p_out, k)


def _assemble(
    m: _Memberships, ts: np.ndarray, w: np.ndarray, ss: np.ndarray, order: np.ndarray, names: np.ndarray, t0: float
) -> tuple[list[Group], np.ndarray]:
    """Groups (every event with a member) and per-observation outlier probability
    (sorted order): spurious + "only I saw it" + negligible edges."""
    outlier = m.p_out + m.p_alone
    keep = m.prob > MIN_REPORTED  # negligible memberships are folded into the outlier mass
    np.add.at(outlier, m.obs[~keep], m.prob[~keep])
    e = np.flatnonzero(keep)
    e = e[np.argsort(m.ev[e], kind="stable")]
    ev_of = m.ev[e]
    pw = m.prob[e] * w[m.obs[e]]
    gw = np.bincount(ev_of, weights=pw, minlength=m.k_events)
    gt = np.bincount(ev_of, weights=pw * ts[m.obs[e]], minlength=m.k_events)
    orig = order[m.obs[e]].tolist()
    sens = names.astype(object)[ss[m.obs[e]]].tolist()  # the same str objects, not one per member
    probs = m.prob[e].tolist()
    starts = [0, *(np.flatnonzero(np.diff(ev_of)) + 1).tolist()]
    ends = [*starts[1:], len(orig)]
    events = ev_of[starts].tolist() if orig else []
    t_event = (t0 + gt / np.where(gw > 0, gw, 1.0)).tolist()
    s_event = (1.0 / np.sqrt(np.where(gw > 0, gw, 1.0))).tolist()
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of new tuples would trigger needless full collections
    try:
        members = list(map(_new_member, zip(sens, orig, probs, strict=True)))
        groups = [
            Group(t_event[ev], members[lo:hi], s_event[ev]) for ev, lo, hi in zip(events, starts, ends, strict=True)
        ]
    finally:
        if collecting:
            gc.enable()
    groups.sort(key=lambda gr: gr.t_global)
    return groups, outlier


def group_observations(
    sensor_ids: Sequence[str] | np.ndarray,
    t_global: Sequence[float] | np.ndarray,
    sigma: Sequence[float] | np.ndarray | float,
    params: AssociationParams | None = None,
) -> Groups:
    """Group observations of events seen by several sensors (see module docstring).

    ``sensor_ids``, ``t_global`` (s) and ``sigma`` (s, 1-sigma timing noise; scalar or per
    observation) have equal length. Returns :class:`Groups` sorted by time; each member's
    ``index`` refers to the input position. For every observation, its memberships plus
    ``groups.outlier[index]`` sum to 1. The result does not depend on the input order.
    """
    p = params or AssociationParams()
    ids = np.asarray(sensor_ids, dtype=object)
    t = np.asarray(t_global, dtype=np.float64)
    n = t.size
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n,)).astype(np.float64)
    if ids.shape != (n,):
        raise ValueError(f"{ids.size} sensor ids for {n} times")
    out = Groups()
    if n == 0:
        out.outlier, out.partition = np.zeros(0), np.zeros(0, dtype=np.int64)
        out.detection, out.clutter, out.event_rate = {}, {}, 0.0
        return out
    if not (np.isfinite(t).all() and np.isfinite(sig).all()) or (sig <= 0).any():
        raise ValueError("times must be finite and sigmas finite and > 0")
    names, s_all = np.unique(ids.astype(str), return_inverse=True)
    n_sensors = names.size
    order = np.lexsort((sig, s_all, t))  # canonical order: independent of the input order
    t0 = float(t[order[0]])
    ts, sg, ss = t[order] - t0, sig[order], s_all[order]
    w = 1.0 / sg**2
    # rates are per second: a slice shorter than MIN_SPAN_S says nothing finer about them
    span = max(float(ts[-1]) + 6.0 * float(np.median(sg)), MIN_SPAN_S)

    per_sensor = np.bincount(s_all, minlength=n_sensors).astype(np.float64)
    det = np.full(n_sensors, p.detection_prob if p.detection_prob is not None else DETECTION_PRIOR)
    clutter = np.full(n_sensors, p.clutter_rate) if p.clutter_rate is not None else CLUTTER_PRIOR * per_sensor / span
    ev_rate = p.event_rate if p.event_rate is not None else float(per_sensor.max()) / span

    labels = _initial_partition(ts, sg, ss, n_sensors)
    gate_var = float(np.median(sg)) ** 2
    for it in range(max(1, p.iterations)):
        log_odds = np.log(det / (1.0 - det))
        event_cost = math.log(ev_rate) + float(np.sum(np.log1p(-det)))
        log_alone = np.maximum(event_cost + log_odds, np.log(clutter))
        for _ in range(REFINE_ROUNDS):
            before = labels
            labels = _merge(ts, w, ss, labels, log_odds, log_alone, event_cost, gate_var)
            labels = _reassign(ts, sg, ss, w, labels, n_sensors, log_odds, log_alone, event_cost)
            if np.array_equal(_compact(labels), _compact(before)):
                break
        labels = _merge(ts, w, ss, labels, log_odds, log_alone, event_cost, gate_var)
        if it < p.iterations - 1:
            det, clutter, ev_rate = _estimate_parameters(p, ts, sg, ss, labels, n_sensors, per_sensor, span, det,
                                                         clutter, ev_rate)  # fmt: skip
    memberships = _memberships(ts, sg, ss, w, labels, n_sensors, det, clutter, ev_rate, p.bp_sweeps)
    groups, outlier_sorted = _assemble(memberships, ts, w, ss, order, names, t0)
    out.extend(groups)
    out.outlier = np.empty(n)
    out.outlier[order] = outlier_sorted
    out.partition = np.empty(n, dtype=np.int64)
    out.partition[order] = labels
    out.detection = {str(names[i]): float(det[i]) for i in range(n_sensors)}
    out.clutter = {str(names[i]): float(clutter[i]) for i in range(n_sensors)}
    out.event_rate = float(ev_rate)
    return out


def _estimate_parameters(
    p: AssociationParams,
    ts: np.ndarray,
    sg: np.ndarray,
    ss: np.ndarray,
    labels: np.ndarray,
    n_sensors: int,
    per_sensor: np.ndarray,
    span: float,
    det: np.ndarray,
    clutter: np.ndarray,
    ev_rate: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Robust parameter estimates from the partition (priors worth PRIOR_EVENTS events):
    detection from the events several sensors saw; clutter from observations far from any
    such event, per second of the time those events leave free; event rate corrected for
    events fewer than two sensors saw."""
    k = int(labels.max()) + 1
    size = np.bincount(labels, minlength=k)
    multi = size >= 2
    n_multi = int(multi.sum())
    if p.detection_prob is None:
        hits = np.bincount(ss[multi[labels]], minlength=n_sensors)
        det = np.clip((hits + PRIOR_EVENTS * DETECTION_PRIOR) / (n_multi + PRIOR_EVENTS), 0.02, 0.98)
    w = 1.0 / sg**2
    wk = np.bincount(labels, weights=w, minlength=k)
    tau = np.bincount(labels, weights=w * ts, minlength=k) / wk
    ev_times = np.sort(tau[multi])
    if p.clutter_rate is None:
        if ev_times.size:
            pos = np.clip(np.searchsorted(ev_times, ts), 1, max(ev_times.size - 1, 1))
            near = np.minimum(np.abs(ts - ev_times[pos - 1]), np.abs(ts - ev_times[np.minimum(pos, ev_times.size - 1)]))
            far = near > EDGE_SIGMAS * sg
            window = 2.0 * EDGE_SIGMAS * float(np.median(sg))
            free = max(span - n_multi * window, 0.1 * span)
        else:
            far = np.ones(ts.size, dtype=bool)
            free = span
        count = np.bincount(ss[far], minlength=n_sensors)
        prior = PRIOR_EVENTS * CLUTTER_PRIOR
        clutter = (count + prior) / (free + prior * span / np.maximum(per_sensor, 1.0))
    if p.event_rate is None:
        miss = 1.0 - det
        p_ge2 = 1.0 - float(np.prod(miss)) - float(np.sum(det * np.prod(miss) / miss))
        ev_rate = max(n_multi / max(p_ge2, 0.05), 1.0) / span
    return det, clutter, ev_rate


def _candidate_edges(ts: np.ndarray, sg: np.ndarray, tau: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each observation ↔ its <= CANDIDATES nearest events within EDGE_SIGMAS."""
    order = np.argsort(tau)
    tau_s = tau[order]
    pos = np.searchsorted(tau_s, ts)
    offsets = np.arange(-(CANDIDATES // 2), CANDIDATES - CANDIDATES // 2)
    cand = pos[:, None] + offsets[None, :]
    valid = (cand >= 0) & (cand < tau_s.size)
    cand = np.clip(cand, 0, tau_s.size - 1)
    ev = order[cand]
    valid &= np.abs(ts[:, None] - tau[ev]) <= EDGE_SIGMAS * np.sqrt(sg[:, None] ** 2 + var[ev])
    obs = np.broadcast_to(np.arange(ts.size)[:, None], ev.shape)
    return obs[valid], ev[valid]
