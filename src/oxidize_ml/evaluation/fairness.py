"""Fairness of each congestion controller: two flows of itself, and one against CUBIC.

Issue 10 asks for two flows of the controller (Jain >= 0.9) and one against
CUBIC. A controller that fills the link alone can still starve a second flow
of its own kind (an incumbent that never yields) or take far more than half
from the loss-based CUBIC flows it shares real bottlenecks with (or far less:
a delay-based controller backs off while CUBIC fills the buffer). Both are
measured here on the simulator's shared drop-tail bottleneck.

Cases and scenarios
-------------------
A **case** is a link at one base RTT:

- constant-rate links of ``rates_mbps`` (12 and 48 Mbit/s by default), and
- when Mahimahi traces are given (the project's held-out traces with
  ``--heldout``), ``n_windows`` windows of each trace starting at
  ``k P / n_windows`` of its period ``P`` (0 and 1/2 by default; chosen by
  `oxidize_ml.evaluation.congestion_windows.plan_windows`, so the windows
  are those of the held-out congestion evaluation),

each at every RTT of ``rtts_ms``, with a drop-tail buffer of ``buffer_bdp``
times the link's mean rate x the RTT. Both flows have the same RTT. Every
case runs for ``duration_s``, in these start modes:

- **intra** (two flows of the controller): ``together`` (both start at 0)
  and ``staggered`` (the second starts at ``stagger_s``);
- **inter** (the controller and one CUBIC flow): ``together``, ``first``
  (the controller starts at 0, CUBIC joins at ``stagger_s``) and ``joins``
  (CUBIC starts at 0, the controller joins at ``stagger_s``): which flow is
  established matters, so both orders run.

``stagger_s = 0`` keeps only ``together``.

Per-scenario metrics (over the period both flows are active)
------------------------------------------------------------
Measured from ``t0`` (the later flow's start; 0 when together) to the end
``T``, by stopping the simulation at ``t0`` and reading its counters there
(`Simulation.advance` is exact: a run stopped at ``t0`` ends identical to
one that is not), so a staggered incumbent's solo seconds do not count:

- **goodput_mbps** per flow: bytes acknowledged in ``(t0, T]`` x 8 / (T - t0).
- **jain**: Jain's index of the two goodputs (`oxidize_ml.sim.results.jain_index`);
  1 = equal shares, 0.5 = one flow takes everything. nan when neither flow
  delivered anything (no share to judge), and such scenarios are left out of
  the aggregates.
- **share** (inter only): the controller's goodput / both flows' (0.5 = fair).
- **utilisation**: bytes delivered to the receivers in ``(t0, T]`` / the
  link's delivery opportunities in that period x 1500.
- **queue_delay_p95_ms**: 95th percentile, over both flows' packets acked in
  ``(t0, T]``, of one-way delay minus the propagation delay (nan when none).

Aggregates (per controller, over the scenarios of one kind)
-----------------------------------------------------------
- intra: mean Jain with a percentile-bootstrap 95 % interval (cases
  resampled with replacement, each with all its start modes: they share the
  link, so they are not independent draws), the share of scenarios with Jain >=
  ``jain_threshold`` (0.9, issue 10's bound), the lowest Jain, mean
  utilisation and mean p95 queueing delay;
- inter: mean share vs CUBIC with its 95 % interval, the lowest and highest
  share, mean Jain with its interval and the share of scenarios with Jain >=
  ``jain_threshold``.

Each is given over all scenarios and per link kind (``constant``, ``trace``).
CUBIC against CUBIC is its own intra run (same controllers, same seed), so
it is run once: its share vs CUBIC is a check of the method (about 0.5 on
average; one run can favour either flow).

Seeds
-----
Case ``i`` runs with seed ``EVAL_SEED_BASE + 100 * seed + i`` in every start
mode and for every controller, so controllers are compared on identical links;
the bootstrap draws from ``numpy.random.default_rng(seed)`` (one index matrix
of cases per link group, shared by every controller and kind of pair). The same seed gives the same
result, byte for byte in `FairnessResult.to_dict`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.evaluation.bootstrap import DEFAULT_ROUNDS, bootstrap_indices
from oxidize_ml.evaluation.congestion_controllers import resolve_controllers
from oxidize_ml.evaluation.formatting import fixed as _fmt
from oxidize_ml.evaluation.formatting import interval as _ci
from oxidize_ml.evaluation.formatting import json_number as _num
from oxidize_ml.evaluation.formatting import percent
from oxidize_ml.sim.controllers.registry import ControllerFactory, ControllerRegistry
from oxidize_ml.sim.traces import BITS_PER_OPPORTUNITY, MTU_BYTES

_pct = functools.partial(percent, digits=0)  # the tables' format

REFERENCE = "cubic"
"""the controller every inter-protocol pair shares the link with"""
SEED_STRIDE = 100
MAX_DURATION_S = 3600.0
"""longest run accepted, seconds"""
MAX_RATES = 10
MAX_RTTS = 10
MAX_WINDOWS = 10
MAX_TRACES = 100
MAX_PACKETS_PER_RUN = 5_000_000
"""most delivery opportunities one run may offer (rate x duration): every delivered
packet's delay is kept exactly (8 bytes each) to split the run at the later start"""
INTRA_STARTS = ("together", "staggered")
INTER_STARTS = ("together", "first", "joins")
"""inter start modes: both at 0; the controller first, CUBIC joins; CUBIC first, the
controller joins"""
LINK_KINDS = ("constant", "trace")

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, label)``, called after each simulated run"""


# ---------------------------------------------------------------- configuration


def _positive_tuple(name: str, values: Sequence[float], hi: float, most: int) -> tuple[float, ...]:
    vals = tuple(values)
    if len(vals) > most:
        raise ValueError(f"{name} takes at most {most} values, got {len(vals)}")
    for i, v in enumerate(vals):
        if check_number(f"{name}[{i}]", v, hi=hi) <= 0.0:
            raise ValueError(f"{name}[{i}] must be > 0, got {v!r}")
    if len(set(vals)) != len(vals):
        raise ValueError(f"{name} has duplicates: {list(vals)}")
    return tuple(float(v) for v in vals)


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    """What the fairness evaluation runs (module docstring)."""

    rates_mbps: tuple[float, ...] = (12.0, 48.0)
    """constant-rate links, Mbit/s (may be empty when traces are given)"""
    rtts_ms: tuple[float, ...] = (40.0, 100.0)
    """base round-trip times, ms (both flows of a pair share it)"""
    duration_s: float = 30.0
    """simulated seconds per run"""
    stagger_s: float = 5.0
    """start of the later flow in the staggered modes, seconds (0: together only)"""
    buffer_bdp: float = 2.0
    """drop-tail buffer in BDPs of the link's mean rate x the RTT"""
    n_windows: int = 2
    """windows per trace, starting at k / n_windows of its period"""
    jain_threshold: float = 0.9
    """a scenario with Jain's index at or above this is fair (issue 10)"""
    bootstrap_rounds: int = DEFAULT_ROUNDS
    """bootstrap replicates of the 95 % intervals"""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "rates_mbps", _positive_tuple("rates_mbps", self.rates_mbps, 1e5, MAX_RATES)
        )
        rtts = _positive_tuple("rtts_ms", self.rtts_ms, 10_000.0, MAX_RTTS)
        if not rtts:
            raise ValueError("rtts_ms needs at least one RTT")
        object.__setattr__(self, "rtts_ms", rtts)
        if check_number("duration_s", self.duration_s, hi=MAX_DURATION_S) <= 0.0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s!r}")
        check_number("stagger_s", self.stagger_s, hi=MAX_DURATION_S)
        if self.stagger_s >= self.duration_s:
            raise ValueError(
                f"stagger_s must be < duration_s ({self.duration_s:g} s): both flows need "
                f"a common period, got {self.stagger_s!r}"
            )
        if check_number("buffer_bdp", self.buffer_bdp, hi=100.0) <= 0.0:
            raise ValueError(f"buffer_bdp must be > 0, got {self.buffer_bdp!r}")
        check_int("n_windows", self.n_windows, lo=1, hi=MAX_WINDOWS)
        t = check_number("jain_threshold", self.jain_threshold, hi=1.0)
        if t <= 0.5:
            # two flows' index is always >= 0.5: a lower bound would call every scenario fair
            raise ValueError(f"jain_threshold must be > 0.5 (two flows), got {t!r}")
        check_int("bootstrap_rounds", self.bootstrap_rounds, lo=100, hi=100_000)

    @property
    def intra_starts(self) -> tuple[str, ...]:
        return INTRA_STARTS if self.stagger_s > 0.0 else INTRA_STARTS[:1]

    @property
    def inter_starts(self) -> tuple[str, ...]:
        return INTER_STARTS if self.stagger_s > 0.0 else INTER_STARTS[:1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rates_mbps"] = list(self.rates_mbps)
        d["rtts_ms"] = list(self.rtts_ms)
        return d


# ---------------------------------------------------------------- cases and runs


@dataclass(frozen=True, slots=True)
class Case:
    """A link at one RTT: what every controller and start mode runs on."""

    label: str
    kind: str
    """"constant" or "trace\""""
    rtt_ms: float
    capacity_mbps: float
    """mean capacity over the run, Mbit/s"""
    seed: int
    rate_mbps: float | None = None
    """the constant link's rate (None for a trace)"""
    trace: str | None = None
    """label of the trace (its file name)"""
    path: str | None = None
    start_s: float = 0.0
    """where the run starts in the trace, seconds"""
    outage: bool = False
    """the trace window holds a gap of >= 500 ms between delivery opportunities"""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class PairRun:
    """Two flows on one case, measured over the period both are active."""

    case: int
    """index into `FairnessResult.cases`"""
    controller: str
    """the controller evaluated"""
    kind: str
    """"intra" (two flows of it) or "inter" (it and CUBIC)"""
    start: str
    """start mode (`INTRA_STARTS`, `INTER_STARTS`)"""
    flows: tuple[str, str]
    """controller of flow 0 and flow 1 (flow 1 is the later one when staggered)"""
    starts_s: tuple[float, float]
    seed: int
    measured_s: float
    """length of the period both flows were active, seconds"""
    goodput_mbps: tuple[float, float]
    jain: float
    share: float
    """inter: the controller's share of both flows' goodput (0.5 = fair); intra: flow 0's"""
    utilisation: float
    queue_delay_p95_ms: float

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in self.__slots__}
        for k in ("flows", "starts_s", "goodput_mbps"):
            d[k] = list(d[k])
        return {k: _num(v) for k, v in d.items()}


