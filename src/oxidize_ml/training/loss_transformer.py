"""A small causal Transformer loss predictor beside the LSTM (the spec's future work).

An experiment, not a shipped model: it answers "would a Transformer beat the
LSTM on the same data?" with the same labels and the same held-out scoring.

Data: the LSTM trainer's (`oxidize_ml.training.loss_data.build_training_data`:
training split only, the observations as IntervalStats reports them, 8 schema features),
validation split by run. Model: the last `TransformerConfig.window` 10-ms
observations, standardised, -> linear embedding + learned positions -> one
causal Transformer encoder layer -> linear head on the last position ->
logit of P(label > 0). BCE with the LSTM's positive weight
(sqrt(negatives / positives)), Adam, then Platt scaling on the validation
windows. Held out: `oxidize_ml.evaluation.fec` trace runs (the given traces,
3 windows, RTT 40 / 100 ms, CUBIC and BBR), history zero-padded at the start
of a run, scored like the LSTM row of `evaluate_fec_traces` (PR-AUC, Brier,
binomial `FecPolicy` residual at the EWMA's overhead / the EWMA's residual).

Inference would need the whole window per step (attention over `window`
cached keys), not one step from carried state like the LSTM: at the sizes
here about 3x the LSTM step's arithmetic.

Run ``python -m oxidize_ml.training.loss_transformer`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.features import N_FEATURES


@dataclass(frozen=True, slots=True)
class TransformerConfig:
    """Sizes and optimisation of the probe."""

    window: int = 32
    """observations the model attends over (320 ms)"""
    d_model: int = 32
    """embedding width"""
    heads: int = 2
    """attention heads"""
    ff: int = 64
    """feed-forward width"""
    epochs: int = 4
    """passes over the training windows"""
    stride: int = 4
    """training windows start every ``stride`` observations"""
    batch_size: int = 256
    learning_rate: float = 3e-3
    random_links: int = 60
    """randomised links in the training data (the LSTM default is 160; fewer keeps the
    run to about a minute)"""
    max_windows: int = 2_000_000
    """bound on training windows held in memory"""

    def __post_init__(self) -> None:
        check_int("window", self.window, lo=2, hi=1024)
        check_int("d_model", self.d_model, lo=2, hi=1024)
        check_int("heads", self.heads, lo=1, hi=64)
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        check_int("ff", self.ff, lo=1, hi=8192)
        check_int("epochs", self.epochs, lo=1, hi=1000)
        check_int("stride", self.stride, lo=1, hi=1024)
        check_int("batch_size", self.batch_size, lo=1, hi=1 << 16)
        if check_number("learning_rate", self.learning_rate) <= 0.0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        check_int("random_links", self.random_links, lo=0, hi=10_000)
        check_int("max_windows", self.max_windows, lo=1)


def _windows(
    xs: Sequence[np.ndarray], labels: Sequence[np.ndarray], window: int, stride: int, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """``[m, window, F]`` inputs ending at labelled rows, ``[m]`` labels (label > 0)."""
    out_x: list[np.ndarray] = []
    out_y: list[float] = []
    for x, lab in zip(xs, labels, strict=True):
        for end in range(window, x.shape[0] + 1, stride):
            if len(out_y) >= limit:
                break
            if not np.isnan(lab[end - 1]):
                out_x.append(x[end - window : end])
                out_y.append(float(lab[end - 1] > 0.0))
    if not out_y:
        return np.zeros((0, window, N_FEATURES), np.float32), np.zeros(0)
    return np.stack(out_x).astype(np.float32), np.asarray(out_y)


def _padded_windows(x: np.ndarray, window: int) -> np.ndarray:
    """Every row's window, zero history before the first row: ``[n, window, F]``."""
    xp = np.concatenate([np.zeros((window - 1, x.shape[1]), x.dtype), x])
    idx = np.arange(x.shape[0])[:, None] + np.arange(window)[None, :]
    return xp[idx]


def _model(cfg: TransformerConfig) -> Any:
    import torch

    class CausalTransformer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = torch.nn.Linear(N_FEATURES, cfg.d_model)
            self.pos = torch.nn.Parameter(torch.zeros(cfg.window, cfg.d_model))
            layer = torch.nn.TransformerEncoderLayer(
                cfg.d_model, cfg.heads, cfg.ff, 0.0, batch_first=True
            )
            self.enc = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.out = torch.nn.Linear(cfg.d_model, 1)
            self.register_buffer(
                "mask", torch.triu(torch.full((cfg.window, cfg.window), float("-inf")), 1)
            )

        def forward(self, x: Any) -> Any:  # [b, window, F] -> [b]
            z = self.enc(self.inp(x) + self.pos, mask=self.mask)
            return self.out(z[:, -1]).squeeze(-1)

    return CausalTransformer()


