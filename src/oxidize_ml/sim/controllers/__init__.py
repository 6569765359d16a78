"""The simulator's controller glue: the name -> factory registry, the engine and DQN adapters.

The controllers themselves live in `oxidize_ml.congestion` (the per-ack
interface, Reno, CUBIC, and the one per-interval adapter); this package
only builds them per flow (`registry`), drives an ``MlEngine`` (`engine`)
and loads a DQN for a run (`dqn_factory`).
"""

from __future__ import annotations

from oxidize_ml.sim.controllers.engine import EngineController
from oxidize_ml.sim.controllers.registry import (
    ControllerFactory,
    ControllerRegistry,
    bbr_factory,
    cubic_factory,
    default_registry,
    engine_factory,
    policy_factory,
    reno_factory,
)

__all__ = [
    "ControllerFactory",
    "ControllerRegistry",
    "EngineController",
    "bbr_factory",
    "cubic_factory",
    "default_registry",
    "engine_factory",
    "policy_factory",
    "reno_factory",
]
