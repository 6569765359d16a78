"""Heuristic compression oracle: one `MlCompressionDecision` per packet.

Rules, checked in this order (thresholds are `CompressionOracleConfig` fields):

1. ``size < min_payload_bytes`` (32 B) -> ``Skip``: a compressor cannot win
   back its framing on a few bytes.
2. The head carries a known compressed/media magic number, a TLS/DTLS record
   header or a QUIC long header -> ``Skip`` (already compressed or encrypted;
   see `oxidize_ml.compression.features` for the list).
3. ``size <= rohc_max_bytes`` (200 B) and the packet parses as IPv4 (no
   options, not a fragment) or IPv6 carrying UDP, with or without RTP
   (`oxidize_ml.compression.features.header_kind`) -> ``RohcOnly``: the
   payload of small real-time packets is rarely compressible, their 28-60
   header bytes are (`oxidize_ml.compression.rohc`). Never for TCP, ICMP,
   other IP packets or non-IP input. The input is an IP packet (see
   `oxidize_ml.compression.packet` to strip a link-layer header).
4. Coverage entropy estimate of the 128-byte sample ``> skip_entropy_bits``
   (7.2 bits/byte) -> ``Skip``: encrypted or compressed data. Random bytes
   estimate 7.5-8.0, 32-bit float telemetry about 7.2, text and JSON about 5.
5. ``size >= aggressive_min_bytes`` (512 B) and entropy estimate
   ``<= aggressive_max_entropy_bits`` (6.5) -> ``Aggressive`` (zstd): an
   order-0 entropy of 6.5 bits or less lets an entropy coder alone save a
   fifth or more, which lz4 (no entropy coder) cannot get. Base64 (about
   6.2 bits) is the typical case: lz4 cannot shrink it, zstd saves ~22 %.
6. Otherwise ``Light`` (lz4).

`HeuristicCompressionOracle.decide` is the per-packet fast path. It avoids
numpy and per-byte Python loops: magic prefixes are one ``bytes.startswith``
on a tuple picked by the first byte, and the distinct-byte count behind the
entropy estimate is one ``bytes.translate`` call (see the features module).
Its cost on a 1400-byte packet is below that of ``lz4.block.compress`` on the
same packet (measured figures: ``python -m oxidize_ml.compression.bench``).
`decide_features` applies the same rules to `CompressionFeatures`; both give
the same decision for every packet.
"""

from __future__ import annotations

from dataclasses import dataclass

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.compression.decide_policy import DecidePolicy
from oxidize_ml.compression.features import (
    ALL_BYTES,
    ENTROPY_TABLE,
    HEAD_BYTES,
    ISOBMFF_BOXES,
    QUIC_VERSIONS,
    RIFF_MEDIA,
    SAMPLE_BYTES,
    SKIP_PREFIXES_BY_FIRST_BYTE,
    CompressionFeatures,
    HeaderKind,
    MagicKind,
    as_bytes_like,
    header_kind,
)
from oxidize_ml.types import MlCompressionDecision

_SKIP = MlCompressionDecision.Skip
_LIGHT = MlCompressionDecision.Light
_AGGRESSIVE = MlCompressionDecision.Aggressive
_ROHC = MlCompressionDecision.RohcOnly

_ROHC_KINDS = frozenset((HeaderKind.RTP, HeaderKind.UDP))
"""header compression handles IPv4/IPv6 + UDP (+ RTP) packets only"""

_SAMPLE_SHIFT = SAMPLE_BYTES.bit_length() - 1  # n >> 7 == n // 128
assert 1 << _SAMPLE_SHIFT == SAMPLE_BYTES
_SAMPLE_LAST = SAMPLE_BYTES - 1


@dataclass(frozen=True, slots=True)
class CompressionOracleConfig:
    """Thresholds of the heuristic oracle (sizes in bytes, entropy in bits/byte)."""

    min_payload_bytes: int = 32
    """packets shorter than this are never compressed (Skip)"""
    rohc_max_bytes: int = 200
    """largest packet considered for header-only compression (RohcOnly)"""
    skip_entropy_bits: float = 7.2
    """entropy estimate above which a payload counts as random (Skip)"""
    aggressive_min_bytes: int = 512
    """smallest packet that may get the slower, stronger codec (Aggressive)"""
    aggressive_max_entropy_bits: float = 6.5
    """entropy estimate at or below which a large packet gets Aggressive.

    Chosen with `oxidize_ml.compression.cost` on 108 synthetic 600-1400 B
    packets (text, JSON, CSV, hex logs, base64, PCM, floats, ints, random):
    6.5 kept 98 % of the best-in-hindsight utility at 5 and 20 Mbit/s,
    against 91-94 % for 5.5-6.0."""

    def __post_init__(self) -> None:
        check_int("min_payload_bytes", self.min_payload_bytes)
        check_int("rohc_max_bytes", self.rohc_max_bytes)
        check_number("skip_entropy_bits", self.skip_entropy_bits, hi=8.0)
        check_int("aggressive_min_bytes", self.aggressive_min_bytes)
        check_number("aggressive_max_entropy_bits", self.aggressive_max_entropy_bits, hi=8.0)
        if self.aggressive_max_entropy_bits >= self.skip_entropy_bits:
            raise ValueError(
                "aggressive_max_entropy_bits must be < skip_entropy_bits, got "
                f"{self.aggressive_max_entropy_bits!r} >= {self.skip_entropy_bits!r}"
            )


