"""`train_all`: train every model, compare with the current ones, write a versioned model directory.

Steps
-----
1. Each requested component's trainer (`oxidize_ml.training.loss`,
   ``.dqn``, ``.compression``; imported lazily, a missing module is skipped
   with a message) writes its two files into a hidden staging directory
   ``out_dir/.tmp-<version>-<random>`` and returns a `TrainResult`.
   ``quick`` uses each trainer's ``Config.quick()``.
2. Retraining loop (only when ``data`` or ``current`` is given): each
   candidate is evaluated against the CURRENT model of its component on the
   same held-out data. ``current`` defaults to the package defaults
   (`oxidize_ml.models.default_model_dir`); a component with no verified
   current model is compared with its heuristic (what the engine would run).
   Per component (`COMPARISON_RULES`):

   - ``loss_predictor``: held-out PR-AUC higher by more than 0.005 and Brier
     score at most 5 % worse (the same held-out simulator runs; the current
     model is re-run on them, the heuristic's figures come from the
     candidate's own comparison on those runs);
   - ``congestion_controller``: Kleinrock power (suite throughput sum / mean
     p95 one-way delay) at least 2 % higher and throughput at least 90 % of
     the current one's, on the held-out suite (the current model is run by
     `oxidize_ml.training.dqn.evaluate_congestion`; the heuristic is BBR,
     the engine's fallback, from the candidate's own evaluation);
   - ``compression_oracle``: `oxidize_ml.training.compression.compare_with_current`
     (mean share of the hindsight optimum over the evaluated link rates
     higher by more than 0.005, no rate more than 0.01 below), both oracles
     on one fresh labelling of the held-out corpus.

   A better candidate goes into the new directory; otherwise the current
   model's files are carried over unchanged (or, when the current is the
   heuristic, the component is left out so the engine keeps its heuristic).
   If no candidate is better, no directory is written.
3. ``manifest.json`` (`oxidize_ml.hub.manifest.write_manifest`) from the
   `TrainResult.manifest_entry` of each accepted candidate (its ``version``
   becomes the run version, the trainer's own in ``training.trainer_version``)
   and the carried-over entries; ``training_report.json`` records the run
   and every comparison. The staging directory is then renamed to
   ``out_dir/<version>`` (atomic on one file system), version = UTC time +
   seed, e.g. ``20260101T120000Z-s0``.

Without ``data`` and ``current`` every trained candidate is written (a fresh
training run). `install_defaults` copies a result into the package's
``models/default`` (what the engine loads at start-up).

Failures: a trainer that raises is reported as ``failed`` with the error and
the other components still run; missing torch/onnx raises
`MissingTrainingDependency` naming the ``train`` extra before anything runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import json
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from oxidize_ml._atomic import atomic_write_text, fsync_dir
from oxidize_ml.training.result import TrainResult

log = logging.getLogger(__name__)

COMPONENTS: Final = (
    "loss_predictor",
    "congestion_controller",
    "compression_oracle",
    "path_selector",
)
OPTIONAL_COMPONENTS: Final = ("residual_dqn",)
"""trained only when named (``--components residual_dqn``): the residual (Orca-style)
DQN, an alternative congestion controller (`oxidize_ml.training.residual_dqn`)"""
ALL_COMPONENTS: Final = COMPONENTS + OPTIONAL_COMPONENTS
MODEL_SLOTS: Final[dict[str, str]] = {"residual_dqn": "congestion_controller"}
"""component -> the manifest model (engine slot) it fills, where the two differ"""
TRAINER_MODULES: Final[dict[str, str]] = {
    "loss_predictor": "oxidize_ml.training.loss",
    "congestion_controller": "oxidize_ml.training.dqn",
    "compression_oracle": "oxidize_ml.training.compression",
    "path_selector": "oxidize_ml.training.paths",
    "residual_dqn": "oxidize_ml.training.residual_dqn",
}
CONFIG_CLASSES: Final[dict[str, str]] = {
    "loss_predictor": "LossTrainConfig",
    "congestion_controller": "DqnTrainConfig",
    "compression_oracle": "CompressionTrainConfig",
    "path_selector": "PathTrainConfig",
    "residual_dqn": "ResidualTrainConfig",
}


def model_slot(component: str) -> str:
    """The manifest model name (engine slot) ``component``'s model fills."""
    return MODEL_SLOTS.get(component, component)


