"""CLI commands of the simulator area (demo, simulate, scenarios) and simulated telemetry."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oxidize_ml.cli import app
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.evaluation.plots import matplotlib_available
from oxidize_ml.sim import Simulation, get_scenario, list_scenarios
from oxidize_ml.sim.commands import SIM_EPOCH_S, SimTelemetry
from oxidize_ml.telemetry import read_exports
from oxidize_ml.types import DrlAction

runner = CliRunner()
TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"


def test_scenarios_lists_the_suite() -> None:
    res = runner.invoke(app, ["scenarios"])
    assert res.exit_code == 0, res.output
    for name in list_scenarios():
        assert name in res.output
    assert "held out" in res.output
    if TRACES.is_dir():
        assert "Verizon-LTE-short.down" in res.output


def test_simulate_writes_readable_telemetry_and_a_plot(tmp_path: Path) -> None:
    tel = tmp_path / "tel"
    args = [
        "simulate",
        "--scenario",
        "wired-clean",
        "--controller",
        "cubic",
        "--duration",
        "1.5",
        "--seed",
        "2",
        "--telemetry",
        str(tel),
        "--json",
        str(tmp_path / "run.json"),
    ]
    if matplotlib_available():
        args += ["--plot", str(tmp_path / "run.png")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "wired-clean" in res.output and "goodput" in res.output
    tables = read_exports(tel)
    loss = tables["loss"].to_pydict()
    cong = tables["congestion"].to_pydict()
    n_ticks = 150  # 1.5 s at 10 ms
    # loss rows: every tick whose 50-100 ms label window has passed
    assert n_ticks - 12 <= len(loss["timestamp"]) <= n_ticks
    assert len(cong["timestamp"]) == n_ticks - 1  # one transition per tick after the first
    assert min(loss["timestamp"]) == pytest.approx(SIM_EPOCH_S + 0.01)
    assert all(len(s) == StateConfig().size for s in cong["state"])
    assert all(-1.0 <= r <= 1.0 for r in cong["reward"])
    assert not any(cong["done"])
    assert set(tables["congestion"].column("source").to_pylist()) == {"sim-wired-clean-cubic-s2-f0"}
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["scenario"] == "wired-clean" and summary["seed"] == 2
    if matplotlib_available():
        assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"


def test_telemetry_records_the_controllers_own_actions(tmp_path: Path) -> None:
    sc = get_scenario("wired-clean")
    tel = SimTelemetry(1, source="t")
    taken: list[int] = []

    def hook(now, flow, features, thr, cwnd):
        tel(now, flow, features, thr, cwnd)
        taken.append(int(sim.controllers[0].last_action))

    sim = Simulation(sc, "bbr", seed=0, duration_s=1.0, on_interval=hook)
    tel.bind(sim.controllers)
    sim.run()
    tel.export(tmp_path)
    actions = read_exports(tmp_path)["congestion"].column("action").to_pylist()
    assert actions == taken[:-1]  # transition k carries the action taken at tick k
    assert tel.transitions == len(taken) - 1


def test_per_ack_controllers_get_the_nearest_table_action(tmp_path: Path) -> None:
    from oxidize_ml.congestion.actions import CwndLimits, nearest_action
    from oxidize_ml.sim.commands import simulate_with_telemetry

    result, manifests = simulate_with_telemetry(
        get_scenario("high-bdp"), "reno", seed=0, duration_s=0.6, telemetry_dir=tmp_path
    )
    assert len(manifests) == 1
    actions = read_exports(tmp_path)["congestion"].column("action").to_pylist()
    cwnd = result.flows[0].series.cwnd_bytes
    expected = [int(nearest_action(a, b, CwndLimits())) for a, b in pairwise(cwnd)]
    assert actions == expected
    # slow start: the window doubles once per 100 ms RTT, when the acks come back
    assert actions.count(DrlAction.Increase10) >= 4


def test_simulate_argument_errors(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", "--duration", "1"])
    assert res.exit_code == 2 and "exactly one" in res.output
    res = runner.invoke(app, ["simulate", "--scenario", "nope"])
    assert res.exit_code == 2 and "unknown scenario" in res.output
    res = runner.invoke(app, ["simulate", "--scenario", "wired-clean", "--controller", "vegas"])
    assert res.exit_code == 2
    bad = tmp_path / "bad.down"
    bad.write_text("x\n")
    res = runner.invoke(app, ["simulate", "--trace", str(bad)])
    assert res.exit_code == 2 and "bad.down" in res.output


def test_simulate_engine_on_a_trace() -> None:
    if not TRACES.is_dir():
        pytest.skip("shared Mahimahi traces are not present")
    res = runner.invoke(
        app,
        [
            "simulate",
            "--trace",
            str(TRACES / "Verizon-LTE-short.down"),
            "--controller",
            "engine",
            "--duration",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "engine" in res.output


def test_dqn_model_runs_in_simulate_and_demo(tmp_path: Path) -> None:
    from oxidize_ml.runtime.configs import DqnMlpConfig
    from oxidize_ml.runtime.weights import encode_weights

    cfg = DqnMlpConfig(n_inputs=StateConfig().size, hidden=16)
    rng = np.random.default_rng(0)
    widths = [cfg.n_inputs] + [cfg.hidden] * cfg.n_hidden_layers + [cfg.n_actions]
    tensors = {}
    for k, (a, b) in enumerate(pairwise(widths)):
        tensors[f"layers.{k}.weight"] = rng.normal(0.0, 0.3, (b, a))
        tensors[f"layers.{k}.bias"] = rng.normal(0.0, 0.1, b)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    # random weights: this checks the plumbing, not the policy
    (model_dir / "congestion_controller.safetensors").write_bytes(encode_weights(tensors, cfg))
    res = runner.invoke(
        app,
        [
            "simulate",
            "--scenario",
            "wired-clean",
            "--controller",
            "dqn",
            "--model",
            str(model_dir),
            "--duration",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "dqn" in res.output
    out = tmp_path / "rep"
    res = runner.invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--only",
            "congestion",
            "--scenario",
            "wired-clean",
            "--duration",
            "1",
            "--dqn-model",
            str(model_dir),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert "dqn" in data["sections"]["congestion"]["result"]["controllers"]
    res = runner.invoke(
        app,
        [
            "simulate",
            "--scenario",
            "wired-clean",
            "--controller",
            "dqn",
            "--model",
            str(tmp_path / "missing"),
        ],
    )
    assert res.exit_code == 2


def test_demo_quick_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = runner.invoke(
        app,
        [
            "demo",
            "--quick",
            "--out",
            str(out),
            "--only",
            "congestion",
            "--scenario",
            "wired-clean",
            "--scenario",
            "shallow-buffer",
            "--duration",
            "1",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "report.md").is_file() and (out / "results.json").is_file()
    assert "Who wins where" in res.output
    assert "shallow-buffer" in res.output
    assert str(out / "report.md") in res.output.replace("\n", "")
    data = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in data["sections"]["congestion"]["result"]["scenarios"]] == [
        "wired-clean",
        "shallow-buffer",
    ]
    res = runner.invoke(app, ["demo", "--out", str(out), "--only", "nope", "--no-progress"])
    assert res.exit_code == 2


def test_simulate_dqn_without_a_model_runs_the_specs_dqn_shipped_as_a_candidate() -> None:
    res = runner.invoke(
        app,
        ["simulate", "--scenario", "wired-clean", "--controller", "dqn", "--duration", "1"],
    )
    assert res.exit_code == 0, res.output
    assert "dqn" in res.output
