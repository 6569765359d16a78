"""Path selection: cumulative regret against the per-step oracle on failing, degrading paths.

Environment
-----------
`oxidize_ml.sim.gym.path_env.PathSelectionEnv`: 2 to 4 paths, each its own
simulator link (constant, synthetic cellular or a Mahimahi trace) with cross
traffic, outages and degradations; every step (1 simulated second) a flow of
one of the five traffic types arrives and is sent on the chosen path. The
reward is the spec's ``calculate_reward`` of what that path gives the flow in
that step; the env reports the best path's reward (``oracle_reward``), known
only in hindsight. Scenarios (`SCENARIOS`): ``stable``, ``primary-fails``,
``degrading`` and, when the trace folder exists, ``cellular-traces-heldout``
(held-out Mahimahi traces of `oxidize_ml.evaluation.splits`).

Protocol per step ``k`` (``now = k x step_s``)
---------------------------------------------
1. ``update_metrics(m, now=now)`` for every path with the metrics measured
   over the previous step (`PathSelectionEnv.path_metrics`);
2. ``path = select(context, now=now)`` for the arriving flow;
3. the env runs the flow; ``update_reward(path, context, reward,
   now=now + step_s)``.

Selectors: `MlPathSelector` (the engine's discounted contextual UCB1),
`StationaryUcb1PathSelector` (textbook UCB1), `RoundRobinPathSelector` (the
spec's heuristic fallback), `MinRttPathSelector` (greedy: the available path
with the lowest measured RTT, written here), ``oracle`` (reads the episode's
ground truth: the per-step best path; its regret is 0 by construction, which
checks the bookkeeping) and any selector factories passed in.

Every selector sees the same episodes: one reset per (scenario, seed), then
a deep copy of the environment per selector, so comparisons are paired
(differences come from the decisions, not from the draw of the paths).

Regret
------
Per step, oracle reward minus the chosen path's reward (rewards in [0, 1]);
cumulative regret over the episode, averaged over seeds (``EVAL_SEED_BASE +
100 * seed + i``).

Trace-driven evaluation (`evaluate_path_traces`)
------------------------------------------------
The user's own Mahimahi traces, one per path (2-4), in the four families of
`oxidize_ml.sim.gym.path_env.trace_path_families` (as given, RTT ladder
reversed, path 0 failing, path 0 degrading), with the same paired protocol.
Selectors: the four above, ``learned`` (the `LearnedPathSelector` of a model
directory, default the shipped one), ``default`` (what
`oxidize_ml.paths.default_path_selector_factory` gives ``MlEngine()``) and,
when river is installed, river's disjoint LinUCB (``river_linucb``,
`RiverLinUcbPathSelector`) as a maintained library's contextual bandit.
Confidence intervals and the default rule (`qualifies_as_default`) use a
paired bootstrap over episodes.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from oxidize_ml._validate import check_int
from oxidize_ml.evaluation.scores import cumulative_regret, mean_curve
from oxidize_ml.paths import (
    BasePathSelector,
    MlPathSelector,
    PathSelectorConfig,
    RoundRobinPathSelector,
    StationaryUcb1PathSelector,
    calculate_path_reward,
)
from oxidize_ml.paths.selector import argmax_available
from oxidize_ml.policy import PathPolicy
from oxidize_ml.types import PathId, PathMetrics, TrafficContext

SCENARIOS: tuple[str, ...] = ("stable", "primary-fails", "degrading", "cellular-traces-heldout")
"""path scenarios evaluated (the trace one only when the trace folder exists)"""
N_SEEDS_FULL = 8
"""episodes per scenario in full mode"""
N_SEEDS_QUICK = 3
"""episodes per scenario in quick mode"""
QUICK_STEPS = 240
"""steps per episode in quick mode (covers every preset's failure and most of the
degradation ramp); full mode uses the scenario's own length (300)"""
SEED_STRIDE = 100
ORACLE = "oracle"
"""name of the hindsight selector (zero regret by construction)"""
BUILTIN: tuple[str, ...] = ("ucb1", "ucb1_stationary", "min_rtt", "round_robin")
"""the selectors every run includes (names as their ``name`` attributes)"""

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, label)``, called after each episode (all selectors)"""


SelectorFactory = Callable[[int], PathPolicy]
"""``factory(seed)`` builds a fresh selector for one episode"""


class MinRttPathSelector(BasePathSelector):
    """Greedy baseline: the available path with the lowest measured RTT.

    Reads only the latest `PathMetrics` (no rewards), the way a simple
    multipath scheduler picks its fastest subflow. Ties go to the lowest path
    index.

    Examples
    --------
    >>> sel = MinRttPathSelector()
    >>> sel.update_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=40_000), now=0.0)
    >>> sel.update_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=15_000), now=0.0)
    >>> sel.select(TrafficContext.Bulk, now=0.0)
    <PathId.Secondary: 1>
    """

    name: ClassVar[str] = "min_rtt"

    def __init__(self, config: PathSelectorConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(PathSelectorConfig() if config is None else config, seed=seed)
        self._rtt = [math.inf] * len(PathId)

    def _on_metrics(self, i: int, metrics: PathMetrics) -> None:
        self._rtt[i] = metrics.rtt_us

    def _pull(self, c: int, avail: tuple[int, ...]) -> int:
        rtt = self._rtt
        best = avail[0]
        low = rtt[best]
        for i in avail:
            if rtt[i] < low:
                best, low = i, rtt[i]
        return best


class MetricsRewardPathSelector(BasePathSelector):
    """Greedy on the metrics: the available path whose latest `PathMetrics` would give
    the highest `calculate_path_reward` for the traffic type (no rewards read).

    The obvious heuristic a learned prior has to beat: it knows the reward
    function exactly and assumes the next flow sees the last measurement.

    Examples
    --------
    >>> sel = MetricsRewardPathSelector()
    >>> sel.update_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=15_000,
    ...                                bandwidth_bps=5e6), now=0.0)
    >>> sel.update_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=90_000,
    ...                                bandwidth_bps=150e6), now=0.0)
    >>> sel.select(TrafficContext.Gaming, now=0.0), sel.select(TrafficContext.Bulk, now=0.0)
    (<PathId.Primary: 0>, <PathId.Secondary: 1>)
    """

    name: ClassVar[str] = "metrics_reward"

    def __init__(self, config: PathSelectorConfig | None = None, *, seed: int = 0) -> None:
        super().__init__(PathSelectorConfig() if config is None else config, seed=seed)
        self._value = [[0.0] * len(PathId) for _ in TrafficContext]

    def _on_metrics(self, i: int, metrics: PathMetrics) -> None:
        for c in TrafficContext:
            self._value[int(c)][i] = calculate_path_reward(
                c, metrics.rtt_us, metrics.loss_rate, metrics.bandwidth_bps / 1e6
            )

    def _pull(self, c: int, avail: tuple[int, ...]) -> int:
        return argmax_available(self._value[c], avail)


class _HindsightSelector(BasePathSelector):
    """Chooses the path with the best reward of the coming step, read from the env's
    ground truth (`PathSelectionEnv.episode_arrays`): the per-step oracle.

    A `BasePathSelector` like every other selector (so `PathPolicy`), but it
    ignores availability and rewards: the ground truth already includes them.
    """

    name = ORACLE

    def __init__(self, env: Any) -> None:
        super().__init__()
        arr = env.episode_arrays()
        self._rtt = arr["rtt_s"]
        self._loss = arr["loss"]
        self._thr = arr["throughput_bps"]
        self._k = 0

    def select(self, context: TrafficContext, *, now: float) -> PathId:
        # Overridden: the oracle chooses among every path of the episode, even
        # before metrics arrive; it steps through the episode once per call.
        c = TrafficContext(context)
        row = self._k + 1
        self._k += 1
        rewards = [
            calculate_path_reward(
                c,
                float(self._rtt[row, i]) * 1e6,
                float(self._loss[row, i]),
                float(self._thr[row, i]) / 1e6,
            )
            for i in range(self._rtt.shape[1])
        ]
        return PathId(int(np.argmax(rewards)))

    def _pull(self, c: int, avail: tuple[int, ...]) -> int:
        # Only `predict_one` reaches this; the oracle is driven through `select`.
        return int(self.select(TrafficContext(c), now=0.0))


def builtin_factories() -> dict[str, SelectorFactory]:
    """The selectors of `BUILTIN`, name -> ``factory(seed)``."""
    return {
        "ucb1": lambda seed: MlPathSelector(seed=seed),
        "ucb1_stationary": lambda seed: StationaryUcb1PathSelector(seed=seed),
        "min_rtt": lambda seed: MinRttPathSelector(seed=seed),
        "round_robin": lambda seed: RoundRobinPathSelector(seed=seed),
    }


# ---------------------------------------------------------------- episodes


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One selector on one episode."""

    reward: np.ndarray
    """reward of the chosen path per step ``[T]``"""
    oracle: np.ndarray
    """best path's reward per step ``[T]``"""
    chosen: np.ndarray
    """chosen path index per step ``[T]`` (int)"""
    best: np.ndarray
    """best path index per step ``[T]`` (int)"""
    context: np.ndarray
    """`TrafficContext` value per step ``[T]`` (int)"""

    @property
    def cumulative_regret(self) -> np.ndarray:
        return cumulative_regret(self.reward, self.oracle)


