"""Congestion controllers for the simulator (see `base` for the interface)."""

from __future__ import annotations

from oxidize_ml.sim.controllers.base import CongestionController, overridden_events
from oxidize_ml.sim.controllers.cubic import CubicController
from oxidize_ml.sim.controllers.policy import (
    EngineController,
    ExternalCwndController,
    PolicyController,
    WindowedExtremum,
)
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
from oxidize_ml.sim.controllers.reno import RenoController

__all__ = [
    "CongestionController",
    "ControllerFactory",
    "ControllerRegistry",
    "CubicController",
    "EngineController",
    "ExternalCwndController",
    "PolicyController",
    "RenoController",
    "WindowedExtremum",
    "bbr_factory",
    "cubic_factory",
    "default_registry",
    "engine_factory",
    "overridden_events",
    "policy_factory",
    "reno_factory",
]
