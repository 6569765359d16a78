"""The one domain-randomised link generator (training data for every learned model).

`random_link_scenario` draws one scenario: capacity, base RTT, buffer, a
capacity shape, a random-loss model and the number of flows, from the
ranges of a `RandomLinkConfig` (Aurora's randomised training links,
REFERENCES section 2, widened towards the cellular traces). The loss
predictor's trainer (`oxidize_ml.training.loss_data`) and the congestion
Gymnasium environment (`oxidize_ml.sim.gym.congestion_env.CongestionEnv`)
both draw their random links here, so the models see the same family of
paths. `random_trace_path` puts a trace (the capacity) behind a random base
RTT and buffer drawn from the same ranges.

The draws are made in a fixed order from the caller's generator, so a seed
gives the same scenario on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.sim.links import BufferSpec, CellularLink, ConstantLink, StepLink
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss, LossModel
from oxidize_ml.sim.scenarios import FlowSpec, Scenario
from oxidize_ml.sim.traces import CellularConfig

__all__ = ["DEFAULT_RANDOM_LINKS", "RandomLinkConfig", "random_link_scenario", "random_trace_path"]

_PACKET_BYTES = 1500.0
"""the simulator's packet size, for the buffer's BDP in packets"""
_MIN_BUFFER_PACKETS = 2
"""a buffer smaller than two packets cannot hold a window of two (the minimum cwnd)"""


def _check_range(name: str, r: tuple[float, float], *, lo: float, hi: float | None = None) -> None:
    if not isinstance(r, tuple) or len(r) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {r!r}")
    a = check_number(f"{name}[0]", r[0], lo=lo, hi=hi)
    b = check_number(f"{name}[1]", r[1], lo=lo, hi=hi)
    if a > b:
        raise ValueError(f"{name} must have low <= high, got {r!r}")


def _check_int_range(name: str, r: tuple[int, int], *, lo: int, hi: int) -> None:
    if not isinstance(r, tuple) or len(r) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {r!r}")
    a = check_int(f"{name}[0]", r[0], lo=lo, hi=hi)
    b = check_int(f"{name}[1]", r[1], lo=lo, hi=hi)
    if a > b:
        raise ValueError(f"{name} must have low <= high, got {r!r}")


@dataclass(frozen=True, slots=True)
class RandomLinkConfig:
    """Ranges of the random links. "log-uniform" ranges are drawn as exp(U(log lo, log hi)).

    The defaults are the loss predictor's training ranges: capacity 2-50
    Mbit/s, base RTT 10-800 ms, buffer 0.1-4 BDP (at least 2 packets);
    capacity constant (40 %), 2-4 pieces of random level (25 %) or the
    synthetic cellular model scaled to the capacity (35 %); random loss none
    (40 %), Bernoulli 0.05-3 % (25 %) or Gilbert-Elliott (35 %: entering a
    burst with probability 0.05-1 % per packet, bursts of 2-20 packets, 10-80 %
    of them lost); one flow (85 %) or 2-3 flows starting within 5 s.
    """

    capacity_bps: tuple[float, float] = (2e6, 50e6)
    """mean capacity, bits/s (log-uniform): cellular uplinks to good LTE/5G"""
    base_rtt_s: tuple[float, float] = (0.010, 0.800)
    """round-trip propagation delay, seconds (log-uniform); 800 ms covers satellite paths"""
    buffer_bdp: tuple[float, float] = (0.1, 4.0)
    """drop-tail buffer in BDPs of the mean capacity (log-uniform); cellular buffers are deep"""
    step_probability: float = 0.25
    """share of links whose capacity changes in steps"""
    cellular_probability: float = 0.35
    """share of links on the synthetic cellular model (the rest: constant capacity)"""
    step_pieces: tuple[int, int] = (2, 4)
    """constant pieces of a step link (uniform integer, inclusive); the changes fall at
    uniform times in [0.5 s, duration)"""
    step_factor: tuple[float, float] = (0.25, 4.0)
    """each later piece is the capacity times a log-uniform factor in this range"""
    bernoulli_probability: float = 0.25
    """share of links with independent (Bernoulli) random loss"""
    bernoulli_loss: tuple[float, float] = (0.0005, 0.03)
    """Bernoulli loss rate (log-uniform)"""
    burst_probability: float = 0.35
    """share of links with Gilbert-Elliott burst loss (the rest of the loss draw: none)"""
    burst_enter: tuple[float, float] = (0.0005, 0.01)
    """Gilbert-Elliott probability of entering a burst, per packet (log-uniform)"""
    burst_packets: tuple[float, float] = (2.0, 20.0)
    """mean burst length, packets (log-uniform; the leave probability is its inverse)"""
    burst_delivered: tuple[float, float] = (0.2, 0.9)
    """share of a burst's packets delivered (Gilbert-Elliott h, uniform): 10-80 % lost"""
    multi_flow_probability: float = 0.15
    """share of links shared by several flows"""
    extra_flows: tuple[int, int] = (1, 2)
    """flows besides the first on a shared link (uniform integer, inclusive)"""
    late_start_s: float = 5.0
    """the extra flows start at a uniform time in [0, late_start_s)"""

    def __post_init__(self) -> None:
        _check_range("capacity_bps", self.capacity_bps, lo=1e5)
        _check_range("base_rtt_s", self.base_rtt_s, lo=1e-3, hi=10.0)
        _check_range("buffer_bdp", self.buffer_bdp, lo=1e-3)
        check_number("step_probability", self.step_probability, hi=1.0)
        check_number("cellular_probability", self.cellular_probability, hi=1.0)
        if self.step_probability + self.cellular_probability > 1.0:
            raise ValueError("step_probability + cellular_probability must be <= 1")
        _check_int_range("step_pieces", self.step_pieces, lo=2, hi=100)
        _check_range("step_factor", self.step_factor, lo=1e-3)
        check_number("bernoulli_probability", self.bernoulli_probability, hi=1.0)
        _check_range("bernoulli_loss", self.bernoulli_loss, lo=1e-9, hi=0.5)
        check_number("burst_probability", self.burst_probability, hi=1.0)
        if self.bernoulli_probability + self.burst_probability > 1.0:
            raise ValueError("bernoulli_probability + burst_probability must be <= 1")
        _check_range("burst_enter", self.burst_enter, lo=1e-9, hi=1.0)
        _check_range("burst_packets", self.burst_packets, lo=1.0)
        _check_range("burst_delivered", self.burst_delivered, lo=0.0, hi=1.0)
        check_number("multi_flow_probability", self.multi_flow_probability, hi=1.0)
        _check_int_range("extra_flows", self.extra_flows, lo=1, hi=100)
        check_number("late_start_s", self.late_start_s)


