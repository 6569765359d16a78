"""`PathSelectionEnv`: choose one of 2 to 4 network paths for each arriving flow.

The environment is a contextual bandit with drifting arms: every step a flow
of one of the five `TrafficContext` types arrives, the agent picks a path,
and the reward is `MlPathSelector.calculate_reward` of what that path gives
the flow now. Paths fail, degrade and recover, so a policy has to keep
tracking them (the case discounted UCB1 was built for).

Path-quality model
------------------
The packet simulator is not run per step (a step stands for one flow of up
to ``step_s`` seconds, far longer than a packet simulation is worth here).
Each path is instead one link whose *capacity* comes from the simulator's own
link classes (`ConstantLink`, `StepLink`, `TraceLink` with a Mahimahi trace,
`CellularLink`): the `OpportunitySchedule` of the link is counted over each
step, split into `PROBES_PER_STEP` probe slots. On top of it, per step ``k``
of length ``T = step_s`` and per path:

1. **Capacity** ``C_k``: delivery opportunities x 1500 B x 8 / time the path
   was up, times the ``capacity_factor`` of active `Degradation` s.
2. **Availability** ``a_k``: share of the probe slots that were not inside an
   outage window and saw at least one delivery opportunity (a trace's
   zero-capacity gaps count as down), the spec's "share of recent probes that
   succeeded".
3. **Cross traffic** ``X_k = cross_load x mean capacity x exp(sigma z_k -
   sigma^2 / 2)``, ``z`` an AR(1) process with coefficient ``cross_corr`` per
   step (other users' load: mean ``cross_load``, log-normal fluctuations).
   Utilisation ``rho_k = X_k / C_k``.
4. **RTT** = ``base_rtt_s`` + degradation delay + queueing delay + jitter.
   Queueing delay is the M/M/1 mean wait ``rho / (1 - rho)`` packet service
   times (1500 B at ``C_k``), capped at the buffer's drain time
   ``buffer_s``; a saturated path (``rho >= 1``) sits at ``buffer_s``.
   Jitter is exponential with mean ``jitter_s``. A path down for the whole
   step reports `FAILED_RTT_S` (the probe timeout).
5. **Loss**: ``p = 1 - (1 - random_loss)(1 - degradation loss)(1 -
   overflow)`` with the fluid overflow share ``max(0, 1 - 1 / rho)``;
   measured as ``Binomial(LOSS_SAMPLE_PACKETS, p) / LOSS_SAMPLE_PACKETS``
   (measurement noise), then probes sent while down count as lost:
   ``1 - (1 - measured) a_k``.
6. **Throughput** of the new flow: the spare capacity ``C_k - X_k`` but at
   least a fair share ``C_k / (cross_flows + 1)`` (a TCP flow competing with
   ``cross_flows`` long flows), times ``a_k`` and ``1 - p``.

The observation shows each path's metrics measured over the *previous* step
(what probes reported before the flow arrived); the reward uses the metrics
of the step the flow runs in. Everything random is drawn at `reset` from
``self.np_random`` (link realisations, trace start offsets, cross traffic,
loss measurements, jitter, the traffic sequence), so an episode is a pure
function of the seed and the actions.

Presets (`PathScenario`, `get_path_scenario`)
-------------------------------------------
- ``stable``: fibre (50 Mbit/s, 15 ms), cable (150 Mbit/s, 45 ms, lossier),
  LTE (synthetic cellular 2-20 Mbit/s, 60 ms, deep buffer). Gaming and VoIP
  belong on fibre, Bulk and Streaming on cable.
- ``primary-fails``: ``stable`` with fibre down from 60 to 120 s and from
  200 to 215 s.
- ``degrading``: ``stable`` with fibre degrading from 90 s to 210 s (+80 ms
  RTT, +3 % loss, 30 % of its capacity), never recovering.
- ``cellular-traces`` / ``cellular-traces-heldout``: three paths driven by
  real Mahimahi cellular traces (the training / held-out traces of
  `oxidize_ml.evaluation.splits`); they need the shared trace folder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# gymnasium: the package __init__ raises DependencyNotInstalled when it is missing.
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.paths import MlPathSelector
from oxidize_ml.sim.links import CellularLink, ConstantLink, LinkSpec, StepLink, TraceLink
from oxidize_ml.sim.traces import BITS_PER_OPPORTUNITY, CellularConfig, OpportunitySchedule
from oxidize_ml.types import PathId, PathMetrics, TrafficContext

N_CONTEXTS = len(TrafficContext)
PER_PATH_FEATURES = 4
"""observation values per path: rtt, loss, throughput, availability"""
MIN_PATHS = 2
MAX_PATHS = len(PathId)
PROBES_PER_STEP = 10
"""probe slots per step used for availability (a probe every step_s / 10)"""
LOSS_SAMPLE_PACKETS = 200
"""packets a loss measurement is based on: 1 % loss is measured as 0, 0.5,
1, 1.5 % ... with a standard deviation of 0.7 %"""
FAILED_RTT_S = 1.0
"""RTT reported by a path that was down the whole step: the probe timeout, seconds"""
RTT_SCALE_S = 1.0
"""observation RTT = min(rtt_s / RTT_SCALE_S, 1)"""
THROUGHPUT_SCALE_MBPS = 1000.0
"""observation throughput = log1p(Mbit/s) / log1p(THROUGHPUT_SCALE_MBPS), clipped to 1:
logarithmic, so 1, 10 and 100 Mbit/s are evenly spread (0.10, 0.35, 0.67)"""
RTT_VAR_GAIN = 0.25
"""EWMA gain of the reported RTT variation (RFC 6298's beta)"""
_LOG_THR_SCALE = math.log1p(THROUGHPUT_SCALE_MBPS)


@dataclass(frozen=True, slots=True)
class Degradation:
    """A gradual worsening of one path.

    The effect ramps linearly from nothing at ``start_s`` to its full size at
    ``start_s + ramp_s``, holds, and ends at ``until_s`` (None: never).
    """

    start_s: float
    """when the degradation begins, seconds from the episode start"""
    ramp_s: float = 0.0
    """how long it takes to reach full effect, seconds (0: at once)"""
    until_s: float | None = None
    """when it ends, seconds (None: lasts to the end of the episode)"""
    extra_rtt_s: float = 0.0
    """added round-trip delay at full effect, seconds"""
    extra_loss: float = 0.0
    """added random loss probability at full effect, [0, 1)"""
    capacity_factor: float = 1.0
    """capacity multiplier at full effect, (0, 1]"""

    def __post_init__(self) -> None:
        check_number("start_s", self.start_s)
        check_number("ramp_s", self.ramp_s)
        if self.until_s is not None and check_number("until_s", self.until_s) <= self.start_s:
            raise ValueError(f"until_s must be after start_s={self.start_s}, got {self.until_s}")
        check_number("extra_rtt_s", self.extra_rtt_s)
        if check_number("extra_loss", self.extra_loss, hi=1.0) >= 1.0:
            raise ValueError(f"extra_loss must be < 1, got {self.extra_loss!r}")
        if check_number("capacity_factor", self.capacity_factor, hi=1.0) <= 0.0:
            raise ValueError(f"capacity_factor must be in (0, 1], got {self.capacity_factor!r}")

    def weight(self, t_s: np.ndarray) -> np.ndarray:
        """Share of the full effect in force at times ``t_s`` (float64, [0, 1])."""
        if self.ramp_s > 0.0:
            w = np.clip((t_s - self.start_s) / self.ramp_s, 0.0, 1.0)
        else:
            w = (t_s >= self.start_s).astype(np.float64)
        if self.until_s is not None:
            w = np.where(t_s >= self.until_s, 0.0, w)
        return w


@dataclass(frozen=True, slots=True)
class PathSpec:
    """One path: a capacity model plus the delay, loss and load around it."""

    name: str
    """label shown in results (e.g. "fibre")"""
    link: LinkSpec
    """capacity model (any simulator link spec)"""
    base_rtt_s: float
    """round-trip propagation delay, seconds"""
    buffer_s: float = 0.05
    """drain time of the bottleneck buffer: the largest queueing delay, seconds"""
    random_loss: float = 0.0
    """non-congestion loss probability, [0, 1)"""
    cross_load: float = 0.3
    """mean offered load of other traffic as a share of the mean capacity, >= 0"""
    cross_sigma: float = 0.3
    """standard deviation of log(cross traffic) (0: constant load)"""
    cross_corr: float = 0.9
    """AR(1) coefficient of log(cross traffic) from one step to the next, [0, 1)"""
    cross_flows: int = 4
    """long flows making up the cross traffic: a new flow gets at least
    1 / (cross_flows + 1) of the capacity"""
    jitter_s: float = 0.002
    """mean of the exponential RTT noise, seconds"""
    outages: tuple[tuple[float, float], ...] = ()
    """(start_s, end_s) windows in which the path is down"""
    degradations: tuple[Degradation, ...] = ()
    """gradual worsening events"""
    cost_factor: float = 1.0
    """relative cost of the path (reported in `PathMetrics`; not in the reward)"""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"path name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.link, ConstantLink | StepLink | TraceLink | CellularLink):
            raise TypeError(f"link must be a simulator link spec, got {type(self.link).__name__}")
        if check_number("base_rtt_s", self.base_rtt_s) <= 0.0:
            raise ValueError(f"base_rtt_s must be > 0, got {self.base_rtt_s!r}")
        check_number("buffer_s", self.buffer_s)
        if check_number("random_loss", self.random_loss, hi=1.0) >= 1.0:
            raise ValueError(f"random_loss must be < 1, got {self.random_loss!r}")
        check_number("cross_load", self.cross_load)
        check_number("cross_sigma", self.cross_sigma, hi=3.0)
        if check_number("cross_corr", self.cross_corr, hi=1.0) >= 1.0:
            raise ValueError(f"cross_corr must be < 1, got {self.cross_corr!r}")
        check_int("cross_flows", self.cross_flows, lo=0)
        check_number("jitter_s", self.jitter_s)
        outages = tuple((float(a), float(b)) for a, b in self.outages)
        for i, (a, b) in enumerate(outages):
            check_number(f"outages[{i}].start_s", a)
            if check_number(f"outages[{i}].end_s", b) <= a:
                raise ValueError(f"outages[{i}] must end after it starts, got {(a, b)}")
        object.__setattr__(self, "outages", outages)
        degradations = tuple(self.degradations)
        for d in degradations:
            if not isinstance(d, Degradation):
                raise TypeError(f"degradations must be Degradation, got {type(d).__name__}")
        object.__setattr__(self, "degradations", degradations)
        check_number("cost_factor", self.cost_factor)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "link": self.link.to_dict(),
            "base_rtt_s": self.base_rtt_s,
            "buffer_s": self.buffer_s,
            "random_loss": self.random_loss,
            "cross_load": self.cross_load,
            "cross_sigma": self.cross_sigma,
            "cross_corr": self.cross_corr,
            "cross_flows": self.cross_flows,
            "jitter_s": self.jitter_s,
            "outages": [list(o) for o in self.outages],
            "degradations": [
                {
                    "start_s": d.start_s,
                    "ramp_s": d.ramp_s,
                    "until_s": d.until_s,
                    "extra_rtt_s": d.extra_rtt_s,
                    "extra_loss": d.extra_loss,
                    "capacity_factor": d.capacity_factor,
                }
                for d in self.degradations
            ],
            "cost_factor": self.cost_factor,
        }


