"""Tests of the burst-aware FEC policy (oxidize_ml.loss.fec.BurstFecPolicy)."""

from __future__ import annotations

import numpy as np
import pytest

from oxidize_ml.loss.burst import BurstLossConfig
from oxidize_ml.loss.fec import BurstFecConfig, BurstFecPolicy, residual_loss

SEV = (0.05, 0.1, 0.15, 0.3)


def brute_force_r(q: float, cfg: BurstFecConfig, r_max: int) -> tuple[int, float]:
    """argmax_r q G(r) - price r by enumeration (and the best value)."""
    k = cfg.k_data_packets
    vals = []
    for r in range(r_max + 1):
        g = np.mean([residual_loss(s, 0, k) - residual_loss(s, r, k) for s in cfg.severity])
        vals.append(q * g - cfg.repair_price * r)
    best = int(np.argmax(vals))
    return best, float(vals[best])


@pytest.mark.parametrize("price", [1e-4, 1e-3, 5e-3, 2e-2])
def test_table_is_the_argmax(price):
    cfg = BurstFecConfig(SEV, price)
    pol = BurstFecPolicy(cfg)
    k = cfg.k_data_packets
    for q in np.linspace(0.0, 1.0, 401):
        r = pol.repair_for_block_probability(float(q))
        _, best = brute_force_r(float(q), cfg, pol.r_max)
        g = np.mean([residual_loss(s, 0, k) - residual_loss(s, r, k) for s in SEV])
        # ties at a threshold may pick either side; the value must be the optimum
        assert q * g - price * r == pytest.approx(best, abs=1e-12)


def test_monotone_and_capped_and_skips_useless_small_r():
    # Heavy bursts (30 % of a block): one repair packet saves almost nothing,
    # so the policy goes from 0 straight to a block that survives the burst.
    cfg = BurstFecConfig((0.3,), 1e-3)
    pol = BurstFecPolicy(cfg)
    rs = [pol.repair_for_block_probability(float(q)) for q in np.linspace(0, 1, 1001)]
    assert rs == sorted(rs)
    assert rs[0] == 0 and max(rs) <= pol.r_max
    assert 1 not in rs
    assert all(a < b for a, b in zip(pol.gains, pol.gains[1:], strict=False))
    d = pol.decide(1.0)
    assert d.inject_fec and d.redundancy_ratio <= cfg.max_redundancy_ratio + 1e-12


def test_decide_reads_q_from_p_and_memoises():
    cfg = BurstFecConfig(SEV, 1e-3)
    pol = BurstFecPolicy(cfg)
    m = cfg.mean_severity
    for q in (0.0, 0.05, 0.2, 0.5, 1.0):
        p = q * m
        r = pol.repair_for_block_probability(q)
        assert pol.repair_packets(p) == r
        d = pol.decide(p)
        assert d.loss_probability == p
        assert d.redundancy_ratio == pytest.approx(r / (10 + r))
        assert d.inject_fec == (r > 0)
        assert pol.decide(p) is d
    # p above the mean severity saturates at q = 1
    assert pol.repair_packets(1.0) == pol.repair_for_block_probability(1.0)


def test_decide_block_uses_the_scaled_severity():
    from oxidize_ml.loss.fec import SEVERITY_SCALE_GRID

    cfg = BurstFecConfig(SEV, 1e-3)
    pol = BurstFecPolicy(cfg)
    for scale in (0.125, 0.5, 2.0**0.25, 4.0, 8.0):
        scaled = BurstFecPolicy(BurstFecConfig(tuple(min(1.0, s * scale) for s in SEV), 1e-3))
        for q in np.linspace(0.0, 1.0, 101):
            assert pol.repair_for_block_probability(float(q), scale) == (
                scaled.repair_for_block_probability(float(q))
            )
        d = pol.decide_block(0.5, scale)
        assert d.loss_probability == pytest.approx(min(1.0, 0.5 * cfg.mean_severity * scale))
        r = scaled.repair_for_block_probability(0.5)
        assert d.redundancy_ratio == pytest.approx(r / (10 + r))
    # off-grid scales snap to the nearest grid point in log scale; out of range clamps
    assert pol.repair_for_block_probability(0.3, 1.09) == pol.repair_for_block_probability(0.3)
    assert pol.repair_for_block_probability(0.3, 100.0) == pol.repair_for_block_probability(
        0.3, SEVERITY_SCALE_GRID[-1]
    )
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="severity_scale"):
            pol.repair_for_block_probability(0.3, bad)


def test_higher_price_spends_less():
    q = np.linspace(0, 1, 201)
    totals = []
    for price in (1e-4, 1e-3, 1e-2):
        pol = BurstFecPolicy(BurstFecConfig(SEV, price))
        totals.append(sum(pol.repair_for_block_probability(float(x)) for x in q))
    assert totals[0] >= totals[1] >= totals[2]


def test_shipped_severity_builds_a_policy():
    from oxidize_ml.loss.burst_weights import REPAIR_PRICE

    pol = BurstFecPolicy(BurstFecConfig(BurstLossConfig.default().severity, REPAIR_PRICE))
    assert pol.table()[0] == (0.0, 0)
    assert pol.repair_for_block_probability(1.0) > 0


def test_invalid_inputs_raise_naming_the_field():
    with pytest.raises(ValueError, match="repair_price"):
        BurstFecConfig(SEV, 0.0)
    with pytest.raises(ValueError, match=r"severity\[1\]"):
        BurstFecConfig((0.1, 1.5), 1e-3)
    with pytest.raises(ValueError, match="severity"):
        BurstFecConfig((), 1e-3)
    with pytest.raises(ValueError, match="max_redundancy_ratio"):
        BurstFecConfig(SEV, 1e-3, max_redundancy_ratio=0.01)
    with pytest.raises(TypeError, match="k_data_packets"):
        BurstFecConfig(SEV, 1e-3, k_data_packets=10.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        BurstFecPolicy(SEV)  # type: ignore[arg-type]
    pol = BurstFecPolicy(BurstFecConfig(SEV, 1e-3))
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="p must"):
            pol.decide(bad)
        with pytest.raises(ValueError, match="q must"):
            pol.repair_for_block_probability(bad)
