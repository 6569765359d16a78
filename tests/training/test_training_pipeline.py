"""train_all: versioned atomic output, skips and failures, the retraining loop, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from oxidize_ml.cli import app
from oxidize_ml.compression.learned import INPUT_NAMES, N_INPUTS, N_OUTPUTS
from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import FEATURE_NAMES
from oxidize_ml.hub.manifest import verify_model_dir
from oxidize_ml.models import load_policies
from oxidize_ml.paths.learned import INPUT_NAMES as PATH_INPUT_NAMES
from oxidize_ml.runtime.configs import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    PathMlpConfig,
    expected_tensors,
)
from oxidize_ml.runtime.weights import encode_weights
from oxidize_ml.training import pipeline
from oxidize_ml.training.result import TrainResult

STATE = StateConfig()
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SPECS: dict[str, tuple[Any, list[str] | None]] = {
    "loss_predictor": (LossLstmConfig(), None),
    "congestion_controller": (
        DqnMlpConfig(n_inputs=STATE.size),
        list(FEATURE_NAMES) + [f"d{i}" for i in range(STATE.size - len(FEATURE_NAMES))],
    ),
    "compression_oracle": (
        CompressionMlpConfig(n_inputs=N_INPUTS, n_outputs=N_OUTPUTS),
        list(INPUT_NAMES),
    ),
    "path_selector": (PathMlpConfig(), list(PATH_INPUT_NAMES)),
}


def fake_trainer(name: str, *, beats: bool = True, fail: bool = False) -> Any:
    """A trainer with the real signature writing real (random-init) weight files."""

    def train(
        config: Any,
        *,
        seed: int,
        out_dir: Path,
        telemetry_root: Path | None = None,
        progress: bool = True,
    ) -> TrainResult:
        cfg, inputs = SPECS[name]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed + len(name))
        tensors = {
            k: rng.normal(0, 0.2, s).astype(np.float32) for k, s in expected_tensors(cfg).items()
        }
        (out_dir / f"{name}.safetensors").write_bytes(encode_weights(tensors, cfg))
        if fail:
            raise RuntimeError(f"{name} diverged")
        return TrainResult(
            name=name,
            kind=cfg.kind,
            files={"safetensors": f"{name}.safetensors"},
            version="1",
            inputs=inputs,
            training={"seed": seed, "telemetry_root": str(telemetry_root)},
            metrics={"score": float("nan"), "engine_link_rate_bps": 20e6},
            beats_heuristic=beats,
            target="a test target",
        )

    return train


def comparator(better: bool) -> Any:
    def compare(
        result: TrainResult, staging: Path, current: Path | None, config: Any, seed: int
    ) -> dict[str, Any]:
        assert (staging / result.files["safetensors"]).is_file()  # judged before it moves
        return {
            "candidate": {"score": 2.0},
            "current": {"score": 1.0},
            "better": better,
            "current_is": str(current),
            "rule": "test",
        }

    return compare


ALL = {n: fake_trainer(n) for n in pipeline.COMPONENTS}
CONFIGS = dict.fromkeys(pipeline.COMPONENTS, object())


def _run(out: Path, **kw: Any) -> pipeline.PipelineResult:
    kw.setdefault("trainers", ALL)
    kw.setdefault("configs", CONFIGS)
    kw.setdefault("now", T0)
    return pipeline.train_all(out, progress=False, **kw)


def _no_staging(out: Path) -> bool:
    return not [p for p in out.iterdir() if p.name.startswith(".")]


def test_fresh_run_writes_a_versioned_directory(tmp_path: Path) -> None:
    res = _run(tmp_path / "models", seed=7)
    assert res.version == "20260102T030405Z-s7"
    d = res.directory
    assert d == tmp_path / "models" / res.version and d.is_dir()
    assert _no_staging(tmp_path / "models")
    assert verify_model_dir(d).ok
    manifest = json.loads((d / "manifest.json").read_text())
    assert set(manifest["models"]) == set(pipeline.COMPONENTS)
    for entry in manifest["models"].values():
        assert entry["version"] == res.version
        assert entry["training"]["trainer_version"] == "1"
        assert entry["metrics"]["default_enabled"] is True
        assert entry["metrics"]["score"] is None  # NaN made strict JSON
    report = json.loads((d / pipeline.REPORT_NAME).read_text())
    assert report["version"] == res.version and not report["compared"]
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["manifest.json", pipeline.REPORT_NAME, *(f"{n}.safetensors" for n in pipeline.COMPONENTS)]
    )
    loaded = load_policies(d, backend="numpy", limits=CwndLimits(), state_config=STATE, seed=0)
    assert set(loaded.status.values()) == {"loaded"}
    # The same second and seed again: refused rather than overwritten.
    with pytest.raises(FileExistsError):
        _run(tmp_path / "models", seed=7)


def test_missing_trainer_module_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        pipeline.TRAINER_MODULES, "congestion_controller", "oxidize_ml.training.no_such_trainer"
    )
    trainers = {n: t for n, t in ALL.items() if n != "congestion_controller"}
    res = _run(tmp_path, trainers=trainers)
    c = res.components["congestion_controller"]
    assert c.status == "skipped" and "not available" in c.message
    manifest = json.loads((res.directory / "manifest.json").read_text())
    assert set(manifest["models"]) == {"loss_predictor", "compression_oracle", "path_selector"}


def test_failed_trainer_leaves_nothing_behind(tmp_path: Path) -> None:
    trainers = {**ALL, "loss_predictor": fake_trainer("loss_predictor", fail=True)}
    res = _run(tmp_path, trainers=trainers)
    assert res.failed == ["loss_predictor"]
    assert "diverged" in res.components["loss_predictor"].message
    assert not (res.directory / "loss_predictor.safetensors").exists()
    assert verify_model_dir(res.directory).ok
    assert _no_staging(tmp_path)


def _telemetry(root: Path) -> Path:
    engine = MlEngine(EngineConfig(load_default_models=False, collect_training=True))
    engine.compress(b"abc " * 100, now=1_700_000_000.0)
    engine.export_training_data(root)
    return root


def test_retraining_loop_per_component(tmp_path: Path) -> None:
    first = _run(tmp_path / "models", seed=1)
    current = first.directory
    data = _telemetry(tmp_path / "tel")
    later = datetime(2026, 1, 3, tzinfo=UTC)
    res = _run(
        tmp_path / "models",
        seed=2,
        data=data,
        current=current,
        now=later,
        comparators={
            "loss_predictor": comparator(True),
            "congestion_controller": comparator(False),
            "compression_oracle": comparator(False),
            "path_selector": comparator(False),
        },
    )
    assert res.compared
    dec = {n: c.decision for n, c in res.components.items()}
    assert dec == {
        "loss_predictor": "new",
        "congestion_controller": "kept current",
        "compression_oracle": "kept current",
        "path_selector": "kept current",
    }
    d = res.directory
    assert d is not None and d != current and verify_model_dir(d).ok
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["models"]["loss_predictor"]["version"] == res.version
    assert manifest["models"]["congestion_controller"]["version"] == first.version
    # Carried-over models are byte-identical copies; the new one differs (other seed).
    for name in ("congestion_controller", "compression_oracle"):
        assert (d / f"{name}.safetensors").read_bytes() == (
            current / f"{name}.safetensors"
        ).read_bytes()
    assert (d / "loss_predictor.safetensors").read_bytes() != (
        current / "loss_predictor.safetensors"
    ).read_bytes()
    assert manifest["models"]["loss_predictor"]["training"]["telemetry_root"] == str(data)
    report = json.loads((d / pipeline.REPORT_NAME).read_text())
    assert report["components"]["congestion_controller"]["comparison"]["better"] is False


def test_retraining_loop_nothing_better_writes_nothing(tmp_path: Path) -> None:
    current = _run(tmp_path / "models", seed=1).directory
    res = _run(
        tmp_path / "models",
        seed=2,
        data=_telemetry(tmp_path / "tel"),
        current=current,
        now=datetime(2026, 1, 3, tzinfo=UTC),
        comparators=dict.fromkeys(pipeline.COMPONENTS, comparator(False)),
    )
    assert res.directory is None
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [current.name]


def test_against_heuristics_only_better_candidates_ship(tmp_path: Path) -> None:
    empty = tmp_path / "no_models"
    empty.mkdir()
    res = _run(
        tmp_path / "models",
        data=_telemetry(tmp_path / "tel"),
        current=empty,
        comparators={
            "loss_predictor": comparator(False),
            "congestion_controller": comparator(True),
            "compression_oracle": comparator(False),
            "path_selector": comparator(False),
        },
    )
    assert res.components["loss_predictor"].decision == "kept heuristic"
    manifest = json.loads((res.directory / "manifest.json").read_text())
    assert set(manifest["models"]) == {"congestion_controller"}


def test_no_sim_skips_the_dqn(tmp_path: Path) -> None:
    res = _run(
        tmp_path / "m",
        data=_telemetry(tmp_path / "tel"),
        include_sim=False,
        comparators=dict.fromkeys(pipeline.COMPONENTS, comparator(True)),
    )
    assert res.components["congestion_controller"].status == "skipped"
    assert "simulator" in res.components["congestion_controller"].message


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown components"):
        _run(tmp_path, components=("paths",))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no telemetry export"):
        _run(tmp_path, data=tmp_path / "empty")


def test_make_config_applies_no_sim() -> None:
    pytest.importorskip("torch")
    cfg = pipeline.make_config("compression_oracle", quick=True, include_sim=False)
    assert cfg.use_corpus is False
    loss = pipeline.make_config("loss_predictor", quick=True, include_sim=False)
    assert loss.train_scenarios == () and loss.random_links == 0 and not loss.use_traces


def test_builtin_comparison_rules_against_heuristics() -> None:
    loss = TrainResult(
        name="loss_predictor",
        kind="lstm_loss",
        files={},
        version="1",
        inputs=None,
        training={},
        beats_heuristic=True,
        metrics={
            "pr_auc_lstm": 0.50,
            "pr_auc_ewma": 0.40,
            "brier_lstm": 0.0104,
            "brier_ewma": 0.0100,
        },
    )
    out = pipeline._compare_loss(loss, Path("."), None, None, 0)
    assert out["better"] is True and out["current_is"].startswith("heuristic")
    worse_brier = TrainResult(**{**loss.__dict__, "metrics": {**loss.metrics, "brier_lstm": 0.02}})
    assert pipeline._compare_loss(worse_brier, Path("."), None, None, 0)["better"] is False

    def cc(dqn: tuple[float, float]) -> TrainResult:
        summary = {
            "dqn": {"throughput_mbps_sum": dqn[0], "delay_p95_ms_mean": dqn[1]},
            "bbr": {"throughput_mbps_sum": 100.0, "delay_p95_ms_mean": 50.0},
        }
        return TrainResult(
            name="congestion_controller",
            kind="dqn",
            files={},
            version="1",
            inputs=None,
            training={},
            beats_heuristic=False,
            metrics={"heldout": {"summary": summary}},
        )

    assert pipeline._compare_congestion(cc((100.0, 40.0)), Path("."), None, None, 0)["better"]
    assert not pipeline._compare_congestion(cc((80.0, 20.0)), Path("."), None, None, 0)["better"]
    assert not pipeline._compare_congestion(cc((101.0, 50.0)), Path("."), None, None, 0)["better"]


def test_a_dqn_candidate_is_judged_against_the_engine_when_the_current_is_a_residual_dqn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shipped congestion controller is the residual DQN, whose weights are not run on
    the spec's state: a plain DQN candidate is compared with MlEngine() on those models."""
    from oxidize_ml.models import candidate_dir
    from oxidize_ml.sim.scenarios import get_scenario
    from oxidize_ml.training import dqn as Q

    current = candidate_dir("residual_dqn")
    assert current is not None
    monkeypatch.setattr(Q, "heldout_suite", lambda: [get_scenario("wired-clean")])
    config = Q.DqnTrainConfig(eval_seeds=1, eval_duration_s=1.0)
    summary = {
        "dqn": {"throughput_mbps_sum": 1.0, "delay_p95_ms_mean": 1e6},
        "bbr": {"throughput_mbps_sum": 100.0, "delay_p95_ms_mean": 50.0},
    }
    result = TrainResult(
        name="congestion_controller",
        kind="dqn",
        files={},
        version="1",
        inputs=None,
        training={},
        beats_heuristic=False,
        metrics={"heldout": {"summary": summary}},
    )
    out = pipeline._compare_congestion(result, Path("."), current, config, 0)
    assert out["current_is"] == f"MlEngine with the models in {current}"
    assert out["current"]["throughput_mbps_sum"] > 1.0 and out["better"] is False
    # the engine's figures are those of an engine running the current models
    direct = Q.evaluate_congestion(
        None,
        [get_scenario("wired-clean")],
        state_config=config.state,
        seeds=1,
        duration_s=1.0,
        factory=pipeline._engine_with(current),
    )
    assert out["current"]["throughput_mbps_sum"] == direct["summary"]["dqn"]["throughput_mbps_sum"]
    with pytest.raises(ValueError, match="model_path"):
        Q.evaluate_congestion(None, [], state_config=config.state, seeds=1)


