"""Cheap per-packet signals for the compression oracle (feature schema v1).

Everything here is computed from two small views of the packet, so the cost
barely depends on the packet size:

* the **head**: the first `HEAD_BYTES` (64) bytes, enough for every magic
  number, TLS/QUIC record header and IP/UDP/RTP header check below;
* the **sample**: at most `SAMPLE_BYTES` (128) bytes taken with one C-level
  slice ``data[:stride * 128:stride]``. The stride is ``len // 128`` rounded up
  to an odd number, so a packet made of 2/4/8/16-byte records (ints, floats,
  structs) is not aliased onto the same byte of every record; packets of at
  most 128 bytes are sampled whole.

Entropy from the distinct-byte count
------------------------------------
A histogram in numpy costs 6-10 us per packet, more than lz4 compressing it
(REFERENCES section 4). The number of *distinct* byte values in the sample,
though, comes out of one C call: ``256 - len(ALL_BYTES.translate(None,
sample))`` (``translate`` deletes every byte value that occurs in the sample
from the 256-byte alphabet). A uniform source over ``M`` symbols shows
``M * (1 - (1 - 1/M) ** k)`` distinct values in ``k`` draws on average;
inverting that for the observed count gives the *coverage entropy estimate*
``entropy_bits = log2(M)``. It equals the Shannon entropy for uniform
sources (encrypted or compressed data: about 7.7-8 bits on 128 samples) and
tracks it closely on text, JSON and HTML (about 4.9 bits against a true 4.5),
which is what separating "compressible" from "already random" needs. The
heuristic oracle thresholds this number. `shannon_bits` is the classic
plug-in Shannon entropy of the sample with the Miller-Madow bias correction:
slower (it counts every distinct value) and biased low for near-uniform data
on 128 samples (random bytes give about 7.0), kept as a second signal for
learned models.

Feature vector (`COMPRESSION_FEATURE_NAMES`, float32, version 1)
----------------------------------------------------------------
==  ===================  ==========================================================
 #  name                 value
==  ===================  ==========================================================
 0  size_log2            log2(1 + size_bytes) / 16, clipped to [0, 2]
 1  entropy              coverage entropy estimate / 8, in [0, 1]
 2  shannon              Miller-Madow sample Shannon entropy / 8, in [0, 1]
 3  top4_share           share of the sample taken by its 4 most common bytes
 4  printable_ratio      share of sample bytes that are printable ASCII or \\t\\n\\r
 5  zero_ratio           share of sample bytes equal to 0x00
 6  compressed_magic     1 if the head matches a compressed/archive format
 7  media_magic          1 if the head matches a compressed image/audio/video format
 8  encrypted_record     1 if the head is a TLS/DTLS record or QUIC long header
 9  rtp_header           1 for an IPv4/IPv6 + UDP + RTP v2 packet (`header_kind`)
10  ipv4_header          1 for any other IPv4 packet (TCP, ICMP, fragment, options)
11  ipv6_header          1 for any other IPv6 packet
12  udp_header           1 for an IPv4/IPv6 + UDP packet without RTP
==  ===================  ==========================================================

Header flags need the IP length field to equal the packet length, so a
random byte string is taken for an IP packet about once in 10^6; the
oracle still gives RohcOnly only to UDP packets up to ``rohc_max_bytes``.

PDF (``%PDF-``) is deliberately not a Skip magic: its object dictionaries
are text that compresses, and its FlateDecode streams, which do not, are
caught by the entropy estimate like any other deflate data.

QUIC short headers carry only two fixed bits (``0b01``) before header
protection, which ASCII letters share, so they are recognised by their
entropy rather than by a header rule.

Version history
---------------
1: the 13 features above, 128-byte odd-stride sample, 16-byte head.
2: 64-byte head; the input is an IP packet and the four header flags are
   parsed from it (`header_kind`): rtp_header = IP+UDP+RTP, udp_header =
   IP+UDP without RTP, ipv4_header / ipv6_header = any other IPv4 / IPv6
   packet. Version 1 matched RTP/UDP headers at offset 0 of the payload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.compression.packet import RTP_PAYLOAD_TYPES

COMPRESSION_FEATURE_VERSION = 3
"""3: the entropy sample of a packet over 128 bytes is exactly 128 bytes (`sample_stride`);
2: up to 128 bytes at stride ``(n // 128) | 1``"""

SAMPLE_BYTES = 128
"""bytes in the entropy sample (fixed by the feature version)"""
HEAD_BYTES = 64
"""bytes at the start of the packet examined for magic numbers and headers (IPv6 +
UDP + the first two RTP bytes fit in 50)"""

ALL_BYTES = bytes(range(256))
"""the 256-byte alphabet: ``256 - len(ALL_BYTES.translate(None, s))`` = distinct bytes in s"""

PRINTABLE_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r"
"""bytes counted as printable text"""

_SIZE_LOG2_SCALE = 16.0  # log2(64 KiB): a maximal UDP datagram maps to 1.0
_SIZE_LOG2_CLIP = 2.0


class MagicKind(IntEnum):
    """What a recognised packet start says about the payload."""

    NONE = 0
    COMPRESSED = 1
    """a compressed stream or archive (gzip, zstd, xz, zip, ...)"""
    MEDIA = 2
    """an already compressed image, audio or video format (PNG, JPEG, MP4, ...)"""
    ENCRYPTED = 3
    """a TLS/DTLS record or a QUIC long-header packet"""


class HeaderKind(IntEnum):
    """Protocol header found at the start of the packet, in detection priority."""

    NONE = 0
    RTP = 1
    IPV4 = 2
    IPV6 = 3
    UDP = 4


# ---------------------------------------------------------------------------
# Magic numbers at offset 0. Sources: the formats' specifications (RFC 1952
# gzip, RFC 1950 zlib, RFC 8878 zstd, lz4 frame format, PNG, JFIF, GIF89a,
# Ogg RFC 3533, FLAC, Matroska/EBML, 7z, RAR 4/5, ZIP APPNOTE, WOFF/WOFF2).
_MAGIC_PREFIXES: tuple[tuple[bytes, MagicKind, str], ...] = (
    (b"\x1f\x8b", MagicKind.COMPRESSED, "gzip"),
    # zlib: CMF 0x78 (deflate, 32 KiB window) and the FLG byte of each level
    # group; (CMF * 256 + FLG) % 31 == 0 holds for all four.
    (b"\x78\x01", MagicKind.COMPRESSED, "zlib"),
    (b"\x78\x5e", MagicKind.COMPRESSED, "zlib"),
    (b"\x78\x9c", MagicKind.COMPRESSED, "zlib"),
    (b"\x78\xda", MagicKind.COMPRESSED, "zlib"),
    (b"\x28\xb5\x2f\xfd", MagicKind.COMPRESSED, "zstd"),
    (b"\x04\x22\x4d\x18", MagicKind.COMPRESSED, "lz4"),
    (b"\x02\x21\x4c\x18", MagicKind.COMPRESSED, "lz4-legacy"),
    (b"\xfd7zXZ\x00", MagicKind.COMPRESSED, "xz"),
    # bzip2: "BZh" + block size digit + the block magic (BCD digits of pi), so
    # English text starting with "BZh" is not mistaken for it.
    *((b"BZh" + bytes([d]) + b"1AY&SY", MagicKind.COMPRESSED, "bzip2") for d in b"123456789"),
    (b"PK\x03\x04", MagicKind.COMPRESSED, "zip"),
    (b"PK\x05\x06", MagicKind.COMPRESSED, "zip"),
    (b"PK\x07\x08", MagicKind.COMPRESSED, "zip"),
    (b"7z\xbc\xaf\x27\x1c", MagicKind.COMPRESSED, "7z"),
    (b"Rar!\x1a\x07", MagicKind.COMPRESSED, "rar"),
    (b"wOFF", MagicKind.COMPRESSED, "woff"),
    (b"wOF2", MagicKind.COMPRESSED, "woff2"),
    (b"\x89PNG\r\n\x1a\n", MagicKind.MEDIA, "png"),
    (b"\xff\xd8\xff", MagicKind.MEDIA, "jpeg"),
    (b"GIF87a", MagicKind.MEDIA, "gif"),
    (b"GIF89a", MagicKind.MEDIA, "gif"),
    (b"OggS", MagicKind.MEDIA, "ogg"),
    (b"fLaC", MagicKind.MEDIA, "flac"),
    (b"\x1a\x45\xdf\xa3", MagicKind.MEDIA, "matroska"),
    (b"ID3", MagicKind.MEDIA, "mp3"),
    # TLS record header (RFC 8446 section 5.1): content type 20-23
    # (change_cipher_spec, alert, handshake, application_data) and legacy
    # version 0x0301-0x0304. DTLS (RFC 9147) uses 0xfeff / 0xfefd.
    *(
        (bytes([ct, 0x03, minor]), MagicKind.ENCRYPTED, "tls")
        for ct in range(0x14, 0x18)
        for minor in range(0x01, 0x05)
    ),
    *(
        (bytes([ct, 0xFE, minor]), MagicKind.ENCRYPTED, "dtls")
        for ct in range(0x14, 0x18)
        for minor in (0xFF, 0xFD)
    ),
)
# ISO base media file format (MP4, MOV, HEIF, AVIF, CMAF segments): box type
# at offset 4 of the first box.
ISOBMFF_BOXES = frozenset((b"ftyp", b"styp", b"moof", b"sidx"))
# RIFF container: form type at offset 8. WAVE (usually PCM) is left out.
RIFF_MEDIA = frozenset((b"WEBP", b"AVI "))
# QUIC long header (RFC 9000 section 17.2): form and fixed bits set (first
# byte >= 0xC0), then a 32-bit version: v1, v2 (RFC 9369), version
# negotiation (0) and the last IETF drafts 0xff00001d-0xff000022.
QUIC_VERSIONS = frozenset(
    (
        b"\x00\x00\x00\x01",
        b"\x6b\x33\x43\xcf",
        b"\x00\x00\x00\x00",
        *(b"\xff\x00\x00" + bytes([v]) for v in range(0x1D, 0x23)),
    )
)

SKIP_PREFIXES_BY_FIRST_BYTE: tuple[tuple[bytes, ...], ...] = tuple(
    tuple(p for p, _, _ in _MAGIC_PREFIXES if p[0] == b) for b in range(256)
)
"""offset-0 magic prefixes grouped by first byte: ``head.startswith(T[head[0]])``"""
_MAGIC_INFO: dict[bytes, tuple[MagicKind, str]] = {p: (k, n) for p, k, n in _MAGIC_PREFIXES}


def magic_kind(head: bytes) -> tuple[MagicKind, str]:
    """Classify the first bytes of a packet by magic number or record header.

    Parameters
    ----------
    head : bytes
        The packet's first bytes (at least `HEAD_BYTES` when available).

    Returns
    -------
    (MagicKind, str)
        The kind and a short format name ("gzip", "tls", "quic", "mp4", ...),
        or ``(MagicKind.NONE, "")``.
    """
    if not head:
        return MagicKind.NONE, ""
    for prefix in SKIP_PREFIXES_BY_FIRST_BYTE[head[0]]:
        if head.startswith(prefix):
            return _MAGIC_INFO[prefix]
    # The first box's 32-bit size is far below 16 MiB (ftyp/styp are tens of
    # bytes, moof/sidx a few KiB; size 1 announces a 64-bit size), so its
    # first byte is 0: the oracle's fast path only looks at offset 4 then.
    if head[0] == 0 and head[4:8] in ISOBMFF_BOXES:
        return MagicKind.MEDIA, "mp4"
    if head.startswith(b"RIFF") and head[8:12] in RIFF_MEDIA:
        return MagicKind.MEDIA, "webp" if head[8:12] == b"WEBP" else "avi"
    if head[0] >= 0xC0 and head[1:5] in QUIC_VERSIONS:
        return MagicKind.ENCRYPTED, "quic"
    return MagicKind.NONE, ""


_NONE, _RTP, _IPV4, _IPV6, _UDP = (
    HeaderKind.NONE,
    HeaderKind.RTP,
    HeaderKind.IPV4,
    HeaderKind.IPV6,
    HeaderKind.UDP,
)


def header_kind(head: bytes | bytearray, size: int) -> HeaderKind:
    """Classify an IP packet from its first bytes (`HEAD_BYTES`) and its length.

    The input of the oracles is an IP packet, as a tunnel reads it from its
    TUN device (`oxidize_ml.compression.packet.strip_link_layer` turns a
    captured frame into one). Headers are parsed, not pattern-matched:
    IPv4 needs its total length to equal ``size``, IPv6 its payload length to
    equal ``size - 40``; UDP needs its length field to match; RTP is
    recognised on the UDP payload (version 2, a non-RTCP payload type, room
    for the CSRC list).

    Returns
    -------
    HeaderKind
        ``RTP`` / ``UDP``: IPv4 (without options, not a fragment) or IPv6
        carrying UDP, with / without an RTP header (what header compression,
        ``RohcOnly``, handles); ``IPV4`` / ``IPV6``: any other IP packet
        (TCP, ICMP, fragments, options, extension headers); ``NONE``: not
        an IP packet.
    """
    # The rules of `oxidize_ml.compression.packet.parse_ip_head`, inlined (this
    # runs on the per-packet path of both oracles); a test checks they agree.
    h = len(head)
    if size < 20 or h < 20:
        return _NONE
    b0 = head[0]
    if b0 == 0x45:  # IPv4 without options: UDP at 20
        if (head[2] << 8 | head[3]) != size:
            return _NONE
        if head[9] != 17 or (head[6] & 0x3F) or head[7]:
            return _IPV4
        off = 20
        other = _IPV4
    elif 0x46 <= b0 <= 0x4F:  # IPv4 with options: never header-compressed
        ihl = (b0 & 0x0F) * 4
        return _IPV4 if ihl <= size and (head[2] << 8 | head[3]) == size else _NONE
    elif b0 >> 4 == 6:
        if h < 40 or (head[4] << 8 | head[5]) != size - 40:
            return _NONE
        if head[6] != 17:
            return _IPV6
        off = 40
        other = _IPV6
    else:
        return _NONE
    if h < off + 8 or (head[off + 4] << 8 | head[off + 5]) != size - off:
        return other
    r = off + 8
    if size >= r + 12 and h >= r + 2:
        c0 = head[r]
        if (
            0x80 <= c0 <= 0xBF
            and (head[r + 1] & 0x7F) in RTP_PAYLOAD_TYPES
            and size >= r + 12 + 4 * (c0 & 0x0F)
        ):
            return _RTP
    return _UDP


def sample_stride(n: int) -> int:
    """Stride of the entropy sample of an ``n``-byte packet, n > `SAMPLE_BYTES`.

    The largest odd stride s with ``127 s < n``, so ``data[: 128 s : s]`` is
    always exactly `SAMPLE_BYTES` bytes spread over the whole packet (odd, so
    that it does not alias with 2-, 4- or 8-byte fields; all but the last
    two strides of the packet are covered). A fixed length lets the oracles
    index their thresholds and tables by the count of absent byte values
    without looking the sample length up. Inlined on the per-packet paths as
    ``((n - 1) // 127 - 1) | 1``.
    """
    return ((n - 1) // (SAMPLE_BYTES - 1) - 1) | 1


def sample_view(data: bytes | bytearray) -> bytes | bytearray:
    """The entropy sample: the whole packet up to `SAMPLE_BYTES` bytes, else exactly
    `SAMPLE_BYTES` bytes at the odd stride `sample_stride`."""
    n = len(data)
    if n <= SAMPLE_BYTES:
        return data
    stride = sample_stride(n)
    return data[: stride * SAMPLE_BYTES : stride]


def as_bytes_like(data: object) -> bytes | bytearray:
    """Return ``data`` as bytes or bytearray, copying only memoryviews.

    A memoryview of any format, shape or stride is copied to bytes with
    ``tobytes`` (its ``len`` counts items of the first dimension, not bytes,
    so it cannot be used as is). Anything else raises ``TypeError``.
    """
    t = type(data)
    if t is bytes or t is bytearray:
        return data  # type: ignore[return-value]
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, memoryview):
        return data.tobytes()
    raise TypeError(f"packet must be bytes, bytearray or memoryview, got {type(data).__name__}")


def _build_entropy_table(max_k: int = SAMPLE_BYTES) -> tuple[tuple[float, ...], ...]:
    """``table[k][d]``: coverage entropy estimate (bits) for d distinct of k draws.

    Inverts ``E[distinct] = M (1 - (1 - 1/M) ** k)`` for the alphabet size M
    on a grid of log2(M) in steps of 1/256 bit, with linear interpolation.
    """
    bits = np.linspace(0.0, 8.0, 8 * 256 + 1)
    m = np.exp2(bits)
    table: list[tuple[float, ...]] = []
    for k in range(max_k + 1):
        expected = m * (1.0 - (1.0 - 1.0 / m) ** k)  # increasing in m
        # d <= 1 is one symbol (0 bits); beyond a uniform 256-symbol source's
        # expected count, np.interp clamps to 8 bits.
        row = np.interp(np.arange(k + 1, dtype=np.float64), expected, bits)
        row[:2] = 0.0
        table.append(tuple(float(x) for x in row))
    return tuple(table)


ENTROPY_TABLE: tuple[tuple[float, ...], ...] = _build_entropy_table()
"""``ENTROPY_TABLE[k][d]``: entropy estimate in bits for d distinct bytes in a k-byte sample"""

# c * log2(c) for every possible count in a sample (0 for c = 0), for the
# plug-in entropy.
_C_LOG2_C = (0.0, *(c * math.log2(c) for c in range(1, SAMPLE_BYTES + 1)))
_LN2 = math.log(2.0)


def distinct_bytes(sample: bytes | bytearray) -> int:
    """Number of distinct byte values in ``sample`` (one C-level call)."""
    return 256 - len(ALL_BYTES.translate(None, sample))


def coverage_entropy_bits(sample: bytes | bytearray) -> float:
    """Coverage entropy estimate of ``sample`` (at most `SAMPLE_BYTES` long), bits/byte."""
    k = len(sample)
    if k > SAMPLE_BYTES:
        raise ValueError(f"sample must hold at most {SAMPLE_BYTES} bytes, got {k}")
    return ENTROPY_TABLE[k][distinct_bytes(sample)]


KIND_FLAG_NAMES: tuple[str, ...] = (
    "compressed_magic",
    "media_magic",
    "encrypted_record",
    "rtp_header",
    "ipv4_header",
    "ipv6_header",
    "udp_header",
)
"""the one-hot magic-number and header-kind flags, in the order both the full feature
vector and the learned model's inputs (`oxidize_ml.compression.learned.INPUT_NAMES`) use"""

COMPRESSION_FEATURE_NAMES: tuple[str, ...] = (
    "size_log2",
    "entropy",
    "shannon",
    "top4_share",
    "printable_ratio",
    "zero_ratio",
    *KIND_FLAG_NAMES,
)
N_COMPRESSION_FEATURES = len(COMPRESSION_FEATURE_NAMES)


@dataclass(frozen=True, slots=True)
class CompressionFeatures:
    """Signals extracted from one packet; build with `extract_features`.

    Fields are checked on construction so a hand-made instance (e.g. read
    back from telemetry) cannot carry impossible values.
    """

    size_bytes: int
    """packet length in bytes"""
    sample_bytes: int
    """length of the entropy sample, ``min(size, SAMPLE_BYTES)`` or a little less"""
    distinct_bytes: int
    """distinct byte values in the sample"""
    entropy_bits: float
    """coverage entropy estimate of the sample, bits per byte in [0, 8]"""
    shannon_bits: float
    """Miller-Madow corrected plug-in Shannon entropy of the sample, bits per byte in [0, 8]"""
    top4_share: float
    """share of the sample taken by its four most frequent byte values"""
    printable_ratio: float
    """share of sample bytes that are printable ASCII, tab, LF or CR"""
    zero_ratio: float
    """share of sample bytes equal to zero"""
    magic: MagicKind
    """what the magic number or record header says (NONE if nothing matched)"""
    magic_name: str
    """short name of the recognised format ("" if none)"""
    header: HeaderKind
    """protocol header recognised at the start of the packet"""

    def __post_init__(self) -> None:
        check_int("size_bytes", self.size_bytes)
        check_int("sample_bytes", self.sample_bytes, hi=min(self.size_bytes, SAMPLE_BYTES))
        check_int("distinct_bytes", self.distinct_bytes, hi=min(self.sample_bytes, 256))
        check_number("entropy_bits", self.entropy_bits, hi=8.0)
        check_number("shannon_bits", self.shannon_bits, hi=8.0)
        check_number("top4_share", self.top4_share, hi=1.0)
        check_number("printable_ratio", self.printable_ratio, hi=1.0)
        check_number("zero_ratio", self.zero_ratio, hi=1.0)
        if not isinstance(self.magic, MagicKind):
            raise TypeError(f"magic must be a MagicKind, got {type(self.magic).__name__}")
        if not isinstance(self.header, HeaderKind):
            raise TypeError(f"header must be a HeaderKind, got {type(self.header).__name__}")

    def to_vector(self) -> np.ndarray:
        """The model input: float32[13] in `COMPRESSION_FEATURE_NAMES` order."""
        return _vector(
            self.size_bytes,
            self.entropy_bits,
            self.shannon_bits,
            self.top4_share,
            self.printable_ratio,
            self.zero_ratio,
            self.magic,
            self.header,
        )


def _raw_features(
    data: bytes | bytearray | memoryview,
) -> tuple[int, int, int, float, float, float, float, MagicKind, str, HeaderKind]:
    """(size, k, distinct, shannon, top4, printable, zeros, magic, name, header)."""
    buf = as_bytes_like(data)
    n = len(buf)
    head = bytes(buf[:HEAD_BYTES])
    sample = sample_view(buf)
    k = len(sample)
    if k:
        # One numpy histogram, then plain Python on at most 128 counts: each
        # numpy reduction costs a microsecond or more of call overhead.
        d = 256 - len(ALL_BYTES.translate(None, sample))
        counts = np.sort(np.bincount(np.frombuffer(sample, dtype=np.uint8), minlength=256))
        nonzero = counts[256 - d :].tolist()  # ascending
        plug_in = math.log2(k) - sum(map(_C_LOG2_C.__getitem__, nonzero)) / k
        # Miller-Madow: add (d - 1) / (2 k) nats.
        shannon = min(max(plug_in + (d - 1) / (2.0 * k * _LN2), 0.0), 8.0)
        top4 = sum(nonzero[-4:]) / k
        printable = (k - len(sample.translate(None, PRINTABLE_BYTES))) / k
        zeros = sample.count(0) / k
    else:
        d = 0
        shannon = top4 = printable = zeros = 0.0
    kind, name = magic_kind(head)
    return n, k, d, shannon, top4, printable, zeros, kind, name, header_kind(head, n)


def _vector(
    n: int,
    entropy: float,
    shannon: float,
    top4: float,
    printable: float,
    zeros: float,
    magic: MagicKind,
    header: HeaderKind,
) -> np.ndarray:  # -> float32[13]
    size_log2 = min(math.log2(1.0 + n) / _SIZE_LOG2_SCALE, _SIZE_LOG2_CLIP)
    return np.array(
        (
            size_log2,
            entropy / 8.0,
            shannon / 8.0,
            top4,
            printable,
            zeros,
            magic is MagicKind.COMPRESSED,
            magic is MagicKind.MEDIA,
            magic is MagicKind.ENCRYPTED,
            header is HeaderKind.RTP,
            header is HeaderKind.IPV4,
            header is HeaderKind.IPV6,
            header is HeaderKind.UDP,
        ),
        dtype=np.float32,
    )


def feature_vector(data: bytes | bytearray | memoryview) -> np.ndarray:
    """``extract_features(data).to_vector()`` without building the dataclass.

    The inference path for learned oracles: same numbers, without the field
    validation that `CompressionFeatures` runs on construction.
    """
    n, k, d, shannon, top4, printable, zeros, kind, _, header = _raw_features(data)
    return _vector(n, ENTROPY_TABLE[k][d], shannon, top4, printable, zeros, kind, header)


def extract_features(data: bytes | bytearray | memoryview) -> CompressionFeatures:
    """Compute `CompressionFeatures` for one packet.

    Costs several microseconds (a numpy histogram of the sample for the
    Shannon, top-4, printable and zero features, plus field validation);
    the oracle's ``decide`` fast path computes only the subset its rules
    need, with identical results, and `feature_vector` skips the dataclass.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        The packet payload, any length including 0.

    Examples
    --------
    >>> f = extract_features(b"hello hello hello hello hello hello")
    >>> f.size_bytes, f.distinct_bytes, f.magic.name, f.header.name
    (35, 5, 'NONE', 'NONE')
    """
    n, k, d, shannon, top4, printable, zeros, kind, name, header = _raw_features(data)
    return CompressionFeatures(
        size_bytes=n,
        sample_bytes=k,
        distinct_bytes=d,
        entropy_bits=ENTROPY_TABLE[k][d],
        shannon_bits=shannon,
        top4_share=top4,
        printable_ratio=printable,
        zero_ratio=zeros,
        magic=kind,
        magic_name=name,
        header=header,
    )
