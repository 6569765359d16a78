"""Loss prediction and FEC: PR-AUC, Brier, and overhead against residual loss.

Data
----
The simulator (`oxidize_ml.sim`) runs the held-out scenarios of
`oxidize_ml.evaluation.splits` (``HELDOUT_SCENARIOS``, the ``HELDOUT_TRACES``
when the trace folder exists) plus ``random-loss`` and ``burst-loss`` with
evaluation seeds, each with CUBIC and BBR (losses depend on the controller:
CUBIC overflows the buffer periodically, BBR much less). Every 10-ms decision
interval's `NetworkFeatures` are collected through the ``on_interval`` hook.

Labels follow `oxidize_ml.loss`: at interval time ``t`` the label is the mean
``loss_rate`` of the observations with timestamps in (t + 50 ms, t + 100 ms];
"a loss happened" is label > 0. Intervals whose window runs past the end of
the run have no label and are dropped.

Predictors
----------
Each predictor is a ``Policy[NetworkFeatures, float]`` built fresh for every
run (one connection) by a zero-argument factory. At each interval it gets
``learn_one(features, features.loss_rate, now=t)`` and then
``predict_one(features, now=t)``: the prediction at ``t`` sees everything up
to ``t`` and nothing after. The heuristic (`EwmaLossPredictor`, name
``"ewma"``) always runs; pass learned ones with ``predictors={"lstm": f}``.

Scores: PR-AUC (average precision) on label > 0 and the Brier score of the
prediction against the label (REFERENCES section 3), pooled over every run.

FEC
---
Block code of ``k`` data + ``r`` repair packets, recovered when at most ``r``
of ``k + r`` are lost (REFERENCES section 3). Each decision protects one block
of ``k`` data packets sent in the prediction window, and its residual loss is
`oxidize_ml.loss.residual_loss` at the realised loss rate (the label)::

    residual_i = R(label_i; k, r_i)        overhead = sum r_i / sum (k + r_i)

so overhead is the share of sent packets that are repair packets (the
`FecDecision` convention, r / (k + r)) and every decision weighs the same.
Independent losses inside a block are the optimistic case for FEC (the
`FecPolicy` docstring says so); the same assumption applies to every method,
so the comparison stays fair. A fractional ``r`` (a fixed ratio, a WebRTC
rate, a scaled curve) is realised by time-sharing: a share ``r - floor(r)``
of the blocks gets ``ceil(r)`` repair packets, the rest ``floor(r)``, and both
residual and overhead are the matching mixtures (what a sender alternating
between the two codes gets).

Methods compared:

- ``none``: no FEC; its residual is the raw loss.
- ``fixed``: a constant ratio r / (k + r) = `FIXED_RATIO` (10 %).
- ``webrtc``: `webrtc_fec_rate` from the loss measured over the last second,
  the delivery rate and the RTT: a non-learned table baseline in the shape
  of libwebrtc's (REFERENCES section 3).
- every predictor through `oxidize_ml.loss.FecPolicy` (the engine's table).
- ``hindsight``: `FecPolicy` fed the label itself, a bound no predictor
  reaches (it knows the future window's loss rate).

At equal overhead
-----------------
Each method's operating point is one overhead; to compare residual loss at
the *same* overhead, each predictor's probability is multiplied by a scale
factor before `FecPolicy` (`SCALES`, 1/16 to 32: the same predictor,
re-calibrated), tracing a residual-against-overhead curve. The issue-4
metric is each predictor's residual interpolated at the heuristic's own
overhead, divided by the heuristic's residual there (target: <= 0.7).
Linear interpolation between two curve points is achievable by
time-sharing the two scales. The fixed ratio and WebRTC rates are swept the
same way (scaling the ratio), for reference.

Any user's traces
-----------------
`evaluate_fec_traces` runs the same comparison on any Mahimahi files, RTTs
and durations (several windows per trace, the simulator's observations as a
sender sees them (`oxidize_ml.interval_stats`), paired block-bootstrap CIs over
runs) and adds the burst-aware predictor with its own FEC policy
(`oxidize_ml.loss.burst`, `oxidize_ml.loss.fec.BurstFecPolicy`);
`score_runs` scores any labelled runs the same way. ``run`` keeps the
built-in plan (`TRACE_RTT_S` is only its default).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.evaluation.formatting import fixed
from oxidize_ml.evaluation.formatting import json_number as _num
from oxidize_ml.evaluation.scores import (
    brier,
    interpolate_at,
    pr_auc,
    precision_recall_curve,
    roc_auc,
)
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss import (
    HORIZON_END_S,
    HORIZON_START_S,
    EwmaLossPredictor,
    FecConfig,
    FecPolicy,
)
from oxidize_ml.policy import LossPolicy

_fmt = functools.partial(fixed, missing="n/a")  # the tables' format

HEURISTIC = "ewma"
"""name of the heuristic predictor (always evaluated; the reference at equal overhead)"""
HINDSIGHT = "hindsight"
"""name of the method fed the label itself (a bound, not a predictor)"""
CONTROLLERS: tuple[str, ...] = ("cubic", "bbr")
"""congestion controllers the data is collected under"""
FIXED_RATIO = 0.10
"""the fixed-FEC baseline's r / (k + r)"""
SCALES: tuple[float, ...] = tuple(2.0 ** (e / 2.0) for e in range(-8, 11))
"""multipliers on a predictor's probability (or a baseline's ratio) for the
equal-overhead curves: 2^-4 .. 2^5 in half-octave steps"""
N_SEEDS_FULL = 2
"""run seeds of each random scenario (random-loss, burst-loss) in full mode"""
RANDOM_SCENARIOS: tuple[str, ...] = ("random-loss", "burst-loss")
"""training-suite scenarios with random loss, re-run with evaluation seeds"""
QUICK_DURATION_S = 8.0
"""simulated seconds per run in quick mode"""
TRACE_RTT_S = 0.060
"""base RTT of the Mahimahi trace scenarios (as the congestion evaluation's)"""
TRACE_BUFFER_BDP = 2.0
"""buffer of the trace scenarios in BDPs (as the congestion evaluation's)"""
TRACE_DURATION_S = 30.0
"""simulated seconds per trace run (full mode)"""
SEED_STRIDE = 100
"""run seeds are ``EVAL_SEED_BASE + SEED_STRIDE * seed + i``"""
WEBRTC_LOSS_WINDOW_S = 1.0
"""the WebRTC baseline's loss measurement window, seconds (an RTCP report interval)"""
PR_CURVE_POINTS = 200
"""points kept per precision-recall curve in the result (for plots)"""
_EPS_S = 1e-9
"""tolerance on window boundaries: tick times are multiples of 10 ms in floats"""

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, label)``, called after each simulator run"""


PredictorFactory = Callable[[], LossPolicy]
"""builds a fresh predictor (no state) for one run"""


# ---------------------------------------------------------------- the WebRTC-style table

WEBRTC_LOW_RTT_NACK_MS = 20.0
"""below this RTT WebRTC protects with NACK (retransmission) only: a repair
arrives in time, so no FEC is sent (libwebrtc's hybrid NACK/FEC mode)"""
WEBRTC_MIN_LOSS = 1.0 / 255.0
"""loss below one step of an 8-bit loss fraction counts as none (RTCP reports
loss as a fraction of 256, libwebrtc indexes its table in 1/255 steps)"""
WEBRTC_MIN_RATE = 0.20
"""protection floor whenever loss is reported: libwebrtc keeps about 20 % so
the first partition of every frame is protected"""
WEBRTC_MAX_RATE = 0.50
"""protection ceiling: libwebrtc's table is defined up to 50 %"""
WEBRTC_FRAME_RATE = 30.0
"""frames per second assumed to turn a bitrate into bits per frame"""
WEBRTC_MIN_BYTES_PER_FRAME = 700.0
"""below this many bytes per frame FEC is off unless RTT is high: too few
packets per frame for a block code to be efficient"""
WEBRTC_HIGH_RTT_MS = 200.0
"""above this RTT FEC stays on even at low bitrates (retransmission too late)"""
WEBRTC_RATE_TABLE: tuple[tuple[float, float], ...] = (
    (200e3, 3.0),
    (500e3, 2.5),
    (1e6, 2.0),
    (2e6, 1.75),
    (4e6, 1.5),
)
"""(bitrate bps, protection per unit of loss): the rate grows linearly with the
measured loss, steeper at low bitrates where frames span few packets and a
block code needs relatively more repair; interpolated in log bitrate, clamped
at both ends"""


def webrtc_fec_rate(loss_fraction: float, bitrate_bps: float, rtt_ms: float) -> float:
    """FEC protection rate (repair share of sent packets) of a WebRTC-style table.

    A documented approximation of the *shape* of libwebrtc's
    ``media_opt_util`` FEC logic (REFERENCES section 3), not its table:

    1. RTT below `WEBRTC_LOW_RTT_NACK_MS`: 0 (NACK only).
    2. Loss below `WEBRTC_MIN_LOSS`: 0.
    3. Fewer than `WEBRTC_MIN_BYTES_PER_FRAME` bytes per frame (at
       `WEBRTC_FRAME_RATE`) and RTT below `WEBRTC_HIGH_RTT_MS`: 0.
    4. Otherwise ``loss x m(bitrate)`` from `WEBRTC_RATE_TABLE`, raised to
       `WEBRTC_MIN_RATE` and capped at `WEBRTC_MAX_RATE`.

    Parameters
    ----------
    loss_fraction
        Measured loss in [0, 1] (the baseline uses the last second's).
    bitrate_bps
        Send rate, bits/s, >= 0.
    rtt_ms
        Round-trip time, milliseconds, >= 0.

    Returns
    -------
    float
        r / (k + r) in [0, `WEBRTC_MAX_RATE`], nondecreasing in loss.

    Examples
    --------
    >>> webrtc_fec_rate(0.0, 2e6, 80.0)
    0.0
    >>> webrtc_fec_rate(0.05, 2e6, 10.0)   # low RTT: NACK only
    0.0
    >>> webrtc_fec_rate(0.05, 2e6, 80.0)   # floor
    0.2
    >>> round(webrtc_fec_rate(0.15, 2e6, 80.0), 4)
    0.2625
    """
    loss = check_number("loss_fraction", loss_fraction, hi=1.0)
    rate = check_number("bitrate_bps", bitrate_bps)
    rtt = check_number("rtt_ms", rtt_ms)
    if rtt < WEBRTC_LOW_RTT_NACK_MS or loss < WEBRTC_MIN_LOSS:
        return 0.0
    bytes_per_frame = rate / 8.0 / WEBRTC_FRAME_RATE
    if bytes_per_frame < WEBRTC_MIN_BYTES_PER_FRAME and rtt < WEBRTC_HIGH_RTT_MS:
        return 0.0
    return min(WEBRTC_MAX_RATE, max(WEBRTC_MIN_RATE, loss * _webrtc_multiplier(rate)))


_WEBRTC_LOG_RATES = tuple(math.log(b) for b, _ in WEBRTC_RATE_TABLE)
_WEBRTC_MULTS = tuple(m for _, m in WEBRTC_RATE_TABLE)


def _webrtc_multiplier(rate_bps: float) -> float:
    """`WEBRTC_RATE_TABLE` interpolated in log bitrate, clamped at both ends."""
    xs, ys = _WEBRTC_LOG_RATES, _WEBRTC_MULTS
    x = math.log(max(rate_bps, 1.0))
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + w * (ys[i] - ys[i - 1])
    return ys[-1]


# ---------------------------------------------------------------- residual loss, vectorised


def _residual_int(p: np.ndarray, r: int, k: int) -> np.ndarray:
    """`oxidize_ml.loss.residual_loss` for an array of ``p`` and one integer ``r``."""
    n = k + r
    if r >= n:
        return np.zeros_like(p)
    lost = np.arange(r + 1, n + 1, dtype=np.float64)  # [m]
    comb = np.array([math.comb(n, int(v)) for v in lost], dtype=np.float64)  # [m]
    pc = p[:, None]  # [s, 1]
    pmf = comb[None, :] * pc ** lost[None, :] * (1.0 - pc) ** (n - lost)[None, :]  # [s, m]
    return pmf @ (lost / n)  # [s]


def expected_residual(p: np.ndarray, r: np.ndarray, k: int) -> np.ndarray:
    """Residual data loss of (k + r, k) MDS blocks at loss rates ``p``, fractional ``r``.

    Exactly `oxidize_ml.loss.residual_loss` where ``r`` is an integer; a
    fractional ``r`` is time-shared between ``floor(r)`` and ``ceil(r)``.
    ``p``, ``r``: ``[s]`` -> ``[s]``.
    """
    p = np.asarray(p, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"p and r differ in shape: {p.shape} != {r.shape}")
    lo = np.floor(r).astype(np.int64)
    frac = r - lo
    out = np.zeros_like(p)
    lossy = p > 0.0  # nothing is lost at p = 0 (most intervals): skip them
    for rr in np.unique(lo[lossy]):
        m = lossy & (lo == rr)
        r0 = _residual_int(p[m], int(rr), k)
        f = frac[m]
        if np.any(f > 0.0):
            r1 = _residual_int(p[m], int(rr) + 1, k)
            out[m] = (1.0 - f) * r0 + f * r1
        else:
            out[m] = r0
    return out


def fec_point(labels: np.ndarray, r: np.ndarray, k: int) -> tuple[float, float]:
    """(overhead = sum r / sum (k + r), mean residual loss) of per-decision ``r``."""
    r = np.asarray(r, dtype=np.float64)
    overhead = float(r.sum() / (k * r.size + r.sum())) if r.size else math.nan
    residual = float(expected_residual(labels, r, k).mean()) if r.size else math.nan
    return overhead, residual


def ratio_to_repair(ratio: np.ndarray | float, k: int) -> np.ndarray:
    """r / (k + r) -> r (fractional): ``r = k c / (1 - c)``."""
    c = np.asarray(ratio, dtype=np.float64)
    return k * c / (1.0 - c)


class _RepairTable:
    """`FecPolicy.repair_packets` over arrays (memoised: predictions repeat a lot)."""

    def __init__(self, policy: FecPolicy) -> None:
        self._policy = policy

    def __call__(self, p: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(np.clip(p, 0.0, 1.0), return_inverse=True)
        rep = self._policy.repair_packets
        vals = np.fromiter((rep(float(x)) for x in uniq), dtype=np.float64, count=uniq.size)
        return vals[inv]


# ---------------------------------------------------------------- data collection


@dataclass(frozen=True, slots=True)
class LossRun:
    """One simulator run's per-interval observations and labels."""

    scenario: str
    controller: str
    seed: int
    held_out: bool
    """True for held-out scenarios and traces (False for the re-seeded training ones)"""
    times: np.ndarray
    """interval end times, seconds ``[n]``"""
    features: tuple[NetworkFeatures, ...]
    """observations ``[n]``"""
    labels: np.ndarray
    """mean loss rate in (t + 50 ms, t + 100 ms] ``[n]``; NaN where the window is incomplete"""

    @property
    def valid(self) -> np.ndarray:
        """mask of intervals with a label"""
        return ~np.isnan(self.labels)


def horizon_labels(times: np.ndarray, loss_rate: np.ndarray) -> np.ndarray:
    """The project's label at every interval (see `oxidize_ml.loss`); NaN where undefined.

    A label needs the whole window: intervals whose (t + 50 ms, t + 100 ms]
    runs past the last observation, or that contains no observation, get NaN.
    """
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(loss_rate, dtype=np.float64)
    if t.shape != x.shape or t.ndim != 1:
        raise ValueError(f"times and loss_rate must be 1-D of equal length: {t.shape}, {x.shape}")
    if t.size and np.any(np.diff(t) < 0.0):
        raise ValueError("times must be nondecreasing")
    csum = np.concatenate(([0.0], np.cumsum(x)))
    lo = np.searchsorted(t, t + HORIZON_START_S + _EPS_S, side="left")
    hi = np.searchsorted(t, t + HORIZON_END_S + _EPS_S, side="right")
    cnt = hi - lo
    out = np.full(t.shape, math.nan)
    ok = (cnt > 0) & (t + HORIZON_END_S <= (t[-1] if t.size else 0.0) + _EPS_S)
    out[ok] = (csum[hi[ok]] - csum[lo[ok]]) / cnt[ok]
    return out


def _plan(
    *,
    seed: int,
    quick: bool,
    scenarios: Sequence[str] | None,
    include_traces: bool,
    duration_s: float | None,
    n_seeds: int | None,
) -> list[tuple[Any, bool, float, tuple[int, ...]]]:
    """(scenario, held_out, duration, run seeds) for every scenario to run."""
    from oxidize_ml.evaluation.splits import (
        EVAL_SEED_BASE,
        HELDOUT_SCENARIOS,
        HELDOUT_TRACES,
        trace_paths,
    )
    from oxidize_ml.sim import BufferSpec, get_scenario, scenario_from_trace

    cands: list[tuple[Any, bool]] = [(get_scenario(n), True) for n in HELDOUT_SCENARIOS]
    if include_traces:
        for p in trace_paths(HELDOUT_TRACES):
            cands.append(
                (
                    scenario_from_trace(
                        p,
                        rtt_s=TRACE_RTT_S,
                        buffer=BufferSpec(bdp=TRACE_BUFFER_BDP),
                        duration_s=TRACE_DURATION_S,
                    ),
                    True,
                )
            )
    cands += [(get_scenario(n), False) for n in RANDOM_SCENARIOS]
    if scenarios is not None:
        known = [s.name for s, _ in cands]
        unknown = [n for n in scenarios if n not in known]
        if unknown:
            raise ValueError(f"unknown scenarios {unknown}; choose from {known}")
        cands = [c for c in cands if c[0].name in scenarios]
    if duration_s is not None and check_number("duration_s", duration_s) <= 0.0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    k_random = n_seeds if n_seeds is not None else (1 if quick else N_SEEDS_FULL)
    check_int("n_seeds", k_random, lo=1)
    base = EVAL_SEED_BASE + SEED_STRIDE * seed
    plan = []
    for i, (sc, held) in enumerate(cands):
        if duration_s is not None:
            dur = duration_s
        else:
            dur = min(QUICK_DURATION_S, sc.duration_s) if quick else sc.duration_s
        k = k_random if sc.is_random else 1
        # one seed block per scenario, so adding a scenario never reseeds another
        plan.append((sc, held, float(dur), tuple(base + 10 * i + j for j in range(k))))
    return plan


def collect_runs(
    *,
    seed: int = 0,
    quick: bool = False,
    controllers: Sequence[str] = CONTROLLERS,
    scenarios: Sequence[str] | None = None,
    include_traces: bool = True,
    duration_s: float | None = None,
    n_seeds: int | None = None,
    progress: ProgressFn | None = None,
) -> list[LossRun]:
    """Run the simulator on the evaluation scenarios and collect labelled intervals.

    Arguments as `run`. Multi-flow scenarios are not in the plan; only flow 0
    would be recorded.
    """

    check_int("seed", seed)
    if isinstance(controllers, str) or not controllers:
        raise ValueError(f"controllers must be a non-empty sequence of names, got {controllers!r}")
    plan = _plan(
        seed=seed,
        quick=quick,
        scenarios=scenarios,
        include_traces=include_traces,
        duration_s=duration_s,
        n_seeds=n_seeds,
    )
    total = sum(len(seeds) for *_, seeds in plan) * len(controllers)
    done = 0
    out: list[LossRun] = []
    for sc, held, dur, seeds in plan:
        for ctrl in controllers:
            for s in seeds:
                out.append(_loss_run(sc, ctrl, s, dur, name=sc.name, heldout=held))
                done += 1
                if progress is not None:
                    progress(done, total, f"{sc.name} / {ctrl}")
    return out


def _loss_run(
    sc: Any,
    ctrl: str,
    seed: int,
    duration_s: float | None,
    *,
    name: str,
    heldout: bool,
) -> LossRun:
    """Simulate ``sc`` with ``ctrl`` and label flow 0's intervals (loss 50-100 ms ahead).

    The observations are kept as the simulator reports them: their
    ``buffer_occupancy`` is already the sender-side estimate
    (`oxidize_ml.interval_stats.IntervalStats`), what the engine gets from the
    aioquic plug-in."""
    from oxidize_ml.sim import simulate

    times: list[float] = []
    feats: list[NetworkFeatures] = []

    def hook(now: float, flow: int, f: NetworkFeatures, _thr: float, _cwnd: int) -> None:
        if flow == 0:
            times.append(now)
            feats.append(f)

    simulate(sc, ctrl, seed=seed, duration_s=duration_s, record_series=False, on_interval=hook)
    t = np.asarray(times, dtype=np.float64)
    lr = np.fromiter((f.loss_rate for f in feats), dtype=np.float64, count=len(feats))
    return LossRun(name, ctrl, seed, heldout, t, tuple(feats), horizon_labels(t, lr))


def predict_run(factory: PredictorFactory, run: LossRun, *, name: str = "predictor") -> np.ndarray:
    """A fresh predictor's prediction at every interval of ``run`` (learn, then predict).

    Raises ``ValueError`` naming the predictor when a prediction is not a
    probability.
    """
    pred = factory()
    out = np.empty(len(run.features), dtype=np.float64)
    learn = pred.learn_one
    predict = pred.predict_one
    for i, (t, f) in enumerate(zip(run.times.tolist(), run.features, strict=True)):
        learn(f, f.loss_rate, now=t)
        out[i] = predict(f, now=t)
    if out.size and not (np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0):
        bad = out[~(np.isfinite(out) & (out >= 0.0) & (out <= 1.0))][0]
        raise ValueError(f"predictor {name!r} returned {bad!r}, not a probability in [0, 1]")
    return out


def measured_loss(run: LossRun, window_s: float = WEBRTC_LOSS_WINDOW_S) -> np.ndarray:
    """Mean per-interval loss rate over (t - window_s, t] at every interval (what a
    receiver report would say)."""
    t = run.times
    x = np.fromiter((f.loss_rate for f in run.features), dtype=np.float64, count=t.size)
    csum = np.concatenate(([0.0], np.cumsum(x)))
    lo = np.searchsorted(t, t - window_s + _EPS_S, side="left")
    hi = np.arange(1, t.size + 1)
    return (csum[hi] - csum[lo]) / (hi - lo)


def webrtc_rates(run: LossRun) -> np.ndarray:
    """`webrtc_fec_rate` at every interval of ``run`` (last second's loss, delivery rate, RTT)."""
    loss = measured_loss(run)
    return np.fromiter(
        (
            webrtc_fec_rate(min(1.0, float(lv)), f.bandwidth_bps, f.rtt_us / 1000.0)
            for lv, f in zip(loss.tolist(), run.features, strict=True)
        ),
        dtype=np.float64,
        count=loss.size,
    )


# ---------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class PredictorScores:
    """How well one predictor ranks and calibrates loss."""

    name: str
    pr_auc: float
    """average precision on label > 0 (NaN without a loss)"""
    roc_auc: float
    brier: float
    """mean (p - label)^2"""
    mean_prediction: float
    mean_label: float
    base_rate: float
    """share of intervals with label > 0 (PR-AUC of a random predictor)"""
    n: int
    per_scenario: dict[str, dict[str, float]] = field(default_factory=dict)
    """scenario -> {pr_auc, brier, base_rate}"""
    held_out: dict[str, float] = field(default_factory=dict)
    """{pr_auc, brier, base_rate, n} over the held-out scenarios and traces only (the
    re-seeded training scenarios random-loss and burst-loss left out)"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pr_auc": _num(self.pr_auc),
            "roc_auc": _num(self.roc_auc),
            "brier": _num(self.brier),
            "mean_prediction": _num(self.mean_prediction),
            "mean_label": _num(self.mean_label),
            "base_rate": _num(self.base_rate),
            "n": self.n,
            "held_out": {k: _num(v) for k, v in self.held_out.items()},
            "per_scenario": {
                k: {a: _num(b) for a, b in v.items()} for k, v in self.per_scenario.items()
            },
        }


@dataclass(frozen=True, slots=True)
class FecMethodResult:
    """One FEC method's operating point."""

    name: str
    kind: str
    """"none", "fixed", "table", "predictor" or "hindsight\""""
    overhead: float
    """repair share of sent packets, sum r / sum (k + r)"""
    residual: float
    """mean share of data packets left unrecovered"""
    protected_share: float
    """share of decisions with r > 0"""
    per_scenario: dict[str, dict[str, float]] = field(default_factory=dict)
    """scenario -> {overhead, residual}"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "overhead": _num(self.overhead),
            "residual": _num(self.residual),
            "protected_share": _num(self.protected_share),
            "per_scenario": {
                k: {a: _num(b) for a, b in v.items()} for k, v in self.per_scenario.items()
            },
        }


@dataclass(frozen=True, slots=True)
class FecCurve:
    """Residual against overhead as one knob scales a method's protection."""

    name: str
    scales: tuple[float, ...]
    overhead: tuple[float, ...]
    residual: tuple[float, ...]

    def residual_at(self, overhead: float) -> float:
        """Residual interpolated at ``overhead`` (NaN outside the curve's range)."""
        if not math.isfinite(overhead):
            return math.nan
        return interpolate_at(self.overhead, self.residual, overhead)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scales": list(self.scales),
            "overhead": [_num(x) for x in self.overhead],
            "residual": [_num(x) for x in self.residual],
        }


@dataclass(frozen=True, slots=True)
class RunSummary:
    scenario: str
    controller: str
    seed: int
    held_out: bool
    n: int
    """labelled intervals"""
    mean_loss: float
    loss_share: float
    """share of intervals with label > 0"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "controller": self.controller,
            "seed": self.seed,
            "held_out": self.held_out,
            "n": self.n,
            "mean_loss": _num(self.mean_loss),
            "loss_share": _num(self.loss_share),
        }


@dataclass(frozen=True, slots=True)
class FecEvalResult:
    """Everything `run` measured; `to_dict` is JSON-able, `markdown` the report section."""

    seed: int
    quick: bool
    k_data_packets: int
    predictors: tuple[PredictorScores, ...]
    methods: tuple[FecMethodResult, ...]
    curves: tuple[FecCurve, ...]
    reference_overhead: float
    """the heuristic's overhead: where the equal-overhead comparison is made"""
    equal_overhead: dict[str, float]
    """method -> residual interpolated at `reference_overhead` (NaN: curve does not reach it)"""
    runs: tuple[RunSummary, ...]
    raw_loss: float
    """mean label (= residual without FEC)"""
    pr_curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    """predictor -> (recall, precision), at most `PR_CURVE_POINTS` points"""
    wall_s: float
    notes: tuple[str, ...] = ()

    def method(self, name: str) -> FecMethodResult:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(f"no FEC method {name!r}; methods: {[m.name for m in self.methods]}")

    def scores(self, name: str) -> PredictorScores:
        for p in self.predictors:
            if p.name == name:
                return p
        raise KeyError(f"no predictor {name!r}; predictors: {[p.name for p in self.predictors]}")

    def curve(self, name: str) -> FecCurve:
        for c in self.curves:
            if c.name == name:
                return c
        raise KeyError(f"no curve {name!r}; curves: {[c.name for c in self.curves]}")

    def ratio_vs_heuristic(self, name: str) -> float:
        """Residual of ``name`` at the heuristic's overhead / the heuristic's residual."""
        ref = self.equal_overhead.get(HEURISTIC, math.nan)
        val = self.equal_overhead.get(name, math.nan)
        if not (math.isfinite(ref) and math.isfinite(val)) or ref <= 0.0:
            return math.nan
        return val / ref

    def headline(self) -> list[str]:
        h = self.scores(HEURISTIC)
        ew = self.method(HEURISTIC)
        lines = [
            (
                f"Loss/FEC: raw loss {self.raw_loss:.2%}; the EWMA heuristic's FEC leaves "
                f"{ew.residual:.3%} at {ew.overhead:.1%} overhead (PR-AUC {_fmt(h.pr_auc, 3)}, "
                f"base rate {h.base_rate:.3f}); fixed 10 % leaves {self.method('fixed').residual:.3%}."
            )
        ]
        for p in self.predictors:
            if p.name == HEURISTIC:
                continue
            ratio = self.ratio_vs_heuristic(p.name)
            verdict = (
                "n/a"
                if not math.isfinite(ratio)
                else f"{ratio:.2f}x the heuristic's residual at equal overhead "
                f"({'meets' if ratio <= 0.7 else 'misses'} the 0.7x target)"
            )
            lines.append(
                f"Loss/FEC: {p.name}: PR-AUC {_fmt(p.pr_auc, 3)} vs "
                f"{_fmt(h.pr_auc, 3)}, Brier {_fmt(p.brier, 5)} vs {_fmt(h.brier, 5)}, "
                f"{verdict}."
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "quick": self.quick,
            "k_data_packets": self.k_data_packets,
            "raw_loss": _num(self.raw_loss),
            "reference_overhead": _num(self.reference_overhead),
            "equal_overhead": {k: _num(v) for k, v in self.equal_overhead.items()},
            "ratio_vs_heuristic": {
                k: _num(self.ratio_vs_heuristic(k)) for k in self.equal_overhead
            },
            "predictors": [p.to_dict() for p in self.predictors],
            "methods": [m.to_dict() for m in self.methods],
            "curves": [c.to_dict() for c in self.curves],
            "runs": [r.to_dict() for r in self.runs],
            "pr_curves": {
                k: {"recall": [_num(x) for x in v[0]], "precision": [_num(x) for x in v[1]]}
                for k, v in self.pr_curves.items()
            },
            "wall_s": self.wall_s,
            "notes": list(self.notes),
        }

    def markdown(self) -> str:
        n = sum(r.n for r in self.runs)
        scen = sorted({r.scenario for r in self.runs})
        ctrls = sorted({r.controller for r in self.runs})
        lines = [
            (
                f"{n} labelled 10-ms intervals from {len(self.runs)} simulator runs "
                f"({', '.join(scen)}; controllers {', '.join(ctrls)}; "
                f"{'quick' if self.quick else 'full'} mode, seed {self.seed}). "
                f"Label: mean loss rate 50-100 ms ahead; raw loss {self.raw_loss:.3%}. "
                f"FEC blocks of k = {self.k_data_packets} data packets; overhead = repair share "
                "of sent packets; residual = share of data packets left unrecovered."
            ),
            "",
            "**Prediction** (pooled over all runs; a random predictor's PR-AUC is the base rate)",
            "",
            (
                "| predictor | PR-AUC | ROC-AUC | Brier | mean p | mean label | base rate "
                "| PR-AUC held-out only | Brier held-out only |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in self.predictors:
            ho = p.held_out
            lines.append(
                f"| {p.name} | {_fmt(p.pr_auc, 3)} | {_fmt(p.roc_auc, 3)} | {_fmt(p.brier, 5)} "
                f"| {p.mean_prediction:.4f} | {p.mean_label:.4f} | {p.base_rate:.3f} "
                f"| {_fmt(ho.get('pr_auc', math.nan), 3)} "
                f"| {_fmt(ho.get('brier', math.nan), 5)} |"
            )
        lines += [
            "",
            "**FEC operating points**",
            "",
            "| method | overhead | residual loss | residual / raw | blocks protected |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in self.methods:
            rel = m.residual / self.raw_loss if self.raw_loss > 0 else math.nan
            lines.append(
                f"| {m.name} | {m.overhead:.2%} | {m.residual:.4%} | {_fmt(rel, 3)} | "
                f"{m.protected_share:.1%} |"
            )
        lines += [
            "",
            (
                f"**At equal overhead** ({self.reference_overhead:.2%}, the heuristic's): residual "
                "loss read off each method's scaled curve; ratio < 1 beats the heuristic "
                "(issue 4's target for a learned predictor: <= 0.7)."
            ),
            "",
            "| method | residual at equal overhead | ratio to heuristic |",
            "|---|---:|---:|",
        ]
        for name, v in self.equal_overhead.items():
            val = "n/a (curve does not reach it)" if not math.isfinite(v) else f"{v:.4%}"
            lines.append(f"| {name} | {val} | {_fmt(self.ratio_vs_heuristic(name), 3)} |")
        lines += ["", "**Per scenario** (residual loss; raw = no FEC)", ""]
        names = [m.name for m in self.methods]
        lines.append("| scenario | " + " | ".join(names) + " |")
        lines.append("|---|" + "---:|" * len(names))
        for s in scen:
            cells = []
            for m in self.methods:
                v = m.per_scenario.get(s, {}).get("residual", math.nan)
                cells.append("n/a" if not math.isfinite(v) else f"{v:.3%}")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "PR-AUC per scenario:",
            "",
            "| scenario | base rate | " + " | ".join(p.name for p in self.predictors) + " |",
            "|---|---:|" + "---:|" * len(self.predictors),
        ]
        for s in scen:
            base = self.predictors[0].per_scenario.get(s, {}).get("base_rate", math.nan)
            cells = [
                _fmt(p.per_scenario.get(s, {}).get("pr_auc", math.nan), 3) for p in self.predictors
            ]
            lines.append(f"| {s} | {_fmt(base, 3)} | " + " | ".join(cells) + " |")
        for note in self.notes:
            lines += ["", f"Note: {note}"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the evaluation


def _downsample_pr(y: np.ndarray, s: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if not y.any():
        return (), ()
    precision, recall, _ = precision_recall_curve(y, s)
    if precision.size > PR_CURVE_POINTS:
        idx = np.unique(np.linspace(0, precision.size - 1, PR_CURVE_POINTS).astype(int))
        precision, recall = precision[idx], recall[idx]
    return tuple(float(x) for x in recall), tuple(float(x) for x in precision)


def run(
    *,
    seed: int = 0,
    quick: bool = False,
    predictors: Mapping[str, PredictorFactory] | None = None,
    controllers: Sequence[str] = CONTROLLERS,
    scenarios: Sequence[str] | None = None,
    include_traces: bool = True,
    duration_s: float | None = None,
    n_seeds: int | None = None,
    fec_config: FecConfig | None = None,
    progress: ProgressFn | None = None,
) -> FecEvalResult:
    """Collect labelled intervals, score every predictor, compare FEC methods.

    Parameters
    ----------
    seed
        Base of the run seeds (``EVAL_SEED_BASE + 100 * seed + ...``).
    quick
        `QUICK_DURATION_S` per run and one seed per random scenario.
    predictors
        Extra predictors, name -> zero-argument factory building a fresh
        ``Policy[NetworkFeatures, float]`` (one per run). ``"ewma"`` is taken
        by the heuristic.
    controllers
        Simulator controller names the data is collected under.
    scenarios
        Scenario names to keep (held-out names, ``trace-<file>``,
        ``random-loss``, ``burst-loss``); None: all.
    include_traces
        Add the held-out Mahimahi traces when the trace folder exists.
    duration_s
        Override every run's duration, simulated seconds.
    n_seeds
        Override the number of seeds per random scenario.
    fec_config
        The `FecPolicy` configuration the predictors go through (its
        ``k_data_packets`` is every method's block size).
    progress
        ``progress(done, total, label)`` after each simulator run.
    """
    t0 = time.perf_counter()
    extra = dict(predictors or {})
    if HEURISTIC in extra or HINDSIGHT in extra:
        raise ValueError(f"predictor names {HEURISTIC!r} and {HINDSIGHT!r} are reserved")
    for name, f in extra.items():
        if not callable(f):
            raise TypeError(
                f"predictor {name!r} must be a zero-argument factory, got {type(f).__name__}"
            )
    factories: dict[str, PredictorFactory] = {HEURISTIC: EwmaLossPredictor, **extra}
    cfg = fec_config if fec_config is not None else FecConfig()
    k = cfg.k_data_packets
    runs = collect_runs(
        seed=seed,
        quick=quick,
        controllers=controllers,
        scenarios=scenarios,
        include_traces=include_traces,
        duration_s=duration_s,
        n_seeds=n_seeds,
        progress=progress,
    )
    notes: list[str] = []
    if (
        include_traces
        and not any(r.scenario.startswith("trace-") for r in runs)
        and (scenarios is None)
    ):
        notes.append(
            "The Mahimahi trace folder was not found: held-out traces were skipped "
            "(set OXIDIZE_TRACE_DIR)."
        )
    # Pool every labelled interval; remember which scenario each came from.
    labels_l, scen_l, web_l, held_l = [], [], [], []
    preds_l: dict[str, list[np.ndarray]] = {n: [] for n in factories}
    summaries = []
    for r in runs:
        v = r.valid
        labels_l.append(r.labels[v])
        scen_l.append(np.full(int(v.sum()), r.scenario, dtype=object))
        held_l.append(np.full(int(v.sum()), r.held_out))
        web_l.append(webrtc_rates(r)[v])
        for name, f in factories.items():
            preds_l[name].append(predict_run(f, r, name=name)[v])
        lab = r.labels[v]
        summaries.append(
            RunSummary(
                r.scenario,
                r.controller,
                r.seed,
                r.held_out,
                int(v.sum()),
                float(lab.mean()) if lab.size else math.nan,
                float((lab > 0).mean()) if lab.size else math.nan,
            )
        )
    labels = np.concatenate(labels_l) if labels_l else np.empty(0)
    if labels.size == 0:
        raise ValueError("no labelled intervals: runs too short for the 100-ms horizon")
    scen = np.concatenate(scen_l)
    held = np.concatenate(held_l)
    web = np.concatenate(web_l)
    preds = {n: np.concatenate(v) for n, v in preds_l.items()}
    y = labels > 0.0
    scen_names = sorted(set(scen.tolist()))
    masks = {s: scen == s for s in scen_names}

    scores = []
    for name, p in preds.items():
        per = {
            s: {
                "pr_auc": pr_auc(y[m], p[m]),
                "brier": brier(p[m], labels[m]),
                "base_rate": float(y[m].mean()),
            }
            for s, m in masks.items()
        }
        ho = {
            "pr_auc": pr_auc(y[held], p[held]),
            "brier": brier(p[held], labels[held]),
            "base_rate": float(y[held].mean()) if held.any() else math.nan,
            "n": int(held.sum()),
        }
        scores.append(
            PredictorScores(
                name=name,
                pr_auc=pr_auc(y, p),
                roc_auc=roc_auc(y, p),
                brier=brier(p, labels),
                mean_prediction=float(p.mean()),
                mean_label=float(labels.mean()),
                base_rate=float(y.mean()),
                n=int(labels.size),
                per_scenario=per,
                held_out=ho,
            )
        )

    table = _RepairTable(FecPolicy(cfg))

    def method(name: str, kind: str, r: np.ndarray) -> FecMethodResult:
        ov, res = fec_point(labels, r, k)
        per = {}
        for s, m in masks.items():
            o, q = fec_point(labels[m], r[m], k)
            per[s] = {"overhead": o, "residual": q}
        return FecMethodResult(name, kind, ov, res, float((r > 0).mean()), per)

    fixed_r = np.full(labels.size, float(ratio_to_repair(FIXED_RATIO, k)))
    web_r = ratio_to_repair(web, k)
    methods = [
        method("none", "none", np.zeros(labels.size)),
        method("fixed", "fixed", fixed_r),
        method("webrtc", "table", web_r),
    ]
    methods += [method(name, "predictor", table(p)) for name, p in preds.items()]
    methods.append(method(HINDSIGHT, "hindsight", table(labels)))

    def curve_of(name: str, repair_at: Callable[[float], np.ndarray]) -> FecCurve:
        pts = [fec_point(labels, repair_at(s), k) for s in SCALES]
        return FecCurve(name, SCALES, tuple(o for o, _ in pts), tuple(q for _, q in pts))

    # Ratios are capped below 1 so r stays finite (c = 0.9 is r = 9k).
    def scaled_ratio(c: np.ndarray) -> Callable[[float], np.ndarray]:
        return lambda s: ratio_to_repair(np.minimum(0.9, s * c), k)

    def scaled_p(p: np.ndarray) -> Callable[[float], np.ndarray]:
        return lambda s: table(np.minimum(1.0, s * p))

    curves = [curve_of(name, scaled_p(p)) for name, p in preds.items()]
    curves.append(curve_of(HINDSIGHT, lambda s: table(np.minimum(1.0, s * labels))))
    curves.append(curve_of("fixed", scaled_ratio(np.full(labels.size, FIXED_RATIO))))
    curves.append(curve_of("webrtc", scaled_ratio(web)))
    ref = next(m.overhead for m in methods if m.name == HEURISTIC)
    equal = {c.name: c.residual_at(ref) for c in curves}
    pr_curves = {name: _downsample_pr(y, p) for name, p in preds.items()}
    return FecEvalResult(
        seed=seed,
        quick=quick,
        k_data_packets=k,
        predictors=tuple(scores),
        methods=tuple(methods),
        curves=tuple(curves),
        reference_overhead=ref,
        equal_overhead=equal,
        runs=tuple(summaries),
        raw_loss=float(labels.mean()),
        pr_curves=pr_curves,
        wall_s=time.perf_counter() - t0,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------- plots


_STYLE_INDEX = {HEURISTIC: 0, "webrtc": 1, HINDSIGHT: 2, "fixed": 7}
"""palette slots of the fixed methods; extra predictors take the others in order"""


def _style(name: str, extra_index: int) -> dict[str, Any]:
    from oxidize_ml.evaluation.plots import MARKERS, PALETTE

    free = [3, 4, 5, 6]
    i = _STYLE_INDEX.get(name, free[extra_index % len(free)])
    return {"color": PALETTE[i], "marker": MARKERS[i]}


def plot(result: FecEvalResult, out_dir: str | Path) -> list[Path]:
    """Residual loss against overhead per method (curves + operating points); PR curves."""
    from oxidize_ml.evaluation import plots

    out = Path(out_dir)
    extra = [p.name for p in result.predictors if p.name != HEURISTIC]

    def style(name: str) -> dict[str, Any]:
        return _style(name, extra.index(name) if name in extra else 0)

    fig, axes = plots.subplot_grid(2, ncols=2, panel_size=(5.2, 4.0))
    ax = axes[0]
    floor = 1e-5  # residuals are drawn in percent on a log axis: 0 sits at the floor
    for c in result.curves:
        st = style(c.name)
        dashed = c.name in ("fixed", "webrtc", HINDSIGHT)
        ax.plot(
            np.asarray(c.overhead, dtype=float) * 100.0,
            np.maximum(np.asarray(c.residual, dtype=float), floor) * 100.0,
            color=st["color"],
            linestyle="--" if dashed else "-",
            linewidth=1.3,
            label=c.name + (" (bound)" if c.name == HINDSIGHT else ""),
        )
    top = 0.0
    for m in result.methods:
        if m.kind == "none":
            ax.axhline(
                max(m.residual, floor) * 100.0,
                color="0.5",
                linewidth=0.8,
                linestyle=":",
                label="no FEC",
            )
            continue
        st = style(m.name)
        top = max(top, m.overhead)
        ax.plot(
            [m.overhead * 100.0],
            [max(m.residual, floor) * 100.0],
            marker=st["marker"],
            color=st["color"],
            markersize=7,
            markeredgecolor="black",
            linestyle="none",
        )
    ax.axvline(result.reference_overhead * 100.0, color="0.6", linewidth=0.8, linestyle="-.")
    ax.set_yscale("log")
    ax.set_xlabel("FEC overhead (% of sent packets)")
    ax.set_ylabel("residual loss (% of data packets)")
    ax.set_title(
        "Residual loss vs overhead (markers: operating points;\n"
        "dash-dot: the heuristic's overhead)",
        fontsize=9,
    )
    ax.set_xlim(0.0, min(60.0, max(20.0, 200.0 * top)))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[1]
    base = result.predictors[0].base_rate if result.predictors else math.nan
    for p in result.predictors:
        rec, prec = result.pr_curves.get(p.name, ((), ()))
        if rec:
            ax.step(
                rec,
                prec,
                where="pre",
                color=style(p.name)["color"],
                label=f"{p.name} (AP {_fmt(p.pr_auc, 3)})",
            )
    if math.isfinite(base):
        ax.axhline(
            base, color="0.5", linestyle=":", linewidth=0.8, label=f"random (base rate {base:.3f})"
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall (loss in the next 50-100 ms)")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall of loss prediction", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    plots.tidy(fig, top_in=0.55, bottom_in=0.55, wspace=0.25)
    return [plots.save_figure(fig, out / "fec-overhead-residual.png")]


# ---------------------------------------------------------------- any user's traces

TRACE_WINDOWS = 3
"""windows per trace in `evaluate_fec_traces`: runs start at 0, 1/3 and 2/3 of the
trace (the trace repeats at its end), so one trace gives several different starts"""
MAX_TRACES = 1000
"""bound on the traces of one `evaluate_fec_traces` call"""
MAX_RTTS = 10
"""bound on the RTTs of one call"""
MAX_DURATION_S = 3600.0
"""bound on one run's simulated seconds (the per-run rows are kept in memory)"""
BOOTSTRAP_ROUNDS = 1000
"""paired block-bootstrap replicates (blocks = runs) for the confidence intervals"""
BURST = "burst"
"""name of the burst-aware predictor"""
LSTM = "lstm"
"""name of the shipped LSTM predictor"""

_BURST_PRICES: tuple[float, ...] = tuple(float(x) for x in np.geomspace(1e-5, 0.2, 48))
"""repair prices swept for the burst policy's residual-vs-overhead curve"""


def engine_default_loss_predictor() -> str:
    """Name of the loss predictor `MlEngine()` uses with its default configuration."""
    from oxidize_ml.engine import EngineConfig, MlEngine

    engine = MlEngine(EngineConfig(collect_training=False))
    return str(engine.stats().loss_predictor.policy)


def shipped_lstm_factory() -> tuple[PredictorFactory | None, str]:
    """A factory of the shipped LSTM (fresh state per run), or None and why not."""
    from oxidize_ml.congestion.actions import CwndLimits
    from oxidize_ml.congestion.state import StateConfig
    from oxidize_ml.models import default_model_dir, load_policies

    directory = default_model_dir()
    if directory is None:
        return None, "no shipped models"
    loaded = load_policies(
        Path(directory), backend="numpy", limits=CwndLimits(), state_config=StateConfig(), seed=0
    )
    if loaded.loss is None:
        return None, str(loaded.status.get("loss_predictor", "not loaded"))
    lstm: Any = loaded.loss  # an LstmLossPredictor: fork() gives a fresh state per run
    return (lambda: lstm.fork()), "loaded"


def _trace_runs(
    paths: Sequence[Path],
    *,
    rtts_s: Sequence[float],
    duration_s: float,
    n_windows: int,
    controllers: Sequence[str],
    seed: int,
    progress: ProgressFn | None,
) -> list[LossRun]:
    """Simulate every (trace, window, RTT, controller); features as the sender sees them."""
    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE
    from oxidize_ml.sim import BufferSpec, scenario_from_trace
    from oxidize_ml.sim.links import TraceLink

    links = []
    for p in paths:
        try:
            links.append(TraceLink(str(p)))
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if str(p) in msg else f"trace {str(p)!r}: {msg}") from None
        except OSError as exc:
            raise ValueError(f"trace {str(p)!r} cannot be read: {exc}") from None
    total = len(paths) * n_windows * len(rtts_s) * len(controllers)
    base = EVAL_SEED_BASE + SEED_STRIDE * seed
    out: list[LossRun] = []
    i = 0
    for p, link in zip(paths, links, strict=True):
        period_s = link.period_s
        for w in range(n_windows):
            start_s = w * period_s / n_windows
            for rtt in rtts_s:
                sc = scenario_from_trace(
                    p,
                    link=link,
                    start_s=start_s,
                    rtt_s=rtt,
                    buffer=BufferSpec(bdp=TRACE_BUFFER_BDP),
                    duration_s=duration_s,
                )
                for ctrl in controllers:
                    s = base + i
                    i += 1
                    name = f"{p.name}@{start_s:.0f}s/rtt{rtt * 1000:.0f}"
                    out.append(_loss_run(sc, ctrl, s, duration_s, name=name, heldout=True))
                    if progress is not None:
                        progress(i, total, f"{name} / {ctrl}")
    return out


def _run_stats(labels: np.ndarray, repair: np.ndarray, k: int) -> np.ndarray:
    """Per-run sums for pooled FEC points: ``[3]`` = (rows, sum r, sum residual)."""
    if labels.size == 0:
        return np.zeros(3)
    res = expected_residual(labels, repair, k)
    return np.array([float(labels.size), float(repair.sum()), float(res.sum())])


def _point(stats: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(overhead, residual) from summed `_run_stats` rows ``[..., 3]`` -> ``[...]`` each."""
    n, r, res = stats[..., 0], stats[..., 1], stats[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(r / (k * n + r)), np.asarray(res / n)


def _ratio_at(curve_stats: np.ndarray, ref_stats: np.ndarray, k: int) -> np.ndarray:
    """Residual of a curve at the reference's overhead / the reference's residual.

    ``curve_stats``: ``[..., n_knobs, 3]`` summed over runs; ``ref_stats``:
    ``[..., 3]``. Vectorised over leading (bootstrap) axes.
    """
    ov_c, res_c = _point(curve_stats, k)
    ov_r, res_r = _point(ref_stats, k)
    ov = np.atleast_2d(ov_c)
    res = np.atleast_2d(res_c)
    ref_ov = np.atleast_1d(ov_r)
    ref_res = np.atleast_1d(res_r)
    out = np.full(ref_ov.shape, math.nan)
    for b in range(ref_ov.size):
        o, q = ov[b], res[b]
        order = np.argsort(o, kind="stable")
        val = interpolate_at(o[order], q[order], float(ref_ov[b]))
        if math.isfinite(val) and ref_res[b] > 0.0:
            out[b] = val / ref_res[b]
    return out


def evaluate_fec_traces(
    trace_paths: list[Path],
    *,
    rtt_ms: tuple[float, ...] = (40.0, 100.0),
    duration_s: float = 30.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Loss prediction and FEC on any Mahimahi traces: the EWMA, the LSTM, the burst model.

    Every trace is run in `TRACE_WINDOWS` windows (starting at 0, 1/3 and 2/3
    of it) at every RTT in ``rtt_ms`` with CUBIC and BBR, 2-BDP drop-tail
    buffer; every 10-ms observation, as the simulator reports it (its buffer
    occupancy is the sender's estimate, `oxidize_ml.interval_stats`), is fed to each predictor the
    engine's way (``learn_one`` then ``predict_one``). Labels, PR-AUC, Brier
    and FEC residual/overhead follow the module docstring.

    Predictors: ``ewma`` (the heuristic; FEC by the binomial `FecPolicy`),
    ``lstm`` (the shipped model, same policy; absent with a note when it
    cannot be loaded), ``burst`` (`oxidize_ml.loss.burst.BurstLossPredictor`
    with `oxidize_ml.loss.fec.BurstFecPolicy.decide_block` fed its block-loss
    probability and severity scale, the repair price swept for the curve) and
    ``burst_binomial`` (the burst predictor's p through `FecPolicy`). PR-AUC
    ranks by each predictor's probability of a loss in the window: the
    EWMA's and LSTM's output, the burst model's q (``pr_auc_of_p`` in the
    breakdowns gives its p = q x severity); Brier scores p against the
    label. ``residual_ratio_vs_ewma`` is a predictor's residual loss interpolated on
    its curve at the overhead the EWMA spends by default, divided by the
    EWMA's residual there. Confidence intervals: paired block bootstrap over
    runs (`BOOTSTRAP_ROUNDS`, 95 %).

    Returns
    -------
    dict
        ``"summary"``: ``{"default": NAME, "predictors": {NAME: {"pr_auc",
        "brier", "residual_ratio_vs_ewma"}}}`` pooled over every run; also
        ``"pooled"`` (with ``burst_binomial`` and ``hindsight``), ``"per_rtt"``,
        ``"per_family"`` (trace file without direction), ``"ci"``, ``"curves"``
        (with ``hindsight``, ``fixed``, ``webrtc``), ``"operating_points"``,
        ``"runs"``, ``"notes"``, ``"config"``.

    Raises
    ------
    ValueError
        No trace, a trace that is missing or unreadable (the message names
        the file), an RTT or duration out of range, or runs too short to
        label (a label needs 100 ms after the observation).
    """

    t0 = time.perf_counter()
    if isinstance(trace_paths, str | Path) or not isinstance(trace_paths, Sequence):
        raise TypeError("trace_paths must be a list of paths")
    paths = [Path(p) for p in trace_paths]
    if not paths:
        raise ValueError("trace_paths needs at least one Mahimahi trace file")
    if len(paths) > MAX_TRACES:
        raise ValueError(f"trace_paths: at most {MAX_TRACES} traces, got {len(paths)}")
    if isinstance(rtt_ms, str) or not isinstance(rtt_ms, Sequence) or not rtt_ms:
        raise ValueError(f"rtt_ms must be a non-empty tuple of milliseconds, got {rtt_ms!r}")
    if len(rtt_ms) > MAX_RTTS:
        raise ValueError(f"rtt_ms: at most {MAX_RTTS} values, got {len(rtt_ms)}")
    rtts = []
    for i, r in enumerate(rtt_ms):
        v = check_number(f"rtt_ms[{i}]", r, hi=10_000.0)
        if v <= 0.0:
            raise ValueError(f"rtt_ms[{i}] must be > 0, got {r!r}")
        rtts.append(v)
    dur = check_number("duration_s", duration_s, hi=MAX_DURATION_S)
    if dur < 2.0 * HORIZON_END_S:
        raise ValueError(
            f"duration_s must be >= {2.0 * HORIZON_END_S} s (a label needs "
            f"{HORIZON_END_S} s after the observation), got {duration_s!r}"
        )
    check_int("seed", seed)

    bar = _rich_progress(progress)
    notes: list[str] = []
    with bar as prog:
        cb = None
        if prog is not None:
            task = prog.add_task(
                "FEC: simulating", total=len(paths) * TRACE_WINDOWS * len(rtts) * len(CONTROLLERS)
            )

            def cb(done: int, total: int, label: str) -> None:
                prog.update(task, completed=done, description=f"FEC: {label}")

        runs = _trace_runs(
            paths,
            rtts_s=[r / 1000.0 for r in rtts],
            duration_s=dur,
            n_windows=TRACE_WINDOWS,
            controllers=CONTROLLERS,
            seed=seed,
            progress=cb,
        )
        out = score_runs(
            runs,
            seed=seed,
            progress=prog,
            groups={
                "per_rtt": [r.scenario.rsplit("rtt", 1)[1] for r in runs],
                "per_family": [trace_family(r.scenario) for r in runs],
            },
        )
    out["config"] = {
        "traces": [str(p) for p in paths],
        "rtt_ms": rtts,
        "duration_s": dur,
        "seed": seed,
        "windows_per_trace": TRACE_WINDOWS,
        "controllers": list(CONTROLLERS),
        "k_data_packets": out["k_data_packets"],
        "buffer_bdp": TRACE_BUFFER_BDP,
        "bootstrap_rounds": BOOTSTRAP_ROUNDS,
    }
    out["notes"] = notes + out["notes"]
    out["wall_s"] = time.perf_counter() - t0
    return out


def burst_outputs(run: LossRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fresh `BurstLossPredictor` over ``run`` the engine's way: per interval
    (p, q = block-loss probability, severity scale), each ``[n]``."""
    from oxidize_ml.loss.burst import BurstLossPredictor

    pred = BurstLossPredictor()
    n = len(run.features)
    p = np.empty(n)
    q = np.empty(n)
    sc = np.empty(n)
    for i, (t, f) in enumerate(zip(run.times.tolist(), run.features, strict=True)):
        pred.learn_one(f, f.loss_rate, now=t)
        p[i] = pred.predict_one(f, now=t)
        q[i] = pred.block_loss_probability
        sc[i] = pred.severity_scale
    return p, q, sc


def trace_family(scenario: str) -> str:
    """Family of a trace run's name: the file name without window, RTT and direction
    (``Verizon-LTE-short.down@40s/rtt100`` -> ``Verizon-LTE-short``)."""
    name = scenario.split("@", 1)[0]
    for suffix in (".down", ".up"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def score_runs(
    runs: Sequence[LossRun],
    *,
    seed: int = 0,
    groups: Mapping[str, Sequence[str]] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Predict on ``runs`` (the observations as recorded) and score every predictor.

    The scoring of `evaluate_fec_traces`, for any labelled runs (the held-out
    built-in scenarios too). ``groups`` maps a breakdown name (``"per_rtt"``)
    to one key per run; each breakdown gets the pooled scores per key.
    """
    from oxidize_ml.evaluation.bootstrap import bootstrap_indices
    from oxidize_ml.loss.burst import BurstLossPredictor
    from oxidize_ml.loss.burst_weights import REPAIR_PRICE, SEVERITY
    from oxidize_ml.loss.fec import BurstFecConfig, BurstFecPolicy

    if not runs:
        raise ValueError("score_runs needs at least one run")
    notes: list[str] = []
    prog = progress
    factories: dict[str, PredictorFactory] = {HEURISTIC: EwmaLossPredictor}
    lstm_factory, why = shipped_lstm_factory()
    if lstm_factory is not None:
        factories[LSTM] = lstm_factory
    else:
        notes.append(f"the shipped LSTM was not evaluated: {why}")
    factories[BURST] = BurstLossPredictor
    preds: dict[str, list[np.ndarray]] = {n: [] for n in factories}
    if prog is not None:
        ptask = prog.add_task("FEC: predicting", total=len(runs))
    # The burst model's two parts for its policy: q and the severity scale per row.
    burst_q: list[np.ndarray] = []
    burst_scale: list[np.ndarray] = []
    for run_ in runs:
        rows = run_.valid
        for name, f in factories.items():
            if name == BURST:
                p, q, sc = burst_outputs(run_)
                preds[name].append(p[rows])
                burst_q.append(q[rows])
                burst_scale.append(sc[rows])
            else:
                preds[name].append(predict_run(f, run_, name=name)[rows])
        if prog is not None:
            prog.advance(ptask)

    labels = [r.labels[r.valid] for r in runs]
    if sum(x.size for x in labels) == 0:
        raise ValueError("no labelled intervals: runs too short for the 100-ms horizon")
    cfg = FecConfig()
    k = cfg.k_data_packets
    table = _RepairTable(FecPolicy(cfg))
    burst_policies = [
        BurstFecPolicy(BurstFecConfig(SEVERITY, price, k_data_packets=k)) for price in _BURST_PRICES
    ]
    default_burst = BurstFecPolicy(BurstFecConfig(SEVERITY, REPAIR_PRICE, k_data_packets=k))

    def burst_repair(policy: BurstFecPolicy, q: np.ndarray, sc: np.ndarray) -> np.ndarray:
        """`BurstFecPolicy.repair_for_block_probability` per row (memoised on distinct
        (q, scale) pairs)."""
        if q.size == 0:
            return np.zeros(0)
        uq, inv = np.unique(np.column_stack([q, sc]), axis=0, return_inverse=True)
        vals = np.fromiter(
            (policy.repair_for_block_probability(float(a), float(b)) for a, b in uq),
            dtype=np.float64,
            count=uq.shape[0],
        )
        return vals[np.asarray(inv).reshape(-1)]

    n_runs = len(runs)
    # Per run: default operating point and curve sums [n_runs, n_knobs, 3].
    op: dict[str, np.ndarray] = {}
    curves: dict[str, np.ndarray] = {}
    for name in factories:
        op[name] = np.stack(
            [_run_stats(y, table(p), k) for y, p in zip(labels, preds[name], strict=True)]
        )
        curves[name] = np.stack(
            [
                np.stack([_run_stats(y, table(np.minimum(1.0, s * p)), k) for s in SCALES])
                for y, p in zip(labels, preds[name], strict=True)
            ]
        )
    # The burst model with its own policy: the combination this evaluation ships.
    bqs = list(zip(labels, burst_q, burst_scale, strict=True))
    op[BURST + "_policy"] = np.stack(
        [_run_stats(y, burst_repair(default_burst, q, sc), k) for y, q, sc in bqs]
    )
    curves[BURST + "_policy"] = np.stack(
        [
            np.stack([_run_stats(y, burst_repair(pol, q, sc), k) for pol in burst_policies])
            for y, q, sc in bqs
        ]
    )
    curves[HINDSIGHT] = np.stack(
        [
            np.stack([_run_stats(y, table(np.minimum(1.0, s * y)), k) for s in SCALES])
            for y in labels
        ]
    )
    curves["fixed"] = np.stack(
        [
            np.stack(
                [
                    _run_stats(y, ratio_to_repair(np.full(y.size, min(0.9, s * FIXED_RATIO)), k), k)
                    for s in SCALES
                ]
            )
            for y in labels
        ]
    )
    web = [webrtc_rates(r)[r.valid] for r in runs]
    curves["webrtc"] = np.stack(
        [
            np.stack([_run_stats(y, ratio_to_repair(np.minimum(0.9, s * w), k), k) for s in SCALES])
            for y, w in zip(labels, web, strict=True)
        ]
    )
    op["none"] = np.stack([_run_stats(y, np.zeros(y.size), k) for y in labels])

    # Which curve stands for each predictor in the summary: the burst model is judged
    # with its own FEC policy (the pair is the design); the others with the table.
    judged = {name: name for name in factories}
    judged[BURST] = BURST + "_policy"
    # What each predictor ranks "a loss in the window" by: its probability of it. For
    # the EWMA and the LSTM that is their one output; the burst model predicts it
    # directly (q) and its per-packet p = q x severity is scored by Brier.
    ranked = {name: preds[name] for name in factories}
    ranked[BURST] = burst_q

    def scores(mask: np.ndarray) -> dict[str, dict[str, float]]:
        y = np.concatenate([labels[i] for i in np.flatnonzero(mask)])
        out: dict[str, dict[str, float]] = {}
        ref = op[HEURISTIC][mask].sum(axis=0)
        for name in factories:
            p = np.concatenate([preds[name][i] for i in np.flatnonzero(mask)])
            s_rank = np.concatenate([ranked[name][i] for i in np.flatnonzero(mask)])
            ratio = _ratio_at(curves[judged[name]][mask].sum(axis=0)[None], ref[None], k)[0]
            out[name] = {
                "pr_auc": pr_auc(y > 0.0, s_rank),
                "brier": brier(p, y),
                "residual_ratio_vs_ewma": 1.0 if name == HEURISTIC else float(ratio),
            }
            if name == BURST:
                out[name]["pr_auc_of_p"] = pr_auc(y > 0.0, p)
        out[HEURISTIC]["residual_ratio_vs_ewma"] = 1.0 if _point(ref, k)[1] > 0 else math.nan
        out[BURST + "_binomial"] = {
            "pr_auc": out[BURST]["pr_auc"],
            "brier": out[BURST]["brier"],
            "residual_ratio_vs_ewma": float(
                _ratio_at(curves[BURST][mask].sum(axis=0)[None], ref[None], k)[0]
            ),
        }
        out[HINDSIGHT] = {
            "residual_ratio_vs_ewma": float(
                _ratio_at(curves[HINDSIGHT][mask].sum(axis=0)[None], ref[None], k)[0]
            )
        }
        return out

    everything = np.ones(n_runs, dtype=bool)
    pooled = scores(everything)
    breakdowns: dict[str, Any] = {}
    for gname, keys in (groups or {}).items():
        if len(keys) != n_runs:
            raise ValueError(f"groups[{gname!r}] needs one key per run ({n_runs}), got {len(keys)}")
        key_arr = np.asarray(list(keys), dtype=object)
        breakdowns[gname] = _json_nested(
            {str(g): scores(key_arr == g) for g in dict.fromkeys(keys)}
        )

    # Paired block bootstrap over runs: ratio of each predictor's residual at the
    # EWMA's overhead to the EWMA's, and PR-AUC gain over the EWMA.
    rng = np.random.default_rng([seed, 11])
    idx = bootstrap_indices(n_runs, BOOTSTRAP_ROUNDS, rng)
    counts = np.stack([np.bincount(row, minlength=n_runs) for row in idx]).astype(np.float64)
    ref_b = counts @ op[HEURISTIC]  # [B, 3]
    ci: dict[str, Any] = {}
    for name in factories:
        if name == HEURISTIC:
            continue
        cs = np.einsum("br,rkc->bkc", counts, curves[judged[name]])
        ratios = _ratio_at(cs, ref_b, k)
        ok = ratios[np.isfinite(ratios)]
        gains = []
        for row in idx[: min(200, BOOTSTRAP_ROUNDS)]:
            y = np.concatenate([labels[i] for i in row])
            if not (y > 0).any():
                continue
            gains.append(
                pr_auc(y > 0, np.concatenate([ranked[name][i] for i in row]))
                - pr_auc(y > 0, np.concatenate([preds[HEURISTIC][i] for i in row]))
            )
        ci[name] = {
            "residual_ratio_vs_ewma": _pct_interval(ok),
            "p_ratio_below_1": float((ok < 1.0).mean()) if ok.size else math.nan,
            "pr_auc_gain": _pct_interval(np.asarray(gains)),
        }

    def curve_dict(name: str, knobs: Sequence[float]) -> dict[str, Any]:
        ov, res = _point(curves[name].sum(axis=0), k)
        return {
            "knobs": list(knobs),
            "overhead": [_num(float(x)) for x in ov],
            "residual": [_num(float(x)) for x in res],
        }

    curve_out = {name: curve_dict(name, SCALES) for name in factories}
    curve_out[BURST + "_policy"] = curve_dict(BURST + "_policy", _BURST_PRICES)
    for name in (HINDSIGHT, "fixed", "webrtc"):
        curve_out[name] = curve_dict(name, SCALES)
    op_out = {}
    for name, st in op.items():
        o, q = _point(st.sum(axis=0), k)
        op_out[name] = {"overhead": _num(float(o)), "residual": _num(float(q))}
    default = engine_default_loss_predictor()
    summary_preds = {
        name: {m: _num(pooled[name][m]) for m in ("pr_auc", "brier", "residual_ratio_vs_ewma")}
        for name in factories
    }
    if default not in summary_preds:
        notes.append(
            f"the engine's default loss predictor {default!r} is not among the evaluated ones"
        )
    return {
        "summary": {"default": default, "predictors": summary_preds},
        "pooled": _json_nested(pooled),
        **breakdowns,
        "ci": _json_nested(ci),
        "curves": curve_out,
        "operating_points": op_out,
        "runs": [
            {
                "scenario": r.scenario,
                "controller": r.controller,
                "seed": r.seed,
                "n": int(r.valid.sum()),
                "mean_loss": _num(float(r.labels[r.valid].mean()) if r.valid.any() else math.nan),
            }
            for r in runs
        ],
        "k_data_packets": k,
        "notes": notes,
    }


def _pct_interval(x: np.ndarray) -> list[float | None]:
    if x.size < 2:
        return [None, None]
    lo, hi = np.percentile(x, [2.5, 97.5])
    return [_num(float(lo)), _num(float(hi))]


def _json_nested(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_nested(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_nested(v) for v in obj]
    return _num(obj)


def _rich_progress(enabled: bool) -> Any:
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    )


# ---------------------------------------------------------------- traces: table and plot

_TRACE_CURVES: tuple[tuple[str, str], ...] = (
    (HEURISTIC, "ewma (FecPolicy)"),
    (LSTM, "lstm (FecPolicy)"),
    (BURST, "burst (FecPolicy)"),
    (BURST + "_policy", "burst (BurstFecPolicy)"),
    ("fixed", "fixed ratio"),
    ("webrtc", "webrtc table"),
    (HINDSIGHT, "hindsight (bound)"),
)


def markdown_traces(result: Mapping[str, Any]) -> str:
    """`evaluate_fec_traces` output as Markdown: pooled, per RTT and per family."""

    def cell(x: Any, digits: int = 3) -> str:
        return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"

    names = [
        n
        for n in (HEURISTIC, LSTM, BURST, BURST + "_binomial", HINDSIGHT)
        if n in result.get("pooled", {})
    ]
    cfg = result.get("config", {})
    what = (
        f"{len(cfg.get('traces', []))} traces x {cfg.get('windows_per_trace')} windows x RTT "
        f"{cfg.get('rtt_ms')} ms x {cfg.get('controllers')}"
        if "traces" in cfg
        else "held-out trace windows at RTT 40 and 100 ms and held-out scenarios"
    )
    lines = [
        (
            f"{len(result.get('runs', []))} runs ({what}); default loss predictor: "
            f"{result['summary']['default']}. Residual ratio = residual loss at the EWMA's "
            "overhead / the EWMA's residual (lower is better; burst = with BurstFecPolicy, "
            "burst_binomial = through FecPolicy)."
        ),
        "",
        "| set | " + " | ".join(f"{n} PR-AUC | {n} ratio" for n in names) + " |",
        "|---|" + "---:|---:|" * len(names),
    ]
    sets = [("pooled", result.get("pooled", {}))]
    for group in ("per_rtt", "per_family"):
        for key, val in result.get(group, {}).items():
            sets.append((f"{'RTT ' + key + ' ms' if group == 'per_rtt' else key}", val))
    for label, d in sets:
        cells = []
        for n in names:
            v = d.get(n, {})
            cells.append(f"{cell(v.get('pr_auc'))} | {cell(v.get('residual_ratio_vs_ewma'))}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ci = result.get("ci", {})
    if ci:
        lines += ["", "95 % paired block-bootstrap intervals over runs:", ""]
        for n, v in ci.items():
            lo, hi = v.get("residual_ratio_vs_ewma", [None, None])
            glo, ghi = v.get("pr_auc_gain", [None, None])
            lines.append(
                f"- {n}: residual ratio [{cell(lo)}, {cell(hi)}], PR-AUC gain "
                f"[{cell(glo)}, {cell(ghi)}], P(ratio < 1) "
                f"{cell(v.get('p_ratio_below_1'), 2)}"
            )
    for note in result.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def plot_traces(result: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Residual loss against overhead for every method of `evaluate_fec_traces`, with
    the operating points and the hindsight bound; one PNG."""
    from oxidize_ml.evaluation import plots

    out = Path(out_dir)
    fig, axes = plots.subplot_grid(1, ncols=1, panel_size=(6.4, 4.4))
    ax = axes[0]
    floor = 1e-5
    curves = result.get("curves", {})
    top = 0.0
    for i, (name, label) in enumerate(_TRACE_CURVES):
        c = curves.get(name)
        if c is None:
            continue
        pts = [
            (o, r)
            for o, r in zip(c["overhead"], c["residual"], strict=True)
            if o is not None and r is not None
        ]
        if not pts:
            continue
        pts.sort()
        st = plots.series_style(name, i)
        ax.plot(
            [o * 100.0 for o, _ in pts],
            [max(r, floor) * 100.0 for _, r in pts],
            color=st.get("color"),
            linestyle="--" if name in ("fixed", "webrtc", HINDSIGHT) else "-",
            linewidth=1.3,
            label=label,
        )
        op = result.get("operating_points", {}).get(name)
        if op and op.get("overhead") is not None and op.get("residual") is not None:
            top = max(top, op["overhead"])
            ax.plot(
                [op["overhead"] * 100.0],
                [max(op["residual"], floor) * 100.0],
                marker="o",
                color=st.get("color"),
                markeredgecolor="black",
                linestyle="none",
            )
    none = result.get("operating_points", {}).get("none")
    if none and none.get("residual") is not None:
        ax.axhline(
            max(none["residual"], floor) * 100.0,
            color="0.5",
            linewidth=0.8,
            linestyle=":",
            label="no FEC",
        )
    ref = result.get("operating_points", {}).get(HEURISTIC, {}).get("overhead")
    if ref is not None:
        ax.axvline(ref * 100.0, color="0.6", linewidth=0.8, linestyle="-.")
    ax.set_yscale("log")
    ax.set_xlim(0.0, min(60.0, max(20.0, 300.0 * top)))
    ax.set_xlabel("FEC overhead (% of sent packets)")
    ax.set_ylabel("residual loss (% of data packets)")
    ax.set_title(
        "Residual loss vs overhead on the given traces (dots: default operating "
        "points;\ndash-dot: the EWMA's overhead)",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    plots.tidy(fig, top_in=0.55, bottom_in=0.55)
    return [plots.save_figure(fig, out / "fec-traces-overhead-residual.png")]


def evaluate_fec_heldout(
    *, seed: int = 0, duration_s: float = 30.0, n_seeds: int = 2
) -> dict[str, Any]:
    """The whole held-out split for the default-model rule: the held-out traces (when
    the folder exists) as in `evaluate_fec_traces` plus the held-out built-in
    scenarios (``n_seeds`` seeds each, their own RTTs; ``duration_s`` for every run:
    30 s is the built-in scenarios' own), the simulator's observations, one
    `score_runs` with ``per_family`` (trace file without direction, or scenario)
    and ``per_rtt`` (traces only; built-in runs are under ``"scenario"``)."""
    from oxidize_ml.evaluation.splits import HELDOUT_SCENARIOS, HELDOUT_TRACES, trace_paths

    check_int("seed", seed)
    check_int("n_seeds", n_seeds, lo=1, hi=100)
    dur = check_number("duration_s", duration_s, hi=MAX_DURATION_S)
    paths = trace_paths(HELDOUT_TRACES)
    runs = (
        _trace_runs(
            paths,
            rtts_s=[0.040, 0.100],
            duration_s=dur,
            n_windows=TRACE_WINDOWS,
            controllers=CONTROLLERS,
            seed=seed,
            progress=None,
        )
        if paths
        else []
    )
    family = [trace_family(r.scenario) for r in runs]
    rtt = [r.scenario.rsplit("rtt", 1)[1] for r in runs]
    for r in collect_runs(
        seed=seed,
        scenarios=list(HELDOUT_SCENARIOS),
        include_traces=False,
        n_seeds=n_seeds,
        duration_s=dur,
    ):
        runs.append(r)
        family.append(r.scenario)
        rtt.append("scenario")
    out = score_runs(runs, seed=seed, groups={"per_family": family, "per_rtt": rtt})
    out["traces"] = [str(p) for p in paths]
    if not paths:
        out["notes"].append(
            "the held-out traces were not found (set OXIDIZE_TRACE_DIR): "
            "built-in held-out scenarios only"
        )
    return out
