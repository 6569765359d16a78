"""Versioned model directories: manifest, checksums, verified loading."""

from __future__ import annotations

from oxidize_ml.hub.manifest import (
    MANIFEST_FORMAT_VERSION,
    MANIFEST_NAME,
    STATUSES,
    ModelDirReport,
    ModelStatus,
    load_verified,
    verify_model_dir,
    write_manifest,
)

__all__ = [
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "STATUSES",
    "ModelDirReport",
    "ModelStatus",
    "load_verified",
    "verify_model_dir",
    "write_manifest",
]
