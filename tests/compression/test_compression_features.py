from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest
from compression_payloads import (
    compressed_outputs,
    english,
    jpeg_file,
    json_records,
    mp4_file,
    png_file,
    quic_initial,
    random_bytes,
    rtp_packet,
    tcp_ipv4,
    tls_application_data,
    udp_ipv4_rtp,
    udp_ipv6,
)

from oxidize_ml.compression.features import (
    COMPRESSION_FEATURE_NAMES,
    COMPRESSION_FEATURE_VERSION,
    ENTROPY_TABLE,
    HEAD_BYTES,
    SAMPLE_BYTES,
    CompressionFeatures,
    HeaderKind,
    MagicKind,
    coverage_entropy_bits,
    distinct_bytes,
    extract_features,
    feature_vector,
    header_kind,
    magic_kind,
    sample_stride,
    sample_view,
)
from oxidize_ml.compression.packet import parse_ip


def test_schema_is_versioned_and_vector_matches_names() -> None:
    assert COMPRESSION_FEATURE_VERSION == 3
    assert len(COMPRESSION_FEATURE_NAMES) == len(set(COMPRESSION_FEATURE_NAMES)) == 13
    v = extract_features(english()).to_vector()
    assert v.dtype == np.float32 and v.shape == (len(COMPRESSION_FEATURE_NAMES),)
    assert np.all(np.isfinite(v)) and np.all(v >= 0.0)


def test_vector_values_follow_documented_order() -> None:
    f = extract_features(tls_application_data())
    v = dict(zip(COMPRESSION_FEATURE_NAMES, extract_features(tls_application_data()).to_vector()))
    assert v["size_log2"] == pytest.approx(math.log2(1 + f.size_bytes) / 16, rel=1e-6)
    assert v["entropy"] == pytest.approx(f.entropy_bits / 8, rel=1e-6)
    assert v["encrypted_record"] == 1.0
    assert v["compressed_magic"] == v["media_magic"] == v["rtp_header"] == 0.0
    pkt = udp_ipv4_rtp(bytes(160))
    rtp = dict(zip(COMPRESSION_FEATURE_NAMES, extract_features(pkt).to_vector()))
    assert rtp["rtp_header"] == 1.0 and rtp["encrypted_record"] == rtp["ipv4_header"] == 0.0


def test_feature_vector_equals_dataclass_vector() -> None:
    for data in (
        b"",
        b"abc",
        english(),
        json_records(),
        random_bytes(),
        rtp_packet(bytes(160)),
        tls_application_data(),
        png_file(),
        english(70_000),
    ):
        np.testing.assert_array_equal(feature_vector(data), extract_features(data).to_vector())


def test_distinct_count_matches_python_set() -> None:
    for data in (b"", b"a", b"abcabc", random_bytes(128), english(128), bytes(range(256))[:128]):
        assert distinct_bytes(data) == len(set(data))


def test_sample_is_bounded_strided_and_odd() -> None:
    assert sample_view(b"x" * 100) == b"x" * 100
    for n in (129, 254, 255, 256, 257, 383, 384, 400, 1280, 1400, 1500, 4096, 70_000):
        data = random_bytes(n, seed=n)
        s = sample_view(data)
        stride = sample_stride(n)
        assert stride % 2 == 1
        assert len(s) == SAMPLE_BYTES
        assert s == data[::stride][:SAMPLE_BYTES]
        # the largest such stride: the sample spans all but the last two strides
        assert (stride + 2) * (SAMPLE_BYTES - 1) >= n - 1


def test_entropy_table_is_monotone_and_bounded() -> None:
    for k, row in enumerate(ENTROPY_TABLE):
        assert len(row) == k + 1
        assert all(0.0 <= x <= 8.0 for x in row)
        assert all(a <= b for a, b in itertools.pairwise(row))
    # A uniform source over 16 symbols shows ~16 * (1 - (15/16)^128) distinct values.
    d = round(16 * (1 - (15 / 16) ** 128))
    assert ENTROPY_TABLE[128][d] == pytest.approx(4.0, abs=0.05)