def run_episode(env: Any, selector: PathPolicy) -> EpisodeRecord:
    """Drive ``env`` (already reset) to the end of its episode with ``selector``."""
    steps = env.scenario.episode_steps
    step_s = env.scenario.step_s
    reward = np.empty(steps)
    oracle = np.empty(steps)
    chosen = np.empty(steps, dtype=np.int64)
    best = np.empty(steps, dtype=np.int64)
    ctx_arr = np.empty(steps, dtype=np.int64)
    n_paths = env.n_paths
    for k in range(steps):
        now = k * step_s
        for m in env.path_metrics():
            selector.update_metrics(m, now=now)
        ctx = env.current_context
        path = selector.select(ctx, now=now)
        a = int(path)
        if not 0 <= a < n_paths:
            raise ValueError(
                f"selector {getattr(selector, 'name', selector)!r} chose path {a}, "
                f"but the scenario has {n_paths} paths"
            )
        _obs, r, _term, trunc, info = env.step(a)
        selector.update_reward(PathId(a), ctx, float(r), now=now + step_s)
        reward[k] = r
        oracle[k] = info["oracle_reward"]
        chosen[k] = a
        best[k] = info["best_path"]
        ctx_arr[k] = int(ctx)
        if trunc:
            steps = k + 1
            break
    return EpisodeRecord(
        reward[:steps], oracle[:steps], chosen[:steps], best[:steps], ctx_arr[:steps]
    )


