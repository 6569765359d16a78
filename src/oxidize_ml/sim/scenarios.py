"""Scenarios: a link, its buffer, random loss, flows and a duration, by name.

A `Scenario` is a frozen value; `oxidize_ml.sim.runner.simulate` runs it
with a controller and a seed. The built-in suite (`list_scenarios`,
`get_scenario`) covers the cases learned congestion control is known to get
wrong (REFERENCES section 2: fast bandwidth changes, competing flows) plus
the textbook ones; each is reproducible from the run's seed.

Path model: each flow has a one-way forward propagation delay applied
between the sender and the bottleneck (the receiver sits right behind the
bottleneck) and a reverse delay for the acks; acks are never lost or queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from os import PathLike, fspath
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.sim.links import (
    BufferSpec,
    CellularLink,
    ConstantLink,
    LinkSpec,
    StepLink,
    TraceLink,
)
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss, LossModel
from oxidize_ml.sim.traces import CellularConfig, OpportunitySchedule, trace_window_schedule

DEFAULT_INTERVAL_S = 0.010
"""decision interval shared by every controller, seconds (the spec's 10 ms window)"""


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """One flow through the bottleneck."""

    delay_s: float = 0.020
    """one-way propagation delay sender -> receiver, seconds (applied before the bottleneck)"""
    reverse_delay_s: float | None = None
    """one-way delay of the acks receiver -> sender, seconds; None: same as delay_s"""
    start_s: float = 0.0
    """when the flow starts sending, seconds"""
    size_bytes: int | None = None
    """bytes to deliver; None: always backlogged (bulk)"""

    def __post_init__(self) -> None:
        check_number("delay_s", self.delay_s)
        if self.reverse_delay_s is not None:
            check_number("reverse_delay_s", self.reverse_delay_s)
        check_number("start_s", self.start_s)
        if self.size_bytes is not None:
            check_int("size_bytes", self.size_bytes, lo=1)
        if self.base_rtt_s <= 0.0:
            raise ValueError("a flow's base RTT (delay_s + reverse_delay_s) must be > 0")

    @property
    def ack_delay_s(self) -> float:
        return self.delay_s if self.reverse_delay_s is None else self.reverse_delay_s

    @property
    def base_rtt_s(self) -> float:
        """Round-trip propagation delay (no queueing), seconds."""
        return self.delay_s + self.ack_delay_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "delay_s": self.delay_s,
            "reverse_delay_s": self.ack_delay_s,
            "start_s": self.start_s,
            "size_bytes": self.size_bytes,
        }


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything a run needs except the controller and the seed."""

    name: str
    """identifier shown in results"""
    link: LinkSpec
    """capacity model"""
    flows: tuple[FlowSpec, ...] = (FlowSpec(),)
    """flows sharing the bottleneck"""
    buffer: BufferSpec = field(default_factory=BufferSpec)
    """drop-tail buffer size (default 1 BDP of the mean capacity x first flow's base RTT)"""
    loss: LossModel | None = None
    """random loss at the bottleneck egress (None: only queue overflow drops)"""
    duration_s: float = 20.0
    """simulated time, seconds"""
    seed: int | None = None
    """pins the link realisation (synthetic capacity) independently of the run seed;
    None: it follows the run seed like every other random stream"""
    interval_s: float = DEFAULT_INTERVAL_S
    """decision interval, seconds"""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"scenario name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.link, ConstantLink | StepLink | TraceLink | CellularLink):
            raise TypeError(f"link must be a link spec, got {type(self.link).__name__}")
        flows = tuple(self.flows)
        if not flows:
            raise ValueError("a scenario needs at least one flow")
        for f in flows:
            if not isinstance(f, FlowSpec):
                raise TypeError(f"flows must be FlowSpec, got {type(f).__name__}")
        object.__setattr__(self, "flows", flows)
        if self.loss is not None and not isinstance(self.loss, BernoulliLoss | GilbertElliottLoss):
            raise TypeError(f"loss must be a loss model or None, got {type(self.loss).__name__}")
        if check_number("duration_s", self.duration_s) <= 0.0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s!r}")
        if self.seed is not None:
            check_int("seed", self.seed)
        if check_number("interval_s", self.interval_s) <= 0.0:
            raise ValueError(f"interval_s must be > 0, got {self.interval_s!r}")

    @property
    def is_random(self) -> bool:
        """True when runs with different seeds can differ."""
        return self.loss is not None or (self.link.is_random and self.seed is None)

    def with_duration(self, duration_s: float) -> Scenario:
        return replace(self, duration_s=duration_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "link": self.link.to_dict(),
            "flows": [f.to_dict() for f in self.flows],
            "buffer": self.buffer.to_dict(),
            "loss": None if self.loss is None else self.loss.to_dict(),
            "duration_s": self.duration_s,
            "seed": self.seed,
            "interval_s": self.interval_s,
        }


