"""Congestion control: every controller, the shared six-action table, the reward.

- `controller`: `CongestionController`, the transport-facing per-ack
  interface (aioquic's ``QuicCongestionControl`` events and a ``cwnd``).
- `reno`: `RenoController` (RFC 9002 NewReno); `cubic`: `CubicController`
  (RFC 9438), both per ack.
- `interval`: the one adapter from per-interval control to that interface:
  `PolicyController` (a policy decides every interval), `ExternalCwndController`
  (the caller decides, e.g. a Gymnasium agent), both `IntervalController` s.
- `actions`: `CwndLimits`, `apply_action`, `nearest_action`, `ACTION_FACTORS`,
  `N_ACTIONS` (the ONE action table every controller uses).
- `reward`: `congestion_reward` (the ONE reward).
- `observation`: `CongestionObservation`, what a controller sees per interval.
- `bbr`: `BbrConfig`, `BbrFallback`, `BbrPhase`: the non-learned controller the
  engine runs when no model is loaded.
- `dqn`: `DqnCwndPolicy` (the learned controller; numpy or onnxruntime
  inference, opt-in online learning), `EpsilonSchedule`, `OnlineConfig`,
  `ReplayBuffer`.
"""

from __future__ import annotations

from oxidize_ml.congestion.actions import (
    ACTION_FACTORS,
    N_ACTIONS,
    CwndLimits,
    apply_action,
    nearest_action,
)
from oxidize_ml.congestion.bbr import BbrConfig, BbrFallback, BbrPhase
from oxidize_ml.congestion.controller import CongestionController
from oxidize_ml.congestion.cubic import CubicController
from oxidize_ml.congestion.dqn import DqnCwndPolicy, EpsilonSchedule, OnlineConfig, ReplayBuffer
from oxidize_ml.congestion.interval import (
    ExternalCwndController,
    IntervalController,
    PolicyController,
)
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.reno import RenoController
from oxidize_ml.congestion.reward import congestion_reward

__all__ = [
    "ACTION_FACTORS",
    "N_ACTIONS",
    "BbrConfig",
    "BbrFallback",
    "BbrPhase",
    "CongestionController",
    "CongestionObservation",
    "CubicController",
    "CwndLimits",
    "DqnCwndPolicy",
    "EpsilonSchedule",
    "ExternalCwndController",
    "IntervalController",
    "OnlineConfig",
    "PolicyController",
    "RenoController",
    "ReplayBuffer",
    "apply_action",
    "congestion_reward",
    "nearest_action",
]
