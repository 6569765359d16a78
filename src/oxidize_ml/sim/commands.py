"""CLI commands of the simulator area: ``demo``, ``simulate``, ``scenarios``.

Registered by `oxidize_ml.cli` through `register`. Everything heavy (the
simulator, evaluations, matplotlib, pyarrow) is imported inside the
commands, so ``oxidize-ml --help`` stays fast.

Telemetry from simulation
-------------------------
`SimTelemetry` turns a simulated run into the engine's telemetry export
format (`oxidize_ml.telemetry`), so training data can come straight from
the simulator: one `TelemetryCollector` per flow, fed from the simulator's
``on_interval`` hook with

- ``record_observation(features, now=SIM_EPOCH_S + t)`` every interval
  (absolute timestamps: simulated time plus a fixed epoch base, so exports
  merge with real ones on one time axis and a run is reproducible), and
- ``record_transition(s_k, a_k, r_{k+1}, s_{k+1})`` every interval after
  the first, with states and rewards from `CongestionStateEncoder` (the
  DQN's state and `congestion_reward`). ``a_k`` is the controller's own
  `DrlAction` when it decides per interval (BBR-style fallback, engine,
  DQN), otherwise the action of the shared table closest to what the
  controller did to its window over the interval (`nearest_action` from
  ``cwnd_k`` to ``cwnd_{k+1}``; a per-ack controller such as Reno then
  serves as a demonstrator). ``done`` is always False: the end of a
  simulated run is a time limit, not a terminal state.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from oxidize_ml.evaluation.congestion import CongestionEvalResult
    from oxidize_ml.evaluation.report import Report
    from oxidize_ml.features import NetworkFeatures
    from oxidize_ml.sim.results import RunResult
    from oxidize_ml.sim.scenarios import Scenario
    from oxidize_ml.telemetry import ExportManifest

SIM_EPOCH_S = 1_700_000_000.0
"""epoch base of simulated telemetry timestamps (2023-11-14T22:13:20Z): fixed, so the
same run always exports the same rows"""
DEFAULT_REPORT_DIR = "oxidize-report"

console = Console(width=None if Console().is_terminal else 160)


# ---------------------------------------------------------------- telemetry


class SimTelemetry:
    """Collect engine-format telemetry from a simulation (see the module docstring).

    Pass the instance as the ``on_interval`` hook of `oxidize_ml.sim.simulate`
    or `Simulation`, then call `bind` with the run's controllers (for their
    own actions) before it starts, and `export` after it ends.

    Parameters
    ----------
    n_flows
        Flows in the scenario (one collector and one state encoder each).
    source
        Source id prefix written into every row; flow ``i`` gets ``-f<i>``.
    """

    def __init__(self, n_flows: int, *, source: str) -> None:
        from oxidize_ml.congestion.actions import CwndLimits
        from oxidize_ml.congestion.state import CongestionStateEncoder
        from oxidize_ml.telemetry import TelemetryCollector, TelemetryConfig

        if n_flows < 1:
            raise ValueError(f"n_flows must be >= 1, got {n_flows}")
        prefix = source[:120]
        self.collectors = [
            TelemetryCollector(TelemetryConfig(source=f"{prefix}-f{i}")) for i in range(n_flows)
        ]
        self._encoders = [CongestionStateEncoder() for _ in range(n_flows)]
        self._prev: list[tuple[Any, int, Any] | None] = [None] * n_flows  # (state, cwnd, action)
        self._controllers: list[Any] = [None] * n_flows
        self._limits = CwndLimits()
        self.observations = 0
        self.transitions = 0

    def bind(self, controllers: list[Any]) -> None:
        """The run's controllers, to read ``last_action`` from those that decide per interval."""
        for i, c in enumerate(controllers[: len(self._controllers)]):
            self._controllers[i] = c
            limits = getattr(c, "limits", None)
            if limits is not None and i == 0:
                self._limits = limits

    def __call__(
        self,
        now: float,
        flow_index: int,
        features: NetworkFeatures,
        throughput_bps: float,
        cwnd: int,
    ) -> None:
        from oxidize_ml.congestion.actions import nearest_action

        t = SIM_EPOCH_S + now
        col = self.collectors[flow_index]
        col.record_observation(features, now=t)
        self.observations += 1
        state, reward = self._encoders[flow_index].update(features, throughput_bps, now=now)
        prev = self._prev[flow_index]
        if prev is not None:
            p_state, p_cwnd, p_action = prev
            action = (
                p_action if p_action is not None else nearest_action(p_cwnd, cwnd, self._limits)
            )
            col.record_transition(p_state, int(action), reward, state, now=t)
            self.transitions += 1
        ctrl = self._controllers[flow_index]
        own = getattr(ctrl, "last_action", None) if ctrl is not None else None
        self._prev[flow_index] = (state, int(cwnd), own)

    def export(self, directory: str | os.PathLike[str]) -> list[ExportManifest]:
        """One export per flow under ``directory`` (read them with `read_exports`)."""
        from oxidize_ml import __version__

        return [c.export(directory, source_version=__version__) for c in self.collectors]