@dataclass(frozen=True, slots=True)
class TraceWindowLink(TraceLink):
    """A Mahimahi trace seen from ``start_s`` on (`trace_window_schedule`).

    Held-out evaluations start flows at several points of a trace, not only
    at its beginning: a controller's start-up meets whatever the link does
    there (a silent stretch, an outage, a capacity peak). The trace still
    repeats at its end, and the buffer is still sized from the whole trace's
    mean rate, so windows of one trace differ only in where the flow starts.
    """

    start_s: float = 0.0
    """where time 0 of the run falls in the trace, seconds (whole ms; modulo the trace length)"""

    def __post_init__(self) -> None:
        # explicit base call: zero-argument super() breaks in slots dataclasses (3.11)
        TraceLink.__post_init__(self)
        start = check_number("start_s", self.start_s)
        object.__setattr__(self, "start_s", round(start * 1000.0) / 1000.0)

    @property
    def start_ms(self) -> int:
        """`start_s` in whole milliseconds, within the first period."""
        ms = self._ms
        assert ms is not None
        return round(self.start_s * 1000.0) % int(ms[-1])

    def schedule(self, horizon_s: float, rng: np.random.Generator) -> OpportunitySchedule:
        assert self._ms is not None
        return trace_window_schedule(self._ms, self.start_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"model": "mahimahi", "path": self.path, "start_s": self.start_s}


def _rtt(rtt_s: float) -> FlowSpec:
    return FlowSpec(delay_s=rtt_s / 2.0)


def _builtin() -> dict[str, Scenario]:
    s = [
        Scenario(
            "wired-clean",
            ConstantLink(12e6),
            (_rtt(0.040),),
            BufferSpec(bdp=1.0),
            duration_s=20.0,
            description="constant 12 Mbit/s, 40 ms RTT, 1 BDP buffer",
        ),
        Scenario(
            "high-bdp",
            ConstantLink(100e6),
            (_rtt(0.100),),
            BufferSpec(bdp=1.0),
            duration_s=20.0,
            description="constant 100 Mbit/s, 100 ms RTT, 1 BDP buffer",
        ),
        Scenario(
            "shallow-buffer",
            ConstantLink(12e6),
            (_rtt(0.040),),
            BufferSpec(bdp=0.1),
            duration_s=20.0,
            description="12 Mbit/s, 40 ms RTT, 0.1 BDP buffer",
        ),
        Scenario(
            "step-change",
            StepLink(((0.0, 24e6), (10.0, 6e6), (20.0, 18e6))),
            (_rtt(0.040),),
            BufferSpec(bdp=1.0),
            duration_s=30.0,
            description="24 -> 6 -> 18 Mbit/s every 10 s, 40 ms RTT, 1 BDP of the mean",
        ),
        Scenario(
            "random-loss",
            ConstantLink(12e6),
            (_rtt(0.040),),
            BufferSpec(bdp=1.0),
            loss=BernoulliLoss(0.01),
            duration_s=20.0,
            description="12 Mbit/s, 40 ms RTT, 1 % Bernoulli loss (not congestion)",
        ),
        Scenario(
            "burst-loss",
            ConstantLink(12e6),
            (_rtt(0.040),),
            BufferSpec(bdp=1.0),
            loss=GilbertElliottLoss(p=0.005, r=0.25, k=1.0, h=0.5),
            duration_s=20.0,
            description="12 Mbit/s, 40 ms RTT, Gilbert-Elliott loss: bursts of 4 packets "
            "on average losing half of them, about 1 % mean loss",
        ),
        Scenario(
            "cellular-synthetic",
            CellularLink(CellularConfig()),
            (_rtt(0.060),),
            BufferSpec(bdp=2.0),
            duration_s=30.0,
            description="synthetic cellular capacity (Markov states 2-20 Mbit/s, log-normal "
            "fading, outages), 60 ms RTT, 2 BDP of the mean (cellular queues are deep)",
        ),
        Scenario(
            "satellite",
            ConstantLink(20e6),
            (_rtt(0.600),),
            BufferSpec(bdp=1.0),
            duration_s=30.0,
            description="constant 20 Mbit/s, 600 ms RTT, 1 BDP buffer",
        ),
        Scenario(
            "competing-flows",
            ConstantLink(24e6),
            (
                FlowSpec(0.020, start_s=0.0),
                FlowSpec(0.020, start_s=5.0),
                FlowSpec(0.020, start_s=10.0),
            ),
            BufferSpec(bdp=1.0),
            duration_s=30.0,
            description="3 flows, 40 ms RTT each, starting at 0, 5 and 10 s, on 24 Mbit/s",
        ),
    ]
    return {x.name: x for x in s}