# ---------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class SelectorScore:
    """One selector on one scenario, over its seeds."""

    scenario: str
    selector: str
    mean_reward: float
    """mean reward per step"""
    regret_per_step: float
    """mean (oracle - reward) per step"""
    final_regret: float
    """cumulative regret at the end of the episode, mean over seeds"""
    final_regret_sd: float
    """its standard deviation over seeds"""
    best_share: float
    """share of steps on the hindsight-best path"""
    per_context_regret: dict[str, float] = field(default_factory=dict)
    """traffic type -> regret per step"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "selector": self.selector,
            "mean_reward": self.mean_reward,
            "regret_per_step": self.regret_per_step,
            "final_regret": self.final_regret,
            "final_regret_sd": self.final_regret_sd,
            "best_share": self.best_share,
            "per_context_regret": dict(self.per_context_regret),
        }


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    name: str
    description: str
    paths: tuple[str, ...]
    steps: int
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "paths": list(self.paths),
            "steps": self.steps,
            "seeds": list(self.seeds),
        }


@dataclass(frozen=True, slots=True)
class PathsEvalResult:
    """Everything `run` measured; `to_dict` is JSON-able, `markdown` the report section."""

    seed: int
    quick: bool
    selectors: tuple[str, ...]
    scenarios: tuple[ScenarioSummary, ...]
    scores: tuple[SelectorScore, ...]
    regret_curves: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]]
    """scenario -> selector -> (mean, sd) cumulative regret per step over seeds"""
    choices: dict[str, dict[str, tuple[int, ...]]]
    """scenario -> selector (and ``"best"``) -> path index per step, first seed"""
    wall_s: float
    notes: tuple[str, ...] = ()

    def score(self, scenario: str, selector: str) -> SelectorScore:
        for s in self.scores:
            if s.scenario == scenario and s.selector == selector:
                return s
        raise KeyError(f"no score for ({scenario!r}, {selector!r})")

    def overall(self) -> dict[str, float]:
        """Selector -> regret per step averaged over scenarios."""
        out: dict[str, float] = {}
        for sel in self.selectors:
            vals = [s.regret_per_step for s in self.scores if s.selector == sel]
            out[sel] = float(np.mean(vals)) if vals else math.nan
        return out

    def headline(self) -> list[str]:
        ov = self.overall()
        ranked = sorted((v, k) for k, v in ov.items() if k != ORACLE)
        parts = ", ".join(f"{k} {v:.3f}" for v, k in ranked)
        wins = []
        for sc in self.scenarios:
            cands = [s for s in self.scores if s.scenario == sc.name and s.selector != ORACLE]
            if cands:
                wins.append(f"{sc.name}: {min(cands, key=lambda s: s.final_regret).selector}")
        return [
            (
                f"Paths: regret per step (lower is better, mean over scenarios): {parts}; "
                f"lowest cumulative regret per scenario: {'; '.join(wins)}."
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "quick": self.quick,
            "selectors": list(self.selectors),
            "scenarios": [s.to_dict() for s in self.scenarios],
            "scores": [s.to_dict() for s in self.scores],
            "overall_regret_per_step": self.overall(),
            "regret_curves": {
                sc: {sel: {"mean": list(m), "sd": list(sd)} for sel, (m, sd) in d.items()}
                for sc, d in self.regret_curves.items()
            },
            "choices": {sc: {k: list(v) for k, v in d.items()} for sc, d in self.choices.items()},
            "wall_s": self.wall_s,
            "notes": list(self.notes),
        }

    def markdown(self) -> str:
        n_seeds = len(self.scenarios[0].seeds) if self.scenarios else 0
        lines = [
            (
                f"{len(self.scenarios)} path scenarios x {n_seeds} seeds "
                f"({'quick' if self.quick else 'full'} mode, seed {self.seed}); one flow per "
                "simulated second, all five traffic types. Regret = hindsight-best path's reward "
                "minus the chosen path's (rewards in [0, 1]); `oracle` reads the ground truth "
                "and must show 0."
            ),
            "",
            "| scenario | paths | steps |",
            "|---|---|---:|",
        ]
        for sc in self.scenarios:
            lines.append(f"| {sc.name} | {', '.join(sc.paths)} | {sc.steps} |")
        lines += [
            "",
            (
                "| scenario | selector | cumulative regret (mean ± sd) | regret / step | "
                "mean reward | on best path |"
            ),
            "|---|---|---:|---:|---:|---:|",
        ]
        for s in self.scores:
            lines.append(
                f"| {s.scenario} | {s.selector} | {s.final_regret:.2f} ± {s.final_regret_sd:.2f} "
                f"| {s.regret_per_step:.4f} | {s.mean_reward:.4f} | {s.best_share:.1%} |"
            )
        ctxs = [c.name for c in TrafficContext]
        lines += [
            "",
            "Regret per step by traffic type (all scenarios pooled):",
            "",
            "| selector | " + " | ".join(ctxs) + " |",
            "|---|" + "---:|" * len(ctxs),
        ]
        for sel in self.selectors:
            rows = [s for s in self.scores if s.selector == sel]
            cells = []
            for c in ctxs:
                vals = [s.per_context_regret[c] for s in rows if c in s.per_context_regret]
                cells.append(f"{np.mean(vals):.4f}" if vals else "n/a")
            lines.append(f"| {sel} | " + " | ".join(cells) + " |")
        for note in self.notes:
            lines += ["", f"Note: {note}"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the evaluation


def available() -> str | None:
    """None when the evaluation can run; else why not (gymnasium missing)."""
    import importlib.util

    if importlib.util.find_spec("gymnasium") is None:
        return "gymnasium is not installed (pip install 'oxidize-ml[sim]')"
    return None


def _score(scenario: str, selector: str, recs: Sequence[EpisodeRecord]) -> SelectorScore:
    reward = np.concatenate([r.reward for r in recs])
    oracle = np.concatenate([r.oracle for r in recs])
    ctx = np.concatenate([r.context for r in recs])
    hit = np.concatenate([r.chosen == r.best for r in recs])
    finals = np.array([r.cumulative_regret[-1] for r in recs])
    per_ctx = {}
    for c in TrafficContext:
        m = ctx == int(c)
        if m.any():
            per_ctx[c.name] = float((oracle[m] - reward[m]).mean())
    return SelectorScore(
        scenario=scenario,
        selector=selector,
        mean_reward=float(reward.mean()),
        regret_per_step=float((oracle - reward).mean()),
        final_regret=float(finals.mean()),
        final_regret_sd=float(finals.std()),
        best_share=float(hit.mean()),
        per_context_regret=per_ctx,
    )


def run(
    *,
    seed: int = 0,
    quick: bool = False,
    selectors: Mapping[str, SelectorFactory] | None = None,
    scenarios: Sequence[str] | None = None,
    n_seeds: int | None = None,
    episode_steps: int | None = None,
    include_oracle: bool = True,
    progress: ProgressFn | None = None,
) -> PathsEvalResult:
    """Run every selector on every path scenario; see the module docstring.

    Parameters
    ----------
    seed
        Base of the episode seeds (``EVAL_SEED_BASE + 100 * seed + i``).
    quick
        `N_SEEDS_QUICK` episodes of `QUICK_STEPS` steps per scenario.
    selectors
        Extra selectors, name -> ``factory(seed)`` (a fresh selector per
        episode, with `BasePathSelector`'s ``update_metrics`` / ``select`` /
        ``update_reward``).
    scenarios
        Preset names of `oxidize_ml.sim.gym.path_env` (default `SCENARIOS`,
        the trace one only when available).
    n_seeds, episode_steps
        Override the episodes per scenario and their length.
    include_oracle
        Add the hindsight ``oracle`` row.
    progress
        ``progress(done, total, label)`` after each episode.
    """
    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE
    from oxidize_ml.sim.gym.path_env import (
        PathSelectionEnv,
        get_path_scenario,
        list_path_scenarios,
    )

    t0 = time.perf_counter()
    check_int("seed", seed)
    factories = builtin_factories()
    for name, f in dict(selectors or {}).items():
        if name in factories or name == ORACLE:
            raise ValueError(f"selector name {name!r} is taken; built-in: {[*factories, ORACLE]}")
        if not callable(f):
            raise TypeError(f"selector {name!r} must be a factory(seed), got {type(f).__name__}")
        factories[name] = f
    notes: list[str] = []
    have = list_path_scenarios()
    if scenarios is None:
        names = [n for n in SCENARIOS if n in have]
        missing = [n for n in SCENARIOS if n not in have]
        if missing:
            notes.append(
                f"Scenarios {missing} need the Mahimahi trace folder, which was not "
                "found (set OXIDIZE_TRACE_DIR); they were skipped."
            )
    else:
        names = list(scenarios)
        known = list_path_scenarios(include_unavailable=True)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown path scenarios {unknown}; choose from {known}")
    k_seeds = n_seeds if n_seeds is not None else (N_SEEDS_QUICK if quick else N_SEEDS_FULL)
    check_int("n_seeds", k_seeds, lo=1)
    steps = episode_steps if episode_steps is not None else (QUICK_STEPS if quick else None)
    if steps is not None:
        check_int("episode_steps", steps, lo=1)
    sel_names = [*factories, *([ORACLE] if include_oracle else [])]
    base = EVAL_SEED_BASE + SEED_STRIDE * seed
    total = len(names) * k_seeds
    done = 0
    summaries: list[ScenarioSummary] = []
    scores: list[SelectorScore] = []
    curves: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {}
    choices: dict[str, dict[str, tuple[int, ...]]] = {}
    for s_idx, name in enumerate(names):
        sc = get_path_scenario(name)
        env0 = PathSelectionEnv(sc, episode_steps=steps)
        seeds = tuple(base + 10 * s_idx + i for i in range(k_seeds))
        recs: dict[str, list[EpisodeRecord]] = {n: [] for n in sel_names}
        for ep_seed in seeds:
            env0.reset(seed=ep_seed)
            for sel_name in sel_names:
                env = copy.deepcopy(env0)  # the same realisation for every selector
                selector: Any = (
                    _HindsightSelector(env) if sel_name == ORACLE else factories[sel_name](ep_seed)
                )
                recs[sel_name].append(run_episode(env, selector))
            done += 1
            if progress is not None:
                progress(done, total, f"{name} seed {ep_seed}")
        summaries.append(
            ScenarioSummary(
                name=sc.name,
                description=sc.description,
                paths=tuple(p.name for p in sc.paths),
                steps=env0.scenario.episode_steps,
                seeds=seeds,
            )
        )
        curves[name] = {}
        for sel_name in sel_names:
            scores.append(_score(name, sel_name, recs[sel_name]))
            mean, sd = mean_curve([r.cumulative_regret for r in recs[sel_name]])
            curves[name][sel_name] = (tuple(mean.tolist()), tuple(sd.tolist()))
        first = recs[sel_names[0]][0]
        choices[name] = {"best": tuple(first.best.tolist())}
        for sel_name in sel_names:
            choices[name][sel_name] = tuple(recs[sel_name][0].chosen.tolist())
    return PathsEvalResult(
        seed=seed,
        quick=quick,
        selectors=tuple(sel_names),
        scenarios=tuple(summaries),
        scores=tuple(scores),
        regret_curves=curves,
        choices=choices,
        wall_s=time.perf_counter() - t0,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------- plots

_STYLE_INDEX = {"ucb1": 0, "ucb1_stationary": 5, "min_rtt": 1, "round_robin": 4, ORACLE: 7}


def _color(name: str, extra_index: int) -> str:
    from oxidize_ml.evaluation.plots import PALETTE

    free = [2, 3, 6]
    return PALETTE[_STYLE_INDEX.get(name, free[extra_index % len(free)])]


def plot(result: PathsEvalResult, out_dir: str | Path) -> list[Path]:
    """Cumulative regret over time per selector (per scenario), and path choices over time."""
    from oxidize_ml.evaluation import plots

    out = Path(out_dir)
    extra = [s for s in result.selectors if s not in _STYLE_INDEX]
    names = [s.name for s in result.scenarios]
    paths_out: list[Path] = []

    fig, axes = plots.subplot_grid(len(names), ncols=2, panel_size=(5.0, 3.4))
    handles: dict[str, Any] = {}
    for ax, sc in zip(axes, names, strict=True):
        for sel in result.selectors:
            mean, sd = (np.asarray(v) for v in result.regret_curves[sc][sel])
            x = np.arange(1, mean.size + 1)
            color = _color(sel, extra.index(sel) if sel in extra else 0)
            (h,) = ax.plot(
                x, mean, color=color, linewidth=1.4, linestyle=":" if sel == ORACLE else "-"
            )
            ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.15, linewidth=0)
            handles.setdefault(sel, h)
        ax.set_title(sc, fontsize=10)
        ax.set_xlabel("step (one flow per simulated second)")
        ax.set_ylabel("cumulative regret")
        ax.grid(True, alpha=0.3)
    plots.legend_below(fig, list(handles.values()), list(handles))
    plots.tidy(fig, top_in=0.35, bottom_in=0.95, hspace=0.5, wspace=0.25)
    paths_out.append(plots.save_figure(fig, out / "paths-regret.png"))

    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    fig, axes = plots.subplot_grid(len(names), ncols=1, panel_size=(10.0, 2.2))
    path_colors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"]
    for ax, sc in zip(axes, names, strict=True):
        rows = ["best", *(s for s in result.selectors if s != ORACLE)]
        grid = np.array([result.choices[sc][r] for r in rows], dtype=float)
        n_paths = len(result.scenarios[names.index(sc)].paths)
        ax.imshow(
            grid,
            aspect="auto",
            interpolation="nearest",
            cmap=ListedColormap(path_colors[:n_paths]),
            vmin=-0.5,
            vmax=n_paths - 0.5,
        )
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("step")
        summary = result.scenarios[names.index(sc)]
        ax.set_title(
            f"{sc}: path chosen per step (first seed; top row: the hindsight-best path)", fontsize=9
        )
        ax.legend(
            handles=[Patch(color=path_colors[i], label=p) for i, p in enumerate(summary.paths)],
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
        )
    plots.tidy(fig, top_in=0.35, bottom_in=0.5, left_in=1.3, right_in=2.3, hspace=0.7)
    paths_out.append(plots.save_figure(fig, out / "paths-choices.png"))
    return paths_out


# ---------------------------------------------------------------- trace-driven evaluation

TRACE_SELECTORS: tuple[str, ...] = (
    "ucb1",
    "ucb1_stationary",
    "min_rtt",
    "round_robin",
    "learned",
    "default",
)
"""selectors of `evaluate_path_traces`' summary, in order"""
BASELINES: tuple[str, ...] = ("ucb1", "ucb1_stationary", "min_rtt", "round_robin")
"""the heuristics the target compares with (best of them, per traffic type)"""
BOOTSTRAP_ROUNDS = 2000
"""paired bootstrap replicates over episodes"""
TARGET_RATIO = 0.9
"""target: regret per step <= 0.9 x the best baseline's, for every traffic type"""
NO_WORSE_RATIO = 0.9
"""default rule: a candidate's regret may be at most current / 0.9 on any traffic
type or scenario family ("not worse than 0.9x")"""


