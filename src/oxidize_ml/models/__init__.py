"""Model directories: the defaults shipped in the package, and loading learned policies.

Two kinds of directory ship inside the package: ``models/default`` (`default_model_dir`,
what `MlEngine()` loads; its ``congestion_controller`` is the residual DQN of
`oxidize_ml.congestion.residual`) and ``models/candidates/<name>`` (`candidate_dir`): models
kept loadable and evaluable without being the default, e.g. ``candidates/dqn``
(`PLAIN_DQN`), the spec's DQN on the engine's state, which the simulator and the
evaluations run as the controller named ``dqn``.

`load_policies` verifies a model directory (manifest, SHA-256 sums, feature
schema) with `oxidize_ml.models.manifest` and builds one learned policy per model
that verifies; every other model keeps its heuristic, with the reason.

Each model is loaded on its own: a missing, corrupt, tampered or
other-schema file costs only that model. Nothing here raises for the
content of a directory, and nothing is unpickled (weights are safetensors or
ONNX read from the very bytes that were checksummed).

Wrappers (imported only when their model is loaded, so a build without one
still loads the others):

====================== ============== =========================================
model                  kind           policy
====================== ============== =========================================
``loss_predictor``     lstm_loss      `oxidize_ml.loss.lstm.LstmLossPredictor`
``congestion_controller`` dqn         `oxidize_ml.congestion.dqn.DqnCwndPolicy`
                                      (greedy, the engine's ``state_config``)
``congestion_controller`` dqn,        `oxidize_ml.congestion.residual.ResidualDqnPolicy`
                       ``training.policy`` (greedy corrections on its own BBR-style
                       "residual-dqn" fallback, the engine's limits); its ``inputs``
                                      must be `congestion.residual.INPUT_NAMES`
``compression_oracle`` compression_mlp `oxidize_ml.compression.learned.LearnedCompressionOracle`
                                      at the manifest's ``metrics.engine_link_rate_bps``
                                      (default 100 Mbit/s), always on the numpy
                                      runtime: it tabulates the MLP at load time,
                                      which needs batched inference
====================== ============== =========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from oxidize_ml.models.manifest import ModelDirReport
    from oxidize_ml.policy import CompressionPolicy, CongestionPolicy, LossPolicy

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
CANDIDATES_DIR = Path(__file__).resolve().parent / "candidates"
PLAIN_DQN: Final = "dqn"
"""the candidate directory holding the spec's DQN (the controller named ``dqn``)"""
MODEL_NAMES = ("loss_predictor", "congestion_controller", "compression_oracle")

STATUS_LOADED: Final = "loaded"
STATUS_NOT_DEFAULT: Final = "not default"
# Other statuses start with a word and a colon: "missing:", "checksum_mismatch:",
# "schema_mismatch:", "invalid:", "unsafe:" (`oxidize_ml.models.manifest`),
# "non_finite:", "degenerate:" (`oxidize_ml.models.probe`), "unavailable:".

EXPECTED_KIND: Final[dict[str, str]] = {
    "loss_predictor": "lstm_loss",
    "congestion_controller": "dqn",
    "compression_oracle": "compression_mlp",
}


def default_model_dir() -> Path | None:
    """The trained defaults inside the package, or None when none are shipped."""
    return DEFAULT_DIR if (DEFAULT_DIR / "manifest.json").is_file() else None


def candidate_dir(name: str) -> Path | None:
    """The candidate model directory ``models/candidates/<name>`` shipped in the package,
    or None when it has no manifest (a build without it).

    Raises ``ValueError`` when ``name`` is not a bare directory name (it must not reach
    outside ``models/candidates``).
    """
    from oxidize_ml.models.manifest import plain_filename

    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if plain_filename(name) is None:
        raise ValueError(f"name must be a bare directory name, got {name!r}")
    d = CANDIDATES_DIR / name
    return d if (d / "manifest.json").is_file() else None


