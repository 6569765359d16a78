"""`BackgroundTrainer`: retrain the loss predictor from the engine's own telemetry, swap if better.

The spec's "training runs in a background thread and never blocks the
packet path", for the LSTM loss predictor.

Loop (one `run_once` per ``poll_interval_s`` on the trainer's thread)
--------------------------------------------------------------------
1. **Collect.** ``engine.export_training_data`` writes the collected
   telemetry to the trainer's spool directory (a private temporary directory,
   or ``export_dir``); the ``loss`` rows (features, ``future_loss`` label) are
   read back into a bounded buffer of the newest ``max_rows`` rows. An export
   *drains* the engine's buffers (that is how `TelemetryCollector.export`
   works), so while the trainer runs it is the consumer of the engine's
   telemetry: set ``export_dir`` to keep its exports (at most
   ``keep_exports``, all four tables) for offline training. A non-draining
   snapshot on the collector would remove this coupling (see the report).
2. **Retrain** once ``min_new_samples`` new labelled rows have arrived since
   the last round. Rows are cut into sequences per source at gaps longer
   than 1 s (a new connection), then split by time: the newest
   ``heldout_fraction`` of rows is the held-out RECENT slice, the slice just
   before it (``val_fraction``) drives early stopping and calibration, the
   rest trains. Training is `oxidize_ml.training.loss.fit_lstm` (stateful
   TBPTT, the offline trainer's code) with this config's small budget.
3. **Evaluate** candidate and current policy on the held-out slice, both
   run over each whole sequence from its start (so their carried state at
   the slice is what deployment would have) and scored on the slice only:
   PR-AUC on label > 0 and Brier score against the soft label (REFERENCES
   section 3).
4. **Swap** with ``engine.replace_policy("loss_predictor", ...)`` only if
   the candidate is better: PR-AUC higher by more than ``min_pr_auc_gain``
   (0.005), also at 95 % one-sided confidence (the 5 % quantile of a paired
   bootstrap over 1-second blocks of the slice must exceed it: without it,
   in one benchmark run on unlearnable random loss, a candidate won on the
   point estimates in 1 round of 5), AND Brier at most ``max_brier_ratio`` (1.05) times the
   current one's. With fewer than ``min_heldout_positives`` losses in the
   slice no decision is taken. The new predictor's state is warmed up on
   the newest ``warmup_rows`` observations before the swap.

Never blocking decisions
------------------------
The engine's lock is only taken by its own short calls (export snapshot,
``replace_policy``). With ``isolation="process"`` (default) the fit runs in
a worker subprocess (``python -m oxidize_ml.training.background --worker``,
niced by ``worker_nice``) that reads the training rows from an ``.npz``
(numbers only, loaded with ``allow_pickle=False``) and writes the candidate
as a safetensors weight file: torch and the fit's Python-level work never
hold this process's GIL. Evaluation runs on the trainer thread in numpy and
yields the GIL every ``yield_every`` model steps (``time.sleep(0)``), so a
decision waits at most a few model steps. ``isolation="thread"`` fits in
the trainer thread instead (no subprocess; tests). `measure_decision_latency`
is the benchmark behind the latency figures.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.features import N_FEATURES, NetworkFeatures

log = logging.getLogger(__name__)

GAP_S: Final = 1.0
"""observations further apart than this start a new sequence (a new connection),
as in `oxidize_ml.training.loss.telemetry_sequences`"""
ISOLATIONS: Final = ("process", "thread")
COMPONENT: Final = "loss_predictor"


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


@dataclass(frozen=True)
class RoundReport:
    """What one retraining round saw and decided."""

    round: int
    started_at: float
    """wall clock, Unix seconds"""
    rows: int
    """buffered rows the round used"""
    train_rows: int
    heldout_rows: int
    heldout_positives: int
    current_policy: str
    candidate: dict[str, float] | None
    """held-out ``{"pr_auc", "brier"}`` of the candidate (None when not trained)"""
    current: dict[str, float] | None
    swapped: bool
    reason: str
    fit_s: float = 0.0
    eval_s: float = 0.0
    fit_info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- data


class _RowBuffer:
    """The newest ``capacity`` loss rows (time, source, features, loss rate, label)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.t = np.zeros(0)
        self.source = np.zeros(0, dtype=object)
        self.x = np.zeros((0, N_FEATURES), dtype=np.float32)
        self.loss_rate = np.zeros(0)
        self.label = np.zeros(0)

    def __len__(self) -> int:
        return int(self.t.size)

    def extend(self, t: np.ndarray, source: np.ndarray, x: np.ndarray, loss_rate: np.ndarray,
               label: np.ndarray) -> None:
        keep = slice(-self.capacity, None)
        self.t = np.concatenate((self.t, t))[keep]
        self.source = np.concatenate((self.source, source))[keep]
        self.x = np.concatenate((self.x, x))[keep]
        self.loss_rate = np.concatenate((self.loss_rate, loss_rate))[keep]
        self.label = np.concatenate((self.label, label))[keep]