_UNIFORM_MIX = (0.2, 0.2, 0.2, 0.2, 0.2)


@dataclass(frozen=True, slots=True)
class PathScenario:
    """Paths plus the traffic that arrives on them."""

    name: str
    """identifier"""
    paths: tuple[PathSpec, ...]
    """2 to 4 paths; path ``i`` is `PathId` ``i``"""
    step_s: float = 1.0
    """simulated time per step (one flow arrival), seconds"""
    episode_steps: int = 300
    """steps per episode (truncation)"""
    context_mix: tuple[float, ...] = _UNIFORM_MIX
    """probability of each `TrafficContext` (Gaming, VoIP, Streaming, Bulk, Web)"""
    context_stickiness: float = 0.5
    """probability that a flow has the same traffic type as the previous one"""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"scenario name must be a non-empty string, got {self.name!r}")
        paths = tuple(self.paths)
        if not MIN_PATHS <= len(paths) <= MAX_PATHS:
            raise ValueError(
                f"a path scenario needs {MIN_PATHS} to {MAX_PATHS} paths, got {len(paths)}"
            )
        for p in paths:
            if not isinstance(p, PathSpec):
                raise TypeError(f"paths must be PathSpec, got {type(p).__name__}")
        object.__setattr__(self, "paths", paths)
        if check_number("step_s", self.step_s) <= 0.0:
            raise ValueError(f"step_s must be > 0, got {self.step_s!r}")
        check_int("episode_steps", self.episode_steps, lo=1)
        mix = tuple(
            float(check_number(f"context_mix[{i}]", x)) for i, x in enumerate(self.context_mix)
        )
        if len(mix) != N_CONTEXTS or not math.isclose(sum(mix), 1.0, abs_tol=1e-9):
            raise ValueError(
                f"context_mix must hold {N_CONTEXTS} probabilities summing to 1 "
                f"(Gaming, VoIP, Streaming, Bulk, Web), got {self.context_mix!r}"
            )
        object.__setattr__(self, "context_mix", mix)
        check_number("context_stickiness", self.context_stickiness, hi=1.0)

    @property
    def n_paths(self) -> int:
        return len(self.paths)

    @property
    def duration_s(self) -> float:
        return self.step_s * self.episode_steps

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "paths": [p.to_dict() for p in self.paths],
            "step_s": self.step_s,
            "episode_steps": self.episode_steps,
            "context_mix": list(self.context_mix),
            "context_stickiness": self.context_stickiness,
        }


