"""Mahimahi loading, opportunity schedules and the synthetic cellular generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.sim.traces import (
    BITS_PER_OPPORTUNITY,
    CellularConfig,
    OpportunitySchedule,
    count_at_or_before,
    first_index_at_or_after,
    load_mahimahi,
    synthetic_cellular_rates,
)

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"
needs_traces = pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces missing")


def write(tmp_path: Path, text: str, name: str = "t.down") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_mahimahi_reads_repeated_timestamps(tmp_path: Path) -> None:
    ms = load_mahimahi(write(tmp_path, "0\n0\n5\n\n10\n"))
    assert ms.dtype == np.int64
    assert ms.tolist() == [0, 0, 5, 10]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("3\n2\n", "non-decreasing"),
        ("1\nabc\n", "line 2"),
        ("1\n-4\n", "non-negative integer"),
        ("0\n0\n", "lasts 0 ms"),
    ],
)
def test_load_mahimahi_rejects_bad_files(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_mahimahi(write(tmp_path, text))


def test_load_mahimahi_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_mahimahi(tmp_path / "nope.down")


def test_constant_file_is_12_mbit() -> None:
    s = OpportunitySchedule.from_mahimahi_ms([1])
    assert s.mean_rate_bps == pytest.approx(12e6)
    # opportunities at 1, 2, 3 ms ... (Mahimahi: the trace repeats shifted by its length)
    assert s.opportunity_times(0.0, 0.0035) == pytest.approx([0.001, 0.002, 0.003])


def test_mahimahi_wrap_matches_mahimahi_semantics() -> None:
    s = OpportunitySchedule.from_mahimahi_ms([0, 0, 5, 10])
    t = s.opportunity_times(-1.0, 0.0201)
    # cycle 0: 0,0,5,10 ms; cycle 1: 10,10,15,20 ms; cycle 2 starts at 20 ms
    assert (np.round(t * 1000).astype(int)).tolist() == [0, 0, 5, 10, 10, 10, 15, 20, 20, 20]
    assert s.count_between(0.0, 0.010) == 4  # (0, 10 ms]: 5 and 10 of cycle 0, 10 and 10 of cycle 1
    times = s.times_s.tolist()
    for t0 in (0.0, 0.0049, 0.005, 0.0101, 0.0199, 0.02):
        g = first_index_at_or_after(times, s.period_s, t0)
        # the g-th opportunity is the first at or after t0
        all_t = s.opportunity_times(-1.0, 1.0)
        assert all_t[g] >= t0 - 1e-12
        assert g == 0 or all_t[g - 1] < t0
        assert count_at_or_before(times, s.period_s, t0) == s.count_until(t0)


def test_constant_rate_spacing() -> None:
    s = OpportunitySchedule.constant(24e6)
    assert s.period_s == pytest.approx(0.0005)
    assert s.count_between(0.0, 1.0) == 2000


def test_from_rates_counts_and_outages() -> None:
    s = OpportunitySchedule.from_rates([0.0, 1.0, 2.0], [12e6, 0.0, 6e6], 3.0)
    t = s.opportunity_times(0.0, 3.0)
    assert np.sum(t <= 1.0) == 1000
    assert np.sum((t > 1.0) & (t <= 2.0)) == 0  # outage
    assert np.sum(t > 2.0) == 500
    assert s.mean_rate_bps == pytest.approx(1500 * BITS_PER_OPPORTUNITY / 3.0)


def test_from_rates_carries_fractional_credit() -> None:
    # 1.5 opportunities per segment: the credit must carry, 3 in total over 2 segments.
    r = 1.5 * BITS_PER_OPPORTUNITY
    s = OpportunitySchedule.from_rates([0.0, 1.0], [r, r], 2.0)
    assert s.n_per_period == 3


@pytest.mark.parametrize(
    ("starts", "rates", "horizon", "match"),
    [
        ([0.0], [0.0], 1.0, "no delivery opportunity"),
        ([0.5], [1e6], 1.0, "start at 0"),
        ([0.0, 0.0], [1e6, 1e6], 1.0, "strictly increasing"),
        ([0.0], [-1.0], 1.0, ">= 0"),
        ([0.0], [1e6], 0.0, "horizon_s"),
    ],
)
def test_from_rates_rejects(starts, rates, horizon, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        OpportunitySchedule.from_rates(starts, rates, horizon)


def test_schedule_validates() -> None:
    with pytest.raises(ValueError, match="at least one"):
        OpportunitySchedule(np.array([]), 1.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        OpportunitySchedule(np.array([0.5, 0.2]), 1.0)
    with pytest.raises(ValueError, match="period_s"):
        OpportunitySchedule(np.array([0.5]), 0.0)
    with pytest.raises(ValueError, match="rate_bps"):
        OpportunitySchedule.constant(0.0)


def test_synthetic_cellular_is_seeded_and_plausible() -> None:
    cfg = CellularConfig()
    a = synthetic_cellular_rates(cfg, 60.0, np.random.default_rng(1))
    b = synthetic_cellular_rates(cfg, 60.0, np.random.default_rng(1))
    c = synthetic_cellular_rates(cfg, 60.0, np.random.default_rng(2))
    assert np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    starts, rates = a
    assert starts[0] == 0.0 and np.all(np.diff(starts) > 0)
    assert np.all(rates >= 0.0) and np.all(rates <= cfg.max_rate_bps)
    assert 1e6 < rates.mean() < 30e6
    assert np.std(np.diff(rates)) > 0  # it fluctuates


def test_synthetic_cellular_outages_and_states() -> None:
    cfg = CellularConfig(
        outage_rate_per_s=1.0, mean_outage_s=0.2, sigma=0.0, state_rates_bps=(5e6,)
    )
    _, rates = synthetic_cellular_rates(cfg, 100.0, np.random.default_rng(0))
    zero = np.mean(rates == 0.0)
    # outage share ~ 0.2 / (1 + 0.2) = 17 %, slots rounding up make it a bit more
    assert 0.08 < zero < 0.35
    assert np.allclose(rates[rates > 0], 5e6)


def test_cellular_config_validates() -> None:
    with pytest.raises(ValueError, match="state_rates_bps"):
        CellularConfig(state_rates_bps=())
    with pytest.raises(ValueError, match="slot_s"):
        CellularConfig(slot_s=0.0)


@needs_traces
def test_shared_traces_load_with_documented_means() -> None:
    expected = {
        "Verizon-LTE-short.down": 5.0,
        "TMobile-LTE-short.down": 16.7,
        "ATT-LTE-driving-2016.down": 4.6,
    }
    for name, mbit in expected.items():
        s = OpportunitySchedule.from_file(TRACES / name)
        assert s.mean_rate_bps / 1e6 == pytest.approx(mbit, rel=0.05)
