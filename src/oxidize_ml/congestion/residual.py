"""A learned correction on top of the BBR-style fallback (Orca's two levels).

`ResidualDqnPolicy` keeps the spec's DQN and six actions but changes what the
agent decides: each decision interval

1. the fixed fallback (`oxidize_ml.congestion.bbr.BbrFallback`) learns from
   the observation and proposes its action ``a_fb``; its window would be
   ``base = apply_action(a_fb, cwnd)``;
2. the DQN picks one of the six actions ``a`` from a compact, scale-free
   state (below) and rescales that window: ``target = apply_action(a, base)``,
   kept within [`MIN_SCALE`, `MAX_SCALE`] x the fallback's own target
   (``SlowStart``, the strongest correction, steers to the floor). The agent
   acts only while the fallback cruises (PROBE_BW DOWN / CRUISE): its
   bandwidth discovery (STARTUP, DRAIN, REFILL, UP) and PROBE_RTT are its own;
   The agent decides about once per smoothed RTT (20-200 ms) and its
   correction holds until its next decision;
3. the policy returns the shared action closest to ``target`` from ``cwnd``
   (`oxidize_ml.congestion.nearest_action`), so the engine and its
   `DeliveryEnvelope` apply it as any other policy's.

``Maintain`` is therefore exactly the fallback's behaviour, and the agent only
learns corrections (Abbasloo et al., "Classic meets modern", SIGCOMM 2020).
The fallback's own collapses (PROBE_RTT entry, persistent congestion) pass
through unchanged.

Loss gate: a correction that would take the window above the fallback's own
proposal does not apply while the share of packets lost over about the last
smoothed RTT exceeds the fallback's loss tolerance
(``BbrConfig.loss_threshold``, BBR v3's 2 %: above it BBR itself reads the
data in flight as too high); the fallback's action applies instead, and the
held correction resumes when the loss falls back. Decreases always pass, and
while loss stays under the tolerance decisions are unchanged. Without it, on
shallow-buffered, bursty links (a 12-packet queue at 40 ms on the held-out
ATT uplink) a held Increase10 went on growing the window, 10 % per interval,
into a queue that had just overflowed, before the fallback's once-a-round
loss response could act: more drops than the fallback alone, and tail drops
just before an outage that left the flow waiting for a probe timeout.

State (`N_INPUTS` floats, all bounded; names in `INPUT_NAMES`)
---------------------------------------------------------------
- the 8 schema features (`oxidize_ml.features.NetworkFeatures.to_vector`,
  normalised and clipped): the state starts with them, as the DQN's does, so
  a model file carries the feature schema it was trained for and a model
  directory's schema check covers this policy too
- ``thr / max_bw`` (interval delivery rate over the fallback's windowed max), [0, 2]
- ``thr_s / max_bw``: the same on a rate smoothed over about one smoothed RTT
- ``1 - min_rtt / rtt``: the share of the RTT that is queueing, [0, 1)
- its change since the previous interval, [-1, 1]
- loss ratio of the interval, [0, 1]
- ``cwnd / (4 BDP)`` with the fallback's BDP, [0, 1]
- ``cwnd / fallback target``: where the window sits in the correction range, [0, 2]
- one-hot of the fallback's proposed action (6) and of its phase (7)
- one-hot of the agent's previous action (6)
- the previous `HISTORY` intervals' (smoothed utilisation, queueing share, loss)

The training reward (`residual_reward`, used by
`oxidize_ml.training.residual_dqn`) is computed from the same quantities:
utilisation on the smoothed rate (not one noisy 10-ms sample), the queueing
share, and loss.
"""

# Clamps in `ResidualFeatures.update` are conditional expressions, not min()/max():
# builtin calls are a measurable share of a per-interval update (issue 9).
# ruff: noqa: PLR1730, FURB136

from __future__ import annotations

import math
from os import PathLike, fspath
from typing import Any

import numpy as np

from oxidize_ml._mypyc import mypyc_attr
from oxidize_ml.congestion.actions import N_ACTIONS, CwndLimits, apply_action, nearest_action
from oxidize_ml.congestion.bbr import BbrFallback, BbrPhase
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.features import FEATURE_NAMES, N_FEATURES
from oxidize_ml.types import DrlAction

__all__ = [
    "HISTORY",
    "INPUT_NAMES",
    "N_INPUTS",
    "POLICY_NAME",
    "ResidualDqnPolicy",
    "ResidualFeatures",
    "residual_reward",
    "states_along",
]

