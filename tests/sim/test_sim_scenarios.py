"""The named scenario suite, trace scenarios, and the runner on each."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from oxidize_ml.sim import (
    get_scenario,
    list_scenarios,
    mahimahi_scenarios,
    scenario_from_trace,
    simulate,
)
from oxidize_ml.sim.bench import measure_packets_per_second

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"
HAVE_BBR = importlib.util.find_spec("oxidize_ml.congestion.bbr") is not None
CONTROLLERS = ["reno", "cubic"] + (["bbr"] if HAVE_BBR else [])


def test_suite_names() -> None:
    assert list_scenarios() == [
        "wired-clean",
        "high-bdp",
        "shallow-buffer",
        "step-change",
        "random-loss",
        "burst-loss",
        "cellular-synthetic",
        "satellite",
        "competing-flows",
    ]
    for name in list_scenarios():
        sc = get_scenario(name)
        assert sc.name == name and sc.description
        assert 10.0 <= sc.duration_s <= 30.0


@pytest.mark.parametrize("ctrl", CONTROLLERS)
@pytest.mark.parametrize("name", list_scenarios())
def test_every_scenario_runs_with_every_controller(name: str, ctrl: str) -> None:
    sc = get_scenario(name)
    r = simulate(sc, ctrl, seed=0, duration_s=4.0)
    json.dumps(r.to_dict())
    assert r.packets_sent > 100
    assert 0.0 < r.utilisation <= 1.0
    for flow, f in zip(sc.flows, r.flows, strict=True):
        assert f.controller == ctrl
        if f.delays_s.size:
            assert f.delays_s.min() >= flow.delay_s - 1e-9


def test_step_change_scenario_follows_the_capacity() -> None:
    r = simulate("step-change", "cubic", seed=0)
    s = r.flows[0].series
    assert s is not None
    for lo, hi, rate in ((3.0, 10.0, 24e6), (13.0, 20.0, 6e6), (23.0, 30.0, 18e6)):
        m = s.throughput_bps[(s.time_s > lo) & (s.time_s <= hi)].mean()
        assert m == pytest.approx(rate, rel=0.15)


def test_scenario_from_trace(tmp_path: Path) -> None:
    p = tmp_path / "const.down"
    p.write_text("1\n")  # 12 Mbit/s
    sc = scenario_from_trace(p, rtt_s=0.05)
    assert sc.name == "trace-const.down" and sc.duration_s == 1.0
    r = simulate(sc, "reno", seed=0, duration_s=5.0)
    assert r.link_mean_rate_bps == pytest.approx(12e6)
    assert r.utilisation > 0.8
    assert mahimahi_scenarios(tmp_path / "missing") == {}


@pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces missing")
def test_mahimahi_scenarios_from_the_shared_traces() -> None:
    scs = mahimahi_scenarios(TRACES)
    assert len(scs) == 8
    assert "trace-Verizon-LTE-short.down" in scs
    sc = scs["trace-TMobile-LTE-short.down"]
    assert sc.duration_s == 30.0
    r = simulate(sc, "cubic", seed=0, duration_s=5.0)
    assert r.utilisation > 0.5


def test_bench_measures_a_rate() -> None:
    # no timing assertion (the machine is shared): only that it measures something real
    assert measure_packets_per_second(seconds_simulated=1.0, repeats=1) > 0.0