def test_entropy_estimates_separate_random_from_text() -> None:
    for seed in range(20):
        assert coverage_entropy_bits(sample_view(random_bytes(1400, seed))) > 7.3
    for data in (english(), json_records()):
        f = extract_features(data)
        assert 4.0 < f.entropy_bits < 5.5
        assert 3.5 < f.shannon_bits < 5.5
        assert f.printable_ratio == 1.0


def test_shannon_and_top4_match_counter_on_sample() -> None:
    data = json_records()
    f = extract_features(data)
    s = bytes(sample_view(data))
    counts = Counter(s)
    k = len(s)
    plug_in = -sum(c / k * math.log2(c / k) for c in counts.values())
    mm = plug_in + (len(counts) - 1) / (2 * k * math.log(2))
    assert f.shannon_bits == pytest.approx(mm, abs=1e-9)
    assert f.top4_share == pytest.approx(sum(c for _, c in counts.most_common(4)) / k)
    assert f.zero_ratio == 0.0
    assert f.distinct_bytes == len(counts)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        *compressed_outputs().items(),
        ("png", png_file()),
        ("jpeg", jpeg_file()),
        ("mp4", mp4_file()),
    ],
)
def test_magic_numbers_of_real_outputs(name: str, data: bytes) -> None:
    kind, found = magic_kind(data[:16])
    assert found == name
    assert kind in (MagicKind.COMPRESSED, MagicKind.MEDIA)


@pytest.mark.parametrize(
    "head",
    [
        b"GIF89a\x01\x00",
        b"OggS\x00\x02",
        b"fLaC\x00\x00\x00\x22",
        b"RIFF\x10\x00\x00\x00WEBPVP8 ",
        b"7z\xbc\xaf\x27\x1c\x00\x04",
        b"Rar!\x1a\x07\x01\x00",
        b"PK\x03\x04\x14\x00",
    ],
)
def test_more_magic_numbers(head: bytes) -> None:
    assert magic_kind(head)[0] in (MagicKind.COMPRESSED, MagicKind.MEDIA)


def test_encrypted_records() -> None:
    assert magic_kind(tls_application_data()[:16]) == (MagicKind.ENCRYPTED, "tls")
    assert magic_kind(quic_initial()[:16]) == (MagicKind.ENCRYPTED, "quic")
    for ct in (0x14, 0x15, 0x16, 0x17):
        for minor in (1, 2, 3, 4):
            assert magic_kind(bytes([ct, 3, minor, 0, 40]))[0] is MagicKind.ENCRYPTED
    assert magic_kind(b"\x17\x03\x05\x00\x10")[0] is MagicKind.NONE  # no such version
    assert magic_kind(b"\x18\x03\x03\x00\x10")[0] is MagicKind.NONE  # no such content type


def test_text_starting_like_magic_is_not_misread() -> None:
    # "BZh" alone is text; bzip2 needs its block magic after the level digit.
    for text in (b"BZh is not bzip2 here", b"Running fast", b"PK is a penalty kick", b"RIFFRAFF"):
        assert magic_kind(text[:16])[0] is MagicKind.NONE


