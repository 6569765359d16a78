"""The event loop: equivalence of its two loops, determinism, recovery, step-wise API."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from oxidize_ml.features import NetworkFeatures
from oxidize_ml.sim import (
    BernoulliLoss,
    BufferSpec,
    ConstantLink,
    ExternalCwndController,
    FlowSpec,
    GilbertElliottLoss,
    RenoController,
    Scenario,
    Simulation,
    StepLink,
    get_scenario,
    simulate,
)
from oxidize_ml.types import DrlAction


def run_both(sc: Scenario, ctrl: str, seed: int = 1, **kw):  # type: ignore[no-untyped-def]
    out = []
    for force in (False, True):
        sim = Simulation(sc, ctrl, seed=seed, **kw)
        sim._force_general = force
        out.append(sim.run())
    return out


@pytest.mark.parametrize(
    ("scenario", "ctrl"),
    [
        (get_scenario("wired-clean"), "reno"),
        (get_scenario("random-loss"), "cubic"),
        (get_scenario("burst-loss"), "reno"),
        (get_scenario("shallow-buffer"), "cubic"),
        (get_scenario("step-change"), "reno"),
        (get_scenario("cellular-synthetic"), "cubic"),
        (
            Scenario(
                "finite",
                ConstantLink(12e6),
                (FlowSpec(0.02, size_bytes=3_000_000),),
                loss=BernoulliLoss(0.005),
                duration_s=8.0,
            ),
            "reno",
        ),
        (
            Scenario("late", ConstantLink(8e6), (FlowSpec(0.01, start_s=1.234),), duration_s=4.0),
            "cubic",
        ),
    ],
)
def test_single_flow_fast_loop_equals_general_loop(scenario: Scenario, ctrl: str) -> None:
    sc = scenario.with_duration(min(scenario.duration_s, 8.0))
    fast, general = run_both(sc, ctrl)
    assert fast.packets_sent > 1000
    assert fast == general


def test_same_seed_same_result_and_seed_matters_only_for_random_scenarios() -> None:
    for name, random in (
        ("random-loss", True),
        ("cellular-synthetic", True),
        ("wired-clean", False),
    ):
        a = simulate(name, "reno", seed=7, duration_s=4.0)
        b = simulate(name, "reno", seed=7, duration_s=4.0)
        c = simulate(name, "reno", seed=8, duration_s=4.0)
        assert a == b
        assert (dataclasses.replace(a, seed=8) != c) is random, name
    assert get_scenario("random-loss").is_random and not get_scenario("wired-clean").is_random


def test_result_is_json_serialisable_and_consistent() -> None:
    r = simulate("competing-flows", "reno", seed=0, duration_s=12.0)
    d = json.loads(json.dumps(r.to_dict(include_series=True)))
    assert d["scenario"] == "competing-flows" and len(d["flows"]) == 3
    assert [f["start_s"] for f in d["flows"]] == [0.0, 5.0, 10.0]
    assert 0.0 < r.utilisation <= 1.0
    assert r.throughput_bps <= 24e6
    for f in r.flows:
        assert f.bytes_acked <= f.bytes_sent
        assert f.packets_lost <= f.dropped_queue + f.dropped_random
        s = f.series
        assert s is not None and len(s) > 0
        assert np.all(np.diff(s.time_s) > 0) and s.time_s[0] > f.start_s
        assert np.all(s.cwnd_bytes >= 3000)


def test_whole_window_dropped_recovers_through_the_probe_timeout() -> None:
    sc = Scenario(
        "blackhole", ConstantLink(12e6), (FlowSpec(0.02),), BufferSpec(bdp=4.0), duration_s=10.0
    )
    results = []
    for force in (False, True):
        sim = Simulation(sc, "reno", seed=0)
        sim._force_general = force
        sim.advance(2.0)
        fl = sim._flows[0]
        lost_before = fl.lost_packets
        # every packet in flight vanishes: no ack will ever come back for this window
        n = len(fl.ackq)
        assert n > 50
        vanished = [(e[1], e[3], e[2]) for e in fl.ackq]  # (pn, send time, bytes)
        fl.ackq.clear()
        merged = sorted([*fl.lostq, *vanished])
        fl.lostq.clear()
        fl.lostq.extend(merged)
        pto = fl.srtt + 4 * fl.rttvar
        r = sim.run()
        results.append(r)
        f = r.flows[0]
        assert f.packets_lost == lost_before + n  # all declared lost once the probes are acked
        s = f.series
        assert s is not None
        silent = s.time_s[(s.time_s > 2.0) & (s.throughput_bps == 0.0)]
        # nothing is delivered until the probe timeout fires and the probes' acks return (a
        # base RTT later, plus what is left of the queue the vanished packets occupied)
        drain = sim.buffer_bytes * 8 / 12e6
        assert pto <= silent.max() - 2.0 <= pto + sc.flows[0].base_rtt_s + drain + 0.02
        assert s.throughput_bps[s.time_s > 7.0].mean() > 0.8 * 12e6
    assert results[0] == results[1]


def test_outage_then_recovery() -> None:
    link = StepLink(((0.0, 12e6), (3.0, 0.0), (5.0, 12e6)))
    for ctrl in ("reno", "cubic"):
        r = simulate(Scenario("outage", link, duration_s=12.0), ctrl, seed=0)
        f = r.flows[0]
        s = f.series
        assert s is not None
        assert s.throughput_bps[(s.time_s > 3.1) & (s.time_s < 5.0)].max() == 0.0
        assert s.throughput_bps[s.time_s > 9.0].mean() > 0.8 * 12e6


def test_finite_flow_completes_once() -> None:
    size = 2_000_000
    sc = Scenario(
        "fct",
        ConstantLink(12e6),
        (FlowSpec(0.02, size_bytes=size, start_s=0.5),),
        loss=BernoulliLoss(0.01),
        duration_s=10.0,
    )
    r = simulate(sc, "cubic", seed=3)
    f = r.flows[0]
    assert f.completion_time_s is not None and 0.5 + size * 8 / 12e6 < f.completion_time_s < 6.0
    assert size <= f.bytes_acked <= size + 2 * 1500
    assert f.throughput_bps == pytest.approx(size * 8 / (f.completion_time_s - 0.5))
    assert f.end_s == f.completion_time_s


def test_step_wise_api_with_external_controller() -> None:
    agent = ExternalCwndController()
    sim = Simulation(get_scenario("wired-clean"), [agent], seed=0, duration_s=2.0)
    n = 0
    thr = []
    while not sim.done:
        samples = sim.run_interval()
        assert len(samples) == 1
        s = samples[0]
        assert isinstance(s.features, NetworkFeatures) and s.flow_index == 0
        assert s.now == pytest.approx(sim.now)
        assert agent.last_features is s.features
        thr.append(s.throughput_bps)
        # hold a tiny window for 1 s, then open it wide
        if sim.now < 1.0:
            agent.set_cwnd(3000)
        else:
            agent.apply(DrlAction.Increase10)
        n += 1
    assert n == 200
    assert sim.run_interval() == []
    # 2 packets per 40 ms RTT = 0.6 Mbit/s while small, near 12 Mbit/s once open
    assert np.mean(thr[20:95]) == pytest.approx(2 * 1500 * 8 / 0.04, rel=0.1)
    assert np.mean(thr[-20:]) > 10e6


def test_on_interval_hook_sees_every_interval_of_every_active_flow() -> None:
    calls: list[tuple[float, int, float, int]] = []

    def hook(now: float, i: int, f: NetworkFeatures, thr: float, cwnd: int) -> None:
        assert isinstance(f, NetworkFeatures) and f.cwnd >= 3000
        calls.append((now, i, thr, cwnd))

    sc = Scenario(
        "two", ConstantLink(12e6), (FlowSpec(0.02), FlowSpec(0.03, start_s=1.0)), duration_s=2.0
    )
    r = simulate(sc, "reno", seed=0, on_interval=hook)
    first = [c for c in calls if c[1] == 0]
    second = [c for c in calls if c[1] == 1]
    assert len(first) == 200 and len(second) == 100
    s0, s1 = r.flows[0].series, r.flows[1].series
    assert s0 is not None and s1 is not None
    assert [c[3] for c in first] == s0.cwnd_bytes.astype(int).tolist()
    assert [c[2] for c in second] == s1.throughput_bps.tolist()


def test_two_equal_reno_flows_share_fairly() -> None:
    sc = Scenario(
        "pair", ConstantLink(24e6), (FlowSpec(0.02), FlowSpec(0.02, start_s=0.2)), duration_s=15.0
    )
    r = simulate(sc, "reno", seed=0, record_series=False)
    assert r.jain_index > 0.9
    assert r.utilisation > 0.9
    one_hog = simulate(sc, [RenoController(), _Fixed(400)], seed=0, record_series=False)
    assert one_hog.jain_index < r.jain_index


class _Fixed(RenoController):
    """Ignores congestion: a fixed window (a misbehaving flow)."""

    def __init__(self, packets: int) -> None:
        super().__init__()
        self.cwnd = packets * 1500

    def on_packets_acked(self, *, now: float, acked_bytes: int, sent_time: float) -> None:
        pass

    def on_packets_lost(self, **kw: float) -> None:  # type: ignore[override]
        pass

    def on_persistent_congestion(self, *, now: float) -> None:
        pass


def test_memory_stays_bounded_and_delay_samples_are_decimated() -> None:
    sim = Simulation(
        get_scenario("high-bdp"), "reno", seed=0, duration_s=6.0, max_delay_samples=5000
    )
    r = sim.run()
    assert r.packets_sent > 40_000
    # trimmed every 64 ticks: at most 4096 departed entries + 64 intervals of packets + queue
    per_tick = 100e6 / 12000 * sim.interval_s
    assert len(sim._q_dep) <= 4096 + 64 * per_tick + sim.buffer_bytes / 1500 + 100
    fl = sim._flows[0]
    assert len(fl.ackq) + len(fl.lostq) + len(fl.suspects) == fl.pif
    assert fl.pif <= fl.ctrl.cwnd // 1500 + 2
    assert 2500 <= r.flows[0].delays_s.size <= 5000 + 1000
    full = simulate(get_scenario("high-bdp"), "reno", seed=0, duration_s=6.0)
    assert full.flows[0].delays_s.size > 40_000
    assert r.flows[0].delay_p50_s == pytest.approx(full.flows[0].delay_p50_s, rel=0.03)
    assert r.flows[0].delay_p95_s == pytest.approx(full.flows[0].delay_p95_s, rel=0.03)


def test_bad_inputs_raise_clear_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="delay_s must be >= 0"):
        FlowSpec(delay_s=-0.01)
    with pytest.raises(ValueError, match="base RTT"):
        FlowSpec(delay_s=0.0)
    with pytest.raises(ValueError, match=r"unknown scenario 'nope'; choose from \['wired-clean'"):
        get_scenario("nope")
    with pytest.raises(ValueError, match="unknown controller 'vegas'"):
        simulate("wired-clean", "vegas", seed=0)
    empty = tmp_path / "empty.down"
    empty.write_text("")
    from oxidize_ml.sim import scenario_from_trace

    with pytest.raises(ValueError, match="is empty"):
        scenario_from_trace(empty)
    with pytest.raises(ValueError, match="3 flow"):
        Simulation(get_scenario("competing-flows"), ["reno", "cubic"], seed=0)
    with pytest.raises(ValueError, match="own controller"):
        c = RenoController()
        Simulation(dataclasses.replace(get_scenario("competing-flows")), [c, c, c], seed=0)
    with pytest.raises(ValueError, match="duration_s"):
        Scenario("x", ConstantLink(1e6), duration_s=0.0)
    sim = Simulation(get_scenario("wired-clean"), "reno", seed=0, duration_s=1.0)
    sim.advance(0.5)
    with pytest.raises(ValueError, match="back in time"):
        sim.advance(0.1)
    with pytest.raises(TypeError, match="seed"):
        Simulation(get_scenario("wired-clean"), "reno", seed=1.5)  # type: ignore[arg-type]


def test_gilbert_elliott_in_the_simulator() -> None:
    ge = GilbertElliottLoss(p=0.01, r=0.2, k=1.0, h=0.3)
    sc = Scenario(
        "ge", ConstantLink(12e6), (FlowSpec(0.01),), BufferSpec(bdp=8.0), loss=ge, duration_s=60.0
    )
    sim = Simulation(sc, [_Fixed(40)], seed=2, record_series=False)
    r = sim.run()
    f = r.flows[0]
    through_queue = f.packets_sent - f.dropped_queue
    assert f.dropped_random / through_queue == pytest.approx(ge.stationary_loss_rate, rel=0.1)


def test_random_configurations_fast_equals_general() -> None:
    rng = np.random.default_rng(2024)
    for k in range(6):
        rate = float(rng.uniform(2e6, 40e6))
        link = (
            ConstantLink(rate)
            if k % 2 == 0
            else StepLink(((0.0, rate), (1.0, rate / 4), (2.0, rate * 1.5)))
        )
        loss = [
            None,
            BernoulliLoss(float(rng.uniform(0, 0.03))),
            GilbertElliottLoss(p=0.01, r=0.3, h=0.2),
        ][k % 3]
        size = None if k < 4 else int(rng.integers(200_000, 2_000_000))
        sc = Scenario(
            f"rand{k}",
            link,
            (
                FlowSpec(
                    float(rng.uniform(0.002, 0.15)),
                    float(rng.uniform(0.002, 0.15)),
                    start_s=float(rng.uniform(0, 0.5)),
                    size_bytes=size,
                ),
            ),
            BufferSpec(bdp=float(rng.uniform(0.05, 3.0))),
            loss=loss,
            duration_s=3.0,
        )
        ctrl = ["reno", "cubic"][k % 2]
        fast, general = run_both(sc, ctrl, seed=k)
        assert fast == general, sc


def test_multi_flow_bottleneck_is_fifo_in_arrival_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from oxidize_ml.sim import core

    monkeypatch.setattr(core, "QUEUE_COMPACT_ENTRIES", 10**9)
    # a short-delay flow sending later must still reach the bottleneck first
    sc = Scenario(
        "mix",
        ConstantLink(20e6),
        (FlowSpec(0.08, 0.01), FlowSpec(0.005, 0.05, start_s=0.3), FlowSpec(0.03, start_s=0.7)),
        BufferSpec(bdp=1.0),
        loss=BernoulliLoss(0.005),
        duration_s=4.0,
    )
    sim = Simulation(sc, "cubic", seed=0)
    r = sim.run()
    arr = np.asarray(sim._q_arr)
    dep = np.asarray(sim._q_dep)
    assert arr.size > 3000
    assert np.all(np.diff(arr) >= 0.0)  # processed in arrival order across flows
    assert np.all(np.diff(dep) > 0.0)  # one opportunity each, FIFO (20 Mbit/s: no ties)
    assert np.all(dep >= arr)
    for spec, f in zip(sc.flows, r.flows, strict=True):
        assert f.delays_s.min() >= spec.delay_s - 1e-9
        assert f.bytes_acked > 0


def test_finite_flow_among_bulk_flows() -> None:
    sc = Scenario(
        "mice",
        ConstantLink(24e6),
        (FlowSpec(0.02), FlowSpec(0.03, size_bytes=1_500_000, start_s=1.0)),
        duration_s=8.0,
    )
    r = simulate(sc, "cubic", seed=0)
    bulk, mouse = r.flows
    assert mouse.completion_time_s is not None and 1.0 < mouse.completion_time_s < 6.0
    assert 1_500_000 <= mouse.bytes_acked <= 1_500_000 + 3000
    s = bulk.series
    assert s is not None
    t_done = mouse.completion_time_s
    during = s.throughput_bps[(s.time_s > 1.5) & (s.time_s < t_done)].mean()
    after = s.throughput_bps[s.time_s > t_done + 1.5].mean()
    assert after > during  # the bulk flow takes the capacity back
    assert after > 0.85 * 24e6
