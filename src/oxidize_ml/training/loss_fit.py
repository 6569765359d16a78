"""Stateful TBPTT fit of the LSTM loss predictor, Platt scaling, folding (see
`oxidize_ml.training.loss`)."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oxidize_ml.evaluation.scores import brier, pr_auc
from oxidize_ml.features import N_FEATURES
from oxidize_ml.training.loss_config import LossTrainConfig
from oxidize_ml.training.loss_data import LossSequence


# ---------------------------------------------------------------------------------- torch
def _standardisation(seqs: Sequence[LossSequence]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([s.x for s in seqs]).astype(np.float64)
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    # A feature that barely varies in training must not be blown up at inference.
    sd = np.maximum(sd, 1e-3)
    return mu.astype(np.float32), sd.astype(np.float32)


def _folded_model(core: Any, mu: np.ndarray, sd: np.ndarray, a: float, b: float) -> Any:
    """A plain `LossLstm` computing sigmoid(a * logit(core((x - mu) / sd)) + b) on raw x.

    (x - mu) / sd enters the LSTM only through ``W_ih x + b_ih``: fold 1/sd into
    the columns of ``W_ih`` and ``-W_ih (mu / sd)`` into ``b_ih``; the Platt
    scaling multiplies the head by ``a`` and adds ``b`` to its bias.
    """
    import torch

    from oxidize_ml.training.torch_models import LossLstm

    cfg = core.config
    out = LossLstm.from_config(cfg)
    lstm: Any = out.lstm  # the stubs type nn.LSTM's weights as callables
    sd_t = torch.from_numpy(sd.astype(np.float64))
    mu_t = torch.from_numpy(mu.astype(np.float64))
    with torch.no_grad():
        w_ih = core.lstm.weight_ih_l0.detach().double()
        lstm.weight_ih_l0.copy_((w_ih / sd_t).float())
        lstm.bias_ih_l0.copy_((core.lstm.bias_ih_l0.double() - w_ih @ (mu_t / sd_t)).float())
        lstm.weight_hh_l0.copy_(core.lstm.weight_hh_l0)
        lstm.bias_hh_l0.copy_(core.lstm.bias_hh_l0)
        out.head.weight.copy_((core.head.weight.double() * a).float())
        out.head.bias.copy_((core.head.bias.double() * a + b).float())
    return out.eval()


@dataclass
class _Packed:
    """Sequences concatenated into one array, plus a padding row at the end."""

    x: Any  # torch float32 [N + 1, F]
    y_soft: Any  # torch float32 [N + 1]
    y_bin: Any  # torch float32 [N + 1]
    valid: Any  # torch float32 [N + 1] (1 where labelled)
    starts: np.ndarray  # int64 [S]
    lengths: np.ndarray  # int64 [S]


def _pack(seqs: Sequence[LossSequence], mu: np.ndarray, sd: np.ndarray) -> _Packed:
    import torch

    x = np.concatenate([s.x for s in seqs] + [np.zeros((1, N_FEATURES), np.float32)])
    x = (x - mu) / sd
    lab = np.concatenate([s.label for s in seqs] + [np.array([np.nan])])
    valid = ~np.isnan(lab)
    soft = np.where(valid, lab, 0.0)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    return _Packed(
        x=torch.from_numpy(x.astype(np.float32)),
        y_soft=torch.from_numpy(soft.astype(np.float32)),
        y_bin=torch.from_numpy((soft > 0.0).astype(np.float32)),
        valid=torch.from_numpy(valid.astype(np.float32)),
        starts=starts,
        lengths=lengths,
    )


def _segments(
    packed: _Packed, seg: int, burn_in: int, rng: np.random.Generator
) -> list[tuple[int, int, bool]]:
    """(global start, length, starts a connection) for one epoch, random phase per sequence."""
    out = []
    for start, n in zip(packed.starts.tolist(), packed.lengths.tolist(), strict=True):
        phase = int(rng.integers(seg))
        cuts = [0] + list(range(phase if phase > 0 else seg, n, seg)) + [n]
        for a, b in itertools.pairwise(cuts):
            if b - a > (0 if a == 0 else burn_in):
                out.append((start + a, b - a, a == 0))
    return out


def _batch_index(
    segs: Sequence[tuple[int, int, bool]], seg: int, pad: int, burn_in: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``[B, seg]`` (padding -> ``pad``) and a burn-in keep mask ``[B, seg]``."""
    idx = np.full((len(segs), seg), pad, dtype=np.int64)
    keep = np.ones((len(segs), seg), dtype=np.float32)
    for i, (a, n, first) in enumerate(segs):
        idx[i, :n] = np.arange(a, a + n)
        if not first:
            keep[i, :burn_in] = 0.0
    return idx, keep


