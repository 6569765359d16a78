"""The Pantheon-style congestion-control comparison on the simulator.

Every controller runs on every scenario of the built-in suite
(`oxidize_ml.sim.list_scenarios`) and, when the trace folder exists, on
windows of the held-out Mahimahi traces of `oxidize_ml.evaluation.splits`
(`oxidize_ml.evaluation.congestion_windows`: several starts per trace,
silent starts, RTT 40 and 100 ms, 2-BDP buffers, ratios to CUBIC with
bootstrap intervals). Pantheon (USENIX ATC 2018; REFERENCES section 2)
compares schemes by throughput against 95th-percentile one-way delay; this
module adds utilisation, p95 queueing delay, loss, Jain's fairness index and
the shared congestion reward.

Metrics (per run, then averaged over the run seeds of a scenario)
-----------------------------------------------------------------
- **throughput_mbps**: sum of the flows' goodput (`RunResult.throughput_bps`).
- **utilisation**: delivered bytes over the link's delivery opportunities
  (`RunResult.utilisation`).
- **delay_p95_ms**: 95th percentile of every delivered packet's one-way delay
  (propagation + queueing + transmission), all flows pooled.
- **queue_delay_p95_ms**: the same after subtracting each packet's flow's
  one-way propagation delay: what the controller added.
- **loss_rate**: packets declared lost / (acked + declared lost).
- **jain_index**: Jain's index over the flows' goodput (1 for one flow).
- **reward**: mean `congestion_reward` per decision interval, computed with
  `CongestionStateEncoder` (the DQN's own objective, so a learned controller
  is also judged on what it optimised).
- **power**: throughput_mbps / (delay_p95_ms / 1000), Kleinrock's power
  with p95 delay: one number that rewards both throughput and low delay.

Seeds
-----
Run seeds are ``EVAL_SEED_BASE + 100 * seed + i`` (disjoint from training
seeds). Deterministic scenarios (constant, step and trace links without
random loss) run once; random ones (random loss, synthetic cellular) run
`N_SEEDS_FULL` times, or once in quick mode.

Quick mode
----------
Scenario durations are halved (at least `QUICK_MIN_DURATION_S`), which still
shows the first capacity step of ``step-change`` (at 10 s) and all three
``competing-flows`` (starting at 0, 5 and 10 s), and every scenario runs once.
Held-out trace windows: `QUICK_WINDOWS` per trace of `QUICK_WINDOW_S` (plus
the silent-start windows).

Adding controllers
------------------
``controllers`` takes registry names (``oxidize_ml.sim.default_registry()``
or the ``registry`` given) and ``(name, factory)`` pairs; by default every
name in the registry runs (so a ``"dqn"`` registered there is picked up), plus
``"engine"`` (`MlEngine` with the package's shipped models, seeing sender-side
features only) when the package ships trained models. ``extra_controllers``
appends pairs to either, e.g. a candidate model before it is shipped::

    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory
    run(extra_controllers=[("dqn", dqn_factory("runs/dqn-0"))])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml.evaluation.congestion_controllers import resolve_controllers
from oxidize_ml.evaluation.congestion_windows import (
    WindowConfig,
    WindowEvalResult,
    plan_run,
    plot_windows,
    run_windows,
)
from oxidize_ml.evaluation.formatting import fixed as _fmt
from oxidize_ml.evaluation.formatting import json_number as _json_num
from oxidize_ml.sim.controllers.registry import (
    ControllerFactory,
    ControllerRegistry,
    default_registry,
)
from oxidize_ml.sim.traces import BITS_PER_OPPORTUNITY

N_SEEDS_FULL = 3
"""run seeds per random scenario in full mode"""
QUICK_DURATION_FACTOR = 0.5
"""quick mode runs each scenario for this share of its duration"""
QUICK_MIN_DURATION_S = 10.0
"""but never shorter than this, seconds"""
TRACE_RTT_S = 0.060
"""base RTT of the Mahimahi trace scenarios: the synthetic cellular scenario's"""
TRACE_BUFFER_BDP = 2.0
"""buffer of the trace scenarios in BDPs of the trace's mean rate (cellular
queues are deep; the same as the synthetic cellular scenario)"""
TRACE_DURATION_S = 30.0
"""simulated seconds per trace run (full mode)"""
REPRESENTATIVE_SCENARIOS: tuple[str, ...] = ("step-change", "cellular-synthetic", "wired-clean")
"""first of these present is plotted over time (cwnd, queue): a capacity step
shows how each controller adapts"""
SEED_STRIDE = 100
QUICK_WINDOWS = 2
"""evenly spaced held-out trace windows per trace in quick mode (full: `WindowConfig`'s 3)"""
QUICK_WINDOW_S = 15.0
"""held-out trace window length in quick mode, seconds (full: 30)"""
QUEUE_WIN_MIN_THROUGHPUT = 0.9
"""share of a scenario's best throughput a controller needs to win on queueing delay"""

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, label)``, called after each run"""


# ---------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    """What a scenario of the comparison is."""

    name: str
    kind: str
    """"builtin" or "trace\""""
    held_out: bool
    """True for `HELDOUT_SCENARIOS` and held-out traces (never used for training)"""
    link_mbps: float
    """mean link capacity over the run, Mbit/s"""
    base_rtt_ms: float
    """first flow's round-trip propagation delay, ms"""
    buffer_kb: float
    """bottleneck buffer, kB"""
    loss: str
    """random loss model ("none", "bernoulli p=...", ...)"""
    n_flows: int
    duration_s: float
    seeds: tuple[int, ...]
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "held_out": self.held_out,
            "link_mbps": self.link_mbps,
            "base_rtt_ms": self.base_rtt_ms,
            "buffer_kb": self.buffer_kb,
            "loss": self.loss,
            "n_flows": self.n_flows,
            "duration_s": self.duration_s,
            "seeds": list(self.seeds),
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """One controller on one scenario with one seed."""

    scenario: str
    controller: str
    seed: int
    throughput_mbps: float
    utilisation: float
    delay_p95_ms: float
    queue_delay_p95_ms: float
    loss_rate: float
    jain_index: float
    reward: float
    wall_s: float
    """wall-clock seconds the run took"""

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_num(getattr(self, k)) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class CongestionRow:
    """Mean metrics of one controller on one scenario (over its run seeds)."""

    scenario: str
    controller: str
    held_out: bool
    n_runs: int
    throughput_mbps: float
    utilisation: float
    delay_p95_ms: float
    queue_delay_p95_ms: float
    loss_rate: float
    jain_index: float
    reward: float

    @property
    def power(self) -> float:
        """throughput (Mbit/s) per second of p95 one-way delay."""
        if not self.delay_p95_ms > 0.0:
            return 0.0
        return self.throughput_mbps / (self.delay_p95_ms / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        d = {k: _json_num(getattr(self, k)) for k in self.__slots__}
        d["power"] = _json_num(self.power)
        return d


@dataclass(frozen=True, slots=True)
class FlowTrace:
    """Time series of one flow in the representative scenario (float64 arrays)."""

    controller: str
    flow: int
    time_s: np.ndarray
    cwnd_bytes: np.ndarray
    queue_bytes: np.ndarray
    throughput_bps: np.ndarray


@dataclass(frozen=True, slots=True)
class CongestionEvalResult:
    """Everything `run` measured; `to_dict` is JSON-able, `markdown` the report section."""

    seed: int
    quick: bool
    controllers: tuple[str, ...]
    scenarios: tuple[ScenarioInfo, ...]
    rows: tuple[CongestionRow, ...]
    runs: tuple[RunMetrics, ...]
    representative: str | None
    """scenario whose time series are kept (None: no series)"""
    traces: tuple[FlowTrace, ...] = ()
    capacity: tuple[np.ndarray, np.ndarray] | None = None
    """(time_s, capacity_bps) of the representative scenario's link, when deterministic"""
    wall_s: float = 0.0
    notes: tuple[str, ...] = field(default=())
    heldout: WindowEvalResult | None = None
    """the held-out trace windows (None without the trace folder or with ``scenarios``)"""

    # -- lookups ---------------------------------------------------------------
    def row(self, scenario: str, controller: str) -> CongestionRow:
        for r in self.rows:
            if r.scenario == scenario and r.controller == controller:
                return r
        raise KeyError(f"no result for controller {controller!r} on scenario {scenario!r}")

    def scenario_rows(self, scenario: str) -> list[CongestionRow]:
        return [r for r in self.rows if r.scenario == scenario]

    def winners(self) -> dict[str, dict[str, str]]:
        """Per scenario, the controller that wins each criterion.

        ``throughput`` (highest), ``queue_delay`` (lowest p95 queueing delay
        among the controllers reaching `QUEUE_WIN_MIN_THROUGHPUT` of the best throughput),
        ``power`` (highest throughput / p95 delay), ``reward`` (highest mean
        congestion reward). Ties go to the earlier controller in `controllers`.
        """
        out: dict[str, dict[str, str]] = {}
        order = {c: i for i, c in enumerate(self.controllers)}
        for sc in self.scenarios:
            rows = sorted(self.scenario_rows(sc.name), key=lambda r: order.get(r.controller, 99))
            if not rows:
                continue
            best_thr = max(r.throughput_mbps for r in rows)
            # a controller that starves its flow trivially has no queue: it only wins
            # on delay if it also keeps most of the throughput
            fast = [r for r in rows if r.throughput_mbps >= QUEUE_WIN_MIN_THROUGHPUT * best_thr]
            out[sc.name] = {
                "throughput": max(rows, key=lambda r: r.throughput_mbps).controller,
                "queue_delay": min(fast, key=lambda r: _nan_big(r.queue_delay_p95_ms)).controller,
                "power": max(rows, key=lambda r: r.power).controller,
                "reward": max(rows, key=lambda r: r.reward).controller,
            }
        return out

    def win_counts(
        self, criterion: str = "power", *, held_out: bool | None = None
    ) -> dict[str, int]:
        """How many scenarios each controller wins on ``criterion`` (optionally one split)."""
        held = {s.name: s.held_out for s in self.scenarios}
        counts = dict.fromkeys(self.controllers, 0)
        for sc, w in self.winners().items():
            if held_out is None or held[sc] == held_out:
                counts[w[criterion]] = counts.get(w[criterion], 0) + 1
        return counts

    def headline(self) -> list[str]:
        """Plain sentences: who wins where."""
        if not self.rows:
            return ["No congestion-control runs."]
        n = len(self.scenarios)
        lines = []
        for crit, label in (
            ("power", "best throughput/delay trade-off (power)"),
            ("throughput", "highest throughput"),
            (
                "queue_delay",
                (
                    "lowest p95 queueing delay at >= "
                    f"{QUEUE_WIN_MIN_THROUGHPUT:.0%} of the best throughput"
                ),
            ),
        ):
            counts = self.win_counts(crit)
            best = max(counts.values())
            leaders = [c for c, k in counts.items() if k == best]
            rest = ", ".join(f"{c} {k}" for c, k in counts.items() if c not in leaders)
            lines.append(
                f"Congestion: {' and '.join(leaders)} {'has' if len(leaders) == 1 else 'have'} "
                f"the {label} on {best} of {n} scenarios" + (f" ({rest})." if rest else ".")
            )
        held = [s for s in self.scenarios if s.held_out]
        if held:
            counts = self.win_counts("power", held_out=True)
            parts = ", ".join(f"{c} {k}" for c, k in counts.items() if k)
            lines.append(f"Congestion, held-out scenarios only ({len(held)}): power wins {parts}.")
        if self.heldout is not None:
            lines += self.heldout.headline()
        return lines

    # -- output ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "quick": self.quick,
            "controllers": list(self.controllers),
            "scenarios": [s.to_dict() for s in self.scenarios],
            "rows": [r.to_dict() for r in self.rows],
            "runs": [r.to_dict() for r in self.runs],
            "winners": self.winners(),
            "representative": self.representative,
            "wall_s": self.wall_s,
            "notes": list(self.notes),
            "heldout_windows": None if self.heldout is None else self.heldout.to_dict(),
        }

    def markdown(self) -> str:
        lines: list[str] = []
        lines.append(
            f"{len(self.controllers)} controllers ({', '.join(self.controllers)}) on "
            f"{len(self.scenarios)} scenarios ({sum(s.held_out for s in self.scenarios)} held "
            f"out), {len(self.runs)} runs, {'quick' if self.quick else 'full'} mode, "
            f"{self.wall_s:.1f} s wall time."
        )
        lines.append("")
        for h in self.headline():
            lines.append(f"- {h}")
        lines.append("")
        lines.append("Scenarios:")
        lines.append("")
        lines.append(
            "| scenario | split | link (Mbit/s) | base RTT (ms) | buffer (kB) | "
            "random loss | flows | duration (s) | runs |"
        )
        lines.append("|---|---|---:|---:|---:|---|---:|---:|---:|")
        for s in self.scenarios:
            lines.append(
                f"| {s.name} | {'held out' if s.held_out else 'train'} | {s.link_mbps:.1f} | "
                f"{s.base_rtt_ms:.0f} | {s.buffer_kb:.0f} | {s.loss} | {s.n_flows} | "
                f"{s.duration_s:g} | {len(s.seeds)} |"
            )
        lines.append("")
        lines.append("Winners per scenario (power = throughput / p95 one-way delay):")
        lines.append("")
        lines.append(
            "| scenario | split | best power | most throughput | lowest p95 queueing "
            f"delay (>= {QUEUE_WIN_MIN_THROUGHPUT:.0%} of best throughput) | "
            "best reward |"
        )
        lines.append("|---|---|---|---|---|---|")
        held = {s.name: s.held_out for s in self.scenarios}
        for sc, w in self.winners().items():
            lines.append(
                f"| {sc} | {'held out' if held[sc] else 'train'} | {w['power']} | "
                f"{w['throughput']} | {w['queue_delay']} | {w['reward']} |"
            )
        lines.append("")
        lines.append("All results (mean over the scenario's runs; **bold**: best power):")
        lines.append("")
        lines.append(
            "| scenario | controller | throughput (Mbit/s) | utilisation | "
            "p95 delay (ms) | p95 queueing (ms) | loss | Jain | reward |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        winners = self.winners()
        for s in self.scenarios:
            for r in self.scenario_rows(s.name):
                name = r.controller
                if winners.get(s.name, {}).get("power") == name:
                    name = f"**{name}**"
                lines.append(
                    f"| {s.name} | {name} | {r.throughput_mbps:.2f} | "
                    f"{r.utilisation * 100:.1f} % | {_fmt(r.delay_p95_ms, 1)} | "
                    f"{_fmt(r.queue_delay_p95_ms, 1)} | {r.loss_rate * 100:.2f} % | "
                    f"{r.jain_index:.3f} | {r.reward:.3f} |"
                )
        if self.notes:
            lines.append("")
            for note in self.notes:
                lines.append(f"- {note}")
        if self.heldout is not None:
            lines += [
                "",
                "### Held-out Mahimahi trace windows, ratios to CUBIC",
                "",
                self.heldout.markdown(),
            ]
        return "\n".join(lines)


def _nan_big(x: float) -> float:
    return x if math.isfinite(x) else math.inf


# ---------------------------------------------------------------- controllers

# ---------------------------------------------------------------- scenarios


def suite(*, include_traces: bool = True) -> list[tuple[Any, bool, str]]:
    """``(Scenario, held_out, kind)`` of the comparison: the built-in suite, then the
    held-out Mahimahi traces (when the trace folder exists)."""
    from oxidize_ml.evaluation.splits import HELDOUT_SCENARIOS, HELDOUT_TRACES, trace_paths
    from oxidize_ml.sim.links import BufferSpec
    from oxidize_ml.sim.scenarios import get_scenario, list_scenarios, scenario_from_trace

    out: list[tuple[Any, bool, str]] = [
        (get_scenario(n), n in HELDOUT_SCENARIOS, "builtin") for n in list_scenarios()
    ]
    if include_traces:
        for p in trace_paths(HELDOUT_TRACES):
            sc = scenario_from_trace(
                p,
                rtt_s=TRACE_RTT_S,
                buffer=BufferSpec(bdp=TRACE_BUFFER_BDP),
                duration_s=TRACE_DURATION_S,
            )
            out.append((sc, True, "trace"))
    return out


def _loss_label(loss: Any) -> str:
    if loss is None:
        return "none"
    d = loss.to_dict()
    model = d.pop("model", type(loss).__name__)
    return model + " " + ", ".join(f"{k}={v:g}" for k, v in d.items())


# ---------------------------------------------------------------- running


class _RewardMeter:
    """Mean `congestion_reward` per flow, fed by the simulator's interval hook."""

    __slots__ = ("_encoders", "n", "total")

    def __init__(self, n_flows: int) -> None:
        from oxidize_ml.congestion.state import CongestionStateEncoder

        self._encoders = [CongestionStateEncoder() for _ in range(n_flows)]
        self.total = 0.0
        self.n = 0

    def __call__(self, now: float, flow_index: int, features: Any, thr: float, cwnd: int) -> None:
        _, reward = self._encoders[flow_index].update(features, thr, now=now)
        self.total += reward
        self.n += 1

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0


def _queue_delay_p95_s(result: Any, scenario: Any) -> float:
    parts = [f.delays_s - scenario.flows[f.index].delay_s for f in result.flows if f.delays_s.size]
    if not parts:
        return math.nan
    return float(np.percentile(np.concatenate(parts), 95.0))


def run_one(
    scenario: Any,
    name: str,
    factory: ControllerFactory,
    *,
    seed: int,
    duration_s: float | None = None,
    record_series: bool = False,
) -> tuple[RunMetrics, Any]:
    """One simulation; returns the metrics and the `RunResult`."""
    from oxidize_ml.sim.runner import simulate

    meter = _RewardMeter(len(scenario.flows))
    t0 = time.perf_counter()
    res = simulate(
        scenario,
        factory,
        seed=seed,
        duration_s=duration_s,
        record_series=record_series,
        on_interval=meter,
    )
    wall = time.perf_counter() - t0
    m = RunMetrics(
        scenario=scenario.name,
        controller=name,
        seed=seed,
        throughput_mbps=res.throughput_bps / 1e6,
        utilisation=res.utilisation,
        delay_p95_ms=res.delay_p95_s * 1000.0,
        queue_delay_p95_ms=_queue_delay_p95_s(res, scenario) * 1000.0,
        loss_rate=res.loss_rate,
        jain_index=res.jain_index,
        reward=meter.mean,
        wall_s=wall,
    )
    return m, res


def _mean(xs: list[float]) -> float:
    finite = [x for x in xs if math.isfinite(x)]
    return float(np.mean(finite)) if finite else math.nan


def _aggregate(runs: list[RunMetrics], held_out: bool) -> CongestionRow:
    r0 = runs[0]
    return CongestionRow(
        scenario=r0.scenario,
        controller=r0.controller,
        held_out=held_out,
        n_runs=len(runs),
        throughput_mbps=_mean([r.throughput_mbps for r in runs]),
        utilisation=_mean([r.utilisation for r in runs]),
        delay_p95_ms=_mean([r.delay_p95_ms for r in runs]),
        queue_delay_p95_ms=_mean([r.queue_delay_p95_ms for r in runs]),
        loss_rate=_mean([r.loss_rate for r in runs]),
        jain_index=_mean([r.jain_index for r in runs]),
        reward=_mean([r.reward for r in runs]),
    )


def _capacity_series(scenario: Any, duration_s: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Link capacity in 100-ms bins for deterministic links (random ones depend on the seed)."""
    if scenario.link.is_random and scenario.seed is None:
        return None
    rng = np.random.default_rng(0 if scenario.seed is None else scenario.seed)
    sched = scenario.link.schedule(duration_s, rng)
    bin_s = 0.1
    edges = np.arange(0.0, duration_s + 1e-9, bin_s)
    counts = np.array([sched.count_until(float(t)) for t in edges])
    rate = np.diff(counts) * BITS_PER_OPPORTUNITY / bin_s
    return edges[1:], rate


def run(
    *,
    seed: int = 0,
    quick: bool = False,
    controllers: Sequence[str | tuple[str, ControllerFactory]] | None = None,
    scenarios: Sequence[str] | None = None,
    registry: ControllerRegistry | None = None,
    extra_controllers: Sequence[tuple[str, ControllerFactory]] = (),
    include_traces: bool = True,
    duration_s: float | None = None,
    n_seeds: int | None = None,
    progress: ProgressFn | None = None,
    windows: int | None = None,
    window_config: WindowConfig | None = None,
    heldout_traces: Sequence[str | Path] | None = None,
) -> CongestionEvalResult:
    """Run every controller on every scenario; see the module docstring.

    Parameters
    ----------
    seed
        Base of the run seeds (``EVAL_SEED_BASE + 100 * seed + i``).
    quick
        Halved durations and one run per scenario.
    controllers
        Registry names and/or ``(name, factory)`` pairs; None: every name in
        the registry (plus ``engine`` when trained models are shipped).
    scenarios
        Names to keep (built-in names or ``trace-<file>``); None: all.
    registry
        Where names are looked up (default `default_registry()`).
    extra_controllers
        ``(name, factory)`` pairs run in addition to ``controllers`` (or the
        default set), e.g. ``[("dqn", dqn_factory(model_dir))]``.
    include_traces
        Add the held-out trace windows when the trace folder exists (only when
        ``scenarios`` is None: naming scenarios runs those alone).
    duration_s
        Override every scenario's duration and the trace windows' length
        (simulated seconds).
    n_seeds
        Override the number of runs per random scenario.
    progress
        ``progress(done, total, label)`` after each run.
    windows
        Evenly spaced windows per held-out trace (default 3, quick 2).
    window_config
        Everything about the trace windows (overrides the defaults; ``windows``
        and ``duration_s`` still apply on top).
    heldout_traces
        Trace files to window instead of the split's held-out traces.
    """
    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE

    t_start = time.perf_counter()
    ctrls = resolve_controllers(controllers, registry, extra_controllers)
    # the held-out traces run as windows (congestion_windows), not as t = 0 scenarios
    all_sc = suite(include_traces=False)
    if scenarios is not None:
        known = [s.name for s, _, _ in all_sc]
        unknown = [n for n in scenarios if n not in known]
        if unknown:
            raise ValueError(f"unknown scenarios {unknown}; choose from {known}")
        all_sc = [x for x in all_sc if x[0].name in scenarios]
    if duration_s is not None and not duration_s > 0.0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    seeds_random = n_seeds if n_seeds is not None else (1 if quick else N_SEEDS_FULL)
    if seeds_random < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds!r}")
    base = EVAL_SEED_BASE + SEED_STRIDE * seed
    plan: list[tuple[Any, bool, str, float, tuple[int, ...]]] = []
    for sc, held, kind in all_sc:
        dur = (
            duration_s
            if duration_s is not None
            else (
                max(QUICK_MIN_DURATION_S, sc.duration_s * QUICK_DURATION_FACTOR)
                if quick
                else sc.duration_s
            )
        )
        dur = min(dur, sc.duration_s) if duration_s is None else dur
        k = seeds_random if sc.is_random else 1
        plan.append((sc, held, kind, dur, tuple(base + i for i in range(k))))
    names = [s.name for s, *_ in plan]
    rep = next((n for n in REPRESENTATIVE_SCENARIOS if n in names), names[0] if names else None)

    window_plan = None
    if include_traces and scenarios is None:
        from oxidize_ml.evaluation.splits import HELDOUT_TRACES, trace_paths

        files = list(heldout_traces) if heldout_traces is not None else trace_paths(HELDOUT_TRACES)
        if files:
            wcfg = window_config if window_config is not None else WindowConfig()
            if quick and window_config is None:
                wcfg = replace(wcfg, n_windows=QUICK_WINDOWS, duration_s=QUICK_WINDOW_S)
            if windows is not None:
                wcfg = replace(wcfg, n_windows=windows)
            if duration_s is not None:
                wcfg = replace(wcfg, duration_s=duration_s)
            window_plan = plan_run(files, seed=seed, config=wcfg, controllers=ctrls)

    n_builtin = sum(len(p[4]) for p in plan) * len(ctrls)
    total = n_builtin + (window_plan.total_runs if window_plan is not None else 0)
    done = 0
    infos: list[ScenarioInfo] = []
    rows: list[CongestionRow] = []
    all_runs: list[RunMetrics] = []
    traces: list[FlowTrace] = []
    capacity = None
    for sc, held, kind, dur, seeds in plan:
        if sc.name == rep:
            capacity = _capacity_series(sc, dur)
        link_rates: list[float] = []
        buffers: list[int] = []
        for name, factory in ctrls:
            runs = []
            for i, s in enumerate(seeds):
                keep = sc.name == rep and i == 0
                m, res = run_one(sc, name, factory, seed=s, duration_s=dur, record_series=keep)
                runs.append(m)
                if res.duration_s > 0.0:
                    # the capacity this run actually had (a trace's first seconds, one
                    # realisation of a random link), not the long-run mean of the model
                    link_rates.append(
                        res.link_opportunities * BITS_PER_OPPORTUNITY / res.duration_s
                    )
                buffers.append(res.buffer_bytes)
                if keep:
                    for f in res.flows:
                        if f.series is not None:
                            traces.append(
                                FlowTrace(
                                    controller=name,
                                    flow=f.index,
                                    time_s=f.series.time_s,
                                    cwnd_bytes=f.series.cwnd_bytes,
                                    queue_bytes=f.series.queue_bytes,
                                    throughput_bps=f.series.throughput_bps,
                                )
                            )
                done += 1
                if progress is not None:
                    progress(done, total, f"{sc.name} / {name}")
            all_runs.extend(runs)
            rows.append(_aggregate(runs, held))
        infos.append(
            ScenarioInfo(
                name=sc.name,
                kind=kind,
                held_out=held,
                link_mbps=_mean(link_rates) / 1e6 if link_rates else math.nan,
                base_rtt_ms=sc.flows[0].base_rtt_s * 1000.0,
                buffer_kb=_mean([float(b) for b in buffers]) / 1000.0 if buffers else math.nan,
                loss=_loss_label(sc.loss),
                n_flows=len(sc.flows),
                duration_s=dur,
                seeds=seeds,
                description=sc.description,
            )
        )
    notes = []
    heldout = None
    if window_plan is not None:

        def tick(d: int, _t: int, label: str) -> None:
            if progress is not None:
                progress(n_builtin + d, total, label)

        heldout = run_windows(window_plan, progress=tick)
    elif include_traces and scenarios is None:
        notes.append(
            "The Mahimahi trace folder was not found: held-out traces were skipped "
            "(set OXIDIZE_TRACE_DIR)."
        )
    return CongestionEvalResult(
        seed=seed,
        quick=quick,
        controllers=tuple(n for n, _ in ctrls),
        scenarios=tuple(infos),
        rows=tuple(rows),
        runs=tuple(all_runs),
        representative=rep,
        traces=tuple(traces),
        capacity=capacity,
        wall_s=time.perf_counter() - t_start,
        notes=tuple(notes),
        heldout=heldout,
    )


# ---------------------------------------------------------------- plots


def plot(result: CongestionEvalResult, out_dir: str | Path) -> list[Path]:
    """Pantheon throughput-delay panels per scenario, cwnd/queue over time, and the
    held-out windows' ratios to CUBIC.

    Returns the PNG paths written (``congestion-pantheon.png``,
    ``congestion-timeseries.png``, ``congestion-windows.png`` with trace windows).
    """
    from oxidize_ml.evaluation import plots

    out = Path(out_dir)
    paths: list[Path] = []
    if result.scenarios:
        fig, axes = plots.subplot_grid(len(result.scenarios), ncols=4)
        handles: dict[str, Any] = {}
        for ax, sc in zip(axes, result.scenarios, strict=True):
            for i, ctrl in enumerate(result.controllers):
                style = plots.series_style(ctrl, i)
                pts = [r for r in result.runs if r.scenario == sc.name and r.controller == ctrl]
                xs = [r.delay_p95_ms for r in pts if math.isfinite(r.delay_p95_ms)]
                ys = [r.throughput_mbps for r in pts if math.isfinite(r.delay_p95_ms)]
                if len(xs) > 1:  # every run small, the mean large (Pantheon's style)
                    ax.scatter(
                        xs,
                        ys,
                        s=12,
                        alpha=0.35,
                        color=style["color"],
                        marker=style["marker"],
                        linewidths=0,
                    )
                row = result.row(sc.name, ctrl)
                if math.isfinite(row.delay_p95_ms):
                    h = ax.scatter(
                        [row.delay_p95_ms],
                        [row.throughput_mbps],
                        s=70,
                        color=style["color"],
                        marker=style["marker"],
                        edgecolors="black",
                        linewidths=0.6,
                        label=ctrl,
                    )
                    handles.setdefault(ctrl, h)
            delays = [r.delay_p95_ms for r in result.runs if r.scenario == sc.name]
            plots.pantheon_axes(
                ax, title=f"{sc.name}{' (held out)' if sc.held_out else ''}", delays_ms=delays
            )
            ax.axhline(sc.link_mbps, color="grey", lw=0.8, ls=":")
            ax.set_ylim(bottom=0.0, top=max(sc.link_mbps * 1.1, ax.get_ylim()[1]))
        plots.legend_below(fig, list(handles.values()), list(handles))
        fig.suptitle(
            "Throughput vs 95th-percentile one-way delay (up and right is better; "
            "dotted: mean link capacity)"
        )
        plots.tidy(fig, top_in=0.8, bottom_in=0.95, hspace=0.6)
        paths.append(plots.save_figure(fig, out / "congestion-pantheon.png"))
    if result.traces:
        fig, axes = plots.subplot_grid(3, ncols=1, panel_size=(9.0, 2.6), sharex=True)
        for i, ctrl in enumerate(result.controllers):
            style = plots.series_style(ctrl, i)
            for tr in (t for t in result.traces if t.controller == ctrl):
                label = ctrl if tr.flow == 0 else None
                ls = "-" if tr.flow == 0 else "--"
                axes[0].plot(
                    tr.time_s,
                    tr.cwnd_bytes / 1500.0,
                    color=style["color"],
                    lw=1.0,
                    ls=ls,
                    label=label,
                )
                axes[1].plot(
                    tr.time_s, tr.queue_bytes / 1000.0, color=style["color"], lw=1.0, ls=ls
                )
                axes[2].plot(
                    tr.time_s, smooth(tr.throughput_bps) / 1e6, color=style["color"], lw=1.0, ls=ls
                )
        if result.capacity is not None:
            axes[2].plot(
                result.capacity[0],
                result.capacity[1] / 1e6,
                color="grey",
                lw=1.2,
                ls=":",
                label="link capacity",
            )
            axes[2].legend(loc="upper right", frameon=False, fontsize=8)
        axes[0].set_ylabel("cwnd (packets)")
        axes[1].set_ylabel("queue (kB)")
        axes[2].set_ylabel("goodput (Mbit/s,\n100 ms mean)")
        axes[2].set_xlabel("time (s)")
        for ax in axes:
            ax.grid(True, alpha=0.3)
        axes[0].legend(loc="upper right", frameon=False, fontsize=8, ncols=len(result.controllers))
        fig.suptitle(f"{result.representative}: window, bottleneck queue and goodput over time")
        plots.tidy(fig, left_in=0.9, bottom_in=0.6, hspace=0.15)
        paths.append(plots.save_figure(fig, out / "congestion-timeseries.png"))
    if result.heldout is not None:
        paths += plot_windows(result.heldout, out)
    return paths


def smooth(x: np.ndarray, k: int = 10) -> np.ndarray:
    """Moving average over ``k`` samples (10 decision intervals = 100 ms)."""
    if x.size < k:
        return x
    return np.convolve(x, np.ones(k) / k, mode="same")


def controller_names(registry: ControllerRegistry | None = None) -> list[str]:
    """Names `run` uses by default (for CLIs and docs)."""
    return [n for n, _ in resolve_controllers(None, registry)]


def extra_registry(factories: Mapping[str, ControllerFactory]) -> ControllerRegistry:
    """`default_registry()` plus ``factories`` (e.g. ``{"dqn": make_dqn}``)."""
    reg = default_registry()
    for name, f in factories.items():
        reg.register(name, f, replace=True)
    return reg
