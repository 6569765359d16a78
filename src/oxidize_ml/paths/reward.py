"""Per-traffic-type path scoring: the reward after use, the bonus before it.

Both are convex combinations of saturating scores in [0, 1], so both stay in
[0, 1] whatever the measurements (no infinities, unlike a raw ``1 / rtt``):

    latency_score    = exp(-rtt_us / RTT_REF_US)
    jitter_score     = exp(-rtt_var_us / JITTER_REF_US)
    loss_score       = exp(-loss_rate / LOSS_REF)
    throughput_score = 1 - exp(-throughput_mbps / THROUGHPUT_REF_MBPS)

`calculate_path_reward` weighs latency, loss and throughput per traffic type
(`REWARD_WEIGHTS`): the spec's table ranks Gaming/VoIP by latency, Streaming
and Bulk by throughput (Bulk being loss tolerant), Web balanced.
`contextual_score` is what the selector knows *before* sending: the latest
`PathMetrics`, weighed as the spec's "contextual bonus" says (`BONUS_WEIGHTS`):
Gaming/VoIP low RTT and low jitter, Streaming/Bulk high bandwidth, Web both.
"""

from __future__ import annotations

import math

from oxidize_ml._validate import check_number
from oxidize_ml.types import PathMetrics, TrafficContext

RTT_REF_US = 50_000.0
"""RTT at which the latency score is 1/e, microseconds: 10 ms scores 0.82,
50 ms 0.37, 150 ms 0.05, so paths differ where interactive traffic cares"""
JITTER_REF_US = 10_000.0
"""RTT variation at which the jitter score is 1/e, microseconds (a 10 ms
jitter buffer is typical for VoIP)"""
LOSS_REF = 0.02
"""loss rate at which the loss score is 1/e: 1 % scores 0.61, 5 % 0.08"""
THROUGHPUT_REF_MBPS = 50.0
"""throughput at which the throughput score is 1 - 1/e = 0.63, Mbit/s:
10 Mbit/s scores 0.18, 100 Mbit/s 0.86 (saturating: a 10 Gbit/s path is not
200 times better than a 50 Mbit/s one for any single flow)"""

REWARD_WEIGHTS: dict[TrafficContext, tuple[float, float, float]] = {
    # (latency, loss, throughput); each row sums to 1
    TrafficContext.Gaming: (0.6, 0.3, 0.1),
    TrafficContext.VoIP: (0.5, 0.4, 0.1),
    TrafficContext.Streaming: (0.1, 0.3, 0.6),
    TrafficContext.Bulk: (0.05, 0.15, 0.8),
    TrafficContext.Web: (0.4, 0.2, 0.4),
}
"""weights of (latency, loss, throughput) scores in the reward, per traffic type"""

BONUS_WEIGHTS: dict[TrafficContext, tuple[float, float, float]] = {
    # (latency, jitter, bandwidth); each row sums to 1
    TrafficContext.Gaming: (0.6, 0.4, 0.0),
    TrafficContext.VoIP: (0.5, 0.5, 0.0),
    TrafficContext.Streaming: (0.0, 0.0, 1.0),
    TrafficContext.Bulk: (0.0, 0.0, 1.0),
    TrafficContext.Web: (0.4, 0.1, 0.5),
}
"""weights of (latency, jitter, bandwidth) scores in the contextual bonus"""


def _context(context: object) -> TrafficContext:
    if isinstance(context, TrafficContext):
        return context
    if isinstance(context, int) and not isinstance(context, bool):
        try:
            return TrafficContext(context)
        except ValueError:
            pass
    raise ValueError(f"context must be one of {[c.name for c in TrafficContext]}, got {context!r}")


def calculate_path_reward(
    context: TrafficContext, rtt_us: float, loss_rate: float, throughput_mbps: float
) -> float:
    """Reward in [0, 1] for having used a path for ``context`` traffic.

    Parameters
    ----------
    context
        Traffic type; selects the `REWARD_WEIGHTS` row.
    rtt_us
        Measured round-trip time, microseconds, >= 0.
    loss_rate
        Measured loss ratio in [0, 1].
    throughput_mbps
        Achieved throughput, Mbit/s, >= 0.

    Examples
    --------
    >>> fast = calculate_path_reward(TrafficContext.Gaming, 10_000, 0.0, 5.0)
    >>> fat = calculate_path_reward(TrafficContext.Gaming, 100_000, 0.0, 100.0)
    >>> fast > fat
    True
    >>> calculate_path_reward(TrafficContext.Bulk, 10_000, 0.0, 5.0) < calculate_path_reward(
    ...     TrafficContext.Bulk, 100_000, 0.0, 100.0)
    True
    """
    ctx = _context(context)
    rtt = check_number("rtt_us", rtt_us)
    loss = check_number("loss_rate", loss_rate, hi=1.0)
    tput = check_number("throughput_mbps", throughput_mbps)
    w_lat, w_loss, w_tput = REWARD_WEIGHTS[ctx]
    r = (
        w_lat * math.exp(-rtt / RTT_REF_US)
        + w_loss * math.exp(-loss / LOSS_REF)
        + w_tput * (1.0 - math.exp(-tput / THROUGHPUT_REF_MBPS))
    )
    # Rounding can push a sum of weights 1 by an ulp past 1.
    return min(1.0, max(0.0, r))


def contextual_score(context: TrafficContext, metrics: PathMetrics) -> float:
    """How well ``metrics`` suit ``context`` traffic, in [0, 1] (`BONUS_WEIGHTS`)."""
    ctx = _context(context)
    if not isinstance(metrics, PathMetrics):
        raise TypeError(f"metrics must be PathMetrics, got {type(metrics).__name__}")
    w_lat, w_jit, w_bw = BONUS_WEIGHTS[ctx]
    s = (
        w_lat * math.exp(-metrics.rtt_us / RTT_REF_US)
        + w_jit * math.exp(-metrics.rtt_var_us / JITTER_REF_US)
        + w_bw * (1.0 - math.exp(-metrics.bandwidth_bps / 1e6 / THROUGHPUT_REF_MBPS))
    )
    return min(1.0, max(0.0, s))
