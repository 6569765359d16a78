"""Bottleneck link descriptions: capacity model and drop-tail buffer.

A link spec is a small frozen value (it goes into a `Scenario`); its
``schedule(horizon_s, rng)`` builds the `OpportunitySchedule` the simulator
runs on. Four capacity models, one code path:

- `ConstantLink(rate_bps)`
- `StepLink(steps=((0, 24e6), (10, 6e6), ...))`: piecewise-constant rate
- `TraceLink(path)`: any Mahimahi trace file
- `CellularLink(config)`: the seeded synthetic cellular-like generator

`BufferSpec` sizes the drop-tail queue in bytes, packets, or (default) a
multiple of the bandwidth-delay product, BDP = mean capacity x base RTT of
the first flow; one BDP is the classic rule of thumb for a single long flow
(Villamizar and Song 1994) and keeps Reno's sawtooth from idling the link.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from os import PathLike, fspath
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.sim.traces import (
    MTU_BYTES,
    CellularConfig,
    OpportunitySchedule,
    load_mahimahi,
    synthetic_cellular_rates,
)


@dataclass(frozen=True, slots=True)
class ConstantLink:
    """Constant capacity."""

    rate_bps: float
    """capacity, bits per second"""

    def __post_init__(self) -> None:
        if check_number("rate_bps", self.rate_bps) <= 0.0:
            raise ValueError(f"rate_bps must be > 0, got {self.rate_bps!r}")

    @property
    def is_random(self) -> bool:
        return False

    def schedule(self, horizon_s: float, rng: np.random.Generator) -> OpportunitySchedule:
        return OpportunitySchedule.constant(self.rate_bps)

    def mean_rate_bps(self, horizon_s: float) -> float:
        return self.rate_bps

    def to_dict(self) -> dict[str, Any]:
        return {"model": "constant", "rate_bps": self.rate_bps}


@dataclass(frozen=True, slots=True)
class StepLink:
    """Piecewise-constant capacity: ``steps[i] = (start_s, rate_bps)``, first at 0 s.

    The last rate holds until the run's horizon; the pattern repeats after it.
    """

    steps: tuple[tuple[float, float], ...]
    """(time the rate starts, seconds; rate, bits per second), starting at 0 s"""

    def __post_init__(self) -> None:
        steps = tuple((float(t), float(r)) for t, r in self.steps)
        if not steps:
            raise ValueError("StepLink needs at least one (time_s, rate_bps) step")
        for i, (t, r) in enumerate(steps):
            check_number(f"steps[{i}].time_s", t)
            check_number(f"steps[{i}].rate_bps", r)
        if steps[0][0] != 0.0:
            raise ValueError(f"the first step must start at 0 s, got {steps[0][0]}")
        if any(b[0] <= a[0] for a, b in itertools.pairwise(steps)):
            raise ValueError("step times must be strictly increasing")
        if all(r == 0.0 for _, r in steps):
            raise ValueError("StepLink has no capacity: every rate is 0")
        object.__setattr__(self, "steps", steps)

    @property
    def is_random(self) -> bool:
        return False

    def schedule(self, horizon_s: float, rng: np.random.Generator) -> OpportunitySchedule:
        starts = [t for t, _ in self.steps if t < horizon_s]
        rates = [r for t, r in self.steps if t < horizon_s]
        return OpportunitySchedule.from_rates(starts, rates, horizon_s)

    def mean_rate_bps(self, horizon_s: float) -> float:
        total = 0.0
        for i, (t, r) in enumerate(self.steps):
            end = self.steps[i + 1][0] if i + 1 < len(self.steps) else horizon_s
            total += r * max(0.0, min(end, horizon_s) - min(t, horizon_s))
        return total / horizon_s

    def to_dict(self) -> dict[str, Any]:
        return {"model": "steps", "steps": [list(s) for s in self.steps]}


@dataclass(frozen=True, slots=True)
class TraceLink:
    """Capacity from a Mahimahi trace file (read, validated and cached on first use)."""

    path: str
    """path of the trace file"""
    _ms: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", fspath(self.path))
        if self._ms is None:
            object.__setattr__(self, "_ms", load_mahimahi(self.path))

    @property
    def is_random(self) -> bool:
        return False

    def _times_ms(self) -> np.ndarray:
        ms = self._ms
        if ms is None:  # __post_init__ always loads it; None only types the default
            raise RuntimeError(f"trace {self.path} was not loaded")
        return ms

    def schedule(self, horizon_s: float, rng: np.random.Generator) -> OpportunitySchedule:
        return OpportunitySchedule.from_mahimahi_ms(self._times_ms())

    @property
    def period_s(self) -> float:
        """Length of the trace before it repeats, seconds."""
        return float(self._times_ms()[-1]) / 1000.0

    def mean_rate_bps(self, horizon_s: float) -> float:
        return OpportunitySchedule.from_mahimahi_ms(self._times_ms()).mean_rate_bps

    def to_dict(self) -> dict[str, Any]:
        return {"model": "mahimahi", "path": self.path}


@dataclass(frozen=True, slots=True)
class CellularLink:
    """Synthetic cellular-like capacity (`CellularConfig` documents the model).

    The realisation is drawn from the rng the simulator passes: the run's
    seed, or the scenario's ``seed`` when it pins one.
    """

    config: CellularConfig = field(default_factory=CellularConfig)
    """generator parameters"""

    @property
    def is_random(self) -> bool:
        return True

    def schedule(self, horizon_s: float, rng: np.random.Generator) -> OpportunitySchedule:
        starts, rates = synthetic_cellular_rates(self.config, horizon_s, rng)
        return OpportunitySchedule.from_rates(starts, rates, horizon_s)

    def mean_rate_bps(self, horizon_s: float) -> float:
        """Expected rate of the model (stationary, ignoring outages' share)."""
        rates = self.config.state_rates_bps
        up_share = 1.0 / (1.0 + self.config.outage_rate_per_s * self.config.mean_outage_s)
        return float(sum(rates) / len(rates)) * up_share

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": "synthetic-cellular",
            "state_rates_bps": list(c.state_rates_bps),
            "mean_dwell_s": c.mean_dwell_s,
            "slot_s": c.slot_s,
            "sigma": c.sigma,
            "outage_rate_per_s": c.outage_rate_per_s,
            "mean_outage_s": c.mean_outage_s,
        }