TRAIN_EXTRA_MODULES: Final = ("torch", "onnx", "onnxscript", "onnxruntime")
"""what ``pip install 'oxidize-ml[train]'`` provides and the trainers import"""
REPORT_NAME: Final = "training_report.json"

LOSS_MIN_PR_AUC_GAIN: Final = 0.005
LOSS_MAX_BRIER_RATIO: Final = 1.05
CC_MIN_POWER_RATIO: Final = 1.02
CC_MIN_THROUGHPUT_RATIO: Final = 0.90
COMPARISON_RULES: Final[dict[str, str]] = {
    "loss_predictor": (
        f"PR-AUC higher by > {LOSS_MIN_PR_AUC_GAIN:g} and Brier <= {LOSS_MAX_BRIER_RATIO:g} x "
        "the current's, on the held-out runs"
    ),
    "congestion_controller": (
        f"power (throughput sum / mean p95 delay) >= {CC_MIN_POWER_RATIO:g} x and throughput "
        f">= {CC_MIN_THROUGHPUT_RATIO:g} x the current's, on the held-out suite"
    ),
    "compression_oracle": (
        "mean share of the hindsight optimum higher by > 0.005 and no link rate more than "
        "0.01 below the current's, on one labelling of the held-out corpus"
    ),
    "path_selector": (
        "lower regret than the current selector with 95 % confidence (paired bootstrap over "
        "episodes) and no traffic type or family above current / 0.9, on the held-out traces"
    ),
    "residual_dqn": (
        "issue 10's default rule against the engine with the current models: power "
        "(goodput / p95 delay) higher with 95 % confidence (paired bootstrap over the held-out "
        "trace windows) and no held-out family below 0.9x its power"
    ),
}

Trainer = Callable[..., TrainResult]
Comparator = Callable[[TrainResult, Path, Path | None, Any, int], dict[str, Any]]


class MissingTrainingDependency(ImportError):
    """torch / onnx / onnxscript / onnxruntime are not installed."""


