"""Decoding hostile frames: memory stays within the declared length, only ValueError escapes.

Regressions of issue 8.2: a zstd payload carrying its own content size made
python-zstandard allocate that size (1 GiB from a 33-byte payload), and short
garbage ZSTD frames raised MemoryError instead of ValueError.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest
import zstandard
from compression_payloads import english, json_records
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oxidize_ml.compression.codec import (
    ZSTD_MAX_RATIO,
    CodecConfig,
    PacketCodec,
    _encode_varint,
)
from oxidize_ml.types import MlCompressionDecision

CODEC = PacketCodec()
SMALL = PacketCodec(CodecConfig(max_payload_bytes=64 * 1024))
# Slack over the declared length for the interpreter's own bookkeeping while decoding.
OVERHEAD_BYTES = 256 * 1024


def _sized_zstd_payload(content: bytes, claimed: int) -> bytes:
    """A magicless zstd frame of ``content`` whose header claims ``claimed`` bytes."""
    params = zstandard.ZstdCompressionParameters.from_level(
        1, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=False
    )
    body = zstandard.ZstdCompressor(compression_params=params).compress(content)
    # Frame header descriptor 0x00 (no size field, window descriptor follows):
    # set a 4-byte content-size field and insert it after the window descriptor.
    assert body[0] == 0x00
    return b"\x80" + body[1:2] + (claimed & 0xFFFFFFFF).to_bytes(4, "little") + body[2:]


def _peak_decode(codec: PacketCodec, frame: bytes) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        codec.decode(frame)
    except Exception as exc:  # noqa: BLE001 - the type is what the tests check
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


def test_zstd_content_size_bomb_is_refused_before_allocating() -> None:
    body = _sized_zstd_payload(b"\0" * (1 << 20), 1 << 30)
    declared = len(body) * ZSTD_MAX_RATIO  # largest length the ratio bound allows
    frame = bytes([0x42]) + _encode_varint(declared) + body
    exc, peak = _peak_decode(CODEC, frame)
    assert isinstance(exc, ValueError)
    assert "claims 1073741824 bytes" in str(exc)
    assert peak < declared + OVERHEAD_BYTES


def test_33kb_bomb_frame_declaring_16_mib() -> None:
    # The issue's shape: 33 KB frame, declared 16 MiB, payload claiming 1 GiB.
    content = random.Random(3).randbytes(32 * 1024)
    body = _sized_zstd_payload(content, 1 << 30)
    frame = bytes([0x42]) + _encode_varint(16 * 1024 * 1024) + body
    assert 32_000 < len(frame) < 34_000
    exc, peak = _peak_decode(CODEC, frame)
    assert isinstance(exc, ValueError)
    assert peak < 16 * 1024 * 1024 + OVERHEAD_BYTES


def test_matching_content_size_still_decodes() -> None:
    # A frame from another zstd writer that does record the (right) size is fine.
    data = english(3000)
    body = _sized_zstd_payload(data, len(data))
    frame = bytes([0x42]) + _encode_varint(len(data)) + body
    assert CODEC.decode(frame) == data


def test_short_garbage_zstd_frames_raise_value_error_not_memory_error() -> None:
    rng = random.Random(17)
    tracemalloc.start()
    try:
        for _ in range(20_000):
            frame = bytes([0x42]) + rng.randbytes(rng.randrange(1, 20))
            with pytest.raises(ValueError):
                CODEC.decode(frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # each declared length is at most 19 * 32768 bytes
    assert peak < 19 * ZSTD_MAX_RATIO + OVERHEAD_BYTES


def test_the_17_byte_frame_of_the_issue() -> None:
    # header, 1-byte varint (100), then 15 bytes whose zstd header claims 2^63 bytes
    fhd = bytes([0xE0])  # 8-byte content size field, single segment
    frame = b"\x42\x64" + fhd + (1 << 62).to_bytes(8, "little") + b"\x01\x00\x00\x00\x00\x00"
    assert len(frame) == 17
    exc, peak = _peak_decode(CODEC, frame)
    assert isinstance(exc, ValueError)
    assert peak < OVERHEAD_BYTES


_METHOD_HEADERS = st.sampled_from([0x40, 0x41, 0x42, 0x43, 0x44, 0x61, 0x62])


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "sized_zstd", "mutated"]))
    if kind == "random":
        return bytes([draw(_METHOD_HEADERS)]) + draw(st.binary(max_size=200))
    if kind == "sized_zstd":
        content = draw(st.binary(min_size=1, max_size=2000))
        claimed = draw(st.integers(0, 2**32 - 1))
        declared = draw(st.integers(1, 64 * 1024))
        return bytes([0x42]) + _encode_varint(declared) + _sized_zstd_payload(content, claimed)
    data = json_records(draw(st.integers(40, 3000)), seed=draw(st.integers(0, 1000)))
    decision = draw(st.sampled_from(list(MlCompressionDecision)))
    frame = bytearray(SMALL.encode(data, decision))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(frame) - 1))
        frame[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(frame)))
    return bytes(frame[:cut])


@settings(
    max_examples=300,
    deadline=None,  # shared CPUs; the memory assertion is the bound that matters
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frame=hostile_frames())
@example(frame=b"\x42\x80\x80\x80\x08" + b"\x00" * 20)
def test_hostile_frames_only_raise_value_error_within_bounded_memory(frame: bytes) -> None:
    exc, peak = _peak_decode(SMALL, frame)
    assert exc is None or isinstance(exc, ValueError), repr(exc)
    assert peak < 64 * 1024 + OVERHEAD_BYTES
