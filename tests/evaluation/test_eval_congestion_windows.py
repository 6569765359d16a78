"""Held-out congestion windows: planning, flags, per-window metrics, ratios to CUBIC."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.evaluation import congestion
from oxidize_ml.evaluation import congestion_windows as cw
from oxidize_ml.evaluation.plots import matplotlib_available


def write_trace(path: Path, stamps: list[int] | range) -> Path:
    path.write_text("\n".join(str(t) for t in stamps) + "\n")
    return path


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("traces")
    return {
        # 6 Mbit/s for 6 s
        "steady": write_trace(d / "steady.down", range(2, 6001, 2)),
        # nothing for 800 ms, then 12 Mbit/s to 4 s (a silent start, like two uplinks of
        # issue 10)
        "silent": write_trace(d / "silent.up", range(800, 4001)),
        # 12 Mbit/s with a 1.2-s outage in the middle (2.0-3.2 s) of a 5-s trace
        "outage": write_trace(d / "outage.down", [*range(1, 2001), *range(3200, 5001)]),
    }


@pytest.fixture(scope="module")
def small(traces: dict[str, Path]) -> cw.WindowEvalResult:
    cfg = cw.WindowConfig(duration_s=1.5, n_windows=2, bootstrap_rounds=300)
    return cw.run_windows(
        [traces["steady"], traces["silent"], traces["outage"]],
        seed=0,
        config=cfg,
        controllers=["cubic", "reno", "bbr", "engine"],
    )


def test_windows_start_inside_the_trace_and_silences_are_flagged(
    small: cw.WindowEvalResult,
) -> None:
    got = [(w.trace, w.start_s, w.kind, w.silent_start, w.outage) for w in small.windows]
    assert got == [
        ("steady.down", 0.0, "even", False, False),
        ("steady.down", 3.0, "even", False, False),
        # the trace's longest silence is its start: the even window at 0 already covers it
        ("silent.up", 0.0, "even", True, True),
        ("silent.up", 2.0, "even", False, False),
        ("outage.down", 0.0, "even", False, False),
        # 2.5 s is inside the outage: 700 ms to the next delivery
        ("outage.down", 2.5, "even", True, True),
        # started 1 ms after the last delivery before the outage
        ("outage.down", 2.001, "silent-start", True, True),
    ]
    w = small.windows[6]
    assert w.first_opportunity_ms == 1199 and w.longest_gap_ms == 1199
    assert small.windows[0].capacity_mbps == pytest.approx(6.0)
    assert small.windows[5].first_opportunity_ms == 700
    # one unit per window and RTT, one run per unit and controller
    assert len(small.units) == 7 * 2
    assert {u.rtt_ms for u in small.units} == {40.0, 100.0}
    assert len(small.runs) == 14 * 4


def test_every_ratio_is_to_cubic_on_the_same_runs(small: cw.WindowEvalResult) -> None:
    n = len(small.units)
    for a in small.aggregates:
        g = np.array([small.run_of(u, a.controller).goodput_mbps for u in range(n)])
        ref = np.array([small.run_of(u, "cubic").goodput_mbps for u in range(n)])
        assert a.goodput_ratio_vs_cubic == pytest.approx(g.sum() / ref.sum())
        assert a.worst_goodput_ratio_vs_cubic == pytest.approx(np.min(g / ref))
        lo, hi = a.goodput_ratio_ci
        assert lo <= a.goodput_ratio_vs_cubic <= hi
        q = np.array([small.run_of(u, a.controller).queue_delay_p95_ms for u in range(n)])
        qref = np.array([small.run_of(u, "cubic").queue_delay_p95_ms for u in range(n)])
        ok = np.isfinite(q) & np.isfinite(qref)
        assert a.queue_delay_ratio_vs_cubic == pytest.approx(q[ok].sum() / qref[ok].sum())
        losses = [small.run_of(u, a.controller).loss for u in range(n)]
        assert a.max_loss == max(losses)
    cubic = small.aggregate("cubic")
    assert cubic.goodput_ratio_vs_cubic == 1.0 and cubic.goodput_ratio_ci == (1.0, 1.0)
    # power against the default (what the default rule of issue 10 is judged on)
    assert small.aggregate("engine").power_ratio_vs_default == 1.0
    pr = np.array([small.run_of(u, "reno").power for u in range(n)])
    pe = np.array([small.run_of(u, "engine").power for u in range(n)])
    reno = small.aggregate("reno")
    assert reno.power_ratio_vs_default == pytest.approx(pr.sum() / pe.sum())
    assert reno.power_ratio_vs_default_ci[0] <= reno.power_ratio_vs_default
    assert reno.power_ratio_vs_default <= reno.power_ratio_vs_default_ci[1]
    # MlEngine() runs the shipped residual DQN (on the BBR-style fallback) by default
    assert small.engine_policy == "residual-dqn"


def test_the_engine_without_models_runs_the_bbr_fallback(traces: dict[str, Path]) -> None:
    """The engine's fallback is the registry's bbr: identical runs on the same windows."""
    from oxidize_ml.evaluation.congestion_controllers import engine_controller_factory

    res = cw.run_windows(
        [traces["steady"], traces["silent"], traces["outage"]],
        seed=0,
        config=cw.WindowConfig(duration_s=1.5, n_windows=2, bootstrap_rounds=100),
        controllers=[
            "cubic",
            "bbr",
            ("fallback", engine_controller_factory(load_default_models=False)),
        ],
    )
    n = len(res.units)
    for u in range(n):
        a, b = res.run_of(u, "fallback"), res.run_of(u, "bbr")
        assert (a.goodput_mbps, a.queue_delay_p95_ms, a.loss) == (
            b.goodput_mbps,
            b.queue_delay_p95_ms,
            b.loss,
        ), u
    assert res.aggregate("fallback").summary() == res.aggregate("bbr").summary()


def test_per_window_metrics_catch_a_silent_start(small: cw.WindowEvalResult) -> None:
    for r in small.runs:
        u = small.units[r.unit]
        w = small.windows[u.window]
        assert 0.0 <= r.loss <= 1.0 and 0.0 <= r.declared_loss <= 1.0
        assert r.goodput_mbps <= w.capacity_mbps * 1.01 + 1e-9
        if r.packets_sent:
            assert r.stranded <= r.packets_sent
    # a flow starting into 800 ms of silence delivers nothing at first: under the capacity
    # of its window, and never more than the link offered
    ui = next(
        i
        for i, u in enumerate(small.units)
        if small.windows[u.window].trace == "silent.up" and small.windows[u.window].silent_start
    )
    assert (
        small.run_of(ui, "cubic").goodput_mbps < small.windows[small.units[ui].window].capacity_mbps
    )


def test_summary_has_exactly_the_issue_keys_and_json_is_deterministic(
    small: cw.WindowEvalResult, traces: dict[str, Path]
) -> None:
    s = small.summary()
    assert set(s) == {"default", "controllers"} and s["default"] == "engine"
    for v in s["controllers"].values():
        assert set(v) == {
            "goodput_ratio_vs_cubic",
            "queue_delay_ratio_vs_cubic",
            "worst_goodput_ratio_vs_cubic",
            "max_loss",
        }
    text = json.dumps(small.to_dict(), allow_nan=False)
    again = cw.run_windows(
        [traces["steady"], traces["silent"], traces["outage"]],
        seed=0,
        config=small.config,
        controllers=["cubic", "reno", "bbr", "engine"],
    )
    assert json.dumps(again.to_dict(), allow_nan=False) == text
    other = cw.run_windows(
        [traces["steady"], traces["silent"], traces["outage"]],
        seed=1,
        config=small.config,
        controllers=["cubic", "reno", "bbr", "engine"],
    )
    # another seed: other run seeds and other bootstrap resamples
    assert other.units[0].seed != small.units[0].seed
    assert other.aggregate("bbr").goodput_ratio_ci != small.aggregate("bbr").goodput_ratio_ci


def test_markdown_and_targets(small: cw.WindowEvalResult) -> None:
    md = small.markdown()
    assert "| trace | start (s) | RTT (ms) | capacity (Mbit/s) | flags | cubic |" in md
    assert md.count("| outage.down |") == 6  # 3 windows x 2 RTTs
    assert "| SO |" in md and "**engine** (default)" in md
    t = small.targets()
    assert set(t) == {"engine"}
    assert t["engine"]["loss_violations"]["met"] == (small.aggregate("engine").loss_violations == 0)
    assert small.headline() and "vs CUBIC" in small.headline()[0]


def test_cubic_is_added_and_arguments_are_checked(
    traces: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = cw.WindowConfig(
        duration_s=0.5,
        n_windows=1,
        rtts_ms=(40.0,),
        bootstrap_rounds=100,
        silent_start_windows=False,
    )
    res = cw.run_windows([traces["steady"]], config=cfg, controllers=["reno"])
    assert res.controllers == ("cubic", "reno") and res.default is None
    assert any("cubic was added" in n for n in res.notes)
    with pytest.raises(ValueError, match="at least one"):
        cw.run_windows([], config=cfg)
    with pytest.raises(TypeError, match="sequence of paths"):
        cw.run_windows(str(traces["steady"]), config=cfg)  # type: ignore[arg-type]
    empty = tmp_path / "empty.down"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.down"):
        cw.run_windows([empty], config=cfg)
    # a trace claiming 2000 packets per ms (24 Gbit/s) against a bound of 1.5 M packets a
    # window: refused before anything runs
    monkeypatch.setattr(cw, "MAX_PACKETS_PER_WINDOW", 1_500_000)
    huge = tmp_path / "huge.down"
    huge.write_text("1\n" * 2000)
    with pytest.raises(ValueError, match="huge.down.*more than"):
        cw.plan_run([huge], config=cw.WindowConfig(duration_s=1.0))
    assert cw.plan_run([huge], config=cw.WindowConfig(duration_s=0.5)).total_runs > 0
    with pytest.raises(ValueError, match="rtts_ms"):
        cw.WindowConfig(rtts_ms=())
    with pytest.raises(ValueError, match="duplicates"):
        cw.WindowConfig(rtts_ms=(40.0, 40.0))
    with pytest.raises(ValueError, match="duration_s"):
        cw.WindowConfig(duration_s=0.0)
    with pytest.raises(ValueError, match="duration_s"):
        cw.WindowConfig(duration_s=cw.MAX_DURATION_S + 1)
    with pytest.raises(ValueError, match="n_windows"):
        cw.WindowConfig(n_windows=0)
    with pytest.raises(TypeError, match="n_windows"):
        cw.WindowConfig(n_windows=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_bdp"):
        cw.WindowConfig(buffer_bdp=-1.0)
    with pytest.raises(ValueError, match="bootstrap_rounds"):
        cw.WindowConfig(bootstrap_rounds=10)


def test_loss_violation_bound() -> None:
    assert cw._violates(0.11, 0.01) and not cw._violates(0.09, 0.01)
    assert not cw._violates(0.30, 0.20) and cw._violates(0.41, 0.20)
    assert math.isnan(cw._safe_ratio(1.0, 0.0))


def test_congestion_section_runs_the_windows(traces: dict[str, Path], tmp_path: Path) -> None:
    res = congestion.run(
        seed=0,
        controllers=("cubic", "bbr"),
        include_traces=True,
        scenarios=None,
        duration_s=1.0,
        windows=1,
        heldout_traces=[traces["outage"]],
        n_seeds=1,
        quick=True,
    )
    assert res.heldout is not None
    assert [w.start_s for w in res.heldout.windows] == [0.0, 2.001]
    assert all(s.kind == "builtin" for s in res.scenarios)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["heldout_windows"]["summary"]["controllers"]["bbr"]
    md = res.markdown()
    assert "### Held-out Mahimahi trace windows" in md and "| outage.down |" in md
    assert any("held-out trace windows" in h for h in res.headline())
    if matplotlib_available():
        names = [p.name for p in congestion.plot(res, tmp_path)]
        assert "congestion-windows.png" in names
    # naming scenarios runs only those
    only = congestion.run(
        seed=0,
        controllers=("cubic",),
        scenarios=["wired-clean"],
        duration_s=0.5,
        heldout_traces=[traces["outage"]],
    )
    assert only.heldout is None