def test_install_defaults(tmp_path: Path) -> None:
    d = _run(tmp_path / "models").directory
    target = tmp_path / "pkg" / "default"
    assert pipeline.install_defaults(d, target) == target
    assert verify_model_dir(target).ok
    (target / "stale.txt").write_text("old")
    pipeline.install_defaults(d, target)  # replaces the whole directory
    assert not (target / "stale.txt").exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]
    (d / "loss_predictor.safetensors").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="refusing"):
        pipeline.install_defaults(d, target)
    assert verify_model_dir(target).ok  # the installed defaults are untouched


runner = CliRunner()


def test_cli_argument_errors(tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", "--no-sim", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--no-sim needs --data" in r.output
    r = runner.invoke(app, ["train", "--components", "paths", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown components" in r.output


def test_cli_names_the_train_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.importlib.util.find_spec
    monkeypatch.setattr(
        pipeline.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real(name, *a),
    )
    r = runner.invoke(app, ["train", "--quick", "--out", str(tmp_path)])
    assert r.exit_code == 3
    assert "oxidize-ml[train]" in r.output and "torch" in r.output


def test_cli_prints_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = pipeline.train_all

    def fake_train_all(out: Path, **kw: Any) -> pipeline.PipelineResult:
        seen.update(kw)
        return real(
            out,
            seed=kw["seed"],
            components=kw["components"],
            trainers=ALL,
            configs=CONFIGS,
            progress=False,
        )

    monkeypatch.setattr(pipeline, "train_all", fake_train_all)
    r = runner.invoke(
        app,
        [
            "train",
            "--quick",
            "--seed",
            "3",
            "--components",
            "compression_oracle",
            "--out",
            str(tmp_path / "m"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert seen["quick"] is True and seen["components"] == ("compression_oracle",)
    assert "compression_oracle" in r.output and "a test target" in r.output
    assert "wrote" in r.output


# -- the residual DQN: an optional component filling the congestion_controller slot --------


def fake_residual_trainer(*, beats: bool = True) -> Any:
    """A residual trainer with the real signature: a random-init residual DQN file."""
    from oxidize_ml.congestion.residual import INPUT_NAMES as RES_INPUTS
    from oxidize_ml.congestion.residual import N_INPUTS as RES_N

    def train(
        config: Any,
        *,
        seed: int,
        out_dir: Path,
        telemetry_root: Path | None = None,
        progress: bool = True,
    ) -> TrainResult:
        cfg = DqnMlpConfig(n_inputs=RES_N)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        tensors = {
            k: rng.normal(0, 0.2, s).astype(np.float32) for k, s in expected_tensors(cfg).items()
        }
        (out_dir / "residual_dqn.safetensors").write_bytes(encode_weights(tensors, cfg))
        return TrainResult(
            name="residual_dqn",
            kind="dqn",
            files={"safetensors": "residual_dqn.safetensors"},
            version="1",
            inputs=list(RES_INPUTS),
            training={"policy": "residual-dqn", "seed": seed},
            metrics={"default_rule": {"passed": beats}},
            beats_heuristic=beats,
            target="issue 10 default rule",
        )

    return train


def test_residual_dqn_is_optional_and_fills_the_congestion_slot(tmp_path: Path) -> None:
    from oxidize_ml.congestion.residual import ResidualDqnPolicy

    assert "residual_dqn" not in pipeline.COMPONENTS  # not trained unless named
    assert pipeline.model_slot("residual_dqn") == "congestion_controller"
    res = _run(
        tmp_path,
        components=("residual_dqn",),
        trainers={"residual_dqn": fake_residual_trainer()},
        configs={"residual_dqn": object()},
    )
    assert res.components["residual_dqn"].decision == "new"
    d = res.directory
    assert d is not None and verify_model_dir(d).ok
    manifest = json.loads((d / "manifest.json").read_text())
    assert set(manifest["models"]) == {"congestion_controller"}
    assert manifest["models"]["congestion_controller"]["training"]["policy"] == "residual-dqn"
    loaded = load_policies(d, backend="numpy", limits=CwndLimits(), state_config=STATE, seed=0)
    assert loaded.status["congestion_controller"] == "loaded"
    assert isinstance(loaded.congestion, ResidualDqnPolicy)


def test_residual_dqn_and_the_dqn_cannot_share_the_slot(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both train"):
        _run(tmp_path, components=("congestion_controller", "residual_dqn"))
    r = runner.invoke(
        app,
        [
            "train",
            "--components",
            "congestion_controller",
            "--components",
            "residual_dqn",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2 and "choose one" in r.output


def test_residual_dqn_comparison_against_the_package_defaults_uses_its_own_rule() -> None:
    res = TrainResult(
        name="residual_dqn",
        kind="dqn",
        files={"safetensors": "residual_dqn.safetensors"},
        version="1",
        inputs=None,
        training={},
        metrics={
            "default_rule": {
                "passed": False,
                "power_ratio_vs_default": 1.02,
                "power_ratio_ci": [0.99, 1.05],
                "worst_family": 0.95,
            }
        },
        beats_heuristic=False,
    )
    out = pipeline.COMPARATORS["residual_dqn"](res, Path("."), None, object(), 0)
    assert out["better"] is False and out["power_ratio_ci"] == [0.99, 1.05]
    assert "package defaults" in out["current_is"]


def test_install_defaults_refuses_to_drop_shipped_models(tmp_path: Path) -> None:
    full = _run(tmp_path / "models").directory
    target = tmp_path / "pkg" / "default"
    pipeline.install_defaults(full, target)
    part = _run(
        tmp_path / "part",
        components=("residual_dqn",),
        trainers={"residual_dqn": fake_residual_trainer()},
        configs={"residual_dqn": object()},
    ).directory
    with pytest.raises(ValueError, match="lacks"):
        pipeline.install_defaults(part, target)
    assert set(verify_model_dir(target).models) == set(pipeline.COMPONENTS)