_BUILTIN = _builtin()


def list_scenarios() -> list[str]:
    """Names of the built-in scenarios."""
    return list(_BUILTIN)


def get_scenario(name: str) -> Scenario:
    """A built-in scenario by name; ``ValueError`` listing the names otherwise."""
    try:
        return _BUILTIN[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scenario {name!r}; choose from {list_scenarios()}") from None


def scenario_from_trace(
    path: str | PathLike[str],
    *,
    name: str | None = None,
    rtt_s: float = 0.040,
    buffer: BufferSpec | None = None,
    loss: LossModel | None = None,
    duration_s: float | None = None,
    flows: tuple[FlowSpec, ...] | None = None,
    start_s: float = 0.0,
    link: TraceLink | None = None,
) -> Scenario:
    """Any Mahimahi trace file as a scenario.

    Defaults: one bulk flow with ``rtt_s`` split evenly between directions, a
    1-BDP buffer of the trace's mean capacity, and the trace's own length
    capped at 30 s (the trace repeats if ``duration_s`` is longer).
    The file is read and validated now (``ValueError`` on a bad file).
    With ``start_s`` > 0 the run starts at that point of the trace
    (`TraceWindowLink`) and the default name ends in ``@<start>s``. ``link``
    reuses an already loaded trace of ``path`` (no second read of the file).
    """
    check_number("rtt_s", rtt_s)
    if rtt_s <= 0.0:
        raise ValueError(f"rtt_s must be > 0, got {rtt_s!r}")
    check_number("start_s", start_s)
    base = link if link is not None else TraceLink(fspath(path))
    if start_s > 0.0:
        base = TraceWindowLink(base.path, base._ms, start_s=start_s)
    if duration_s is None:
        duration_s = min(30.0, max(base.period_s, 1.0))
    where = f" from {start_s:g} s" if start_s > 0.0 else ""
    return Scenario(
        name=name or f"trace-{Path(path).name}" + (f"@{start_s:g}s" if start_s > 0.0 else ""),
        link=base,
        flows=flows if flows is not None else (FlowSpec(delay_s=rtt_s / 2.0),),
        buffer=buffer if buffer is not None else BufferSpec(),
        loss=loss,
        duration_s=duration_s,
        description=f"Mahimahi trace {Path(path).name}{where}, {rtt_s * 1000:g} ms RTT",
    )


def mahimahi_scenarios(directory: str | PathLike[str], **kwargs: Any) -> dict[str, Scenario]:
    """One scenario per ``*.down`` / ``*.up`` trace in ``directory`` (empty if it is missing).

    Names are ``trace-<file name>``; ``kwargs`` go to `scenario_from_trace`.
    """
    d = Path(directory)
    if not d.is_dir():
        return {}
    out: dict[str, Scenario] = {}
    for p in sorted(d.iterdir()):
        if p.suffix in (".down", ".up") and p.is_file():
            sc = scenario_from_trace(p, **kwargs)
            out[sc.name] = sc
    return out


def base_rtt_s(scenario: Scenario) -> float:
    """The base RTT used to size the buffer: the first flow's."""
    return scenario.flows[0].base_rtt_s
