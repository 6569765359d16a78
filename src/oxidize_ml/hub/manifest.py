"""Writing model directories: `write_manifest` for the publishing side.

The format and its verified reading (`verify_model_dir`, `load_verified`) are
a runtime concern and live in `oxidize_ml.models.manifest`; they are
re-exported here so ``oxidize_ml.hub.manifest`` stays the one place the hub,
training and tests need. The dependency points one way: hub -> models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oxidize_ml._atomic import atomic_write_text
from oxidize_ml.features import FEATURE_NAMES, N_FEATURES, schema_description
from oxidize_ml.models.manifest import (
    BACKEND_ROLE,
    FILE_ROLES,
    MANIFEST_FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    STATUS_CHECKSUM_MISMATCH,
    STATUS_INVALID,
    STATUS_MISSING,
    STATUS_OK,
    STATUS_SCHEMA_MISMATCH,
    STATUS_UNSAFE,
    STATUSES,
    ModelDirReport,
    ModelStatus,
    load_verified,
    model_input_width,
    plain_filename,
    sha256_file,
    verify_model_dir,
)
from oxidize_ml.runtime.configs import KINDS, ModelConfig, config_from_dict
from oxidize_ml.runtime.safe_files import read_regular
from oxidize_ml.runtime.weights import (
    MAX_WEIGHT_FILE_BYTES,
    ModelLoadError,
    parse_weight_bytes,
    uses_network_features,
)

__all__ = [
    "BACKEND_ROLE",
    "FILE_ROLES",
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "STATUSES",
    "STATUS_CHECKSUM_MISMATCH",
    "STATUS_INVALID",
    "STATUS_MISSING",
    "STATUS_OK",
    "STATUS_SCHEMA_MISMATCH",
    "STATUS_UNSAFE",
    "ModelDirReport",
    "ModelStatus",
    "load_verified",
    "sha256_file",
    "verify_model_dir",
    "write_manifest",
]


def _default_inputs(kind: str, config: ModelConfig) -> list[str]:
    n_in = model_input_width(config)
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
        if plain_filename(fname) is None:
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
    n_in = model_input_width(config)
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
