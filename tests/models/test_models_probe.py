"""Models that verify but misbehave are refused at load (issue 8, item 4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.compression.learned import INPUT_NAMES, N_INPUTS, N_OUTPUTS
from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import FEATURE_NAMES, NetworkFeatures
from oxidize_ml.hub.manifest import write_manifest
from oxidize_ml.models import MODEL_NAMES, candidate_dir, default_model_dir, load_policies
from oxidize_ml.models.probe import (
    MAX_ABS_OUTPUT,
    STATUS_DEGENERATE,
    STATUS_NON_FINITE,
    judge_outputs,
    probe_connections,
    probe_model,
)
from oxidize_ml.runtime import LstmLossModel, MlpModel
from oxidize_ml.runtime.configs import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    expected_tensors,
)
from oxidize_ml.runtime.weights import encode_weights
from oxidize_ml.types import TrafficContext

STATE = StateConfig()
CONFIGS = {
    "loss_predictor": (LossLstmConfig(), None),
    "congestion_controller": (
        DqnMlpConfig(n_inputs=STATE.size),
        list(FEATURE_NAMES) + [f"derived_{i}" for i in range(STATE.size - len(FEATURE_NAMES))],
    ),
    "compression_oracle": (
        CompressionMlpConfig(n_inputs=N_INPUTS, n_outputs=N_OUTPUTS),
        list(INPUT_NAMES),
    ),
}
Transform = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]


def _random(cfg: object, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0.0, 0.2, s).astype(np.float32) for k, s in expected_tensors(cfg).items()}  # type: ignore[arg-type]


def model_dir(d: Path, transform: Transform | None = None) -> Path:
    """A verifying model directory (checksums match) whose tensors ``transform`` rewrote."""
    d.mkdir(parents=True, exist_ok=True)
    entries = {}
    for i, (name, (cfg, inputs)) in enumerate(CONFIGS.items()):
        t = _random(cfg, i)
        if transform is not None:
            t = transform(name, t)
        (d / f"{name}.safetensors").write_bytes(encode_weights(t, cfg))
        entry: dict = {
            "version": f"t{i}",
            "kind": cfg.kind,
            "files": {"safetensors": f"{name}.safetensors"},
            "metrics": {"default_enabled": True},
        }
        if inputs is not None:
            entry["inputs"] = inputs
        entries[name] = entry
    write_manifest(d, entries, package_version="test")
    return d


def _load(d: Path) -> object:
    return load_policies(d, backend="numpy", limits=CwndLimits(), state_config=STATE, seed=0)


def _features(i: int) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000 + 500 * (i % 7),
        rtt_var_us=4_000,
        bandwidth_bps=50e6,
        loss_rate=0.01 * (i % 3),
        loss_trend=0.0,
        inflight=80,
        cwnd=120_000,
        time_since_loss_ms=500,
        buffer_occupancy=0.2,
        recent_retx=0,
    )


def test_overflowing_weights_are_refused_and_engine_never_raises(tmp_path: Path) -> None:
    d = model_dir(tmp_path / "m", lambda _n, t: {k: np.full_like(v, 3e38) for k, v in t.items()})
    res = _load(d)
    assert res.loss is res.congestion is res.compression is None  # type: ignore[attr-defined]
    for name in MODEL_NAMES:
        assert res.status[name].startswith(f"{STATUS_NON_FINITE}: "), res.status  # type: ignore[attr-defined]
    engine = MlEngine(EngineConfig(load_default_models=False))
    status = engine.load_models(d)
    assert status.pop("path_selector").startswith("missing: ")  # this directory has none
    assert all(s.startswith("non_finite: ") for s in status.values())
    assert not engine.models_loaded()
    for i in range(50):
        t = 10.0 + 0.01 * i
        engine.observe(_features(i), now=t)
        assert 0.0 <= engine.fec_decision(now=t).loss_probability <= 1.0
        engine.congestion_action(now=t)
        engine.compression_decision(b"payload %d " % i * 40)
        engine.select_path(TrafficContext(i % 5), now=t)
    s = engine.stats()
    assert s.loss_predictor.model_decisions == 0
    assert s.congestion_controller.model_decisions == 0


def test_constant_models_are_degenerate(tmp_path: Path) -> None:
    d = model_dir(tmp_path / "m", lambda _n, t: {k: np.zeros_like(v) for k, v in t.items()})
    res = _load(d)
    for name in MODEL_NAMES:
        assert res.status[name].startswith(f"{STATUS_DEGENERATE}: "), res.status  # type: ignore[attr-defined]
        assert "same for all" in res.status[name]  # type: ignore[attr-defined]


def test_output_out_of_range_is_degenerate(tmp_path: Path) -> None:
    def huge_head(name: str, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if name == "congestion_controller":
            last = max(k for k in t if k.endswith(".bias"))
            t[last] = t[last] + np.float32(1e8)
        return t

    res = _load(model_dir(tmp_path / "m", huge_head))
    assert res.status["congestion_controller"].startswith(f"{STATUS_DEGENERATE}: ")  # type: ignore[attr-defined]
    assert "magnitude" in res.status["congestion_controller"]  # type: ignore[attr-defined]
    assert res.status["loss_predictor"] == res.status["compression_oracle"] == "loaded"  # type: ignore[attr-defined]


def test_healthy_random_models_pass_the_probe(tmp_path: Path) -> None:
    assert _load(model_dir(tmp_path / "m")).status == dict.fromkeys(MODEL_NAMES, "loaded")  # type: ignore[attr-defined]


@pytest.mark.parametrize("shipped", ["default", "dqn", "residual_dqn", "residual_dqn_s1"])
@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_shipped_default_models_pass_the_probe(backend: str, shipped: str) -> None:
    """The defaults and the candidates shipped beside them (`candidate_dir`)."""
    d = default_model_dir() if shipped == "default" else candidate_dir(shipped)
    if d is None:
        pytest.skip(f"no {shipped} models shipped in this build")
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    res = load_policies(d, backend=backend, limits=CwndLimits(), state_config=STATE, seed=0)
    # A shipped model may be stale for other reasons (e.g. features of another version),
    # but the probe must never refuse a trained model.
    for status in res.status.values():
        assert not status.startswith((STATUS_NON_FINITE, STATUS_DEGENERATE)), res.status
    assert "loaded" in res.status.values()


def test_probe_does_not_touch_the_model_state() -> None:
    cfg = LossLstmConfig()
    m = LstmLossModel.from_tensors(_random(cfg, 0), cfg)
    m.step(_features(1).to_vector())
    h, c = m.clone_state()
    assert probe_model("lstm_loss", m).ok
    h2, c2 = m.clone_state()
    assert np.array_equal(h, h2) and np.array_equal(c, c2)


def test_probe_inputs_are_deterministic_and_varied() -> None:
    a, b = probe_connections(), probe_connections()
    assert [[f for f, _ in c] for c in a] == [[f for f, _ in c] for c in b]
    vectors = np.stack([f.to_vector() for c in a for f, _ in c])
    assert len(np.unique(vectors.round(4), axis=0)) > 50


def test_judge_outputs() -> None:
    assert judge_outputs(np.array([[0.1, 0.2], [0.3, 0.1]])).ok
    assert judge_outputs(np.array([[0.1, np.nan], [0.3, 0.1]])).status == STATUS_NON_FINITE
    assert judge_outputs(np.array([[np.inf], [0.3]])).status == STATUS_NON_FINITE
    r = judge_outputs(np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]))
    assert r.status == STATUS_DEGENERATE and "same for all 3" in r.reason
    r = judge_outputs(np.array([[0.0], [MAX_ABS_OUTPUT * 2]]))
    assert r.status == STATUS_DEGENERATE and "magnitude" in r.reason
    # One output varying is enough: the model reads its input.
    assert judge_outputs(np.array([[1.0, 2.0], [1.0, 2.5]])).ok


def test_mlp_probe_detects_nan_from_inf_minus_inf() -> None:
    cfg = DqnMlpConfig(n_inputs=STATE.size)
    t = _random(cfg, 3)
    t["layers.0.weight"][:, :] = 3e38
    t["layers.0.weight"][::2, :] = -3e38
    m = MlpModel.from_tensors(t, cfg)
    assert probe_model("dqn", m, state_config=STATE).status == STATUS_NON_FINITE
