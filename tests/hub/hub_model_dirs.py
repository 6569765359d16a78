"""Real model directories for the hub tests: random weights (a test fixture) + a manifest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from oxidize_ml.bench_models import random_tensors
from oxidize_ml.hub import write_manifest
from oxidize_ml.runtime import CompressionMlpConfig, DqnMlpConfig, LossLstmConfig
from oxidize_ml.runtime.weights import encode_weights

MODELS = {
    "loss_predictor": LossLstmConfig(),
    "congestion_controller": DqnMlpConfig(),
    "compression_oracle": CompressionMlpConfig(n_inputs=5),
}


def make_model_dir(
    root: Path, day: int, seed: int = 0, *, default_enabled: bool | None = None
) -> Path:
    """A model directory dated 2026-01-``day``; ``default_enabled`` goes into each
    entry's metrics (what `oxidize-ml train` records for a model that beat its heuristic)."""
    d = root / f"models-{day}-{seed}"
    d.mkdir()
    entries = {}
    for i, (name, cfg) in enumerate(MODELS.items()):
        t = random_tensors(cfg, seed=seed * 10 + i)
        (d / f"{name}.safetensors").write_bytes(encode_weights(t, cfg))
        entry: dict = {
            "version": str(day),
            "kind": cfg.kind,
            "files": {"safetensors": f"{name}.safetensors"},
        }
        if default_enabled is not None:
            entry["metrics"] = {"default_enabled": default_enabled}
        if name == "compression_oracle":
            entry["inputs"] = ["entropy", "top4", "size", "text", "magic"]
        entries[name] = entry
    write_manifest(
        d, entries, package_version="0.1.0", created_at=datetime(2026, 1, day, tzinfo=UTC)
    )
    return d
