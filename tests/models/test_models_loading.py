"""`load_policies`: per-model verification, fallback with a reason, engine integration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.compression.adaptive import RateBucketOracle
from oxidize_ml.compression.learned import (
    INPUT_NAMES,
    N_INPUTS,
    N_OUTPUTS,
)
from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.dqn import DqnCwndPolicy
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import FEATURE_NAMES, NetworkFeatures
from oxidize_ml.hub.manifest import write_manifest
from oxidize_ml.loss.lstm import LstmLossPredictor
from oxidize_ml.models import MODEL_NAMES, load_policies
from oxidize_ml.runtime.configs import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    expected_tensors,
)
from oxidize_ml.runtime.weights import encode_weights

STATE = StateConfig()


def _tensors(config: object, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        k: rng.normal(0.0, 0.2, s).astype(np.float32)
        for k, s in expected_tensors(config).items()  # type: ignore[arg-type]
    }


def make_model_dir(
    d: Path, *, default_enabled: tuple[bool, bool, bool] = (True, True, True)
) -> Path:
    """A real model directory with random-init weights for the three models."""
    d.mkdir(parents=True, exist_ok=True)
    configs = {
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
    entries = {}
    for i, (name, (cfg, inputs)) in enumerate(configs.items()):
        (d / f"{name}.safetensors").write_bytes(encode_weights(_tensors(cfg, i), cfg))
        entry = {
            "version": f"test-{i}",
            "kind": cfg.kind,
            "files": {"safetensors": f"{name}.safetensors"},
            "metrics": {"default_enabled": default_enabled[i], "engine_link_rate_bps": 20e6},
        }
        if inputs is not None:
            entry["inputs"] = inputs
        entries[name] = entry
    write_manifest(d, entries, package_version="test")
    return d


def _load(d: Path, **kw: object) -> object:
    return load_policies(d, backend="numpy", limits=CwndLimits(), state_config=STATE, seed=0, **kw)


def test_all_models_load(tmp_path: Path) -> None:
    res = _load(make_model_dir(tmp_path / "m"))
    assert res.status == dict.fromkeys(MODEL_NAMES, "loaded")
    assert isinstance(res.loss, LstmLossPredictor)
    assert isinstance(res.congestion, DqnCwndPolicy)
    assert isinstance(res.compression, RateBucketOracle)  # a LearnedCompressionOracle per rate
    assert res.compression.link_rate_bps == 20e6  # from the manifest's metrics
    assert res.versions == {
        "loss_predictor": "test-0",
        "congestion_controller": "test-1",
        "compression_oracle": "test-2",
    }


def test_checksum_mismatch_falls_back_others_load(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    p = d / "loss_predictor.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    res = _load(d)
    assert res.status["loss_predictor"].startswith("checksum_mismatch")
    assert res.loss is None
    assert res.status["congestion_controller"] == "loaded"
    assert res.status["compression_oracle"] == "loaded"


def test_corrupt_file_with_matching_checksum_is_invalid(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    p = d / "congestion_controller.safetensors"
    p.write_bytes(p.read_bytes()[:100])  # truncated
    manifest = json.loads((d / "manifest.json").read_text())
    import hashlib

    manifest["sha256"][p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    (d / "manifest.json").write_text(json.dumps(manifest))
    res = _load(d)
    assert res.status["congestion_controller"].startswith("invalid")
    assert res.congestion is None
    assert res.status["loss_predictor"] == "loaded"
    assert res.status["compression_oracle"] == "loaded"


def test_wrong_schema_version(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["feature_schema"]["version"] = 999
    (d / "manifest.json").write_text(json.dumps(manifest))
    res = _load(d)
    assert res.status["loss_predictor"].startswith("schema_mismatch")
    assert res.status["congestion_controller"].startswith("schema_mismatch")
    # The compression oracle reads payload features, not the network schema.
    assert res.status["compression_oracle"] == "loaded"


def test_compression_features_of_another_version(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["models"]["compression_oracle"]["training"]["learned_feature_version"] = 99
    (d / "manifest.json").write_text(json.dumps(manifest))
    res = _load(d)
    assert res.status["compression_oracle"].startswith("schema_mismatch")
    assert res.status["loss_predictor"] == "loaded"
    manifest["models"]["compression_oracle"]["training"] = {}
    manifest["models"]["compression_oracle"]["inputs"] = [f"f{i}" for i in range(N_INPUTS)]
    (d / "manifest.json").write_text(json.dumps(manifest))
    assert _load(d).status["compression_oracle"].startswith("schema_mismatch")


def test_missing_file_and_missing_entry(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    (d / "compression_oracle.safetensors").unlink()
    manifest = json.loads((d / "manifest.json").read_text())
    del manifest["models"]["loss_predictor"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    res = _load(d)
    assert res.status["compression_oracle"].startswith("missing")
    assert res.status["loss_predictor"].startswith("missing")
    assert res.status["congestion_controller"] == "loaded"


def test_no_manifest_and_garbage_manifest(tmp_path: Path) -> None:
    res = _load(tmp_path)
    assert all("manifest.json" in s for s in res.status.values())
    assert res.loss is res.congestion is res.compression is None
    (tmp_path / "manifest.json").write_bytes(b"\x00not json")
    res = _load(tmp_path)
    assert set(res.status) == set(MODEL_NAMES)
    assert all(s != "loaded" for s in res.status.values())


def test_wrong_kind_under_a_name(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    manifest = json.loads((d / "manifest.json").read_text())
    # Swap two entries: each file verifies, but under the wrong name.
    m = manifest["models"]
    m["loss_predictor"], m["compression_oracle"] = m["compression_oracle"], m["loss_predictor"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    res = _load(d)
    assert res.status["loss_predictor"].startswith("invalid")
    assert res.status["compression_oracle"].startswith("invalid")
    assert res.status["congestion_controller"] == "loaded"


def test_dqn_trained_for_another_state_config(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    res = load_policies(
        d, backend="numpy", limits=CwndLimits(), state_config=StateConfig(history=2), seed=0
    )
    assert res.status["congestion_controller"].startswith("invalid")
    assert res.status["loss_predictor"] == "loaded"


def test_only_default_enabled(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m", default_enabled=(False, True, False))
    res = _load(d, only_default_enabled=True)
    assert res.status == {
        "loss_predictor": "not default",
        "congestion_controller": "loaded",
        "compression_oracle": "not default",
    }
    assert res.loss is None and res.compression is None
    assert _load(d).status == dict.fromkeys(MODEL_NAMES, "loaded")


@pytest.mark.parametrize("backend", ["numpy", "onnxruntime"])
def test_unknown_or_absent_onnx_backend_reports(tmp_path: Path, backend: str) -> None:
    d = make_model_dir(tmp_path / "m")  # no .onnx files in this directory
    res = load_policies(d, backend=backend, limits=CwndLimits(), state_config=STATE, seed=0)
    if backend == "numpy":
        assert res.status["loss_predictor"] == "loaded"
    else:
        assert "onnx" in res.status["loss_predictor"]
    assert res.status["compression_oracle"] == "loaded"  # always tabulated on numpy


def _features(loss: float) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000,
        rtt_var_us=4_000,
        bandwidth_bps=50e6,
        loss_rate=loss,
        loss_trend=0.0,
        inflight=80,
        cwnd=120_000,
        time_since_loss_ms=500,
        buffer_occupancy=0.2,
        recent_retx=0,
    )


def test_engine_uses_loaded_models(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    engine = MlEngine(EngineConfig(load_default_models=False))
    status = engine.load_models(d)
    assert status.pop("path_selector").startswith("missing: ")  # this directory has none
    assert status == dict.fromkeys(MODEL_NAMES, "loaded")
    assert engine.models_loaded()
    for i in range(30):
        t = 1_000.0 + 0.01 * i
        engine.observe(_features(0.01 * (i % 3)), now=t)
        engine.fec_decision(now=t)
        engine.congestion_action(now=t)
        engine.compression_decision(b"payload %d " % i * 40)
    s = engine.stats()
    for comp in (s.loss_predictor, s.congestion_controller, s.compression_oracle):
        assert comp.model_loaded
        assert comp.model_decisions == comp.decisions > 0
    assert s.compression_oracle.policy == "mlp"
    engine.unload_models()
    assert not engine.models_loaded()


def test_engine_keeps_heuristic_for_bad_model(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    (d / "compression_oracle.safetensors").write_bytes(b"garbage")
    engine = MlEngine(EngineConfig(load_default_models=False))
    status = engine.load_models(d)
    assert status["compression_oracle"].startswith("checksum_mismatch")
    engine.compression_decision(b"x" * 500)
    s = engine.stats()
    assert not s.compression_oracle.model_loaded
    assert s.compression_oracle.model_decisions == 0
    assert s.loss_predictor.model_loaded


def test_dqn_runs_with_the_state_config_its_file_records(tmp_path: Path) -> None:
    # One rule for a DQN's state layout: the one its (verified) weight file
    # records, as `DqnCwndPolicy.load` reads it; not whatever the caller uses.
    import dataclasses

    from oxidize_ml.congestion.dqn import STATE_CONFIG_KEY

    d = make_model_dir(tmp_path / "m")
    other = StateConfig(history=2)
    cfg = DqnMlpConfig(n_inputs=other.size)
    meta = {STATE_CONFIG_KEY: json.dumps(dataclasses.asdict(other))}
    (d / "congestion_controller.safetensors").write_bytes(
        encode_weights(_tensors(cfg, 7), cfg, extra_metadata=meta)
    )
    manifest = json.loads((d / "manifest.json").read_text())
    entries = manifest["models"]
    entries["congestion_controller"].pop("config", None)  # rewritten from the new file
    entries["congestion_controller"]["inputs"] = list(FEATURE_NAMES) + [
        f"derived_{i}" for i in range(other.size - len(FEATURE_NAMES))
    ]
    write_manifest(d, entries, package_version="test")
    res = _load(d)  # the caller's state config is the default one
    assert res.status["congestion_controller"] == "loaded"
    assert res.congestion.state_config == other
    # The same file through the other loader gives the same layout.
    assert DqnCwndPolicy.load(d).state_config == other
    engine = MlEngine(EngineConfig(load_default_models=False))
    assert engine.load_models(d)["congestion_controller"] == "loaded"
    f = NetworkFeatures(
        rtt_us=40_000,
        rtt_var_us=1_000,
        bandwidth_bps=1e7,
        loss_rate=0.0,
        loss_trend=0.0,
        inflight=10,
        cwnd=15_000,
        buffer_occupancy=0.1,
    )
    for k in range(5):  # the policy encodes its own 16-float states
        engine.observe(f, throughput_bps=1e7, now=1.0 + 0.01 * k)
        engine.congestion_action(now=1.0 + 0.01 * k)
    assert engine.stats().congestion_controller.model_decisions == 5


@pytest.mark.parametrize("raw", ["{not json", '{"history": -3}', '{"no_such_field": 1}', "[]"])
def test_a_dqn_file_with_a_bad_recorded_state_config_is_refused(tmp_path: Path, raw: str) -> None:
    # Hostile metadata: the verified file names a state layout that cannot be
    # built; that model falls back to the heuristic with a reason, others load.
    from oxidize_ml.congestion.dqn import STATE_CONFIG_KEY

    d = make_model_dir(tmp_path / "m")
    cfg = DqnMlpConfig(n_inputs=STATE.size)
    (d / "congestion_controller.safetensors").write_bytes(
        encode_weights(_tensors(cfg, 3), cfg, extra_metadata={STATE_CONFIG_KEY: raw})
    )
    entries = json.loads((d / "manifest.json").read_text())["models"]
    write_manifest(d, entries, package_version="test")
    res = _load(d)
    assert res.status["congestion_controller"].startswith("invalid"), res.status
    assert res.congestion is None and res.status["loss_predictor"] == "loaded"