@dataclass
class LoadedPolicies:
    """What `load_policies` built: a policy per loaded model, None for the others."""

    # Any until the engine's slots are typed with the same protocols; the
    # wrappers below are typed, so mypy checks each policy against its protocol.
    loss: Any = None
    """`LstmLossPredictor` (a `LossPolicy`) or None"""
    congestion: Any = None
    """`DqnCwndPolicy` (a `CongestionPolicy`) or None"""
    compression: Any = None
    """`LearnedCompressionOracle` (a `CompressionPolicy`) or None"""
    versions: dict[str, str] = field(default_factory=dict)
    """model name -> manifest version, for the loaded models"""
    status: dict[str, str] = field(default_factory=dict)
    """model name -> "loaded", "not default", or why the heuristic stays"""


def _link_rate(entry: dict[str, Any]) -> float:
    from oxidize_ml.compression.learned import DEFAULT_LINK_RATE_BPS

    metrics = entry.get("metrics")
    rate = metrics.get("engine_link_rate_bps") if isinstance(metrics, dict) else None
    if not isinstance(rate, int | float) or isinstance(rate, bool):
        return DEFAULT_LINK_RATE_BPS
    return float(rate) if math.isfinite(rate) and rate > 0 else DEFAULT_LINK_RATE_BPS


def _wrap_loss(model: Any, entry: dict[str, Any], ctx: dict[str, Any]) -> LossPolicy:
    from oxidize_ml.loss.lstm import LstmLossPredictor

    return LstmLossPredictor(model)


def congestion_policy_kind(entry: dict[str, Any]) -> str:
    """Which policy a ``congestion_controller`` entry holds: "dqn" (the spec's DQN on the
    engine's state) or "residual-dqn" (`oxidize_ml.congestion.residual`), from the
    entry's ``training.policy`` (absent: "dqn"); both are ``dqn`` weight files."""
    training = entry.get("training")
    policy = training.get("policy") if isinstance(training, dict) else None
    return "dqn" if policy is None else str(policy)


def _wrap_congestion(model: Any, entry: dict[str, Any], ctx: dict[str, Any]) -> CongestionPolicy:
    kind = congestion_policy_kind(entry)
    if kind == "residual-dqn":
        from oxidize_ml.congestion.residual import INPUT_NAMES, N_INPUTS, ResidualDqnPolicy

        # Its state is the residual's own (schema features first, then the fallback's
        # view): the inputs must be exactly that layout, not merely the right count.
        if entry.get("inputs") != list(INPUT_NAMES):
            raise _SchemaMismatch(
                f"inputs {entry.get('inputs')!r} are not the residual DQN's {list(INPUT_NAMES)}"
            )
        n = int(model.config.n_inputs)
        if n != N_INPUTS:
            raise _SchemaMismatch(f"the residual DQN takes {N_INPUTS} inputs, the model {n}")
        return ResidualDqnPolicy(model, limits=ctx["limits"])
    if kind != "dqn":
        raise ValueError(f"unknown congestion policy {kind!r}; expected 'dqn' or 'residual-dqn'")
    from oxidize_ml.congestion.dqn import (
        STATE_CONFIG_KEY,
        DqnCwndPolicy,
        state_config_from_metadata,
    )

    # The state layout the network was trained on, as its verified weight file
    # records it (the one rule `DqnCwndPolicy.load` follows too); a file without
    # one gets the caller's. A layout other than the engine's is encoded by the
    # policy itself (`MlEngine._set_cc`).
    metadata = ctx.get("metadata") or {}
    state_config = (
        state_config_from_metadata(metadata)
        if STATE_CONFIG_KEY in metadata
        else ctx["state_config"]
    )
    return DqnCwndPolicy(model, state_config=state_config, seed=ctx["seed"])


class _SchemaMismatch(ValueError):
    """A model whose inputs are not what this package computes."""


