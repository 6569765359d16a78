"""Data of the LSTM loss-predictor trainer: simulator runs of the training split,
held-out runs, telemetry, all as labelled `LossSequence` s (see `oxidize_ml.training.loss`)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from oxidize_ml.evaluation.fec import (
    TRACE_BUFFER_BDP,
    TRACE_DURATION_S,
    TRACE_RTT_S,
    horizon_labels,
)
from oxidize_ml.evaluation.splits import (
    EVAL_SEED_BASE,
    HELDOUT_TRACES,
    TRAIN_SEED_BASE,
    TRAIN_TRACES,
    trace_paths,
)
from oxidize_ml.features import FEATURE_NAMES, NetworkFeatures
from oxidize_ml.sim.random_links import random_link_scenario
from oxidize_ml.training.loss_config import LossTrainConfig

_TELEMETRY_GAP_S: Final = 1.0
"""a gap longer than this between two telemetry rows of one source starts a new
sequence (a new connection or a restart): state must not be carried across it"""


# ---------------------------------------------------------------------------------- data
@dataclass(frozen=True, slots=True, eq=False)
class LossSequence:
    """One connection's observations in time order, with labels."""

    source: str
    """where it came from, e.g. ``"sim:burst-loss/cubic/seed=1003/flow0"``"""
    group: str
    """data family for summaries: ``"scenario:<name>"``, ``"random"``, ``"trace:<file>"``,
    ``"telemetry"``"""
    t: np.ndarray
    """float64 ``[T]`` observation times, seconds, increasing"""
    x: np.ndarray
    """float32 ``[T, 8]`` normalised features (`NetworkFeatures.to_vector`), buffer
    occupancy as a sender can estimate it"""
    loss_rate: np.ndarray
    """float64 ``[T]`` loss rate of each interval (what the EWMA is fed)"""
    label: np.ndarray
    """float64 ``[T]`` mean loss rate in (t + 50 ms, t + 100 ms]; NaN when that window
    holds no observation (end of a run)"""

    def __len__(self) -> int:
        return int(self.t.shape[0])


class _Recorder:
    """``on_interval`` hook: per-flow rows of the observation as the simulator reports it.

    ``buffer_occupancy`` there is already the sender-side estimate
    (`oxidize_ml.interval_stats.IntervalStats`, the same function the aioquic
    plug-in and so a deployed engine use), so the rows are recorded unchanged:
    the predictor is trained on the features it is served with (issue 9).
    """

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[int, list[tuple[float, list[float], float]]] = {}

    def __call__(
        self, now: float, flow: int, features: NetworkFeatures, thr: float, cwnd: int
    ) -> None:
        self.rows.setdefault(flow, []).append((now, features.to_list(), float(features.loss_rate)))

    def sequences(self, source: str, group: str) -> list[LossSequence]:
        out = []
        for flow in sorted(self.rows):
            rows = self.rows[flow]
            t = np.array([r[0] for r in rows], dtype=np.float64)
            x = np.array([r[1] for r in rows], dtype=np.float32)
            lr = np.array([r[2] for r in rows], dtype=np.float64)
            out.append(LossSequence(f"{source}/flow{flow}", group, t, x, lr, horizon_labels(t, lr)))
        return out


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One simulator run to record."""

    scenario: Any
    """an `oxidize_ml.sim.Scenario`"""
    controller: str
    seed: int
    group: str
    duration_s: float | None = None

    @property
    def source(self) -> str:
        return f"sim:{self.scenario.name}/{self.controller}/seed={self.seed}"


def simulate_sequences(run: RunSpec) -> list[LossSequence]:
    """Run one simulation and return one labelled sequence per flow."""
    from oxidize_ml.sim import simulate

    rec = _Recorder()
    simulate(
        run.scenario,
        run.controller,
        seed=run.seed,
        duration_s=run.duration_s,
        record_series=False,
        on_interval=rec,
    )
    return rec.sequences(run.source, run.group)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _trace_scenario(path: Path, rng: np.random.Generator | None, *, duration_s: float) -> Any:
    """A trace scenario: random RTT and buffer (training) or, with ``rng=None``, the
    project evaluation's fixed ones (`oxidize_ml.evaluation.fec`: 60 ms, 2 BDP)."""
    from oxidize_ml.sim import BufferSpec, scenario_from_trace

    if rng is None:
        return scenario_from_trace(
            path, rtt_s=TRACE_RTT_S, buffer=BufferSpec(bdp=TRACE_BUFFER_BDP), duration_s=duration_s
        )
    rtt = _log_uniform(rng, 0.020, 0.200)
    bdp = _log_uniform(rng, 0.5, 3.0)
    return scenario_from_trace(
        path,
        rtt_s=rtt,
        buffer=BufferSpec(bdp=bdp),
        duration_s=duration_s,
        name=f"trace-{path.name}-rtt{rtt * 1000:.0f}-bdp{bdp:.2f}",
    )


