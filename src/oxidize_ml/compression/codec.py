"""Packet codec: carries out a compression decision as a self-describing frame.

Frame format (version 2)
------------------------
::

    byte 0          header: bits 7-6 format version (2), bit 5 checksum flag,
                    bit 4 reserved (0), bits 3-0 method (`CodecMethod`)
    [4 bytes]       CRC-32 of the original payload, little endian, if bit 5 is set
    [varint]        original length (unsigned LEB128), compressed methods only
    [4 bytes]       zstd dictionary id, little endian, ZSTD_DICT only
    payload         raw bytes, an lz4 block or a magicless zstd frame

==========  ====  ==============================================================
method      code  payload
==========  ====  ==============================================================
RAW            0  the packet unchanged (``Skip``, and any packet that did not
                  shrink)
LZ4            1  ``lz4.block.compress(store_size=False)`` (``Light``)
ZSTD           2  zstd frame without magic number, content size, checksum or
                  dictionary id (``Aggressive``): our own header carries the
                  length and dictionary id, so those bytes would be redundant
ZSTD_DICT      3  the same with the codec's trained dictionary (``Aggressive``
                  when the codec has one)
ROHC           4  a header-compressed IPv4/IPv6 + UDP (+ RTP) packet
                  (``RohcOnly``), `oxidize_ml.compression.rohc`
==========  ====  ==============================================================

Version history: version 1 carried ``RohcOnly`` packets unchanged under
method 4; version 2 carries header compression there (our own format after
RFC 2508/3095 ideas, **not** wire-compatible with ROHC). Encoders write
version 2; decoders read both (a version-1 ROHC frame is a passthrough).

Header compression is stateful: each `PacketCodec` holds a compressor
context table (for the frames it encodes) and a decompressor context table
(for the frames it decodes), so one codec - one `oxidize_ml.MlEngine`, e.g.
one ``fork()`` per connection - must serve one peer, and frames must reach
it over one path. A packet that is not IPv4 (no options, unfragmented) or
IPv6 carrying UDP is sent RAW even when the decision is ``RohcOnly``. The
context tables take their own lock, only for ``RohcOnly`` frames.

A compressed frame is used only when it is strictly shorter than the raw
frame, so a frame is never longer than the packet plus the 1-byte header
(plus 4 with the optional checksum); the exception is a ROHC IR packet
(the context refresh that carries the whole packet), 4-10 bytes longer.

Decoding validates everything it reads: unknown versions, reserved bits or
methods, truncated varints, declared lengths above ``max_payload_bytes`` or
above what the payload could expand to (lz4 at most 255:1, zstd at most
32768:1: one 4-byte RLE block yields 128 KiB), corrupt compressed streams,
size mismatches, dictionary id mismatches and checksum mismatches all raise
``ValueError`` with a message naming the problem. So a hostile frame cannot
make the decoder allocate more than ``max_payload_bytes`` (16 MiB by
default) nor more than the ratio bound allows for its size.

Integrity: without the checksum flag a bit flip inside a compressed payload
may decode to wrong bytes of the right length, exactly as it would in a raw
frame. Transports below (QUIC/TLS AEAD, UDP checksums) normally catch that;
set ``CodecConfig.checksum`` to add a CRC-32 when they do not.

Memory bound: python-zstandard sizes a one-shot decompression from the zstd
frame's *own* content-size field when it is present and ignores
``max_output_size`` (a 33-byte payload claiming 1 GiB made it allocate
1 GiB). Our frames never write that field, so before decoding, the zstd
frame header is parsed (``zstandard.get_frame_parameters``) and a frame that
carries a content size other than the declared length is rejected. Without
that field the output buffer is exactly the declared length. lz4 blocks
carry no size of their own: ``uncompressed_size`` is the declared length.
Peak memory of decoding a frame is therefore the declared length (at most
``max_payload_bytes`` and the ratio bound), whatever the payload says.

Threads: one `PacketCodec` may be shared by any number of threads. zstd
compression/decompression contexts are not thread-safe (sharing them crashed
the interpreter, issue 8.1), so each thread gets its own pair, created on
its first use through a ``threading.local`` and reused afterwards
(REFERENCES section 4: a new compressor per call costs 2-3x more); the
per-packet path takes no lock. lz4.block keeps no state between calls.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import lz4.block
import zstandard

from oxidize_ml._validate import check_int
from oxidize_ml.compression.features import as_bytes_like
from oxidize_ml.compression.rohc import RohcCompressor, RohcConfig, RohcDecompressor
from oxidize_ml.types import MlCompressionDecision

FRAME_VERSION = 2
_LEGACY_VERSION = 1  # RohcOnly frames were passthrough
_VERSION_SHIFT = 6
_CHECKSUM_FLAG = 0x20
_RESERVED_MASK = 0x10
_METHOD_MASK = 0x0F

LZ4_MAX_RATIO = 255
"""an lz4 block expands at most ~255:1 (each extra length byte adds <= 255)"""
ZSTD_MAX_RATIO = 32_768
"""a zstd RLE block (3-byte header + 1 byte) expands to at most 128 KiB"""
DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_MAX_VARINT_BYTES = 10
_DICT_ID_BYTES = 4
_CRC_BYTES = 4


class CodecMethod(IntEnum):
    """How a frame's payload is encoded (the low 4 bits of the header)."""

    RAW = 0
    LZ4 = 1
    ZSTD = 2
    ZSTD_DICT = 3
    ROHC = 4