DEFAULT_RANDOM_LINKS = RandomLinkConfig()


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def random_link_scenario(
    rng: np.random.Generator,
    *,
    name: str,
    duration_s: float,
    config: RandomLinkConfig = DEFAULT_RANDOM_LINKS,
) -> Scenario:
    """One domain-randomised scenario (link, buffer, random loss, flows) of ``duration_s``.

    Flow 0 starts at 0; every flow has the same base RTT. See `RandomLinkConfig`
    for the ranges.
    """
    if not isinstance(config, RandomLinkConfig):
        raise TypeError(f"config must be a RandomLinkConfig, got {type(config).__name__}")
    if check_number("duration_s", duration_s) <= 0.0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    cfg = config
    rate = _log_uniform(rng, *cfg.capacity_bps)
    rtt = _log_uniform(rng, *cfg.base_rtt_s)
    p_step, p_cell = cfg.step_probability, cfg.cellular_probability
    kind = rng.choice(3, p=[1.0 - p_step - p_cell, p_step, p_cell])
    link: ConstantLink | StepLink | CellularLink
    if kind == 0:
        link = ConstantLink(rate)
    elif kind == 1:
        n = int(rng.integers(cfg.step_pieces[0], cfg.step_pieces[1] + 1))
        times = np.sort(rng.uniform(0.5, duration_s, n - 1))
        rates = [rate * _log_uniform(rng, *cfg.step_factor) ** (i > 0) for i in range(n)]
        link = StepLink(
            ((0.0, rates[0]), *((float(t), r) for t, r in zip(times, rates[1:], strict=True)))
        )
    else:
        base = CellularConfig()
        factor = rate / float(np.mean(base.state_rates_bps))
        link = CellularLink(
            replace(base, state_rates_bps=tuple(r * factor for r in base.state_rates_bps))
        )
    bdp_packets = rate * rtt / 8.0 / _PACKET_BYTES
    packets = max(_MIN_BUFFER_PACKETS, round(_log_uniform(rng, *cfg.buffer_bdp) * bdp_packets))
    u = rng.uniform()
    loss: LossModel | None
    if u < 1.0 - cfg.bernoulli_probability - cfg.burst_probability:
        loss = None
    elif u < 1.0 - cfg.burst_probability:
        loss = BernoulliLoss(_log_uniform(rng, *cfg.bernoulli_loss))
    else:
        loss = GilbertElliottLoss(
            p=_log_uniform(rng, *cfg.burst_enter),
            r=1.0 / _log_uniform(rng, *cfg.burst_packets),
            k=1.0,
            h=float(rng.uniform(*cfg.burst_delivered)),
        )
    if rng.uniform() < 1.0 - cfg.multi_flow_probability:
        n_flows = 1
    else:
        n_flows = 1 + int(rng.integers(cfg.extra_flows[0], cfg.extra_flows[1] + 1))
    flows = tuple(
        FlowSpec(
            delay_s=rtt / 2.0,
            start_s=0.0 if i == 0 else float(rng.uniform(0.0, cfg.late_start_s)),
        )
        for i in range(n_flows)
    )
    return Scenario(
        name,
        link,
        flows,
        BufferSpec(packets=packets),
        loss=loss,
        duration_s=duration_s,
        description="domain-randomised training link",
    )


def random_trace_path(
    base: Scenario,
    rng: np.random.Generator,
    *,
    duration_s: float | None = None,
    config: RandomLinkConfig = DEFAULT_RANDOM_LINKS,
) -> Scenario:
    """``base`` (a trace scenario: the capacity) with one flow behind a random path.

    The base RTT is drawn log-uniform from ``config.base_rtt_s`` and the
    buffer log-uniform from ``config.buffer_bdp`` (BDPs of the trace's mean
    capacity), as `random_link_scenario` draws them; ``duration_s`` None keeps
    the base scenario's.
    """
    rtt = _log_uniform(rng, *config.base_rtt_s)
    bdp = _log_uniform(rng, *config.buffer_bdp)
    return replace(
        base,
        name=f"{base.name}-{rtt * 1e3:.0f}ms-{bdp:.1f}bdp",
        flows=(FlowSpec(delay_s=rtt / 2.0),),
        buffer=BufferSpec(bdp=bdp),
        duration_s=base.duration_s if duration_s is None else duration_s,
    )