def training_runs(config: LossTrainConfig) -> list[RunSpec]:
    """The simulator runs of the training split, in a fixed order.

    Seeds are ``TRAIN_SEED_BASE + i`` for the i-th run; randomised link and
    trace parameters come from a generator seeded from the same number.
    """
    from oxidize_ml.sim import get_scenario

    runs: list[RunSpec] = []
    i = 0
    for name in config.train_scenarios:
        sc = get_scenario(name)
        for ctrl in config.controllers:
            for _ in range(config.scenario_seeds if sc.is_random else 1):
                runs.append(RunSpec(sc, ctrl, TRAIN_SEED_BASE + i, f"scenario:{name}"))
                i += 1
    for k in range(config.random_links):
        seed = TRAIN_SEED_BASE + i
        rng = np.random.default_rng([seed, 1])
        sc = random_link_scenario(rng, name=f"random-{k}", duration_s=config.random_link_duration_s)
        ctrl = config.controllers[int(rng.integers(len(config.controllers)))]
        runs.append(RunSpec(sc, ctrl, seed, "random"))
        i += 1
    if config.use_traces:
        for path in trace_paths(TRAIN_TRACES):
            for ctrl in config.controllers:
                for _ in range(config.trace_variants):
                    seed = TRAIN_SEED_BASE + i
                    sc = _trace_scenario(
                        path, np.random.default_rng([seed, 2]), duration_s=config.trace_duration_s
                    )
                    runs.append(RunSpec(sc, ctrl, seed, f"trace:{path.name}"))
                    i += 1
    return runs


def heldout_runs(config: LossTrainConfig) -> dict[str, list[RunSpec]]:
    """Held-out runs: ``{"primary": scenarios + traces, "random": randomised links}``.

    Seeds are ``EVAL_SEED_BASE + i``; deterministic scenarios and traces run
    once per controller.
    """
    from oxidize_ml.sim import get_scenario

    primary: list[RunSpec] = []
    i = 0
    for name in config.heldout_scenarios:
        sc = get_scenario(name)
        for ctrl in config.eval_controllers:
            for _ in range(config.eval_seeds if sc.is_random else 1):
                primary.append(
                    RunSpec(
                        sc, ctrl, EVAL_SEED_BASE + i, f"scenario:{name}", config.eval_duration_s
                    )
                )
                i += 1
    if config.eval_traces:
        for path in trace_paths(HELDOUT_TRACES):
            dur = config.eval_duration_s if config.eval_duration_s is not None else TRACE_DURATION_S
            sc = _trace_scenario(path, None, duration_s=dur)
            for ctrl in config.eval_controllers:
                primary.append(RunSpec(sc, ctrl, EVAL_SEED_BASE + i, f"trace:{path.name}"))
                i += 1
    rand: list[RunSpec] = []
    dur = config.eval_duration_s if config.eval_duration_s is not None else 20.0
    for k in range(config.heldout_random_links):
        seed = EVAL_SEED_BASE + i
        rng = np.random.default_rng([seed, 1])
        sc = random_link_scenario(rng, name=f"heldout-random-{k}", duration_s=dur)
        ctrl = config.eval_controllers[int(rng.integers(len(config.eval_controllers)))]
        rand.append(RunSpec(sc, ctrl, seed, "random"))
        i += 1
    return {"primary": primary, "random": rand}