def _wrap_compression(model: Any, entry: dict[str, Any], ctx: dict[str, Any]) -> CompressionPolicy:
    from oxidize_ml.compression.learned import (
        INPUT_NAMES,
        LEARNED_FEATURE_VERSION,
        LearnedCompressionOracle,
    )

    # The payload features are versioned by the compression area, not by the
    # network feature schema the manifest checks: check them here.
    if entry.get("inputs") != list(INPUT_NAMES):
        raise _SchemaMismatch(
            f"inputs {entry.get('inputs')!r} are not the learned compression features "
            f"{list(INPUT_NAMES)}"
        )
    training = entry.get("training")
    version = training.get("learned_feature_version") if isinstance(training, dict) else None
    if version is not None and version != LEARNED_FEATURE_VERSION:
        raise _SchemaMismatch(
            f"trained for learned-feature version {version!r}, this package computes "
            f"{LEARNED_FEATURE_VERSION}"
        )
    from oxidize_ml.compression.adaptive import RateBucketOracle

    # Decides for the link rate the engine measures (`set_link_rate_bps`), starting
    # from the rate the manifest was evaluated at.
    return RateBucketOracle(LearnedCompressionOracle(model, link_rate_bps=_link_rate(entry)))


_WRAPPERS: Final[dict[str, tuple[str, Callable[[Any, dict[str, Any], dict[str, Any]], Any]]]] = {
    "loss_predictor": ("loss", _wrap_loss),
    "congestion_controller": ("congestion", _wrap_congestion),
    "compression_oracle": ("compression", _wrap_compression),
}


def load_policies(
    directory: Path,
    *,
    backend: str,
    limits: Any,
    state_config: Any,
    seed: int,
    only_default_enabled: bool = False,
) -> LoadedPolicies:
    """Verify ``directory`` and build the learned policies that pass; never raises on bad files.

    Parameters
    ----------
    directory
        A model directory (``manifest.json`` + model files).
    backend
        ``"numpy"`` or ``"onnxruntime"`` for the loss predictor and the DQN
        (the compression oracle always tabulates on numpy).
    limits
        The engine's `CwndLimits` (kept for the signature; the DQN's actions
        are applied by the engine within them).
    state_config
        The engine's `StateConfig`: the DQN must have been trained with it.
    seed
        Seed for the DQN policy's RNG.
    only_default_enabled
        Load only models whose manifest ``metrics.default_enabled`` is true
        (the shipped defaults); the others get status ``"not default"``.

    Returns
    -------
    LoadedPolicies
        Per model: ``"loaded"``; ``"not default"``; ``"missing: ..."`` (no
        entry or file), ``"checksum_mismatch: ..."``, ``"schema_mismatch: ..."``,
        ``"invalid: ..."``, ``"unsafe: ..."`` (a file or directory another
        user could write, or not a regular file), ``"non_finite: ..."`` or
        ``"degenerate: ..."`` (the model verifies but computes NaN/inf, or
        ignores its input, on the probe inputs of `oxidize_ml.models.probe`);
        or the reason a wrapper is unavailable.
    """
    from oxidize_ml.models.manifest import (
        load_verified_with_metadata,
        manifest_models,
        verify_model_dir,
    )

    out = LoadedPolicies()
    d = Path(directory)
    report: ModelDirReport | None = None
    try:
        report = verify_model_dir(d)
        error = report.error
    except Exception as exc:  # noqa: BLE001 - verify_model_dir should not raise; never let it
        error = f"invalid: cannot verify {d}: {exc!r}"
    if report is None or error is not None:
        for name in MODEL_NAMES:
            out.status[name] = str(error)
        return out
    entries = manifest_models(d)
    ctx = {"limits": limits, "state_config": state_config, "seed": seed}
    for name in MODEL_NAMES:
        checked = report.models.get(name)
        if checked is None:
            out.status[name] = f"missing: no {name!r} model in {d / 'manifest.json'}"
            continue
        if not checked.ok:
            out.status[name] = f"{checked.status}: {checked.reason}"
            continue
        entry = entries.get(name)
        if not isinstance(entry, dict):  # the file changed between the two reads
            out.status[name] = f"invalid: manifest entry of {name!r} unreadable"
            continue
        if entry.get("kind") != EXPECTED_KIND[name]:
            out.status[name] = (
                f"invalid: {name!r} has kind {entry.get('kind')!r}, expected {EXPECTED_KIND[name]!r}"
            )
            continue
        metrics = entry.get("metrics")
        if only_default_enabled and not (
            isinstance(metrics, dict) and metrics.get("default_enabled") is True
        ):
            out.status[name] = STATUS_NOT_DEFAULT
            continue
        out.status[name] = _load_one(out, d, name, entry, backend, ctx, load_verified_with_metadata)
    return out


