"""Path selection per traffic type (spec: "Multi-Armed Bandit Path Selector").

`MlPathSelector`
    Discounted UCB1 per traffic type plus the contextual bonus from the latest
    `PathMetrics` (name ``"ucb1"``).
`StationaryUcb1PathSelector`, `RoundRobinPathSelector`
    Baselines with the same interface: textbook UCB1, and the spec's
    heuristic fallback (round-robin over available paths).
`LearnedPathSelector` (`oxidize_ml.paths.learned`)
    The spec's ``path_selector`` model: an MLP prior scoring each path from
    its metrics and the traffic type, plus a discounted LinUCB correction
    per (traffic type, path) learnt online (name ``"learned"``);
    `load_learned_selector` builds it from a model directory and
    `default_path_selector_factory` says which selector ``MlEngine()`` uses.
`calculate_path_reward` (also ``<selector>.calculate_reward``)
    The per-traffic-type reward in [0, 1] fed back after using a path.

All are ``Policy[TrafficContext, PathId]`` adapters: ``predict_one(context)``
selects, ``learn_one((path, context), reward)`` records the reward.
"""

from __future__ import annotations

from oxidize_ml.paths.learned import (
    LearnedPathConfig,
    LearnedPathSelector,
    default_path_selector_factory,
    load_learned_selector,
)
from oxidize_ml.paths.reward import (
    BONUS_WEIGHTS,
    JITTER_REF_US,
    LOSS_REF,
    REWARD_WEIGHTS,
    RTT_REF_US,
    THROUGHPUT_REF_MBPS,
    calculate_path_reward,
    contextual_score,
)
from oxidize_ml.paths.selector import (
    N_CONTEXTS,
    N_PATHS,
    STATIONARY_UCB1_CONFIG,
    BasePathSelector,
    MlPathSelector,
    PathSelectorConfig,
    RoundRobinPathSelector,
    StationaryUcb1PathSelector,
)

__all__ = [
    "BONUS_WEIGHTS",
    "JITTER_REF_US",
    "LOSS_REF",
    "N_CONTEXTS",
    "N_PATHS",
    "REWARD_WEIGHTS",
    "RTT_REF_US",
    "STATIONARY_UCB1_CONFIG",
    "THROUGHPUT_REF_MBPS",
    "BasePathSelector",
    "LearnedPathConfig",
    "LearnedPathSelector",
    "MlPathSelector",
    "PathSelectorConfig",
    "RoundRobinPathSelector",
    "StationaryUcb1PathSelector",
    "calculate_path_reward",
    "contextual_score",
    "default_path_selector_factory",
    "load_learned_selector",
]