POLICY_NAME = "residual-dqn"
"""what a model directory's congestion entry records (``training.policy``) for this policy"""
HISTORY = 3
"""previous intervals of (smoothed utilisation, queueing share, loss) in the state"""
_N_PHASES = len(BbrPhase)
_F = N_FEATURES
"""offset of the residual's own inputs, after the schema features"""
N_INPUTS = _F + 7 + N_ACTIONS + _N_PHASES + N_ACTIONS + 3 * HISTORY
"""size of the agent's state vector"""
INPUT_NAMES: tuple[str, ...] = (
    *FEATURE_NAMES,
    "utilisation",
    "utilisation_smoothed",
    "queue_share",
    "queue_share_change",
    "loss",
    "cwnd_over_4bdp",
    "cwnd_over_fallback_target",
    *(f"fallback_action_{a.name}" for a in DrlAction),
    *(f"fallback_phase_{p.value}" for p in BbrPhase),
    *(f"previous_action_{a.name}" for a in DrlAction),
    *(
        f"history{k}_{what}"
        for k in range(1, HISTORY + 1)
        for what in ("utilisation", "queue_share", "loss")
    ),
)
"""the state's inputs in order (a model directory's ``inputs`` for this policy)"""
MIN_SCALE = 0.7
"""corrections never steer the window below this share of the fallback's target"""
MAX_SCALE = 1.5
"""nor above this multiple of it"""
HOLD_MIN_S = 0.02
"""shortest time an agent's correction holds, seconds"""
HOLD_MAX_S = 0.2
"""longest time an agent's correction holds (about one smoothed RTT in between), seconds"""
DELAY_WEIGHT = 0.5
"""reward: weight of the queueing share 1 - min_rtt / rtt"""
LOSS_WEIGHT = 5.0
"""reward: weight of the loss ratio (as `oxidize_ml.congestion.reward`)"""
SMOOTH_TAU_MIN_S = 0.02
"""the smoothed delivery rate and the loss gate average over one smoothed RTT, at least
this long, seconds"""
_ACTIONS = tuple(DrlAction)
_AGENT_PHASES = frozenset({BbrPhase.PROBE_BW_DOWN, BbrPhase.PROBE_BW_CRUISE})
"""fallback phases in which the agent's correction applies (the cruise window)"""
_PHASE_INDEX = {p: i for i, p in enumerate(BbrPhase)}


def residual_reward(util_smoothed: float, queue_share: float, loss: float) -> float:
    """``clip(u_s - DELAY_WEIGHT q - LOSS_WEIGHT loss, -1, 1)``: utilisation of the smoothed
    delivery rate, minus the queueing share of the RTT, minus loss."""
    r = min(util_smoothed, 1.0) - DELAY_WEIGHT * queue_share - LOSS_WEIGHT * loss
    return max(-1.0, min(r, 1.0))


