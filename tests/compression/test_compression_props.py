"""Property tests: round trips, a decide that never raises, decoders that fail cleanly."""

from __future__ import annotations

import random

import pytest
from compression_payloads import english, json_records
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oxidize_ml.compression.codec import CodecConfig, PacketCodec
from oxidize_ml.compression.features import extract_features, feature_vector
from oxidize_ml.compression.oracle import HeuristicCompressionOracle
from oxidize_ml.types import MlCompressionDecision

MAX_BYTES = 70 * 1024
PLAIN = PacketCodec()
CHECKED = PacketCodec(CodecConfig(checksum=True))
DICT = PacketCodec.with_dictionary([json_records(300 + i, seed=i) for i in range(200)])
ORACLE = HeuristicCompressionOracle()
PROPS = settings(
    max_examples=200,
    deadline=None,  # shared, busy CPUs: time limits would only make this flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _sized(kind: str, size: int, seed: int) -> bytes:
    """Payloads up to 70 KiB built from a seed (hypothesis buffers stay small)."""
    rng = random.Random(seed)
    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        return english(size)
    if kind == "json":
        return json_records(size, seed=seed)
    if kind == "pattern":
        chunk = rng.randbytes(rng.randrange(1, 64))
        return (chunk * (size // len(chunk) + 1))[:size]
    # "alphabet": few distinct bytes, low entropy without repeats.
    alphabet = rng.randbytes(rng.randrange(1, 20))
    return bytes(rng.choice(alphabet) for _ in range(min(size, 4096)))


payloads = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        _sized,
        st.sampled_from(["random", "text", "json", "pattern", "alphabet"]),
        st.one_of(st.integers(0, 4096), st.integers(4096, MAX_BYTES), st.just(MAX_BYTES)),
        st.integers(0, 2**32 - 1),
    ),
)
decisions = st.sampled_from(list(MlCompressionDecision))
wrappers = st.sampled_from([bytes, bytearray, memoryview])


@PROPS
@given(data=payloads, decision=decisions, wrap=wrappers)
@example(data=b"", decision=MlCompressionDecision.Light, wrap=bytes)
@example(data=english(MAX_BYTES), decision=MlCompressionDecision.Aggressive, wrap=memoryview)
@example(
    data=random.Random(1).randbytes(MAX_BYTES), decision=MlCompressionDecision.Light, wrap=bytearray
)
def test_round_trip_never_expands_beyond_header(data: bytes, decision, wrap) -> None:  # type: ignore[no-untyped-def]
    frame = PLAIN.encode(wrap(data), decision)
    assert isinstance(frame, bytes)
    assert PLAIN.decode(frame) == data
    assert len(frame) <= len(data) + 1
    with_dict = DICT.encode(data, decision)
    assert DICT.decode(with_dict) == data
    assert len(with_dict) <= len(data) + 1
    checked = CHECKED.encode(data, decision)
    assert CHECKED.decode(checked) == data
    assert len(checked) <= len(data) + 5


@PROPS
@given(data=payloads, wrap=wrappers)
@example(data=b"", wrap=memoryview)
@example(data=b"\x80", wrap=bytearray)
def test_decide_never_raises_and_agrees_with_features(data: bytes, wrap) -> None:  # type: ignore[no-untyped-def]
    decision = ORACLE.decide(wrap(data))
    assert isinstance(decision, MlCompressionDecision)
    assert ORACLE.decide(data) is decision
    features = extract_features(wrap(data))
    assert ORACLE.decide_features(features) is decision
    assert (feature_vector(data) == features.to_vector()).all()


@PROPS
@given(
    head=st.binary(min_size=1, max_size=16),
    tail=st.binary(max_size=400),
)
def test_decide_on_header_like_prefixes(head: bytes, tail: bytes) -> None:
    # Short packets exercise the magic/header branches with arbitrary first bytes.
    data = head + tail
    assert ORACLE.decide(data) is ORACLE.decide_features(extract_features(data))


def _mutations(frame: bytes, draw) -> bytes:  # type: ignore[no-untyped-def]
    op = draw(st.sampled_from(["truncate", "flip", "insert", "append", "header"]))
    if op == "truncate":
        return frame[: draw(st.integers(0, max(len(frame) - 1, 0)))]
    if op == "flip":
        i = draw(st.integers(0, len(frame) - 1))
        return frame[:i] + bytes([frame[i] ^ draw(st.integers(1, 255))]) + frame[i + 1 :]
    if op == "insert":
        i = draw(st.integers(0, len(frame)))
        return frame[:i] + draw(st.binary(min_size=1, max_size=8)) + frame[i:]
    if op == "append":
        return frame + draw(st.binary(min_size=1, max_size=8))
    return bytes([draw(st.integers(0, 255))]) + frame[1:]


@PROPS
@given(data=payloads, decision=decisions, st_data=st.data())
def test_mutated_frames_raise_value_error_or_decode(data: bytes, decision, st_data) -> None:  # type: ignore[no-untyped-def]
    frame = PLAIN.encode(data, decision)
    bad = _mutations(frame, st_data.draw)
    try:
        out = PLAIN.decode(bad)
    except ValueError:
        return
    assert isinstance(out, bytes)


@PROPS
@given(data=payloads, decision=decisions, st_data=st.data())
def test_checksummed_frames_never_decode_to_wrong_data(data: bytes, decision, st_data) -> None:  # type: ignore[no-untyped-def]
    frame = CHECKED.encode(data, decision)
    bad = _mutations(frame, st_data.draw)
    if bad[:1] != frame[:1]:
        return  # the header byte itself is not covered by the checksum
    try:
        out = CHECKED.decode(bad)
    except ValueError:
        return
    assert out == data


@settings(max_examples=200, deadline=None)
@given(frame=st.binary(max_size=300))
@example(frame=b"\x42\x80\x80\x80\x08" + b"\x00" * 20)
def test_arbitrary_bytes_decode_or_raise_value_error(frame: bytes) -> None:
    try:
        out = PLAIN.decode(frame)
    except ValueError:
        return
    assert isinstance(out, bytes)


def test_dictionary_codec_mutations_fail_cleanly() -> None:
    rng = random.Random(5)
    codec = PacketCodec.with_dictionary([json_records(400, seed=i) for i in range(200)])
    for i in range(300):
        frame = bytearray(
            codec.encode(json_records(500, seed=1000 + i), MlCompressionDecision.Aggressive)
        )
        pos = rng.randrange(len(frame))
        frame[pos] ^= rng.randrange(1, 256)
        try:
            out = codec.decode(bytes(frame))
        except ValueError:
            continue
        assert isinstance(out, bytes)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_large_inputs_of_every_type(wrap) -> None:  # type: ignore[no-untyped-def]
    # Inputs above 64 KiB are sampled like any other.
    big = english(MAX_BYTES)
    assert ORACLE.decide(wrap(big)) is MlCompressionDecision.Aggressive