def simulate_with_telemetry(
    scenario: Scenario,
    controller: Any,
    *,
    seed: int,
    duration_s: float | None = None,
    telemetry_dir: str | os.PathLike[str] | None = None,
    record_series: bool = True,
) -> tuple[RunResult, list[ExportManifest]]:
    """Run ``scenario`` and, with ``telemetry_dir``, export its telemetry there."""
    from oxidize_ml.sim.core import Simulation

    if telemetry_dir is None:
        from oxidize_ml.sim.runner import simulate

        return simulate(
            scenario, controller, seed=seed, duration_s=duration_s, record_series=record_series
        ), []
    name = controller if isinstance(controller, str) else getattr(controller, "name", "custom")
    tel = SimTelemetry(len(scenario.flows), source=f"sim-{scenario.name}-{name}-s{seed}")
    sim = Simulation(
        scenario,
        controller,
        seed=seed,
        duration_s=duration_s,
        record_series=record_series,
        on_interval=tel,
    )
    tel.bind(sim.controllers)
    result = sim.run()
    return result, tel.export(telemetry_dir)


# ---------------------------------------------------------------- helpers


def _controller(name: str, model: Path | None = None) -> Any:
    """A registry name, ``engine`` or ``dqn``; the value `simulate` accepts."""
    from oxidize_ml.sim.controllers.registry import default_registry

    reg = default_registry()
    if name in reg and model is None:
        return name
    if name == "engine":
        from oxidize_ml.evaluation.congestion_controllers import engine_controller_factory

        return engine_controller_factory()
    if name == "dqn":
        return _dqn(model)
    raise typer.BadParameter(
        f"unknown controller {name!r}; choose from {reg.names() + ['dqn', 'engine']}"
        + (" (--model only applies to dqn)" if model is not None else ""),
        param_hint="--controller",
    )


def _dqn(model: Path | None) -> Any:
    """The DQN factory for ``model`` (a model directory or weight file) or the spec's DQN
    shipped as the candidate ``models/candidates/dqn``."""
    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory

    if model is None:
        from oxidize_ml.models import PLAIN_DQN, candidate_dir

        model = candidate_dir(PLAIN_DQN)
        if model is None:
            raise typer.BadParameter(
                f"this package ships no trained DQN (models/candidates/{PLAIN_DQN}); pass "
                "--model DIR (a model directory from training)",
                param_hint="--model",
            )
    try:
        factory = dqn_factory(model)
        factory(flow_index=0, seed=0)  # a model of another state size fails here, not mid-run
        return factory
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(
            f"cannot load the DQN from {model}: {exc}", param_hint="--model"
        ) from None


def _pct(x: float) -> str:
    return f"{x * 100:.2f} %"


def _ms(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 1000:.1f}"


def _run_table(result: RunResult, title: str) -> Table:
    t = Table(title=title)
    for col in (
        "flow",
        "controller",
        "goodput (Mbit/s)",
        "utilisation",
        "p50 delay (ms)",
        "p95 delay (ms)",
        "loss",
        "stranded",
        "packets sent",
    ):
        t.add_column(col, justify="left" if col in ("flow", "controller") else "right")
    for f in result.flows:
        t.add_row(
            str(f.index),
            f.controller,
            f"{f.throughput_bps / 1e6:.2f}",
            _pct(f.utilisation),
            _ms(f.delay_p50_s),
            _ms(f.delay_p95_s),
            _pct(f.loss_rate),
            _pct(f.stranded_rate),
            f"{f.packets_sent:,}",
        )
    if len(result.flows) > 1:
        t.add_row(
            "all",
            "",
            f"{result.throughput_bps / 1e6:.2f}",
            _pct(result.utilisation),
            _ms(result.delay_p50_s),
            _ms(result.delay_p95_s),
            _pct(result.loss_rate),
            _pct(result.packets_stranded / result.packets_sent if result.packets_sent else 0.0),
            f"{result.packets_sent:,}",
            style="bold",
        )
    return t