@dataclass(frozen=True, slots=True)
class _Seq:
    """One connection's rows in time order (indices into the buffer snapshot)."""

    t: np.ndarray
    x: np.ndarray
    loss_rate: np.ndarray
    label: np.ndarray


def split_sequences(t: np.ndarray, source: np.ndarray, x: np.ndarray, loss_rate: np.ndarray,
                    label: np.ndarray) -> list[_Seq]:
    """Rows grouped per source in time order, cut at gaps longer than `GAP_S`."""
    out: list[_Seq] = []
    for s in sorted(set(source.tolist()), key=str):
        idx = np.flatnonzero(source == s)
        idx = idx[np.argsort(t[idx], kind="stable")]
        cuts = np.flatnonzero(np.diff(t[idx]) > GAP_S) + 1
        for part in np.split(idx, cuts):
            if part.size >= 2:
                out.append(_Seq(t[part], x[part], loss_rate[part], label[part]))
    return out


def _window(seqs: Sequence[_Seq], lo: float, hi: float) -> list[_Seq]:
    """The parts of ``seqs`` with ``lo <= t < hi`` (at least 2 rows each)."""
    out = []
    for s in seqs:
        m = (s.t >= lo) & (s.t < hi)
        if int(m.sum()) >= 2:
            out.append(_Seq(s.t[m], s.x[m], s.loss_rate[m], s.label[m]))
    return out


def _to_loss_sequences(seqs: Sequence[_Seq], group: str) -> list[Any]:
    from oxidize_ml.training.loss import LossSequence

    return [LossSequence(f"background:{group}/{i}", group, s.t, s.x, s.loss_rate, s.label)
            for i, s in enumerate(seqs)]


def _pack(seqs: Sequence[_Seq]) -> dict[str, np.ndarray]:
    """Sequences as plain numeric arrays (for the worker's ``.npz``)."""
    lengths = [s.t.size for s in seqs]
    return {
        "t": np.concatenate([s.t for s in seqs]) if seqs else np.zeros(0),
        "x": (np.concatenate([s.x for s in seqs]) if seqs
              else np.zeros((0, N_FEATURES), np.float32)),
        "loss_rate": np.concatenate([s.loss_rate for s in seqs]) if seqs else np.zeros(0),
        "label": np.concatenate([s.label for s in seqs]) if seqs else np.zeros(0),
        "offsets": np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
    }


def _unpack(arrays: Any, prefix: str) -> list[_Seq]:
    off = arrays[f"{prefix}_offsets"]
    cols = [arrays[f"{prefix}_{k}"] for k in ("t", "x", "loss_rate", "label")]
    return [_Seq(*(c[a:b] for c in cols)) for a, b in itertools.pairwise(off)]


def features_from_vector(x: np.ndarray, loss_rate: float) -> NetworkFeatures:
    """A `NetworkFeatures` whose ``to_vector()`` is ``x`` (schema divisors undone).

    ``time_since_loss_ms`` and ``recent_retx`` are not in the vector; they are
    left at their defaults (no model reads them).
    """
    v = [float(a) for a in x]
    return NetworkFeatures(
        rtt_us=max(v[0], 0.0) * 1e6, rtt_var_us=max(v[1], 0.0) * 5e5,
        bandwidth_bps=max(v[2], 0.0) * 1e10, loss_rate=min(max(loss_rate, 0.0), 1.0),
        loss_trend=v[4], inflight=max(v[5], 0.0) * 1e4, cwnd=max(v[6], 0.0) * 1e6,
        buffer_occupancy=min(max(v[7], 0.0), 1.0),
    )


