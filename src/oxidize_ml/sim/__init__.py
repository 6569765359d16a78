"""Packet-level, trace-driven simulator for training and evaluating congestion control.

Quick use::

    from oxidize_ml.sim import simulate, list_scenarios
    result = simulate("wired-clean", "reno", seed=0)
    result.to_dict()

Step-wise (Gymnasium): `Simulation` with `ExternalCwndController` and
`Simulation.run_interval`. Per-interval observation hook: the ``on_interval``
argument of `simulate` / `Simulation`.
"""

from __future__ import annotations

from oxidize_ml.sim.controllers import (
    CongestionController,
    ControllerRegistry,
    CubicController,
    EngineController,
    ExternalCwndController,
    PolicyController,
    RenoController,
    default_registry,
)
from oxidize_ml.sim.core import IntervalHook, IntervalSample, Simulation
from oxidize_ml.sim.links import BufferSpec, CellularLink, ConstantLink, StepLink, TraceLink
from oxidize_ml.sim.loss import BernoulliLoss, GilbertElliottLoss
from oxidize_ml.sim.metrics import FlowResult, FlowSeries, RunResult, jain_index
from oxidize_ml.sim.runner import simulate
from oxidize_ml.sim.scenarios import (
    FlowSpec,
    Scenario,
    get_scenario,
    list_scenarios,
    mahimahi_scenarios,
    scenario_from_trace,
)
from oxidize_ml.sim.traces import CellularConfig, OpportunitySchedule, load_mahimahi

__all__ = [
    "BernoulliLoss",
    "BufferSpec",
    "CellularConfig",
    "CellularLink",
    "CongestionController",
    "ConstantLink",
    "ControllerRegistry",
    "CubicController",
    "EngineController",
    "ExternalCwndController",
    "FlowResult",
    "FlowSeries",
    "FlowSpec",
    "GilbertElliottLoss",
    "IntervalHook",
    "IntervalSample",
    "OpportunitySchedule",
    "PolicyController",
    "RenoController",
    "RunResult",
    "Scenario",
    "Simulation",
    "StepLink",
    "TraceLink",
    "default_registry",
    "get_scenario",
    "jain_index",
    "list_scenarios",
    "load_mahimahi",
    "mahimahi_scenarios",
    "scenario_from_trace",
    "simulate",
]