_METHODS = {int(m): m for m in CodecMethod}
_MAX_CODE = max(_METHODS)
# Hot-path constants: plain ints and module-level members (see _encode).
_RAW, _LZ4, _ZSTD, _ZSTD_DICT, _ROHC = (
    CodecMethod.RAW,
    CodecMethod.LZ4,
    CodecMethod.ZSTD,
    CodecMethod.ZSTD_DICT,
    CodecMethod.ROHC,
)
_RAW_CODE, _LZ4_CODE, _ZSTD_CODE, _ZSTD_DICT_CODE, _ROHC_CODE = (int(m) for m in CodecMethod)
_H_RAW, _H_LZ4, _H_ZSTD, _H_ZSTD_DICT, _H_ROHC = (
    (FRAME_VERSION << _VERSION_SHIFT) | int(m) for m in CodecMethod
)
_SKIP = MlCompressionDecision.Skip
_LIGHT = MlCompressionDecision.Light
_AGGRESSIVE = MlCompressionDecision.Aggressive
_ROHC_ONLY = MlCompressionDecision.RohcOnly
_EMPTY = b""


_ZSTD_UNKNOWN_SIZE = zstandard.CONTENTSIZE_UNKNOWN


class _ZstdContexts(threading.local):
    """One thread's zstd contexts (``threading.local`` runs ``__init__`` once per thread)."""

    cctx: zstandard.ZstdCompressor
    dctx: zstandard.ZstdDecompressor
    dict_cctx: zstandard.ZstdCompressor | None
    dict_dctx: zstandard.ZstdDecompressor | None

    def __init__(
        self,
        params: zstandard.ZstdCompressionParameters,
        window: int,
        zdict: zstandard.ZstdCompressionDict | None,
    ) -> None:
        self.cctx = zstandard.ZstdCompressor(compression_params=params)
        self.dctx = zstandard.ZstdDecompressor(
            format=zstandard.FORMAT_ZSTD1_MAGICLESS, max_window_size=window
        )
        self.dict_cctx = self.dict_dctx = None
        if zdict is not None:
            self.dict_cctx = zstandard.ZstdCompressor(dict_data=zdict, compression_params=params)
            self.dict_dctx = zstandard.ZstdDecompressor(
                dict_data=zdict, format=zstandard.FORMAT_ZSTD1_MAGICLESS, max_window_size=window
            )


