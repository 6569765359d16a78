"""Model directory manifest: writing, verifying (never raising), verified loading."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.bench_models import random_tensors
from oxidize_ml.features import FEATURE_NAMES, schema_description
from oxidize_ml.hub import (
    MANIFEST_NAME,
    ModelDirReport,
    load_verified,
    verify_model_dir,
    write_manifest,
)
from oxidize_ml.runtime import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    LstmLossModel,
    MlpModel,
)
from oxidize_ml.runtime.weights import encode_weights

HAVE_ORT = all(
    __import__("importlib").util.find_spec(m) is not None for m in ("onnx", "onnxruntime")
)

MODELS = {
    "loss_predictor": LossLstmConfig(),
    "congestion_controller": DqnMlpConfig(),
    "compression_oracle": CompressionMlpConfig(n_inputs=5),
}


def _entries(onnx: bool) -> dict[str, dict]:
    out = {}
    for name, cfg in MODELS.items():
        files = {"safetensors": f"{name}.safetensors"}
        if onnx:
            files["onnx"] = f"{name}.onnx"
        entry = {
            "version": "3",
            "kind": cfg.kind,
            "files": files,
            "training": {"steps": 100, "seed": 0},
            "metrics": {"brier": 0.05},
        }
        if name == "compression_oracle":
            entry["inputs"] = ["entropy", "top4", "size", "text", "magic"]
        out[name] = entry
    return out


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    for name, cfg in MODELS.items():
        t = random_tensors(cfg, seed=len(name))
        (tmp_path / f"{name}.safetensors").write_bytes(encode_weights(t, cfg))
        if HAVE_ORT:
            from oxidize_ml.bench_models import lstm_step_onnx, mlp_onnx

            onnx = lstm_step_onnx(t, cfg) if name == "loss_predictor" else mlp_onnx(t, cfg)
            (tmp_path / f"{name}.onnx").write_bytes(onnx)
    write_manifest(
        tmp_path,
        _entries(HAVE_ORT),
        package_version="0.1.0",
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    return tmp_path


def _statuses(report: ModelDirReport) -> dict[str, str]:
    assert report.error is None, report.error
    return {n: m.status for n, m in report.models.items()}


def _edit_manifest(d: Path, fn) -> None:
    data = json.loads((d / MANIFEST_NAME).read_text())
    fn(data)
    (d / MANIFEST_NAME).write_text(json.dumps(data))


def test_written_manifest_content(model_dir: Path) -> None:
    data = json.loads((model_dir / MANIFEST_NAME).read_text())
    assert data["format_version"] == 1
    assert data["feature_schema"] == schema_description()
    assert data["created_at"] == "2026-01-02T00:00:00+00:00"
    assert data["package_version"] == "0.1.0"
    files = sorted(p.name for p in model_dir.iterdir() if p.name != MANIFEST_NAME)
    assert sorted(data["sha256"]) == files  # every model file, nothing else
    lp = data["models"]["loss_predictor"]
    assert lp["kind"] == "lstm_loss" and lp["config"] == LossLstmConfig().to_dict()
    assert lp["inputs"] == list(FEATURE_NAMES) and lp["training"] == {"steps": 100, "seed": 0}
    assert not any(p.name.startswith(".tmp") for p in model_dir.iterdir())


def test_verify_ok(model_dir: Path) -> None:
    report = verify_model_dir(model_dir)
    assert report.ok, report.summary()
    assert set(_statuses(report).values()) == {"ok"}
    assert report.models["congestion_controller"].kind == "dqn"


def test_checksum_mismatch(model_dir: Path) -> None:
    p = model_dir / "congestion_controller.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01  # one bit in a weight
    p.write_bytes(bytes(data))
    st = _statuses(verify_model_dir(model_dir))
    assert st == {
        "loss_predictor": "ok",
        "congestion_controller": "checksum_mismatch",
        "compression_oracle": "ok",
    }
    model, reason = load_verified(model_dir, "congestion_controller")
    assert model is None and "checksum_mismatch" in reason


def test_missing_file(model_dir: Path) -> None:
    (model_dir / "loss_predictor.safetensors").unlink()
    report = verify_model_dir(model_dir)
    assert _statuses(report)["loss_predictor"] == "missing"
    assert "loss_predictor.safetensors" in report.models["loss_predictor"].reason
    assert not report.ok
    model, reason = load_verified(model_dir, "loss_predictor")
    assert model is None and "missing" in reason
    # The other models still load: each model falls back independently.
    assert isinstance(load_verified(model_dir, "congestion_controller")[0], MlpModel)


def test_wrong_feature_schema_version(model_dir: Path) -> None:
    def bump(data: dict) -> None:
        data["feature_schema"]["version"] = 2

    _edit_manifest(model_dir, bump)
    report = verify_model_dir(model_dir)
    st = _statuses(report)
    assert st["loss_predictor"] == st["congestion_controller"] == "schema_mismatch"
    assert st["compression_oracle"] == "ok"  # reads payload features, not the network schema
    assert "version 2" in report.models["loss_predictor"].reason


def test_changed_schema_content_and_inputs(model_dir: Path) -> None:
    def change(data: dict) -> None:
        data["feature_schema"]["features"][0]["divisor"] = 1000.0

    _edit_manifest(model_dir, change)
    assert _statuses(verify_model_dir(model_dir))["loss_predictor"] == "schema_mismatch"


def test_inputs_not_the_schema_features(model_dir: Path) -> None:
    def swap(data: dict) -> None:
        inputs = data["models"]["congestion_controller"]["inputs"]
        inputs[0], inputs[1] = inputs[1], inputs[0]

    _edit_manifest(model_dir, swap)
    assert _statuses(verify_model_dir(model_dir))["congestion_controller"] == "schema_mismatch"


def test_weight_file_schema_version_is_schema_mismatch(tmp_path: Path) -> None:
    from safetensors.numpy import save as st_save

    from oxidize_ml.runtime.configs import WEIGHTS_FORMAT, config_to_json

    cfg = LossLstmConfig()
    meta = {
        "format": WEIGHTS_FORMAT,
        "kind": cfg.kind,
        "config": config_to_json(cfg),
        "feature_schema_version": "0",
    }
    good = encode_weights(random_tensors(cfg), cfg)
    (tmp_path / "loss_predictor.safetensors").write_bytes(good)
    write_manifest(
        tmp_path,
        {
            "loss_predictor": {
                "version": "1",
                "kind": "lstm_loss",
                "files": {"safetensors": "loss_predictor.safetensors"},
            }
        },
        package_version="0.1.0",
    )
    # Replace the file by one trained for another schema and re-record its checksum.
    (tmp_path / "loss_predictor.safetensors").write_bytes(
        st_save(random_tensors(cfg), metadata=meta)
    )
    import hashlib

    def rehash(data: dict) -> None:
        data["sha256"]["loss_predictor.safetensors"] = hashlib.sha256(
            (tmp_path / "loss_predictor.safetensors").read_bytes()
        ).hexdigest()

    _edit_manifest(tmp_path, rehash)
    assert _statuses(verify_model_dir(tmp_path))["loss_predictor"] == "schema_mismatch"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{this is not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"format_version": 2, "models": {}, "sha256": {}}', "format_version 2"),
        (b'{"format_version": 1}', "lacks"),
        (b'{"format_version": 1, "models": {}, "sha256": {}, "x": NaN}', "not valid JSON"),
    ],
)
def test_bad_manifest_is_reported_not_raised(model_dir: Path, content: bytes, needle: str) -> None:
    (model_dir / MANIFEST_NAME).write_bytes(content)
    report = verify_model_dir(model_dir)
    assert report.error is not None and needle in report.error
    assert not report.ok and report.models == {}
    model, reason = load_verified(model_dir, "loss_predictor")
    assert model is None and needle in reason


def test_missing_manifest(tmp_path: Path) -> None:
    report = verify_model_dir(tmp_path / "nowhere")
    assert report.error is not None and "no manifest.json" in report.error
    assert load_verified(tmp_path, "loss_predictor")[0] is None


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda e: e.update(kind="transformer"), "kind"),
        (lambda e: e.update(files={"safetensors": "../../etc/passwd"}), "bad file entry"),
        (
            lambda e: e.update(
                files={"pickle": "x.pkl", "safetensors": "loss_predictor.safetensors"}
            ),
            "bad file",
        ),
        (lambda e: e.update(config={"n_features": 8, "hidden": 32, "seq_len": 20}), "differs"),
        (lambda e: e.update(config="big"), "bad config"),
        (lambda e: e.pop("files"), "files"),
    ],
)
def test_invalid_entries(model_dir: Path, edit, needle: str) -> None:
    _edit_manifest(model_dir, lambda data: edit(data["models"]["loss_predictor"]))
    report = verify_model_dir(model_dir)
    status = report.models["loss_predictor"]
    assert status.status == "invalid" and needle in status.reason, status
    assert report.models["congestion_controller"].ok


def test_entry_not_an_object_and_missing_checksum(model_dir: Path) -> None:
    def edit(data: dict) -> None:
        data["models"]["loss_predictor"] = 42
        del data["sha256"]["congestion_controller.safetensors"]

    _edit_manifest(model_dir, edit)
    st = verify_model_dir(model_dir).models
    assert st["loss_predictor"].status == "invalid"
    assert st["congestion_controller"].status == "invalid"
    assert "no sha256" in st["congestion_controller"].reason


def test_corrupt_weights_with_matching_checksum_are_invalid(model_dir: Path) -> None:
    import hashlib

    p = model_dir / "compression_oracle.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b"\x00" * 30)

    def rehash(data: dict) -> None:
        data["sha256"][p.name] = hashlib.sha256(p.read_bytes()).hexdigest()

    _edit_manifest(model_dir, rehash)
    st = verify_model_dir(model_dir).models["compression_oracle"]
    assert st.status == "invalid"


def test_load_verified_numpy(model_dir: Path) -> None:
    lstm, reason = load_verified(model_dir, "loss_predictor")
    assert reason == "ok" and isinstance(lstm, LstmLossModel)
    assert 0.0 < lstm.step(np.full(8, 0.1, np.float32)) < 1.0
    comp, reason = load_verified(model_dir, "compression_oracle")
    assert reason == "ok" and isinstance(comp, MlpModel) and comp.kind == "compression_mlp"
    assert load_verified(model_dir, "path_selector") == (
        None,
        (
            f"no model 'path_selector' in {model_dir / MANIFEST_NAME}; it has "
            "['compression_oracle', 'congestion_controller', 'loss_predictor']"
        ),
    )
    model, reason = load_verified(model_dir, "loss_predictor", backend="tpu")
    assert model is None and "unknown backend" in reason


@pytest.mark.skipif(not HAVE_ORT, reason="needs onnx and onnxruntime")
def test_load_verified_onnxruntime_matches_numpy(model_dir: Path) -> None:
    from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel, OrtMlpModel

    ort_lstm, reason = load_verified(model_dir, "loss_predictor", backend="onnxruntime")
    assert reason == "ok" and isinstance(ort_lstm, OrtLstmLossModel)
    np_lstm, _ = load_verified(model_dir, "loss_predictor")
    xs = np.random.default_rng(0).uniform(0, 1, (10, 8)).astype(np.float32)
    for x in xs:
        assert abs(ort_lstm.step(x) - np_lstm.step(x)) < 1e-5
    dqn, reason = load_verified(model_dir, "congestion_controller", backend="onnxruntime")
    assert reason == "ok" and isinstance(dqn, OrtMlpModel)


@pytest.mark.skipif(not HAVE_ORT, reason="needs onnx and onnxruntime")
def test_load_verified_without_onnxruntime(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model, reason = load_verified(model_dir, "loss_predictor", backend="onnxruntime")
    assert model is None and "'onnx' extra" in reason
    assert isinstance(load_verified(model_dir, "loss_predictor")[0], LstmLossModel)


def test_load_verified_onnx_absent(tmp_path: Path) -> None:
    cfg = DqnMlpConfig()
    (tmp_path / "congestion_controller.safetensors").write_bytes(
        encode_weights(random_tensors(cfg), cfg)
    )
    write_manifest(
        tmp_path,
        {
            "congestion_controller": {
                "version": 1,
                "kind": "dqn",
                "files": {"safetensors": "congestion_controller.safetensors"},
            }
        },
        package_version="0.1.0",
    )
    model, reason = load_verified(tmp_path, "congestion_controller", backend="onnxruntime")
    assert model is None and "no onnx file" in reason


def test_write_manifest_rejects_bad_entries(model_dir: Path) -> None:
    good = _entries(False)
    cases = [
        ({"loss_predictor": {**good["loss_predictor"], "kind": "dqn"}}, "expected 'dqn'"),
        (
            {
                "loss_predictor": {
                    **good["loss_predictor"],
                    "files": {"safetensors": "nope.safetensors"},
                }
            },
            "does not exist",
        ),
        (
            {"loss_predictor": {**good["loss_predictor"], "files": {"safetensors": "/etc/passwd"}}},
            "bare file name",
        ),
        (
            {
                "loss_predictor": {
                    **good["loss_predictor"],
                    "config": {"n_features": 8, "hidden": 16, "seq_len": 20},
                }
            },
            "differs",
        ),
        ({"loss_predictor": {**good["loss_predictor"], "version": ""}}, "version"),
        ({"loss_predictor": {**good["loss_predictor"], "extra": 1}}, "unknown keys"),
        (
            {"compression_oracle": {**good["compression_oracle"], "inputs": ["a"]}},
            "inputs must be 5",
        ),
        (
            {
                "compression_oracle": {
                    k: v for k, v in good["compression_oracle"].items() if k != "inputs"
                }
            },
            "explicit 'inputs'",
        ),
        ({}, "empty"),
    ]
    before = (model_dir / MANIFEST_NAME).read_bytes()
    for models, needle in cases:
        with pytest.raises(ValueError, match=needle):
            write_manifest(model_dir, models, package_version="0.1.0")
    assert (model_dir / MANIFEST_NAME).read_bytes() == before  # nothing written on error
