"""Learned compression oracle: a small MLP over cheap, quantised packet features.

What the model predicts
-----------------------
For one packet the MLP (`oxidize_ml.runtime.MlpModel`, kind
``compression_mlp``, trained by `oxidize_ml.training.compression`) predicts
what each decision would *cost and save* on this machine, not which one to
take: 12 outputs in `OUTPUT_NAMES` order, per `MlCompressionDecision` (enum
order ``Skip, Light, Aggressive, RohcOnly``)

- ``saved_fraction``: ``(size - frame_bytes) / size`` (negative for a frame
  that grew: Skip costs its 1-byte header),
- ``log_encode_us`` / ``log_decode_us``: natural log of the
  `PacketCodec.encode` / ``decode`` wall time in microseconds.

The decision is then the one of highest predicted utility under
`oxidize_ml.compression.cost.CompressionCostModel` at the oracle's link rate::

    utility_s = saved_fraction * size * 8 / link_rate_bps
                - encode_cpu_weight * encode_s - decode_cpu_weight * decode_s

with ties within `TIE_TOLERANCE_S` won by the least work. So the
link rate is *not* a model input: one trained model serves every rate, the
rate enters exactly where the physics puts it (`with_link_rate` re-targets
an oracle). Measured on the held-out corpus (see the training report in the
model directory's manifest) this is what lets the model beat the fixed
thresholds of `HeuristicCompressionOracle`: at 1 Gbit/s compressing a packet
rarely repays its CPU time, at 5 Mbit/s zstd nearly always does.

Inputs (`INPUT_NAMES`, learned-feature version 1)
-------------------------------------------------
A cheaper subset of the 13 features of `oxidize_ml.compression.features`,
quantised. The Shannon and top-4 features need a numpy histogram (the
16-25 us that makes `feature_vector` 5-10x slower than lz4 on a packet),
and the printable and zero-byte ratios cost another ~0.7 us per packet;
on the held-out corpus, models with them kept no more of the hindsight
utility than models without (differences within seed-to-seed noise of
about 0.5 point at 5, 20 and 100 Mbit/s and 1 Gbit/s), so they are left
out. What remains comes out of the same C-level ``bytes`` calls on the
same head and 128-byte odd-stride sample as the heuristic
(`oxidize_ml.compression.features.sample_view`):

==  ==================  ===============================================================
 #  name                value
==  ==================  ===============================================================
 0  size_bucket         (b + 0.5) / 64, b = min(floor(4 log2(1 + size)), 63): quarter octaves
 1  entropy_level       round(8 x coverage entropy bits) / 64: eighth-bit steps, 65 levels
 2  compressed_magic    1 for a compressed/archive magic number
 3  media_magic         1 for a compressed image/audio/video magic number
 4  encrypted_record    1 for a TLS/DTLS record header or QUIC long header
 5  rtp_header          1 for IPv4/IPv6 + UDP + RTP, packets of at most 1500 B only
 6  ipv4_header         likewise, any other IPv4 packet (TCP, ICMP, ...)
 7  ipv6_header         likewise, any other IPv6 packet
 8  udp_header          likewise, IPv4/IPv6 + UDP without RTP
==  ==================  ===============================================================

Header flags are parsed from the IP packet (`header_kind`) and only computed
up to `HEADER_MAX_BYTES` (1500 B, the MTU a tunnel sees): header compression
(``RohcOnly``) saves 28-60 bytes, which pays on slow links even for a full
1400-byte video packet; larger packets share the header-less slabs.

Why a table
-----------
Quantised inputs have a finite domain: 4 magic kinds x 5 header kinds x 64
size buckets x 65 entropy levels = 83,200 cells (header flags only occur in
the 43 buckets up to 1500 B, so 61,360 are reachable). At construction the
oracle runs the MLP over every reachable cell once (milliseconds, see
`table_build_s`) and keeps the decision per cell in an 83,200-byte table.
Per packet, `decide` computes the quantised features and reads one byte:
the decision *is* the MLP's on that packet's inputs (same weights, same
inputs; only float rounding of the batched first layer can flip an exact
near-tie), at a cost close to the heuristic's instead of the ~25 us of
``feature_vector`` + MLP (REFERENCES section 4: a decision must cost less
than compressing). Slabs of the table with a single decision for every
entropy level (e.g. TLS records at any size) are answered before the
entropy sample is even taken. `predicted_outputs` / `decide_exact` run the
MLP itself, for checks.

The table is immutable and ``decide`` keeps no state, so one oracle serves
any number of threads.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from oxidize_ml._validate import check_number
from oxidize_ml.compression.cost import DECISION_PREFERENCE, CompressionCostModel
from oxidize_ml.compression.decide_policy import DecidePolicy
from oxidize_ml.compression.features import (
    _MAGIC_PREFIXES,
    ALL_BYTES,
    ENTROPY_TABLE,
    HEAD_BYTES,
    ISOBMFF_BOXES,
    KIND_FLAG_NAMES,
    QUIC_VERSIONS,
    RIFF_MEDIA,
    SAMPLE_BYTES,
    SKIP_PREFIXES_BY_FIRST_BYTE,
    HeaderKind,
    MagicKind,
    as_bytes_like,
    header_kind,
    magic_kind,
    sample_stride,
)
from oxidize_ml.runtime.configs import KIND_COMPRESSION_MLP
from oxidize_ml.types import MlCompressionDecision

LEARNED_FEATURE_VERSION: Final = 3
"""version of `INPUT_NAMES`, their quantisation and `OUTPUT_NAMES` (3: the entropy
sample of a packet over 128 bytes is always exactly 128 bytes,
`oxidize_ml.compression.features.sample_stride`;
2: the header flags are parsed from the IP packet, see
`oxidize_ml.compression.features.header_kind`; 1 matched headers at offset 0 of a
payload)"""

INPUT_NAMES: Final[tuple[str, ...]] = ("size_bucket", "entropy_level", *KIND_FLAG_NAMES)
N_INPUTS: Final = len(INPUT_NAMES)
_MAGIC_COL = 1  # input column of MagicKind m is _MAGIC_COL + m (m >= 1)
_HEADER_COL = 4  # input column of HeaderKind h is _HEADER_COL + h (h >= 1)

DECISIONS: Final[tuple[MlCompressionDecision, ...]] = tuple(MlCompressionDecision)
"""output order: `MlCompressionDecision` enum order (Skip, Light, Aggressive, RohcOnly)"""
N_DECISIONS: Final = len(DECISIONS)
OUTPUT_NAMES: Final[tuple[str, ...]] = tuple(
    f"{quantity}_{d.value}"
    for quantity in ("saved_fraction", "log_encode_us", "log_decode_us")
    for d in DECISIONS
)
N_OUTPUTS: Final = len(OUTPUT_NAMES)

SIZE_STEPS_PER_OCTAVE: Final = 4
N_SIZE_BUCKETS: Final = 64
"""quarter octaves of log2(1 + size) up to 16 (64 KiB); larger packets share the last"""
ENTROPY_STEPS_PER_BIT: Final = 8
N_ENTROPY_LEVELS: Final = 8 * ENTROPY_STEPS_PER_BIT + 1
N_MAGIC: Final = len(MagicKind)
N_HEADER: Final = len(HeaderKind)
HEADER_MAX_BYTES: Final = 1500
"""header flags are computed only for packets up to this size, an Ethernet MTU (see
module docstring)"""

LOG_US_CLIP: Final = 12.0
"""predicted log-microseconds are clipped to +-this before exp (guards untrained weights)"""
TIE_TOLERANCE_S: Final = 0.5e-6
"""predicted utilities closer than this to the best are ties, won by the least work
(`DECISION_PREFERENCE`). Wider than the cost model's 100 ns because these are
model estimates: CPU-time labels measured on a shared machine scatter by about
this much, and without it the passthrough twins Skip and RohcOnly (identical
outcomes in `PacketCodec`) were picked by noise. In a quick-mode training run
it also raised the held-out share of the optimum (`oxidize_ml.training.compression`)
from 0.78 to 0.81 at 100 Mbit/s and from -0.24 to 0.03 at 1 Gbit/s, leaving
5 and 20 Mbit/s unchanged."""
DEFAULT_LINK_RATE_BPS: Final = 100e6
"""rate the engine's learned oracle is built for when nothing says otherwise: the
spec's example connection (``bandwidth_bps=100_000_000``)"""

