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
a worker subprocess (``python -m oxidize_ml.training.background_worker``,
niced by ``worker_nice``) that reads the training rows from an ``.npz``
(numbers only, loaded with ``allow_pickle=False``) and writes the candidate
as a safetensors weight file: torch and the fit's Python-level work never
hold this process's GIL. Evaluation runs on the trainer thread in numpy and
yields the GIL every ``yield_every`` model steps (``time.sleep(0)``), so a
decision waits at most a few model steps. ``isolation="thread"`` fits in
the trainer thread instead (no subprocess; tests).
`oxidize_ml.bench_background.measure_decision_latency` is the benchmark behind the
latency figures.

Modules: this one is the trainer (schedule, round, swap); its config is in
`background_config`, the row buffer and sequences in `background_data`, the
scoring and swap rule in `background_compare`, the fit and its subprocess entry
in `background_worker`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import numpy as np

from oxidize_ml.training.background_compare import (
    bootstrap_gain_bound,
    heldout_predictions,
    is_better,
    score,
    scores,
)
from oxidize_ml.training.background_config import ISOLATIONS, BackgroundTrainerConfig
from oxidize_ml.training.background_data import (
    GAP_S,
    RowBuffer,
    RowSequence,
    features_from_vector,
    pack,
    split_sequences,
    window,
)
from oxidize_ml.training.background_worker import fit_in_process

__all__ = [
    "COMPONENT",
    "GAP_S",
    "ISOLATIONS",
    "BackgroundTrainer",
    "BackgroundTrainerConfig",
    "RoundReport",
    "bootstrap_gain_bound",
    "features_from_vector",
    "heldout_predictions",
    "is_better",
    "score",
    "scores",
    "split_sequences",
]

log = logging.getLogger(__name__)

COMPONENT: Final = "loss_predictor"


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
        self._rows = RowBuffer(config.max_rows)
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
        self._thread = threading.Thread(
            target=self._run, name="oxidize-background-trainer", daemon=True
        )
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

            x = np.stack(
                [table.column(c).to_numpy().astype(np.float32) for c in LOSS_FEATURE_COLUMNS],
                axis=1,
            )
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
        # The no-decision report; each outcome below fills in what it learned.
        report = RoundReport(
            round=k,
            started_at=started,
            rows=len(rows),
            train_rows=0,
            heldout_rows=0,
            heldout_positives=0,
            current_policy=str(getattr(current, "name", type(current).__name__)),
            candidate=None,
            current=None,
            swapped=False,
            reason="no labelled sequences yet",
        )
        seqs = split_sequences(rows.t, rows.source, rows.x, rows.loss_rate, rows.label)
        if not seqs:
            return report
        t_all = np.sort(np.concatenate([s.t for s in seqs]))
        held_from = float(np.quantile(t_all, 1.0 - cfg.heldout_fraction))
        val_from = float(np.quantile(t_all, 1.0 - cfg.heldout_fraction - cfg.val_fraction))
        train = window(seqs, -math.inf, val_from)
        val = window(seqs, val_from, held_from)
        held_mask = t_all >= held_from
        label_all = np.concatenate([s.label[s.t >= held_from] for s in seqs])
        positives = int((label_all > 0).sum())
        n_train = sum(s.t.size for s in train)
        report = dataclasses.replace(
            report,
            train_rows=n_train,
            heldout_rows=int(held_mask.sum()),
            heldout_positives=positives,
        )
        val_pos = sum(int((s.label > 0).sum()) for s in val)
        why_not = None
        if n_train < cfg.min_train_rows:
            why_not = f"only {n_train} training rows (< {cfg.min_train_rows})"
        elif positives < cfg.min_heldout_positives:
            why_not = (
                f"only {positives} lossy rows in the held-out slice "
                f"(< {cfg.min_heldout_positives}): no decision"
            )
        elif not val or val_pos == 0:
            why_not = "no loss in the validation slice: cannot early-stop or calibrate"
        if why_not is not None:
            return dataclasses.replace(report, reason=why_not)
        t0 = time.perf_counter()
        model, info = self._fit(train, val, cfg.seed + k)
        fit_s = time.perf_counter() - t0
        if model is None:
            return dataclasses.replace(
                report, reason=f"fit failed: {info.get('error')}", fit_s=fit_s, fit_info=info
            )
        from oxidize_ml.loss.lstm import LstmLossPredictor

        t1 = time.perf_counter()
        p_cand, y, t_held = heldout_predictions(model, seqs, held_from, cfg.yield_every)
        p_cur, _, _ = heldout_predictions(current, seqs, held_from, cfg.yield_every)
        cand_scores, cur_scores = scores(p_cand, y), scores(p_cur, y)
        bound = bootstrap_gain_bound(
            y,
            p_cand,
            p_cur,
            t_held,
            block_s=cfg.bootstrap_block_s,
            rounds=cfg.bootstrap_rounds,
            quantile=1.0 - cfg.confidence,
            seed=cfg.seed + k,
        )
        cand_scores["pr_auc_gain_lower_bound"] = bound
        eval_s = time.perf_counter() - t1
        better = is_better(cand_scores, cur_scores, cfg, bound)
        if better:
            predictor = LstmLossPredictor(model.fork())
            newest = max(seqs, key=lambda s: s.t[-1])
            for xv in newest.x[-cfg.warmup_rows :] if cfg.warmup_rows else ():
                predictor.model.step(xv)  # warm the carried state, as after that history
            self.engine.replace_policy(COMPONENT, predictor, version=f"background-{k}")
            reason = "candidate better: swapped in"
        else:
            reason = "candidate not better: current kept"
        return dataclasses.replace(
            report,
            candidate=cand_scores,
            current=cur_scores,
            swapped=better,
            reason=reason,
            fit_s=fit_s,
            eval_s=eval_s,
            fit_info=info,
        )

    def _fit(
        self, train: list[RowSequence], val: list[RowSequence], seed: int
    ) -> tuple[Any, dict[str, Any]]:
        if self.config.isolation == "thread":
            try:
                return fit_in_process(train, val, self.config, seed)
            except Exception as exc:  # a diverged or degenerate fit must not kill the loop
                log.exception("background fit failed")
                return None, {"error": f"{type(exc).__name__}: {exc}"}
        return self._fit_in_worker(train, val, seed)

    def _fit_in_worker(
        self, train: list[RowSequence], val: list[RowSequence], seed: int
    ) -> tuple[Any, dict[str, Any]]:
        from oxidize_ml.runtime.numpy_models import LstmLossModel
        from oxidize_ml.runtime.weights import ModelLoadError

        with tempfile.TemporaryDirectory(prefix="oxidize-fit-") as tmp:
            work = Path(tmp)
            arrays = {f"train_{k}": v for k, v in pack(train).items()}
            arrays.update({f"val_{k}": v for k, v in pack(val).items()})
            np.savez(work / "data.npz", allow_pickle=False, **arrays)
            cfg = dataclasses.asdict(self.config)
            cfg["export_dir"] = None
            (work / "config.json").write_text(json.dumps(cfg), "utf-8")
            cmd = [
                sys.executable,
                "-m",
                "oxidize_ml.training.background_worker",
                str(work / "data.npz"),
                str(work),
                str(work / "config.json"),
                str(seed),
            ]
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