def _plot_run(result: RunResult, scenario: Scenario, path: Path) -> Path:
    from oxidize_ml.evaluation import plots
    from oxidize_ml.evaluation.congestion import smooth as _smooth

    fig, axes = plots.subplot_grid(3, ncols=1, panel_size=(9.0, 2.4), sharex=True)
    for i, f in enumerate(result.flows):
        if f.series is None:
            continue
        s = f.series
        style = plots.series_style(f.controller, i)
        color = plots.PALETTE[i % len(plots.PALETTE)] if len(result.flows) > 1 else style["color"]
        label = f"flow {i} ({f.controller})"
        axes[0].plot(s.time_s, s.cwnd_bytes / 1500.0, color=color, lw=1.0, label=label)
        axes[1].plot(s.time_s, s.rtt_s * 1000.0, color=color, lw=1.0)
        axes[2].plot(s.time_s, _smooth(s.throughput_bps) / 1e6, color=color, lw=1.0)
    axes[0].set_ylabel("cwnd (packets)")
    axes[1].set_ylabel("smoothed RTT (ms)")
    axes[2].set_ylabel("goodput (Mbit/s,\n100 ms mean)")
    axes[2].set_xlabel("time (s)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper right", frameon=False, fontsize=8)
    fig.suptitle(f"{scenario.name}, seed {result.seed}")
    plots.tidy(fig, left_in=0.9, bottom_in=0.6, hspace=0.15)
    return plots.save_figure(fig, path)


def _print_congestion(result: CongestionEvalResult) -> None:
    table = Table(
        title="Congestion control: goodput (Mbit/s) / p95 one-way delay (ms); best power in bold"
    )
    table.add_column("scenario", overflow="fold")
    table.add_column("split")
    for c in result.controllers:
        table.add_column(c, justify="right")
    winners = result.winners()
    for sc in result.scenarios:
        cells = []
        for c in result.controllers:
            r = result.row(sc.name, c)
            d = "-" if math.isnan(r.delay_p95_ms) else f"{r.delay_p95_ms:.0f}"
            text = f"{r.throughput_mbps:.1f} / {d}"
            if winners.get(sc.name, {}).get("power") == c:
                text = f"[bold green]{text}[/]"
            cells.append(text)
        table.add_row(sc.name, "held out" if sc.held_out else "train", *cells)
    console.print(table)


def _print_summary(report: Report) -> None:
    status = Table(title="Report sections")
    for col in ("section", "status", "run (s)", "figures", "figures (s)"):
        status.add_column(col, justify="right" if col.endswith("(s)") else "left")
    colour = {"ok": "green", "failed": "red", "skipped": "yellow", "not available": "dim"}
    for o in report.outcomes:
        status.add_row(
            o.section.title,
            f"[{colour.get(o.status, 'white')}]{o.status}[/]",
            f"{o.wall_s:.1f}",
            str(len(o.figures)),
            f"{o.plot_s:.1f}",
        )
    console.print(status)
    cong = next((o for o in report.outcomes if o.section.key == "congestion"), None)
    if cong is not None and cong.status == "ok":
        _print_congestion(cong.result)
    lines = [h for o in report.outcomes for h in o.headline()]
    if lines:
        console.print("[bold]Who wins where[/]")
        for h in lines:
            console.print(f"  - {h}")
    for o in report.outcomes:
        if o.status == "failed":
            console.print(f"[red]{o.section.title} failed:[/] {o.error}")
        elif o.status != "ok":
            console.print(f"[dim]{o.section.title}: {o.status} ({o.error})[/]")
        if o.figure_error:
            console.print(f"[yellow]{o.section.title}: figures not drawn:[/] {o.figure_error}")


# ---------------------------------------------------------------- commands