N_SLABS: Final = N_MAGIC * N_HEADER * N_SIZE_BUCKETS
"""(magic, header, size bucket) slabs of the table, each `N_ENTROPY_LEVELS` cells"""
TABLE_CELLS: Final = N_SLABS * N_ENTROPY_LEVELS
_SAMPLE_SHIFT = SAMPLE_BYTES.bit_length() - 1
_SIZE_SHIFT = N_SIZE_BUCKETS.bit_length() - 1  # slab = combo << 6 | size bucket
assert 1 << _SIZE_SHIFT == N_SIZE_BUCKETS
_SIZE_TABLE_BYTES = 1 << 16

_SKIP = MlCompressionDecision.Skip


def _size_bucket(n: int) -> int:
    return min(int(math.log2(1.0 + n) * SIZE_STEPS_PER_OCTAVE), N_SIZE_BUCKETS - 1)


_SIZE_BUCKET_TABLE: Final = (
    np.minimum(
        (np.log2(1.0 + np.arange(_SIZE_TABLE_BYTES)) * SIZE_STEPS_PER_OCTAVE).astype(np.int64),
        N_SIZE_BUCKETS - 1,
    )
    .astype(np.uint8)
    .tobytes()
)
"""``_SIZE_BUCKET_TABLE[n]``: size bucket of an ``n``-byte packet, n < 65536"""
HEADER_MAX_BUCKET: Final = _size_bucket(HEADER_MAX_BYTES)
"""largest size bucket in which header flags can be set"""

