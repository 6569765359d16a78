from __future__ import annotations

import struct
import zlib

import pytest
from compression_payloads import english, json_records, random_bytes, rtp_packet, udp_ipv4_rtp

from oxidize_ml.compression.codec import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    CodecConfig,
    CodecMethod,
    PacketCodec,
    frame_method,
)
from oxidize_ml.types import MlCompressionDecision as D

CODEC = PacketCodec()


def _json_samples(n: int, seed: int) -> list[bytes]:
    return [json_records(300 + (i * 37) % 500, seed=seed * 10_000 + i) for i in range(n)]


@pytest.fixture(scope="module")
def dict_codec() -> PacketCodec:
    return PacketCodec.with_dictionary(_json_samples(300, seed=1))


def test_methods_and_header_bytes() -> None:
    text = english()
    assert CODEC.encode(text, D.Skip)[0] == 0x80
    assert CODEC.encode(text, D.Light)[0] == 0x81
    assert CODEC.encode(text, D.Aggressive)[0] == 0x82
    assert CODEC.encode(text, D.RohcOnly)[0] == 0x80  # not a UDP/IP packet: sent raw
    assert CODEC.encode(udp_ipv4_rtp(bytes(60)), D.RohcOnly)[0] == 0x84
    assert [frame_method(CODEC.encode(text, d)) for d in D] == [
        CodecMethod.RAW,
        CodecMethod.LZ4,
        CodecMethod.ZSTD,
        CodecMethod.RAW,
    ]


def test_raw_passes_payload_through_and_rohc_needs_udp_ip() -> None:
    pkt = rtp_packet(random_bytes(160))  # bare RTP, no IP/UDP: nothing to header-compress
    assert CODEC.encode(pkt, D.Skip) == b"\x80" + pkt
    assert CODEC.encode(pkt, D.RohcOnly) == b"\x80" + pkt
    assert CODEC.decode(b"\x80" + pkt) == pkt


def test_version_1_frames_still_decode() -> None:
    pkt = rtp_packet(random_bytes(160))
    assert CODEC.decode(b"\x40" + pkt) == pkt
    assert CODEC.decode(b"\x44" + pkt) == pkt  # version-1 RohcOnly was a passthrough
    assert CODEC.decode(b"\x41\x05\x50hello") == b"hello"


@pytest.mark.parametrize("decision", list(D))
@pytest.mark.parametrize(
    "data",
    [b"", b"a", english(), json_records(), random_bytes(), english(70_000), random_bytes(70_000)],
    ids=["empty", "one", "text", "json", "random", "text70k", "random70k"],
)
def test_round_trip(decision: D, data: bytes) -> None:
    frame = CODEC.encode(data, decision)
    assert CODEC.decode(frame) == data
    assert len(frame) <= len(data) + 1


def test_compression_shrinks_text_and_json() -> None:
    for data in (english(), json_records()):
        light = CODEC.encode(data, D.Light)
        heavy = CODEC.encode(data, D.Aggressive)
        # lz4 block + 1 header byte + 2 varint bytes; zstd beats lz4 on these.
        assert len(light) < len(data) * 0.85
        assert len(heavy) < len(light)


def test_incompressible_falls_back_to_raw() -> None:
    data = random_bytes()
    for decision in (D.Light, D.Aggressive):
        frame = CODEC.encode(data, decision)
        assert frame == b"\x80" + data
        assert frame_method(frame) is CodecMethod.RAW


def test_encode_with_stats() -> None:
    result = CODEC.encode_with_stats(english(), D.Light)
    assert result.method is CodecMethod.LZ4 and result.elapsed_ns >= 0
    assert result.frame == CODEC.encode(english(), D.Light)
    assert CODEC.encode_with_stats(random_bytes(), D.Aggressive).method is CodecMethod.RAW


def test_bytes_like_inputs() -> None:
    data = json_records()
    frame = CODEC.encode(data, D.Aggressive)
    assert CODEC.encode(bytearray(data), D.Aggressive) == frame
    assert CODEC.encode(memoryview(data), D.Aggressive) == frame
    assert CODEC.decode(bytearray(frame)) == data
    assert CODEC.decode(memoryview(frame)) == data


