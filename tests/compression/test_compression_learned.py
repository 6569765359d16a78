"""LearnedCompressionOracle: the table equals the MLP, the rate enters as the cost model says."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from compression_payloads import (
    compressed_outputs,
    english,
    json_records,
    png_file,
    quic_initial,
    random_bytes,
    rtp_packet,
    tls_application_data,
    udp_ipv4_rtp,
    udp_ipv6,
)

from oxidize_ml.compression.features import HeaderKind, MagicKind, magic_kind
from oxidize_ml.compression.learned import (
    DECISIONS,
    HEADER_MAX_BYTES,
    INPUT_NAMES,
    N_INPUTS,
    N_OUTPUTS,
    TIE_TOLERANCE_S,
    LearnedCompressionOracle,
    check_model,
    choose,
    input_vector,
    quantize,
    representative_size,
)
from oxidize_ml.policy import Policy
from oxidize_ml.runtime.configs import CompressionMlpConfig, DqnMlpConfig, expected_tensors
from oxidize_ml.runtime.numpy_models import MlpModel
from oxidize_ml.types import MlCompressionDecision as D

CFG = CompressionMlpConfig(n_inputs=N_INPUTS, n_outputs=N_OUTPUTS, hidden=16)


def random_model(seed: int, scale: float = 1.0) -> MlpModel:
    rng = np.random.default_rng(seed)
    tensors = {
        k: (rng.standard_normal(s) * scale).astype(np.float32)
        for k, s in expected_tensors(CFG).items()
    }
    return MlpModel.from_tensors(tensors, CFG)


def hand_model(saved: dict[D, float], log_us: dict[D, float]) -> MlpModel:
    """Outputs independent of the input: fixed saved fractions and log-times."""
    tensors = {k: np.zeros(s, dtype=np.float32) for k, s in expected_tensors(CFG).items()}
    b = tensors["layers.1.bias"]
    for j, d in enumerate(DECISIONS):
        b[j] = saved[d]
        b[4 + j] = log_us[d]  # encode
        b[8 + j] = log_us[d]  # decode
    return MlpModel.from_tensors(tensors, CFG)


def magic_model() -> MlpModel:
    """A decision per magic kind: NONE -> Light, COMPRESSED -> Skip, MEDIA -> Aggressive,
    ENCRYPTED -> RohcOnly (the winner saves half the packet, the others nothing)."""
    cfg = CompressionMlpConfig(n_inputs=N_INPUTS, n_outputs=N_OUTPUTS, hidden=4)
    t = {k: np.zeros(s, dtype=np.float32) for k, s in expected_tensors(cfg).items()}
    col = {name: i for i, name in enumerate(INPUT_NAMES)}
    w0, b0 = t["layers.0.weight"], t["layers.0.bias"]
    b0[0] = 1.0  # h0 = relu(1 - any magic): the NONE indicator
    for h, name in ((1, "compressed_magic"), (2, "media_magic"), (3, "encrypted_record")):
        w0[0, col[name]] = -1.0
        w0[h, col[name]] = 1.0
    winner = {0: D.Light, 1: D.Skip, 2: D.Aggressive, 3: D.RohcOnly}
    w1 = t["layers.1.weight"]
    for h, d in winner.items():
        w1[DECISIONS.index(d), h] = 0.5
    return MlpModel.from_tensors(t, cfg)


def corpus_like_packets(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = [english(n) for n in (1, 31, 64, 200, 700, 1400, 3000)]
    out += [json_records(n, seed) for n in (100, 500, 1400)]
    out += [random_bytes(n, seed) for n in (20, 128, 129, 900, 1400, 70_000)]
    out += [tls_application_data(300), tls_application_data(1400), quic_initial(1200)]
    out += [
        rtp_packet(random_bytes(160, seed)),
        rtp_packet(bytes(60)),
        udp_ipv4_rtp(random_bytes(120, seed)),
        udp_ipv6(bytes(100)),
        png_file(),
        *compressed_outputs().values(),
    ]
    out += [bytes(rng.randrange(4) for _ in range(rng.randrange(1, 2000))) for _ in range(40)]
    out += [rng.randbytes(rng.randrange(1, 300)) for _ in range(60)]
    return out


def test_is_a_policy() -> None:
    oracle = LearnedCompressionOracle(random_model(0), link_rate_bps=20e6)
    assert isinstance(oracle, Policy)
    assert oracle.name == "mlp" and oracle.is_learned is True
    p = english(800)
    assert oracle.predict_one(p, now=3.0) == oracle.decide(p)
    assert oracle.learn_one(p, 1.0, now=3.0) is None
    assert oracle.table_build_s > 0


@pytest.mark.parametrize("seed", range(4))
def test_table_equals_the_mlp(seed: int) -> None:
    """decide (table) == decide_exact (MLP on the quantised inputs), except exact near-ties."""
    oracle = LearnedCompressionOracle(random_model(seed, 0.7), link_rate_bps=10 ** (6 + seed))
    packets = corpus_like_packets(seed)
    assert len({oracle.decide(p) for p in packets}) >= 2  # the model is not constant here
    for p in packets:
        fast, exact = oracle.decide(p), oracle.decide_exact(p)
        if fast != exact:
            q = quantize(p)
            util = oracle.predicted_utilities(p)
            # Only float rounding of the batched first layer may flip a decision.
            n = representative_size(q.size_bucket)
            scale = max(abs(u) for u in util.values()) * max(n, 1) / max(len(p), 1)
            gap = abs(util[fast] - util[exact])
            assert gap <= 1e-5 * scale + TIE_TOLERANCE_S, (len(p), fast, exact, util)
        # Other buffer types give the same decision.
        assert oracle.decide(bytearray(p)) == fast
        assert oracle.decide(memoryview(p)) == fast


def test_inline_magic_detection_matches_features() -> None:
    oracle = LearnedCompressionOracle(magic_model(), link_rate_bps=1e6)
    # The model wants RohcOnly for encrypted records, but those are not IP/UDP
    # packets: the table never gives header compression to them (Skip wins the tie).
    expected = {
        MagicKind.NONE: D.Light,
        MagicKind.COMPRESSED: D.Skip,
        MagicKind.MEDIA: D.Aggressive,
        MagicKind.ENCRYPTED: D.Skip,
    }
    packets = [
        english(900),
        png_file(),
        tls_application_data(500),
        quic_initial(1200),
        *compressed_outputs().values(),
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(300),
        b"\x00\x00\x00\x18ftypmp42" + bytes(300),
        b"\xff" + bytes(600),
    ]
    kinds = set()
    for p in packets:
        kind = magic_kind(p[:16])[0]
        kinds.add(kind)
        assert quantize(p).magic is kind
        assert oracle.decide(p) == expected[kind], (p[:16], kind)
        assert oracle.decide_exact(p) == expected[kind], (p[:16], kind)
    assert kinds == set(MagicKind)
    # An IP/UDP packet with the same magic at its start would be an IP packet, not a
    # record: RohcOnly is only reachable through the UDP/RTP header slabs.
    assert oracle.decide(udp_ipv4_rtp(bytes(100))) is D.Light


def test_input_vector_layout() -> None:
    q = quantize(udp_ipv4_rtp(bytes(120)))
    assert q.header is HeaderKind.RTP and q.magic is MagicKind.NONE
    x = q.to_vector()
    assert x.dtype == np.float32 and x.shape == (N_INPUTS,)
    assert x[INPUT_NAMES.index("rtp_header")] == 1.0
    assert x[2:].sum() == 1.0  # one flag set
    assert 0.0 < x[0] < 1.0 and 0.0 <= x[1] <= 1.0
    big = quantize(bytes([0x45, 0, 0x06, 0x40]) + bytes(1596))  # IPv4 length 1600, 1600 bytes
    assert big.size_bytes > HEADER_MAX_BYTES and big.header is HeaderKind.NONE
    mtu = quantize(bytes([0x45, 0, 0x05, 0x78]) + bytes(1396))  # IPv4 (protocol 0), 1400 bytes
    assert mtu.header is HeaderKind.IPV4
    assert quantize(random_bytes(1400, 1)).entropy_level >= 60
    assert quantize(b"a" * 1000).entropy_level == 0
    assert np.array_equal(input_vector(b"abc" * 50), quantize(b"abc" * 50).to_vector())


def test_link_rate_enters_as_the_cost_model_says() -> None:
    # Light saves 30 % for 2 x 2 us of CPU, Aggressive 50 % for 2 x 10 us.
    saved = {D.Skip: -0.001, D.RohcOnly: -0.001, D.Light: 0.30, D.Aggressive: 0.50}
    log_us = {
        D.Skip: math.log(0.1),
        D.RohcOnly: math.log(0.1),
        D.Light: math.log(2.0),
        D.Aggressive: math.log(10.0),
    }
    model = hand_model(saved, log_us)
    pkt = english(1400)
    n = representative_size(quantize(pkt).size_bucket)
    slow = LearnedCompressionOracle(model, link_rate_bps=5e6)
    fast = slow.with_link_rate(100e9)
    assert slow.decide(pkt) == D.Aggressive
    assert fast.decide(pkt) == D.Skip  # RohcOnly ties with Skip: least work wins
    # The Light/Aggressive crossover: 0.2 n 8 / r = 16 us -> r = 0.1 n bits per us.
    r_cross = 0.2 * n * 8 / 16e-6
    assert slow.with_link_rate(r_cross * 0.8).decide(pkt) == D.Aggressive
    assert slow.with_link_rate(r_cross * 1.25).decide(pkt) == D.Light
    util = slow.predicted_utilities(pkt)
    assert util[D.Aggressive] == pytest.approx(0.5 * 1400 * 8 / 5e6 - 20e-6, rel=1e-4)
    assert slow.decide(b"") == D.Skip


def test_cpu_weights_change_the_choice() -> None:
    saved = {D.Skip: 0.0, D.RohcOnly: 0.0, D.Light: 0.10, D.Aggressive: 0.10}
    log_us = {D.Skip: -5.0, D.RohcOnly: -5.0, D.Light: math.log(5.0), D.Aggressive: math.log(5.0)}
    model = hand_model(saved, log_us)
    pkt = english(1400)
    # 0.1 x 1400 B at 100 Mbit/s saves ~11 us, against 10 us of CPU: compress...
    assert LearnedCompressionOracle(model, link_rate_bps=100e6).decide(pkt) == D.Light
    # ...unless CPU time counts double.
    heavy = LearnedCompressionOracle(
        model, link_rate_bps=100e6, encode_cpu_weight=2.0, decode_cpu_weight=2.0
    )
    assert heavy.decide(pkt) == D.Skip


def test_choose_tie_break_least_work_first() -> None:
    u = np.array(
        [
            [1.0, 1.0, 1.0, 1.0],
            [0.0, 2.0, 2.0 + 1e-9, 0.0],
            [0.0, 1.0, 3.0, 0.0],
            [0.5, 0.0, 0.0, 0.5],
        ]
    )
    got = [DECISIONS[i] for i in choose(u, 1e-6)]
    assert got == [D.Skip, D.Light, D.Aggressive, D.Skip]


def test_rejects_wrong_models() -> None:
    rng = np.random.default_rng(0)
    dqn_cfg = DqnMlpConfig()
    dqn = MlpModel.from_tensors(
        {
            k: rng.standard_normal(s).astype(np.float32)
            for k, s in expected_tensors(dqn_cfg).items()
        },
        dqn_cfg,
    )
    with pytest.raises(TypeError, match="compression_mlp"):
        LearnedCompressionOracle(dqn, link_rate_bps=1e6)
    other = CompressionMlpConfig(n_inputs=13, n_outputs=4)
    m = MlpModel.from_tensors(
        {k: rng.standard_normal(s).astype(np.float32) for k, s in expected_tensors(other).items()},
        other,
    )
    with pytest.raises(ValueError, match="9 / 12"):
        check_model(m)
    with pytest.raises(ValueError, match="link_rate_bps"):
        LearnedCompressionOracle(random_model(0), link_rate_bps=0.0)
    with pytest.raises(TypeError):
        LearnedCompressionOracle(random_model(0), link_rate_bps=1e6).decide("text")  # type: ignore[arg-type]


def test_decisions_do_not_depend_on_call_order() -> None:
    oracle = LearnedCompressionOracle(random_model(3), link_rate_bps=50e6)
    packets = corpus_like_packets(1)
    first = [oracle.decide(p) for p in packets]
    assert [oracle.decide(p) for p in reversed(packets)] == first[::-1]


def test_size_bucket_table_matches_the_formula() -> None:
    from oxidize_ml.compression.learned import _SIZE_BUCKET_TABLE, _size_bucket

    assert all(_SIZE_BUCKET_TABLE[n] == _size_bucket(n) for n in range(len(_SIZE_BUCKET_TABLE)))
    assert quantize(bytes(100_000)).size_bucket == 63


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encrypted_records_are_never_compressed(seed: int) -> None:
    # Whatever a model predicts, ciphertext (TLS/DTLS records, QUIC long headers) is
    # sent as is: its slabs are constant Skip, answered before any sampling.
    for rate in (1e6, 5e6, 100e6):
        oracle = LearnedCompressionOracle(random_model(seed, 0.7), link_rate_bps=rate)
        for pkt in (tls_application_data(300), tls_application_data(1395), quic_initial(1200)):
            assert oracle.decide(pkt) is D.Skip
            assert oracle.decide_exact(pkt) is D.Skip


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("rate", [1e6, 5e6, 100e6, 1e9])
def test_fast_path_reads_the_byte_table(seed: int, rate: float) -> None:
    """decide (closure over constant slabs, magic shortcuts, header parsing only where it
    matters) gives exactly the decision the byte table holds for the packet's cell."""
    from oxidize_ml.compression.learned import DECISIONS

    oracle = LearnedCompressionOracle(random_model(seed, 0.7), link_rate_bps=rate)
    rng = random.Random(seed)
    assert oracle.decide(b"") is D.Skip  # by rule, whatever the table says
    packets = [b"x", bytes(70_000), b"ab" * 40_000]
    for n in (20, 60, 100, 129, 200, 256, 700, 1400, 1500, 1501, 3000):
        packets += [
            random_bytes(n, seed=rng.randrange(1000)),
            english(n),
            bytes(n),
            udp_ipv4_rtp(random_bytes(max(n - 40, 0), seed=n)),
            udp_ipv6(english(max(n - 48, 1))),
            tls_application_data(n),
            b"GIF89a" + english(n),
            b"\x1f\x8b\x08" + bytes(n),
            b"\x00\x00\x00\x18ftyp" + bytes(n),
            b"RIFF\x00\x00\x00\x00WEBP" + english(n),
            quic_initial(max(n, 64)),
        ]
    for p in packets:
        expected = DECISIONS[oracle._table[quantize(p).cell]]
        assert oracle.decide(p) is expected, (len(p), p[:8])
        assert oracle.decide(memoryview(p)) is expected