def test_headers_are_parsed_from_ip_packets() -> None:
    v4 = udp_ipv4_rtp(random_bytes(60))
    assert header_kind(v4[:HEAD_BYTES], len(v4)) is HeaderKind.RTP
    assert header_kind(v4, len(v4) + 1) is HeaderKind.NONE  # IP length must agree
    v6 = udp_ipv6(b"\x17" + random_bytes(99))  # UDP payload not RTP (first byte 0x17)
    assert header_kind(v6[:HEAD_BYTES], len(v6)) is HeaderKind.UDP
    v6_rtp = udp_ipv6(rtp_packet(bytes(100)))
    assert header_kind(v6_rtp[:HEAD_BYTES], len(v6_rtp)) is HeaderKind.RTP
    tcp = tcp_ipv4(b"\x80\x00" + bytes(100))  # RTP-looking bytes in a TCP payload
    assert header_kind(tcp[:HEAD_BYTES], len(tcp)) is HeaderKind.IPV4
    frag = bytearray(v4)
    frag[6] |= 0x20  # more fragments: a UDP header only in the first piece
    assert header_kind(bytes(frag), len(frag)) is HeaderKind.IPV4
    # Bare RTP/UDP payloads are not IP packets: nothing at offset 0 is pattern-matched.
    rtp = rtp_packet(bytes(160))
    assert header_kind(rtp[:HEAD_BYTES], len(rtp)) is HeaderKind.NONE
    assert header_kind(v4[20:], len(v4) - 20) is HeaderKind.NONE
    assert header_kind(english(100)[:HEAD_BYTES], 100) is HeaderKind.NONE
    # RTCP sender report (packet type 200) inside UDP is UDP, not RTP.
    rtcp = udp_ipv6(b"\x80\xc8\x00\x06" + bytes(24))
    assert header_kind(rtcp, len(rtcp)) is HeaderKind.UDP


def test_empty_and_tiny_packets() -> None:
    f = extract_features(b"")
    assert (f.size_bytes, f.sample_bytes, f.entropy_bits, f.magic, f.header) == (
        0,
        0,
        0.0,
        MagicKind.NONE,
        HeaderKind.NONE,
    )
    assert extract_features(b"a").entropy_bits == 0.0
    assert extract_features(b"\x1f").magic is MagicKind.NONE


def test_bytes_like_inputs_give_equal_features() -> None:
    data = json_records(900)
    f = extract_features(data)
    assert extract_features(bytearray(data)) == f
    assert extract_features(memoryview(data)) == f
    # A 2-D, non-byte memoryview is flattened to its bytes.
    arr = np.frombuffer(data[:800], dtype=np.uint8).view(np.uint32).reshape(10, 20)
    assert extract_features(memoryview(arr)) == extract_features(data[:800])


def test_non_bytes_rejected() -> None:
    with pytest.raises(TypeError, match="bytes, bytearray or memoryview"):
        extract_features("text")  # type: ignore[arg-type]


def test_features_validate_fields() -> None:
    good = extract_features(english(200))
    fields = {name: getattr(good, name) for name in good.__slots__}
    with pytest.raises(ValueError, match="entropy_bits"):
        CompressionFeatures(**{**fields, "entropy_bits": 9.0})
    with pytest.raises(ValueError, match="top4_share"):
        CompressionFeatures(**{**fields, "top4_share": 1.5})
    with pytest.raises(TypeError, match="magic"):
        CompressionFeatures(**{**fields, "magic": 1})
    with pytest.raises(ValueError, match="sample_bytes"):
        CompressionFeatures(**{**fields, "sample_bytes": 500})


def _kind_from_parse(data: bytes) -> HeaderKind:
    info = parse_ip(data)
    if not info.version:
        return HeaderKind.NONE
    if info.udp and info.ip_header_bytes in (20, 40):
        return HeaderKind.RTP if info.rtp else HeaderKind.UDP
    return HeaderKind.IPV4 if info.version == 4 else HeaderKind.IPV6


def test_inlined_header_kind_agrees_with_parse_ip() -> None:
    rng = random.Random(11)
    seeds = [
        udp_ipv4_rtp(random_bytes(60)),
        udp_ipv6(random_bytes(100)),
        udp_ipv6(rtp_packet(bytes(40))),
        tcp_ipv4(bytes(80)),
        rtp_packet(bytes(50)),
    ]
    checked = 0
    for _ in range(20_000):
        pkt = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(0, 3)):
            i = rng.randrange(min(len(pkt), 64))
            pkt[i] = rng.randrange(256) if rng.random() < 0.5 else pkt[i] ^ (1 << rng.randrange(8))
        if rng.random() < 0.2:
            pkt = pkt[: rng.randrange(len(pkt) + 1)]
        data = bytes(pkt)
        assert header_kind(data[:HEAD_BYTES], len(data)) is _kind_from_parse(data), data[:64]
        checked += 1
    assert checked == 20_000
