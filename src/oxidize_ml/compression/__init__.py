"""Per-packet compression: cheap features, the heuristic oracle, the codec, the cost model.

The engine calls `HeuristicCompressionOracle.decide` per packet and hands the
decision to `PacketCodec.encode`; the receiver calls `PacketCodec.decode`.
`CompressionCostModel` and `measure_outcomes` score decisions offline
(best-in-hindsight labels for training and evaluation).

Inputs are IP packets, as a tunnel reads them from its TUN device
(`strip_link_layer` turns a captured frame into one). ``RohcOnly`` is real
header compression for IPv4/IPv6 + UDP (+ RTP) flows (`oxidize_ml.compression.rohc`,
after RFC 2508/3095, not wire-compatible with ROHC).
"""

from __future__ import annotations

from oxidize_ml.compression.adaptive import RateBucketOracle
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
from oxidize_ml.compression.packet import IpInfo, parse_ip, strip_link_layer
from oxidize_ml.compression.rohc import RohcCompressor, RohcConfig, RohcDecompressor

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
    "IpInfo",
    "LearnedCompressionOracle",
    "MagicKind",
    "Outcome",
    "PacketCodec",
    "RateBucketOracle",
    "RohcCompressor",
    "RohcConfig",
    "RohcDecompressor",
    "best_in_hindsight",
    "extract_features",
    "feature_vector",
    "frame_method",
    "measure_outcomes",
    "parse_ip",
    "strip_link_layer",
]
