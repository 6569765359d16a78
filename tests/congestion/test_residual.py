"""`ResidualDqnPolicy`: Maintain is the fallback, corrections compose with it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from oxidize_ml.congestion import BbrFallback, CongestionObservation, CwndLimits, apply_action
from oxidize_ml.congestion.residual import (
    INPUT_NAMES,
    N_INPUTS,
    ResidualDqnPolicy,
    residual_reward,
)
from oxidize_ml.features import FEATURE_NAMES, N_FEATURES, NetworkFeatures
from oxidize_ml.types import DrlAction

MSS = 1500


class ConstQ:
    """A Q-model stub preferring one action."""

    def __init__(self, action: DrlAction) -> None:
        self.q = np.zeros(6, dtype=np.float32)
        self.q[int(action)] = 1.0
        self.seen: list[np.ndarray] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(x))
        return self.q


def walk(seed: int, steps: int) -> list[tuple[float, float, float, float]]:
    rng = random.Random(seed)
    t = 0.0
    out = []
    for _ in range(steps):
        t += 0.01
        out.append(
            (
                t,
                rng.choice((0.0, rng.uniform(3e4, 2e5))),
                rng.uniform(0, 3e7),
                rng.choice((0.0, 0.0, 0.02, 0.6)),
            )
        )
    return out


def drive(policy: object, steps: list[tuple[float, float, float, float]]) -> list[DrlAction]:
    limits = CwndLimits()
    cwnd = limits.initial_cwnd
    out = []
    for now, rtt, thr, loss in steps:
        f = NetworkFeatures(
            rtt_us=rtt,
            rtt_var_us=0.0,
            bandwidth_bps=thr,
            loss_rate=loss,
            loss_trend=0.0,
            inflight=cwnd / MSS,
            cwnd=float(cwnd),
        )
        obs = CongestionObservation(features=f, throughput_bps=thr, cwnd_bytes=cwnd)
        policy.learn_one(obs, 0.0, now=now)  # type: ignore[attr-defined]
        a = policy.predict_one(obs, now=now)  # type: ignore[attr-defined]
        out.append(a)
        cwnd = apply_action(a, cwnd, limits)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maintain_correction_is_exactly_the_fallback(seed: int) -> None:
    steps = walk(seed, 2000)
    assert drive(ResidualDqnPolicy(ConstQ(DrlAction.Maintain)), steps) == drive(
        BbrFallback(), steps
    )
    assert drive(ResidualDqnPolicy(None), steps) == drive(BbrFallback(), steps)


def test_corrections_rescale_the_fallbacks_window() -> None:
    steps = walk(3, 3000)
    fb = drive(BbrFallback(), steps)
    down = drive(ResidualDqnPolicy(ConstQ(DrlAction.Decrease10)), steps)
    limits = CwndLimits()

    def final(actions: list[DrlAction]) -> list[int]:
        w = limits.initial_cwnd
        out = []
        for a in actions:
            w = apply_action(a, w, limits)
            out.append(w)
        return out

    # a held Decrease10 correction keeps the window well below the fallback's
    assert np.mean(final(down)) < 0.8 * np.mean(final(fb))


def test_state_is_bounded_and_the_agent_decides_about_once_per_rtt() -> None:
    q = ConstQ(DrlAction.Increase5)
    pol = ResidualDqnPolicy(q)
    drive(pol, walk(4, 1000))
    states = np.array(q.seen)
    assert states.shape[1] == N_INPUTS == len(INPUT_NAMES)
    assert np.isfinite(states).all() and states.min() >= -1.0
    # the schema features (clipped at 10) first, then the residual's own inputs (<= 2)
    assert INPUT_NAMES[:N_FEATURES] == FEATURE_NAMES
    assert states[:, :N_FEATURES].max() <= 10.0 and states[:, N_FEATURES:].max() <= 2.0
    # 10 s of 10-ms intervals, decisions held 20-200 ms: far fewer decisions than intervals
    assert 50 <= pol.decisions <= 500


def test_fallback_collapse_passes_through_and_reward_is_bounded() -> None:
    pol = ResidualDqnPolicy(ConstQ(DrlAction.Increase10))
    acts = drive(pol, [(0.01 * k, 40_000.0, 1e7, 0.9) for k in range(1, 400)])
    assert DrlAction.SlowStart in acts  # persistent congestion: the fallback's call
    assert residual_reward(1.0, 0.0, 0.0) == 1.0
    assert residual_reward(0.0, 0.9, 1.0) == -1.0


def test_fork_shares_weights_not_state() -> None:
    pol = ResidualDqnPolicy(ConstQ(DrlAction.Maintain))
    drive(pol, walk(5, 300))
    twin = pol.fork()
    assert twin.q_model is pol.q_model and twin.state is None
    assert twin.base is not pol.base


def test_base_is_its_own_and_not_the_engines_fallback_slot() -> None:
    # The engine hands its shared fallback to a policy's ``fallback`` attribute; the
    # residual's corrected controller must not be that one (it would learn twice).
    pol = ResidualDqnPolicy(ConstQ(DrlAction.Maintain))
    assert not hasattr(pol, "fallback") and isinstance(pol.base, BbrFallback)


def test_states_along_probe_connections_are_finite_rows_of_the_input_size() -> None:
    from oxidize_ml.congestion.residual import states_along
    from oxidize_ml.models.probe import probe_connections

    xs = states_along(probe_connections())
    assert xs.ndim == 2 and xs.shape[1] == N_INPUTS and len(xs) >= 100
    assert np.isfinite(xs).all()
    assert np.ptp(xs, axis=0).max() > 0.0  # the probes move the state
