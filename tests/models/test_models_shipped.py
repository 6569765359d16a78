"""The model directories shipped in the package: the defaults `MlEngine()` loads, and the
candidates kept loadable beside them (`candidate_dir`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.dqn import DqnCwndPolicy
from oxidize_ml.congestion.residual import ResidualDqnPolicy
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.engine import MlEngine
from oxidize_ml.models import (
    CANDIDATES_DIR,
    PLAIN_DQN,
    STATUS_LOADED,
    STATUS_NOT_DEFAULT,
    candidate_dir,
    default_model_dir,
    load_policies,
)
from oxidize_ml.models.manifest import sha256_file, verify_model_dir


def _load(d: Path, **kw: bool):  # type: ignore[no-untyped-def]
    return load_policies(
        d, backend="numpy", limits=CwndLimits(), state_config=StateConfig(), seed=0, **kw
    )


def _entry(d: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((d / "manifest.json").read_text())["models"]["congestion_controller"]


def test_candidate_dir_finds_shipped_candidates_and_refuses_paths() -> None:
    d = candidate_dir(PLAIN_DQN)
    assert d == CANDIDATES_DIR / "dqn" and (d / "manifest.json").is_file()
    assert candidate_dir("residual_dqn") == CANDIDATES_DIR / "residual_dqn"
    assert candidate_dir("no_such_candidate") is None
    for bad in ("", ".", "..", "../default", "a/b", "a\\b", ".hidden"):
        with pytest.raises(ValueError, match="name"):
            candidate_dir(bad)
    with pytest.raises(TypeError, match="name"):
        candidate_dir(3)  # type: ignore[arg-type]


def test_the_default_congestion_controller_is_the_residual_dqn_of_seed_0() -> None:
    """Issue 10: the pre-declared seed's candidate, installed byte for byte with its entry."""
    default = default_model_dir()
    seed0 = candidate_dir("residual_dqn")
    assert default is not None and seed0 is not None
    assert verify_model_dir(default).ok
    entry = _entry(default)
    assert entry == _entry(seed0)
    assert entry["training"]["policy"] == "residual-dqn" and entry["training"]["seed"] == 0
    assert entry["metrics"]["default_enabled"] is True
    assert entry["metrics"]["default_rule"]["passed"] is True
    for fname in entry["files"].values():
        assert (default / fname).read_bytes() == (seed0 / fname).read_bytes()
    stats = MlEngine().stats().congestion_controller
    assert stats.model_loaded and stats.policy == "residual-dqn"
    res = _load(default, only_default_enabled=True)
    assert res.status["congestion_controller"] == STATUS_LOADED
    assert isinstance(res.congestion, ResidualDqnPolicy)


def test_the_specs_dqn_is_a_candidate_that_loads_but_is_not_default() -> None:
    d = candidate_dir(PLAIN_DQN)
    assert d is not None
    report = verify_model_dir(d)
    assert report.ok and set(report.models) == {"congestion_controller"}
    manifest = json.loads((d / "manifest.json").read_text())
    entry = manifest["models"]["congestion_controller"]
    assert entry["metrics"]["default_enabled"] is False
    assert set(manifest["sha256"]) == set(entry["files"].values())
    for fname, digest in manifest["sha256"].items():
        assert sha256_file(d / fname) == digest
    res = _load(d)
    assert res.status["congestion_controller"] == STATUS_LOADED
    assert isinstance(res.congestion, DqnCwndPolicy)
    # the other models are the defaults' business
    assert res.status["loss_predictor"].startswith("missing: ")
    only = _load(d, only_default_enabled=True)
    assert only.status["congestion_controller"] == STATUS_NOT_DEFAULT
