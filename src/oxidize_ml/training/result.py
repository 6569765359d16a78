"""What every trainer returns, so `oxidize-ml train` can assemble one model directory.

Each trainer (`training.loss`, `training.dqn`, `training.compression`) exposes

    train(config, *, seed: int, out_dir: Path, telemetry_root: Path | None = None,
          progress: bool = True) -> TrainResult

writes its own ``<stem>.safetensors`` and ``<stem>.onnx`` into ``out_dir``
and evaluates the trained model against its heuristic on held-out data. The
orchestrator then writes ``manifest.json`` with `oxidize_ml.hub.manifest.write_manifest`
from the results. ``beats_heuristic`` decides whether the engine uses the
model by default (manifest ``metrics["default_enabled"]``): a model that
misses its target ships, but the heuristic stays the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    name: str
    """model name in the manifest: "loss_predictor", "congestion_controller" or
    "compression_oracle\""""
    kind: str
    """runtime kind: "lstm_loss", "dqn" or "compression_mlp\""""
    files: dict[str, str]
    """{"safetensors": file name, "onnx": file name} inside out_dir"""
    version: str
    """model version string (e.g. "1")"""
    inputs: list[str] | None
    """input names in order (None: the 8 schema features)"""
    training: dict[str, Any]
    """summary of the run: data sources, held-out sets, sample counts, epochs,
    seed, wall time, hyperparameters"""
    metrics: dict[str, Any]
    """held-out evaluation figures of the model AND its heuristic, side by side"""
    beats_heuristic: bool
    """True when the model meets the issue's target against its heuristic"""
    target: str = ""
    """the target, in words, that beats_heuristic was judged by"""
    extra: dict[str, Any] = field(default_factory=dict)

    def manifest_entry(self) -> dict[str, Any]:
        metrics = dict(self.metrics)
        metrics["default_enabled"] = bool(self.beats_heuristic)
        metrics["target"] = self.target
        entry: dict[str, Any] = {
            "version": self.version,
            "kind": self.kind,
            "files": dict(self.files),
            "training": dict(self.training),
            "metrics": metrics,
        }
        if self.inputs is not None:
            entry["inputs"] = list(self.inputs)
        return entry
