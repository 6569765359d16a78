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


def observation(rtt: float, thr: float, loss: float, cwnd: int) -> CongestionObservation:
    """One interval's observation of a flow with window ``cwnd`` (bytes), all of it in flight."""
    f = NetworkFeatures(
        rtt_us=rtt,
        rtt_var_us=0.0,
        bandwidth_bps=thr,
        loss_rate=loss,
        loss_trend=0.0,
        inflight=cwnd / MSS,
        cwnd=float(cwnd),
    )
    return CongestionObservation(features=f, throughput_bps=thr, cwnd_bytes=cwnd)


def drive(policy: object, steps: list[tuple[float, float, float, float]]) -> list[DrlAction]:
    limits = CwndLimits()
    cwnd = limits.initial_cwnd
    out = []
    for now, rtt, thr, loss in steps:
        obs = observation(rtt, thr, loss, cwnd)
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


def _eager_state(
    obs: CongestionObservation,
    fb: BbrFallback,
    fb_action: DrlAction,
    last_action: int,
    thr_s: float,
    prev_q: float,
    hist: list[tuple[float, float, float]],
) -> np.ndarray:
    """The state as the policy built it eagerly every interval before it became lazy."""
    from oxidize_ml.congestion.bbr import BbrPhase

    f = obs.features
    max_bw, min_rtt, rtt = fb.max_bw_bps, fb.min_rtt_us, f.rtt_us
    u = min(obs.throughput_bps / max_bw, 2.0) if max_bw > 0.0 else 0.0
    us = min(thr_s / max_bw, 2.0) if max_bw > 0.0 else 0.0
    q = 1.0 - min_rtt / rtt if rtt > 0.0 and np.isfinite(min_rtt) and min_rtt < rtt else 0.0
    bdp = max_bw * min_rtt * 1.25e-7 if max_bw > 0.0 and np.isfinite(min_rtt) else 0.0
    tgt = fb.target_cwnd_bytes
    s = np.zeros(N_INPUTS, dtype=np.float32)
    s[:N_FEATURES] = f.to_vector()
    s[N_FEATURES : N_FEATURES + 7] = (
        u,
        us,
        q,
        max(-1.0, min(1.0, q - prev_q)),
        f.loss_rate,
        min(obs.cwnd_bytes / (4.0 * bdp), 1.0) if bdp > 0.0 else 0.0,
        min(obs.cwnd_bytes / tgt, 2.0) if tgt > 0.0 else 1.0,
    )
    o = N_FEATURES + 7
    s[o + int(fb_action)] = 1.0
    s[o + 6 + list(BbrPhase).index(fb.state)] = 1.0
    s[o + 6 + len(BbrPhase) + last_action] = 1.0
    pos = o + 12 + len(BbrPhase)
    for k, row in enumerate(hist):
        s[pos + 3 * k : pos + 3 * k + 3] = row
    return s


@pytest.mark.parametrize("seed", [0, 1])
def test_state_built_when_read_is_the_intervals_state(seed: int) -> None:
    # The vector is written only when read (once per decision on the engine's path);
    # whenever it is read it must be exactly what that interval's observation gives.
    q = ConstQ(DrlAction.Decrease5)
    pol = ResidualDqnPolicy(q)
    limits = CwndLimits()
    cwnd = limits.initial_cwnd
    hist: list[tuple[float, float, float]] = []
    prev_q = 0.0
    for k, (now, rtt, thr, loss) in enumerate(walk(seed, 600)):
        obs = observation(rtt, thr, loss, cwnd)
        last = pol.last_action
        pol.learn_one(obs, 0.0, now=now)
        thr_s = pol.features.smoothed_throughput_bps
        n_seen = len(q.seen)
        a = pol.predict_one(obs, now=now)
        if k % 7 == 0 or len(q.seen) > n_seen:
            want = _eager_state(obs, pol.base, pol._fb_action, last, thr_s, prev_q, hist)
            got = q.seen[-1] if len(q.seen) > n_seen else pol.state
            np.testing.assert_array_equal(got, want)
        state_q = pol.features.queue_share
        mx = pol.base.max_bw_bps
        us = min(thr_s / mx, 2.0) if mx > 0.0 else 0.0
        hist = [(min(us, 1.0), state_q, loss), *hist][:3]
        prev_q = state_q
        cwnd = apply_action(a, cwnd, limits)
    assert len(q.seen) > 20
