"""Versioned model directories: manifest, checksums, verified loading, and the
`ModelHub` that fetches, activates, publishes and syncs them."""

from __future__ import annotations

from oxidize_ml.hub.hub import (
    DEFAULT_REPO_ID,
    SOURCES,
    HubConfig,
    HubError,
    HubStatus,
    ModelHub,
    Published,
    SyncHandle,
    SyncStats,
    version_name,
)
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
    "DEFAULT_REPO_ID",
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "SOURCES",
    "STATUSES",
    "HubConfig",
    "HubError",
    "HubStatus",
    "ModelDirReport",
    "ModelHub",
    "ModelStatus",
    "Published",
    "SyncHandle",
    "SyncStats",
    "load_verified",
    "verify_model_dir",
    "version_name",
    "write_manifest",
]
