"""Held-out comparison of the LSTM with the EWMA: PR-AUC, Brier, FEC at equal
overhead, and issue 4's target (see `oxidize_ml.training.loss`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from oxidize_ml.evaluation.fec import fec_point
from oxidize_ml.evaluation.scores import brier, interpolate_at, pr_auc
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss import EwmaLossPredictor
from oxidize_ml.loss.fec import FecConfig, FecPolicy
from oxidize_ml.training.loss_config import PR_AUC_MARGIN, RESIDUAL_RATIO_MAX
from oxidize_ml.training.loss_data import LossSequence


# ---------------------------------------------------------------------------------- metrics
def fec_sweep(
    p: np.ndarray,
    label: np.ndarray,
    *,
    fec: FecConfig,
    scales: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Overhead and mean residual loss of ``FecPolicy(fec)`` driven by ``min(1, s p)``.

    Per row (one decision interval, protecting one block of ``k`` data
    packets): ``r = FecPolicy.repair_packets(min(1, s p))``; the figures of
    each scale are `oxidize_ml.evaluation.fec.fec_point`'s (overhead
    ``sum r / sum (k + r)``, residual `oxidize_ml.loss.residual_loss` at the
    label, independent losses within a block), the same definitions as the
    project's FEC evaluation.

    Returns
    -------
    (overhead, residual)
        float64 ``[len(scales)]`` each.
    """
    policy = FecPolicy(fec)
    k = fec.k_data_packets
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(label, dtype=np.float64)
    over = np.empty(len(scales))
    res = np.empty(len(scales))
    memo: dict[float, int] = {}
    for j, s in enumerate(scales):
        uq, inv = np.unique(np.minimum(1.0, s * p), return_inverse=True)
        r_u = np.empty(uq.size)
        for i, v in enumerate(uq.tolist()):
            r = memo.get(v)
            if r is None:
                r = memo[v] = policy.repair_packets(v)
            r_u[i] = r
        over[j], res[j] = fec_point(y, r_u[inv], k)
    return over, res


# ---------------------------------------------------------------------------------- evaluation
def ewma_predictions(seq: LossSequence, predictor: EwmaLossPredictor | None = None) -> np.ndarray:
    """The EWMA heuristic run the engine's way: ``learn_one`` then ``predict_one`` per row."""
    pred = EwmaLossPredictor() if predictor is None else predictor.clone()
    out = np.empty(len(seq))
    x = seq.x
    for i in range(len(seq)):
        # The EWMA reads rtt and rtt_var (its jitter term) and the fed loss rate;
        # the rest of the record is rebuilt for validation only.
        f = NetworkFeatures(
            rtt_us=float(x[i, 0]) * 1e6,
            rtt_var_us=float(x[i, 1]) * 5e5,
            bandwidth_bps=float(x[i, 2]) * 1e10,
            loss_rate=float(seq.loss_rate[i]),
            loss_trend=float(x[i, 4]),
            inflight=float(x[i, 5]) * 1e4,
            cwnd=float(x[i, 6]) * 1e6,
            buffer_occupancy=float(x[i, 7]),
        )
        now = float(seq.t[i])
        pred.learn_one(f, f.loss_rate, now=now)
        out[i] = pred.predict_one(f, now=now)
    return out


def lstm_predictions(seq: LossSequence, model: Any) -> np.ndarray:
    """The runtime model (numpy or onnxruntime) from zero state over the whole sequence."""
    m = model.fork()
    return np.asarray(m.predict_sequence(seq.x), dtype=np.float64)


def compare(
    seqs: Sequence[LossSequence],
    runtime_model: Any,
    *,
    fec: FecConfig,
    scales: Sequence[float],
) -> dict[str, Any]:
    """LSTM vs EWMA on labelled rows: PR-AUC, Brier, FEC residual at equal overhead."""
    p_l, p_e, ys, groups = [], [], [], []
    for s in seqs:
        ok = ~np.isnan(s.label)
        p_l.append(lstm_predictions(s, runtime_model)[ok])
        p_e.append(ewma_predictions(s)[ok])
        ys.append(s.label[ok])
        groups.extend([s.group] * int(ok.sum()))
    pl, pe, y = np.concatenate(p_l), np.concatenate(p_e), np.concatenate(ys)
    g = np.array(groups, dtype=object)
    pos = y > 0.0

    def scores(mask: np.ndarray) -> dict[str, Any]:
        return {
            "rows": int(mask.sum()),
            "positive_rate": float(pos[mask].mean()) if mask.any() else 0.0,
            "lstm": {"pr_auc": pr_auc(pos[mask], pl[mask]), "brier": brier(pl[mask], y[mask])},
            "ewma": {"pr_auc": pr_auc(pos[mask], pe[mask]), "brier": brier(pe[mask], y[mask])},
        }

    out = scores(np.ones(y.size, dtype=bool))
    out["pr_auc_gain"] = out["lstm"]["pr_auc"] - out["ewma"]["pr_auc"]
    out["groups"] = {k: scores(g == k) for k in sorted(set(groups))}
    o_l, r_l = fec_sweep(pl, y, fec=fec, scales=scales)
    o_e, r_e = fec_sweep(pe, y, fec=fec, scales=scales)
    j = list(scales).index(1.0)
    over = float(o_e[j])
    res_e = float(r_e[j])
    res_l = interpolate_at(o_l, r_l, over)
    levels = {}
    for lvl in (0.02, 0.05, 0.10, 0.20):
        re_ = interpolate_at(o_e, r_e, lvl)
        rl_ = interpolate_at(o_l, r_l, lvl)
        levels[f"{lvl:.2f}"] = {
            "lstm": rl_,
            "ewma": re_,
            "ratio": rl_ / re_ if re_ > 0 else float("nan"),
        }
    out["fec"] = {
        "k_data_packets": fec.k_data_packets,
        "no_fec_residual": float(y.mean()),
        "overhead": over,
        "residual_ewma": res_e,
        "residual_lstm": res_l,
        "residual_ratio": res_l / res_e if res_e > 0 else float("nan"),
        # What the engine would run with the default table (s = 1 for the LSTM
        # too), against the EWMA at that same overhead: reported, not the target.
        "lstm_operating_point": _operating_point(o_l[j], r_l[j], o_e, r_e),
        "at_overhead": levels,
        "sweep": {
            "scales": list(map(float, scales)),
            "lstm": {"overhead": o_l.tolist(), "residual": r_l.tolist()},
            "ewma": {"overhead": o_e.tolist(), "residual": r_e.tolist()},
        },
    }
    return out


def _operating_point(
    over: float, res: float, o_ref: np.ndarray, r_ref: np.ndarray
) -> dict[str, float]:
    ref = interpolate_at(o_ref, r_ref, float(over))
    return {
        "overhead": float(over),
        "residual_lstm": float(res),
        "residual_ewma": ref,
        "ratio": float(res) / ref if ref > 0 else float("nan"),
    }


def _json_safe(obj: Any) -> Any:
    """Nested data with NaN / infinity as None and numpy scalars as Python ones
    (the manifest is strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def meets_target(primary: dict[str, Any]) -> bool:
    """Issue 4's target on the primary held-out figures."""
    gain = primary["pr_auc_gain"]
    ratio = primary["fec"]["residual_ratio"]
    if gain is None or ratio is None:  # undefined (no loss held out): not met
        return False
    return bool(gain >= PR_AUC_MARGIN and ratio <= RESIDUAL_RATIO_MAX)
