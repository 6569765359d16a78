"""The fit of a background retraining round, in the trainer's thread or in its worker.

``python -m oxidize_ml.training.background_worker DATA.npz OUT_DIR CONFIG.json SEED`` is
the subprocess `BackgroundTrainer` starts with ``isolation="process"``: it lowers its own
priority by ``worker_nice``, reads the training rows from the ``.npz`` (numbers only,
``allow_pickle=False``), runs `oxidize_ml.training.loss.fit_lstm` and writes
``candidate.safetensors`` and ``fit.json`` to OUT_DIR. `fit_in_process` is the same fit
for ``isolation="thread"``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml.training.background_config import BackgroundTrainerConfig
from oxidize_ml.training.background_data import RowSequence, to_loss_sequences, unpack


def _fit(
    train: Sequence[RowSequence],
    val: Sequence[RowSequence],
    config: BackgroundTrainerConfig,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """(`fit_lstm` result, info): the fit both isolations run."""
    from oxidize_ml.training.loss import fit_lstm

    fit = fit_lstm(
        to_loss_sequences(train, "train"),
        to_loss_sequences(val, "val"),
        config.loss_train_config(),
        seed=seed,
    )
    info = {
        "epochs": fit.epochs,
        "best_epoch": fit.best_epoch,
        "val_pr_auc": fit.val_pr_auc,
        "val_brier": fit.val_brier,
    }
    return fit, info


def fit_in_process(
    train: Sequence[RowSequence],
    val: Sequence[RowSequence],
    config: BackgroundTrainerConfig,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """fit_lstm here; returns (numpy LstmLossModel, info)."""
    from oxidize_ml.runtime.numpy_models import LstmLossModel

    fit, info = _fit(train, val, config, seed)
    tensors = {k: v.detach().cpu().numpy() for k, v in fit.model.state_dict().items()}
    return LstmLossModel.from_tensors(tensors, fit.model.config), info


def worker_main(argv: Sequence[str]) -> int:
    """Entry of the fit subprocess: ``DATA.npz OUT_DIR CONFIG.json SEED``."""
    if len(argv) != 4:
        raise ValueError(f"argv must be DATA.npz OUT_DIR CONFIG.json SEED, got {list(argv)!r}")
    data_path, out_dir, cfg_path, seed_s = argv
    cfg_json = json.loads(Path(cfg_path).read_text("utf-8"))
    cfg_json["export_dir"] = None
    config = BackgroundTrainerConfig(**{**cfg_json, "isolation": "thread"})
    if hasattr(os, "nice") and config.worker_nice:
        os.nice(config.worker_nice)  # this process only: decisions keep the CPU first
    with np.load(data_path, allow_pickle=False) as arrays:
        train, val = unpack(arrays, "train"), unpack(arrays, "val")
    from oxidize_ml.training.export import export_safetensors

    fit, info = _fit(train, val, config, int(seed_s))
    export_safetensors(fit.model, Path(out_dir) / "candidate.safetensors")
    (Path(out_dir) / "fit.json").write_text(json.dumps(info, allow_nan=True), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
