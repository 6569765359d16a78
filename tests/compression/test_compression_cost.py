from __future__ import annotations

import pytest
from compression_payloads import english, json_records, random_bytes

from oxidize_ml.compression.codec import PacketCodec
from oxidize_ml.compression.cost import (
    DECISION_PREFERENCE,
    CompressionCostModel,
    Outcome,
    best_in_hindsight,
    measure_outcomes,
)
from oxidize_ml.types import MlCompressionDecision as D

CODEC = PacketCodec()


def test_utility_formula() -> None:
    model = CompressionCostModel(link_rate_bps=8e6, encode_cpu_weight=1.0, decode_cpu_weight=0.5)
    # 1000 bytes saved at 8 Mbit/s = 1 ms; minus 10 us encode and 0.5 x 4 us decode.
    u = model.utility(Outcome(out_bytes=400, encode_s=10e-6, decode_s=4e-6), size=1400)
    assert u == pytest.approx(1e-3 - 10e-6 - 2e-6)
    # An expanded frame costs link time.
    assert model.utility(Outcome(1401, 0.0, 0.0), 1400) == pytest.approx(-1e-6)


def test_best_picks_highest_utility_and_breaks_ties_by_least_work() -> None:
    model = CompressionCostModel(link_rate_bps=1e6)
    outcomes = {
        D.Skip: Outcome(1401, 0.1e-6, 0.1e-6),
        D.RohcOnly: Outcome(1401, 0.1e-6, 0.1e-6),
        D.Light: Outcome(1000, 2e-6, 1e-6),
        D.Aggressive: Outcome(700, 9e-6, 4e-6),
    }
    assert model.best(outcomes, 1400) is D.Aggressive
    # On a fast link the CPU time dominates and sending raw wins; Skip and
    # RohcOnly tie (same bytes, same work) and Skip comes first.
    fast = CompressionCostModel(link_rate_bps=100e9)
    assert fast.best(outcomes, 1400) is D.Skip
    assert fast.best({D.RohcOnly: outcomes[D.RohcOnly], D.Light: outcomes[D.Light]}, 1400) is (
        D.RohcOnly
    )
    # Within tolerance, the cheaper decision wins even if measured a hair lower.
    near = {D.Light: Outcome(1000, 2e-6, 1e-6), D.Aggressive: Outcome(1000, 1.95e-6, 1e-6)}
    assert CompressionCostModel(1e6, tie_tolerance_s=1e-7).best(near, 1400) is D.Light
    assert CompressionCostModel(1e6, tie_tolerance_s=0.0).best(near, 1400) is D.Aggressive
    assert DECISION_PREFERENCE[0] is D.Skip and set(DECISION_PREFERENCE) == set(D)


def test_best_rejects_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        CompressionCostModel(1e6).best({}, 10)


def test_measure_outcomes_sizes_match_codec() -> None:
    data = json_records()
    outcomes = measure_outcomes(data, CODEC, repeats=3)
    assert set(outcomes) == set(D)
    for decision, outcome in outcomes.items():
        assert outcome.out_bytes == len(CODEC.encode(data, decision))
        assert outcome.encode_s > 0 and outcome.decode_s > 0
    assert outcomes[D.Aggressive].out_bytes < outcomes[D.Light].out_bytes < len(data)
    assert outcomes[D.Skip].out_bytes == outcomes[D.RohcOnly].out_bytes == len(data) + 1
    only = measure_outcomes(bytearray(data), CODEC, repeats=1, decisions=(D.Light,))
    assert set(only) == {D.Light}


def test_hindsight_without_cpu_cost_is_pure_byte_count() -> None:
    # CPU weights 0: the label depends only on bytes, so it is deterministic.
    bytes_only = CompressionCostModel(1e6, encode_cpu_weight=0.0, decode_cpu_weight=0.0)
    best, utilities = best_in_hindsight(random_bytes(), CODEC, bytes_only, repeats=1)
    assert best is D.Skip  # nothing shrinks; Skip/RohcOnly/Light/Aggressive all tie
    assert list(utilities.values()) == pytest.approx([-8e-6] * 4)
    best, _ = best_in_hindsight(english(), CODEC, bytes_only, repeats=1)
    assert best is D.Aggressive


def test_hindsight_on_slow_link_compresses_text() -> None:
    # 1 Mbit/s: each byte is 8 us of link time, hundreds of bytes saved dwarf
    # any CPU time a compressor can take on 1400 bytes.
    best, utilities = best_in_hindsight(json_records(), CODEC, CompressionCostModel(1e6), repeats=3)
    assert best in (D.Light, D.Aggressive)
    assert utilities[best] > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"link_rate_bps": 0.0}, "link_rate_bps"),
        ({"link_rate_bps": -1.0}, "link_rate_bps"),
        ({"link_rate_bps": float("inf")}, "link_rate_bps"),
        ({"link_rate_bps": 1e6, "encode_cpu_weight": -1.0}, "encode_cpu_weight"),
        ({"link_rate_bps": 1e6, "decode_cpu_weight": float("nan")}, "decode_cpu_weight"),
        ({"link_rate_bps": 1e6, "tie_tolerance_s": -1e-9}, "tie_tolerance_s"),
    ],
)
def test_model_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CompressionCostModel(**kwargs)


def test_repeats_validation() -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure_outcomes(b"abc", CODEC, repeats=0)


def test_measure_stream_replays_header_compression() -> None:
    """RohcOnly is measured on the flow in order; every replay gives the same frames, and
    the sizes are those of one sending codec (IR first, then compressed headers)."""
    from oxidize_ml.compression.cost import measure_stream
    from oxidize_ml.evaluation.corpus import real_time_flows

    packets = [p.data for p in real_time_flows(seed=4, n=60)]
    ticks: list[int] = []
    res = measure_stream(packets, repeats=3, on_packet=lambda: ticks.append(1))
    assert len(res) == len(packets) == len(ticks)
    tx = PacketCodec()
    for pkt, outcomes in zip(packets, res, strict=True):
        assert outcomes[D.RohcOnly].out_bytes == len(tx.encode(pkt, D.RohcOnly))
        assert outcomes[D.RohcOnly].encode_s > 0 and outcomes[D.RohcOnly].decode_s > 0
        assert outcomes[D.Skip].out_bytes == len(pkt) + 1
    # once a flow's context exists, its headers shrink
    assert sum(o[D.RohcOnly].out_bytes for o in res[30:]) < sum(map(len, packets[30:]))
    with pytest.raises(ValueError, match="repeats"):
        measure_stream(packets, repeats=0)
