"""The shipped learned models as report options, so `oxidize-ml demo` shows them
beside their heuristics on the same held-out data.

Every model is evaluated whether or not it is the engine's default: the report
is where a reader sees why a model is (or is not) the default. The congestion
controller named ``dqn`` is the spec's DQN on the engine's state: the model directory's
own when it holds that DQN, else (the shipped defaults, whose controller is the residual
DQN that the ``engine`` column runs) the candidate ``models/candidates/dqn``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def shipped_model_options(model_dir: Path | None = None) -> tuple[dict[str, dict[str, Any]], str]:
    """Report options that add the learned models of ``model_dir`` (default: the shipped ones).

    Returns ``(options, note)``: options for `build_report` (fec predictors,
    compression oracles, the DQN as an extra congestion controller, the learned
    path selector as an extra path selector) and a one-line
    note of what was added or why not.
    """
    from oxidize_ml.congestion.actions import CwndLimits
    from oxidize_ml.congestion.dqn import DqnCwndPolicy
    from oxidize_ml.congestion.state import StateConfig
    from oxidize_ml.models import PLAIN_DQN, candidate_dir, default_model_dir, load_policies

    directory = model_dir if model_dir is not None else default_model_dir()
    if directory is None:
        return {}, "no trained models shipped: heuristics only"
    loaded = load_policies(
        Path(directory), backend="numpy", limits=CwndLimits(), state_config=StateConfig(), seed=0
    )
    options: dict[str, dict[str, Any]] = {}
    added = []
    if loaded.loss is not None:
        lstm = loaded.loss
        # The simulator's observations carry the sender-side buffer estimate the LSTM
        # is trained on and served with (`oxidize_ml.interval_stats`): no wrapper.
        options["fec"] = {"predictors": {"lstm": lstm.fork}}
        added.append("LSTM loss predictor (fec)")
    if loaded.compression is not None:
        oracle = loaded.compression
        options["compression"] = {"oracles": {"mlp": lambda: oracle}}
        added.append("compression MLP (compression)")
    skipped = {k: v for k, v in loaded.status.items() if v != "loaded"}
    dqn_dir: Path | None = None
    if isinstance(loaded.congestion, DqnCwndPolicy):
        dqn_dir = Path(directory)
    elif model_dir is None:
        # The shipped congestion controller is not the spec's DQN (it is the residual
        # DQN, which MlEngine() runs): the spec's DQN ships as a candidate.
        dqn_dir = candidate_dir(PLAIN_DQN)
        if dqn_dir is not None:
            plain = load_policies(
                dqn_dir, backend="numpy", limits=CwndLimits(), state_config=StateConfig(), seed=0
            )
            if not isinstance(plain.congestion, DqnCwndPolicy):
                skipped[f"candidates/{PLAIN_DQN}"] = plain.status.get("congestion_controller", "?")
                dqn_dir = None
    if dqn_dir is not None:
        from oxidize_ml.sim.controllers.dqn_factory import dqn_factory

        options["congestion"] = {"extra_controllers": [("dqn", dqn_factory(dqn_dir))]}
        own = dqn_dir == Path(directory)
        added.append("DQN (congestion)" if own else f"DQN (congestion, candidates/{PLAIN_DQN})")
    if loaded.congestion is not None and not isinstance(loaded.congestion, DqnCwndPolicy):
        name = loaded.congestion.name
        if model_dir is None:  # the engine column runs MlEngine(), which loads it
            added.append(f"{name} (congestion: MlEngine()'s default, the engine column)")
        else:
            skipped["congestion_controller"] = f"{name}: runs only in an engine loading {directory}"
    from oxidize_ml.paths.learned import MODEL_NAME as PATH_MODEL
    from oxidize_ml.paths.learned import load_learned_selector

    path_sel, path_status = load_learned_selector(Path(directory))
    if path_sel is not None:
        d = Path(directory)
        options["paths"] = {
            "selectors": {"learned": lambda seed: load_learned_selector(d, seed=seed)[0]}
        }
        added.append("learned path selector (paths)")
    if path_sel is None:
        skipped[PATH_MODEL] = path_status
    note = "learned models evaluated: " + (", ".join(added) or "none")
    if skipped:
        note += f"; not loaded: {skipped}"
    return options, note