def _sequence_logits(model: Any, packed: _Packed) -> list[np.ndarray]:
    """Per-sequence logits, each sequence run from zero state to its end (as deployed)."""
    import torch

    n = len(packed.lengths)
    t_max = int(packed.lengths.max())
    pad = packed.x.shape[0] - 1
    idx = np.full((n, t_max), pad, dtype=np.int64)
    for i, (a, m) in enumerate(zip(packed.starts, packed.lengths, strict=True)):
        idx[i, :m] = np.arange(a, a + m)
    with torch.no_grad():
        z, _ = model.forward_logits(packed.x[torch.from_numpy(idx)])
    zn = z.numpy()
    return [zn[i, :m].astype(np.float64) for i, m in enumerate(packed.lengths)]


def _val_scores(logits: list[np.ndarray], packed: _Packed) -> tuple[float, float]:
    """(PR-AUC, mean soft BCE) over the labelled validation rows."""
    z = np.concatenate(logits)
    valid = packed.valid.numpy()[:-1] > 0
    y = packed.y_soft.numpy()[:-1].astype(np.float64)
    z, y = z[valid], y[valid]
    ap = pr_auc(y > 0.0, z)
    bce = float(np.mean(np.logaddexp(0.0, z) - y * z))
    return ap, bce


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising mean BCE(sigmoid(a z + b), y) for soft labels y (Newton, 2 params)."""
    a, b = 1.0, 0.0
    for _ in range(100):
        u = a * z + b
        p = 0.5 * (1.0 + np.tanh(0.5 * u))
        g = p - y
        w = p * (1.0 - p) + 1e-12
        grad = np.array([np.mean(g * z), np.mean(g)])
        h = np.array([[np.mean(w * z * z), np.mean(w * z)], [np.mean(w * z), np.mean(w)]])
        h += 1e-9 * np.eye(2)
        step = np.linalg.solve(h, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


@contextlib.contextmanager
def _torch_determinism(seed: int, threads: int) -> Iterator[None]:
    """Seeded, deterministic, ``threads``-thread torch; the caller's settings come back."""
    import torch

    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old_det)
            torch.set_num_threads(old_threads)


@dataclass
class FitResult:
    """What `fit_lstm` returns."""

    model: Any
    """the folded `LossLstm` (reads raw schema vectors; calibrated), eval mode"""
    epochs: int
    best_epoch: int
    history: list[dict[str, float]]
    pos_weight: float
    calibration: tuple[float, float]
    standardisation: tuple[list[float], list[float]]
    val_pr_auc: float
    val_brier: float


def fit_lstm(
    train_seqs: Sequence[LossSequence],
    val_seqs: Sequence[LossSequence],
    config: LossTrainConfig,
    *,
    seed: int,
    progress: Any = None,
) -> FitResult:
    """Stateful TBPTT training with early stopping on validation PR-AUC (see module docs).

    Deterministic for ``seed``: torch is seeded inside a forked RNG, runs
    deterministic algorithms on ``config.torch_threads`` threads, and the
    caller's torch settings are restored afterwards.
    """
    with _torch_determinism(seed, config.torch_threads):
        return _fit(train_seqs, val_seqs, config, seed=seed, progress=progress)


