"""Tests for the FEC policy and the binomial helpers (oxidize_ml.loss.fec)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

import oxidize_ml.loss.block_code as block_code_module
import oxidize_ml.loss.fec as fec_module
from oxidize_ml.loss import (
    MAX_BLOCK_PACKETS,
    FecConfig,
    FecPolicy,
    block_failure_probability,
    residual_loss,
)
from oxidize_ml.types import FecDecision

P_GRID = np.linspace(0.0, 1.0, 4001)


def brute_force(p: float, r: int, k: int) -> tuple[float, float]:
    """(block failure probability, residual data-loss share) by enumerating
    every loss pattern of a systematic block: data in positions 0..k-1."""
    n = k + r
    fail = 0.0
    lost_data = 0.0
    for pattern in itertools.product((0, 1), repeat=n):
        n_lost = sum(pattern)
        prob = p**n_lost * (1.0 - p) ** (n - n_lost)
        if n_lost > r:
            fail += prob
            lost_data += prob * sum(pattern[:k])
    return fail, lost_data / k


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("r", [0, 1, 2, 3])
@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.37, 0.9, 1.0])
def test_binomial_formulas_match_brute_force(k, r, p):
    fail, resid = brute_force(p, r, k)
    assert block_failure_probability(p, r, k) == pytest.approx(fail, rel=1e-12, abs=1e-15)
    assert residual_loss(p, r, k) == pytest.approx(resid, rel=1e-12, abs=1e-15)


def test_residual_without_repair_is_p_and_below_failure():
    for p in (0.0, 0.003, 0.05, 0.5, 1.0):
        assert residual_loss(p, 0, 10) == pytest.approx(p, abs=1e-15)
        for r in (1, 4, 10):
            assert residual_loss(p, r, 10) <= block_failure_probability(p, r, 10) + 1e-15
    # More repair never hurts at fixed p.
    vals = [residual_loss(0.1, r, 10) for r in range(12)]
    assert vals == sorted(vals, reverse=True)


def test_small_probabilities_keep_precision():
    # Tail summed directly: 1 - head would round this to 0.
    f = block_failure_probability(1e-6, 3, 10)
    assert f == pytest.approx(math.comb(13, 4) * 1e-24, rel=1e-4)
    assert f > 0.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"p_true_per_packet_loss": 1.2, "r": 1, "k": 10}, "p"),
        ({"p_true_per_packet_loss": float("nan"), "r": 1, "k": 10}, "p"),
        ({"p_true_per_packet_loss": 0.1, "r": -1, "k": 10}, "r"),
        ({"p_true_per_packet_loss": 0.1, "r": 1, "k": 0}, "k"),
        ({"p_true_per_packet_loss": 0.1, "r": 1, "k": MAX_BLOCK_PACKETS}, "k \\+ r"),
    ],
)
def test_residual_loss_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        residual_loss(**kwargs)
    with pytest.raises(TypeError, match="r"):
        residual_loss(0.1, 1.0, 10)  # type: ignore[arg-type]


def test_no_fec_at_zero_and_below_floor():
    fec = FecPolicy()
    for p in (0.0, 0.001, 0.0049):
        d = fec.decide(p)
        assert d == FecDecision(p, 0.0, False)
    assert fec.decide(0.005).inject_fec


def test_more_loss_more_redundancy_and_ratio_bounds():
    for cfg in (FecConfig(), FecConfig(k_data_packets=4, max_redundancy_ratio=0.6)):
        fec = FecPolicy(cfg)
        ratios = [fec.decide(float(p)).redundancy_ratio for p in P_GRID]
        assert ratios == sorted(ratios)
        assert min(ratios) == 0.0
        assert max(ratios) == pytest.approx(fec.r_max / (cfg.k_data_packets + fec.r_max))
        assert max(ratios) <= cfg.max_redundancy_ratio
        for p in P_GRID:
            d = fec.decide(float(p))
            r = fec.repair_packets(float(p))
            assert d.redundancy_ratio == pytest.approx(r / (cfg.k_data_packets + r) if r else 0.0)
            assert d.inject_fec == (r > 0)
            assert d.loss_probability == p


def test_chosen_r_is_smallest_meeting_target():
    cfg = FecConfig()
    fec = FecPolicy(cfg)
    k = cfg.k_data_packets
    checked = 0
    for p in P_GRID:
        p = float(p)
        r = fec.repair_packets(p)
        if p < cfg.min_loss_to_protect:
            assert r == 0
            continue
        if p <= fec.max_protected_loss:
            assert block_failure_probability(p, r, k) <= cfg.target_residual
            assert residual_loss(p, r, k) <= cfg.target_residual
            if r > 0:
                assert block_failure_probability(p, r - 1, k) > cfg.target_residual
            checked += 1
        else:
            # Target unreachable within the cap: the cap holds.
            assert r == fec.r_max
            assert block_failure_probability(p, r, k) > cfg.target_residual
    assert checked > 100


def test_cap_follows_config():
    assert FecPolicy(FecConfig(k_data_packets=10, max_redundancy_ratio=0.5)).r_max == 10
    assert FecPolicy(FecConfig(k_data_packets=10, max_redundancy_ratio=0.2)).r_max == 2
    assert FecPolicy(FecConfig(k_data_packets=8, max_redundancy_ratio=0.2)).r_max == 2
    assert FecPolicy(FecConfig(k_data_packets=3, max_redundancy_ratio=0.25)).r_max == 1


def test_table_rows_agree_with_decide():
    fec = FecPolicy()
    rows = fec.table()
    assert rows[0] == (0.0, 0, 0.0)
    thresholds = [row.p_threshold for row in rows]
    assert thresholds == sorted(thresholds)
    assert [row.r for row in rows] == sorted({row.r for row in rows})
    assert rows[-1].r == fec.r_max
    for row, nxt in zip(rows, [*rows[1:], None], strict=True):
        inside = row.p_threshold * (1 + 1e-9) + 1e-15
        assert fec.repair_packets(inside) == row.r
        if nxt is not None:
            assert fec.repair_packets(nxt.p_threshold * (1 - 1e-9)) == row.r
        p, r, ratio = row  # plain (p_threshold, r, ratio) tuples
        assert p == row.p_threshold
        assert ratio == pytest.approx(r / (10 + r))
    text = fec.format_table()
    assert "| repair r |" in text
    assert str(fec.r_max) in text


def test_decide_repeats_and_alternates_consistently():
    fec = FecPolicy()
    a, b = fec.decide(0.05), fec.decide(0.01)
    assert fec.decide(0.05) == a
    assert fec.decide(0.01) == b
    assert fec.decide(0.0) == FecDecision(0.0, 0.0, False)
    assert a.redundancy_ratio > b.redundancy_ratio


@pytest.mark.parametrize("p", [-0.01, 1.01, float("nan"), float("inf")])
def test_decide_rejects_bad_probability(p):
    fec = FecPolicy()
    with pytest.raises(ValueError, match="p must be"):
        fec.decide(p)
    with pytest.raises(ValueError, match="p must be"):
        fec.repair_packets(p)


def test_deterministic_construction():
    assert FecPolicy().table() == FecPolicy().table()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("k_data_packets", 0),
        ("k_data_packets", MAX_BLOCK_PACKETS),
        ("target_residual", 0.0),
        ("target_residual", 1.0),
        ("max_redundancy_ratio", 0.0),
        ("max_redundancy_ratio", 1.0),
        ("max_redundancy_ratio", 0.05),  # < 1 / (k + 1): no repair packet possible
        ("min_loss_to_protect", -0.1),
        ("min_loss_to_protect", 1.0),
    ],
)
def test_bad_config_raises_naming_field(field, value):
    with pytest.raises(ValueError, match=field):
        FecConfig(**{field: value})


def test_config_types_checked():
    with pytest.raises(TypeError, match="k_data_packets"):
        FecConfig(k_data_packets=10.0)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        FecConfig().k_data_packets = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="config"):
        FecPolicy(None)  # type: ignore[arg-type]


def test_docstring_examples(run_doctests):
    for module in (fec_module, block_code_module):
        result = run_doctests(module)
        assert result.attempted > 0, module.__name__
        assert result.failed == 0, module.__name__