LinkSpec = ConstantLink | StepLink | TraceLink | CellularLink


def trace_link(path: str | PathLike[str]) -> TraceLink:
    """A `TraceLink` for ``path`` (raises ``ValueError`` on a bad file)."""
    return TraceLink(fspath(path))


@dataclass(frozen=True, slots=True)
class BufferSpec:
    """Drop-tail buffer size: at most one of ``bdp``, ``packets`` or ``bytes``.

    With none given the size is 1 BDP (mean capacity x base RTT of the first flow). The
    result is never below one MTU, so the link can always hold one packet.
    """

    bdp: float | None = None
    """multiple of the bandwidth-delay product (the default, 1.0, when nothing is given)"""
    packets: int | None = None
    """size in 1500-byte packets"""
    bytes: int | None = None
    """size in bytes"""

    def __post_init__(self) -> None:
        given = [n for n in ("bdp", "packets", "bytes") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"BufferSpec takes at most one of bdp, packets, bytes; got {given}")
        if self.bdp is not None and check_number("bdp", self.bdp) <= 0.0:
            raise ValueError(f"bdp must be > 0, got {self.bdp!r}")
        if self.packets is not None:
            check_int("packets", self.packets, lo=1)
        if self.bytes is not None:
            check_int("bytes", self.bytes, lo=1)

    def size_bytes(self, mean_rate_bps: float, base_rtt_s: float) -> int:
        """Buffer size in bytes for a link of ``mean_rate_bps`` and ``base_rtt_s``."""
        if self.bytes is not None:
            size = self.bytes
        elif self.packets is not None:
            size = self.packets * MTU_BYTES
        else:
            bdp = 1.0 if self.bdp is None else self.bdp
            size = math.ceil(bdp * mean_rate_bps * base_rtt_s / 8.0)
        return max(size, MTU_BYTES)

    def to_dict(self) -> dict[str, Any]:
        return {"bdp": self.bdp, "packets": self.packets, "bytes": self.bytes}