def _load_one(
    out: LoadedPolicies,
    d: Path,
    name: str,
    entry: dict[str, Any],
    backend: str,
    ctx: dict[str, Any],
    load_verified: Callable[..., tuple[Any | None, str, dict[str, str]]],
) -> str:
    """Load, wrap and store one model; return its status."""
    field_name, wrap = _WRAPPERS[name]
    model_backend = "numpy" if name == "compression_oracle" else backend
    try:
        model, reason, metadata = load_verified(d, name, model_backend)
    except Exception as exc:  # noqa: BLE001 - load_verified reports; this is belt and braces
        return f"invalid: {exc!r}"
    if model is None:
        return reason
    try:
        policy = wrap(model, entry, {**ctx, "metadata": metadata})
    except ImportError as exc:
        return f"unavailable: the wrapper for {name!r} cannot be imported ({exc})"
    except _SchemaMismatch as exc:
        return f"schema_mismatch: {exc}"
    except Exception as exc:  # noqa: BLE001 - a model that does not fit its wrapper
        return f"invalid: {exc}"
    verdict = _probe(name, model, policy)
    if verdict is not None:
        return verdict
    setattr(out, field_name, policy)
    out.versions[name] = str(entry.get("version", "?"))
    return STATUS_LOADED


def _probe(name: str, model: Any, policy: Any) -> str | None:
    """None when the model behaves on the probe inputs, else the status refusing it."""
    from oxidize_ml.models.probe import STATUS_NON_FINITE, probe_model

    try:
        if getattr(policy, "name", None) == "residual-dqn":
            result = _probe_residual(model)
        else:
            result = probe_model(
                EXPECTED_KIND[name], model, state_config=getattr(policy, "state_config", None)
            )
    except Exception as exc:  # noqa: BLE001 - a model that cannot even run the probes
        return f"invalid: the model fails on the probe inputs: {exc!r}"
    if not result.ok:
        return f"{result.status}: {result.reason}"
    # The compression oracle tabulates the MLP over its whole (finite) input
    # domain at load time: any NaN/inf cell would silently decide Skip there.
    cells = int(getattr(policy, "nonfinite_cells", 0))
    if cells:
        return f"{STATUS_NON_FINITE}: NaN or infinite outputs on {cells} decision-table cells"
    return None


def _probe_residual(model: Any) -> Any:
    """`probe_model` for a residual DQN: the same probe connections, encoded by the
    residual's own state (`oxidize_ml.congestion.residual.states_along`), plus the
    all-zero and all-one states; judged like every model (`judge_outputs`)."""
    import numpy as np

    from oxidize_ml.congestion.residual import states_along
    from oxidize_ml.models.probe import (
        STATUS_NON_FINITE,
        ProbeResult,
        judge_outputs,
        probe_connections,
    )
    from oxidize_ml.runtime.numpy_models import NonFiniteOutputError

    xs = states_along(probe_connections())
    xs = np.concatenate(
        [xs, np.zeros((1, xs.shape[1]), np.float32), np.ones((1, xs.shape[1]), np.float32)]
    )
    m = model.fork() if hasattr(model, "fork") else model
    try:
        with np.errstate(all="ignore"):
            y = np.stack([np.array(m.forward(x), dtype=np.float64, copy=True) for x in xs])
    except NonFiniteOutputError as exc:
        return ProbeResult(STATUS_NON_FINITE, f"probe failed: {exc}", 0)
    return judge_outputs(y)
