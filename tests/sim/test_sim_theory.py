"""The simulator against theory: Mathis, full utilisation, queueing bound, trace capacity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.sim import (
    BernoulliLoss,
    BufferSpec,
    ConstantLink,
    FlowSpec,
    Scenario,
    Simulation,
    TraceLink,
    core,
    simulate,
)

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"
MSS_BITS = 1500 * 8


@pytest.mark.parametrize(
    ("p", "duration_s"), [(0.001, 120.0), (0.005, 60.0), (0.01, 60.0), (0.02, 60.0)]
)
def test_reno_matches_mathis_under_random_loss(p: float, duration_s: float) -> None:
    # 50 Mbit/s, 100 ms RTT, 2-BDP buffer: the Mathis rate (at most 4.6 Mbit/s) is far below
    # capacity, so the flow is loss-limited and the queue stays nearly empty.
    rtt = 0.1
    sc = Scenario(
        "mathis",
        ConstantLink(50e6),
        (FlowSpec(rtt / 2),),
        BufferSpec(bdp=2.0),
        loss=BernoulliLoss(p),
        duration_s=duration_s,
    )
    r = simulate(sc, "reno", seed=1)
    f = r.flows[0]
    assert f.dropped_queue == 0
    mean_rtt = float(np.mean(f.series.rtt_s[f.series.rtt_s > 0]))  # type: ignore[union-attr]
    mathis = 1.22 * MSS_BITS / (mean_rtt * math.sqrt(p))
    assert f.throughput_bps == pytest.approx(mathis, rel=0.25)


@pytest.mark.parametrize("ctrl", ["reno", "cubic"])
@pytest.mark.parametrize(
    ("rate", "rtt", "bdp"), [(12e6, 0.04, 1.0), (48e6, 0.06, 1.0), (12e6, 0.04, 0.1)]
)
def test_constant_link_utilisation_and_queueing_bound(
    ctrl: str, rate: float, rtt: float, bdp: float
) -> None:
    sc = Scenario(
        "wired", ConstantLink(rate), (FlowSpec(rtt / 2),), BufferSpec(bdp=bdp), duration_s=20.0
    )
    sim = Simulation(sc, ctrl, seed=0)
    r = sim.run()
    f = r.flows[0]
    if bdp >= 1.0:
        assert r.utilisation >= 0.9
    assert r.utilisation <= 1.0
    # one-way delay = propagation + queueing; queueing never exceeds the buffer's drain time
    drain = sim.buffer_bytes * 8 / rate
    queueing = f.delays_s - rtt / 2
    assert queueing.min() >= -1e-9
    assert queueing.max() <= drain + 1e-9
    # and a 1-BDP buffer really fills: the bound is tight, not vacuous
    if bdp >= 1.0:
        assert queueing.max() >= 0.8 * drain


def check_departures_within_opportunities(sim: Simulation) -> None:
    dep = np.asarray(sim._q_dep)
    assert dep.size > 500
    opp = sim.schedule.opportunity_times(-1.0, float(dep.max()) + 1e-9)
    # every departure uses an opportunity, and no opportunity twice
    ud, cd = np.unique(np.round(dep, 9), return_counts=True)
    uo, co = np.unique(np.round(opp, 9), return_counts=True)
    idx = np.searchsorted(uo, ud)
    assert np.all(idx < uo.size) and np.array_equal(uo[idx], ud)
    assert np.all(cd <= co[idx])


def bursty_trace(path: Path, seed: int = 0) -> Path:
    """A trace with bursts (several packets in one ms) and gaps of up to 300 ms."""
    rng = np.random.default_rng(seed)
    t = 0
    lines = []
    while t < 20_000:
        if rng.random() < 0.01:
            t += int(rng.integers(50, 300))  # outage
        burst = int(rng.integers(1, 5))
        lines += [str(t)] * burst
        t += int(rng.integers(1, 4))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("ctrl", ["reno", "cubic"])
def test_trace_link_never_exceeds_its_opportunities(
    ctrl: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "QUEUE_COMPACT_ENTRIES", 10**9)  # keep every departure
    sc = Scenario(
        "bursty",
        TraceLink(str(bursty_trace(tmp_path / "b.down"))),
        (FlowSpec(0.03),),
        BufferSpec(bdp=2.0),
        duration_s=8.0,
    )
    sim = Simulation(sc, ctrl, seed=0)
    r = sim.run()
    check_departures_within_opportunities(sim)
    assert r.delivered_bytes <= r.link_opportunities * 1500
    assert 0.5 < r.utilisation <= 1.0


@pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces missing")
@pytest.mark.parametrize("trace", ["Verizon-LTE-short.down", "TMobile-LTE-short.up"])
def test_shared_trace_never_exceeds_its_opportunities(
    trace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "QUEUE_COMPACT_ENTRIES", 10**9)
    sc = Scenario("lte", TraceLink(str(TRACES / trace)), (FlowSpec(0.02),), duration_s=5.0)
    sim = Simulation(sc, "cubic", seed=0)
    r = sim.run()
    check_departures_within_opportunities(sim)
    assert r.delivered_bytes <= r.link_opportunities * 1500
    assert r.utilisation <= 1.0
