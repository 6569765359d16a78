"""`shipped_model_options`: which learned models the report evaluates, and as what."""

from __future__ import annotations

from oxidize_ml.congestion.dqn import DqnCwndPolicy
from oxidize_ml.evaluation.learned import shipped_model_options
from oxidize_ml.models import PLAIN_DQN, candidate_dir


def _dqn_policy(options: dict) -> DqnCwndPolicy:  # type: ignore[type-arg]
    (name, factory), *rest = options["congestion"]["extra_controllers"]
    assert name == "dqn" and not rest
    policy = factory(flow_index=0, seed=0).policy
    assert isinstance(policy, DqnCwndPolicy)
    return policy


def test_the_dqn_column_is_the_specs_dqn_shipped_as_a_candidate() -> None:
    """The defaults' congestion controller is the residual DQN (the engine column runs
    it); the report's dqn column still runs the spec's DQN, from models/candidates/dqn."""
    options, note = shipped_model_options()
    _dqn_policy(options)
    assert f"DQN (congestion, candidates/{PLAIN_DQN})" in note
    assert "residual-dqn (congestion: MlEngine()'s default, the engine column)" in note
    assert "fec" in options and "compression" in options


def test_a_directory_holding_the_specs_dqn_gives_its_own() -> None:
    d = candidate_dir(PLAIN_DQN)
    assert d is not None
    options, note = shipped_model_options(d)
    _dqn_policy(options)
    assert "DQN (congestion)" in note and "candidates/" not in note.split(";")[0]


def test_a_directory_holding_a_residual_dqn_adds_no_dqn_column() -> None:
    d = candidate_dir("residual_dqn")
    assert d is not None
    options, note = shipped_model_options(d)
    assert "congestion" not in options
    assert "residual-dqn: runs only in an engine loading" in note