# ----------------------------------------------------------------------------- scoring


def _policy_predictions(policy: Any, seq: _Seq, yield_every: int) -> np.ndarray:
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
    p = policy.fork() if hasattr(policy, "fork") else (
        policy.clone() if hasattr(policy, "clone") else copy.deepcopy(policy))
    for i in range(seq.t.size):
        f = features_from_vector(seq.x[i], float(seq.loss_rate[i]))
        now = float(seq.t[i])
        p.learn_one(f, f.loss_rate, now=now)
        out[i] = p.predict_one(f, now=now)
        if i % yield_every == 0:
            sleep(0)
    return out


def heldout_predictions(policy: Any, seqs: Sequence[_Seq], heldout_from: float,
                        yield_every: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    from oxidize_ml.evaluation.metrics import brier, pr_auc

    if y.size == 0:
        return {"pr_auc": math.nan, "brier": math.nan, "rows": 0}
    return {"pr_auc": pr_auc(y > 0.0, p), "brier": brier(p, y), "rows": int(y.size)}


def score(policy: Any, seqs: Sequence[_Seq], heldout_from: float,
          yield_every: int = 8) -> dict[str, float]:
    """`scores` of ``policy`` on the held-out rows (see `heldout_predictions`)."""
    p, y, _ = heldout_predictions(policy, seqs, heldout_from, yield_every)
    return scores(p, y)


def bootstrap_gain_bound(
    y: np.ndarray, p_candidate: np.ndarray, p_current: np.ndarray, t: np.ndarray, *,
    block_s: float, rounds: int, quantile: float, seed: int,
) -> float:
    """Lower ``quantile`` of the candidate's PR-AUC gain over a paired block bootstrap.

    Rows are resampled in whole blocks of ``block_s`` seconds (loss and
    predictions are autocorrelated, so single rows would overstate the
    evidence), the same blocks for both policies. NaN when too few blocks
    hold a loss.
    """
    from oxidize_ml.evaluation.metrics import pr_auc

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


def is_better(candidate: dict[str, float], current: dict[str, float],
              config: BackgroundTrainerConfig, gain_bound: float | None = None) -> bool:
    """The swap rule (module docstring); ``gain_bound`` from `bootstrap_gain_bound`."""
    c_ap, k_ap = candidate["pr_auc"], current["pr_auc"]
    c_b, k_b = candidate["brier"], current["brier"]
    if not all(math.isfinite(v) for v in (c_ap, k_ap, c_b, k_b)):
        return False
    if gain_bound is not None and not gain_bound > config.min_pr_auc_gain:
        return False
    return c_ap > k_ap + config.min_pr_auc_gain and c_b <= k_b * config.max_brier_ratio


# ----------------------------------------------------------------------------- fitting


def _fit_in_process(train: Sequence[_Seq], val: Sequence[_Seq],
                    config: BackgroundTrainerConfig, seed: int) -> tuple[Any, dict[str, Any]]:
    """fit_lstm here; returns (numpy LstmLossModel, info)."""
    from oxidize_ml.runtime.models import LstmLossModel
    from oxidize_ml.training.loss import fit_lstm

    fit = fit_lstm(_to_loss_sequences(train, "train"), _to_loss_sequences(val, "val"),
                   config.loss_train_config(), seed=seed)
    tensors = {k: v.detach().cpu().numpy() for k, v in fit.model.state_dict().items()}
    model = LstmLossModel.from_tensors(tensors, fit.model.config)
    return model, {"epochs": fit.epochs, "best_epoch": fit.best_epoch,
                   "val_pr_auc": fit.val_pr_auc, "val_brier": fit.val_brier}


def worker_main(argv: Sequence[str]) -> int:
    """Entry of the fit subprocess: ``--worker DATA.npz OUT_DIR CONFIG.json SEED``."""
    data_path, out_dir, cfg_path, seed_s = argv
    cfg_json = json.loads(Path(cfg_path).read_text("utf-8"))
    cfg_json["export_dir"] = None
    config = BackgroundTrainerConfig(**{**cfg_json, "isolation": "thread"})
    if hasattr(os, "nice") and config.worker_nice:
        os.nice(config.worker_nice)  # this process only: decisions keep the CPU first
    with np.load(data_path, allow_pickle=False) as arrays:
        train, val = _unpack(arrays, "train"), _unpack(arrays, "val")
    from oxidize_ml.training.export import export_safetensors
    from oxidize_ml.training.loss import fit_lstm

    fit = fit_lstm(_to_loss_sequences(train, "train"), _to_loss_sequences(val, "val"),
                   config.loss_train_config(), seed=int(seed_s))
    export_safetensors(fit.model, Path(out_dir) / "candidate.safetensors")
    info = {"epochs": fit.epochs, "best_epoch": fit.best_epoch,
            "val_pr_auc": fit.val_pr_auc, "val_brier": fit.val_brier}
    (Path(out_dir) / "fit.json").write_text(json.dumps(info, allow_nan=True), "utf-8")
    return 0


# ----------------------------------------------------------------------------- the trainer


class BackgroundTrainer:
    """Retrains the engine's loss predictor from its own telemetry (see module docstring).

    Parameters
    ----------
    engine : MlEngine
        The engine to collect from and swap policies in.
    config : BackgroundTrainerConfig
        Schedule, bounds, budget and swap rule.

    Examples
    --------
    >>> trainer = BackgroundTrainer(engine, BackgroundTrainerConfig())  # doctest: +SKIP
    >>> trainer.start()  # doctest: +SKIP
    >>> ...  # the engine keeps deciding; rounds run every few seconds
    >>> trainer.stop()  # doctest: +SKIP
    >>> trainer.reports()[-1].swapped  # doctest: +SKIP
    """

    def __init__(self, engine: Any, config: BackgroundTrainerConfig | None = None) -> None:
        self.engine = engine
        self.config = config = BackgroundTrainerConfig() if config is None else config
        self._rows = _RowBuffer(config.max_rows)
        self._new_rows = 0
        self._round = 0
        self._swaps = 0
        self._reports: deque[RoundReport] = deque(maxlen=config.max_reports)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one run_once at a time
        self._proc: subprocess.Popen[bytes] | None = None
        self._own_spool = config.export_dir is None
        self._spool: Path | None = None
        self._last_error: str | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Enable the engine's telemetry collection and start the trainer thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the background trainer is already running")
        self.engine.enable_training_collection()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="oxidize-background-trainer",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread (terminating a running fit worker) and remove the private spool."""
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._own_spool and self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # keep the thread alive; report the error
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("background training round failed")
            self._stop.wait(self.config.poll_interval_s)

    # ---------------------------------------------------------------- inspection
    def reports(self) -> list[RoundReport]:
        """The most recent round reports (bounded by ``max_reports``), oldest first."""
        return list(self._reports)

    def stats(self) -> dict[str, Any]:
        """JSON-able counters for logs and dashboards."""
        last = self._reports[-1] if self._reports else None
        return {
            "running": self.running,
            "buffered_rows": len(self._rows),
            "new_rows": self._new_rows,
            "rounds": self._round,
            "swaps": self._swaps,
            "last_reason": None if last is None else last.reason,
            "last_error": self._last_error,
            "isolation": self.config.isolation,
        }

    # ---------------------------------------------------------------- one step
    def collect(self) -> int:
        """Export the engine's telemetry, buffer its labelled loss rows; return how many."""
        from oxidize_ml.telemetry.export import read_export

        self.engine.enable_training_collection()
        spool = self._spool_dir()
        manifest = self.engine.export_training_data(spool)
        try:
            table = read_export(manifest.path)["loss"]
        finally:
            if self._own_spool:
                shutil.rmtree(manifest.path, ignore_errors=True)
            else:
                self._prune_exports(spool)
        n = table.num_rows
        if n:
            from oxidize_ml.telemetry.schema import LOSS_FEATURE_COLUMNS

            x = np.stack([table.column(c).to_numpy().astype(np.float32)
                          for c in LOSS_FEATURE_COLUMNS], axis=1)
            self._rows.extend(
                table.column("timestamp").to_numpy().astype(np.float64),
                np.asarray(table.column("source").to_pylist(), dtype=object),
                x,
                table.column("loss_rate").to_numpy().astype(np.float64),
                table.column("future_loss").to_numpy().astype(np.float64),
            )
            self._new_rows += n
        return n

    def run_once(self, *, force: bool = False) -> RoundReport | None:
        """Collect, and run a retraining round if enough new rows arrived (or ``force``)."""
        with self._lock:
            self.collect()
            if not force and self._new_rows < self.config.min_new_samples:
                return None
            self._new_rows = 0
            self._round += 1
            report = self._round_once(self._round)
            self._reports.append(report)
            if report.swapped:
                self._swaps += 1
            return report

    def _spool_dir(self) -> Path:
        if self._spool is None:
            if self.config.export_dir is not None:
                self._spool = self.config.export_dir
            else:
                self._spool = Path(tempfile.mkdtemp(prefix="oxidize-background-"))
        return self._spool

    def _prune_exports(self, spool: Path) -> None:
        from oxidize_ml.telemetry.export import find_exports

        exports = find_exports(spool)
        for old in exports[: max(0, len(exports) - self.config.keep_exports)]:
            shutil.rmtree(old, ignore_errors=True)

    def _round_once(self, k: int) -> RoundReport:
        cfg = self.config
        started = time.time()
        rows = self._rows
        current = self.engine.policy(COMPONENT)
        base = {"round": k, "started_at": started, "rows": len(rows),
                "current_policy": str(getattr(current, "name", type(current).__name__))}
        seqs = split_sequences(rows.t, rows.source, rows.x, rows.loss_rate, rows.label)
        if not seqs:
            return RoundReport(**base, train_rows=0, heldout_rows=0, heldout_positives=0,
                               candidate=None, current=None, swapped=False,
                               reason="no labelled sequences yet")
        t_all = np.sort(np.concatenate([s.t for s in seqs]))
        held_from = float(np.quantile(t_all, 1.0 - cfg.heldout_fraction))
        val_from = float(np.quantile(t_all, 1.0 - cfg.heldout_fraction - cfg.val_fraction))
        train = _window(seqs, -math.inf, val_from)
        val = _window(seqs, val_from, held_from)
        held_mask = t_all >= held_from
        label_all = np.concatenate([s.label[s.t >= held_from] for s in seqs])
        positives = int((label_all > 0).sum())
        n_train = sum(s.t.size for s in train)
        counts = {"train_rows": n_train, "heldout_rows": int(held_mask.sum()),
                  "heldout_positives": positives}
        val_pos = sum(int((s.label > 0).sum()) for s in val)
        why_not = None
        if n_train < cfg.min_train_rows:
            why_not = f"only {n_train} training rows (< {cfg.min_train_rows})"
        elif positives < cfg.min_heldout_positives:
            why_not = (f"only {positives} lossy rows in the held-out slice "
                       f"(< {cfg.min_heldout_positives}): no decision")
        elif not val or val_pos == 0:
            why_not = "no loss in the validation slice: cannot early-stop or calibrate"
        if why_not is not None:
            return RoundReport(**base, **counts, candidate=None, current=None, swapped=False,
                               reason=why_not)
        t0 = time.perf_counter()
        model, info = self._fit(train, val, cfg.seed + k)
        fit_s = time.perf_counter() - t0
        if model is None:
            return RoundReport(**base, **counts, candidate=None, current=None, swapped=False,
                               reason=f"fit failed: {info.get('error')}", fit_s=fit_s,
                               fit_info=info)
        from oxidize_ml.loss.lstm import LstmLossPredictor

        t1 = time.perf_counter()
        p_cand, y, t_held = heldout_predictions(model, seqs, held_from, cfg.yield_every)
        p_cur, _, _ = heldout_predictions(current, seqs, held_from, cfg.yield_every)
        cand_scores, cur_scores = scores(p_cand, y), scores(p_cur, y)
        bound = bootstrap_gain_bound(
            y, p_cand, p_cur, t_held, block_s=cfg.bootstrap_block_s,
            rounds=cfg.bootstrap_rounds, quantile=1.0 - cfg.confidence, seed=cfg.seed + k,
        )
        cand_scores["pr_auc_gain_lower_bound"] = bound
        eval_s = time.perf_counter() - t1
        better = is_better(cand_scores, cur_scores, cfg, bound)
        if better:
            predictor = LstmLossPredictor(model.fork())
            newest = max(seqs, key=lambda s: s.t[-1])
            for xv in newest.x[-cfg.warmup_rows:] if cfg.warmup_rows else ():
                predictor.model.step(xv)  # warm the carried state, as after that history
            self.engine.replace_policy(COMPONENT, predictor, version=f"background-{k}")
            reason = "candidate better: swapped in"
        else:
            reason = "candidate not better: current kept"
        return RoundReport(**base, **counts, candidate=cand_scores, current=cur_scores,
                           swapped=better, reason=reason, fit_s=fit_s, eval_s=eval_s,
                           fit_info=info)

    def _fit(self, train: list[_Seq], val: list[_Seq], seed: int) -> tuple[Any, dict[str, Any]]:
        if self.config.isolation == "thread":
            try:
                return _fit_in_process(train, val, self.config, seed)
            except Exception as exc:  # a diverged or degenerate fit must not kill the loop
                log.exception("background fit failed")
                return None, {"error": f"{type(exc).__name__}: {exc}"}
        return self._fit_in_worker(train, val, seed)

    def _fit_in_worker(self, train: list[_Seq], val: list[_Seq],
                       seed: int) -> tuple[Any, dict[str, Any]]:
        from oxidize_ml.runtime.models import LstmLossModel
        from oxidize_ml.runtime.weights import ModelLoadError

        with tempfile.TemporaryDirectory(prefix="oxidize-fit-") as tmp:
            work = Path(tmp)
            arrays = {f"train_{k}": v for k, v in _pack(train).items()}
            arrays.update({f"val_{k}": v for k, v in _pack(val).items()})
            np.savez(work / "data.npz", **arrays)
            cfg = dataclasses.asdict(self.config)
            cfg["export_dir"] = None
            (work / "config.json").write_text(json.dumps(cfg), "utf-8")
            cmd = [sys.executable, "-m", "oxidize_ml.training.background", "--worker",
                   str(work / "data.npz"), str(work), str(work / "config.json"), str(seed)]
            with (work / "worker.log").open("wb") as logf:
                proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
                self._proc = proc
                deadline = time.monotonic() + self.config.worker_timeout_s
                try:
                    while proc.poll() is None:
                        if self._stop.is_set() or time.monotonic() > deadline:
                            proc.terminate()
                            try:
                                proc.wait(10)
                            except subprocess.TimeoutExpired:
                                proc.kill()
                                proc.wait()
                            return None, {"error": "worker stopped (trainer stopping or timeout)"}
                        self._stop.wait(0.05)
                finally:
                    self._proc = None
            if proc.returncode != 0:
                tail = (work / "worker.log").read_text("utf-8", "replace")[-2000:]
                return None, {"error": f"worker exited {proc.returncode}: {tail}"}
            try:
                model = LstmLossModel.load(work / "candidate.safetensors")
                info = json.loads((work / "fit.json").read_text("utf-8"))
            except (ModelLoadError, OSError, ValueError) as exc:
                return None, {"error": f"worker output unreadable: {exc}"}
            return model, info


# ----------------------------------------------------------------------------- benchmark


def _features_at(i: int, rng: np.random.Generator) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000 + 5_000 * math.sin(i / 50), rtt_var_us=3_000, bandwidth_bps=50e6,
        loss_rate=0.05 if rng.random() < 0.03 else 0.0, loss_trend=0.0, inflight=60,
        cwnd=90_000, time_since_loss_ms=100, buffer_occupancy=0.3 + 0.2 * math.sin(i / 70),
        recent_retx=0,
    )


