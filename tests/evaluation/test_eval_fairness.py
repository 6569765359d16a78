"""Fairness evaluation: two flows of a controller, one against CUBIC, measured while both run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oxidize_ml.cli import app
from oxidize_ml.evaluation import fairness as fa
from oxidize_ml.evaluation.bootstrap import bootstrap_indices
from oxidize_ml.evaluation.congestion_controllers import resolve_controllers
from oxidize_ml.sim import BufferSpec, ConstantLink, FlowSpec, Scenario, Simulation, simulate
from oxidize_ml.sim.controllers.registry import default_registry

runner = CliRunner()

SMALL = fa.FairnessConfig(
    rates_mbps=(12.0,), rtts_ms=(40.0,), duration_s=6.0, stagger_s=2.0, bootstrap_rounds=200
)


def write_trace(path: Path, stamps: list[int] | range) -> Path:
    path.write_text("\n".join(str(t) for t in stamps) + "\n")
    return path


@pytest.fixture(scope="module")
def small() -> fa.FairnessResult:
    return fa.run_fairness(seed=0, config=SMALL, controllers=["reno", "cubic", "bbr"])


def test_two_reno_flows_share_a_constant_link_fairly(small: fa.FairnessResult) -> None:
    for start in ("together", "staggered"):
        r = small.run_of(0, "reno", "intra", start)
        assert r.flows == ("reno", "reno")
        assert r.jain >= 0.9, (start, r.goodput_mbps)
        # both flows fill the 12 Mbit/s link between them, neither alone
        assert 0.9 <= r.utilisation <= 1.0
        assert sum(r.goodput_mbps) == pytest.approx(12.0, rel=0.1)
    assert small.aggregate("reno").intra_fair == 1.0


def test_staggered_runs_are_measured_while_both_flows_are_active(
    small: fa.FairnessResult,
) -> None:
    together = small.run_of(0, "reno", "intra", "together")
    staggered = small.run_of(0, "reno", "intra", "staggered")
    assert together.measured_s == pytest.approx(6.0)
    assert together.starts_s == (0.0, 0.0)
    assert staggered.measured_s == pytest.approx(4.0)
    assert staggered.starts_s == (0.0, 2.0)
    # the incumbent's solo seconds are left out: over the whole run it would have about
    # half the link for 4 s plus all of it for 2 s
    sc = Scenario(
        "x",
        ConstantLink(12e6),
        (FlowSpec(0.02), FlowSpec(0.02, start_s=2.0)),
        BufferSpec(bdp=2.0),
        duration_s=6.0,
    )
    whole = simulate(sc, "reno", seed=small.cases[0].seed, record_series=False)
    f0, f1 = whole.flows
    acked_late = f1.bytes_acked * 8.0 / 4.0 / 1e6
    assert staggered.goodput_mbps[1] == pytest.approx(acked_late)
    assert staggered.goodput_mbps[0] < f0.bytes_acked * 8.0 / 6.0 / 1e6


@pytest.mark.parametrize("controller", ["reno", "engine"])
def test_a_simulation_stopped_at_the_later_start_ends_as_an_uninterrupted_one(
    controller: str,
) -> None:
    # run_pair reads the counters at the later start: stopping there must change nothing
    # (reno runs the single-flow fast path until the second flow starts, the engine is
    # paced: the general loop)
    sc = Scenario(
        "x",
        ConstantLink(12e6),
        (FlowSpec(0.02), FlowSpec(0.02, start_s=1.5)),
        BufferSpec(bdp=2.0),
        duration_s=3.0,
    )
    factory = dict(resolve_controllers([controller]))[controller]
    whole = Simulation(sc, factory, seed=4, record_series=False).run()
    split = Simulation(sc, factory, seed=4, record_series=False)
    split.advance(1.5)
    assert split.run() == whole


def test_run_pair_measures_after_the_later_start() -> None:
    sc = Scenario(
        "x",
        ConstantLink(12e6),
        (FlowSpec(0.02), FlowSpec(0.02, start_s=1.5)),
        BufferSpec(bdp=2.0),
        duration_s=4.0,
    )
    reno = default_registry().factory("reno")
    (g0, g1), span, util, qd = fa.run_pair(sc, [reno, reno], seed=3)
    whole = simulate(sc, "reno", seed=3, record_series=False)
    assert span == pytest.approx(2.5)
    assert g1 == pytest.approx(whole.flows[1].bytes_acked * 8.0 / 2.5 / 1e6)
    assert 0.0 < util <= 1.0
    # 2 BDP of buffer at 40 ms: the queueing delay cannot exceed 80 ms (+ one packet)
    assert 0.0 <= qd <= 81.0
    assert g0 > 0.0


def test_shares_against_cubic_add_up_and_cubic_against_itself_is_its_own_run(
    small: fa.FairnessResult,
) -> None:
    for name in ("reno", "bbr"):
        together = small.run_of(0, name, "inter", "together")
        joins = small.run_of(0, name, "inter", "joins")
        first = small.run_of(0, name, "inter", "first")
        assert together.flows == (name, "cubic") and first.flows == (name, "cubic")
        # joining: the controller is the later flow, its share is flow 1's
        assert joins.flows == ("cubic", name) and joins.starts_s == (0.0, 2.0)
        assert joins.share == pytest.approx(joins.goodput_mbps[1] / sum(joins.goodput_mbps))
        assert first.share == pytest.approx(first.goodput_mbps[0] / sum(first.goodput_mbps))
    # CUBIC vs CUBIC reuses CUBIC's intra runs: the two staggered orders are one run seen
    # from either flow
    stag = small.run_of(0, "cubic", "intra", "staggered")
    first = small.run_of(0, "cubic", "inter", "first")
    joins = small.run_of(0, "cubic", "inter", "joins")
    assert first.goodput_mbps == joins.goodput_mbps == stag.goodput_mbps
    assert first.share + joins.share == pytest.approx(1.0)
    assert small.run_of(0, "cubic", "inter", "together").jain == pytest.approx(
        small.run_of(0, "cubic", "intra", "together").jain
    )


def test_aggregates_are_means_over_scenarios_with_an_interval(
    small: fa.FairnessResult,
) -> None:
    for a in small.aggregates:
        jains = [r.jain for r in small.runs if r.controller == a.controller and r.kind == "intra"]
        shares = [r.share for r in small.runs if r.controller == a.controller and r.kind == "inter"]
        assert a.intra_jain.mean == pytest.approx(np.mean(jains))
        assert a.intra_jain.n == len(jains) == 2
        assert a.inter_share.mean == pytest.approx(np.mean(shares))
        assert a.intra_fair == pytest.approx(np.mean(np.array(jains) >= 0.9))
        lo, hi = a.inter_share.ci
        assert lo <= a.inter_share.mean <= hi
    s = small.summary()
    assert set(s["controllers"]) == {"reno", "cubic", "bbr"}
    assert s["controllers"]["reno"]["intra_jain_mean"] == small.aggregate("reno").intra_jain.mean


def test_mean_ci_resamples_whole_cases() -> None:
    vals = np.array([[1.0, 1.0], [0.0, math.nan], [0.5, 0.5]])
    idx = bootstrap_indices(3, 500, np.random.default_rng(0))
    st = fa.mean_ci(vals, idx)
    assert st.n == 5
    assert st.mean == pytest.approx(3.0 / 5.0)
    assert st.lowest == 0.0 and st.highest == 1.0
    assert 0.0 <= st.ci[0] <= st.mean <= st.ci[1] <= 1.0
    empty = fa.mean_ci(np.full(3, math.nan), idx)
    assert empty.n == 0 and math.isnan(empty.mean)


def test_same_seed_same_result_and_json_round_trip() -> None:
    cfg = fa.FairnessConfig(
        rates_mbps=(12.0,), rtts_ms=(40.0,), duration_s=3.0, stagger_s=1.0, bootstrap_rounds=200
    )
    a = fa.run_fairness(seed=2, config=cfg, controllers=["cubic", "engine"]).to_dict()
    b = fa.run_fairness(seed=2, config=cfg, controllers=["cubic", "engine"]).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    text = json.dumps(a, allow_nan=False)
    assert json.loads(text) == a
    assert a["summary"]["reference"] == "cubic"
    assert set(a["summary"]["controllers"]) == {"cubic", "engine"}
    assert a["cases"][0]["seed"] == 9_000 + 200
    c = fa.run_fairness(seed=3, config=cfg, controllers=["cubic", "engine"]).to_dict()
    assert c["cases"][0]["seed"] != a["cases"][0]["seed"]


def test_traces_add_windows_from_0_and_half_of_each_trace(tmp_path: Path) -> None:
    # 6 Mbit/s for 4 s, then 12 Mbit/s for 4 s
    trace = write_trace(tmp_path / "two-rates.down", [*range(2, 4001, 2), *range(4001, 8001)])
    cfg = fa.FairnessConfig(
        rates_mbps=(), rtts_ms=(40.0, 100.0), duration_s=3.0, stagger_s=1.0, bootstrap_rounds=200
    )
    res = fa.run_fairness([trace], seed=0, config=cfg, controllers=["reno"])
    assert [(c.label, c.rtt_ms, c.kind) for c in res.cases] == [
        ("two-rates.down @0 s", 40.0, "trace"),
        ("two-rates.down @0 s", 100.0, "trace"),
        ("two-rates.down @4 s", 40.0, "trace"),
        ("two-rates.down @4 s", 100.0, "trace"),
    ]
    assert res.cases[0].capacity_mbps == pytest.approx(6.0, rel=0.01)
    assert res.cases[2].capacity_mbps == pytest.approx(12.0, rel=0.01)
    # 4 cases x (2 intra + 3 inter) scenarios, CUBIC never evaluated itself
    assert len(res.runs) == 4 * 5
    assert res.controllers == ("reno",)
    md = res.markdown()
    assert "two-rates.down @4 s" in md and "| reno | all |" in md


def test_constant_links_and_traces_are_also_aggregated_apart(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "steady.up", range(1, 3001))
    cfg = fa.FairnessConfig(
        rates_mbps=(12.0,),
        rtts_ms=(40.0,),
        duration_s=2.0,
        stagger_s=0.0,
        n_windows=1,
        bootstrap_rounds=200,
    )
    res = fa.run_fairness([trace], seed=0, config=cfg, controllers=["reno"])
    assert [a.links for a in res.aggregates] == ["all", "constant", "trace"]
    # stagger 0: together only
    assert {r.start for r in res.runs} == {"together"}
    assert res.aggregate("reno", "trace").intra_jain.n == 1
    assert set(res.to_dict()["aggregates"]["reno"]) == {"all", "constant", "trace"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rates_mbps": (12.0, -1.0)}, "rates_mbps[1]"),
        ({"rates_mbps": (12.0, 12.0)}, "rates_mbps"),
        ({"rtts_ms": ()}, "rtts_ms"),
        ({"rtts_ms": (0.0,)}, "rtts_ms[0]"),
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": math.inf}, "duration_s"),
        ({"stagger_s": 30.0}, "stagger_s"),
        ({"stagger_s": -1.0}, "stagger_s"),
        ({"buffer_bdp": 0.0}, "buffer_bdp"),
        ({"n_windows": 0}, "n_windows"),
        ({"jain_threshold": 0.5}, "jain_threshold"),
        ({"jain_threshold": 1.5}, "jain_threshold"),
        ({"bootstrap_rounds": 10}, "bootstrap_rounds"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        fa.FairnessConfig(**kwargs)  # type: ignore[arg-type]


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to run"):
        fa.plan_fairness([], config=fa.FairnessConfig(rates_mbps=()))
    with pytest.raises(ValueError, match="missing.down"):
        fa.plan_fairness([tmp_path / "missing.down"])
    with pytest.raises(TypeError, match="sequence of paths"):
        fa.plan_fairness(str(tmp_path / "x.down"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        fa.plan_fairness(seed=-1)
    with pytest.raises(ValueError, match="packets"):
        fa.plan_fairness(config=fa.FairnessConfig(rates_mbps=(10_000.0,), duration_s=10.0))


def fairness_args(out: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "fairness",
        "--rates-mbps",
        "12",
        "--rtt-ms",
        "40",
        "--duration",
        "3",
        "--stagger",
        "1",
        "--bootstrap",
        "200",
        "--controllers",
        "reno,cubic",
        "--json",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_cli_writes_json_and_report(tmp_path: Path) -> None:
    out, rep = tmp_path / "fair.json", tmp_path / "rep"
    trace = write_trace(tmp_path / "steady.down", range(2, 4001, 2))
    res = runner.invoke(app, fairness_args(out, "--trace", str(trace), "--report", str(rep)))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["command"] == "oxidize-ml evaluate fairness"
    assert set(data["summary"]["controllers"]) == {"reno", "cubic"}
    assert data["traces"] == [str(trace)]
    assert {c["kind"] for c in data["cases"]} == {"constant", "trace"}
    assert "share vs CUBIC" in res.output
    md = (rep / "report.md").read_text()
    assert md.startswith("# oxidize-ml evaluate fairness") and "| reno | all |" in md


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--stagger", "5"], "--stagger"),
        (["--duration", "0"], "--duration"),
        (["--windows", "0"], "--windows"),
        (["--rates-mbps", "12,x"], "--rates-mbps"),
        (["--controllers", "cubic,vegas"], "unknown controller"),
        (["--heldout", "--trace", "x.down"], "not both"),
    ],
)
def test_cli_validates_options(tmp_path: Path, args: list[str], match: str) -> None:
    res = runner.invoke(app, fairness_args(tmp_path / "o.json", *args))
    assert res.exit_code == 2, res.output
    assert match in res.output.replace("\n", " ")
