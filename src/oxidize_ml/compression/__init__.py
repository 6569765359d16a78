"""Per-packet compression: cheap features, the heuristic oracle, the codec, the cost model.

The engine calls `HeuristicCompressionOracle.decide` per packet and hands the
decision to `PacketCodec.encode`; the receiver calls `PacketCodec.decode`.
`CompressionCostModel` and `measure_outcomes` score decisions offline
(best-in-hindsight labels for training and evaluation).
"""

from __future__ import annotations

from oxidize_ml.compression.codec import (
    FRAME_VERSION,
    CodecConfig,
    CodecMethod,
    EncodeResult,
    PacketCodec,
    frame_method,
)
from oxidize_ml.compression.cost import (
    DECISION_PREFERENCE,
    CompressionCostModel,
    Outcome,
    best_in_hindsight,
    measure_outcomes,
)
from oxidize_ml.compression.features import (
    COMPRESSION_FEATURE_NAMES,
    COMPRESSION_FEATURE_VERSION,
    CompressionFeatures,
    HeaderKind,
    MagicKind,
    extract_features,
    feature_vector,
)
from oxidize_ml.compression.learned import LearnedCompressionOracle
from oxidize_ml.compression.oracle import CompressionOracleConfig, HeuristicCompressionOracle

__all__ = [
    "COMPRESSION_FEATURE_NAMES",
    "COMPRESSION_FEATURE_VERSION",
    "DECISION_PREFERENCE",
    "FRAME_VERSION",
    "CodecConfig",
    "CodecMethod",
    "CompressionCostModel",
    "CompressionFeatures",
    "CompressionOracleConfig",
    "EncodeResult",
    "HeaderKind",
    "HeuristicCompressionOracle",
    "LearnedCompressionOracle",
    "MagicKind",
    "Outcome",
    "PacketCodec",
    "best_in_hindsight",
    "extract_features",
    "feature_vector",
    "frame_method",
    "measure_outcomes",
]
