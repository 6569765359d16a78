"""`BackgroundTrainerConfig`: schedule, data bounds, training budget and swap rule of
`oxidize_ml.training.background.BackgroundTrainer` (shared with its fit worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from oxidize_ml._validate import check_int, check_number

ISOLATIONS: Final = ("process", "thread")


@dataclass(frozen=True, slots=True)
class BackgroundTrainerConfig:
    """Schedule, data bounds, training budget and swap rule of `BackgroundTrainer`."""

    min_new_samples: int = 3_000
    """new labelled loss rows (30 s of 10-ms observations) needed before a retraining round"""
    poll_interval_s: float = 5.0
    """seconds between two collections on the trainer thread"""
    max_rows: int = 60_000
    """bound on buffered loss rows (the newest are kept): 10 minutes at 10 ms"""
    heldout_fraction: float = 0.2
    """newest share of the rows held out to judge candidate against current"""
    val_fraction: float = 0.15
    """share of rows before the held-out slice used for early stopping and calibration"""
    min_train_rows: int = 500
    """fewer training rows than this: no round"""
    min_heldout_positives: int = 10
    """fewer lossy rows in the held-out slice than this: no decision"""
    min_pr_auc_gain: float = 0.005
    """the candidate's held-out PR-AUC must exceed the current one's by more than this"""
    max_brier_ratio: float = 1.05
    """and its Brier score must be at most this times the current one's"""
    confidence: float = 0.95
    """and the gain must hold at this one-sided confidence: the lower bound of a paired
    block bootstrap of the PR-AUC gain must also exceed ``min_pr_auc_gain``"""
    bootstrap_rounds: int = 200
    """bootstrap replicates of the held-out slice"""
    bootstrap_block_s: float = 1.0
    """bootstrap block length, seconds (rows within a second are strongly correlated)"""
    hidden: int = 64
    """LSTM hidden units (spec: 64)"""
    max_epochs: int = 6
    """epochs per round (early stopping on the validation slice may end sooner)"""
    patience: int = 2
    """epochs without a better validation PR-AUC before stopping"""
    segment_steps: int = 200
    """observations per TBPTT training segment"""
    batch_size: int = 16
    """segments per optimiser step"""
    learning_rate: float = 3e-3
    """Adam step size"""
    warmup_rows: int = 200
    """newest observations replayed into a new predictor before the swap (2 s)"""
    isolation: str = "process"
    """"process": fit in a niced worker subprocess; "thread": in the trainer thread"""
    worker_nice: int = 10
    """niceness added to the worker process (decisions keep CPU priority)"""
    worker_timeout_s: float = 1_800.0
    """a fit taking longer is abandoned (the worker is terminated)"""
    yield_every: int = 8
    """model steps between GIL yields during evaluation"""
    export_dir: Path | None = None
    """keep the trainer's telemetry exports here (None: a private temporary directory,
    each export deleted once read)"""
    keep_exports: int = 50
    """at most this many exports kept in ``export_dir`` (oldest deleted)"""
    max_reports: int = 100
    """round reports kept in memory"""
    seed: int = 0
    """seed of every round's fit (round k uses seed + k)"""

    def __post_init__(self) -> None:
        check_int("min_new_samples", self.min_new_samples, lo=1)
        if check_number("poll_interval_s", self.poll_interval_s) <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {self.poll_interval_s!r}")
        check_int("max_rows", self.max_rows, lo=10)
        h = check_number("heldout_fraction", self.heldout_fraction, hi=0.9)
        v = check_number("val_fraction", self.val_fraction, hi=0.9)
        if h <= 0 or v <= 0 or h + v >= 0.9:
            raise ValueError(
                "heldout_fraction and val_fraction must be > 0 with a sum < 0.9, got "
                f"{self.heldout_fraction!r} + {self.val_fraction!r}"
            )
        check_int("min_train_rows", self.min_train_rows, lo=2)
        check_int("min_heldout_positives", self.min_heldout_positives, lo=1)
        check_number("min_pr_auc_gain", self.min_pr_auc_gain, lo=None)
        check_number("max_brier_ratio", self.max_brier_ratio)
        c = check_number("confidence", self.confidence, hi=1.0)
        if not 0.5 <= c < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence!r}")
        check_int("bootstrap_rounds", self.bootstrap_rounds, lo=10)
        if check_number("bootstrap_block_s", self.bootstrap_block_s) <= 0:
            raise ValueError(f"bootstrap_block_s must be > 0, got {self.bootstrap_block_s!r}")
        check_int("hidden", self.hidden, lo=1, hi=4096)
        check_int("max_epochs", self.max_epochs, lo=1)
        check_int("patience", self.patience, lo=1)
        check_int("segment_steps", self.segment_steps, lo=20)
        check_int("batch_size", self.batch_size, lo=1)
        if check_number("learning_rate", self.learning_rate) <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        check_int("warmup_rows", self.warmup_rows, lo=0)
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {list(ISOLATIONS)}, got {self.isolation!r}")
        check_int("worker_nice", self.worker_nice, lo=0, hi=19)
        check_number("worker_timeout_s", self.worker_timeout_s)
        check_int("yield_every", self.yield_every, lo=1)
        if self.export_dir is not None and not isinstance(self.export_dir, Path):
            object.__setattr__(self, "export_dir", Path(self.export_dir))
        check_int("keep_exports", self.keep_exports, lo=1)
        check_int("max_reports", self.max_reports, lo=1)
        check_int("seed", self.seed, lo=0)

    def loss_train_config(self) -> Any:
        """The `LossTrainConfig` handed to `fit_lstm` (only its fit fields matter here)."""
        from oxidize_ml.runtime.configs import LossLstmConfig
        from oxidize_ml.training.loss import LossTrainConfig

        return LossTrainConfig(
            model=LossLstmConfig(hidden=self.hidden),
            max_epochs=self.max_epochs,
            patience=self.patience,
            segment_steps=self.segment_steps,
            burn_in_steps=min(20, self.segment_steps - 1),
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            torch_threads=1,
        )