# ---------------------------------------------------------------- presets


def _fibre(**kw: Any) -> PathSpec:
    return PathSpec(
        "fibre",
        ConstantLink(50e6),
        base_rtt_s=0.015,
        buffer_s=0.02,
        random_loss=0.0005,
        cross_load=0.5,
        jitter_s=0.001,
        **kw,
    )


def _cable() -> PathSpec:
    return PathSpec(
        "cable",
        ConstantLink(150e6),
        base_rtt_s=0.045,
        buffer_s=0.05,
        random_loss=0.003,
        cross_load=0.4,
        jitter_s=0.005,
    )


def _lte() -> PathSpec:
    return PathSpec(
        "lte",
        CellularLink(CellularConfig()),
        base_rtt_s=0.060,
        buffer_s=0.2,
        random_loss=0.005,
        cross_load=0.2,
        jitter_s=0.010,
        cost_factor=2.0,
    )


def _trace_paths(names: Sequence[str], rtts_s: Sequence[float]) -> tuple[PathSpec, ...]:
    from oxidize_ml.evaluation.splits import trace_dir

    d = trace_dir()
    missing = [n for n in names if d is None or not (d / n).is_file()]
    if missing:
        raise ValueError(
            f"this path scenario needs the Mahimahi traces {missing}; put them in "
            "<repo>/../shared/traces/mahimahi or point $OXIDIZE_TRACE_DIR at them"
        )
    assert d is not None
    return tuple(
        PathSpec(
            n.rsplit(".", 1)[0].lower() + "-" + n.rsplit(".", 1)[1],
            TraceLink(str(d / n)),
            base_rtt_s=rtt,
            buffer_s=0.25,
            random_loss=0.002,
            cross_load=0.2,
            jitter_s=0.008,
            cost_factor=2.0,
        )
        for n, rtt in zip(names, rtts_s, strict=True)
    )


