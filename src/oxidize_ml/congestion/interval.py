"""The one adapter from per-interval control to the per-ack controller interface.

The BBR-style fallback and the DQN decide once per decision interval
(10 ms) on a `CongestionObservation`; a transport speaks the per-ack
interface of `oxidize_ml.congestion.controller.CongestionController`
(Reno and CUBIC implement it directly). `IntervalController` sits between
them. At each interval it

1. builds ``CongestionObservation(features, throughput_bps, cwnd)``;
2. runs `oxidize_ml.congestion.state.CongestionStateEncoder` on it: the
   model state (`last_state`) and the reward (`last_reward`,
   `oxidize_ml.congestion.reward.congestion_reward` on the encoder's
   windowed max throughput and min RTT), the values a DQN trains on;
3. updates the `oxidize_ml.congestion.envelope.DeliveryEnvelope` the engine
   applies (ack-clocked growth, delivery-based cap), so a policy run here
   and behind the engine gets the same window.

The window then changes in one of two ways:

- `PolicyController`: a policy decides at once (``policy.learn_one(obs,
  reward)`` then ``policy.predict_one(obs)``, the action applied through the
  envelope);
- `ExternalCwndController`: the caller decides between intervals (the
  Gymnasium environment's agent) with `IntervalController.apply` or
  `IntervalController.set_cwnd`.

None of them reacts to individual acks or losses: what they know of the
path arrives in the interval's `NetworkFeatures`.

Windowed filters: the reward's max-throughput and min-RTT filters are the
encoder's (`oxidize_ml.congestion.state.WindowedExtreme`, 1-s buckets over a
10-s window, so a value is forgotten 9 to 10 s after it was seen). The
simulator used to keep its own exact 10-s filters for this reward; the
bucketed ones are kept because they are what the DQN state and the Gymnasium
reward use, and the reward handed to a policy here is only logged (the
fallback and the DQN recompute what they need from the observation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oxidize_ml.congestion.actions import CwndLimits, apply_action
from oxidize_ml.congestion.controller import CongestionController
from oxidize_ml.congestion.envelope import DeliveryEnvelope
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import CongestionStateEncoder, StateConfig
from oxidize_ml.types import DrlAction

if TYPE_CHECKING:
    import numpy as np

    from oxidize_ml.features import NetworkFeatures

__all__ = ["ExternalCwndController", "IntervalController", "PolicyController"]

_DEFAULT_STATE = StateConfig()


class IntervalController(CongestionController):
    """Per-interval control behind the per-ack interface (module docstring).

    Parameters
    ----------
    limits
        Window bounds for `apply_action` and `set_cwnd`.
    state_config
        The state encoder's config (history, filter windows).
    pacing
        Pace sends at cwnd / srtt (aioquic's pacer), as the plug-in that runs
        these policies does.
    """

    name = "interval"

    def __init__(
        self,
        *,
        limits: CwndLimits | None = None,
        state_config: StateConfig = _DEFAULT_STATE,
        pacing: bool = True,
    ) -> None:
        super().__init__(limits=limits)
        self.pacing = bool(pacing)
        self.encoder = CongestionStateEncoder(state_config)
        self.envelope = DeliveryEnvelope(limits=self.limits)
        self.last_observation: CongestionObservation | None = None
        """the observation of the last interval (features, throughput, window in force)"""
        self.last_state: np.ndarray | None = None
        """the encoder's state for the last interval"""
        self.last_reward = 0.0
        """`congestion_reward` of the last interval, on the encoder's windowed filters"""
        self.last_time = 0.0
        """time of the last interval, seconds"""

    @property
    def last_features(self) -> NetworkFeatures | None:
        """The features of the last interval, as the transport reported them."""
        obs = self.last_observation
        return None if obs is None else obs.features

    @property
    def last_throughput_bps(self) -> float:
        """The delivery rate of the last interval, bits/s (0 before the first)."""
        obs = self.last_observation
        return 0.0 if obs is None else obs.throughput_bps

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        obs = CongestionObservation(
            features=features, throughput_bps=throughput_bps, cwnd_bytes=self.cwnd
        )
        self.last_observation = obs
        self.last_time = now
        self.last_state, self.last_reward = self.encoder.update(features, throughput_bps, now=now)
        self.envelope.update(obs, now=now)

    def apply(self, action: DrlAction | int) -> int:
        """Apply one of the six shared actions to the window, bounded by the
        `DeliveryEnvelope` as in the engine; returns the new window."""
        self.cwnd = self.envelope.bound(
            self.cwnd, apply_action(DrlAction(action), self.cwnd, self.limits)
        )
        return self.cwnd

    def set_cwnd(self, cwnd_bytes: int) -> int:
        """Set the window directly (clamped to the limits, no envelope); returns it."""
        new = int(cwnd_bytes)
        lo, hi = self.limits.min_cwnd, self.limits.max_cwnd_bytes
        self.cwnd = lo if new < lo else min(new, hi)
        return self.cwnd


class PolicyController(IntervalController):
    """Drive a ``Policy[CongestionObservation, DrlAction]`` once per decision interval.

    After the `IntervalController` bookkeeping: ``policy.learn_one(obs,
    reward, now=now)`` (the reward is the outcome of the previous action),
    ``action = policy.predict_one(obs, now=now)`` and `apply` (action table
    plus envelope). A policy that reads the encoded state (``learn_state``,
    the DQN) with this controller's `StateConfig` gets
    ``learn_state(state, reward, now=now)`` instead, so the interval is
    encoded once, as in the engine.

    Parameters
    ----------
    policy
        Any object with ``name``, ``learn_one`` and ``predict_one``.
    limits, state_config, pacing
        As for `IntervalController`.
    """

    def __init__(
        self,
        policy: Any,
        *,
        limits: CwndLimits | None = None,
        state_config: StateConfig = _DEFAULT_STATE,
        pacing: bool = True,
    ) -> None:
        for attr in ("learn_one", "predict_one"):
            if not callable(getattr(policy, attr, None)):
                raise TypeError(f"policy must have a callable {attr}(obs, ..., *, now)")
        super().__init__(limits=limits, state_config=state_config, pacing=pacing)
        self.policy = policy
        self.name = str(getattr(policy, "name", type(policy).__name__))
        self.last_action: DrlAction | None = None
        learn_state = getattr(policy, "learn_state", None)
        # Only a policy whose state has this encoder's layout may skip its own encoder.
        if not callable(learn_state) or getattr(policy, "state_config", None) != state_config:
            learn_state = None
        self._learn_state = learn_state

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        super().on_interval(now=now, features=features, throughput_bps=throughput_bps)
        obs = self.last_observation
        if self._learn_state is not None:
            self._learn_state(self.last_state, self.last_reward, now=now)
        else:
            self.policy.learn_one(obs, self.last_reward, now=now)
        action = self.policy.predict_one(obs, now=now)
        self.last_action = action
        self.apply(action)


class ExternalCwndController(IntervalController):
    """A window set from outside the event loop (the Gymnasium environment's agent).

    The transport calls ``on_interval`` at each decision point; this
    controller only observes (`last_observation`, `last_state`,
    `last_reward`). Between `oxidize_ml.sim.Simulation.run_interval` calls the
    caller applies an action with `apply` (or sets a window with `set_cwnd`);
    the new window takes effect at once, at the same simulated instant as the
    observation.
    """

    name = "external"