class ResidualFeatures:
    """Builds the agent's state from the observation and the fallback (one call per interval).

    `update` runs every interval but does only what the next interval needs
    (the smoothed rate, the queueing share, the history) and keeps references
    to the rest; the float32 vector is written when `state` is read, and the
    reward when `last_reward` is. The agent reads the state once per decision
    (about once per smoothed RTT), right after the interval's `update`, so the
    vector read is exactly the one that interval describes.
    """

    __slots__ = (
        "_alpha",
        "_hist",
        "_last_t",
        "_pending",
        "_prev_q",
        "_reward_in",
        "_state",
        "_tau",
        "_thr_s",
    )

    @property
    def smoothed_throughput_bps(self) -> float:
        """delivery rate smoothed over about one smoothed RTT (the reward's utilisation)"""
        return self._thr_s

    @property
    def tau_s(self) -> float:
        """time constant of the last smoothing step, seconds"""
        return self._tau

    @property
    def smoothing_alpha(self) -> float:
        """weight of the last interval in the smoothing step of the last update"""
        return self._alpha

    @property
    def queue_share(self) -> float:
        """1 - min_rtt / rtt at the last update"""
        return self._prev_q

    @property
    def last_reward(self) -> float:
        """`residual_reward` of the last update (0.0 before the first)"""
        us, q, loss = self._reward_in
        return residual_reward(us, q, loss)

    def __init__(self) -> None:
        # previous intervals' (smoothed utilisation, queueing share, loss), newest first,
        # flat as the state lays them out; replaced (never mutated) each update, so a
        # pending state keeps the history it was built from
        self._hist: tuple[float, ...] = ()
        self._thr_s = 0.0
        self._tau = 0.1
        self._alpha = 0.0
        self._last_t: float | None = None
        self._prev_q = 0.0
        self._reward_in = (0.0, 0.0, 0.0)  # (utilisation <= 1, queueing share, loss)
        self._state: np.ndarray | None = None  # allocated on first read
        self._pending: tuple[Any, ...] | None = None

    @property
    def state(self) -> np.ndarray:
        """The agent's state [`N_INPUTS`] float32 at the last `update` (zeros before).

        One buffer, overwritten in place: copy it to keep it. Read it before
        the fallback learns the next interval (its estimates are read here).
        """
        s = self._state
        if s is None:
            s = self._state = np.zeros(N_INPUTS, dtype=np.float32)
        p = self._pending
        if p is not None:
            self._pending = None
            obs, fb, u, us, q, dq, i_action, i_phase, i_last, hist = p
            max_bw = fb.max_bw_bps
            min_rtt = fb.min_rtt_us
            cwnd = obs.cwnd_bytes
            bdp = max_bw * min_rtt * 1.25e-7 if max_bw > 0.0 and math.isfinite(min_rtt) else 0.0
            w = min(cwnd / (4.0 * bdp), 1.0) if bdp > 0.0 else 0.0
            tgt = fb.target_cwnd_bytes
            cw = min(cwnd / tgt, 2.0) if tgt > 0.0 else 1.0
            s.fill(0.0)
            obs.features.write_vector(s)  # the first _F entries
            s[_F : _F + 7] = (u, us, q, dq, obs.features.loss_rate, w, cw)
            o = _F + 7
            s[o + i_action] = 1.0
            s[o + N_ACTIONS + i_phase] = 1.0
            s[o + N_ACTIONS + _N_PHASES + i_last] = 1.0
            if hist:
                pos = o + 2 * N_ACTIONS + _N_PHASES
                s[pos : pos + len(hist)] = hist
        return s

    def update(
        self,
        obs: CongestionObservation,
        fb: BbrFallback,
        fb_action: DrlAction,
        last_action: int,
        *,
        now: float,
    ) -> None:
        f = obs.features
        thr = obs.throughput_bps
        max_bw = fb.max_bw_bps
        rtt = f.rtt_us
        min_rtt = fb.min_rtt_us
        last_t = self._last_t
        dt = 0.01 if last_t is None else (now - last_t if now > last_t else 0.0)
        self._last_t = now
        # EWMA with a time constant of about one smoothed RTT (at least 20 ms)
        rtt_s = rtt * 1e-6
        tau = (rtt_s if rtt_s > SMOOTH_TAU_MIN_S else SMOOTH_TAU_MIN_S) if rtt > 0.0 else 0.1
        self._tau = tau
        alpha = self._alpha = 1.0 - math.exp(-dt / tau) if dt > 0.0 else 0.0
        thr_s = self._thr_s = self._thr_s + alpha * (thr - self._thr_s)
        # clamps as conditional expressions: min()/max() calls are a measurable share here
        if max_bw > 0.0:
            u = thr / max_bw
            if u > 2.0:
                u = 2.0
            us = thr_s / max_bw
            if us > 2.0:
                us = 2.0
        else:
            u = us = 0.0
        q = 1.0 - min_rtt / rtt if rtt > 0.0 and math.isfinite(min_rtt) and min_rtt < rtt else 0.0
        dq = q - self._prev_q
        dq = -1.0 if dq < -1.0 else (1.0 if dq > 1.0 else dq)
        self._prev_q = q
        hist = self._hist
        # the fallback's phase is read now: `state` may be read after it moved on
        self._pending = (
            obs,
            fb,
            u,
            us,
            q,
            dq,
            int(fb_action),
            _PHASE_INDEX[fb.state],
            last_action,
            hist,
        )
        u1 = us if us < 1.0 else 1.0
        loss = f.loss_rate
        self._reward_in = (u1, q, loss)
        self._hist = (u1, q, loss, *hist[: 3 * (HISTORY - 1)])


