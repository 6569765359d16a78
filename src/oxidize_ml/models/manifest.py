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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from oxidize_ml._atomic import atomic_write_text
from oxidize_ml.features import FEATURE_NAMES, N_FEATURES, schema_description
from oxidize_ml.runtime.configs import (
    KIND_LSTM_LOSS,
    KINDS,
    ModelConfig,
    config_from_dict,
)
from oxidize_ml.runtime.models import LstmLossModel, MlpModel
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


def _plain_filename(name: object) -> str | None:
    """``name`` if it is a bare file name inside the directory, else None (no paths, no ..)."""
    if not isinstance(name, str) or not name or name in (".", "..") or name.startswith("."):
        return None
    if "/" in name or "\\" in name or "\x00" in name or Path(name).name != name:
        return None
    return name


def _default_inputs(kind: str, config: ModelConfig) -> list[str]:
    n_in = config.n_features if kind == KIND_LSTM_LOSS else config.n_inputs  # type: ignore[union-attr]
    if uses_network_features(kind) and n_in == N_FEATURES:
        return list(FEATURE_NAMES)
    raise ValueError(
        f"a {kind!r} model with {n_in} inputs needs explicit 'inputs' names "
        f"(only the plain {N_FEATURES} schema features have a default)"
    )


def write_manifest(
    directory: str | Path,
    models: Mapping[str, Mapping[str, Any]],
    *,
    package_version: str,
    created_at: datetime | None = None,
) -> Path:
    """Write ``directory/manifest.json`` describing ``models`` (files already in place).

    Parameters
    ----------
    directory
        The model directory; every file a model names must be in it.
    models
        ``{name: {"version", "kind", "files", ["config"], ["inputs"],
        ["training"], ["metrics"]}}``. ``files`` maps ``"safetensors"``
        (required) and ``"onnx"`` (optional) to bare file names. ``config``
        defaults to the one stored in the safetensors file and must equal it if
        given. ``inputs`` defaults to the feature names for models reading the
        8 schema features. ``training`` and ``metrics`` are free-form JSON
        objects (default empty).
    package_version
        The oxidize-ml version that trained/exported the models.
    created_at
        Timestamp to record (default: now, UTC). Pass one for reproducible output.

    Returns
    -------
    Path
        The manifest's path.

    Raises
    ------
    ValueError
        A malformed entry, a missing file, or a weight file that is invalid
        or disagrees with its entry. Nothing is written then.
    TypeError
        ``training`` or ``metrics`` is not a mapping.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"{d} is not a directory")
    if not models:
        raise ValueError("models is empty; a manifest must describe at least one model")
    out_models: dict[str, Any] = {}
    checksums: dict[str, str] = {}
    for name, entry in models.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"model names must be non-empty strings, got {name!r}")
        out_models[name] = _checked_entry(d, name, entry, checksums)
    when = created_at if created_at is not None else datetime.now(UTC)
    manifest = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "feature_schema": schema_description(),
        "created_at": when.isoformat(),
        "package_version": str(package_version),
        "models": out_models,
        "sha256": dict(sorted(checksums.items())),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_text(d / MANIFEST_NAME, text)


def _checked_entry(
    d: Path, name: str, entry: Mapping[str, Any], checksums: dict[str, str]
) -> dict[str, Any]:
    allowed = {"version", "kind", "files", "config", "inputs", "training", "metrics"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(f"model {name!r}: unknown keys {unknown}; allowed {sorted(allowed)}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ValueError(f"model {name!r}: kind {kind!r} is not one of {list(KINDS)}")
    version = entry.get("version")
    if not isinstance(version, str | int) or isinstance(version, bool) or str(version) == "":
        raise ValueError(f"model {name!r}: version must be a non-empty string, got {version!r}")
    files = entry.get("files")
    if not isinstance(files, Mapping) or "safetensors" not in files:
        raise ValueError(
            f"model {name!r}: files must map 'safetensors' (and optionally 'onnx') to names"
        )
    bad_roles = sorted(set(files) - set(FILE_ROLES))
    if bad_roles:
        raise ValueError(
            f"model {name!r}: unknown file roles {bad_roles}; allowed {list(FILE_ROLES)}"
        )
    for role, fname in files.items():
        if _plain_filename(fname) is None:
            raise ValueError(f"model {name!r}: {role} file {fname!r} must be a bare file name")
        if not (d / fname).is_file():
            raise ValueError(f"model {name!r}: {role} file {d / fname} does not exist")
        if fname in checksums:
            raise ValueError(f"model {name!r}: file {fname!r} is already used by another entry")
        checksums[fname] = sha256_file(d / fname)
    try:
        wf = parse_weight_bytes(
            read_regular(d / files["safetensors"], MAX_WEIGHT_FILE_BYTES),
            source=str(d / files["safetensors"]),
            expected_kind=kind,
        )
    except ModelLoadError as exc:
        raise ValueError(f"model {name!r}: {exc}") from None
    config = wf.config
    if "config" in entry:
        given = config_from_dict(kind, dict(entry["config"]))
        if given != config:
            raise ValueError(
                f"model {name!r}: config {given} differs from the weight file's {config}"
            )
    inputs = list(entry["inputs"]) if "inputs" in entry else _default_inputs(kind, config)
    n_in = config.n_features if kind == KIND_LSTM_LOSS else config.n_inputs  # type: ignore[union-attr]
    if len(inputs) != n_in or not all(isinstance(i, str) for i in inputs):
        raise ValueError(f"model {name!r}: inputs must be {n_in} names, got {inputs!r}")
    for key in ("training", "metrics"):
        if not isinstance(entry.get(key, {}), Mapping):
            raise TypeError(f"model {name!r}: {key} must be a JSON object")
    return {
        "version": str(version),
        "kind": kind,
        "files": dict(files),
        "config": config.to_dict(),
        "inputs": inputs,
        "training": dict(entry.get("training", {})),
        "metrics": dict(entry.get("metrics", {})),
    }


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
        if role not in FILE_ROLES or _plain_filename(fname) is None:
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
    (model, reason)
        ``(LstmLossModel | MlpModel | OrtLstmLossModel | OrtMlpModel, "ok")``
        or ``(None, reason)``. The model is built from the very bytes that
        were checksummed.
    """
    if backend not in BACKEND_ROLE:
        return None, f"unknown backend {backend!r}; choose from {list(BACKEND_ROLE)}"
    d = Path(directory)
    man = _read_manifest(d)
    if isinstance(man, str):
        return None, man
    if name not in man.models:
        return None, f"no model {name!r} in {d / MANIFEST_NAME}; it has {sorted(man.models)}"
    try:
        checked = _check_model(d, name, man.models[name], man)
        if not checked.status.ok:
            return None, f"{checked.status.status}: {checked.status.reason}"
        wf = checked.weights
        assert wf is not None
        if backend == "numpy":
            if wf.kind == KIND_LSTM_LOSS:
                return LstmLossModel.from_tensors(wf.tensors, wf.config), "ok"  # type: ignore[arg-type]
            return MlpModel.from_tensors(wf.tensors, wf.config), "ok"  # type: ignore[arg-type]
        if "onnx" not in checked.data:
            return None, f"model {name!r} has no onnx file for the onnxruntime backend"
        from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel, OrtMlpModel

        source = str(d / man.models[name]["files"]["onnx"])
        if wf.kind == KIND_LSTM_LOSS:
            ort_model: Any = OrtLstmLossModel.from_bytes(checked.data["onnx"], source=source)
        else:
            ort_model = OrtMlpModel.from_bytes(checked.data["onnx"], source=source, kind=wf.kind)
        if ort_model.config != wf.config:
            return None, f"{source}: ONNX config {ort_model.config} differs from {wf.config}"
        return ort_model, "ok"
    except ImportError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - the contract is to report, never raise
        return None, f"invalid: {exc}"