def register(app: typer.Typer) -> None:
    """Add ``demo``, ``simulate`` and ``scenarios`` to ``app``."""

    @app.command()
    def demo(
        out: Annotated[Path, typer.Option("--out", help="report directory")] = Path(
            DEFAULT_REPORT_DIR
        ),
        seed: Annotated[int, typer.Option(min=0, help="seed of every evaluation")] = 0,
        quick: Annotated[
            bool,
            typer.Option(
                "--quick/--full",
                help="quick: shorter runs (e.g. half-length congestion "
                "scenarios, one run each), about a third of the time; full (the default, about "
                "1.5 minutes on 2 busy cores): every evaluation at full length with several seeds",
            ),
        ] = False,
        only: Annotated[
            list[str] | None,
            typer.Option(
                "--only",
                help="run only this section (repeatable): congestion, fec, paths, compression",
            ),
        ] = None,
        scenario: Annotated[
            list[str] | None,
            typer.Option("--scenario", help="congestion: only this scenario (repeatable)"),
        ] = None,
        duration: Annotated[
            float | None,
            typer.Option("--duration", min=0.1, help="congestion: simulated seconds per run"),
        ] = None,
        windows: Annotated[
            int | None,
            typer.Option(
                "--windows",
                min=1,
                max=100,
                help="congestion: windows per held-out trace (default "
                "3, quick 2; each adds about 3 s)",
            ),
        ] = None,
        dqn_model: Annotated[
            Path | None,
            typer.Option(
                "--dqn-model",
                help="congestion: also run the DQN of this model directory "
                "(e.g. a candidate before it is shipped)",
            ),
        ] = None,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
        models: Annotated[
            bool,
            typer.Option(
                "--models/--no-models",
                help="also evaluate the shipped learned models (LSTM in "
                "fec, MLP in compression, DQN in congestion) beside their heuristics",
            ),
        ] = True,
    ) -> None:
        """Run every evaluation, write the report (report.md, results.json, figures), and
        print who wins where."""
        from oxidize_ml.evaluation.report import build_report_full

        learned: dict[str, dict[str, Any]] = {}
        if models:
            from oxidize_ml.evaluation.learned import shipped_model_options

            learned, note = shipped_model_options()
            console.print(note)
        cong: dict[str, Any] = dict(learned.get("congestion", {}))
        if scenario:
            cong["scenarios"] = list(scenario)
        if duration is not None:
            cong["duration_s"] = duration
        if windows is not None:
            cong["windows"] = windows
        if dqn_model is not None:
            cong["extra_controllers"] = [("dqn", _dqn(dqn_model))]
        options: dict[str, Any] = {k: v for k, v in learned.items() if k != "congestion"}
        if cong:
            options["congestion"] = cong
        if only:
            options = {k: v for k, v in options.items() if k in only}
        try:
            report = build_report_full(
                out,
                seed=seed,
                quick=quick,
                progress=progress,
                sections=only or None,
                options=options,
                console=console,
            )
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        _print_summary(report)
        console.print(
            f"Report: [bold]{report.report_path}[/] (data: {report.results_path}, "
            f"wall time {report.wall_s:.1f} s)"
        )
        if report.failed:
            raise typer.Exit(1)

    @app.command()
    def simulate(
        scenario: Annotated[
            str | None,
            typer.Option("--scenario", help="built-in scenario name (see `oxidize-ml scenarios`)"),
        ] = None,
        trace: Annotated[
            Path | None,
            typer.Option("--trace", help="a Mahimahi trace file as the bottleneck link"),
        ] = None,
        controller: Annotated[
            str,
            typer.Option(
                "--controller",
                help="reno, cubic, bbr, engine (MlEngine with the shipped models) "
                "or dqn (with --model)",
            ),
        ] = "reno",
        model: Annotated[
            Path | None,
            typer.Option(
                "--model",
                help="with --controller dqn: a trained model directory or weight file "
                "(default: the spec's DQN shipped in models/candidates/dqn)",
            ),
        ] = None,
        seed: Annotated[int, typer.Option(min=0, help="seed of every random stream")] = 0,
        duration: Annotated[
            float | None,
            typer.Option(
                "--duration", min=0.01, help="simulated seconds (default: the scenario's)"
            ),
        ] = None,
        rtt_ms: Annotated[
            float, typer.Option("--rtt-ms", min=0.1, help="with --trace: base round-trip time, ms")
        ] = 60.0,
        telemetry: Annotated[
            Path | None,
            typer.Option(
                "--telemetry", help="export training telemetry (engine format) into this root"
            ),
        ] = None,
        plot: Annotated[
            Path | None,
            typer.Option("--plot", help="write cwnd / RTT / goodput over time to this PNG"),
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="write the run summary as JSON")
        ] = None,
    ) -> None:
        """Simulate one scenario with one controller and print its metrics."""
        from oxidize_ml.sim.scenarios import get_scenario

        if (scenario is None) == (trace is None):
            console.print("[red]error:[/] give exactly one of --scenario NAME or --trace FILE")
            raise typer.Exit(2)
        try:
            if trace is not None:
                from oxidize_ml.evaluation.congestion import TRACE_BUFFER_BDP
                from oxidize_ml.sim.links import BufferSpec
                from oxidize_ml.sim.scenarios import scenario_from_trace

                sc = scenario_from_trace(
                    trace, rtt_s=rtt_ms / 1000.0, buffer=BufferSpec(bdp=TRACE_BUFFER_BDP)
                )
            else:
                assert scenario is not None
                sc = get_scenario(scenario)
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        ctrl = _controller(controller, model)
        with console.status(f"simulating {sc.name} with {controller}..."):
            result, manifests = simulate_with_telemetry(
                sc,
                ctrl,
                seed=seed,
                duration_s=duration,
                telemetry_dir=telemetry,
                record_series=plot is not None,
            )
        console.print(
            _run_table(
                result,
                f"{sc.name} / {controller} / seed {seed} / {result.duration_s:g} s simulated",
            )
        )
        if manifests:
            rows = sum(m.tables["loss"].rows + m.tables["congestion"].rows for m in manifests)
            console.print(f"telemetry: {len(manifests)} export(s), {rows:,} rows -> {telemetry}")
        if plot is not None:
            console.print(f"plot: {_plot_run(result, sc, plot)}")
        if json_out is not None:
            from oxidize_ml._atomic import atomic_write_text

            atomic_write_text(json_out, json.dumps(result.to_dict(), indent=2) + "\n", mode=0o644)
            console.print(f"json: {json_out}")

    @app.command()
    def scenarios() -> None:
        """List the built-in simulator scenarios and the Mahimahi traces found."""
        from oxidize_ml.evaluation.splits import HELDOUT_SCENARIOS, HELDOUT_TRACES, trace_dir
        from oxidize_ml.sim.scenarios import get_scenario, list_scenarios
        from oxidize_ml.sim.traces import load_mahimahi

        table = Table(title="Simulator scenarios (oxidize-ml simulate --scenario NAME)")
        for col in (
            "name",
            "link",
            "RTT (ms)",
            "buffer",
            "random loss",
            "flows",
            "duration (s)",
            "split",
        ):
            table.add_column(
                col, justify="right" if col in ("RTT (ms)", "flows", "duration (s)") else "left"
            )
        for name in list_scenarios():
            sc = get_scenario(name)
            table.add_row(
                name,
                _link_text(sc.link.to_dict()),
                ", ".join(f"{f.base_rtt_s * 1000:g}" for f in sc.flows[:1])
                + (f" (x{len(sc.flows)})" if len(sc.flows) > 1 else ""),
                _buffer_text(sc.buffer.to_dict()),
                "none" if sc.loss is None else _loss_text(sc.loss.to_dict()),
                str(len(sc.flows)),
                f"{sc.duration_s:g}",
                "held out" if name in HELDOUT_SCENARIOS else "train",
            )
        console.print(table)
        d = trace_dir()
        if d is None:
            console.print(
                "Mahimahi traces: none found (set OXIDIZE_TRACE_DIR to a folder of "
                "*.down / *.up files)"
            )
            return
        tt = Table(title=f"Mahimahi traces in {d} (oxidize-ml simulate --trace FILE)")
        for col in ("file", "duration (s)", "mean capacity (Mbit/s)", "split"):
            tt.add_column(col, justify="left" if col in ("file", "split") else "right")
        for p in sorted(d.iterdir()):
            if p.suffix not in (".down", ".up") or not p.is_file():
                continue
            try:
                ms = load_mahimahi(p)
            except ValueError as exc:
                tt.add_row(p.name, "-", "-", f"[red]unreadable: {exc}[/]")
                continue
            dur = float(ms[-1]) / 1000.0
            tt.add_row(
                p.name,
                f"{dur:.0f}",
                f"{ms.size * 12000 / dur / 1e6:.2f}",
                "held out" if p.name in HELDOUT_TRACES else "train",
            )
        console.print(tt)


def _link_text(d: dict[str, Any]) -> str:
    model = d.get("model")
    if model == "constant":
        return f"constant {d['rate_bps'] / 1e6:g} Mbit/s"
    if model == "steps":
        return "steps " + " -> ".join(f"{r / 1e6:g}" for _, r in d["steps"]) + " Mbit/s"
    if model == "synthetic-cellular":
        rates = d["state_rates_bps"]
        return f"synthetic cellular {min(rates) / 1e6:g}-{max(rates) / 1e6:g} Mbit/s"
    if model == "mahimahi":
        return f"trace {Path(d['path']).name}"
    return str(model)


def _buffer_text(d: dict[str, Any]) -> str:
    if d.get("bytes") is not None:
        return f"{d['bytes']} B"
    if d.get("packets") is not None:
        return f"{d['packets']} packets"
    return f"{d.get('bdp') or 1.0:g} BDP"


def _loss_text(d: dict[str, Any]) -> str:
    d = dict(d)
    model = d.pop("model", "?")
    return f"{model} " + ", ".join(f"{k}={v:g}" for k, v in d.items())