# The trainer's recorder subclasses it, also when this module is compiled.
@mypyc_attr(allow_interpreted_subclasses=True)
class ResidualDqnPolicy:
    """Fallback + learned correction: a `Policy[CongestionObservation, DrlAction]`.

    Parameters
    ----------
    q_model
        Object with ``forward(x [N_INPUTS]) -> Q [6]`` (`oxidize_ml.runtime.MlpModel`), or
        None for the pure fallback (every correction Maintain).
    limits
        Window bounds (shared with the fallback).
    actor
        Optional ``actor(state, q_values) -> int`` overriding the greedy choice (training
        exploration); None: greedy.
    base
        The fallback this policy corrects (default: a fresh `BbrFallback`). It is
        this policy's own, fed by `learn_one`, and named ``base`` rather than
        ``fallback``: the engine hands its shared fallback to a policy's
        ``fallback`` attribute, which would then be fed twice per interval.
    """

    name = "residual-dqn"
    is_learned = True

    def __init__(
        self,
        q_model: Any = None,
        *,
        limits: CwndLimits | None = None,
        actor: Any = None,
        base: BbrFallback | None = None,
    ) -> None:
        self.limits = limits if limits is not None else CwndLimits()
        self.base = base if base is not None else BbrFallback(limits=self.limits)
        self.q_model = q_model
        self.actor = actor
        self.features = ResidualFeatures()
        self.last_action = int(DrlAction.Maintain)
        self._fb_action = DrlAction.Maintain
        self._learned = False  # a first observation was seen (the state exists)
        self._next_decision = -math.inf
        self._decided_at = -math.inf
        self.decisions = 0
        self.decided = False
        self.is_learned = q_model is not None
        # loss gate (module docs): bytes lost and delivered per interval, smoothed over
        # about one smoothed RTT, and the time of the last observation
        self._lost_s = 0.0
        self._delivered_s = 0.0
        self._loss_at: float | None = None

    @classmethod
    def load(
        cls, path: str | PathLike[str], *, limits: CwndLimits | None = None
    ) -> ResidualDqnPolicy:
        """A greedy policy from a ``dqn`` safetensors file written by
        `oxidize_ml.training.residual_dqn.save` (numpy runtime; ``ValueError`` when the
        file's input size is not `N_INPUTS`, `ModelLoadError` for a bad file)."""
        from oxidize_ml.runtime.numpy_models import MlpModel

        model = MlpModel.load(fspath(path), kind="dqn")
        n = model.config.n_inputs
        if n != N_INPUTS:
            raise ValueError(f"n_inputs must be {N_INPUTS} for a residual DQN, got {n}")
        return cls(model, limits=limits)

    def adopt_base(self, base: BbrFallback) -> bool:
        """Correct ``base`` (the engine's per-connection fallback) instead of an own copy.

        The engine keeps a BBR-style fallback per connection, fed every
        interval, for the intervals a learned output is unusable. When it has
        the same constants and window bounds as this policy's base, the two
        would hold the same state (same observations, same order), so the
        policy takes it over: `learn_one` feeds it and the engine stops feeding
        it (one BBR update per interval, not two). Returns False, keeping the
        own base, when the constants or bounds differ.
        """
        if base is self.base:
            return True
        if not self._can_correct(base):
            return False
        self.base = base
        return True

    def _can_correct(self, base: BbrFallback) -> bool:
        """``base`` has this policy's fallback constants and window bounds."""
        return base.config == self.base.config and base.limits == self.limits

    def fork(self, *, base: BbrFallback | None = None) -> ResidualDqnPolicy:
        """Same weights, fresh connection state.

        ``base`` is the fresh fallback the fork corrects when the caller has one
        (a forked engine passes its own, which the fork would adopt anyway:
        building a clone only to replace it was a tenth of a fork's cost); by
        default, or when its constants or bounds differ, a clone of this base.
        """
        model = self.q_model.fork() if hasattr(self.q_model, "fork") else self.q_model
        if base is None or not self._can_correct(base):
            base = self.base.clone()
        return ResidualDqnPolicy(model, limits=self.limits, base=base)

    @property
    def state(self) -> np.ndarray | None:
        """the agent's state at the last `learn_one` (None before; one buffer overwritten
        in place, built when read: copy it to keep it)"""
        return self.features.state if self._learned else None

    def learn_one(self, obs: CongestionObservation, feedback: float, *, now: float) -> None:
        fb = self.base
        fb.learn_one(obs, feedback, now=now)
        self._fb_action = fb.predict_one(obs, now=now)
        self.features.update(obs, fb, self._fb_action, self.last_action, now=now)
        self._learned = True
        self._smooth_loss(obs, now)

    def _smooth_loss(self, obs: CongestionObservation, now: float) -> None:
        """Bytes lost and delivered, EWMA over about one smoothed RTT (the loss gate's
        ratio: a round's loss, as the fallback judges it, not one 10-ms interval's)."""
        last = self._loss_at
        self._loss_at = now
        if last is None or now <= last:
            return
        f = obs.features
        dt = now - last
        if f.rtt_us > 0.0:
            # the features' step: same interval, same time constant (one smoothed RTT,
            # at least SMOOTH_TAU_MIN_S), computed once
            alpha = self.features.smoothing_alpha
        else:
            alpha = 1.0 - math.exp(-dt / SMOOTH_TAU_MIN_S)
        delivered = obs.throughput_bps * dt * 0.125
        loss = f.loss_rate
        # loss_rate is lost / (acked + lost) packets: lost bytes in proportion to the
        # delivered ones; an interval that only lost counts at least one packet
        lost = loss / (1.0 - loss) * delivered if loss < 1.0 else float(self.limits.mss)
        self._lost_s += alpha * (lost - self._lost_s)
        self._delivered_s += alpha * (delivered - self._delivered_s)

    def predict_one(self, obs: CongestionObservation, *, now: float) -> DrlAction:
        fb_action = self._fb_action
        cwnd = obs.cwnd_bytes
        if (
            not self._learned
            or fb_action is DrlAction.SlowStart
            or self.base.state not in _AGENT_PHASES
        ):
            # No observation yet, the fallback collapses the window (PROBE_RTT,
            # persistent congestion), or it is discovering bandwidth (STARTUP, DRAIN,
            # REFILL, UP): not the agent's call. The fallback's model is fed by the
            # window; a correction during discovery starves its bandwidth estimate
            # and the floor below its target would spiral down with it.
            self.last_action = int(DrlAction.Maintain)
            self.decided = False
            return fb_action
        if now >= self._next_decision:
            # The agent decides about once per smoothed RTT (20-200 ms) and its correction
            # holds in between: one 10-ms step changes too little to be learnt (the
            # "action gap"), and Orca's agent also acts once per monitoring period.
            rtt_s = obs.features.rtt_us * 1e-6
            self._next_decision = now + min(max(rtt_s, HOLD_MIN_S), HOLD_MAX_S) - 1e-6
            self.decisions += 1
            if self.actor is not None:
                s = self.features.state
                q = self.q_model.forward(s) if self.q_model is not None else None
                a = int(self.actor(s, q))
            elif self.q_model is not None:
                q = self.q_model.forward(self.features.state)
                a = int(np.argmax(q))
                if not math.isfinite(float(q[a])):
                    a = int(DrlAction.Maintain)
            else:
                a = int(DrlAction.Maintain)
            self.last_action = a
            self.decided = True
            self._decided_at = now
        else:
            a = self.last_action
            self.decided = False
            if a == int(DrlAction.SlowStart) and now > self._decided_at:
                # a reset is done once, not held (a repeated call at the decision's own
                # instant answers as the decision did: predict_one reads, it does not act)
                a = int(DrlAction.Maintain)
        action = _ACTIONS[a]
        if action is DrlAction.Maintain:
            return fb_action
        base = apply_action(fb_action, cwnd, self.limits)
        fb_target = self.base.target_cwnd_bytes
        if action is DrlAction.SlowStart:
            # the strongest correction: straight to the floor below the fallback's target
            if fb_target <= 0.0:
                return fb_action
            target = MIN_SCALE * fb_target
        else:
            target = float(apply_action(action, base, self.limits))
        if fb_target > 0.0:
            # Corrections stay within [MIN_SCALE, MAX_SCALE] x the fallback's target: the
            # agent cannot starve the flow or build a queue the fallback would not.
            lo = MIN_SCALE * fb_target
            hi = MAX_SCALE * fb_target
            if target < lo and target < cwnd:
                target = min(lo, float(cwnd))
            elif target > hi and target > cwnd:
                target = max(hi, float(cwnd))
        if target > base:
            lost = self._lost_s
            if lost > self.base.config.loss_threshold * (lost + self._delivered_s):
                # Loss gate (module docs): no growth beyond the fallback's own proposal
                # while the path loses more than the fallback tolerates.
                return fb_action
        return nearest_action(cwnd, target, self.limits)

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fallback": self.base.stats(),
            "last_correction": _ACTIONS[self.last_action].name,
        }


def states_along(connections: Any) -> np.ndarray:
    """The states a model-less policy builds along ``connections`` (lists of
    ``(NetworkFeatures, throughput_bps)`` per 10-ms interval, e.g.
    `oxidize_ml.models.probe.probe_connections`), one row per interval: the inputs a
    loaded model is probed on before it may decide. The window follows the
    fallback's actions, as it would behind the engine."""
    rows: list[np.ndarray] = []
    for conn in connections:
        pol = ResidualDqnPolicy(None)
        cwnd = pol.limits.initial_cwnd
        for i, (features, thr) in enumerate(conn):
            now = 100.0 + 0.01 * i
            obs = CongestionObservation(features=features, throughput_bps=thr, cwnd_bytes=cwnd)
            pol.learn_one(obs, 0.0, now=now)
            state = pol.state
            if state is not None:
                rows.append(state.copy())
            cwnd = apply_action(pol.predict_one(obs, now=now), cwnd, pol.limits)
    return np.stack(rows).astype(np.float32)