@dataclass(frozen=True, slots=True)
class CodecConfig:
    """Settings of a `PacketCodec`.

    Frames are self-describing: a decoder needs none of the encoder's
    settings, only the same dictionary (for ZSTD_DICT frames) and a
    ``max_payload_bytes`` at least as large as the encoder's.
    """

    zstd_level: int = 3
    """zstd compression level for Aggressive (1-22; 3 is zstd's default)"""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """largest packet the codec encodes and the largest a frame may declare"""
    checksum: bool = False
    """append a CRC-32 of the original payload to every frame (4 bytes)"""
    rohc: RohcConfig = field(default_factory=RohcConfig)
    """header compression settings (``RohcOnly``); the decoder needs none"""

    def __post_init__(self) -> None:
        check_int("zstd_level", self.zstd_level, lo=1, hi=22)
        check_int("max_payload_bytes", self.max_payload_bytes, lo=1, hi=1 << 31)
        if not isinstance(self.checksum, bool):
            raise TypeError(f"checksum must be a bool, got {type(self.checksum).__name__}")
        if not isinstance(self.rohc, RohcConfig):
            raise TypeError(f"rohc must be a RohcConfig, got {type(self.rohc).__name__}")


class EncodeResult(NamedTuple):
    """What `PacketCodec.encode_with_stats` returns."""

    frame: bytes
    """the encoded frame"""
    method: CodecMethod
    """the method actually used (RAW when compression did not shrink the packet)"""
    elapsed_ns: int
    """wall time spent in encode, nanoseconds (``time.perf_counter_ns``)"""