def _episode_stats(rec: EpisodeRecord) -> dict[str, Any]:
    """Regret sums and step counts per traffic type of one episode."""
    regret = rec.oracle - rec.reward
    per = {}
    for c in TrafficContext:
        m = rec.context == int(c)
        per[c.name] = (float(regret[m].sum()), int(m.sum()))
    return {"regret_sum": float(regret.sum()), "steps": int(regret.size), "per_context": per}


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of ``a - b`` over paired episodes and its 95 % bootstrap interval.

    ``a`` and ``b`` are per-episode figures of two selectors on the same
    episodes; episodes are resampled with replacement (``rounds`` times,
    seeded). ``low > 0`` means ``a`` is larger with 95 % confidence.
    """
    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.size < 1:
        raise ValueError(f"a and b must be equal-length non-empty sequences, got {x.shape}")
    check_int("rounds", rounds, lo=1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(rounds, x.size))
    means = x[idx].mean(axis=1)
    return {
        "mean": float(x.mean()),
        "low": float(np.quantile(means, 0.025)),
        "high": float(np.quantile(means, 0.975)),
        "episodes": int(x.size),
    }


def _learned_factory(model_dir: Path | None) -> tuple[SelectorFactory | None, str]:
    """The learned selector of ``model_dir`` (default: the shipped defaults), or why not."""
    from oxidize_ml.paths.learned import load_learned_selector

    if model_dir is None:
        from oxidize_ml.models import default_model_dir

        model_dir = default_model_dir()
        if model_dir is None:
            return None, "no shipped model directory"
    sel, why = load_learned_selector(model_dir, seed=0)
    if sel is None:
        return None, why
    d = model_dir
    return (lambda seed: load_learned_selector(d, seed=seed)[0]), "ok"  # type: ignore[return-value]


def evaluate_path_traces(
    trace_paths: list[Path],
    *,
    steps: int = 300,
    seeds: int = 8,
    seed: int = 0,
    progress: bool = True,
    model_dir: Path | None = None,
    extra_selectors: Mapping[str, SelectorFactory] | None = None,
    library_bandit: bool = True,
) -> dict[str, Any]:
    """Regret of every path selector on trace-driven paths (each trace one path).

    Parameters
    ----------
    trace_paths
        2 to 4 Mahimahi trace files; trace ``i`` drives path ``i``. Built into
        the scenario families of `oxidize_ml.sim.gym.path_env.trace_path_families`
        (as given, RTTs reversed, path 0 failing, path 0 degrading).
    steps
        Flows (one per simulated second) per episode.
    seeds
        Episodes per family (seeds ``EVAL_SEED_BASE + 100 * seed + 10 * family + i``).
    seed
        Base of the episode seeds.
    progress
        Print one line per episode to stderr.
    model_dir
        Model directory of the ``learned`` selector (default: the shipped
        defaults); without a verified ``path_selector`` model its figures are
        ``None`` and ``notes`` says why.
    extra_selectors
        More selectors to compare (name -> ``factory(seed)``), reported in
        ``selectors`` but not in ``summary`` (as is ``metrics_reward``,
        `MetricsRewardPathSelector`, always run).
    library_bandit
        Also run river's disjoint LinUCB (`RiverLinUcbPathSelector`, name
        ``river_linucb``) on the same episodes when river is installed (the
        ``bandits`` extra); otherwise ``notes`` says it was skipped.

    Returns
    -------
    dict
        ``summary``: exactly ``{"selectors": {NAME: {"regret_per_step": x}}}``
        for NAME in `TRACE_SELECTORS` (mean over every step of every episode;
        ``None`` for a selector that could not run). Also ``selectors`` (per
        selector: regret per step, 95 % bootstrap interval over episodes, per
        traffic type and per family), ``paired_vs_default`` (paired bootstrap
        of each selector's regret minus the default's), ``target`` (the
        default's regret against 0.9 x the best baseline per traffic type),
        ``families``, ``traces``, ``config`` and ``notes``.

    Raises
    ------
    ValueError
        Fewer than 2 or more than 4 traces, or a trace that cannot be read
        (the message names the file); bad ``steps`` / ``seeds``.
    """
    import sys

    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE
    from oxidize_ml.paths.learned import default_path_selector_factory
    from oxidize_ml.sim.gym.path_env import PathSelectionEnv, trace_path_families

    t0 = time.perf_counter()
    steps = check_int("steps", steps, lo=1, hi=100_000)
    n_seeds = check_int("seeds", seeds, lo=1, hi=10_000)
    check_int("seed", seed)
    if isinstance(trace_paths, str | Path):
        raise TypeError("trace_paths must be a list of paths, got a single path")
    paths_list = [Path(p) for p in trace_paths]
    families = trace_path_families(paths_list, steps=steps)
    notes: list[str] = []
    factories: dict[str, SelectorFactory | None] = dict(builtin_factories())
    learned, why = _learned_factory(model_dir)
    if learned is None:
        notes.append(f"learned: not evaluated ({why})")
    factories["learned"] = learned
    default_factory, default_name = default_path_selector_factory()
    factories["default"] = default_factory
    notes.append(
        f"default: {default_name} (the shipped defaults' choice for MlEngine(), "
        "`oxidize_ml.paths.default_path_selector_factory`)"
    )
    factories["metrics_reward"] = lambda s: MetricsRewardPathSelector(seed=s)
    if library_bandit:
        why_not = river_available()
        if why_not is None:
            factories[RIVER_NAME] = lambda s: RiverLinUcbPathSelector(seed=s)
        else:
            notes.append(f"{RIVER_NAME}: not compared ({why_not})")
    for name, f in dict(extra_selectors or {}).items():
        if name in factories:
            raise ValueError(f"selector name {name!r} is taken; built-in: {list(factories)}")
        if not callable(f):
            raise TypeError(f"selector {name!r} must be a factory(seed), got {type(f).__name__}")
        factories[name] = f
    runnable = [n for n, f in factories.items() if f is not None]
    base = EVAL_SEED_BASE + SEED_STRIDE * seed
    total = len(families) * n_seeds
    done = 0
    # per selector: list of episode stats, with the family of each episode
    eps: dict[str, list[dict[str, Any]]] = {n: [] for n in runnable}
    fam_of: list[str] = []
    for f_idx, (fname, sc) in enumerate(families.items()):
        env0 = PathSelectionEnv(sc)
        for i in range(n_seeds):
            ep_seed = base + 10 * f_idx + i
            env0.reset(seed=ep_seed)
            fam_of.append(fname)
            for name in runnable:
                env = copy.deepcopy(env0)  # the same realisation for every selector
                factory = factories[name]
                assert factory is not None
                st = _episode_stats(run_episode(env, factory(ep_seed)))
                eps[name].append(st)
            done += 1
            if progress:
                print(
                    f"paths: {done}/{total} episodes ({fname}, seed {ep_seed})",
                    file=sys.stderr,
                    flush=True,
                )
    fam_arr = np.array(fam_of)

    def per_step(st_list: list[dict[str, Any]], mask: np.ndarray | None = None) -> float:
        sel = st_list if mask is None else [s for s, m in zip(st_list, mask, strict=True) if m]
        n = sum(s["steps"] for s in sel)
        return float(sum(s["regret_sum"] for s in sel) / n) if n else math.nan

    def per_ctx(st_list: list[dict[str, Any]]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for c in TrafficContext:
            tot = sum(s["per_context"][c.name][0] for s in st_list)
            n = sum(s["per_context"][c.name][1] for s in st_list)
            out[c.name] = float(tot / n) if n else None
        return out

    detail: dict[str, Any] = {}
    ep_regret: dict[str, np.ndarray] = {}
    for name in runnable:
        lst = eps[name]
        ep_regret[name] = np.array([s["regret_sum"] / s["steps"] for s in lst])
        boot = paired_bootstrap(ep_regret[name], np.zeros(len(lst)), seed=seed)
        detail[name] = {
            "regret_per_step": per_step(lst),
            "ci95": [boot["low"], boot["high"]],
            "episode_regret_per_step": ep_regret[name].tolist(),
            "per_traffic_type": per_ctx(lst),
            "per_family": {f: per_step(lst, fam_arr == f) for f in families},
            "per_family_traffic_type": {
                f: per_ctx([s for s, m in zip(lst, fam_arr == f, strict=True) if m])
                for f in families
            },
        }
    summary = {
        "selectors": {
            n: {"regret_per_step": detail[n]["regret_per_step"] if n in detail else None}
            for n in TRACE_SELECTORS
        }
    }
    paired = {
        n: paired_bootstrap(ep_regret[n], ep_regret["default"], seed=seed)
        for n in runnable
        if n != "default"
    }
    return {
        "summary": summary,
        "selectors": detail,
        "paired_vs_default": paired,
        "target": _target(detail),
        "families": {f: sc.description for f, sc in families.items()},
        "traces": [str(p) for p in paths_list],
        "config": {
            "steps": steps,
            "seeds": n_seeds,
            "seed": seed,
            "episodes_per_selector": total,
            "bootstrap_rounds": BOOTSTRAP_ROUNDS,
        },
        "notes": notes,
        "wall_s": time.perf_counter() - t0,
    }


def _target(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's target for the default: <= 0.9 x the best baseline per traffic type."""
    if "default" not in detail or any(b not in detail for b in BASELINES):
        return {"met": None, "reason": "default or a baseline did not run"}
    rows = {}
    met = True
    for c in TrafficContext:
        best_name, best = min(
            (
                (b, detail[b]["per_traffic_type"][c.name])
                for b in BASELINES
                if detail[b]["per_traffic_type"][c.name] is not None
            ),
            key=lambda t: t[1],
            default=(None, None),
        )
        mine = detail["default"]["per_traffic_type"][c.name]
        if best is None or mine is None:
            continue
        ok = mine <= TARGET_RATIO * best
        met = met and ok
        rows[c.name] = {
            "default": mine,
            "best_baseline": best_name,
            "best": best,
            "ratio": (mine / best) if best > 0 else math.inf,
            "met": ok,
        }
    return {
        "met": met,
        "rule": f"default regret/step <= {TARGET_RATIO} x the best of "
        f"{list(BASELINES)} for every traffic type",
        "per_traffic_type": rows,
    }


def qualifies_as_default(
    result: Mapping[str, Any], candidate: str = "learned", current: str = "default"
) -> dict[str, Any]:
    """The default rule: ``candidate`` replaces ``current`` only when it has lower
    regret with 95 % confidence (paired bootstrap over episodes) and is not worse
    than ``current / 0.9`` on any traffic type or scenario family."""
    det = result["selectors"]
    if candidate not in det or current not in det:
        return {"qualifies": False, "reason": f"{candidate} or {current} did not run"}
    cand_ep = det[candidate]
    cur_ep = det[current]
    paired = paired_bootstrap(
        cand_ep["episode_regret_per_step"],
        cur_ep["episode_regret_per_step"],
        seed=int(result["config"]["seed"]),
    )
    confident = paired["high"] < 0.0
    worse = []
    for key in ("per_traffic_type", "per_family"):
        for k, v in cand_ep[key].items():
            ref = cur_ep[key].get(k)
            if v is not None and ref is not None and v * NO_WORSE_RATIO > ref:
                worse.append(f"{k}: {v:.4f} vs {ref:.4f}")
    return {
        "qualifies": bool(confident and not worse),
        "confident": confident,
        "paired": paired,
        "worse_than_allowed": worse,
        "rule": f"lower regret with 95 % confidence (paired bootstrap over episodes) and "
        f"regret <= {current} / {NO_WORSE_RATIO} on every traffic type and family",
    }


# ---------------------------------------------------------------- a library contextual bandit


RIVER_NAME = "river_linucb"
"""name of the river LinUCB comparison selector"""


def river_available() -> str | None:
    """None when river's contextual bandit can run; else why not."""
    import importlib.util

    if importlib.util.find_spec("river") is None:
        return "river is not installed (pip install 'oxidize-ml[bandits]')"
    return None


class RiverLinUcbPathSelector(BasePathSelector):
    """river's ``bandit.LinUCBDisjoint`` (one Bayesian linear regression per path) as a
    path selector, for comparison on the same episodes.

    A `BasePathSelector` (so a full `oxidize_ml.policy.PathPolicy`: the engine
    takes it through ``replace_policy("path_selector", ...)``). Context (one
    dict per decision, shared by every arm as disjoint LinUCB expects): the
    traffic type one-hot and, per known path, the saturating scores of its
    latest metrics (latency, jitter, loss, throughput) and availability, the
    features the gym observation shows. Unavailable paths are not offered;
    with no metrics it returns Primary.

    Parameters
    ----------
    seed
        river's tie-breaking seed.
    alpha, beta
        Prior precision and noise precision of each arm's Bayesian regression
        (river's defaults: 1, 1).
    """

    name = RIVER_NAME
    is_learned = True

    def __init__(self, seed: int = 0, *, alpha: float = 1.0, beta: float = 1.0) -> None:
        from river import bandit

        super().__init__(seed=seed)
        self._policy = bandit.LinUCBDisjoint(alpha=alpha, beta=beta, seed=seed)
        # The context each arm was pulled with, per traffic type: the reward
        # updates the regression at the point where the decision was made.
        self._pulled_with: dict[int, dict[str, float]] = {}

    def _ctx(self, c: int) -> dict[str, float]:
        from oxidize_ml.paths.learned import metric_scores

        x = {f"ctx_{t.name}": float(int(t) == c) for t in TrafficContext}
        for i, m in enumerate(self._metrics):
            if m is None:
                continue
            lat, jit, loss_s, thr_s = metric_scores(m)
            x.update(
                {
                    f"p{i}_lat": lat,
                    f"p{i}_jit": jit,
                    f"p{i}_loss": loss_s,
                    f"p{i}_thr": thr_s,
                    f"p{i}_avail": m.availability,
                }
            )
        return x

    def _pull(self, c: int, avail: tuple[int, ...]) -> int:
        x = self._pulled_with[c] = self._ctx(c)
        return int(self._policy.pull(list(avail), context=x))

    def _on_reward(self, c: int, i: int, reward: float) -> None:
        x = self._pulled_with.get(c)
        self._policy.update(i, x if x is not None else self._ctx(c), reward)