_ENTROPY_LEVEL: Final = tuple(
    bytes(int(bits * ENTROPY_STEPS_PER_BIT + 0.5) for bits in row) for row in ENTROPY_TABLE
)
"""``_ENTROPY_LEVEL[k][d]``: entropy level of d distinct bytes in a k-byte sample"""

_LEVEL_BY_ABSENT: Final = tuple(
    bytes(row[256 - a] if 256 - a < len(row) else 0 for a in range(257)) for row in _ENTROPY_LEVEL
)
"""``_LEVEL_BY_ABSENT[k][a]``: entropy level of a k-byte sample in which ``a`` of the 256
byte values are absent (``a = len(ALL_BYTES.translate(None, sample))``, one C call; saves
the subtraction ``256 - a`` on the per-packet path)"""


_SAMPLE_SLICES: Final = tuple(
    slice(0, sample_stride(n) * SAMPLE_BYTES, sample_stride(n)) if n > SAMPLE_BYTES else None
    for n in range(HEADER_MAX_BYTES + 1)
)
"""``data[_SAMPLE_SLICES[n]]``: the sample of an ``n``-byte packet, 128 < n <= `HEADER_MAX_BYTES` (a
prebuilt slice saves its arithmetic on the per-packet path)"""


def _sample_len(n: int) -> int:
    """Length of the learned oracle's entropy sample of an ``n``-byte packet."""
    return min(n, SAMPLE_BYTES)


def _reachable_levels() -> tuple[frozenset[int], ...]:
    """Entropy levels a packet of each size bucket can have (a k-byte sample holds
    1 to min(k, 256) distinct values). A slab whose decision is the same on all of
    them is constant: `LearnedCompressionOracle.decide` answers it without sampling."""
    ks: list[set[int]] = [set() for _ in range(N_SIZE_BUCKETS)]
    for n in range(1, _SIZE_TABLE_BYTES):
        ks[_size_bucket(n)].add(_sample_len(n))
    ks[-1].add(SAMPLE_BYTES)  # packets of 64 KiB and more share the last bucket
    return tuple(frozenset(_ENTROPY_LEVEL[k][d] for k in kk for d in range(1, k + 1)) for kk in ks)


_REACHABLE_LEVELS: Final = _reachable_levels()
"""``_REACHABLE_LEVELS[b]``: entropy levels reachable in size bucket ``b``"""


def representative_size(bucket: int) -> float:
    """Bytes the table assumes for every packet of a size bucket (its log-centre)."""
    return 2.0 ** ((bucket + 0.5) / SIZE_STEPS_PER_OCTAVE) - 1.0


def _first_byte_kinds() -> tuple[int, ...]:
    """Magic kind of each first byte whose prefixes all share one kind (-1: they differ)."""
    found: dict[int, set[int]] = {}
    for prefix, kind, _ in _MAGIC_PREFIXES:
        found.setdefault(prefix[0], set()).add(int(kind))
    return tuple(
        (next(iter(found[b])) if len(found[b]) == 1 else -1) if b in found else 0
        for b in range(256)
    )


_FIRST_BYTE_KIND: Final = _first_byte_kinds()


@dataclass(frozen=True, slots=True)
class QuantizedFeatures:
    """The learned oracle's view of one packet (build with `quantize`)."""

    size_bytes: int
    """packet length"""
    size_bucket: int
    """quarter-octave bucket of log2(1 + size), 0-63"""
    entropy_level: int
    """coverage entropy estimate in eighths of a bit, 0-64"""
    magic: MagicKind
    """magic-number kind of the head"""
    header: HeaderKind
    """protocol header (NONE for packets above `HEADER_MAX_BYTES`)"""

    @property
    def slab(self) -> int:
        """Index of this packet's (magic, header, size bucket) slab."""
        return (int(self.magic) * N_HEADER + int(self.header)) * N_SIZE_BUCKETS + self.size_bucket

    @property
    def cell(self) -> int:
        """Index of this packet's cell in the oracle's decision table."""
        return self.slab * N_ENTROPY_LEVELS + self.entropy_level

    def to_vector(self) -> np.ndarray:  # -> float32[N_INPUTS]
        """The model input, `INPUT_NAMES` order."""
        x = np.zeros(N_INPUTS, dtype=np.float32)
        x[0] = (self.size_bucket + 0.5) / N_SIZE_BUCKETS
        x[1] = self.entropy_level / (N_ENTROPY_LEVELS - 1)
        if self.magic:
            x[_MAGIC_COL + int(self.magic)] = 1.0
        if self.header:
            x[_HEADER_COL + int(self.header)] = 1.0
        return x