def check_training_dependencies() -> None:
    """Raise `MissingTrainingDependency` naming the ``train`` extra if a module is missing."""
    missing = [m for m in TRAIN_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingTrainingDependency(
            f"training needs {', '.join(missing)} (not installed); install the "
            "'train' extra: pip install 'oxidize-ml[train]'"
        )


@dataclass
class ComponentOutcome:
    """What happened to one component in a pipeline run."""

    name: str
    status: str
    """"trained", "skipped" or "failed\""""
    message: str = ""
    """why it was skipped or failed, or a note"""
    result: TrainResult | None = None
    """the candidate's result when trained"""
    comparison: dict[str, Any] | None = None
    """candidate vs current figures (retraining loop only)"""
    decision: str = ""
    """"new" (candidate written), "kept current", "kept heuristic", or "" (not trained)"""

    @property
    def accepted(self) -> bool:
        return self.decision == "new"


@dataclass
class PipelineResult:
    """The outcome of `train_all`."""

    version: str
    """run version: UTC timestamp + seed"""
    directory: Path | None
    """the new model directory, None when nothing was written"""
    components: dict[str, ComponentOutcome] = field(default_factory=dict)
    compared: bool = False
    """True when candidates were judged against the current models"""
    current: Path | None = None
    """the current model directory compared with (None: heuristics)"""
    wall_time_s: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [n for n, c in self.components.items() if c.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        comps = {}
        for n, c in self.components.items():
            comps[n] = {
                "status": c.status,
                "message": c.message,
                "decision": c.decision,
                "comparison": c.comparison,
                "beats_heuristic": None if c.result is None else c.result.beats_heuristic,
                "target": None if c.result is None else c.result.target,
                "headline": None if c.result is None else headline(c.result),
            }
        return {
            "version": self.version,
            "directory": None if self.directory is None else str(self.directory),
            "compared": self.compared,
            "current": None if self.current is None else str(self.current),
            "wall_time_s": self.wall_time_s,
            "components": comps,
        }


# ----------------------------------------------------------------------------- configs


def make_config(component: str, *, quick: bool, include_sim: bool) -> Any:
    """The trainer config of ``component`` (``quick`` or full; ``include_sim`` applied)."""
    module = importlib.import_module(TRAINER_MODULES[component])
    cls = getattr(module, CONFIG_CLASSES[component])
    cfg = cls.quick() if quick else cls()
    if not include_sim:
        if component == "loss_predictor":
            cfg = dataclasses.replace(cfg, train_scenarios=(), random_links=0, use_traces=False)
        elif component == "compression_oracle":
            cfg = dataclasses.replace(cfg, use_corpus=False)
    return cfg


def run_version(seed: int, now: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-s<seed>`` (UTC)."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%SZ}-s{seed}"


# ----------------------------------------------------------------------------- headlines


def _f(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, int | float) and math.isfinite(x) else "-"


def headline(result: TrainResult) -> str:
    """One line of model-vs-heuristic figures for the summary table."""
    m = result.metrics
    try:
        if result.name == "loss_predictor":
            return (
                f"PR-AUC {_f(m.get('pr_auc_lstm'))} vs EWMA {_f(m.get('pr_auc_ewma'))}; "
                f"Brier {_f(m.get('brier_lstm'), 4)} vs {_f(m.get('brier_ewma'), 4)}; "
                f"FEC residual x{_f(m.get('fec_residual_ratio'), 2)}"
            )
        if result.name == "congestion_controller":
            c = m.get("checks", {})
            return (
                f"throughput x{_f(c.get('throughput_vs_cubic'), 2)} CUBIC, p95 queue delay "
                f"x{_f(c.get('queue_delay_vs_cubic'), 2)}, worst scenario "
                f"x{_f(c.get('worst_scenario_throughput_vs_cubic'), 2)}"
            )
        if result.name == "compression_oracle":
            rates = m.get("per_rate", [])
            shares = " ".join(
                f"{r['link_rate_bps'] / 1e6:g}M {_f(r.get('model_share'), 3)}/"
                f"{_f(r.get('heuristic_share'), 3)}"
                for r in rates
            )
            return (
                f"share of optimum model/heuristic: {shares}; decide "
                f"x{_f(m.get('worst_learned_over_lz4'), 2)} lz4"
            )
        if result.name == "residual_dqn":
            rule = m.get("default_rule", {})
            ci = rule.get("power_ratio_ci") or [None, None]
            agg = m.get("heldout", {}).get("windows", {}).get("aggregates", {})
            r = agg.get("residual-dqn", {})
            return (
                f"goodput x{_f(r.get('goodput_ratio_vs_cubic'), 2)} CUBIC, p95 queue delay "
                f"x{_f(r.get('queue_delay_ratio_vs_cubic'), 2)}, worst window "
                f"x{_f(r.get('worst_goodput_ratio_vs_cubic'), 2)}; power "
                f"x{_f(rule.get('power_ratio_vs_default'), 3)} default [{_f(ci[0], 3)}, "
                f"{_f(ci[1], 3)}], worst family x{_f(rule.get('worst_family'), 3)}"
            )
        if result.name == "path_selector":
            sets = m.get("heldout", {}).get("sets", {})
            return (
                "; ".join(
                    f"{k}: regret/step {_f(v.get('candidate_regret_per_step'), 4)} vs default "
                    f"{_f(v['summary']['selectors']['default']['regret_per_step'], 4)}, min-RTT "
                    f"{_f(v['summary']['selectors']['min_rtt']['regret_per_step'], 4)}"
                    for k, v in sets.items()
                )
                or "not judged (no held-out traces)"
            )
    except (TypeError, KeyError, AttributeError) as exc:
        return f"(figures unreadable: {exc!r})"
    return ""


# ----------------------------------------------------------------------------- comparisons


def _current_entry(current: Path | None, name: str) -> tuple[dict[str, Any] | None, str]:
    """The current directory's verified manifest entry for ``name``, or (None, why)."""
    from oxidize_ml.hub.manifest import verify_model_dir

    if current is None:
        return None, "no current model directory"
    report = verify_model_dir(current)
    if report.error is not None:
        return None, report.error
    st = report.models.get(name)
    if st is None or not st.ok:
        return None, "no model" if st is None else f"{st.status}: {st.reason}"
    try:
        data = json.loads((current / "manifest.json").read_text("utf-8"))
        return dict(data["models"][name]), "ok"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable manifest: {exc}"


def _compare_loss(
    result: TrainResult, staging: Path, current: Path | None, config: Any, seed: int
) -> dict[str, Any]:
    from oxidize_ml.hub.manifest import load_verified
    from oxidize_ml.training import loss as L

    cand = {"pr_auc": result.metrics["pr_auc_lstm"], "brier": result.metrics["brier_lstm"]}
    model = None
    if current is not None:
        model, _ = load_verified(current, "loss_predictor", "numpy")
    if model is None:
        cur = {"pr_auc": result.metrics["pr_auc_ewma"], "brier": result.metrics["brier_ewma"]}
        cur_name = "heuristic (EWMA)"
    else:
        seqs = L.simulate_all(L.heldout_runs(config)["primary"], what="simulating (current)")
        scores = L.compare(seqs, model, fec=config.fec, scales=config.fec_scales)
        cur = {"pr_auc": scores["lstm"]["pr_auc"], "brier": scores["lstm"]["brier"]}
        cur_name = f"model in {current}"
    better = (
        cand["pr_auc"] > cur["pr_auc"] + LOSS_MIN_PR_AUC_GAIN
        and cand["brier"] <= cur["brier"] * LOSS_MAX_BRIER_RATIO
    )
    return {
        "candidate": cand,
        "current": cur,
        "current_is": cur_name,
        "better": bool(better),
        "rule": COMPARISON_RULES["loss_predictor"],
    }


def _power(summary: Mapping[str, Any]) -> tuple[float, float]:
    thr = float(summary["throughput_mbps_sum"])
    delay = float(summary["delay_p95_ms_mean"])
    return thr, (thr / delay if delay > 0 else math.inf)


def _compare_congestion(
    result: TrainResult, staging: Path, current: Path | None, config: Any, seed: int
) -> dict[str, Any]:
    from oxidize_ml.models import congestion_policy_kind
    from oxidize_ml.training import dqn as Q

    held = result.metrics["heldout"]
    cand_thr, cand_pow = _power(held["summary"]["dqn"])
    entry, _ = _current_entry(current, "congestion_controller")
    if entry is None or current is None:
        cur_thr, cur_pow = _power(held["summary"]["bbr"])
        cur_name = "heuristic (BBR fallback)"
    else:
        # The current controller may be another policy on the same kind of weights (the
        # residual DQN, which is not run on the spec's state): judge the candidate against
        # what installing nothing would keep, MlEngine() with the current models.
        plain = congestion_policy_kind(entry) == "dqn"
        ev = Q.evaluate_congestion(
            current / entry["files"]["safetensors"] if plain else None,
            Q.heldout_suite(),
            state_config=config.state,
            seeds=config.eval_seeds,
            duration_s=config.eval_duration_s,
            factory=None if plain else _engine_with(current),
        )
        cur_thr, cur_pow = _power(ev["summary"]["dqn"])
        cur_name = f"model in {current}" if plain else f"MlEngine with the models in {current}"
    better = cand_pow >= CC_MIN_POWER_RATIO * cur_pow and cand_thr >= (
        CC_MIN_THROUGHPUT_RATIO * cur_thr
    )
    return {
        "candidate": {"throughput_mbps_sum": cand_thr, "power": cand_pow},
        "current": {"throughput_mbps_sum": cur_thr, "power": cur_pow},
        "current_is": cur_name,
        "better": bool(better),
        "rule": COMPARISON_RULES["congestion_controller"],
    }


def _compare_compression(
    result: TrainResult, staging: Path, current: Path | None, config: Any, seed: int
) -> dict[str, Any]:
    from oxidize_ml.compression import HeuristicCompressionOracle
    from oxidize_ml.hub.manifest import load_verified
    from oxidize_ml.training import compression as C

    candidate = C.load_exported(staging / result.files["safetensors"])
    cur: Any = HeuristicCompressionOracle()
    if current is not None:
        model, _ = load_verified(current, "compression_oracle", "numpy")
        if model is not None:
            cur = C.LearnedCompressionOracle(model, link_rate_bps=candidate.link_rate_bps)
    out = C.compare_with_current(candidate, cur, config, seed=seed)
    out["current_is"] = "heuristic" if cur.name == "heuristic" else f"model in {current}"
    return out


def _compare_residual(
    result: TrainResult, staging: Path, current: Path | None, config: Any, seed: int
) -> dict[str, Any]:
    """The candidate's default rule against the engine running ``current``'s models
    (the package defaults: the candidate's own evaluation already ran against them)."""
    from oxidize_ml.models import default_model_dir
    from oxidize_ml.training import residual_dqn as R

    rule = result.metrics["default_rule"]
    default_dir = default_model_dir()
    if current is None or (
        default_dir is not None and Path(current).resolve() == default_dir.resolve()
    ):
        cur_name = "MlEngine() (the package defaults)"
    else:
        policy = R.ResidualDqnPolicy.load(staging / result.files["safetensors"])
        ev = R.evaluate_heldout(policy, config, seed=seed, default_factory=_engine_with(current))
        rule = ev["default_rule"]
        cur_name = f"MlEngine with the models in {current}"
    return {
        "candidate": {"power_ratio_vs_current": rule["power_ratio_vs_default"]},
        "current_is": cur_name,
        "power_ratio_ci": rule["power_ratio_ci"],
        "worst_family": rule["worst_family"],
        "better": bool(rule["passed"]),
        "rule": COMPARISON_RULES["residual_dqn"],
    }


def _engine_with(directory: Path) -> Callable[..., Any]:
    """A simulator controller factory: a fresh engine per flow with ``directory``'s
    default-enabled models (what installing it would make `MlEngine()` run)."""
    from oxidize_ml.engine import EngineConfig, MlEngine
    from oxidize_ml.sim.controllers.engine import EngineController

    def factory(*, flow_index: int, seed: int) -> Any:
        engine = MlEngine(
            EngineConfig(
                seed=int(seed) & 0x7FFFFFFF, collect_training=False, load_default_models=False
            )
        )
        engine.load_models(directory, only_default_enabled=True)
        return EngineController(engine)

    return factory


def _compare_paths(
    result: TrainResult, staging: Path, current: Path | None, config: Any, seed: int
) -> dict[str, Any]:
    from oxidize_ml.training import paths as P

    return P.compare_with_current(result, staging, current, config, seed)


COMPARATORS: Final[dict[str, Comparator]] = {
    "loss_predictor": _compare_loss,
    "congestion_controller": _compare_congestion,
    "compression_oracle": _compare_compression,
    "path_selector": _compare_paths,
    "residual_dqn": _compare_residual,
}


# ----------------------------------------------------------------------------- the pipeline


def _resolve_trainer(name: str) -> tuple[Trainer | None, str]:
    module_name = TRAINER_MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in TRAIN_EXTRA_MODULES:
            raise MissingTrainingDependency(
                f"{module_name} needs {exc.name}; install the 'train' extra: "
                "pip install 'oxidize-ml[train]'"
            ) from exc
        if exc.name and module_name.startswith(exc.name):
            return None, f"trainer module {module_name} is not available in this build"
        raise
    return module.train, ""


def train_all(
    out_dir: Path,
    *,
    seed: int = 0,
    quick: bool = False,
    data: Path | None = None,
    include_sim: bool = True,
    components: Sequence[str] = COMPONENTS,
    progress: bool = True,
    current: Path | None = None,
    trainers: Mapping[str, Trainer] | None = None,
    configs: Mapping[str, Any] | None = None,
    comparators: Mapping[str, Comparator] | None = None,
    now: datetime | None = None,
    on_event: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Train, compare (retraining loop), and write ``out_dir/<version>`` atomically.

    Parameters
    ----------
    out_dir
        Parent of the versioned model directories (created if missing).
    seed
        Seed of every trainer; part of the version.
    quick
        Each trainer's quick config (minutes become seconds; not useful models).
    data
        Root of exported telemetry to train on (enables the comparison with
        ``current``).
    include_sim
        Also train on simulator / corpus data; False trains the loss predictor
        and the compression oracle on ``data`` only and skips the DQN, which
        learns by acting in the simulator.
    components
        Subset of `COMPONENTS`.
    progress
        Rich progress bars from the trainers.
    current
        Model directory to compare candidates with (default with ``data``:
        the package defaults, or the heuristics when none are shipped).
    trainers, configs, comparators
        Overrides per component (tests, custom runs): a ``train`` callable
        with the trainer signature, its config, a comparison function.
    now
        Timestamp of the version (default: the current UTC time).
    on_event
        Called with a one-line message as each component starts, is compared
        and is decided (the CLI prints them).

    Raises
    ------
    MissingTrainingDependency
        torch / onnx / onnxscript / onnxruntime are missing (real trainers only).
    ValueError
        Unknown component, or ``data`` holds no telemetry export.
    """
    from oxidize_ml import __version__
    from oxidize_ml.hub.manifest import write_manifest
    from oxidize_ml.models import default_model_dir

    t0 = time.perf_counter()
    unknown = sorted(set(components) - set(ALL_COMPONENTS))
    if unknown or not components:
        raise ValueError(f"unknown components {unknown}; choose from {list(ALL_COMPONENTS)}")
    slots: dict[str, str] = {}
    for c in components:
        other = slots.setdefault(model_slot(c), c)
        if other != c:
            raise ValueError(
                f"components {other!r} and {c!r} both train the {model_slot(c)!r} model; choose one"
            )
    trainers = dict(trainers or {})
    configs = dict(configs or {})
    comparators = {**COMPARATORS, **dict(comparators or {})}
    if any(c not in trainers for c in components):
        check_training_dependencies()
    if data is not None:
        from oxidize_ml.telemetry.export import find_exports

        data = Path(data)
        if not data.is_dir() or not find_exports(data):
            raise ValueError(f"--data {data}: no telemetry export (manifest.json) found there")
    compared = data is not None or current is not None
    if compared and current is None:
        current = default_model_dir()
    version = run_version(seed, now)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / version
    if final.exists():
        raise FileExistsError(f"{final} already exists; wait a second or change the seed")
    staging = out_dir / f".tmp-{version}-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)  # a planted model file would run as our decision logic
    result = PipelineResult(version=version, directory=None, compared=compared, current=current)
    try:
        entries = _train_components(
            result,
            staging,
            components,
            trainers,
            configs,
            comparators,
            seed=seed,
            quick=quick,
            data=data,
            include_sim=include_sim,
            progress=progress,
            current=current,
            on_event=on_event or (lambda _msg: None),
        )
        if entries and (not compared or any(c.accepted for c in result.components.values())):
            write_manifest(staging, entries, package_version=__version__)
            result.directory = final
            result.wall_time_s = time.perf_counter() - t0
            report = json.dumps(_jsonable(result.to_json()), indent=2, allow_nan=False)
            atomic_write_text(staging / REPORT_NAME, report + "\n")
            os.rename(staging, final)
            fsync_dir(out_dir)
        else:
            result.directory = None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    result.wall_time_s = time.perf_counter() - t0
    return result


def _train_components(
    result: PipelineResult,
    staging: Path,
    components: Sequence[str],
    trainers: dict[str, Trainer],
    configs: dict[str, Any],
    comparators: dict[str, Comparator],
    *,
    seed: int,
    quick: bool,
    data: Path | None,
    include_sim: bool,
    progress: bool,
    current: Path | None,
    on_event: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Run each trainer and comparison; return the manifest entries to write."""
    entries: dict[str, dict[str, Any]] = {}
    todo = [n for n in ALL_COMPONENTS if n in components]
    for k, name in enumerate(todo, 1):
        on_event(f"[{k}/{len(todo)}] {name}")
        outcome = ComponentOutcome(name=name, status="skipped")
        result.components[name] = outcome
        if name in ("congestion_controller", "path_selector", "residual_dqn") and not include_sim:
            outcome.message = (
                "the path selector learns from the path environment; --no-sim skips it"
                if name == "path_selector"
                else "the DQN learns by acting in the simulator; --no-sim skips it"
            )
            _carry_current(outcome, entries, staging, current, result.compared)
            continue
        trainer = trainers.get(name)
        if trainer is None:
            trainer, why = _resolve_trainer(name)
            if trainer is None:
                outcome.message = why
                log.warning("skipping %s: %s", name, why)
                _carry_current(outcome, entries, staging, current, result.compared)
                continue
        # Each trainer writes into its own subdirectory, so a failed or rejected
        # candidate leaves nothing behind in the model directory.
        work = staging / f".{name}"
        try:
            config = configs.get(name)
            if config is None:
                config = make_config(name, quick=quick, include_sim=include_sim)
            res = trainer(config, seed=seed, out_dir=work, telemetry_root=data, progress=progress)
            if not isinstance(res, TrainResult) or res.name != name:
                raise TypeError(f"trainer of {name!r} returned {res!r:.200}")
            outcome.status, outcome.result = "trained", res
            on_event(f"{name}: trained, beats its heuristic: {res.beats_heuristic}")
            if result.compared:
                on_event(f"{name}: comparing with the current model on held-out data")
                outcome.comparison = _jsonable(comparators[name](res, work, current, config, seed))
        except MissingTrainingDependency:
            raise
        except Exception as exc:  # one failing trainer must not sink the others
            log.exception("training %s failed", name)
            outcome.status, outcome.message = "failed", f"{type(exc).__name__}: {exc}"
            shutil.rmtree(work, ignore_errors=True)
            _carry_current(outcome, entries, staging, current, result.compared)
            continue
        if result.compared and not (outcome.comparison or {}).get("better", False):
            shutil.rmtree(work, ignore_errors=True)
            _carry_current(outcome, entries, staging, current, True)
            continue
        for fname in res.files.values():
            os.replace(work / fname, staging / fname)
        shutil.rmtree(work, ignore_errors=True)
        entry = res.manifest_entry()
        entry["training"] = {
            **entry["training"],
            "trainer_version": res.version,
            "run_version": result.version,
        }
        entry["version"] = result.version
        entry["training"] = _jsonable(entry["training"])
        entry["metrics"] = _jsonable(entry["metrics"])
        entries[model_slot(name)] = entry
        outcome.decision = "new"
    return entries


def _jsonable(obj: Any) -> Any:
    """A copy that strict JSON accepts: non-finite floats become None, numpy scalars
    and tuples become plain values, other objects their ``str``."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        with contextlib.suppress(TypeError, ValueError):
            return _jsonable(item())
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _carry_current(
    outcome: ComponentOutcome,
    entries: dict[str, dict[str, Any]],
    staging: Path,
    current: Path | None,
    compared: bool,
) -> None:
    """Keep the current model of this component in the new directory (retraining loop)."""
    if not compared:
        return
    slot = model_slot(outcome.name)
    entry, why = _current_entry(current, slot)
    if entry is None or current is None:
        outcome.decision = "kept heuristic"
        note = f"no current model ({why})"
        outcome.message = f"{outcome.message}; {note}" if outcome.message else note
        return
    for fname in entry["files"].values():
        shutil.copyfile(current / fname, staging / fname)
    entries[slot] = {
        k: entry[k]
        for k in entry
        if k in ("version", "kind", "files", "config", "inputs", "training", "metrics")
    }
    outcome.decision = "kept current"


def install_defaults(model_dir: Path, default_dir: Path | None = None) -> Path:
    """Copy a model directory into the package's shipped defaults, replacing them atomically.

    The copy is verified (`verify_model_dir`) before it replaces the old
    defaults; the old directory is removed only after the swap.
    """
    from oxidize_ml.hub.manifest import verify_model_dir
    from oxidize_ml.models import DEFAULT_DIR

    target = Path(default_dir) if default_dir is not None else DEFAULT_DIR
    src = Path(model_dir)
    report = verify_model_dir(src)
    if not report.ok:
        raise ValueError(f"refusing to install {src}: {report.summary()}")
    if (target / "manifest.json").is_file():
        # A run of some components (e.g. --components residual_dqn) writes only those:
        # installing it would silently drop every other shipped model.
        current = verify_model_dir(target)
        missing = sorted(set(current.models) - set(report.models))
        if missing:
            raise ValueError(
                f"refusing to install {src}: it lacks {missing}, which the current defaults "
                f"in {target} have (train them too, or compare with --current to carry them)"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-default-{secrets.token_hex(4)}"
    shutil.copytree(src, tmp)
    os.chmod(tmp, 0o755)  # shipped package data: readable by everyone, written by its owner
    for p in tmp.iterdir():
        os.chmod(p, 0o644)
    old = None
    if target.exists():
        old = target.parent / f".old-default-{secrets.token_hex(4)}"
        os.rename(target, old)
    os.rename(tmp, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
