"""Tests for the per-traffic-type reward and contextual score (oxidize_ml.paths.reward)."""

from __future__ import annotations

import doctest
import itertools

import pytest

import oxidize_ml.paths.reward as reward_module
from oxidize_ml.paths import (
    BONUS_WEIGHTS,
    REWARD_WEIGHTS,
    MlPathSelector,
    RoundRobinPathSelector,
    calculate_path_reward,
    contextual_score,
)
from oxidize_ml.types import PathId, PathMetrics, TrafficContext

RTTS = [0.0, 5_000.0, 20_000.0, 80_000.0, 300_000.0, 1e9]
LOSSES = [0.0, 0.001, 0.01, 0.05, 0.3, 1.0]
TPUTS = [0.0, 1.0, 10.0, 100.0, 1_000.0, 1e6]


def test_weight_tables_cover_every_context_and_sum_to_one():
    for table in (REWARD_WEIGHTS, BONUS_WEIGHTS):
        assert set(table) == set(TrafficContext)
        for row in table.values():
            assert all(w >= 0.0 for w in row)
            assert sum(row) == pytest.approx(1.0)


@pytest.mark.parametrize("ctx", list(TrafficContext))
def test_reward_in_unit_interval_and_monotone(ctx):
    for rtt, loss, tput in itertools.product(RTTS, LOSSES, TPUTS):
        r = calculate_path_reward(ctx, rtt, loss, tput)
        assert 0.0 <= r <= 1.0
    for a, b in itertools.pairwise(RTTS):
        assert calculate_path_reward(ctx, a, 0.01, 20.0) >= calculate_path_reward(
            ctx, b, 0.01, 20.0
        )
    for a, b in itertools.pairwise(LOSSES):
        assert calculate_path_reward(ctx, 20e3, a, 20.0) > calculate_path_reward(ctx, 20e3, b, 20.0)
    for a, b in itertools.pairwise(TPUTS):
        assert calculate_path_reward(ctx, 20e3, 0.01, a) <= calculate_path_reward(
            ctx, 20e3, 0.01, b
        )


def test_gaming_prefers_low_rtt_bulk_prefers_throughput():
    fast_thin = (10_000.0, 0.001, 5.0)  # 10 ms, 5 Mbit/s
    slow_fat = (120_000.0, 0.001, 200.0)  # 120 ms, 200 Mbit/s
    for ctx in (TrafficContext.Gaming, TrafficContext.VoIP):
        assert calculate_path_reward(ctx, *fast_thin) > calculate_path_reward(ctx, *slow_fat)
    for ctx in (TrafficContext.Bulk, TrafficContext.Streaming):
        assert calculate_path_reward(ctx, *slow_fat) > calculate_path_reward(ctx, *fast_thin)


def test_bulk_is_more_loss_tolerant_than_voip():
    def drop(ctx):
        return calculate_path_reward(ctx, 20_000, 0.0, 50.0) - calculate_path_reward(
            ctx, 20_000, 0.05, 50.0
        )

    assert drop(TrafficContext.VoIP) > drop(TrafficContext.Bulk) > 0.0


def test_selector_static_method_is_the_same_function():
    args = (TrafficContext.Web, 30_000.0, 0.02, 40.0)
    expected = calculate_path_reward(*args)
    assert MlPathSelector.calculate_reward(*args) == expected
    assert RoundRobinPathSelector().calculate_reward(*args) == expected
    # plain ints are fine for the context and numbers
    assert calculate_path_reward(4, 30_000, 0.02, 40) == expected


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((TrafficContext.Web, -1.0, 0.0, 1.0), "rtt_us"),
        ((TrafficContext.Web, float("nan"), 0.0, 1.0), "rtt_us"),
        ((TrafficContext.Web, 1.0, 1.5, 1.0), "loss_rate"),
        ((TrafficContext.Web, 1.0, -0.1, 1.0), "loss_rate"),
        ((TrafficContext.Web, 1.0, 0.0, float("inf")), "throughput_mbps"),
        ((TrafficContext.Web, 1.0, 0.0, -3.0), "throughput_mbps"),
        ((7, 1.0, 0.0, 1.0), "context"),
        ((True, 1.0, 0.0, 1.0), "context"),
        (("Gaming", 1.0, 0.0, 1.0), "context"),
    ],
)
def test_reward_rejects_bad_input(args, name):
    with pytest.raises(ValueError, match=name):
        calculate_path_reward(*args)


def test_reward_rejects_non_numbers():
    with pytest.raises(TypeError, match="rtt_us"):
        calculate_path_reward(TrafficContext.Web, "10", 0.0, 1.0)  # type: ignore[arg-type]


def test_contextual_score_follows_the_spec_table():
    low_rtt = PathMetrics(PathId.Primary, rtt_us=10_000, rtt_var_us=1_000, bandwidth_bps=5e6)
    fat = PathMetrics(PathId.Secondary, rtt_us=120_000, rtt_var_us=20_000, bandwidth_bps=5e8)
    for ctx in TrafficContext:
        for m in (low_rtt, fat):
            assert 0.0 <= contextual_score(ctx, m) <= 1.0
    for ctx in (TrafficContext.Gaming, TrafficContext.VoIP):
        assert contextual_score(ctx, low_rtt) > contextual_score(ctx, fat)
    for ctx in (TrafficContext.Streaming, TrafficContext.Bulk):
        assert contextual_score(ctx, fat) > contextual_score(ctx, low_rtt)
    jittery = PathMetrics(PathId.Primary, rtt_us=10_000, rtt_var_us=30_000, bandwidth_bps=5e6)
    assert contextual_score(TrafficContext.VoIP, jittery) < contextual_score(
        TrafficContext.VoIP, low_rtt
    )
    with pytest.raises(TypeError, match="metrics"):
        contextual_score(TrafficContext.Web, {"rtt_us": 1})  # type: ignore[arg-type]


def test_docstring_examples():
    result = doctest.testmod(reward_module)
    assert result.attempted > 0
    assert result.failed == 0