def quantize(data: bytes | bytearray | memoryview) -> QuantizedFeatures:
    """Compute the learned oracle's quantised features (the readable reference).

    `LearnedCompressionOracle.decide` computes the same numbers inline.
    """
    buf = as_bytes_like(data)
    n = len(buf)
    head = bytes(buf[:HEAD_BYTES])
    if n <= SAMPLE_BYTES:
        sample = bytes(buf)
    else:
        stride = sample_stride(n)
        sample = bytes(buf[: stride * SAMPLE_BYTES : stride])
    distinct = 256 - len(ALL_BYTES.translate(None, sample))
    header = header_kind(head, n) if n <= HEADER_MAX_BYTES else HeaderKind.NONE
    return QuantizedFeatures(
        size_bytes=n,
        size_bucket=_size_bucket(n),
        entropy_level=_ENTROPY_LEVEL[len(sample)][distinct],
        magic=magic_kind(head)[0],
        header=header,
    )


def input_vector(data: bytes | bytearray | memoryview) -> np.ndarray:
    """``quantize(data).to_vector()``: float32[N_INPUTS]."""
    return quantize(data).to_vector()


def input_matrix(packets: list[bytes] | tuple[bytes, ...]) -> np.ndarray:
    """Model inputs of many packets, ``float32 [n, N_INPUTS]`` (training and evaluation)."""
    out = np.zeros((len(packets), N_INPUTS), dtype=np.float32)
    for i, p in enumerate(packets):
        out[i] = input_vector(p)
    return out


