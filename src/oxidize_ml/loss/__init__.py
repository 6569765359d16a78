"""Loss prediction and the FEC decision built on it.

Definitions used across the whole project
-----------------------------------------
Prediction ``p``
    A loss predictor's output at time ``t``: the predicted per-packet loss
    probability for the horizon 50-100 ms ahead, i.e. the window
    (t + 50 ms, t + 100 ms]. Always in [0, 1].
Label
    Computed elsewhere (telemetry, simulator), never here: the mean
    ``loss_rate`` reported by the observations whose timestamps fall in
    (t + 50 ms, t + 100 ms]. "A loss happened" means label > 0. Scores: PR-AUC
    on label > 0 (losses are rare), Brier score of p against the label
    (REFERENCES section 3).
FEC block
    ``k`` data + ``r`` repair packets of an MDS code, recovered when at most
    ``r`` of the ``k + r`` are lost; ``redundancy_ratio = r / (k + r)``.

Contents
--------
`EwmaLossPredictor` / `EwmaLossConfig`
    The heuristic predictor (spec: "Exponential weighted moving average"),
    a ``Policy[NetworkFeatures, float]``.
`FecPolicy` / `FecConfig`
    ``p`` -> `oxidize_ml.types.FecDecision` by an exact precomputed table.
`residual_loss`, `block_failure_probability`
    Exact binomial figures for evaluations.
"""

from __future__ import annotations

from oxidize_ml.loss.block_code import block_failure_probability, residual_loss
from oxidize_ml.loss.configs import MAX_BLOCK_PACKETS, FecConfig
from oxidize_ml.loss.ewma import EwmaLossConfig, EwmaLossPredictor
from oxidize_ml.loss.fec import FecPolicy, FecTableRow
from oxidize_ml.loss.lstm import LstmLossPredictor

HORIZON_START_S = 0.050
"""start of the prediction window after ``t``, seconds (exclusive)"""
HORIZON_END_S = 0.100
"""end of the prediction window after ``t``, seconds (inclusive)"""

__all__ = [
    "HORIZON_END_S",
    "HORIZON_START_S",
    "MAX_BLOCK_PACKETS",
    "EwmaLossConfig",
    "EwmaLossPredictor",
    "FecConfig",
    "FecPolicy",
    "FecTableRow",
    "LstmLossPredictor",
    "block_failure_probability",
    "residual_loss",
]
