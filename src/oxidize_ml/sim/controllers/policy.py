"""Controllers that decide once per decision interval rather than per ack.

- `PolicyController` drives any ``Policy[CongestionObservation, DrlAction]``
  (the BBR-style fallback, a DQN) through the shared action table.
- `EngineController` drives an `oxidize_ml.engine.MlEngine` (duck-typed).
- `ExternalCwndController` takes its window from outside the event loop: the
  Gymnasium environment sets an action between `Simulation.run_interval`
  calls.

None of them reacts to individual acks or losses: what they know of the
path arrives in the interval's `NetworkFeatures`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

from oxidize_ml._validate import check_number
from oxidize_ml.congestion.actions import CwndLimits, apply_action
from oxidize_ml.congestion.envelope import DeliveryEnvelope
from oxidize_ml.congestion.reward import congestion_reward
from oxidize_ml.sim.controllers.base import CongestionController
from oxidize_ml.types import DrlAction

if TYPE_CHECKING:
    from oxidize_ml.features import NetworkFeatures

REWARD_WINDOW_S = 10.0
"""window of the max-throughput and min-RTT filters behind the reward, seconds (the BBR
min-RTT window, REFERENCES section 2; the same as the engine's state encoder)"""


class WindowedExtremum:
    """Running max (``is_max``) or min over the last ``window_s`` seconds (monotonic deque)."""

    __slots__ = ("_is_max", "_q", "_window")

    def __init__(self, window_s: float, *, is_max: bool) -> None:
        self._window = check_number("window_s", window_s)
        self._is_max = is_max
        self._q: deque[tuple[float, float]] = deque()

    def update(self, value: float, now: float) -> float:
        q = self._q
        if self._is_max:
            while q and q[-1][1] <= value:
                q.pop()
        else:
            while q and q[-1][1] >= value:
                q.pop()
        q.append((now, value))
        horizon = now - self._window
        while q[0][0] < horizon:
            q.popleft()
        return q[0][1]

    @property
    def value(self) -> float:
        return self._q[0][1] if self._q else (0.0 if self._is_max else math.inf)


class _RewardTracker:
    """The shared reward on windowed max throughput and min RTT."""

    __slots__ = ("_max_thr", "_min_rtt", "last_reward")

    def __init__(self, window_s: float) -> None:
        self._max_thr = WindowedExtremum(window_s, is_max=True)
        self._min_rtt = WindowedExtremum(window_s, is_max=False)
        self.last_reward = 0.0

    def update(self, features: NetworkFeatures, throughput_bps: float, now: float) -> float:
        max_thr = self._max_thr.update(throughput_bps, now)
        rtt = features.rtt_us
        min_rtt = self._min_rtt.update(rtt, now) if rtt > 0.0 else 0.0
        self.last_reward = congestion_reward(
            throughput_bps=throughput_bps,
            max_throughput_bps=max_thr,
            rtt_us=rtt,
            min_rtt_us=min_rtt,
            loss_rate=features.loss_rate,
        )
        return self.last_reward


class PolicyController(CongestionController):
    """Drive a ``Policy[CongestionObservation, DrlAction]`` once per decision interval.

    Each interval: build ``CongestionObservation(features, throughput_bps,
    cwnd)``, compute the reward with
    `oxidize_ml.congestion.reward.congestion_reward` (throughput against its
    10-s windowed max, RTT against its 10-s windowed min, loss rate), call
    ``policy.learn_one(obs, reward, now=now)`` (the reward is the outcome of
    the previous action), then ``action = policy.predict_one(obs, now=now)``
    and ``cwnd = envelope.bound(cwnd, apply_action(action, cwnd, limits))``:
    the same `oxidize_ml.congestion.envelope.DeliveryEnvelope` the engine
    applies (ack-clocked growth, delivery-based cap), so a policy run here
    and behind the engine get the same window.

    Parameters
    ----------
    policy
        Any object with ``name``, ``learn_one`` and ``predict_one``.
    limits
        Window bounds for `apply_action`.
    reward_window_s
        Window of the reward's max-throughput and min-RTT filters.
    pacing
        Pace sends at cwnd / srtt (aioquic's pacer), as the plug-in that runs
        these policies does.
    """

    def __init__(
        self,
        policy: Any,
        *,
        limits: CwndLimits | None = None,
        reward_window_s: float = REWARD_WINDOW_S,
        pacing: bool = True,
    ) -> None:
        super().__init__(limits=limits)
        self.pacing = bool(pacing)
        for attr in ("learn_one", "predict_one"):
            if not callable(getattr(policy, attr, None)):
                raise TypeError(f"policy must have a callable {attr}(obs, ..., *, now)")
        self.policy = policy
        self.name = str(getattr(policy, "name", type(policy).__name__))
        self._reward = _RewardTracker(reward_window_s)
        self.envelope = DeliveryEnvelope(limits=self.limits)
        self.last_action: DrlAction | None = None
        from oxidize_ml.congestion.observation import CongestionObservation

        self._obs_cls = CongestionObservation

    @property
    def last_reward(self) -> float:
        return self._reward.last_reward

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        obs = self._obs_cls(features=features, throughput_bps=throughput_bps, cwnd_bytes=self.cwnd)
        reward = self._reward.update(features, throughput_bps, now)
        self.envelope.update(obs, now=now)
        self.policy.learn_one(obs, reward, now=now)
        action = self.policy.predict_one(obs, now=now)
        self.last_action = action
        self.cwnd = self.envelope.bound(self.cwnd, apply_action(action, self.cwnd, self.limits))


class EngineController(CongestionController):
    """Drive an ``MlEngine`` (duck-typed: ``observe`` and ``congestion_action``).

    Each interval: ``engine.observe(features, throughput_bps=..., now=now)``
    then ``action, new_cwnd = engine.congestion_action(now=now)`` and
    ``cwnd = new_cwnd``. The engine keeps its own window and adopts
    ``features.cwnd`` (this controller's window) on every observation.
    """

    name = "engine"

    def __init__(
        self, engine: Any, *, limits: CwndLimits | None = None, pacing: bool = True
    ) -> None:
        super().__init__(limits=limits)
        # the engine runs behind aioquic, which paces at cwnd / srtt
        self.pacing = bool(pacing)
        for attr in ("observe", "congestion_action"):
            if not callable(getattr(engine, attr, None)):
                raise TypeError(f"engine must have a callable {attr}(...)")
        self.engine = engine
        self.last_action: DrlAction | None = None

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        self.engine.observe(features, throughput_bps=throughput_bps, now=now)
        action, new_cwnd = self.engine.congestion_action(now=now)
        self.last_action = action
        new = int(new_cwnd)
        lo, hi = self.limits.min_cwnd, self.limits.max_cwnd_bytes
        self.cwnd = lo if new < lo else min(new, hi)


class ExternalCwndController(CongestionController):
    """A window set from outside the event loop (the Gymnasium environment's agent).

    The simulator calls ``on_interval`` at each decision point; this
    controller only records the observation (`last_features`,
    `last_throughput_bps`, `last_reward`). Between `Simulation.run_interval`
    calls the caller applies an action with `apply` (or sets a window with
    `set_cwnd`); the new window takes effect at once, at the same simulated
    instant as the observation.
    """

    name = "external"

    def __init__(
        self,
        *,
        limits: CwndLimits | None = None,
        reward_window_s: float = REWARD_WINDOW_S,
        pacing: bool = True,
    ) -> None:
        super().__init__(limits=limits)
        self.pacing = bool(pacing)
        self._reward = _RewardTracker(reward_window_s)
        # `apply` goes through the engine's envelope, so an agent trained here
        # meets the same ack clocking it is served behind.
        self.envelope = DeliveryEnvelope(limits=self.limits)
        self.last_features: NetworkFeatures | None = None
        self.last_throughput_bps = 0.0
        self.last_time = 0.0

    @property
    def last_reward(self) -> float:
        """`congestion_reward` of the last interval (same windows as `PolicyController`)."""
        return self._reward.last_reward

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        self.last_features = features
        self.last_throughput_bps = throughput_bps
        self.last_time = now
        self._reward.update(features, throughput_bps, now)
        from oxidize_ml.congestion.observation import CongestionObservation

        self.envelope.update(
            CongestionObservation(
                features=features, throughput_bps=throughput_bps, cwnd_bytes=self.cwnd
            ),
            now=now,
        )

    def apply(self, action: DrlAction | int) -> int:
        """Apply one of the six shared actions to the window, bounded by the
        `DeliveryEnvelope` as in the engine; returns the new window."""
        self.cwnd = self.envelope.bound(
            self.cwnd, apply_action(DrlAction(action), self.cwnd, self.limits)
        )
        return self.cwnd

    def set_cwnd(self, cwnd_bytes: int) -> int:
        """Set the window directly (clamped to the limits); returns it."""
        new = int(cwnd_bytes)
        lo, hi = self.limits.min_cwnd, self.limits.max_cwnd_bytes
        self.cwnd = lo if new < lo else min(new, hi)
        return self.cwnd