def telemetry_sequences(root: str | Path) -> list[LossSequence]:
    """Labelled sequences from exported telemetry (`oxidize_ml.telemetry.read_exports`).

    The ``loss`` table's ``f_*`` columns are the features and ``future_loss`` the
    label (computed by the collector with the same definition). Rows are split
    per ``source`` and at gaps longer than 1 s (a new connection: state must
    not carry across).
    """
    from oxidize_ml.telemetry import read_exports

    table = read_exports(root)["loss"]
    if table.num_rows == 0:
        return []
    cols = [f"f_{n}" for n in FEATURE_NAMES]
    src = np.asarray(table.column("source").to_pylist(), dtype=object)
    ts = table.column("timestamp").to_numpy()
    x = np.stack([table.column(c).to_numpy().astype(np.float32) for c in cols], axis=1)
    lr = table.column("loss_rate").to_numpy().astype(np.float64)
    lab = table.column("future_loss").to_numpy().astype(np.float64)
    out: list[LossSequence] = []
    for s in sorted(set(src.tolist())):
        idx = np.flatnonzero(src == s)
        idx = idx[np.argsort(ts[idx], kind="stable")]
        cuts = np.flatnonzero(np.diff(ts[idx]) > _TELEMETRY_GAP_S) + 1
        for k, part in enumerate(np.split(idx, cuts)):
            if part.size < 2:
                continue
            out.append(
                LossSequence(
                    f"telemetry:{s}/{k}", "telemetry", ts[part], x[part], lr[part], lab[part]
                )
            )
    return out


def _progress(enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        transient=False,
    )


def simulate_all(
    runs: Sequence[RunSpec],
    *,
    progress: Any = None,
    what: str = "simulating",
    max_rows: int | None = None,
) -> list[LossSequence]:
    """Simulate ``runs`` in order; stop adding runs once ``max_rows`` rows are held."""
    task = progress.add_task(what, total=len(runs), info="") if progress is not None else None
    out: list[LossSequence] = []
    rows = 0
    for run in runs:
        if max_rows is not None and rows >= max_rows:
            break
        seqs = simulate_sequences(run)
        out.extend(seqs)
        rows += sum(len(s) for s in seqs)
        if progress is not None:
            progress.update(task, advance=1, info=f"{rows:,} rows")
    return out


def summarize(seqs: Sequence[LossSequence]) -> dict[str, Any]:
    """Rows, labelled rows, positive rate and mean label, overall and per group."""

    def one(ss: Sequence[LossSequence]) -> dict[str, Any]:
        lab = np.concatenate([s.label for s in ss]) if ss else np.zeros(0)
        ok = lab[~np.isnan(lab)]
        return {
            "sequences": len(ss),
            "rows": int(lab.size),
            "labelled_rows": int(ok.size),
            "positive_rate": float((ok > 0).mean()) if ok.size else 0.0,
            "mean_label": float(ok.mean()) if ok.size else 0.0,
        }

    groups = sorted({s.group for s in seqs})
    out = one(seqs)
    out["groups"] = {g: one([s for s in seqs if s.group == g]) for g in groups}
    return out


def split_by_run(
    seqs: Sequence[LossSequence], val_fraction: float, rng: np.random.Generator
) -> tuple[list[LossSequence], list[LossSequence]]:
    """Validation = whole runs (all flows of a run together), ``val_fraction`` of them."""
    runs = sorted({s.source.rsplit("/flow", 1)[0] for s in seqs})
    n_val = max(1, round(val_fraction * len(runs)))
    if n_val >= len(runs):
        raise ValueError(f"need at least 2 runs to split, got {len(runs)}")
    val_runs = {runs[i] for i in rng.permutation(len(runs))[:n_val]}
    train = [s for s in seqs if s.source.rsplit("/flow", 1)[0] not in val_runs]
    val = [s for s in seqs if s.source.rsplit("/flow", 1)[0] in val_runs]
    return train, val


def build_training_data(
    config: LossTrainConfig, *, telemetry_root: str | Path | None = None, progress: Any = None
) -> list[LossSequence]:
    """All training sequences: simulator runs of the training split, then telemetry."""
    seqs = simulate_all(
        training_runs(config),
        progress=progress,
        what="simulating (train)",
        max_rows=config.max_rows,
    )
    if telemetry_root is not None:
        rows = sum(len(s) for s in seqs)
        for s in telemetry_sequences(telemetry_root):
            if rows >= config.max_rows:
                break
            seqs.append(s)
            rows += len(s)
    return [s for s in seqs if len(s) > 1 and not np.isnan(s.label).all()]
