"""Comparison of the background retrainer: candidate and current loss predictor scored
on the held-out slice (PR-AUC, Brier), the paired block-bootstrap bound on the gain, and
the swap rule."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from oxidize_ml.training.background_config import BackgroundTrainerConfig
from oxidize_ml.training.background_data import RowSequence, features_from_vector


def _policy_predictions(policy: Any, seq: RowSequence, yield_every: int) -> np.ndarray:
    """P(loss) after each row of ``seq`` from a fresh copy of ``policy`` (never the live one)."""
    from oxidize_ml.loss.lstm import LstmLossPredictor

    out = np.empty(seq.t.size)
    sleep = time.sleep
    if isinstance(policy, LstmLossPredictor) or hasattr(policy, "step"):
        model = (policy.model if isinstance(policy, LstmLossPredictor) else policy).fork()
        step = model.step
        for i in range(seq.t.size):
            out[i] = step(seq.x[i])
            if i % yield_every == 0:
                sleep(0)  # let decision threads take the GIL
        return out
    p = (
        policy.fork()
        if hasattr(policy, "fork")
        else (policy.clone() if hasattr(policy, "clone") else copy.deepcopy(policy))
    )
    for i in range(seq.t.size):
        f = features_from_vector(seq.x[i], float(seq.loss_rate[i]))
        now = float(seq.t[i])
        p.learn_one(f, f.loss_rate, now=now)
        out[i] = p.predict_one(f, now=now)
        if i % yield_every == 0:
            sleep(0)
    return out


def heldout_predictions(
    policy: Any, seqs: Sequence[RowSequence], heldout_from: float, yield_every: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, label, t) of ``policy`` on the rows at or after ``heldout_from``.

    Each sequence is run from its start (state carried into the slice as in
    deployment); only the held-out rows are returned.
    """
    ps, ys, ts = [], [], []
    for s in seqs:
        m = (s.t >= heldout_from) & np.isfinite(s.label)
        if not m.any():
            continue
        p = _policy_predictions(policy, s, yield_every)
        ps.append(np.clip(p[m], 0.0, 1.0))
        ys.append(np.clip(s.label[m], 0.0, 1.0))
        ts.append(s.t[m])
    if not ps:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(ps), np.concatenate(ys), np.concatenate(ts)


def scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """PR-AUC (label > 0) and Brier score (against the soft label)."""
    from oxidize_ml.evaluation.scores import brier, pr_auc

    if y.size == 0:
        return {"pr_auc": math.nan, "brier": math.nan, "rows": 0}
    return {"pr_auc": pr_auc(y > 0.0, p), "brier": brier(p, y), "rows": int(y.size)}


def score(
    policy: Any, seqs: Sequence[RowSequence], heldout_from: float, yield_every: int = 8
) -> dict[str, float]:
    """`scores` of ``policy`` on the held-out rows (see `heldout_predictions`)."""
    p, y, _ = heldout_predictions(policy, seqs, heldout_from, yield_every)
    return scores(p, y)


def bootstrap_gain_bound(
    y: np.ndarray,
    p_candidate: np.ndarray,
    p_current: np.ndarray,
    t: np.ndarray,
    *,
    block_s: float,
    rounds: int,
    quantile: float,
    seed: int,
) -> float:
    """Lower ``quantile`` of the candidate's PR-AUC gain over a paired block bootstrap.

    Rows are resampled in whole blocks of ``block_s`` seconds (loss and
    predictions are autocorrelated, so single rows would overstate the
    evidence), the same blocks for both policies. NaN when too few blocks
    hold a loss.
    """
    from oxidize_ml.evaluation.scores import pr_auc

    blocks = np.floor((t - t.min()) / block_s).astype(np.int64)
    ids, inv = np.unique(blocks, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(ids.size)]
    if sum(bool((y[m] > 0).any()) for m in members) < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    pos = y > 0.0
    gains = []
    for _ in range(rounds):
        pick = np.concatenate([members[k] for k in rng.integers(0, ids.size, ids.size)])
        if not pos[pick].any():
            continue
        gains.append(pr_auc(pos[pick], p_candidate[pick]) - pr_auc(pos[pick], p_current[pick]))
        time.sleep(0)  # let decision threads take the GIL between replicates
    return float(np.quantile(gains, quantile)) if gains else math.nan


def is_better(
    candidate: dict[str, float],
    current: dict[str, float],
    config: BackgroundTrainerConfig,
    gain_bound: float | None = None,
) -> bool:
    """The swap rule (module docstring); ``gain_bound`` from `bootstrap_gain_bound`."""
    c_ap, k_ap = candidate["pr_auc"], current["pr_auc"]
    c_b, k_b = candidate["brier"], current["brier"]
    if not all(math.isfinite(v) for v in (c_ap, k_ap, c_b, k_b)):
        return False
    if gain_bound is not None and not gain_bound > config.min_pr_auc_gain:
        return False
    return c_ap > k_ap + config.min_pr_auc_gain and c_b <= k_b * config.max_brier_ratio
