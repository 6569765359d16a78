"""RateBucketOracle: the learned oracle follows the link rate through per-bucket tables."""

from __future__ import annotations

import math
import threading

import pytest
from compression_payloads import english
from test_compression_learned import hand_model, random_model

from oxidize_ml.compression.adaptive import RATE_BUCKETS_BPS, RateBucketOracle, rate_bucket
from oxidize_ml.compression.learned import LearnedCompressionOracle
from oxidize_ml.policy import Policy
from oxidize_ml.types import MlCompressionDecision as D

# Light saves 30 % for 2 x 2 us of CPU, Aggressive 50 % for 2 x 10 us: Aggressive
# wins on slow links, Light in the middle, Skip on fast ones.
SAVED = {D.Skip: -0.001, D.RohcOnly: -0.001, D.Light: 0.30, D.Aggressive: 0.50}
LOG_US = {
    D.Skip: math.log(0.1),
    D.RohcOnly: math.log(0.1),
    D.Light: math.log(2.0),
    D.Aggressive: math.log(10.0),
}


def _oracle() -> RateBucketOracle:
    return RateBucketOracle(
        LearnedCompressionOracle(hand_model(SAVED, LOG_US), link_rate_bps=100e6)
    )


def test_buckets_are_a_log_series_and_nearest_is_chosen() -> None:
    assert RATE_BUCKETS_BPS[0] == 1e6 and RATE_BUCKETS_BPS[-1] == 10e9
    assert [rate_bucket(r) for r in RATE_BUCKETS_BPS] == list(range(len(RATE_BUCKETS_BPS)))
    assert RATE_BUCKETS_BPS[rate_bucket(6e6)] == 5e6
    assert RATE_BUCKETS_BPS[rate_bucket(8e6)] == 10e6
    assert rate_bucket(1.0) == 0 and rate_bucket(1e12) == len(RATE_BUCKETS_BPS) - 1


def test_decisions_follow_the_rate() -> None:
    oracle = _oracle()
    pkt = english(1400)
    seen = {}
    for rate in (1e6, 5e6, 100e6, 10e9):
        oracle.set_link_rate_bps(rate)
        assert oracle.link_rate_bps == RATE_BUCKETS_BPS[rate_bucket(rate)]
        seen[rate] = oracle.decide(pkt)
        # the table is the plain oracle's at that rate
        assert seen[rate] is oracle.with_link_rate(oracle.link_rate_bps).decide(pkt)
    assert seen[1e6] is D.Aggressive and seen[10e9] is D.Skip
    assert oracle.predict_one(pkt) is oracle.decide(pkt)
    assert isinstance(oracle, Policy)


def test_forks_share_tables_but_not_the_rate() -> None:
    a = _oracle()
    a.set_link_rate_bps(5e6)
    b = a.fork()
    assert b.link_rate_bps == 5e6
    b.set_link_rate_bps(10e9)
    assert a.link_rate_bps == 5e6 and b.link_rate_bps == 10e9
    a.set_link_rate_bps(10e9)
    assert a.active is b.active  # one table per bucket per process


def test_same_bucket_keeps_the_table() -> None:
    oracle = _oracle()
    oracle.set_link_rate_bps(20e6)
    table = oracle.active
    oracle.set_link_rate_bps(22e6)
    assert oracle.active is table


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_rates_raise_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="link_rate_bps"):
        _oracle().set_link_rate_bps(bad)


def test_type_checks() -> None:
    with pytest.raises(TypeError, match="base"):
        RateBucketOracle(random_model(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _oracle().set_link_rate_bps("fast")  # type: ignore[arg-type]


def test_concurrent_rate_changes_and_decisions() -> None:
    oracle = _oracle()
    pkt = english(1400)
    allowed = {D.Skip, D.Light, D.Aggressive}
    bad: list[object] = []

    def decide() -> None:
        for _ in range(5_000):
            d = oracle.decide(pkt)
            if d not in allowed:
                bad.append(d)

    def switch() -> None:
        for i in range(300):
            oracle.set_link_rate_bps(RATE_BUCKETS_BPS[i % len(RATE_BUCKETS_BPS)])

    threads = [threading.Thread(target=decide) for _ in range(3)] + [
        threading.Thread(target=switch)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_follow_never_builds_on_the_caller_and_switches_once_built() -> None:
    # The packet path's form: a bucket without a table keeps the current one
    # while a background thread builds it; the next call switches.
    oracle = _oracle()
    before = oracle.active
    target = RATE_BUCKETS_BPS[rate_bucket(3e6)]
    oracle.follow_link_rate_bps(3e6)
    if oracle.link_rate_bps != target:  # not built yet by another test in this process
        assert oracle.active is before
        oracle.wait_for_tables(30.0)
        oracle.follow_link_rate_bps(3e6)
    assert oracle.link_rate_bps == target
    assert oracle.decide(english(1400)) is oracle.with_link_rate(target).decide(english(1400))
    with pytest.raises(ValueError, match="link_rate_bps"):
        oracle.follow_link_rate_bps(float("nan"))


def test_tables_are_shared_across_oracles_of_the_same_weights() -> None:
    # A second engine loading the same model file must not tabulate it again.
    model = hand_model(SAVED, LOG_US)
    a = LearnedCompressionOracle(model, link_rate_bps=7e6)
    b = LearnedCompressionOracle(hand_model(SAVED, LOG_US), link_rate_bps=7e6)
    assert b.decide is a.decide
    c = LearnedCompressionOracle(model, link_rate_bps=8e6)
    assert c.decide is not a.decide  # another rate is another table


def test_follow_fast_path_agrees_with_the_bucket_edges() -> None:
    # `follow_link_rate_bps` answers rates inside the current bucket with two compares;
    # on and around every edge it must pick the bucket `rate_bucket` picks.
    from oxidize_ml.compression.adaptive import _EDGES

    oracle = _oracle()
    for edge in _EDGES:
        for rate in (math.nextafter(edge, 0.0), edge, math.nextafter(edge, math.inf)):
            oracle.set_link_rate_bps(rate)
            assert oracle._bucket == rate_bucket(rate)
            for probe in (rate * 0.999, rate, rate * 1.001):
                oracle.follow_link_rate_bps(probe)
                oracle.wait_for_tables()
                oracle.follow_link_rate_bps(probe)
                assert oracle._bucket == rate_bucket(probe), (edge, probe)
    for bad in (math.nan, math.inf, -1.0, 0.0):
        with pytest.raises(ValueError, match="link_rate_bps"):
            oracle.follow_link_rate_bps(bad)
    with pytest.raises(TypeError, match="link_rate_bps"):
        oracle.follow_link_rate_bps("5e6")  # type: ignore[arg-type]
