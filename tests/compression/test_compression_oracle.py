from __future__ import annotations

import dataclasses
import zlib

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

from oxidize_ml.compression.features import extract_features
from oxidize_ml.compression.oracle import CompressionOracleConfig, HeuristicCompressionOracle
from oxidize_ml.policy import Policy
from oxidize_ml.types import MlCompressionDecision as D

ORACLE = HeuristicCompressionOracle()


def test_is_a_policy() -> None:
    assert isinstance(ORACLE, Policy)
    assert ORACLE.name == "heuristic" and ORACLE.is_learned is False
    data = english()
    assert ORACLE.predict_one(data, now=12.5) == ORACLE.decide(data)
    assert ORACLE.learn_one(data, 1.0, now=12.5) is None
    assert ORACLE.decide(data) == ORACLE.decide(data)  # learn_one changed nothing


@pytest.mark.parametrize("seed", range(10))
def test_random_bytes_skip(seed: int) -> None:
    for size in (64, 300, 1400, 9000, 70_000):
        assert ORACLE.decide(random_bytes(size, seed)) is D.Skip


@pytest.mark.parametrize("name", ["gzip", "zlib", "zstd", "lz4", "bzip2", "xz"])
def test_compressed_outputs_skip(name: str) -> None:
    data = compressed_outputs()[name]
    assert ORACLE.decide(data) is D.Skip
    assert ORACLE.decide(data[:1400]) is D.Skip


def test_raw_deflate_without_magic_skips_on_entropy() -> None:
    co = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: no header at all
    stream = co.compress(english(8000) + json_records(8000)) + co.flush()
    for start in range(0, len(stream) - 1400, 700):
        assert ORACLE.decide(stream[start : start + 1400]) is D.Skip


@pytest.mark.parametrize("build", [png_file, jpeg_file, mp4_file])
def test_media_headers_skip(build) -> None:  # type: ignore[no-untyped-def]
    assert ORACLE.decide(build()) is D.Skip


def test_media_magic_wins_even_on_compressible_body() -> None:
    # The magic alone decides: a PNG header followed by text is still Skip.
    assert ORACLE.decide(b"\x89PNG\r\n\x1a\n" + english(1392)) is D.Skip


def test_encrypted_records_skip() -> None:
    assert ORACLE.decide(tls_application_data()) is D.Skip
    assert ORACLE.decide(tls_application_data(payload_len=100)) is D.Skip
    assert ORACLE.decide(quic_initial()) is D.Skip


def test_text_and_json_are_compressed() -> None:
    for data in (english(1400), json_records(1400), english(70_000)):
        assert ORACLE.decide(data) in (D.Light, D.Aggressive)
    assert ORACLE.decide(english(1400)) is D.Aggressive
    # Below aggressive_min_bytes the light codec is used.
    assert ORACLE.decide(english(300)) is D.Light
    assert ORACLE.decide(json_records(300)) is D.Light


def test_small_real_time_packets_get_header_compression() -> None:
    assert ORACLE.decide(udp_ipv4_rtp(random_bytes(60))) is D.RohcOnly  # SRTP-like payload
    assert ORACLE.decide(udp_ipv4_rtp(bytes(120))) is D.RohcOnly
    assert ORACLE.decide(udp_ipv6(random_bytes(100))) is D.RohcOnly
    # Above rohc_max_bytes the same header no longer matters.
    assert ORACLE.decide(udp_ipv4_rtp(random_bytes(1200))) is D.Skip


def test_rohc_only_never_for_non_udp_packets() -> None:
    # TCP (even with an RTP-looking payload), bare RTP payloads, fragments: never RohcOnly.
    assert ORACLE.decide(tcp_ipv4(b"\x80\x00" + random_bytes(100))) is not D.RohcOnly
    assert ORACLE.decide(tcp_ipv4(bytes(60))) is not D.RohcOnly
    assert ORACLE.decide(rtp_packet(bytes(160))) is not D.RohcOnly
    assert ORACLE.decide(rtp_packet(random_bytes(160), payload_type=111)) is not D.RohcOnly
    frag = bytearray(udp_ipv4_rtp(random_bytes(60)))
    frag[6] |= 0x20
    assert ORACLE.decide(bytes(frag)) is not D.RohcOnly


