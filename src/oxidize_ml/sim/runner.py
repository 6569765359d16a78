"""`simulate`: run one scenario with one controller (per flow) and a seed.

For step-wise control (a Gymnasium environment, an agent acting each
decision interval) use `oxidize_ml.sim.core.Simulation` directly: see its
docstring and `Simulation.run_interval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oxidize_ml.congestion.controller import CongestionController
from oxidize_ml.sim.controllers.registry import ControllerFactory, ControllerRegistry
from oxidize_ml.sim.core import IntervalHook, Simulation
from oxidize_ml.sim.results import RunResult
from oxidize_ml.sim.scenarios import Scenario, get_scenario


def simulate(
    scenario: Scenario | str,
    controller: str | ControllerFactory | CongestionController | Sequence[Any],
    *,
    seed: int,
    duration_s: float | None = None,
    record_series: bool = True,
    on_interval: IntervalHook | None = None,
    registry: ControllerRegistry | None = None,
) -> RunResult:
    """Run ``scenario`` to its end and return the `RunResult`.

    Parameters
    ----------
    scenario
        A `Scenario` or the name of a built-in one.
    controller
        A registry name (``"reno"``, ``"cubic"``, ``"bbr"``), a factory
        ``f(*, flow_index, seed) -> controller`` used for every flow, a
        controller instance (single-flow scenarios only), or a sequence with
        one of those per flow.
    seed
        Seeds every random stream of the run; the same seed gives an
        identical `RunResult`.
    duration_s
        Overrides the scenario's duration (simulated seconds).
    record_series
        Keep per-interval time series.
    on_interval
        ``hook(now, flow_index, features, throughput_bps, cwnd_bytes)`` called
        for every active flow at every decision interval (after the
        controller decided).
    registry
        Where names are looked up (default: `default_registry()`).
    """
    if isinstance(scenario, str):
        scenario = get_scenario(scenario)
    sim = Simulation(
        scenario,
        controller,
        seed=seed,
        duration_s=duration_s,
        record_series=record_series,
        on_interval=on_interval,
        registry=registry,
    )
    return sim.run()