TRACE_RTT_LADDER_S: tuple[float, ...] = (0.040, 0.055, 0.070, 0.085)
"""base RTTs given to trace-driven paths in order (`trace_path_families`): 15 ms
apart, so latency matters for interactive traffic without deciding every flow"""
MAX_TRACE_BYTES = 64 * 1024 * 1024
"""largest trace file read (the shipped cellular traces are 0.1-3 MB)"""
TRACE_FAMILIES: tuple[str, ...] = (
    "traces",
    "traces-rtt-reversed",
    "traces-outage",
    "traces-degrading",
)
"""scenario families `trace_path_families` builds from one set of traces"""


def trace_path_spec(path: str | Path, base_rtt_s: float, **kw: Any) -> PathSpec:
    """One trace-driven path (the trace file is read and validated here).

    Raises ``ValueError`` naming the file when it is missing, unreadable or not
    a Mahimahi trace. Cross traffic, buffer, loss and jitter are those of the
    ``cellular-traces`` presets (a deep cellular buffer, light cross load).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ValueError(f"Mahimahi trace {str(p)!r} cannot be read: {exc}") from None
    if size > MAX_TRACE_BYTES:  # the reader holds the whole text and a list of ints
        raise ValueError(
            f"Mahimahi trace {str(p)!r} is {size} bytes, more than the {MAX_TRACE_BYTES} accepted"
        )
    try:
        link = TraceLink(str(p))
    except OSError as exc:  # a directory, no permission, ...
        raise ValueError(f"Mahimahi trace {str(p)!r} cannot be read: {exc}") from None
    stem = p.name.replace(".", "-").lower()
    params: dict[str, Any] = {
        "buffer_s": 0.25,
        "random_loss": 0.002,
        "cross_load": 0.2,
        "jitter_s": 0.008,
        **kw,
    }
    return PathSpec(stem, link, base_rtt_s=base_rtt_s, **params)


def trace_path_families(
    trace_paths: Sequence[str | Path], *, steps: int = 300
) -> dict[str, PathScenario]:
    """Scenario families over 2 to 4 trace-driven paths (trace ``i`` is path ``i``).

    - ``traces``: base RTTs from `TRACE_RTT_LADDER_S` in order;
    - ``traces-rtt-reversed``: the ladder reversed (another trace is the
      low-RTT path, so no selector can win by path identity alone);
    - ``traces-outage``: ``traces`` with path 0 down from 30 % to 50 % of the
      episode;
    - ``traces-degrading``: ``traces`` with path 0 degrading from 30 % of the
      episode over 20 % of it (+80 ms, +3 % loss, 30 % of capacity), for good.

    Raises ``ValueError`` for fewer than 2 or more than 4 traces, or naming a
    file that cannot be read as a Mahimahi trace.
    """
    if isinstance(trace_paths, str | Path) or not isinstance(trace_paths, Sequence):
        raise TypeError(
            f"trace_paths must be a list of trace file paths, got {type(trace_paths).__name__}"
        )
    n = len(trace_paths)
    if not MIN_PATHS <= n <= MAX_PATHS:
        raise ValueError(
            f"trace_paths must hold {MIN_PATHS} to {MAX_PATHS} traces (one per path), got {n}"
        )
    steps = check_int("steps", steps, lo=1)
    ladder = TRACE_RTT_LADDER_S[:n]
    dur = float(steps)  # step_s = 1
    base = tuple(trace_path_spec(p, r) for p, r in zip(trace_paths, ladder, strict=True))
    rev = tuple(replace(s, base_rtt_s=r) for s, r in zip(base, ladder[::-1], strict=True))
    outage = (replace(base[0], outages=((0.3 * dur, 0.5 * dur),)), *base[1:])
    deg = Degradation(
        start_s=0.3 * dur, ramp_s=0.2 * dur, extra_rtt_s=0.080, extra_loss=0.03, capacity_factor=0.3
    )
    degrading = (replace(base[0], degradations=(deg,)), *base[1:])
    names = ", ".join(Path(p).name for p in trace_paths)
    return {
        "traces": PathScenario(
            "traces",
            base,
            episode_steps=steps,
            description=f"traces {names}; base RTTs {list(ladder)} s",
        ),
        "traces-rtt-reversed": PathScenario(
            "traces-rtt-reversed",
            rev,
            episode_steps=steps,
            description=f"traces {names}; base RTTs {list(ladder[::-1])} s",
        ),
        "traces-outage": PathScenario(
            "traces-outage",
            outage,
            episode_steps=steps,
            description=f"traces {names}; path 0 down from 30 % to 50 % of the episode",
        ),
        "traces-degrading": PathScenario(
            "traces-degrading",
            degrading,
            episode_steps=steps,
            description=f"traces {names}; path 0 degrades from 30 % of the episode "
            "(+80 ms, +3 % loss, 30 % capacity)",
        ),
    }


def _presets() -> dict[str, Any]:
    """name -> zero-argument builder (trace scenarios read files, so build on demand)."""

    def stable() -> PathScenario:
        return PathScenario(
            "stable",
            (_fibre(), _cable(), _lte()),
            description="fibre 50 Mbit/s 15 ms, cable 150 Mbit/s 45 ms, "
            "synthetic LTE 2-20 Mbit/s 60 ms; nothing fails",
        )

    def primary_fails() -> PathScenario:
        return PathScenario(
            "primary-fails",
            (_fibre(outages=((60.0, 120.0), (200.0, 215.0))), _cable(), _lte()),
            description="stable, but fibre is down 60-120 s and 200-215 s",
        )

    def degrading() -> PathScenario:
        deg = Degradation(
            start_s=90.0, ramp_s=120.0, extra_rtt_s=0.080, extra_loss=0.03, capacity_factor=0.3
        )
        return PathScenario(
            "degrading",
            (_fibre(degradations=(deg,)), _cable(), _lte()),
            description="stable, but fibre degrades from 90 s to 210 s "
            "(+80 ms, +3 % loss, 30 % capacity) and stays bad",
        )

    def cellular_traces() -> PathScenario:
        from oxidize_ml.evaluation.splits import TRAIN_TRACES

        names = (TRAIN_TRACES[0], TRAIN_TRACES[1], TRAIN_TRACES[2])
        return PathScenario(
            "cellular-traces",
            _trace_paths(names, (0.060, 0.040, 0.100)),
            description=f"Mahimahi traces {', '.join(names)} (training split)",
        )

    def cellular_traces_heldout() -> PathScenario:
        from oxidize_ml.evaluation.splits import HELDOUT_TRACES

        names = (HELDOUT_TRACES[0], HELDOUT_TRACES[2], HELDOUT_TRACES[1])
        return PathScenario(
            "cellular-traces-heldout",
            _trace_paths(names, (0.040, 0.070, 0.055)),
            description=f"Mahimahi traces {', '.join(names)} (held-out split)",
        )

    return {
        "stable": stable,
        "primary-fails": primary_fails,
        "degrading": degrading,
        "cellular-traces": cellular_traces,
        "cellular-traces-heldout": cellular_traces_heldout,
    }


_PRESETS = _presets()
_TRACE_PRESETS = ("cellular-traces", "cellular-traces-heldout")


def list_path_scenarios(*, include_unavailable: bool = False) -> list[str]:
    """Preset names; the trace-driven ones only when the trace folder exists (or asked)."""
    if include_unavailable:
        return list(_PRESETS)
    from oxidize_ml.evaluation.splits import trace_dir

    have_traces = trace_dir() is not None
    return [n for n in _PRESETS if have_traces or n not in _TRACE_PRESETS]


def get_path_scenario(name: str) -> PathScenario:
    """A preset by name (``ValueError`` listing the names; trace presets need the traces)."""
    try:
        builder = _PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown path scenario {name!r}; choose from {list(_PRESETS)}") from None
    return builder()


# ---------------------------------------------------------------- model


def _counts_until(schedule: OpportunitySchedule, t_s: np.ndarray) -> np.ndarray:
    """`OpportunitySchedule.count_until` vectorised over ``t_s >= 0`` (int64)."""
    period = schedule.period_s
    cycles = np.floor(t_s / period)
    offsets = t_s - cycles * period
    idx = np.searchsorted(schedule.times_s, offsets, side="right")
    return cycles.astype(np.int64) * schedule.times_s.size + idx


@dataclass(slots=True)
class _Episode:
    """Per-episode arrays (row = step index 0..n, row 0 is the warm-up measurement)."""

    rtt_s: np.ndarray  # [n + 1, P]
    rtt_var_s: np.ndarray  # [n + 1, P]
    loss: np.ndarray  # [n + 1, P]
    throughput_bps: np.ndarray  # [n + 1, P]
    availability: np.ndarray  # [n + 1, P]
    contexts: np.ndarray  # [n + 1] int64 (row 0 unused)
    obs_metrics: np.ndarray = field(init=False)  # [n + 1, P * 4] float32, normalised
    rewards: np.ndarray = field(init=False)  # [n + 1, P]: each path's reward for row's flow

    def __post_init__(self) -> None:
        calc = MlPathSelector.calculate_reward
        rows, p = self.rtt_s.shape
        rtt_us = (self.rtt_s * 1e6).tolist()
        loss = self.loss.tolist()
        mbps = (self.throughput_bps / 1e6).tolist()
        ctx = [TrafficContext(int(c)) for c in self.contexts]
        self.rewards = np.array(
            [
                [calc(ctx[k], rtt_us[k][i], loss[k][i], mbps[k][i]) for i in range(p)]
                for k in range(rows)
            ]
        )
        m = np.empty((self.rtt_s.shape[0], p, PER_PATH_FEATURES), dtype=np.float64)
        m[:, :, 0] = np.minimum(self.rtt_s / RTT_SCALE_S, 1.0)
        m[:, :, 1] = self.loss
        m[:, :, 2] = np.minimum(np.log1p(self.throughput_bps / 1e6) / _LOG_THR_SCALE, 1.0)
        m[:, :, 3] = self.availability
        self.obs_metrics = np.clip(m, 0.0, 1.0).reshape(m.shape[0], -1).astype(np.float32)


def _simulate_path(
    spec: PathSpec, n: int, step_s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rtt_s, rtt_var_s, loss, throughput_bps, availability), each float64 [n]."""
    horizon = n * step_s
    schedule = spec.link.schedule(horizon, rng)
    offset = float(rng.uniform(0.0, schedule.period_s)) if isinstance(spec.link, TraceLink) else 0.0
    slot_s = step_s / PROBES_PER_STEP
    edges = np.arange(n * PROBES_PER_STEP + 1, dtype=np.float64) * slot_s
    counts = np.diff(_counts_until(schedule, edges + offset)).reshape(n, PROBES_PER_STEP)
    mid = (edges[:-1] + 0.5 * slot_s).reshape(n, PROBES_PER_STEP)
    up = counts > 0
    for a, b in spec.outages:
        up &= ~((mid >= a) & (mid < b))
    avail = up.mean(axis=1)
    delivered = np.where(up, counts, 0).sum(axis=1).astype(np.float64)
    up_time = avail * step_s
    t_mid = (np.arange(n, dtype=np.float64) + 0.5) * step_s
    cap_factor = np.ones(n)
    extra_rtt = np.zeros(n)
    keep = np.ones(n)  # 1 - extra loss, multiplied over degradations
    for d in spec.degradations:
        w = d.weight(t_mid)
        cap_factor *= 1.0 - w * (1.0 - d.capacity_factor)
        extra_rtt += w * d.extra_rtt_s
        keep *= 1.0 - w * d.extra_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = np.where(up_time > 0.0, delivered * BITS_PER_OPPORTUNITY / up_time, 0.0)
    cap = cap * cap_factor
    # Cross traffic: log-normal AR(1) around cross_load x mean capacity.
    z = np.empty(n)
    eps = rng.standard_normal(n)
    phi = spec.cross_corr
    z[0] = eps[0]
    scale = math.sqrt(1.0 - phi * phi)
    for k in range(1, n):
        z[k] = phi * z[k - 1] + scale * eps[k]
    sig = spec.cross_sigma
    cross = spec.cross_load * schedule.mean_rate_bps * np.exp(sig * z - 0.5 * sig * sig)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(cap > 0.0, cross / cap, np.inf)
        service_s = np.where(cap > 0.0, BITS_PER_OPPORTUNITY / cap, 0.0)
        wait = np.where(rho < 1.0, rho / (1.0 - rho) * service_s, spec.buffer_s)
        overflow = np.where(rho > 1.0, 1.0 - 1.0 / rho, 0.0)
    queue_s = np.minimum(wait, spec.buffer_s)
    jitter = rng.exponential(spec.jitter_s, n) if spec.jitter_s > 0.0 else np.zeros(n)
    rtt = spec.base_rtt_s + extra_rtt + queue_s + jitter
    p_true = 1.0 - (1.0 - spec.random_loss) * keep * (1.0 - overflow)
    p_meas = rng.binomial(LOSS_SAMPLE_PACKETS, np.clip(p_true, 0.0, 1.0)) / LOSS_SAMPLE_PACKETS
    loss = 1.0 - (1.0 - p_meas) * avail
    share = np.maximum(cap - cross, cap / (spec.cross_flows + 1))
    thr = share * avail * (1.0 - p_true)
    down = avail <= 0.0
    rtt = np.where(down, FAILED_RTT_S, rtt)
    thr = np.where(down, 0.0, thr)
    loss = np.where(down, 1.0, loss)
    # Reported RTT variation: RFC 6298-style EWMA of |srtt - sample| over steps.
    rtt_var = np.empty(n)
    srtt = rtt[0]
    var = spec.jitter_s
    for k in range(n):
        var = (1.0 - RTT_VAR_GAIN) * var + RTT_VAR_GAIN * abs(srtt - rtt[k])
        srtt = 0.875 * srtt + 0.125 * rtt[k]
        rtt_var[k] = var
    return rtt, rtt_var, np.clip(loss, 0.0, 1.0), thr, avail