def _fit(
    train_seqs: Sequence[LossSequence],
    val_seqs: Sequence[LossSequence],
    config: LossTrainConfig,
    *,
    seed: int,
    progress: Any,
) -> FitResult:
    import torch
    import torch.nn.functional as nnf

    from oxidize_ml.training.torch_models import LossLstm, detach_state, iter_tbptt_chunks

    if not train_seqs or not val_seqs:
        raise ValueError("fit_lstm needs at least one training and one validation sequence")
    rng = np.random.default_rng([seed, 7])
    mu, sd = _standardisation(train_seqs)
    tr = _pack(train_seqs, mu, sd)
    va = _pack(val_seqs, mu, sd)
    lab = tr.y_bin.numpy()[:-1][tr.valid.numpy()[:-1] > 0]
    n_pos = float(lab.sum())
    n_neg = float(lab.size - n_pos)
    if config.pos_weight is not None:
        pos_weight = float(config.pos_weight)
    elif config.target == "binary":
        pos_weight = math.sqrt(n_neg / n_pos) if n_pos > 0 else 1.0
    else:
        # Soft labels: the imbalance is in loss mass, mean label vs its complement.
        m = float(tr.y_soft.numpy()[:-1][tr.valid.numpy()[:-1] > 0].mean()) if lab.size else 0.0
        pos_weight = math.sqrt((1.0 - m) / m) if 0.0 < m < 1.0 else 1.0
    core = LossLstm.from_config(config.model)
    # Start the output at the base rate: the first epochs then learn ranking,
    # not the bias.
    base = min(max(float(lab.mean()) if lab.size else 0.01, 1e-4), 0.5)
    with torch.no_grad():
        core.head.bias.fill_(math.log(base / (1.0 - base)))
    opt = torch.optim.Adam(
        core.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    seg, burn, chunk = config.segment_steps, config.burn_in_steps, config.model.seq_len
    pad = tr.x.shape[0] - 1
    pw = torch.tensor(pos_weight)
    task = (
        progress.add_task("training LSTM", total=config.max_epochs, info="")
        if progress is not None
        else None
    )
    best_ap, best_epoch, best_state = -1.0, 0, None
    history: list[dict[str, float]] = []
    epochs = 0
    for epoch in range(1, config.max_epochs + 1):
        epochs = epoch
        frac = (epoch - 1) / max(config.max_epochs - 1, 1)
        lr = config.learning_rate * (
            config.lr_final_fraction
            + (1.0 - config.lr_final_fraction) * 0.5 * (1.0 + math.cos(math.pi * frac))
        )
        for group in opt.param_groups:
            group["lr"] = lr
        core.train()
        segs = _segments(tr, seg, burn, rng)
        order = rng.permutation(len(segs))
        total, count = 0.0, 0
        for b0 in range(0, len(order), config.batch_size):
            batch = [segs[j] for j in order[b0 : b0 + config.batch_size]]
            idx_np, keep_np = _batch_index(batch, seg, pad, burn)
            idx = torch.from_numpy(idx_np)
            xb = tr.x[idx]
            yb = (tr.y_bin if config.target == "binary" else tr.y_soft)[idx]
            mb = tr.valid[idx] * torch.from_numpy(keep_np)
            state = core.zero_state(len(batch))
            for (xc, yc), (mc, _) in zip(
                iter_tbptt_chunks(xb, yb, chunk), iter_tbptt_chunks(mb, mb, chunk), strict=True
            ):
                if float(mc.sum()) == 0.0:
                    with torch.no_grad():
                        _, state = core.forward_logits(xc, state)
                    continue
                z, state = core.forward_logits(xc, state)
                loss_el = nnf.binary_cross_entropy_with_logits(
                    z, yc, pos_weight=pw, reduction="none"
                )
                # Normalised by the chunk size, not the valid count: padded and
                # burn-in steps simply weigh nothing.
                loss = (loss_el * mc).sum() / mc.numel()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(core.parameters(), config.grad_clip_norm)
                opt.step()
                state = detach_state(state)
                total += float((loss_el * mc).sum().detach())
                count += int(mc.sum())
        core.eval()
        ap, bce = _val_scores(_sequence_logits(core, va), va)
        history.append(
            {"epoch": epoch, "train_loss": total / max(count, 1), "val_pr_auc": ap, "val_bce": bce}
        )
        if ap > best_ap:
            best_ap, best_epoch = ap, epoch
            best_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
        if progress is not None:
            progress.update(
                task, advance=1, info=f"val PR-AUC {ap:.3f} (best {best_ap:.3f} @ {best_epoch})"
            )
        if epoch - best_epoch >= config.patience:
            break
    assert best_state is not None
    core.load_state_dict(best_state)
    core.eval()
    logits = _sequence_logits(core, va)
    z_val = np.concatenate(logits)
    valid = va.valid.numpy()[:-1] > 0
    y = va.y_soft.numpy()[:-1].astype(np.float64)
    a, b = _platt(z_val[valid], y[valid]) if config.calibrate else (1.0, 0.0)
    model = _folded_model(core, mu, sd, a, b)
    p = 1.0 / (1.0 + np.exp(-(a * z_val[valid] + b)))
    return FitResult(
        model=model,
        epochs=epochs,
        best_epoch=best_epoch,
        history=history,
        pos_weight=pos_weight,
        calibration=(a, b),
        standardisation=(mu.tolist(), sd.tolist()),
        val_pr_auc=best_ap,
        val_brier=brier(p, y[valid]),
    )