class HeuristicCompressionOracle(DecidePolicy):
    """Entropy threshold + magic number oracle (the spec's heuristic fallback).

    Satisfies ``Policy[bytes | bytearray | memoryview, MlCompressionDecision]``.
    Stateless: decisions depend only on the packet and the config, so one
    instance may serve many connections and threads.

    Parameters
    ----------
    config : CompressionOracleConfig
        Thresholds; the defaults are documented in the module docstring.

    Examples
    --------
    >>> oracle = HeuristicCompressionOracle()
    >>> oracle.decide(b"")
    <MlCompressionDecision.Skip: 'skip'>
    >>> oracle.decide(b'{"user": "alice", "ok": true, "score": 12} ' * 20)
    <MlCompressionDecision.Aggressive: 'aggressive'>
    """

    name: str = "heuristic"
    is_learned: bool = False

    __slots__ = (
        "_aggressive_max_distinct",
        "_aggressive_min_bytes",
        "_min_bytes",
        "_rohc_max_bytes",
        "_skip_min_distinct",
        "config",
    )

    def __init__(self, config: CompressionOracleConfig | None = None) -> None:
        if config is None:
            config = CompressionOracleConfig()
        if not isinstance(config, CompressionOracleConfig):
            raise TypeError(
                f"config must be a CompressionOracleConfig, got {type(config).__name__}"
            )
        self.config = config
        # Copies of the config read on every packet (a slot read is cheaper
        # than a chained attribute lookup); an empty packet is always Skip.
        self._min_bytes = max(config.min_payload_bytes, 1)
        self._rohc_max_bytes = config.rohc_max_bytes
        self._aggressive_min_bytes = config.aggressive_min_bytes
        # The entropy table is nondecreasing in the distinct count d, so each
        # entropy threshold becomes a distinct-count threshold per sample size
        # k: the fast path compares integers and never looks up a float.
        skip_min: list[int] = []
        aggressive_max: list[int] = []
        for row in ENTROPY_TABLE:
            k = len(row) - 1
            skip_min.append(
                next((d for d in range(k + 1) if row[d] > config.skip_entropy_bits), k + 1)
            )
            aggressive_max.append(
                max(
                    (d for d in range(k + 1) if row[d] <= config.aggressive_max_entropy_bits),
                    default=-1,
                )
            )
        self._skip_min_distinct = tuple(skip_min)
        self._aggressive_max_distinct = tuple(aggressive_max)

    def __repr__(self) -> str:
        return f"HeuristicCompressionOracle({self.config!r})"

    def decide(self, data: bytes | bytearray | memoryview) -> MlCompressionDecision:
        """Decide for one packet (the engine's per-packet fast path).

        Never raises for bytes, bytearray or memoryview of any length;
        other types raise ``TypeError``.
        """
        if type(data) is bytes:
            head = data
        else:
            data = as_bytes_like(data)
            head = bytes(data[:HEAD_BYTES])
        n = len(data)
        if n < self._min_bytes:
            return _SKIP
        b0 = head[0]
        prefixes = SKIP_PREFIXES_BY_FIRST_BYTE[b0]
        if prefixes and head.startswith(prefixes):
            return _SKIP
        # Offset magic, gated on the first byte so most packets pay one compare.
        if b0 == 0:
            if head[4:8] in ISOBMFF_BOXES:
                return _SKIP
        elif b0 >= 0xC0:
            if head[1:5] in QUIC_VERSIONS:
                return _SKIP
        elif b0 == 0x52 and head.startswith(b"RIFF") and head[8:12] in RIFF_MEDIA:
            return _SKIP
        if n <= self._rohc_max_bytes and header_kind(head, n) in _ROHC_KINDS:
            return _ROHC
        if n <= SAMPLE_BYTES:
            sample = data
        else:
            stride = ((n - 1) // _SAMPLE_LAST - 1) | 1  # features.sample_stride
            sample = data[: stride << _SAMPLE_SHIFT : stride]
        k = len(sample)
        distinct = 256 - len(ALL_BYTES.translate(None, sample))
        if distinct >= self._skip_min_distinct[k]:
            return _SKIP
        if n >= self._aggressive_min_bytes and distinct <= self._aggressive_max_distinct[k]:
            return _AGGRESSIVE
        return _LIGHT

    def decide_features(self, features: CompressionFeatures) -> MlCompressionDecision:
        """Apply the same rules to precomputed `CompressionFeatures`.

        Gives the same decision as `decide` on the packet the features came
        from; useful when features are logged for training anyway.
        """
        cfg = self.config
        n = features.size_bytes
        if n < cfg.min_payload_bytes or n == 0:
            return _SKIP
        if features.magic is not MagicKind.NONE:
            return _SKIP
        if n <= cfg.rohc_max_bytes and features.header in _ROHC_KINDS:
            return _ROHC
        if features.entropy_bits > cfg.skip_entropy_bits:
            return _SKIP
        if (
            n >= cfg.aggressive_min_bytes
            and features.entropy_bits <= cfg.aggressive_max_entropy_bits
        ):
            return _AGGRESSIVE
        return _LIGHT
