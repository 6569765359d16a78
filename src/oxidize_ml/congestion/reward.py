"""The congestion controller's reward: one bounded formula used everywhere.

    u = throughput / max_throughput            (utilisation estimate, [0, 1])
    d = min(1, 1.25 * min_rtt / rtt)           (delay factor, Orca-style)
    r = clip(u * d - 5 * loss_rate, -1, 1)

Never infinite: zero throughput gives r = -5 * loss_rate, not minus infinity
(the earlier engine's bug). ``max_throughput`` is the caller's windowed max of
delivery rate; min_rtt its windowed minimum RTT.
"""

from __future__ import annotations

LOSS_PENALTY = 5.0
DELAY_TOLERANCE = 1.25


def congestion_reward(
    *,
    throughput_bps: float,
    max_throughput_bps: float,
    rtt_us: float,
    min_rtt_us: float,
    loss_rate: float,
) -> float:
    """The reward of one interval (formula in the module docstring)."""
    return reward_of(throughput_bps, max_throughput_bps, rtt_us, min_rtt_us, loss_rate)


def reward_of(
    throughput_bps: float,
    max_throughput_bps: float,
    rtt_us: float,
    min_rtt_us: float,
    loss_rate: float,
    /,
) -> float:
    """`congestion_reward` with positional arguments: the state encoder calls it once
    per interval, where keyword passing is a measurable share of the cost."""
    # ``x if x < 1.0 else 1.0`` is ``min(x, 1.0)`` without a builtin call.
    u = throughput_bps / max_throughput_bps if max_throughput_bps > 0.0 else 0.0
    u = 1.0 if u > 1.0 else u  # noqa: FURB136
    d = DELAY_TOLERANCE * min_rtt_us / rtt_us if rtt_us > 0.0 and min_rtt_us > 0.0 else 1.0
    d = 1.0 if d > 1.0 else d  # noqa: FURB136
    r = u * d - LOSS_PENALTY * loss_rate
    if r < -1.0:
        return -1.0
    if r > 1.0:
        return 1.0
    return r