def test_zstd_level_is_configurable() -> None:
    data = english(20_000) + json_records(20_000)
    fast = PacketCodec(CodecConfig(zstd_level=1)).encode(data, D.Aggressive)
    strong = PacketCodec(CodecConfig(zstd_level=19)).encode(data, D.Aggressive)
    assert len(strong) < len(fast)
    assert CODEC.decode(strong) == data  # any codec decodes any level


def test_dictionary_round_trip_and_gain(dict_codec: PacketCodec) -> None:
    assert dict_codec.dictionary_id != 0
    fresh = _json_samples(50, seed=2)
    plain_total = dict_total = 0
    for pkt in fresh:
        frame = dict_codec.encode(pkt, D.Aggressive)
        assert dict_codec.decode(frame) == pkt
        dict_total += len(frame)
        plain_total += len(CODEC.encode(pkt, D.Aggressive))
    assert dict_total < plain_total * 0.8
    # The dictionary travels as bytes: a peer codec built from them decodes.
    peer = PacketCodec(dictionary=dict_codec.dictionary_bytes)
    frame = dict_codec.encode(fresh[0], D.Aggressive)
    assert frame_method(frame) is CodecMethod.ZSTD_DICT
    assert peer.decode(frame) == fresh[0]
    # Non-dictionary frames still decode on a dictionary codec and vice versa.
    assert dict_codec.decode(CODEC.encode(fresh[1], D.Aggressive)) == fresh[1]
    assert CODEC.decode(dict_codec.encode(fresh[1], D.Light)) == fresh[1]


def test_dictionary_id_mismatch_raises(dict_codec: PacketCodec) -> None:
    other = PacketCodec.with_dictionary(_json_samples(300, seed=3))
    assert other.dictionary_id != dict_codec.dictionary_id
    frame = dict_codec.encode(json_records(600, seed=99), D.Aggressive)
    with pytest.raises(ValueError, match="dictionary id mismatch"):
        other.decode(frame)
    with pytest.raises(ValueError, match="has none"):
        CODEC.decode(frame)


def test_dictionary_errors() -> None:
    with pytest.raises(ValueError, match="cannot train"):
        PacketCodec.with_dictionary([b"abc", b"def"])
    with pytest.raises(ValueError, match="id 0"):
        PacketCodec(dictionary=b"just some raw content, not a trained dictionary" * 4)
    trained = PacketCodec.with_dictionary(_json_samples(200, seed=5)).dictionary_bytes
    assert trained is not None
    with pytest.raises(ValueError, match="not a valid zstd dictionary"):
        PacketCodec(dictionary=trained[:64])  # truncated: header intact, tables cut
    with pytest.raises(ValueError, match="dict_size_bytes"):
        PacketCodec.with_dictionary(_json_samples(10, seed=4), dict_size_bytes=10)


def test_checksum_detects_payload_corruption() -> None:
    codec = PacketCodec(CodecConfig(checksum=True))
    for decision in D:
        data = english()
        frame = codec.encode(data, decision)
        assert frame[0] & 0x20
        assert codec.decode(frame) == data
        assert CODEC.decode(frame) == data  # the flag travels in the frame
        bad = bytearray(frame)
        bad[-1] ^= 0x01
        with pytest.raises(ValueError):
            codec.decode(bytes(bad))
    # Without the flag the raw path cannot notice a flipped payload bit.
    raw = bytearray(CODEC.encode(english(), D.Skip))
    raw[-1] ^= 0x01
    assert CODEC.decode(bytes(raw)) != english()