def test_tiny_and_empty_skip() -> None:
    assert ORACLE.decide(b"") is D.Skip
    assert ORACLE.decide(bytearray()) is D.Skip
    assert ORACLE.decide(memoryview(b"")) is D.Skip
    assert ORACLE.decide(b"a" * 31) is D.Skip
    assert ORACLE.decide(b"a" * 32) is D.Light


def test_bytes_like_inputs_decide_alike() -> None:
    for data in (
        english(),
        json_records(),
        random_bytes(),
        rtp_packet(bytes(160)),
        png_file(),
        english(40),
        b"",
    ):
        d = ORACLE.decide(data)
        assert ORACLE.decide(bytearray(data)) is d
        assert ORACLE.decide(memoryview(data)) is d
        assert ORACLE.decide(memoryview(bytearray(data))) is d


def test_decide_features_agrees_with_decide() -> None:
    for data in (
        english(),
        json_records(),
        random_bytes(),
        rtp_packet(bytes(160)),
        png_file(),
        tls_application_data(),
        quic_initial(),
        mp4_file(),
        english(300),
        b"x" * 10,
    ):
        assert ORACLE.decide_features(extract_features(data)) is ORACLE.decide(data)


def test_deterministic_across_instances() -> None:
    other = HeuristicCompressionOracle(CompressionOracleConfig())
    inputs = [random_bytes(700, s) for s in range(5)] + [english(s * 100) for s in range(15)]
    assert [ORACLE.decide(x) for x in inputs] == [other.decide(x) for x in inputs]


def test_config_changes_decisions() -> None:
    strict = HeuristicCompressionOracle(CompressionOracleConfig(min_payload_bytes=2000))
    assert strict.decide(english(1400)) is D.Skip
    no_rohc = HeuristicCompressionOracle(CompressionOracleConfig(rohc_max_bytes=0))
    assert no_rohc.decide(rtp_packet(bytes(160))) is not D.RohcOnly
    light_only = HeuristicCompressionOracle(CompressionOracleConfig(aggressive_min_bytes=10**9))
    assert light_only.decide(english(1400)) is D.Light
    skip_all = HeuristicCompressionOracle(
        CompressionOracleConfig(skip_entropy_bits=1.0, aggressive_max_entropy_bits=0.5)
    )
    assert skip_all.decide(english(1400)) is D.Skip
    zero_min = HeuristicCompressionOracle(CompressionOracleConfig(min_payload_bytes=0))
    assert zero_min.decide(b"") is D.Skip


@pytest.mark.parametrize(
    ("field", "value", "exc"),
    [
        ("min_payload_bytes", -1, ValueError),
        ("min_payload_bytes", 1.5, TypeError),
        ("rohc_max_bytes", True, TypeError),
        ("skip_entropy_bits", 8.5, ValueError),
        ("skip_entropy_bits", float("nan"), ValueError),
        ("aggressive_min_bytes", -5, ValueError),
        ("aggressive_max_entropy_bits", 7.5, ValueError),  # not below skip_entropy_bits
        ("aggressive_max_entropy_bits", "6", TypeError),
    ],
)
def test_config_validation(field: str, value: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=field):
        CompressionOracleConfig(**{field: value})


def test_config_is_frozen_and_replaceable() -> None:
    cfg = CompressionOracleConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.min_payload_bytes = 5  # type: ignore[misc]
    assert dataclasses.replace(cfg, rohc_max_bytes=100).rohc_max_bytes == 100
    with pytest.raises(TypeError, match="CompressionOracleConfig"):
        HeuristicCompressionOracle({"min_payload_bytes": 3})  # type: ignore[arg-type]


def test_rejects_non_bytes() -> None:
    with pytest.raises(TypeError, match="bytes, bytearray or memoryview"):
        ORACLE.decide("some text")  # type: ignore[arg-type]
