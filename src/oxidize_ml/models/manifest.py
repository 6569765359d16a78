"""The model directory format: ``manifest.json`` beside the model files.

A model directory holds, per model, ``<stem>.safetensors`` (numpy runtime)
and usually ``<stem>.onnx`` (onnxruntime), with the spec's stems
``loss_predictor``, ``congestion_controller``, ``compression_oracle``, and one
``manifest.json``::

    {
      "format_version": 1,
      "feature_schema": {...},            # oxidize_ml.features.schema_description()
      "created_at": "2026-01-01T00:00:00+00:00",
      "package_version": "0.1.0",
      "models": {
        "loss_predictor": {
          "version": "1",
          "kind": "lstm_loss",            # | "dqn" | "compression_mlp"
          "files": {"safetensors": "loss_predictor.safetensors",
                    "onnx": "loss_predictor.onnx"},
          "config": {...},                # the size config, as in the weight file
          "inputs": ["rtt", ...],         # input names, in order
          "training": {...},              # free-form summary of the run
          "metrics": {...}                # free-form evaluation figures
        }, ...
      },
      "sha256": {"loss_predictor.safetensors": "<hex>", ...}
    }

The engine loads each model independently with `load_verified` and falls
back to its heuristic for any model that is not ``ok``; `verify_model_dir`
never raises for bad content, it reports.

This module is the reading side, a runtime concern (numpy only, no hub,
training or network code); writing a manifest (`oxidize_ml.hub.manifest.
write_manifest`) belongs to the publishing side, which imports this one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from oxidize_ml.features import FEATURE_NAMES, N_FEATURES, schema_description
from oxidize_ml.runtime.configs import (
    KINDS,
    LossLstmConfig,
    ModelConfig,
    config_from_dict,
)
from oxidize_ml.runtime.numpy_models import LstmLossModel, MlpModel
from oxidize_ml.runtime.safe_files import (
    FileTooLargeError,
    UnsafeFileError,
    read_file,
    read_regular,
)
from oxidize_ml.runtime.weights import (
    MAX_WEIGHT_FILE_BYTES,
    ModelLoadError,
    WeightFile,
    parse_weight_bytes,
    uses_network_features,
)

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT_VERSION: Final = 1
MAX_MANIFEST_BYTES: Final = 1024 * 1024
"""a manifest is a few KiB; anything larger is not one of ours"""

FILE_ROLES: Final = ("safetensors", "onnx")
"""keys of a model's ``files``: which backend reads the file"""
BACKEND_ROLE: Final[dict[str, str]] = {"numpy": "safetensors", "onnxruntime": "onnx"}

STATUS_OK: Final = "ok"
STATUS_MISSING: Final = "missing"
STATUS_CHECKSUM_MISMATCH: Final = "checksum_mismatch"
STATUS_SCHEMA_MISMATCH: Final = "schema_mismatch"
STATUS_INVALID: Final = "invalid"
STATUS_UNSAFE: Final = "unsafe"
"""a file is not a regular file, or it or its directory is world-writable or
another user's (`oxidize_ml.runtime.safe_files`)"""
STATUSES: Final = (
    STATUS_OK,
    STATUS_MISSING,
    STATUS_CHECKSUM_MISMATCH,
    STATUS_SCHEMA_MISMATCH,
    STATUS_INVALID,
    STATUS_UNSAFE,
)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """Verification result of one model of a directory."""

    name: str
    """model name (key in the manifest's ``models``)"""
    status: str
    """one of `STATUSES`"""
    reason: str
    """human explanation ("ok" when ok)"""
    kind: str | None = None
    """the entry's kind when it could be read"""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


@dataclass(frozen=True, slots=True)
class ModelDirReport:
    """Verification result of a whole model directory."""

    directory: Path
    error: str | None
    """manifest-level problem (missing, corrupt, other format version); no models then"""
    models: Mapping[str, ModelStatus] = field(default_factory=dict)
    """per-model results, by name"""

    @property
    def ok(self) -> bool:
        """True when the manifest is fine and every model in it is ``ok``."""
        return self.error is None and all(m.ok for m in self.models.values())

    def summary(self) -> str:
        """One line per model, for logs and the CLI."""
        if self.error is not None:
            return f"{self.directory}: {self.error}"
        lines = [f"{self.directory}:"]
        lines += [f"  {m.name}: {m.status} ({m.reason})" for m in self.models.values()]
        return "\n".join(lines)


def sha256_file(path: Path, max_bytes: int = MAX_WEIGHT_FILE_BYTES) -> str:
    """SHA-256 of a regular file of at most ``max_bytes`` (never blocks on a FIFO)."""
    return hashlib.sha256(read_regular(path, max_bytes)).hexdigest()


def model_input_width(config: ModelConfig) -> int:
    """How many input values a model of ``config`` reads per step."""
    return config.n_features if isinstance(config, LossLstmConfig) else config.n_inputs