def _contexts(scenario: PathScenario, n: int, rng: np.random.Generator) -> np.ndarray:
    mix = np.asarray(scenario.context_mix)
    draws = rng.choice(N_CONTEXTS, size=n, p=mix)
    stay = rng.random(n) < scenario.context_stickiness
    out = np.empty(n, dtype=np.int64)
    out[0] = draws[0]
    for k in range(1, n):
        out[k] = out[k - 1] if stay[k] else draws[k]
    return out


# ---------------------------------------------------------------- environment


class PathSelectionEnv(gym.Env[np.ndarray, np.int64]):
    """Pick a path for each arriving flow; reward = the spec's per-traffic-type path reward.

    ## Description

    2 to 4 paths (a `PathScenario`), each its own link with failures and
    degradations (module docstring: path-quality model). Every step one flow
    of a `TrafficContext` type arrives (a seeded sequence drawn from the
    scenario's ``context_mix``, repeating the previous type with probability
    ``context_stickiness``); the agent sends it on one path.

    ## Action Space

    ``Discrete(n_paths)``: the index of the path (`PathId` order: 0 Primary,
    1 Secondary, 2 Tertiary, 3 Quaternary).

    ## Observation Space

    ``Box(0, 1, shape=(5 + 4 * n_paths,), dtype=float32)``:

    | index            | observation                                  | min | max |
    |------------------|----------------------------------------------|-----|-----|
    | 0 .. 4           | one-hot traffic type of the arriving flow     | 0   | 1   |
    |                  | (Gaming, VoIP, Streaming, Bulk, Web)          |     |     |
    | 5 + 4 i          | path i RTT: min(rtt_s / 1 s, 1)               | 0   | 1   |
    | 5 + 4 i + 1      | path i measured loss rate                     | 0   | 1   |
    | 5 + 4 i + 2      | path i throughput: log1p(Mbit/s) / log1p(1000)| 0   | 1   |
    | 5 + 4 i + 3      | path i availability (share of probes that     | 0   | 1   |
    |                  | succeeded)                                    |     |     |

    Path metrics are those measured over the previous step, before the flow
    arrived (`path_metrics` gives them as `PathMetrics` for a
    `MlPathSelector`).

    ## Rewards

    ``MlPathSelector.calculate_reward(context, rtt_us, loss_rate,
    throughput_mbps)`` of the chosen path over the step the flow runs in, in
    [0, 1]. A path that is down the whole step gives ~0 (RTT 1 s, loss 1,
    no throughput). ``info`` carries, every step, ``oracle_reward`` (the best
    path's reward, known only in hindsight), ``regret`` (oracle minus
    reward), ``best_path``, ``path_rewards`` (all paths), ``context`` and
    ``time_s``.

    ## Starting State

    `reset` draws a new realisation of every path (synthetic links, trace
    start offsets, cross traffic, measurement noise) and traffic sequence
    from the seed; the first observation shows a warm-up measurement.

    ## Episode End

    Never terminated (a network has no terminal state). Truncated after
    ``episode_steps`` steps (scenario default, or the constructor argument).

    ## Arguments

    ``gymnasium.make("oxidize_ml/PathSelection-v0", scenario="primary-fails",
    episode_steps=None)``: ``scenario`` is a `PathScenario` or a preset name
    (`list_path_scenarios`).

    ## Version History

    - v0: initial version (path-quality model as in the module docstring).
    """

    # gymnasium.Env declares ``metadata`` as an instance attribute, so a ClassVar here is a
    # type error (mypy: misc); gymnasium reads it from the class, hence the class default.
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        scenario: PathScenario | str = "stable",
        *,
        episode_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(scenario, str):
            scenario = get_path_scenario(scenario)
        if not isinstance(scenario, PathScenario):
            raise TypeError(
                f"scenario must be a PathScenario or a preset name, got {type(scenario).__name__}"
            )
        if episode_steps is not None:
            scenario = replace(
                scenario, episode_steps=check_int("episode_steps", episode_steps, lo=1)
            )
        if render_mode is not None:
            raise ValueError(
                f"PathSelectionEnv renders nothing; render_mode must be None, got {render_mode!r}"
            )
        self.render_mode = None
        self.scenario = scenario
        self.n_paths = scenario.n_paths
        self.action_space = spaces.Discrete(self.n_paths)
        n_obs = N_CONTEXTS + PER_PATH_FEATURES * self.n_paths
        self.observation_space = spaces.Box(0.0, 1.0, shape=(n_obs,), dtype=np.float32)
        self._ep: _Episode | None = None
        self._k = 0  # steps taken in this episode

    # -- gymnasium API -----------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        sc = self.scenario
        n = sc.episode_steps + 1
        cols = [_simulate_path(p, n, sc.step_s, rng) for p in sc.paths]
        self._ep = _Episode(
            rtt_s=np.stack([c[0] for c in cols], axis=1),
            rtt_var_s=np.stack([c[1] for c in cols], axis=1),
            loss=np.stack([c[2] for c in cols], axis=1),
            throughput_bps=np.stack([c[3] for c in cols], axis=1),
            availability=np.stack([c[4] for c in cols], axis=1),
            contexts=_contexts(sc, n, rng),
        )
        self._k = 0
        return self._obs(), {"context": self.current_context.name, "time_s": 0.0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        ep = self._ep
        if ep is None:
            raise RuntimeError("Call reset before using step.")
        if self._k >= self.scenario.episode_steps:
            raise RuntimeError("The episode is over (truncated); call reset.")
        if not self.action_space.contains(action):
            raise ValueError(
                f"action must be a path index in [0, {self.n_paths - 1}], got {action!r}"
            )
        a = int(action)
        row = self._k + 1
        ctx = TrafficContext(int(ep.contexts[row]))
        rewards = ep.rewards[row].copy()
        reward = float(rewards[a])
        best = int(np.argmax(rewards))
        oracle = float(rewards[best])
        self._k += 1
        truncated = self._k >= self.scenario.episode_steps
        info = {
            "context": ctx.name,
            "time_s": self._k * self.scenario.step_s,
            "oracle_reward": oracle,
            "regret": oracle - reward,
            "best_path": best,
            "path_rewards": rewards,
        }
        return self._obs(), reward, False, truncated, info

    # -- inspection --------------------------------------------------------------

    @property
    def current_context(self) -> TrafficContext:
        """Traffic type of the flow waiting for a path."""
        ep = self._require()
        row = min(self._k + 1, ep.contexts.size - 1)
        return TrafficContext(int(ep.contexts[row]))

    def path_metrics(self) -> tuple[PathMetrics, ...]:
        """The metrics the observation shows (previous step), as `PathMetrics` per path."""
        ep = self._require()
        k = self._k
        t_ms = k * self.scenario.step_s * 1000.0
        return tuple(
            PathMetrics(
                path_id=PathId(i),
                rtt_us=float(ep.rtt_s[k, i]) * 1e6,
                rtt_var_us=float(ep.rtt_var_s[k, i]) * 1e6,
                bandwidth_bps=float(ep.throughput_bps[k, i]),
                loss_rate=float(ep.loss[k, i]),
                availability=float(ep.availability[k, i]),
                cost_factor=self.scenario.paths[i].cost_factor,
                last_update_ms=t_ms,
            )
            for i in range(self.n_paths)
        )

    def episode_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the episode's per-step, per-path ground truth (rows: step 0 = warm-up)."""
        ep = self._require()
        return {
            "rtt_s": ep.rtt_s.copy(),
            "rtt_var_s": ep.rtt_var_s.copy(),
            "loss": ep.loss.copy(),
            "throughput_bps": ep.throughput_bps.copy(),
            "availability": ep.availability.copy(),
            "contexts": ep.contexts.copy(),
        }

    # -- internals ---------------------------------------------------------------

    def _require(self) -> _Episode:
        if self._ep is None:
            raise RuntimeError("Call reset before using the environment.")
        return self._ep

    def _obs(self) -> np.ndarray:
        ep = self._ep
        assert ep is not None
        obs = np.zeros(N_CONTEXTS + PER_PATH_FEATURES * self.n_paths, dtype=np.float32)
        row = min(self._k + 1, ep.contexts.size - 1)
        obs[int(ep.contexts[row])] = 1.0
        obs[N_CONTEXTS:] = ep.obs_metrics[self._k]
        return obs