def test_max_payload_on_encode_and_decode() -> None:
    small = PacketCodec(CodecConfig(max_payload_bytes=1000))
    with pytest.raises(ValueError, match="max_payload_bytes"):
        small.encode(english(1001), D.Light)
    with pytest.raises(ValueError, match="max_payload_bytes"):
        small.decode(CODEC.encode(english(2000), D.Light))
    with pytest.raises(ValueError, match="max_payload_bytes"):
        small.decode(CODEC.encode(random_bytes(2000), D.Skip))


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "empty frame"),
        (b"\x00abc", "unsupported frame version 0"),
        (b"\xc0abc", "unsupported frame version 3"),
        (b"\x84", "truncated ROHC"),
        (b"\x84\x00\x05abc", "does not hold"),
        (b"\x84\x87\x00", "corrupt ROHC IR"),
        (b"\x50abc", "reserved header bit"),
        (b"\x4fabc", "unknown codec method 15"),
        (b"\x41", "truncated"),
        (b"\x41\x80\x80", "truncated"),
        (b"\x41" + b"\xff" * 11 + b"\x00", "longer than 10 bytes"),
        (b"\x41" + _varint(2**40) + b"\x00" * 8, "above max_payload_bytes"),
        (b"\x42" + _varint(DEFAULT_MAX_PAYLOAD_BYTES + 1) + b"\x00" * 8, "above max_payload"),
        (b"\x41" + _varint(1_000_000) + b"\x00" * 10, "cannot expand"),
        (b"\x42" + _varint(10_000_000) + b"\x00" * 10, "cannot expand"),
        (b"\x41\x00", "declares 0"),
        (b"\x41\x05\x00", "corrupt LZ4"),
        (b"\x41\x06\x50hello", "corrupt LZ4"),  # a valid 5-byte block declared as 6
        (b"\x42\x05abc", "corrupt ZSTD"),
        (b"\x43\x05\x01\x02", "dictionary id"),
        (b"\x60\x01\x02", "checksum"),
        (b"\x60\x00\x00\x00\x00abc", "checksum mismatch"),
    ],
)
def test_hostile_frames_raise_value_error(frame: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CODEC.decode(frame)


def test_handmade_frames_decode() -> None:
    # lz4 block: token 0x50 = 5 literals and no match, then the literals.
    assert CODEC.decode(b"\x41\x05\x50hello") == b"hello"
    assert CODEC.decode(b"\x40") == b""
    assert CODEC.decode(b"\x44abc") == b"abc"


def test_trailing_garbage_after_compressed_payload_raises() -> None:
    for decision in (D.Light, D.Aggressive):
        frame = CODEC.encode(json_records(), decision)
        with pytest.raises(ValueError, match="corrupt"):
            CODEC.decode(frame + b"\x00junk")


def test_declared_length_mismatch_raises() -> None:
    data = json_records()
    frame = CODEC.encode(data, D.Light)
    assert frame[1:3] == _varint(len(data))
    longer = frame[:1] + _varint(len(data) + 1) + frame[3:]
    shorter = frame[:1] + _varint(len(data) - 1) + frame[3:]
    for bad in (longer, shorter):
        with pytest.raises(ValueError, match="corrupt LZ4"):
            CODEC.decode(bad)
    zframe = CODEC.encode(data, D.Aggressive)
    with pytest.raises(ValueError, match="corrupt ZSTD"):
        CODEC.decode(zframe[:1] + _varint(len(data) - 1) + zframe[3:])


def test_checksum_value_is_crc32_of_original() -> None:
    codec = PacketCodec(CodecConfig(checksum=True))
    data = english()
    frame = codec.encode(data, D.Light)
    assert struct.unpack("<I", frame[1:5])[0] == zlib.crc32(data)


@pytest.mark.parametrize(
    ("field", "value", "exc"),
    [
        ("zstd_level", 0, ValueError),
        ("zstd_level", 23, ValueError),
        ("zstd_level", 3.0, TypeError),
        ("max_payload_bytes", 0, ValueError),
        ("checksum", 1, TypeError),
    ],
)
def test_config_validation(field: str, value: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=field):
        CodecConfig(**{field: value})


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="MlCompressionDecision"):
        CODEC.encode(b"abc", "light")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes, bytearray or memoryview"):
        CODEC.encode("abc", D.Skip)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CodecConfig"):
        PacketCodec(3)  # type: ignore[arg-type]
