"""Congestion control: the shared six-action table, the reward, and the BBRv3-style fallback.

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
from oxidize_ml.congestion.dqn import DqnCwndPolicy, EpsilonSchedule, OnlineConfig, ReplayBuffer
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.reward import congestion_reward

__all__ = [
    "ACTION_FACTORS",
    "N_ACTIONS",
    "BbrConfig",
    "BbrFallback",
    "BbrPhase",
    "CongestionObservation",
    "CwndLimits",
    "DqnCwndPolicy",
    "EpsilonSchedule",
    "OnlineConfig",
    "ReplayBuffer",
    "apply_action",
    "congestion_reward",
    "nearest_action",
]
