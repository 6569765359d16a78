"""`ResidualDqnPolicy`'s loss gate: no correction above the fallback while the path loses
more than the fallback tolerates; unchanged decisions below that."""

from __future__ import annotations

import numpy as np

from oxidize_ml.congestion import BbrFallback, CongestionObservation, CwndLimits, apply_action
from oxidize_ml.congestion.residual import ResidualDqnPolicy
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.types import DrlAction

MSS = 1500
RTT_US = 40_000.0
RATE = 12e6


class ConstQ:
    """A Q-model stub preferring one action."""

    def __init__(self, action: DrlAction) -> None:
        self.q = np.zeros(6, dtype=np.float32)
        self.q[int(action)] = 1.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.q


def drive(
    policy: ResidualDqnPolicy | BbrFallback, loss: float, steps: int = 1500
) -> list[tuple[DrlAction, int]]:
    """A steady 12 Mbit/s path at 40 ms with a constant loss ratio; (action, window) per
    interval, the window following the actions."""
    limits = CwndLimits()
    cwnd = limits.initial_cwnd
    out = []
    for k in range(1, steps + 1):
        now = 0.01 * k
        f = NetworkFeatures(
            rtt_us=RTT_US,
            rtt_var_us=1_000.0,
            bandwidth_bps=RATE,
            loss_rate=loss,
            loss_trend=0.0,
            inflight=cwnd / MSS,
            cwnd=float(cwnd),
        )
        obs = CongestionObservation(features=f, throughput_bps=RATE, cwnd_bytes=cwnd)
        policy.learn_one(obs, 0.0, now=now)
        a = policy.predict_one(obs, now=now)
        out.append((a, cwnd))
        cwnd = apply_action(a, cwnd, limits)
    return out


def test_no_growth_above_the_fallback_while_the_path_loses_beyond_its_tolerance() -> None:
    tolerance = BbrFallback().config.loss_threshold
    pol = ResidualDqnPolicy(ConstQ(DrlAction.Increase10))
    acts = drive(pol, loss=2.5 * tolerance)
    assert pol.decisions > 0  # the agent decided (cruise phases) ...
    # ... but every action is the fallback's own: Increase10 is never applied on top of it
    fb = BbrFallback()
    assert [a for a, _ in acts] == [a for a, _ in drive(fb, loss=2.5 * tolerance)]


def test_below_the_tolerance_corrections_apply_as_before() -> None:
    tolerance = BbrFallback().config.loss_threshold
    pol = ResidualDqnPolicy(ConstQ(DrlAction.Increase10))
    acts = drive(pol, loss=0.5 * tolerance)
    fb = drive(BbrFallback(), loss=0.5 * tolerance)
    assert [a for a, _ in acts] != [a for a, _ in fb]
    # the held Increase10 lifts the window above the fallback's
    assert np.mean([w for _, w in acts[-500:]]) > 1.1 * np.mean([w for _, w in fb[-500:]])


def test_decreases_pass_while_lossy() -> None:
    tolerance = BbrFallback().config.loss_threshold
    down = drive(ResidualDqnPolicy(ConstQ(DrlAction.Decrease10)), loss=2.5 * tolerance)
    fb = drive(BbrFallback(), loss=2.5 * tolerance)
    assert np.mean([w for _, w in down[-500:]]) < 0.9 * np.mean([w for _, w in fb[-500:]])