def plain_filename(name: object) -> str | None:
    """``name`` if it is a bare file name inside the directory, else None (no paths, no ..)."""
    if not isinstance(name, str) or not name or name in (".", "..") or name.startswith("."):
        return None
    if "/" in name or "\\" in name or "\x00" in name or Path(name).name != name:
        return None
    return name


# ----------------------------------------------------------------------------- reading


@dataclass(slots=True)
class _Manifest:
    models: dict[str, Any]
    sha256: dict[str, Any]
    schema_ok: bool
    schema_reason: str


def _read_manifest(d: Path) -> _Manifest | str:
    """The parsed manifest, or a string saying why there is none."""
    path = d / MANIFEST_NAME
    try:
        raw = read_file(d, MANIFEST_NAME, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return f"no {MANIFEST_NAME} in {d}"
    except FileTooLargeError:
        return f"{path} is larger than {MAX_MANIFEST_BYTES} bytes; not a manifest"
    except UnsafeFileError as exc:
        return f"{STATUS_UNSAFE}: {exc}"
    except OSError as exc:
        return f"cannot read {path}: {exc}"
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"{path} is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return f"{path} is not a JSON object"
    version = data.get("format_version")
    if version != MANIFEST_FORMAT_VERSION:
        return (
            f"{path} has format_version {version!r}; this package reads {MANIFEST_FORMAT_VERSION}"
        )
    models, sha = data.get("models"), data.get("sha256")
    if not isinstance(models, dict) or not isinstance(sha, dict):
        return f"{path} lacks a 'models' or 'sha256' object"
    schema = data.get("feature_schema")
    expected = schema_description()
    if schema == expected:
        schema_ok, schema_reason = True, ""
    else:
        got_v = schema.get("version") if isinstance(schema, dict) else None
        schema_ok = False
        schema_reason = (
            f"directory built for feature schema version {got_v!r} "
            f"({'different content' if got_v == expected['version'] else 'other version'}), "
            f"this package uses {expected['version']}"
        )
    return _Manifest(models=models, sha256=sha, schema_ok=schema_ok, schema_reason=schema_reason)


def manifest_models(directory: str | Path) -> dict[str, Any]:
    """The manifest's ``models`` object, ``{}`` when there is no readable
    manifest (`verify_model_dir` says why); never raises for bad content."""
    man = _read_manifest(Path(directory))
    return {} if isinstance(man, str) else man.models


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


@dataclass(slots=True)
class _Checked:
    status: ModelStatus
    data: dict[str, bytes] = field(default_factory=dict)  # role -> verified bytes
    weights: WeightFile | None = None


def _check_model(d: Path, name: str, entry: object, man: _Manifest) -> _Checked:
    """Verify one entry; the returned bytes are exactly those that were hashed."""

    def st(status: str, reason: str, kind: str | None = None) -> _Checked:
        return _Checked(ModelStatus(name=name, status=status, reason=reason, kind=kind))

    if not isinstance(entry, dict):
        return st(STATUS_INVALID, "entry is not a JSON object")
    kind = entry.get("kind")
    if kind not in KINDS:
        return st(STATUS_INVALID, f"kind {kind!r} is not one of {list(KINDS)}")
    files = entry.get("files")
    if not isinstance(files, dict) or "safetensors" not in files:
        return st(STATUS_INVALID, "files must name at least a 'safetensors' file", kind)
    try:
        config = config_from_dict(kind, entry.get("config"))
    except (TypeError, ValueError) as exc:
        return st(STATUS_INVALID, f"bad config: {exc}", kind)
    for role, fname in files.items():
        if role not in FILE_ROLES or plain_filename(fname) is None:
            return st(STATUS_INVALID, f"bad file entry {role!r}: {fname!r}", kind)
    data: dict[str, bytes] = {}
    for role, fname in files.items():
        try:
            blob = read_file(d, fname, MAX_WEIGHT_FILE_BYTES)
        except FileNotFoundError:
            return st(STATUS_MISSING, f"{role} file {fname} is missing", kind)
        except FileTooLargeError:
            return st(STATUS_INVALID, f"{fname} is larger than {MAX_WEIGHT_FILE_BYTES} bytes", kind)
        except UnsafeFileError as exc:
            return st(STATUS_UNSAFE, str(exc), kind)
        except OSError as exc:
            return st(STATUS_MISSING, f"cannot read {fname}: {exc}", kind)
        want = man.sha256.get(fname)
        if not isinstance(want, str):
            return st(STATUS_INVALID, f"no sha256 recorded for {fname}", kind)
        got = hashlib.sha256(blob).hexdigest()
        if got != want.lower():
            return st(
                STATUS_CHECKSUM_MISMATCH,
                f"{fname}: sha256 {got[:12]}... != manifest {want[:12]}...",
                kind,
            )
        data[role] = blob
    if uses_network_features(kind):
        if not man.schema_ok:
            return st(STATUS_SCHEMA_MISMATCH, man.schema_reason, kind)
        inputs = entry.get("inputs")
        if not isinstance(inputs, list) or inputs[:N_FEATURES] != list(FEATURE_NAMES):
            return st(
                STATUS_SCHEMA_MISMATCH,
                f"inputs {inputs!r} do not start with the schema features {list(FEATURE_NAMES)}",
                kind,
            )
    try:
        wf = parse_weight_bytes(
            data["safetensors"], source=str(d / files["safetensors"]), expected_kind=kind
        )
    except ModelLoadError as exc:
        # A feature-schema problem caught by the weight file itself is still a schema problem.
        status = STATUS_SCHEMA_MISMATCH if "feature schema" in str(exc) else STATUS_INVALID
        return st(status, str(exc), kind)
    if wf.config != config:
        return st(
            STATUS_INVALID,
            f"manifest config {config} differs from the weight file's {wf.config}",
            kind,
        )
    return _Checked(ModelStatus(name=name, status=STATUS_OK, reason="ok", kind=kind), data, wf)


def verify_model_dir(directory: str | Path) -> ModelDirReport:
    """Check a model directory without raising for anything found in it.

    Per model: ``missing`` (a named file is absent), ``checksum_mismatch``,
    ``schema_mismatch`` (built for another feature schema), ``invalid``
    (malformed entry, corrupt or mismatching weight file) or ``ok``; the
    safetensors file of each model is fully validated (names, shapes, dtype,
    finiteness, config). ONNX files are checksummed here and parsed only when
    loaded with the onnxruntime backend.
    """
    d = Path(directory)
    man = _read_manifest(d)
    if isinstance(man, str):
        return ModelDirReport(directory=d, error=man)
    results: dict[str, ModelStatus] = {}
    for name, entry in man.models.items():
        try:
            results[str(name)] = _check_model(d, str(name), entry, man).status
        except Exception as exc:  # noqa: BLE001 - the contract is to report, never raise
            results[str(name)] = ModelStatus(
                str(name), STATUS_INVALID, f"unexpected error: {exc!r}"
            )
    return ModelDirReport(directory=d, error=None, models=results)


def load_verified(
    directory: str | Path, name: str, backend: str = "numpy"
) -> tuple[Any | None, str]:
    """Verify one model and load it, or say why not; never raises for bad content.

    `load_verified_with_metadata` without the metadata; see there.
    """
    model, reason, _ = load_verified_with_metadata(directory, name, backend)
    return model, reason


def load_verified_with_metadata(
    directory: str | Path, name: str, backend: str = "numpy"
) -> tuple[Any | None, str, dict[str, str]]:
    """Verify one model and load it, or say why not; never raises for bad content.

    Parameters
    ----------
    directory
        The model directory.
    name
        Model name in the manifest (e.g. ``"loss_predictor"``).
    backend
        ``"numpy"`` (safetensors) or ``"onnxruntime"`` (ONNX, needs the
        ``onnx`` extra).

    Returns
    -------
    (model, reason, metadata)
        ``(LstmLossModel | MlpModel | OrtLstmLossModel | OrtMlpModel, "ok",
        metadata)`` or ``(None, reason, {})``. The model is built from the very
        bytes that were checksummed; ``metadata`` is the verified safetensors
        file's ``__metadata__`` (e.g. the `StateConfig` a DQN was trained with).
    """
    if backend not in BACKEND_ROLE:
        return None, f"unknown backend {backend!r}; choose from {list(BACKEND_ROLE)}", {}
    d = Path(directory)
    man = _read_manifest(d)
    if isinstance(man, str):
        return None, man, {}
    if name not in man.models:
        return None, f"no model {name!r} in {d / MANIFEST_NAME}; it has {sorted(man.models)}", {}
    try:
        checked = _check_model(d, name, man.models[name], man)
        if not checked.status.ok:
            return None, f"{checked.status.status}: {checked.status.reason}", {}
        wf = checked.weights
        assert wf is not None
        if backend == "numpy":
            if isinstance(wf.config, LossLstmConfig):
                return LstmLossModel.from_tensors(wf.tensors, wf.config), "ok", dict(wf.metadata)
            return MlpModel.from_tensors(wf.tensors, wf.config), "ok", dict(wf.metadata)
        if "onnx" not in checked.data:
            return None, f"model {name!r} has no onnx file for the onnxruntime backend", {}
        from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel, OrtMlpModel

        source = str(d / man.models[name]["files"]["onnx"])
        if isinstance(wf.config, LossLstmConfig):
            ort_model: Any = OrtLstmLossModel.from_bytes(checked.data["onnx"], source=source)
        else:
            ort_model = OrtMlpModel.from_bytes(checked.data["onnx"], source=source, kind=wf.kind)
        if ort_model.config != wf.config:
            return None, f"{source}: ONNX config {ort_model.config} differs from {wf.config}", {}
        return ort_model, "ok", dict(wf.metadata)
    except ImportError as exc:
        return None, str(exc), {}
    except Exception as exc:  # noqa: BLE001 - the contract is to report, never raise
        return None, f"invalid: {exc}", {}
