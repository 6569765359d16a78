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
    u = throughput_bps / max_throughput_bps if max_throughput_bps > 0.0 else 0.0
    u = min(u, 1.0)
    d = DELAY_TOLERANCE * min_rtt_us / rtt_us if rtt_us > 0.0 and min_rtt_us > 0.0 else 1.0
    d = min(d, 1.0)
    r = u * d - LOSS_PENALTY * loss_rate
    if r < -1.0:
        return -1.0
    if r > 1.0:
        return 1.0
    return r
