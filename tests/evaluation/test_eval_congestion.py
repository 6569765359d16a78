"""The Pantheon-style congestion comparison: metrics, seeds, extra controllers, output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.reno import RenoController
from oxidize_ml.evaluation import congestion
from oxidize_ml.evaluation.plots import matplotlib_available
from oxidize_ml.evaluation.splits import HELDOUT_TRACES

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"


@pytest.fixture(scope="module")
def small() -> congestion.CongestionEvalResult:
    return congestion.run(
        seed=0,
        controllers=("reno", "bbr"),
        scenarios=["wired-clean", "step-change"],
        duration_s=3.0,
        include_traces=False,
    )


def _strip_wall(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    d.pop("wall_s")
    for r in d["runs"]:
        r.pop("wall_s")
    return d


def test_every_controller_runs_on_every_scenario(small: congestion.CongestionEvalResult) -> None:
    assert small.controllers == ("reno", "bbr")
    assert [s.name for s in small.scenarios] == ["wired-clean", "step-change"]
    assert {(r.scenario, r.controller) for r in small.rows} == {
        (s, c) for s in ("wired-clean", "step-change") for c in ("reno", "bbr")
    }
    held = {s.name: s.held_out for s in small.scenarios}
    assert held == {"wired-clean": False, "step-change": True}
    assert small.representative == "step-change"
    assert {t.controller for t in small.traces} == {"reno", "bbr"}
    assert small.capacity is not None and small.capacity[1][0] == pytest.approx(24e6)


def test_metrics_are_consistent(small: congestion.CongestionEvalResult) -> None:
    for r in small.rows:
        assert 0.0 < r.throughput_mbps <= 24.0
        assert 0.0 < r.utilisation <= 1.0
        assert r.jain_index == pytest.approx(1.0)
        assert -1.0 <= r.reward <= 1.0
        assert math.isfinite(r.delay_p95_ms)
    # one flow with a constant 20 ms one-way propagation delay: queueing = delay - 20 ms
    r = small.row("wired-clean", "reno")
    assert r.queue_delay_p95_ms == pytest.approx(r.delay_p95_ms - 20.0, abs=1e-6)
    assert r.power == pytest.approx(r.throughput_mbps / (r.delay_p95_ms / 1000.0))
    w = small.winners()
    for sc in ("wired-clean", "step-change"):
        rows = small.scenario_rows(sc)
        assert small.row(sc, w[sc]["power"]).power == max(x.power for x in rows)
        assert small.row(sc, w[sc]["throughput"]).throughput_mbps == max(
            x.throughput_mbps for x in rows
        )


def test_same_seed_same_numbers(small: congestion.CongestionEvalResult) -> None:
    again = congestion.run(
        seed=0,
        controllers=("reno", "bbr"),
        scenarios=["wired-clean", "step-change"],
        duration_s=3.0,
        include_traces=False,
    )
    assert _strip_wall(again.to_dict()) == _strip_wall(small.to_dict())


def test_random_scenarios_run_several_seeds_and_extra_controllers_plug_in() -> None:
    def small_window(*, flow_index: int, seed: int) -> RenoController:
        return RenoController(limits=CwndLimits(initial_cwnd_packets=2))

    seen = []
    res = congestion.run(
        seed=1,
        controllers=("cubic", ("reno-iw2", small_window)),
        scenarios=["random-loss", "competing-flows"],
        duration_s=6.0,
        n_seeds=2,
        include_traces=False,
        progress=lambda done, total, label: seen.append((done, total)),
    )
    assert res.controllers == ("cubic", "reno-iw2")
    runs = [r for r in res.runs if r.scenario == "random-loss"]
    assert sorted({r.seed for r in runs}) == [9100, 9101]  # EVAL_SEED_BASE + 100 * seed + i
    assert len([r for r in res.runs if r.scenario == "competing-flows"]) == 2  # deterministic
    assert seen[-1] == (6, 6) and [d for d, _ in seen] == list(range(1, 7))
    jain = res.row("competing-flows", "cubic").jain_index
    assert 0.5 < jain < 1.0  # two flows active by 6 s, not yet equal
    assert res.row("random-loss", "reno-iw2").n_runs == 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown scenarios"):
        congestion.run(scenarios=["nope"], include_traces=False)
    with pytest.raises(ValueError, match="unknown controller"):
        congestion.run(controllers=("vegas",), scenarios=["wired-clean"], include_traces=False)
    with pytest.raises(ValueError, match="twice"):
        congestion.run(controllers=("reno", "reno"), scenarios=["wired-clean"])
    with pytest.raises(TypeError, match="names or"):
        congestion.run(controllers=(3,), scenarios=["wired-clean"])


def test_default_controllers_are_the_registry() -> None:
    names = congestion.controller_names()
    assert names[:3] == ["reno", "cubic", "bbr"]
    reg = congestion.extra_registry({"reno2": lambda *, flow_index, seed: RenoController()})
    assert congestion.controller_names(reg)[:4] == ["reno", "cubic", "bbr", "reno2"]


def test_output_json_markdown_and_headline(small: congestion.CongestionEvalResult) -> None:
    text = json.dumps(small.to_dict(), allow_nan=False)
    assert "step-change" in text
    md = small.markdown()
    assert "| scenario | controller | throughput (Mbit/s)" in md
    assert "held out" in md
    assert md.count("| wired-clean |") >= 3  # scenario table, winners, two result rows
    lines = small.headline()
    assert lines and all(isinstance(x, str) for x in lines)
    assert any("held-out" in x for x in lines)


@pytest.mark.skipif(not matplotlib_available(), reason="matplotlib (sim extra) not installed")
def test_plot_writes_pngs(small: congestion.CongestionEvalResult, tmp_path: Path) -> None:
    paths = congestion.plot(small, tmp_path)
    assert [p.name for p in paths] == ["congestion-pantheon.png", "congestion-timeseries.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces are not present")
def test_suite_adds_the_held_out_traces() -> None:
    names = [(sc.name, held, kind) for sc, held, kind in congestion.suite()]
    traces = [x for x in names if x[2] == "trace"]
    assert [t[0] for t in traces] == [f"trace-{n}" for n in HELDOUT_TRACES]
    assert all(t[1] for t in traces)