def check_model(model: Any) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``model`` is a compression MLP of this layout."""
    config = getattr(model, "config", None)
    if (
        config is None
        or getattr(config, "kind", None) != KIND_COMPRESSION_MLP
        or not hasattr(model, "weights")
    ):
        raise TypeError(
            "model must be a numpy runtime MlpModel of kind 'compression_mlp' "
            f"(oxidize_ml.runtime.MlpModel), got {type(model).__name__}"
        )
    if config.n_inputs != N_INPUTS or config.n_outputs != N_OUTPUTS:
        raise ValueError(
            f"compression model has {config.n_inputs} inputs / {config.n_outputs} outputs; "
            f"learned-feature version {LEARNED_FEATURE_VERSION} needs {N_INPUTS} / {N_OUTPUTS}"
        )


def outputs_to_utilities(
    outputs: np.ndarray,  # [n, N_OUTPUTS]
    size_bytes: np.ndarray,  # [n]
    cost: CompressionCostModel,
) -> np.ndarray:  # -> float64 [n, N_DECISIONS], seconds
    """Predicted utility of each decision from model outputs (see module docstring)."""
    y = np.asarray(outputs, dtype=np.float64)
    size = np.asarray(size_bytes, dtype=np.float64)[:, None]
    saved = y[:, :N_DECISIONS] * size * 8.0 / cost.link_rate_bps
    us = np.exp(np.clip(y[:, N_DECISIONS:], -LOG_US_CLIP, LOG_US_CLIP)) * 1e-6
    enc, dec = us[:, :N_DECISIONS], us[:, N_DECISIONS:]
    return saved - cost.encode_cpu_weight * enc - cost.decode_cpu_weight * dec


_PREFERENCE_COLUMNS: Final = tuple(DECISIONS.index(d) for d in DECISION_PREFERENCE)
_ROHC_COLUMN: Final = DECISIONS.index(MlCompressionDecision.RohcOnly)
_CODEC_COLUMNS: Final = [
    DECISIONS.index(MlCompressionDecision.Light),
    DECISIONS.index(MlCompressionDecision.Aggressive),
]
_ENCRYPTED: Final = int(MagicKind.ENCRYPTED)
_ROHC_HEADERS: Final = frozenset((int(HeaderKind.RTP), int(HeaderKind.UDP)))
_SKIP_COLUMN: Final = DECISIONS.index(_SKIP)


def choose(utilities: np.ndarray, tie_tolerance_s: float) -> np.ndarray:  # [n, 4] -> int [n]
    """Column of the best decision per row; ties within tolerance go to least work first.

    The rule of `CompressionCostModel.best`, vectorised.
    """
    u = np.asarray(utilities, dtype=np.float64)
    top = u.max(axis=1) - tie_tolerance_s
    out = np.full(u.shape[0], -1, dtype=np.int64)
    for col in _PREFERENCE_COLUMNS:
        out[(out < 0) & (u[:, col] >= top)] = col
    out[out < 0] = _SKIP_COLUMN  # NaN rows only; unreachable with finite weights
    return out


_IP_VERSION_BY_FIRST_BYTE: Final = bytes(
    4 if 0x45 <= b <= 0x4F else 6 if b >> 4 == 6 else 0 for b in range(256)
)
"""4 / 6 for a first byte an IPv4 (IHL >= 5) / IPv6 packet can start with, else 0
(`header_kind` is NONE for every other packet, so `decide` skips the call)"""
_SLAB_STRIDE: Final = N_HEADER * N_SIZE_BUCKETS
"""slabs per magic kind: slab = (magic * N_HEADER + header) * N_SIZE_BUCKETS + size bucket"""


Decider = Callable[[bytes | bytearray | memoryview], MlCompressionDecision]


def _make_decider(
    rows: tuple[MlCompressionDecision | tuple[MlCompressionDecision, ...], ...],
    rows_big: tuple[MlCompressionDecision | tuple[MlCompressionDecision, ...], ...],
    magic_const: tuple[MlCompressionDecision | None, ...],
    first_const: tuple[MlCompressionDecision | None, ...],
    header_matters: bytes,
) -> Decider:
    """The per-packet decision as a closure over the tables (see `LearnedCompressionOracle`).

    ``rows[slab]`` is the slab's decision when it is the same at every reachable
    entropy level, else a tuple of decisions indexed by entropy level (packets of
    at most 128 bytes, sampled whole); ``rows_big[slab]`` the same for larger
    packets, whose 128-byte sample makes the tuple indexable by the count of
    absent byte values (257 entries) without the level lookup;
    ``first_const[b]`` / ``magic_const[m]`` is the decision of every slab a
    packet with a magic prefix starting with byte ``b`` / with the offset magic
    kind ``m`` can fall in, when they all agree (ciphertext: always Skip),
    answered right after the magic test. ``header_matters[m * N_HEADER *
    N_SIZE_BUCKETS + b]`` is 1 when some header kind's slab of magic kind ``m``
    and size bucket ``b`` decides differently from the header-less slab. Everything the function reads is a closure cell or a local, the
    cheapest lookups Python has: this is what keeps a decision as cheap as the
    heuristic's, which runs the same magic, header and sample code.
    """
    skip = _SKIP
    prefixes_by_first = SKIP_PREFIXES_BY_FIRST_BYTE
    # Slab offset of the magic kind of each first byte whose prefixes share one kind.
    base_by_first = tuple(k * _SLAB_STRIDE if k > 0 else k for k in _FIRST_BYTE_KIND)
    media = int(MagicKind.MEDIA)
    encrypted = int(MagicKind.ENCRYPTED)
    isobmff, quic, riff = ISOBMFF_BOXES, QUIC_VERSIONS, RIFF_MEDIA
    ip_version = _IP_VERSION_BY_FIRST_BYTE
    parse = header_kind
    size_bucket = _SIZE_BUCKET_TABLE
    level_by_absent = _LEVEL_BY_ABSENT
    all_bytes = ALL_BYTES
    head_bytes = HEAD_BYTES
    header_max = HEADER_MAX_BYTES
    size_table_bytes = _SIZE_TABLE_BYTES
    last_bucket = N_SIZE_BUCKETS - 1
    slab_stride = _SLAB_STRIDE
    size_shift = _SIZE_SHIFT
    sample_bytes = SAMPLE_BYTES
    sample_shift = _SAMPLE_SHIFT
    sample_last = SAMPLE_BYTES - 1
    sample_slice = _SAMPLE_SLICES
    tuple_type = tuple

    def decide(data: bytes | bytearray | memoryview) -> MlCompressionDecision:
        if type(data) is bytes:
            head = data
        else:
            data = as_bytes_like(data)
            head = bytes(data[:head_bytes])
        n = len(data)
        if n == 0:
            return skip
        b0 = head[0]
        base = 0
        prefixes = prefixes_by_first[b0]
        if prefixes and head.startswith(prefixes):
            const = first_const[b0]
            if const is not None:
                return const
            base = base_by_first[b0]
            if base < 0:
                base = int(magic_kind(head)[0]) * slab_stride
        elif b0 == 0:
            if head[4:8] in isobmff:
                base = media * slab_stride
                const = magic_const[media]
                if const is not None:
                    return const
        elif b0 >= 0xC0:
            if head[1:5] in quic:
                const = magic_const[encrypted]
                if const is not None:
                    return const
                base = encrypted * slab_stride
        elif b0 == 0x52 and head.startswith(b"RIFF") and head[8:12] in riff:
            base = media * slab_stride
            const = magic_const[media]
            if const is not None:
                return const
        if n <= header_max:
            v = ip_version[b0]
            # The length fields `header_kind` checks first, inlined: text or
            # JSON that starts like an IP packet pays two compares, not a call;
            # and an IP packet is parsed only where the header kind changes the
            # decision at this size and rate.
            if v and (
                (n >= 20 and (head[2] << 8 | head[3]) == n)
                if v == 4
                else (n >= 40 and (head[4] << 8 | head[5]) == n - 40)
            ):
                bucket = size_bucket[n]
                if header_matters[base + bucket]:
                    base += parse(head, n) << size_shift
            if n > sample_bytes:
                # A 128-byte sample (its slice is precomputed per size); the row
                # is indexed by the count of absent byte values.
                row = rows_big[base + size_bucket[n]]
                if type(row) is not tuple_type:
                    return row  # type: ignore[return-value]
                return row[len(all_bytes.translate(None, data[sample_slice[n]]))]  # type: ignore[index]
            row = rows[base + size_bucket[n]]
            if type(row) is not tuple_type:
                return row  # type: ignore[return-value]
            return row[level_by_absent[n][len(all_bytes.translate(None, data))]]  # type: ignore[index]
        row = rows_big[base + (size_bucket[n] if n < size_table_bytes else last_bucket)]
        if type(row) is not tuple_type:
            return row  # type: ignore[return-value]
        stride = ((n - 1) // sample_last - 1) | 1  # `sample_stride`
        return row[len(all_bytes.translate(None, data[: stride << sample_shift : stride]))]  # type: ignore[index]

    return decide


_MATMUL_ROWS: Final = 256


def _matmul_rows(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a @ w`` in blocks of `_MATMUL_ROWS` rows.

    Small products stay on one BLAS thread: a 4,160-row product is big enough
    for OpenBLAS to wake its thread pool, and on a busy 2-core machine the
    pool's hand-offs made a table cost ~150 ms instead of ~15. Each output row
    is the same dot products either way (the tables were checked identical).
    """
    out = np.empty((a.shape[0], w.shape[1]), dtype=np.result_type(a, w))
    for i in range(0, a.shape[0], _MATMUL_ROWS):
        np.matmul(a[i : i + _MATMUL_ROWS], w, out=out[i : i + _MATMUL_ROWS])
    return out


