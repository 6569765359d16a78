"""Loading the residual (Orca-style) DQN through a model directory: the ``residual-dqn``
congestion policy, its input check and its probe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.residual import INPUT_NAMES, N_INPUTS, ResidualDqnPolicy
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.hub.manifest import write_manifest
from oxidize_ml.models import candidate_dir, congestion_policy_kind, load_policies
from oxidize_ml.runtime.configs import DqnMlpConfig, expected_tensors
from oxidize_ml.runtime.weights import encode_weights

CFG = DqnMlpConfig(n_inputs=N_INPUTS)
Tensors = dict[str, np.ndarray]


def residual_dir(
    d: Path,
    *,
    transform: Callable[[Tensors], Tensors] | None = None,
    inputs: list[str] | None = None,
    policy: str | None = "residual-dqn",
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = {k: rng.normal(0.0, 0.2, s).astype(np.float32) for k, s in expected_tensors(CFG).items()}
    if transform is not None:
        t = transform(t)
    (d / "residual_dqn.safetensors").write_bytes(encode_weights(t, CFG))
    training = {} if policy is None else {"policy": policy}
    entry = {
        "version": "r1",
        "kind": "dqn",
        "files": {"safetensors": "residual_dqn.safetensors"},
        "inputs": list(INPUT_NAMES) if inputs is None else inputs,
        "training": training,
        "metrics": {"default_enabled": False},
    }
    write_manifest(d, {"congestion_controller": entry}, package_version="test")
    return d


def _load(d: Path) -> object:
    return load_policies(
        d, backend="numpy", limits=CwndLimits(), state_config=StateConfig(), seed=0
    )


def _features(i: int, cwnd: int) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000 + 500 * (i % 7),
        rtt_var_us=4_000,
        bandwidth_bps=12e6,
        loss_rate=0.0,
        loss_trend=0.0,
        inflight=cwnd / 1500,
        cwnd=cwnd,
        time_since_loss_ms=500,
        buffer_occupancy=0.2,
        recent_retx=0,
    )


def test_policy_kind_comes_from_the_entry() -> None:
    assert congestion_policy_kind({}) == "dqn"
    assert congestion_policy_kind({"training": {"policy": "residual-dqn"}}) == "residual-dqn"


def test_a_residual_directory_loads_and_the_engine_decides_with_it(tmp_path: Path) -> None:
    d = residual_dir(tmp_path / "m")
    res = _load(d)
    assert res.status["congestion_controller"] == "loaded"  # type: ignore[attr-defined]
    assert isinstance(res.congestion, ResidualDqnPolicy)  # type: ignore[attr-defined]
    engine = MlEngine(EngineConfig(load_default_models=False))
    status = engine.load_models(d)
    assert status["congestion_controller"] == "loaded"
    policy = engine.policy("congestion_controller")
    assert isinstance(policy, ResidualDqnPolicy)
    cwnd = 15_000
    for i in range(300):
        t = 10.0 + 0.01 * i
        engine.observe(_features(i, cwnd), throughput_bps=min(12e6, cwnd * 8 / 0.04), now=t)
        _, cwnd = engine.congestion_action(now=t)
    assert engine.stats().congestion_controller.model_decisions == 300
    assert policy.base.stats()["rounds"] > 0  # its own fallback learnt, once per interval


def test_inputs_other_than_the_residuals_are_a_schema_mismatch(tmp_path: Path) -> None:
    names = list(INPUT_NAMES)
    names[-1] = "something_else"
    res = _load(residual_dir(tmp_path / "m", inputs=names))
    assert res.congestion is None  # type: ignore[attr-defined]
    assert res.status["congestion_controller"].startswith("schema_mismatch: ")  # type: ignore[attr-defined]


def test_unknown_congestion_policy_is_invalid(tmp_path: Path) -> None:
    res = _load(residual_dir(tmp_path / "m", policy="orca-9000"))
    assert res.congestion is None  # type: ignore[attr-defined]
    assert res.status["congestion_controller"].startswith("invalid: ")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("transform", "status"),
    [
        (lambda t: {k: np.full_like(v, 3e38) for k, v in t.items()}, "non_finite"),
        (lambda t: {k: np.zeros_like(v) for k, v in t.items()}, "degenerate"),
    ],
)
def test_the_residual_is_probed_on_its_own_states(
    tmp_path: Path, transform: Callable[[Tensors], Tensors], status: str
) -> None:
    res = _load(residual_dir(tmp_path / "m", transform=transform))
    assert res.congestion is None  # type: ignore[attr-defined]
    assert res.status["congestion_controller"].startswith(f"{status}: ")  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["residual_dqn", "residual_dqn_s1"])
def test_the_candidate_directories_load_and_are_default_enabled_only_by_the_rule(
    name: str,
) -> None:
    import json

    d = candidate_dir(name)
    if d is None:
        pytest.skip("no residual candidate in this checkout")
    res = _load(d)
    assert res.status["congestion_controller"] == "loaded"  # type: ignore[attr-defined]
    assert isinstance(res.congestion, ResidualDqnPolicy)  # type: ignore[attr-defined]
    metrics = json.loads((d / "manifest.json").read_text())["models"]["congestion_controller"][
        "metrics"
    ]
    # default_enabled is issue 10's default rule, as judged at training time
    assert metrics["default_enabled"] is metrics["default_rule"]["passed"]
    only = load_policies(
        d,
        backend="numpy",
        limits=CwndLimits(),
        state_config=StateConfig(),
        seed=0,
        only_default_enabled=True,
    )
    expected = "loaded" if metrics["default_enabled"] else "not default"
    assert only.status["congestion_controller"] == expected