def _encode_varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:  # packets up to 16 KiB: two bytes, no loop
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _decode_varint(frame: bytes | bytearray, pos: int) -> tuple[int, int]:
    """Read an unsigned LEB128 at ``pos``; return (value, position after it)."""
    value = 0
    shift = 0
    end = min(len(frame), pos + _MAX_VARINT_BYTES)
    while pos < end:
        byte = frame[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    if pos >= len(frame):
        raise ValueError("truncated frame: original-length varint runs past the end")
    raise ValueError(f"corrupt frame: original-length varint longer than {_MAX_VARINT_BYTES} bytes")


def _check_header(header: int) -> int:
    """Validate a header byte; return its method code."""
    version = header >> _VERSION_SHIFT
    if version != FRAME_VERSION and version != _LEGACY_VERSION:
        raise ValueError(
            f"unsupported frame version {version} (header byte 0x{header:02x}); "
            f"this codec reads versions {_LEGACY_VERSION} and {FRAME_VERSION}"
        )
    if header & _RESERVED_MASK:
        raise ValueError(f"corrupt frame: reserved header bit set (header byte 0x{header:02x})")
    code = header & _METHOD_MASK
    if code > _MAX_CODE:
        raise ValueError(
            f"unknown codec method {code} (header byte 0x{header:02x}); "
            f"known: {[f'{m.value}={m.name}' for m in CodecMethod]}"
        )
    return code


def frame_method(frame: bytes | bytearray | memoryview) -> CodecMethod:
    """Read the method from a frame's header byte (validates the header only)."""
    buf = as_bytes_like(frame)
    if not buf:
        raise ValueError("empty frame: expected at least the 1-byte header")
    return _METHODS[_check_header(buf[0])]


class PacketCodec:
    """Encode packets per `MlCompressionDecision`; decode any version-1 or -2 frame.

    Parameters
    ----------
    config : CodecConfig, optional
        Level, size limit and checksum flag.
    dictionary : bytes, optional
        A trained zstd dictionary (``zstandard.ZstdCompressionDict.as_bytes()``
        or `dictionary_bytes` of another codec). Aggressive then uses it, and
        frames compressed with it decode only on a codec holding the same
        dictionary (its id is carried in the frame and checked).

    Examples
    --------
    >>> codec = PacketCodec()
    >>> pkt = b"GET /index.html HTTP/1.1\\r\\nHost: example.com\\r\\n" * 8
    >>> frame = codec.encode(pkt, MlCompressionDecision.Light)
    >>> len(frame) < len(pkt), codec.decode(frame) == pkt
    (True, True)
    """

    __slots__ = (
        "_checksum",
        "_dict_id",
        "_dict_id_bytes",
        "_dictionary",
        "_max_payload",
        "_rohc_rx",
        "_rohc_tx",
        "_z",
        "config",
    )

    def __init__(
        self, config: CodecConfig | None = None, *, dictionary: bytes | None = None
    ) -> None:
        if config is None:
            config = CodecConfig()
        if not isinstance(config, CodecConfig):
            raise TypeError(f"config must be a CodecConfig, got {type(config).__name__}")
        self.config = config
        self._max_payload = config.max_payload_bytes
        self._checksum = config.checksum
        params = self._params(config.zstd_level)
        # A hostile frame may declare a huge window; no frame this codec
        # writes needs more than the next power of two above the largest
        # payload, so cap it there (zstd's default cap is 128 MiB).
        window = 1 << max(10, (config.max_payload_bytes - 1).bit_length())
        self._dictionary: zstandard.ZstdCompressionDict | None = None
        self._dict_id = 0
        self._dict_id_bytes = b""
        if dictionary is not None:
            raw = bytes(as_bytes_like(dictionary))
            try:
                zdict = zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_FULLDICT)
                dict_id = zdict.dict_id()
                if dict_id == 0:
                    raise ValueError(
                        "dictionary has id 0 (raw content): use a trained dictionary "
                        "(PacketCodec.with_dictionary or zstandard.train_dictionary)"
                    )
                zdict.precompute_compress(compression_params=params)
            except zstandard.ZstdError as exc:
                raise ValueError(f"dictionary is not a valid zstd dictionary: {exc}") from None
            self._dictionary = zdict
            self._dict_id = dict_id
            self._dict_id_bytes = dict_id.to_bytes(_DICT_ID_BYTES, "little")
        # Per-thread zstd contexts (module docstring, "Threads"); the
        # precomputed dictionary is read-only and shared by all of them.
        self._z = _ZstdContexts(params, window, self._dictionary)
        self._rohc_tx = RohcCompressor(config.rohc)
        self._rohc_rx = RohcDecompressor()

    @staticmethod
    def _params(level: int) -> zstandard.ZstdCompressionParameters:
        # The frame carries the original length, so zstd's own magic number,
        # content size, dictionary id and checksum would be redundant bytes.
        return zstandard.ZstdCompressionParameters.from_level(
            level,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_content_size=False,
            write_checksum=False,
            write_dict_id=False,
        )

    @classmethod
    def with_dictionary(
        cls,
        samples: Sequence[bytes | bytearray | memoryview],
        *,
        dict_size_bytes: int = 4096,
        config: CodecConfig | None = None,
    ) -> PacketCodec:
        """Train a zstd dictionary on sample packets and return a codec using it.

        Parameters
        ----------
        samples : sequence of bytes-like
            Representative packets (a few hundred similar payloads; zstd
            needs several times ``dict_size_bytes`` of sample data in total).
        dict_size_bytes : int
            Target dictionary size (REFERENCES section 4 used 4 KiB).
        config : CodecConfig, optional
            Codec settings; the dictionary is tuned for its ``zstd_level``.

        Raises
        ------
        ValueError
            When zstd cannot train on the samples (too few or too small).
        """
        if config is None:
            config = CodecConfig()
        check_int("dict_size_bytes", dict_size_bytes, lo=256, hi=1 << 24)
        data: list[bytes | bytearray | memoryview] = [bytes(as_bytes_like(s)) for s in samples]
        try:
            zdict = zstandard.train_dictionary(dict_size_bytes, data, level=config.zstd_level)
        except zstandard.ZstdError as exc:
            total = sum(len(x) for x in data)
            raise ValueError(
                f"cannot train a {dict_size_bytes}-byte dictionary from {len(data)} samples "
                f"({total} bytes): {exc}; give more or larger samples"
            ) from None
        return cls(config, dictionary=zdict.as_bytes())

    @property
    def dictionary_id(self) -> int:
        """The zstd dictionary id, 0 when the codec has no dictionary."""
        return self._dict_id

    @property
    def dictionary_bytes(self) -> bytes | None:
        """The dictionary to save and pass to the peer's codec (None without one)."""
        return None if self._dictionary is None else self._dictionary.as_bytes()

    def __repr__(self) -> str:
        return f"PacketCodec({self.config!r}, dictionary_id={self._dict_id})"

    # -- encoding -----------------------------------------------------------

    def encode(
        self, data: bytes | bytearray | memoryview, decision: MlCompressionDecision
    ) -> bytes:
        """Encode one packet as a frame according to ``decision``.

        Raises
        ------
        ValueError
            When the packet is longer than ``config.max_payload_bytes``.
        TypeError
            When ``decision`` is not an `MlCompressionDecision`.
        """
        return self._encode(data, decision)[0]

    def encode_with_stats(
        self, data: bytes | bytearray | memoryview, decision: MlCompressionDecision
    ) -> EncodeResult:
        """`encode`, also returning the method used and the time it took."""
        t0 = time.perf_counter_ns()
        frame, method = self._encode(data, decision)
        return EncodeResult(frame, method, time.perf_counter_ns() - t0)

    def _encode(
        self, data: bytes | bytearray | memoryview, decision: MlCompressionDecision
    ) -> tuple[bytes, CodecMethod]:
        # Module-level constants and plain ints throughout: an Enum class
        # attribute or an Enum-keyed dict lookup costs ~100 ns each in 3.11.
        buf = data if type(data) is bytes else as_bytes_like(data)
        n = len(buf)
        if n > self._max_payload:
            raise ValueError(f"packet of {n} bytes exceeds max_payload_bytes={self._max_payload}")
        crc = _EMPTY
        flag = 0
        if self._checksum:
            crc = zlib.crc32(buf).to_bytes(_CRC_BYTES, "little")
            flag = _CHECKSUM_FLAG
        if decision is _SKIP:
            return bytes((_H_RAW | flag,)) + crc + buf, _RAW
        if decision is _LIGHT:
            if n:
                body = lz4.block.compress(buf, store_size=False)
                size = _encode_varint(n)
                if len(size) + len(body) < n:
                    return b"".join((bytes((_H_LZ4 | flag,)), crc, size, body)), _LZ4
        elif decision is _AGGRESSIVE:
            if n:
                size = _encode_varint(n)
                z = self._z
                if z.dict_cctx is None:
                    body = z.cctx.compress(buf)
                    if len(size) + len(body) < n:
                        return b"".join((bytes((_H_ZSTD | flag,)), crc, size, body)), _ZSTD
                else:
                    body = z.dict_cctx.compress(buf)
                    if len(size) + _DICT_ID_BYTES + len(body) < n:
                        frame = (
                            bytes((_H_ZSTD_DICT | flag,)),
                            crc,
                            size,
                            self._dict_id_bytes,
                            body,
                        )
                        return b"".join(frame), _ZSTD_DICT
        elif decision is _ROHC_ONLY:
            body = self._rohc_tx.compress(buf if type(buf) is bytes else bytes(buf))
            if body is not None:
                return b"".join((bytes((_H_ROHC | flag,)), crc, body)), _ROHC
        else:
            raise TypeError(
                f"decision must be an MlCompressionDecision, got {decision!r}; "
                f"choose from {[d.name for d in MlCompressionDecision]}"
            )
        # Empty, compression did not shrink it, or not a UDP/IP packet for
        # RohcOnly: never expand beyond the header.
        return bytes((_H_RAW | flag,)) + crc + buf, _RAW

    # -- decoding -----------------------------------------------------------

    def decode(self, frame: bytes | bytearray | memoryview) -> bytes:
        """Decode a frame produced by any version-1 or -2 `PacketCodec`.

        Raises
        ------
        ValueError
            For any malformed, truncated, corrupt, oversized or mismatched
            frame (the message says which check failed).
        TypeError
            When ``frame`` is not bytes-like.
        """
        buf = frame if type(frame) is bytes else as_bytes_like(frame)
        if not buf:
            raise ValueError("empty frame: expected at least the 1-byte header")
        header = buf[0]
        code = _check_header(header)
        pos = 1
        crc = -1
        if header & _CHECKSUM_FLAG:
            if len(buf) < 1 + _CRC_BYTES:
                raise ValueError(
                    "truncated frame: checksum flag set but fewer than 4 checksum bytes"
                )
            crc = int.from_bytes(buf[1 : 1 + _CRC_BYTES], "little")
            pos += _CRC_BYTES
        if code == _ROHC_CODE and header >> _VERSION_SHIFT == FRAME_VERSION:
            out = self._rohc_rx.decompress(memoryview(buf)[pos:], self._max_payload)
        elif code == _RAW_CODE or code == _ROHC_CODE:
            out = bytes(buf[pos:])
            if len(out) > self._max_payload:
                raise ValueError(
                    f"raw frame payload of {len(out)} bytes exceeds "
                    f"max_payload_bytes={self._max_payload}"
                )
        else:
            # Inline fast path for the common 1-2 byte varint (< 16 KiB).
            b = buf[pos] if pos < len(buf) else 0x80
            if b < 0x80:
                size = b
                pos += 1
            else:
                size, pos = _decode_varint(buf, pos)
            if code == _ZSTD_DICT_CODE:
                if len(buf) < pos + _DICT_ID_BYTES:
                    raise ValueError("truncated frame: missing the 4-byte dictionary id")
                frame_dict = int.from_bytes(buf[pos : pos + _DICT_ID_BYTES], "little")
                pos += _DICT_ID_BYTES
                if self._dictionary is None:
                    raise ValueError(
                        f"frame needs zstd dictionary id {frame_dict} but this codec has none"
                    )
                if frame_dict != self._dict_id:
                    raise ValueError(
                        f"dictionary id mismatch: frame was compressed with id {frame_dict}, "
                        f"this codec has id {self._dict_id}"
                    )
            body = memoryview(buf)[pos:]  # no copy: both decompressors take buffers
            self._check_declared_size(code, size, len(body))
            out = self._decompress(code, body, size)
        if crc >= 0 and zlib.crc32(out) != crc:
            raise ValueError("checksum mismatch: the frame is corrupt")
        return out

    def _check_declared_size(self, code: int, size: int, body_len: int) -> None:
        limit = self._max_payload
        if size > limit:
            raise ValueError(
                f"frame declares {size} original bytes, above max_payload_bytes={limit}"
            )
        if size == 0:
            raise ValueError(
                f"corrupt frame: {_METHODS[code].name} frame declares 0 original bytes"
            )
        ratio = LZ4_MAX_RATIO if code == _LZ4_CODE else ZSTD_MAX_RATIO
        if size > body_len * ratio:
            raise ValueError(
                f"corrupt frame: {body_len} {_METHODS[code].name} payload bytes cannot expand "
                f"to the declared {size} bytes (max ratio {ratio}:1)"
            )

    def _decompress(self, code: int, body: memoryview, size: int) -> bytes:
        try:
            if code == _LZ4_CODE:
                # lz4 blocks carry no size: the buffer is the declared length.
                out = lz4.block.decompress(body, uncompressed_size=size)
            else:
                # The zstd frame's own content size (absent in frames we
                # write) would size the output buffer: refuse it unless it
                # equals the declared length (module docstring, "Memory bound").
                content = zstandard.get_frame_parameters(
                    body, format=zstandard.FORMAT_ZSTD1_MAGICLESS
                ).content_size
                if content != _ZSTD_UNKNOWN_SIZE and content != size:
                    raise ValueError(
                        f"corrupt {_METHODS[code].name} payload: zstd frame header claims "
                        f"{content} bytes, frame declares {size}"
                    )
                z = self._z
                dctx = z.dctx if code == _ZSTD_CODE else z.dict_dctx
                assert dctx is not None
                out = dctx.decompress(body, max_output_size=size, allow_extra_data=False)
        except (lz4.block.LZ4BlockError, zstandard.ZstdError) as exc:
            raise ValueError(f"corrupt {_METHODS[code].name} payload: {exc}") from None
        if len(out) != size:
            raise ValueError(
                f"corrupt {_METHODS[code].name} payload: decoded {len(out)} bytes, "
                f"frame declares {size}"
            )
        return out