def _table_key(model: Any, cost: CompressionCostModel) -> tuple[bytes, float, float, float, float]:
    """What a decision table depends on: the weights (digest) and the cost model."""
    h = hashlib.blake2b(digest_size=16)
    for w in model.weights.layers:
        h.update(np.ascontiguousarray(w).tobytes())
    return (
        h.digest(),
        cost.link_rate_bps,
        cost.encode_cpu_weight,
        cost.decode_cpu_weight,
        cost.tie_tolerance_s,
    )


class _BuiltTables:
    """Process-wide LRU of built tables: (table, decider, nonfinite cells) per key.

    Building a table costs 10-150 ms (the MLP over 83,200 cells, slower when
    BLAS threads contend on a busy machine); an engine per connection, or a
    rate-following oracle meeting a new rate bucket, would otherwise pay it
    on the connection's first packets. Bounded (`MAX_TABLES`) and thread-safe.
    """

    MAX_TABLES: Final = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[bytes, float, float, float, float], Any] = OrderedDict()

    def get(self, key: tuple[bytes, float, float, float, float]) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[bytes, float, float, float, float], item: Any) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.MAX_TABLES:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_BUILT: Final = _BuiltTables()


class LearnedCompressionOracle(DecidePolicy):
    """Per-packet decisions from a trained compression MLP (``Policy[bytes, MlCompressionDecision]``).

    Parameters
    ----------
    model : MlpModel
        A numpy-runtime ``compression_mlp`` with `N_INPUTS` inputs and
        `N_OUTPUTS` outputs (`oxidize_ml.hub.manifest.load_verified` with the
        ``"numpy"`` backend gives one; the ONNX graph is batch-1 and building
        the table needs batched inference, so loaders always use numpy here).
    link_rate_bps : float
        Bottleneck rate the decisions are optimised for, bits per second.
    encode_cpu_weight, decode_cpu_weight : float
        As in `CompressionCostModel` (default 1 each).
    tie_tolerance_s : float
        Predicted utilities this close to the best are ties (default
        `TIE_TOLERANCE_S`, 0.5 us), won by the least work.

    Examples
    --------
    >>> oracle = LearnedCompressionOracle(model, link_rate_bps=20e6)  # doctest: +SKIP
    >>> oracle.decide(b'{"user": "alice"} ' * 60)  # doctest: +SKIP
    <MlCompressionDecision.Aggressive: 'aggressive'>
    """

    name: str = "mlp"
    is_learned: bool = True

    __slots__ = (
        "_model",
        "_table",
        "cost_model",
        "decide",
        "nonfinite_cells",
        "table_build_s",
    )

    def __init__(
        self,
        model: Any,
        *,
        link_rate_bps: float,
        encode_cpu_weight: float = 1.0,
        decode_cpu_weight: float = 1.0,
        tie_tolerance_s: float = TIE_TOLERANCE_S,
    ) -> None:
        check_model(model)
        check_number("link_rate_bps", link_rate_bps)
        self.cost_model = CompressionCostModel(
            link_rate_bps=link_rate_bps,
            encode_cpu_weight=encode_cpu_weight,
            decode_cpu_weight=decode_cpu_weight,
            tie_tolerance_s=tie_tolerance_s,
        )
        self._model = model
        t0 = time.perf_counter()
        self.nonfinite_cells = 0
        """table cells where the MLP's outputs were NaN/inf (decided Skip); the model
        loader refuses an oracle with any (`oxidize_ml.models.probe`)"""
        key = _table_key(model, self.cost_model)
        built = _BUILT.get(key)
        if built is None:
            with np.errstate(all="ignore"):  # overflowing weights are counted, not warned
                self._table = self._build_table()
            self.decide: Decider = _make_decider(*self._fast_tables())
            _BUILT.put(key, (self._table, self.decide, self.nonfinite_cells))
        else:
            # The same weights and cost model were tabulated before in this
            # process (another engine loaded the same file): the table and its
            # decider are immutable, so they are shared, not rebuilt.
            self._table, self.decide, self.nonfinite_cells = built
        """The model's decision for one packet (the per-packet fast path).

        Equal to `decide_exact` (the MLP run on `quantize`'s inputs). Never
        raises for bytes, bytearray or memoryview of any length; other types
        raise ``TypeError``. An empty packet is Skip (nothing to compress)."""
        self.table_build_s = time.perf_counter() - t0
        """seconds spent building the decision table (measured at construction)"""

    def __repr__(self) -> str:
        return f"LearnedCompressionOracle(link_rate_bps={self.cost_model.link_rate_bps:g})"

    @property
    def link_rate_bps(self) -> float:
        return self.cost_model.link_rate_bps

    @property
    def model(self) -> Any:
        return self._model

    def with_link_rate(self, link_rate_bps: float) -> LearnedCompressionOracle:
        """A new oracle over the same model for another link rate (rebuilds the table)."""
        c = self.cost_model
        return LearnedCompressionOracle(
            self._model,
            link_rate_bps=link_rate_bps,
            encode_cpu_weight=c.encode_cpu_weight,
            decode_cpu_weight=c.decode_cpu_weight,
            tie_tolerance_s=c.tie_tolerance_s,
        )

    # ---------------------------------------------------------------- table
    def _build_table(self) -> bytes:
        """Run the MLP over every reachable cell; return the table (one byte per cell).

        The first layer is separable: the (size, entropy) part is computed once
        for all cells, and each (magic, header) combination only adds its
        one-hot weight row.
        """
        layers = self._model.weights.layers  # w_aug [in + 1, out] per layer
        w0 = layers[0]
        s, e = np.meshgrid(np.arange(N_SIZE_BUCKETS), np.arange(N_ENTROPY_LEVELS), indexing="ij")
        grid = np.stack(
            ((s.ravel() + 0.5) / N_SIZE_BUCKETS, e.ravel() / (N_ENTROPY_LEVELS - 1)), axis=1
        ).astype(np.float32)  # [buckets * levels, 2], table order
        base = _matmul_rows(grid, w0[:2]) + w0[-1]  # [cells per combo, H]
        sizes = np.repeat([representative_size(b) for b in range(N_SIZE_BUCKETS)], N_ENTROPY_LEVELS)
        per_combo = N_SIZE_BUCKETS * N_ENTROPY_LEVELS
        small = (HEADER_MAX_BUCKET + 1) * N_ENTROPY_LEVELS
        table = np.full(TABLE_CELLS, _SKIP_COLUMN, dtype=np.uint8)  # unreachable cells: Skip
        for magic in range(N_MAGIC):
            for header in range(N_HEADER):
                n_cells = per_combo if header == 0 else small
                a = base[:n_cells].copy()
                if magic:
                    a += w0[_MAGIC_COL + magic]
                if header:
                    a += w0[_HEADER_COL + header]
                for w in layers[1:]:
                    np.maximum(a, 0.0, out=a)
                    a = _matmul_rows(a, w[:-1]) + w[-1]
                util = outputs_to_utilities(a, sizes[:n_cells], self.cost_model)
                if header not in _ROHC_HEADERS:
                    # Header compression only exists for IP/UDP packets: never
                    # pick it elsewhere, whatever the model predicts.
                    util[:, _ROHC_COLUMN] = -np.inf
                if magic == _ENCRYPTED:
                    # Ciphertext does not compress; the regression's small
                    # saved-fraction errors must not make a codec try (and
                    # the constant slab is answered before any sampling).
                    util[:, _CODEC_COLUMNS] = -np.inf
                self.nonfinite_cells += int(np.count_nonzero(~np.isfinite(a).all(axis=1)))
                start = (magic * N_HEADER + header) * per_combo
                table[start : start + n_cells] = choose(util, self.cost_model.tie_tolerance_s)
        return table.tobytes()

    def _fast_tables(
        self,
    ) -> tuple[
        tuple[MlCompressionDecision | tuple[MlCompressionDecision, ...], ...],
        tuple[MlCompressionDecision | tuple[MlCompressionDecision, ...], ...],
        tuple[MlCompressionDecision | None, ...],
        tuple[MlCompressionDecision | None, ...],
        bytes,
    ]:
        """(rows, rows_big, magic_const, first_const, header_matters) for `_make_decider`.

        A slab is constant when its decision is the same at every entropy level
        its size bucket can reach (`_REACHABLE_LEVELS`), so small packets whose
        samples cannot reach the levels where the model changes its mind are
        answered without sampling. Equal rows are shared (memory).
        """
        table = self._table
        shared: dict[bytes, tuple[MlCompressionDecision, ...]] = {}
        rows: list[MlCompressionDecision | tuple[MlCompressionDecision, ...]] = []
        for slab in range(N_SLABS):
            raw = table[slab * N_ENTROPY_LEVELS : (slab + 1) * N_ENTROPY_LEVELS]
            reachable = _REACHABLE_LEVELS[slab % N_SIZE_BUCKETS]
            if not reachable:  # no packet size falls in this bucket
                rows.append(_SKIP)
                continue
            seen = {raw[level] for level in reachable}
            if len(seen) == 1:
                rows.append(DECISIONS[seen.pop()])
            else:
                row = shared.get(raw)
                if row is None:
                    row = shared[raw] = tuple(DECISIONS[b] for b in raw)
                rows.append(row)

        def agreed(magic: int, headers: tuple[int, ...]) -> MlCompressionDecision | None:
            """The decision of every slab of ``magic`` with these headers, if they agree."""
            kinds = {
                rows[(magic * N_HEADER + h) * N_SIZE_BUCKETS + b]
                for h in headers
                for b in range(1, N_SIZE_BUCKETS)  # bucket 0 is the empty packet only
                if _REACHABLE_LEVELS[b]
            }
            only = kinds.pop() if len(kinds) == 1 else None
            return only if isinstance(only, MlCompressionDecision) else None

        # A packet whose first byte cannot start an IP packet has header NONE, so
        # only those slabs count for the magic numbers tested on non-IP first bytes.
        magic_const = tuple(agreed(m, (int(HeaderKind.NONE),)) for m in range(N_MAGIC))
        every_header = tuple(range(N_HEADER))
        first_const = tuple(
            None
            if kind <= 0
            else agreed(kind, every_header if _IP_VERSION_BY_FIRST_BYTE[b] else (0,))
            for b, kind in enumerate(_FIRST_BYTE_KIND)
        )

        def decides_alike(a: int, b: int) -> bool:
            ra, rb = rows[a], rows[b]
            if ra == rb:
                return True
            levels = _REACHABLE_LEVELS[a % N_SIZE_BUCKETS]
            return all(
                (ra if isinstance(ra, MlCompressionDecision) else ra[lv])
                == (rb if isinstance(rb, MlCompressionDecision) else rb[lv])
                for lv in levels
            )

        # Index magic * N_HEADER * N_SIZE_BUCKETS + bucket: the header-less slab's index.
        header_matters = bytearray(N_SLABS)
        for m in range(N_MAGIC):
            for b in range(N_SIZE_BUCKETS):
                plain = m * N_HEADER * N_SIZE_BUCKETS + b
                header_matters[plain] = not all(
                    decides_alike(plain, plain + h * N_SIZE_BUCKETS) for h in range(1, N_HEADER)
                )
        full = _LEVEL_BY_ABSENT[SAMPLE_BYTES]
        big_rows: dict[int, tuple[MlCompressionDecision, ...]] = {}
        rows_big = tuple(
            r
            if isinstance(r, MlCompressionDecision)
            else big_rows.setdefault(id(r), tuple(r[full[a]] for a in range(257)))
            for r in rows
        )
        return tuple(rows), rows_big, magic_const, first_const, bytes(header_matters)

    # ------------------------------------------------------------ decisions
    def predicted_outputs(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """The MLP's raw outputs for one packet, float32[N_OUTPUTS] (runs the model; slow)."""
        out = self._model.forward_batch(input_vector(data)[None, :])
        return np.asarray(out[0], dtype=np.float32)

    def predicted_utilities(
        self, data: bytes | bytearray | memoryview
    ) -> dict[MlCompressionDecision, float]:
        """Predicted utility (seconds) of each decision for this packet, at its exact size."""
        n = len(as_bytes_like(data))
        outputs = self.predicted_outputs(data)[None, :]
        util = outputs_to_utilities(outputs, np.array([n]), self.cost_model)[0]
        return {d: float(u) for d, u in zip(DECISIONS, util, strict=True)}

    def decide_exact(self, data: bytes | bytearray | memoryview) -> MlCompressionDecision:
        """`decide` computed by running the MLP (slow path, for checks).

        Uses the size bucket's representative size like the table, so the two
        agree except on float-rounding near-ties.
        """
        q = quantize(data)
        if q.size_bytes == 0:
            return _SKIP
        util = outputs_to_utilities(
            self.predicted_outputs(data)[None, :],
            np.array([representative_size(q.size_bucket)]),
            self.cost_model,
        )
        if int(q.header) not in _ROHC_HEADERS:
            util[:, _ROHC_COLUMN] = -np.inf  # as in the table
        if q.magic is MagicKind.ENCRYPTED:
            util[:, _CODEC_COLUMNS] = -np.inf
        return DECISIONS[int(choose(util, self.cost_model.tie_tolerance_s)[0])]