def measure_decision_latency(
    *,
    isolation: str = "process",
    duration_s: float = 20.0,
    idle_s: float = 10.0,
    interval_s: float = 0.002,
    seed: int = 0,
    config: BackgroundTrainerConfig | None = None,
    prefill_rows: int = 20_000,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Decision latency p50/p99 with the trainer idle vs while a round trains.

    One engine; a decision loop on this thread calls, every ``interval_s``,
    ``observe`` + ``fec_decision`` + ``congestion_action`` +
    ``compression_decision`` and times each call with ``perf_counter_ns``.
    Phase 1 (``idle_s``): no trainer. Phase 2: the telemetry of
    ``prefill_rows`` observations is in the engine, a `BackgroundTrainer`
    thread runs rounds back to back (``force``) for ``duration_s``. Returns
    microsecond percentiles per call and phase, the p99 ratios, and the
    rounds completed. A benchmark, not a test: numbers depend on the machine.
    """
    from oxidize_ml.engine import EngineConfig, MlEngine

    rng = np.random.default_rng(seed)
    engine = MlEngine(EngineConfig(load_default_models=False, collect_training=True, seed=seed))
    payload = (b'{"user": "alice", "event": "view", "ok": true} ' * 28)[:1200]
    clock = [1_700_000_000.0]
    i_obs = [0]

    def tick(samples: dict[str, list[int]]) -> None:
        clock[0] += 0.01
        t = clock[0]
        f = _features_at(i_obs[0], rng)
        i_obs[0] += 1
        for name, call in (
            ("observe", lambda: engine.observe(f, now=t)),
            ("fec_decision", lambda: engine.fec_decision(now=t)),
            ("congestion_action", lambda: engine.congestion_action(now=t)),
            ("compression_decision", lambda: engine.compression_decision(payload)),
        ):
            t0 = time.perf_counter_ns()
            call()
            samples[name].append(time.perf_counter_ns() - t0)

    def phase(seconds: float) -> dict[str, list[int]]:
        samples: dict[str, list[int]] = {k: [] for k in (
            "observe", "fec_decision", "congestion_action", "compression_decision")}
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            tick(samples)
            time.sleep(interval_s)
        return samples

    def summary(samples: dict[str, list[int]]) -> dict[str, dict[str, float]]:
        out = {}
        for k, v in samples.items():
            a = np.asarray(v, dtype=np.float64) / 1e3
            out[k] = {"n": int(a.size), "p50_us": float(np.percentile(a, 50)),
                      "p99_us": float(np.percentile(a, 99)), "max_us": float(a.max())}
        return out

    # Phase 1: idle (the collector records, nobody trains).
    for _ in range(prefill_rows):  # the history a round will train on
        tick({k: [] for k in ("observe", "fec_decision", "congestion_action",
                              "compression_decision")})
    if on_progress:
        on_progress("idle phase")
    idle = summary(phase(idle_s))
    cfg = config or BackgroundTrainerConfig(
        isolation=isolation, min_new_samples=1, poll_interval_s=0.01, max_epochs=3,
        min_heldout_positives=1, seed=seed,
    )
    cfg = dataclasses.replace(cfg, isolation=isolation)
    trainer = BackgroundTrainer(engine, cfg)
    stop = threading.Event()

    def rounds() -> None:
        while not stop.is_set():
            try:
                trainer.run_once(force=True)
            except Exception:
                log.exception("benchmark round failed")
                return

    if on_progress:
        on_progress("training phase")
    worker = threading.Thread(target=rounds, daemon=True)
    worker.start()
    busy = summary(phase(duration_s))
    stop.set()
    trainer._stop.set()  # end a running worker fit promptly
    worker.join(120)
    trainer.stop()
    ratios = {k: busy[k]["p99_us"] / idle[k]["p99_us"] for k in idle if idle[k]["p99_us"] > 0}
    return {
        "isolation": isolation,
        "idle": idle,
        "training": busy,
        "p99_ratio": ratios,
        "rounds": [dataclasses.asdict(r) for r in trainer.reports()],
        "interval_s": interval_s,
        "cpu_count": os.cpu_count(),
        "median_p99_ratio": statistics.median(ratios.values()) if ratios else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m oxidize_ml.training.background [--worker ...] [--bench isolation seconds]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--worker"]:
        return worker_main(args[1:])
    isolation = args[1] if len(args) > 1 and args[0] == "--bench" else "process"
    seconds = float(args[2]) if len(args) > 2 else 20.0
    res = measure_decision_latency(isolation=isolation, duration_s=seconds,
                                   on_progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps({k: v for k, v in res.items() if k != "rounds"}, indent=2))
    print(json.dumps([{k: r[k] for k in ("round", "swapped", "reason", "fit_s", "eval_s")}
                      for r in res["rounds"]], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
