"""The simulator's controller glue: the registry and the engine adapter."""

from __future__ import annotations

import pytest

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.cubic import CubicController
from oxidize_ml.congestion.interval import PolicyController
from oxidize_ml.congestion.reno import RenoController
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.sim.controllers import ControllerRegistry, EngineController, default_registry
from oxidize_ml.types import DrlAction

MSS = 1500


def feats(**kw: float) -> NetworkFeatures:
    base = {
        "rtt_us": 40_000.0,
        "rtt_var_us": 1_000.0,
        "bandwidth_bps": 12e6,
        "loss_rate": 0.0,
        "loss_trend": 0.0,
        "inflight": 10.0,
        "cwnd": 15_000.0,
    }
    base.update(kw)
    return NetworkFeatures(**base)  # type: ignore[arg-type]


# ---- engine adapter ----------------------------------------------------------------------
class FakeEngine:
    def __init__(self) -> None:
        self.seen: list[tuple[NetworkFeatures, float, float]] = []

    def observe(self, features: NetworkFeatures, *, throughput_bps: float, now: float) -> None:
        self.seen.append((features, throughput_bps, now))

    def congestion_action(self, *, now: float) -> tuple[DrlAction, int]:
        return DrlAction.Decrease10, 10**12  # absurd window: must be clamped


def test_engine_controller_observes_then_sets_window() -> None:
    eng = FakeEngine()
    ec = EngineController(eng)
    f = feats()
    ec.on_interval(now=1.0, features=f, throughput_bps=5e6)
    assert eng.seen == [(f, 5e6, 1.0)]
    assert ec.last_action is DrlAction.Decrease10
    assert ec.cwnd == CwndLimits().max_cwnd_bytes
    with pytest.raises(TypeError, match="observe"):
        EngineController(object())


# ---- registry -----------------------------------------------------------------------------
def test_registry() -> None:
    reg = default_registry()
    assert reg.names() == ["bbr", "cubic", "reno"]
    a = reg.create("reno")
    b = reg.create("reno")
    assert isinstance(a, RenoController) and a is not b
    with pytest.raises(ValueError, match=r"unknown controller 'vegas'; choose from \['bbr'"):
        reg.create("vegas")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("reno", lambda *, flow_index, seed: RenoController())
    reg.register("reno", lambda *, flow_index, seed: CubicController(), replace=True)
    assert isinstance(reg.create("reno"), CubicController)
    # registries are independent objects (no global state)
    assert isinstance(default_registry().create("reno"), RenoController)
    assert len(ControllerRegistry()) == 0


def test_bbr_factory_wraps_the_fallback() -> None:
    pytest.importorskip("oxidize_ml.congestion.bbr")
    c = default_registry().create("bbr")
    assert isinstance(c, PolicyController)
    c.on_interval(now=0.01, features=feats(), throughput_bps=12e6)
    assert c.cwnd >= 2 * MSS


def test_engine_controller_drives_the_real_engine() -> None:
    engine_mod = pytest.importorskip("oxidize_ml.engine")
    from oxidize_ml.sim import simulate
    from oxidize_ml.sim.controllers import engine_factory

    def make(flow_index: int, seed: int) -> object:
        return engine_mod.MlEngine(engine_mod.EngineConfig(load_default_models=False))

    r = simulate("wired-clean", engine_factory(make), seed=0, duration_s=5.0)
    assert r.flows[0].controller == "engine"
    assert r.utilisation > 0.5


# ---- DQN factory ----------------------------------------------------------------------------
def test_dqn_factory_loads_a_model_directory_with_its_state_config() -> None:
    """A path goes through `DqnCwndPolicy.load` (weights + the StateConfig in the metadata);
    every flow gets its own fork of the loaded policy, and a wrong StateConfig is refused."""
    from oxidize_ml.congestion.dqn import DqnCwndPolicy
    from oxidize_ml.congestion.state import StateConfig
    from oxidize_ml.models import PLAIN_DQN, candidate_dir
    from oxidize_ml.sim import simulate
    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory, make_dqn_controller

    # The spec's DQN ships as a candidate (models/default holds the residual DQN).
    model_dir = candidate_dir(PLAIN_DQN)
    assert model_dir is not None and (model_dir / "congestion_controller.safetensors").is_file()
    ref = DqnCwndPolicy.load(model_dir)
    ctrl = make_dqn_controller(model_dir, seed=3)
    assert isinstance(ctrl, PolicyController) and isinstance(ctrl.policy, DqnCwndPolicy)
    assert ctrl.policy.state_config == ref.state_config
    assert ctrl.encoder.config == ref.state_config
    factory = dqn_factory(model_dir)
    a, b = factory(flow_index=0, seed=1), factory(flow_index=1, seed=2)
    assert a.policy is not b.policy and a.policy.model is not b.policy.model
    other = StateConfig(history=ref.state_config.history + 1)
    with pytest.raises(ValueError, match="trained with"):
        make_dqn_controller(model_dir, state_config=other)
    # the registry entry runs, and greedy forks make the same run as a fresh load
    reg = default_registry()
    reg.register("dqn", factory)
    r1 = simulate("step-change", "dqn", seed=0, duration_s=3.0, registry=reg, record_series=False)
    reg.register("dqn", dqn_factory(model_dir), replace=True)
    r2 = simulate("step-change", "dqn", seed=0, duration_s=3.0, registry=reg, record_series=False)
    assert r1.flows[0].bytes_acked == r2.flows[0].bytes_acked > 0