@dataclass(frozen=True, slots=True)
class Stat:
    """Mean of one metric over scenarios, with its percentile-bootstrap 95 % interval."""

    mean: float
    ci: tuple[float, float]
    n: int
    """scenarios with a defined value"""
    lowest: float
    highest: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": _num(self.mean),
            "ci": [_num(x) for x in self.ci],
            "n": self.n,
            "min": _num(self.lowest),
            "max": _num(self.highest),
        }


@dataclass(frozen=True, slots=True)
class FairnessAggregate:
    """One controller over the scenarios of one link kind ("all", "constant", "trace")."""

    controller: str
    links: str
    intra_jain: Stat
    intra_fair: float
    """share of intra scenarios with Jain >= jain_threshold"""
    intra_utilisation: float
    intra_queue_delay_p95_ms: float
    inter_share: Stat
    """the controller's share vs CUBIC"""
    inter_jain: Stat
    inter_fair: float

    def summary(self) -> dict[str, Any]:
        return {
            "intra_jain_mean": _num(self.intra_jain.mean),
            "intra_jain_ci": [_num(x) for x in self.intra_jain.ci],
            "intra_jain_min": _num(self.intra_jain.lowest),
            "intra_share_jain_ge_threshold": _num(self.intra_fair),
            "intra_utilisation": _num(self.intra_utilisation),
            "intra_queue_delay_p95_ms": _num(self.intra_queue_delay_p95_ms),
            "share_vs_cubic_mean": _num(self.inter_share.mean),
            "share_vs_cubic_ci": [_num(x) for x in self.inter_share.ci],
            "inter_jain_mean": _num(self.inter_jain.mean),
            "inter_jain_ci": [_num(x) for x in self.inter_jain.ci],
            "inter_share_jain_ge_threshold": _num(self.inter_fair),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "controller": self.controller,
            "links": self.links,
            "intra_jain": self.intra_jain.to_dict(),
            "intra_share_jain_ge_threshold": _num(self.intra_fair),
            "intra_utilisation": _num(self.intra_utilisation),
            "intra_queue_delay_p95_ms": _num(self.intra_queue_delay_p95_ms),
            "inter_share_vs_cubic": self.inter_share.to_dict(),
            "inter_jain": self.inter_jain.to_dict(),
            "inter_share_jain_ge_threshold": _num(self.inter_fair),
        }