def run_probe(
    traces: Sequence[Path],
    *,
    config: TransformerConfig | None = None,
    seed: int = 0,
    train_config: Any = None,
) -> dict[str, Any]:
    """Train on the training split, score on ``traces``; returns figures per RTT.

    ``train_config``: a `LossTrainConfig` for the data (default: the LSTM's with
    `TransformerConfig.random_links`).
    """
    import torch

    from oxidize_ml.evaluation import fec
    from oxidize_ml.evaluation.scores import brier, interpolate_at, pr_auc
    from oxidize_ml.loss import EwmaLossPredictor
    from oxidize_ml.training.loss_config import LossTrainConfig
    from oxidize_ml.training.loss_data import build_training_data, split_by_run
    from oxidize_ml.training.loss_fit import _platt, _torch_determinism

    cfg = config if config is not None else TransformerConfig()
    check_int("seed", seed)
    t0 = time.perf_counter()
    tcfg = (
        train_config
        if train_config is not None
        else replace(LossTrainConfig(), random_links=cfg.random_links)
    )
    seqs = build_training_data(tcfg)
    tr, va = split_by_run(seqs, tcfg.val_fraction, np.random.default_rng([seed, 3]))
    x_all = np.concatenate([s.x for s in tr]).astype(np.float64)
    mu = x_all.mean(axis=0)
    sd = np.maximum(x_all.std(axis=0), 1e-3)
    xtr, ytr = _windows(
        [((s.x - mu) / sd).astype(np.float32) for s in tr],
        [s.label for s in tr],
        cfg.window,
        cfg.stride,
        cfg.max_windows,
    )
    xva, yva = _windows(
        [((s.x - mu) / sd).astype(np.float32) for s in va],
        [s.label for s in va],
        cfg.window,
        1,
        cfg.max_windows,
    )
    if ytr.sum() == 0 or ytr.sum() == ytr.size:
        raise ValueError("training windows need both lossy and clean labels")
    rng = np.random.default_rng([seed, 7])
    with _torch_determinism(seed, 1):
        model = _model(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        pw = torch.tensor(math.sqrt(float((ytr.size - ytr.sum()) / ytr.sum())))
        xt = torch.from_numpy(xtr)
        yt = torch.from_numpy(ytr.astype(np.float32))
        for _ in range(cfg.epochs):
            order = torch.from_numpy(rng.permutation(ytr.size))
            for i in range(0, ytr.size, cfg.batch_size):
                b = order[i : i + cfg.batch_size]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    model(xt[b]), yt[b], pos_weight=pw
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()

        def logits(x: np.ndarray) -> np.ndarray:
            out = []
            with torch.no_grad():
                for i in range(0, x.shape[0], 4096):
                    out.append(model(torch.from_numpy(x[i : i + 4096])).numpy())
            return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

        # Platt scaling against the soft label (as the LSTM): a lossy window's mean loss.
        lab_va = np.concatenate([s.label[~np.isnan(s.label)] for s in va])
        mean_pos = float(lab_va[lab_va > 0].mean()) if (lab_va > 0).any() else 0.0
        a, b_ = _platt(logits(xva), yva * mean_pos)
        runs = fec._trace_runs(
            list(traces),
            rtts_s=[0.04, 0.1],
            duration_s=30.0,
            n_windows=fec.TRACE_WINDOWS,
            controllers=fec.CONTROLLERS,
            seed=seed,
            progress=None,
        )
        p_l, e_l, y_l, r_l = [], [], [], []
        for r in runs:
            x = (np.array([f.to_vector() for f in r.features]) - mu) / sd
            z = logits(_padded_windows(x.astype(np.float32), cfg.window))
            v = r.valid
            p_l.append(1.0 / (1.0 + np.exp(-(a * z + b_)))[v])
            e_l.append(fec.predict_run(EwmaLossPredictor, r)[v])
            y_l.append(r.labels[v])
            r_l.append(np.full(int(v.sum()), r.scenario.rsplit("rtt", 1)[1]))
    p, e, y, rt = (
        np.concatenate(p_l),
        np.concatenate(e_l),
        np.concatenate(y_l),
        np.concatenate(r_l),
    )
    table = fec._RepairTable(fec.FecPolicy(fec.FecConfig()))
    out: dict[str, Any] = {}
    for key in ("40", "100", "pooled"):
        m = np.ones(y.size, bool) if key == "pooled" else rt == key
        yy, pp, ee = y[m], p[m], e[m]
        o0, r0 = fec.fec_point(yy, table(ee), 10)
        pts = [fec.fec_point(yy, table(np.minimum(1.0, s * pp)), 10) for s in fec.SCALES]
        o = np.array([q for q, _ in pts])
        res = np.array([q for _, q in pts])
        srt = np.argsort(o, kind="stable")
        at = interpolate_at(o[srt], res[srt], o0)
        out[key] = {
            "pr_auc": pr_auc(yy > 0, pp),
            "pr_auc_ewma": pr_auc(yy > 0, ee),
            "brier": brier(pp, yy),
            "residual_ratio_vs_ewma": at / r0 if r0 > 0 else math.nan,
        }
    out["config"] = asdict(cfg)
    out["training_windows"] = int(ytr.size)
    out["wall_s"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    from oxidize_ml.evaluation.splits import HELDOUT_TRACES, trace_paths

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    traces = trace_paths(HELDOUT_TRACES)
    if not traces:
        print("the held-out traces are not available (set OXIDIZE_TRACE_DIR)")
        return 1
    print(json.dumps(run_probe(traces, seed=args.seed), indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["TransformerConfig", "main", "run_probe"]
