"""Packet-level, trace-driven simulator for training and evaluating congestion control.

One run::

    from oxidize_ml.sim import simulate, list_scenarios
    result = simulate("wired-clean", "reno", seed=0)   # or "cubic", "bbr", a factory
    result.to_dict()                                   # JSON-able summary

Every decision interval (10 ms), per active flow::

    def hook(now, flow_index, features, throughput_bps, cwnd_bytes): ...
    simulate("step-change", "bbr", seed=0, on_interval=hook)

The hook runs inside the event loop: use its arguments and do not call back
into the `Simulation` from it.

Step-wise, an agent acting from outside the loop (the Gymnasium environment)::

    agent = ExternalCwndController()
    sim = Simulation(get_scenario("cellular-synthetic"), [agent], seed=0)
    while not sim.done:
        for sample in sim.run_interval():     # IntervalSample(now, flow_index,
            ...                               #   features, throughput_bps, cwnd)
        agent.apply(action)                   # DrlAction; applies at once
    sim.result()

Controllers live in `oxidize_ml.congestion` (the per-ack interface
`oxidize_ml.congestion.controller`, modelled on aioquic's
``QuicCongestionControl``; Reno, CUBIC, and the one per-interval adapter
`oxidize_ml.congestion.interval` for BBR, the DQN and any policy);
`oxidize_ml.sim.controllers` keeps the simulator's registry
(`default_registry()`), the engine adapter and the DQN factory. They are
re-exported here as the simulator's public facade.
"""

from __future__ import annotations

from oxidize_ml.congestion.controller import CongestionController
from oxidize_ml.congestion.cubic import CubicController
from oxidize_ml.congestion.interval import ExternalCwndController, PolicyController
from oxidize_ml.congestion.reno import RenoController
from oxidize_ml.sim.controllers import ControllerRegistry, EngineController, default_registry
from oxidize_ml.sim.core import IntervalHook, IntervalSample, Simulation
from oxidize_ml.sim.links import BufferSpec, CellularLink, ConstantLink, StepLink, TraceLink
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss
from oxidize_ml.sim.results import FlowResult, FlowSeries, RunResult, jain_index
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