@dataclass(frozen=True, slots=True)
class FairnessResult:
    """Everything `run_fairness` measured; `to_dict` is JSON-able and deterministic."""

    seed: int
    config: FairnessConfig
    controllers: tuple[str, ...]
    cases: tuple[Case, ...]
    runs: tuple[PairRun, ...]
    aggregates: tuple[FairnessAggregate, ...]
    """per controller: "all" first, then each link kind present"""
    wall_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    # -- lookups -------------------------------------------------------------------
    def run_of(self, case: int, controller: str, kind: str, start: str) -> PairRun:
        for r in self.runs:
            if (r.case, r.controller, r.kind, r.start) == (case, controller, kind, start):
                return r
        raise KeyError(f"no {kind} run of {controller!r} ({start}) on case {case}")

    def aggregate(self, controller: str, links: str = "all") -> FairnessAggregate:
        for a in self.aggregates:
            if a.controller == controller and a.links == links:
                return a
        raise KeyError(f"no aggregate for {controller!r} over {links!r} links")

    # -- output --------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Per controller over every scenario: intra Jain (mean, 95 % CI, share >= the
        threshold) and its share vs CUBIC (mean, 95 % CI)."""
        return {
            "reference": REFERENCE,
            "jain_threshold": self.config.jain_threshold,
            "scenarios": {
                "cases": len(self.cases),
                "intra_per_controller": len(self.cases) * len(self.config.intra_starts),
                "inter_per_controller": len(self.cases) * len(self.config.inter_starts),
            },
            "controllers": {a.controller: a.summary() for a in self.aggregates if a.links == "all"},
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; no wall-clock times, so the same seed gives the same dict."""
        aggs: dict[str, dict[str, Any]] = {}
        for a in self.aggregates:
            aggs.setdefault(a.controller, {})[a.links] = a.to_dict()
        return {
            "summary": self.summary(),
            "seed": self.seed,
            "config": self.config.to_dict(),
            "reference": REFERENCE,
            "controllers": list(self.controllers),
            "aggregates": aggs,
            "cases": [c.to_dict() for c in self.cases],
            "runs": [r.to_dict() for r in self.runs],
            "notes": list(self.notes),
        }

    def headline(self) -> list[str]:
        """One plain sentence per controller."""
        out = []
        t = self.config.jain_threshold
        for a in self.aggregates:
            if a.links != "all":
                continue
            out.append(
                f"{a.controller}: two flows Jain {_fmt(a.intra_jain.mean, 3)} "
                f"{_ci(a.intra_jain.ci, 3)}, {_pct(a.intra_fair)} of scenarios >= {t:g}; "
                f"share vs CUBIC {_fmt(a.inter_share.mean, 3)} {_ci(a.inter_share.ci, 3)}."
            )
        return out

    def markdown(self) -> str:
        c = self.config
        kinds = sorted({x.kind for x in self.cases}, key=LINK_KINDS.index)
        n_intra = len(self.cases) * len(c.intra_starts)
        n_inter = len(self.cases) * len(c.inter_starts)
        links = []
        if c.rates_mbps and "constant" in kinds:
            links.append(f"constant {', '.join(f'{r:g}' for r in c.rates_mbps)} Mbit/s")
        traces = sorted({x.trace for x in self.cases if x.trace is not None})
        if traces:
            links.append(
                f"{c.n_windows} window{'s' if c.n_windows != 1 else ''} of "
                f"{len(traces)} trace{'s' if len(traces) != 1 else ''} ({', '.join(traces)})"
            )
        stag = (
            f"together and staggered (the later flow starts at {c.stagger_s:g} s; against CUBIC "
            "both orders)"
            if c.stagger_s > 0.0
            else "both flows starting together"
        )
        lines = [
            (
                f"{len(self.cases)} cases ({'; '.join(links)}; each at RTT "
                f"{', '.join(f'{r:g}' for r in c.rtts_ms)} ms), buffer {c.buffer_bdp:g} BDP, "
                f"{c.duration_s:g}-s runs, {stag}: {n_intra} two-flow scenarios and {n_inter} "
                f"scenarios against CUBIC per controller. Goodput is measured while both flows "
                f"are active. Means over scenarios with percentile-bootstrap 95 % intervals "
                f"(cases resampled with all their start modes; {c.bootstrap_rounds} replicates, "
                f"seed {self.seed})."
            ),
            "",
            (
                f"| controller | links | two flows: Jain [95 % CI] | Jain >= {c.jain_threshold:g} | "
                "min Jain | utilisation | p95 queueing (ms) | share vs CUBIC [95 % CI] | "
                "share range | Jain vs CUBIC [95 % CI] |"
            ),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a in self.aggregates:
            if a.links != "all" and len(kinds) < 2:
                continue
            lines.append(
                f"| {a.controller} | {a.links} | {_fmt(a.intra_jain.mean, 3)} "
                f"{_ci(a.intra_jain.ci, 3)} | {_pct(a.intra_fair)} | "
                f"{_fmt(a.intra_jain.lowest, 3)} | {_pct(a.intra_utilisation)} | "
                f"{_fmt(a.intra_queue_delay_p95_ms, 0)} | {_fmt(a.inter_share.mean, 3)} "
                f"{_ci(a.inter_share.ci, 3)} | {_fmt(a.inter_share.lowest, 2)}-"
                f"{_fmt(a.inter_share.highest, 2)} | {_fmt(a.inter_jain.mean, 3)} "
                f"{_ci(a.inter_jain.ci, 3)} |"
            )
        ctrls = list(self.controllers)
        lines += [
            "",
            (
                "Two flows of each controller, per scenario (Jain / utilisation; "
                "bold: Jain below the threshold):"
            ),
            "",
            "| case | RTT (ms) | capacity (Mbit/s) | start | " + " | ".join(ctrls) + " |",
            "|---|---:|---:|---|" + "---:|" * len(ctrls),
        ]
        for ci, case in enumerate(self.cases):
            for st in c.intra_starts:
                cells = []
                for name in ctrls:
                    r = self.run_of(ci, name, "intra", st)
                    j = _fmt(r.jain, 3)
                    if math.isfinite(r.jain) and r.jain < c.jain_threshold:
                        j = f"**{j}**"
                    cells.append(f"{j} / {_pct(r.utilisation)}")
                lines.append(
                    f"| {case.label} | {case.rtt_ms:g} | {case.capacity_mbps:.2f} | {st} | "
                    + " | ".join(cells)
                    + " |"
                )
        lines += [
            "",
            (
                "Each controller against one CUBIC flow, per scenario (its share of the goodput / "
                "Jain; first: it starts first and CUBIC joins, joins: it joins an established "
                "CUBIC flow):"
            ),
            "",
            "| case | RTT (ms) | start | " + " | ".join(ctrls) + " |",
            "|---|---:|---|" + "---:|" * len(ctrls),
        ]
        for ci, case in enumerate(self.cases):
            for st in c.inter_starts:
                cells = []
                for name in ctrls:
                    r = self.run_of(ci, name, "inter", st)
                    cells.append(f"{_fmt(r.share, 2)} / {_fmt(r.jain, 3)}")
                lines.append(
                    f"| {case.label} | {case.rtt_ms:g} | {st} | " + " | ".join(cells) + " |"
                )
        for note in self.notes:
            lines += ["", f"- {note}"]
        return "\n".join(lines)


# ---------------------------------------------------------------- statistics


def mean_ci(values: np.ndarray, indices: np.ndarray, *, level: float = 0.95) -> Stat:
    """Mean of the finite ``values`` and its percentile-bootstrap interval.

    ``values`` is ``[n]`` or ``[n, k]``: rows are the resampled units (a case with
    its ``k`` start modes, which share the link and so are drawn together), and
    ``indices`` is ``[rounds, n]`` from `bootstrap_indices`. A replicate's mean is
    over the finite values its rows hold; a replicate drawing none is left out.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    idx = np.asarray(indices)
    if x.ndim != 2 or idx.ndim != 2 or idx.shape[1] != x.shape[0]:
        raise ValueError(
            f"values must be [n] or [n, k] and indices [rounds, n]; got {x.shape} and {idx.shape}"
        )
    lvl = check_number("level", level)
    if not 0.0 < lvl < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ok = np.isfinite(x)
    n = int(ok.sum())
    if n == 0:
        return Stat(math.nan, (math.nan, math.nan), 0, math.nan, math.nan)
    counts = ok.sum(axis=1)[idx].sum(axis=1)
    sums = np.where(ok, x, 0.0).sum(axis=1)[idx].sum(axis=1)
    valid = counts > 0
    means = sums[valid] / counts[valid]
    tail = (1.0 - lvl) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    v = x[ok]
    return Stat(float(v.mean()), (float(lo), float(hi)), n, float(v.min()), float(v.max()))


def _share_at_least(values: np.ndarray, bound: float) -> float:
    ok = np.isfinite(values)
    return float(np.mean(values[ok] >= bound)) if ok.any() else math.nan


def _finite_mean(values: np.ndarray) -> float:
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else math.nan


# ---------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True, eq=False)
class FairnessPlan:
    """What `run_fairness` will run (from `plan_fairness`): cases chosen, traces loaded,
    controllers resolved. ``total_runs`` sizes a progress bar before anything runs."""

    seed: int
    config: FairnessConfig
    controllers: tuple[tuple[str, ControllerFactory], ...]
    reference: ControllerFactory
    """CUBIC's factory (whether or not CUBIC is evaluated itself)"""
    links: dict[str, Any]
    """trace path -> loaded `TraceLink`"""
    cases: tuple[Case, ...]
    notes: tuple[str, ...]

    def pairs(self) -> list[tuple[int, str, str, str, tuple[str, str], tuple[float, float]]]:
        """``(case, controller, kind, start, flow controllers, flow starts)`` of every pair,
        in the order they run."""
        c = self.config
        late = c.stagger_s
        out = []
        for ci in range(len(self.cases)):
            for name, _ in self.controllers:
                for st in c.intra_starts:
                    starts = (0.0, 0.0) if st == "together" else (0.0, late)
                    out.append((ci, name, "intra", st, (name, name), starts))
                for st in c.inter_starts:
                    if st == "joins":
                        flows, starts = (REFERENCE, name), (0.0, late)
                    else:
                        flows = (name, REFERENCE)
                        starts = (0.0, 0.0) if st == "together" else (0.0, late)
                    out.append((ci, name, "inter", st, flows, starts))
        return out

    @property
    def total_runs(self) -> int:
        """Distinct simulations (CUBIC against CUBIC is its intra run)."""
        return len({(p[0], p[4], p[5]) for p in self.pairs()})


def plan_fairness(
    traces: Sequence[str | PathLike[str]] = (),
    *,
    seed: int = 0,
    config: FairnessConfig | None = None,
    controllers: Sequence[str | tuple[str, ControllerFactory]] | None = None,
    registry: ControllerRegistry | None = None,
) -> FairnessPlan:
    """Validate the arguments of `run_fairness`, read the traces, choose the cases."""
    from oxidize_ml.evaluation.congestion_windows import (
        WindowConfig,
        load_trace_links,
        plan_windows,
    )
    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE
    from oxidize_ml.sim.controllers.registry import default_registry

    check_int("seed", seed)
    cfg = config if config is not None else FairnessConfig()
    if not isinstance(cfg, FairnessConfig):
        raise TypeError(f"config must be a FairnessConfig, got {type(cfg).__name__}")
    paths, loaded = load_trace_links(traces)
    if not paths and not cfg.rates_mbps:
        raise ValueError("nothing to run: rates_mbps is empty and no trace was given")
    names: list[str | tuple[str, ControllerFactory]] = (
        ["reno", REFERENCE, "bbr", "engine"] if controllers is None else list(controllers)
    )
    ctrls = resolve_controllers(names, registry)
    reg = registry if registry is not None else default_registry()
    reference = dict(ctrls).get(REFERENCE) or reg.factory(REFERENCE)

    base = EVAL_SEED_BASE + SEED_STRIDE * seed
    cases: list[Case] = []
    for rate in cfg.rates_mbps:
        for rtt in cfg.rtts_ms:
            cases.append(
                Case(
                    label=f"constant {rate:g} Mbit/s",
                    kind="constant",
                    rtt_ms=rtt,
                    capacity_mbps=rate,
                    seed=base + len(cases),
                    rate_mbps=rate,
                )
            )
    wcfg = WindowConfig(
        rtts_ms=cfg.rtts_ms,
        duration_s=cfg.duration_s,
        n_windows=cfg.n_windows,
        buffer_bdp=cfg.buffer_bdp,
        silent_start_windows=False,
    )
    labels = [p.name for p in paths]
    labels = [n if labels.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(labels)]
    for label, p, link in zip(labels, paths, loaded, strict=True):
        assert link._ms is not None
        for w in plan_windows(label, str(p), link._ms, wcfg):
            for rtt in cfg.rtts_ms:
                cases.append(
                    Case(
                        label=f"{label} @{w.start_s:g} s",
                        kind="trace",
                        rtt_ms=rtt,
                        capacity_mbps=w.capacity_mbps,
                        seed=base + len(cases),
                        trace=label,
                        path=str(p),
                        start_s=w.start_s,
                        outage=w.outage,
                    )
                )
    for case in cases:
        packets = case.capacity_mbps * 1e6 * cfg.duration_s / BITS_PER_OPPORTUNITY
        if packets > MAX_PACKETS_PER_RUN:
            raise ValueError(
                f"{case.label}: a {cfg.duration_s:g}-s run offers {packets:,.0f} packets "
                f"({case.capacity_mbps:,.0f} Mbit/s), more than {MAX_PACKETS_PER_RUN:,}; "
                "shorten duration_s or lower rates_mbps"
            )
    notes: list[str] = []
    if not paths:
        notes.append("No trace was given: constant-rate links only.")
    if any(n == REFERENCE for n, _ in ctrls):
        notes.append(
            "CUBIC against CUBIC is CUBIC's own two-flow run (same controllers and seed): "
            "its share vs CUBIC checks the method (about 0.5 on average)."
        )
    return FairnessPlan(
        seed=seed,
        config=cfg,
        controllers=tuple(ctrls),
        reference=reference,
        links={str(p): link for p, link in zip(paths, loaded, strict=True)},
        cases=tuple(cases),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------- running


def _scenario(plan: FairnessPlan, case: Case, starts: tuple[float, float]) -> Any:
    from oxidize_ml.sim.links import BufferSpec, ConstantLink
    from oxidize_ml.sim.scenarios import FlowSpec, Scenario, scenario_from_trace

    cfg = plan.config
    one_way = case.rtt_ms / 2000.0
    flows = tuple(FlowSpec(delay_s=one_way, start_s=s) for s in starts)
    buffer = BufferSpec(bdp=cfg.buffer_bdp)
    name = f"{case.label}/{case.rtt_ms:g}ms"
    if case.kind == "constant":
        assert case.rate_mbps is not None
        return Scenario(
            name,
            ConstantLink(case.rate_mbps * 1e6),
            flows,
            buffer,
            duration_s=cfg.duration_s,
        )
    assert case.path is not None
    return scenario_from_trace(
        case.path,
        link=plan.links[case.path],
        start_s=case.start_s,
        rtt_s=case.rtt_ms / 1000.0,
        buffer=buffer,
        duration_s=cfg.duration_s,
        flows=flows,
        name=name,
    )


@dataclass(frozen=True, slots=True)
class _Measured:
    goodput_mbps: tuple[float, float]
    measured_s: float
    utilisation: float
    queue_delay_p95_ms: float


def run_pair(
    scenario: Any,
    factories: Sequence[ControllerFactory],
    *,
    seed: int,
    max_delay_samples: int = MAX_PACKETS_PER_RUN,
) -> tuple[tuple[float, float], float, float, float]:
    """Run a two-flow ``scenario`` and measure it over the period both flows are active.

    Returns ``(goodput_mbps per flow, seconds measured, utilisation, p95 queueing
    delay in ms)`` (module docstring). ``max_delay_samples`` must exceed the packets
    either flow can deliver: the delays acked before the later start are cut off by
    count, which needs every delay kept.
    """
    from oxidize_ml.sim.core import Simulation

    if len(scenario.flows) != 2:
        raise ValueError(f"a pair needs two flows, got {len(scenario.flows)}")
    sim = Simulation(
        scenario,
        list(factories),
        seed=seed,
        record_series=False,
        max_delay_samples=max_delay_samples,
    )
    t0 = max(f.start_s for f in scenario.flows)
    acked0 = [0, 0]
    delivered0 = [0, 0]
    n_delays0 = [0, 0]
    if t0 > 0.0:
        sim.advance(t0)
        mid = sim.result()
        acked0 = [f.bytes_acked for f in mid.flows]
        delivered0 = [sim.delivered_to_receiver_bytes(i) for i in range(2)]
        n_delays0 = [int(f.delays_s.size) for f in mid.flows]
    res = sim.run()
    end = res.duration_s
    span = end - t0
    goodput = tuple(
        (f.bytes_acked - a) * 8.0 / span / 1e6 for f, a in zip(res.flows, acked0, strict=True)
    )
    delivered = sum(sim.delivered_to_receiver_bytes(i) - delivered0[i] for i in range(2))
    opps = sim.opportunities_between(t0, end)
    util = delivered / (opps * MTU_BYTES) if opps > 0 else math.nan
    q = np.concatenate(
        [
            f.delays_s[n:] - spec.delay_s
            for f, n, spec in zip(res.flows, n_delays0, scenario.flows, strict=True)
        ]
    )
    qd = float(np.percentile(q, 95.0)) * 1000.0 if q.size else math.nan
    return (goodput[0], goodput[1]), span, util, qd


def run_fairness(
    traces: Sequence[str | PathLike[str]] | FairnessPlan = (),
    *,
    seed: int = 0,
    config: FairnessConfig | None = None,
    controllers: Sequence[str | tuple[str, ControllerFactory]] | None = None,
    registry: ControllerRegistry | None = None,
    progress: ProgressFn | None = None,
) -> FairnessResult:
    """Run every controller in pairs on every case; see the module docstring.

    Parameters
    ----------
    traces
        Mahimahi trace files (none: constant-rate links only; ``ValueError``
        naming the file when one is missing or malformed), or a `FairnessPlan`
        from `plan_fairness` (then the other arguments but ``progress`` are
        ignored).
    seed
        Base of the run seeds and the bootstrap's seed (>= 0).
    config
        Links, RTTs, durations, stagger, buffer (default `FairnessConfig()`).
    controllers
        Registry names (``"reno"``, ``"cubic"``, ``"bbr"``, ``"engine"``) and/or
        ``(name, factory)`` pairs; None: reno, cubic, bbr and engine.
    registry
        Where names are looked up (default `default_registry()`).
    progress
        ``progress(done, total, label)`` after each simulated run.
    """
    from oxidize_ml.sim.results import jain_index

    t_start = time.perf_counter()
    plan = (
        traces
        if isinstance(traces, FairnessPlan)
        else plan_fairness(
            traces, seed=seed, config=config, controllers=controllers, registry=registry
        )
    )
    cfg = plan.config
    factory_of = dict(plan.controllers)
    factory_of.setdefault(REFERENCE, plan.reference)
    total = plan.total_runs
    done = 0
    cache: dict[tuple[int, tuple[str, str], tuple[float, float]], _Measured] = {}
    runs: list[PairRun] = []
    for ci, name, kind, start, flows, starts in plan.pairs():
        case = plan.cases[ci]
        key = (ci, flows, starts)
        m = cache.get(key)
        if m is None:
            sc = _scenario(plan, case, starts)
            packets = case.capacity_mbps * 1e6 * cfg.duration_s / BITS_PER_OPPORTUNITY
            gp, span, util, qd = run_pair(
                sc,
                [factory_of[f] for f in flows],
                seed=case.seed,
                # every delivered packet's delay kept (margin: a trace window's rate
                # is its mean, rounding)
                max_delay_samples=max(16, int(packets * 1.01) + 1024),
            )
            m = cache[key] = _Measured(gp, span, util, qd)
            done += 1
            if progress is not None:
                progress(done, total, f"{case.label} {case.rtt_ms:g}ms {'+'.join(flows)} {start}")
        total_g = m.goodput_mbps[0] + m.goodput_mbps[1]
        jain = jain_index(list(m.goodput_mbps)) if total_g > 0.0 else math.nan
        mine = 1 if kind == "inter" and start == "joins" else 0
        share = m.goodput_mbps[mine] / total_g if total_g > 0.0 else math.nan
        runs.append(
            PairRun(
                case=ci,
                controller=name,
                kind=kind,
                start=start,
                flows=flows,
                starts_s=starts,
                seed=case.seed,
                measured_s=m.measured_s,
                goodput_mbps=m.goodput_mbps,
                jain=jain,
                share=share,
                utilisation=m.utilisation,
                queue_delay_p95_ms=m.queue_delay_p95_ms,
            )
        )

    rng = np.random.default_rng(plan.seed)
    kinds = [k for k in LINK_KINDS if any(c.kind == k for c in plan.cases)]
    groups = ["all", *kinds] if len(kinds) > 1 else ["all"]
    # one index matrix of cases per group, drawn in a fixed order and shared by every
    # controller and kind of pair: their intervals resample the same cases
    indices: dict[str, np.ndarray] = {}
    n_cases: dict[str, int] = {}
    for g in groups:
        n_cases[g] = sum(1 for c in plan.cases if g in ("all", c.kind))
        indices[g] = bootstrap_indices(n_cases[g], cfg.bootstrap_rounds, rng)
    aggs: list[FairnessAggregate] = []
    for name, _ in plan.controllers:
        for g in groups:

            def col(kind: str, attr: str, group: str = g, ctrl: str = name) -> np.ndarray:
                # runs are in case order, start modes within: [cases, start modes]
                n_starts = len(cfg.intra_starts if kind == "intra" else cfg.inter_starts)
                return np.array(
                    [
                        getattr(r, attr)
                        for r in runs
                        if r.controller == ctrl
                        and r.kind == kind
                        and group in ("all", plan.cases[r.case].kind)
                    ],
                    dtype=np.float64,
                ).reshape(n_cases[group], n_starts)

            intra_j = col("intra", "jain")
            inter_j = col("inter", "jain")
            aggs.append(
                FairnessAggregate(
                    controller=name,
                    links=g,
                    intra_jain=mean_ci(intra_j, indices[g]),
                    intra_fair=_share_at_least(intra_j, cfg.jain_threshold),
                    intra_utilisation=_finite_mean(col("intra", "utilisation")),
                    intra_queue_delay_p95_ms=_finite_mean(col("intra", "queue_delay_p95_ms")),
                    inter_share=mean_ci(col("inter", "share"), indices[g]),
                    inter_jain=mean_ci(inter_j, indices[g]),
                    inter_fair=_share_at_least(inter_j, cfg.jain_threshold),
                )
            )
    notes = list(plan.notes)
    undefined = sum(1 for r in runs if not math.isfinite(r.jain))
    if undefined:
        notes.append(
            f"{undefined} scenario(s) delivered nothing to either flow while both were "
            "active: left out of the aggregates."
        )
    return FairnessResult(
        seed=plan.seed,
        config=cfg,
        controllers=tuple(n for n, _ in plan.controllers),
        cases=plan.cases,
        runs=tuple(runs),
        aggregates=tuple(aggs),
        wall_s=time.perf_counter() - t_start,
        notes=tuple(notes),
    )
