"""oxidize-ml: machine-learned transport decisions for the packet path."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, NetworkFeatures
from oxidize_ml.paths import MlPathSelector
from oxidize_ml.types import (
    DrlAction,
    FecDecision,
    MlCompressionDecision,
    PathId,
    PathMetrics,
    TrafficContext,
)

try:
    __version__ = version("oxidize-ml")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SCHEMA_VERSION",
    "DrlAction",
    "EngineConfig",
    "FecDecision",
    "MlCompressionDecision",
    "MlEngine",
    "MlPathSelector",
    "NetworkFeatures",
    "PathId",
    "PathMetrics",
    "TrafficContext",
    "__version__",
]
