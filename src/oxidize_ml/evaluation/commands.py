"""``oxidize-ml evaluate``: the project's evaluations on the user's own traces and captures.

One typer sub-app, registered by `oxidize_ml.cli` through `register`::

    oxidize-ml evaluate congestion --trace FILE [--trace FILE ...] --json OUT [--report DIR]
    oxidize-ml evaluate fairness [--heldout | --trace FILE ...] --json OUT [--report DIR]
    oxidize-ml evaluate fec --trace FILE [...] --json OUT
    oxidize-ml evaluate compression --pcap FILE [...] --json OUT
    oxidize-ml evaluate paths --trace FILE [...] --json OUT

Every command writes one JSON file (atomically) whose ``"summary"`` object has
the keys of issue 11, and prints a short table. ``congestion`` runs
`oxidize_ml.evaluation.congestion_windows`, ``fairness``
`oxidize_ml.evaluation.fairness`; the other three call the
evaluation module of their area (``evaluate_fec_traces``, ``evaluate_pcaps``,
``evaluate_path_traces``), imported when the command runs: a build without
one says so ("not available in this version", exit code 2).

Exit codes: 0 done; 2 bad option, unreadable / empty / malformed input file
(the message names it), or an evaluation this build does not have.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from oxidize_ml.evaluation.congestion_windows import WindowEvalResult
    from oxidize_ml.evaluation.fairness import FairnessResult

console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True)

evaluate_app = typer.Typer(
    help="Run the project's evaluations on your own traces and packet captures; each writes "
    'a JSON file with a "summary" object (and congestion a Markdown report).',
    no_args_is_help=True,
)

DEFAULT_CONTROLLERS = "reno,cubic,bbr,engine,dqn"
MAX_INPUT_FILES = 1000
JSON_FILE_MODE = 0o644
"""results are meant to be read and shared"""

ProgressFn = Callable[[int, int, str], None]
_OPTION_OF_FIELD = {
    "rtts_ms": "--rtt-ms",
    "duration_s": "--duration",
    "n_windows": "--windows",
    "buffer_bdp": "--buffer-bdp",
    "bootstrap_rounds": "--bootstrap",
}


_C = TypeVar("_C")


# Options several commands share, declared once.
_JsonOut = Annotated[Path, typer.Option("--json", help="write the results here (JSON)")]
_RttMs = Annotated[str, typer.Option("--rtt-ms", help="base round-trip times, ms, comma-separated")]
_DqnModel = Annotated[
    Path | None, typer.Option("--dqn-model", help="model directory of the dqn controller")
]
_RunSeed = Annotated[int, typer.Option(help="seed of the runs and the bootstrap")]
_Bootstrap = Annotated[
    int, typer.Option("--bootstrap", help="bootstrap replicates of the confidence intervals")
]
_Progress = Annotated[bool, typer.Option(help="show a progress bar")]


def _ci_cell(v: tuple[float, float], *, digits: int) -> str:
    """A confidence interval as ``lo-hi`` (``-`` when either end is not finite)."""
    lo, hi = v
    return (
        "-" if not (math.isfinite(lo) and math.isfinite(hi)) else f"{lo:.{digits}f}-{hi:.{digits}f}"
    )


def _config(factory: Callable[..., _C], options: dict[str, str], **fields: Any) -> _C:
    """``factory(**fields)``; a ``ValueError``/``TypeError`` becomes a usage error (exit 2)
    whose message names the command-line option instead of the config field."""
    try:
        return factory(**fields)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        for field, option in options.items():
            msg = msg.replace(field, option)
        raise _fail(msg) from None


"""`WindowConfig` field -> the option that sets it (errors name what the user typed)"""


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command group to ``app``."""
    app.add_typer(evaluate_app, name="evaluate")


# ---------------------------------------------------------------- helpers


def _fail(message: str) -> typer.Exit:
    """Print ``message`` as an error (file names may hold brackets: no markup) -> exit 2."""
    from rich.markup import escape

    err_console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


def parse_floats(
    text: str,
    *,
    option: str,
    lo_exclusive: float = 0.0,
    hi: float | None = None,
    max_items: int = 10,
) -> tuple[float, ...]:
    """``"40,100"`` -> ``(40.0, 100.0)``; `typer.BadParameter` naming ``option`` otherwise."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise typer.BadParameter(
            f"expected comma-separated numbers, got {text!r}", param_hint=option
        )
    if len(parts) > max_items:
        raise typer.BadParameter(f"at most {max_items} values, got {len(parts)}", param_hint=option)
    out: list[float] = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise typer.BadParameter(f"{p!r} is not a number", param_hint=option) from None
        if not math.isfinite(v) or v <= lo_exclusive or (hi is not None and v > hi):
            rng = f"> {lo_exclusive:g}" + (f" and <= {hi:g}" if hi is not None else "")
            raise typer.BadParameter(f"{p} is out of range (must be {rng})", param_hint=option)
        if v in out:
            raise typer.BadParameter(f"{p} is listed twice", param_hint=option)
        out.append(v)
    return tuple(out)


def _heldout_traces() -> list[Path]:
    """The project's held-out traces (`oxidize_ml.evaluation.splits`), or a usage error
    saying where they are looked for."""
    from oxidize_ml.evaluation.splits import ENV_TRACE_DIR, HELDOUT_TRACES, trace_paths

    files = trace_paths(HELDOUT_TRACES)
    if not files:
        raise _fail(
            f"the held-out traces were not found (set {ENV_TRACE_DIR} to the folder "
            f"holding {', '.join(HELDOUT_TRACES)})"
        )
    return files


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise typer.BadParameter(f"must be >= 0, got {seed}", param_hint="--seed")


def _check_files(paths: list[Path] | None, option: str) -> list[Path]:
    """The given input files, each an existing readable regular file (exit 2 naming it)."""
    if not paths:
        raise _fail(f"give at least one {option} FILE")
    if len(paths) > MAX_INPUT_FILES:
        raise _fail(f"at most {MAX_INPUT_FILES} {option} files, got {len(paths)}")
    for p in paths:
        if not p.exists():
            raise _fail(f"{option} {p}: no such file")
        if not p.is_file():
            raise _fail(f"{option} {p}: not a regular file")
        if not os.access(p, os.R_OK):
            raise _fail(f"{option} {p}: not readable (permission denied)")
    return paths


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """``data`` as indented JSON, written atomically (NaN/inf become null)."""
    from oxidize_ml._atomic import atomic_write_text
    from oxidize_ml.evaluation.report import jsonable

    return atomic_write_text(
        path, json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n", mode=JSON_FILE_MODE
    )


@contextmanager
def _progress_bar(enabled: bool, title: str) -> Iterator[ProgressFn | None]:
    """A rich progress bar on stderr; yields ``progress(done, total, label)`` or None."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=None)

        def tick(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{title}: {label}"[:48])

        yield tick


def _optional(module: str, name: str, command: str) -> Callable[..., dict[str, Any]]:
    """``module.name`` or exit 2: this build does not have that evaluation."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise _fail(
                f"`oxidize-ml evaluate {command}` is not available in this version "
                f"({module} is missing)"
            ) from None
        raise
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise _fail(
            f"`oxidize-ml evaluate {command}` is not available in this version "
            f"({module}.{name} is missing)"
        )
    # getattr gives Any; the evaluations all return their JSON summary.
    return cast(Callable[..., dict[str, Any]], fn)


def _call(
    fn: Callable[..., dict[str, Any]],
    files: list[Path],
    options: dict[str, tuple[tuple[str, ...], Any, bool]],
) -> dict[str, Any]:
    """Call an area's evaluation with the options its signature takes.

    ``options[label] = (accepted parameter names, value, given_by_user)``: the
    value goes to the first name the function accepts; an option the user gave
    that the function does not take is an error (exit 2), a default one is
    left to the function's own default.
    """
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    for label, (names, value, given) in options.items():
        if value is None:  # not given: the function's own default
            continue
        name = next((n for n in names if n in params), None)
        if name is None:
            if given:
                raise _fail(
                    f"{label} is not supported by this version's {fn.__module__}.{fn.__name__}"
                )
            continue
        kwargs[name] = value
    try:
        result = fn(files, **kwargs)
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    if not isinstance(result, dict) or not isinstance(result.get("summary"), dict):
        raise TypeError(f"{fn.__module__}.{fn.__name__} returned no 'summary' object")
    return result


def _summary_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    t = Table(title=title)
    keys: list[str] = []
    for r in rows.values():
        for k in r:
            if k not in keys and not isinstance(r[k], dict):
                keys.append(k)
    t.add_column("name")
    for k in keys:
        t.add_column(k, justify="right")
    for name, r in rows.items():
        t.add_row(name, *[_cell(r.get(k)) for k in keys])
    return t


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else "-"
    return str(v)


def _write_results(
    json_out: Path, command: str, data: dict[str, Any], inputs: str, files: list[Path]
) -> None:
    """Write ``data`` as the command's JSON, with the command line, the package version
    and the input files (under ``inputs``)."""
    from oxidize_ml import __version__

    meta = {"command": f"oxidize-ml evaluate {command}", "version": __version__}
    write_json(json_out, {**data, **meta, inputs: [str(p) for p in files]})


def _planned(plan_fn: Callable[..., _C], *args: Any, **kwargs: Any) -> _C:
    """``plan_fn(*args, **kwargs)``; a ``ValueError`` (a bad trace, an option the
    config refused) becomes a usage error (exit 2)."""
    try:
        return plan_fn(*args, **kwargs)
    except ValueError as exc:
        raise _fail(str(exc)) from None


# ---------------------------------------------------------------- congestion


def _dqn_factory(model: Path | None, *, required: bool) -> Any:
    """The DQN controller factory of ``model`` (default: the spec's DQN shipped as the
    candidate ``models/candidates/dqn``); None when not ``required`` and the package ships
    none."""
    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory

    if model is None:
        from oxidize_ml.models import PLAIN_DQN, candidate_dir

        model = candidate_dir(PLAIN_DQN)
        if model is None:
            if required:
                raise _fail(
                    f"this package ships no trained DQN (models/candidates/{PLAIN_DQN}); pass "
                    "--dqn-model DIR or drop dqn from --controllers"
                )
            return None
    try:
        factory = dqn_factory(model)
        factory(flow_index=0, seed=0)  # a model of another state size fails here, not mid-run
    except (ValueError, OSError) as exc:
        if not required:
            return None
        raise _fail(f"cannot load the DQN from {model}: {exc}") from None
    return factory


def _controllers(text: str, dqn_model: Path | None, *, explicit: bool) -> list[Any]:
    from oxidize_ml.sim.controllers.registry import default_registry

    names = [n.strip() for n in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise typer.BadParameter(
            f"expected comma-separated names, got {text!r}", param_hint="--controllers"
        )
    known = [*default_registry().names(), "engine", "dqn"]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown controller(s) {unknown}; choose from {known}", param_hint="--controllers"
        )
    if len(set(names)) != len(names):
        raise typer.BadParameter(
            f"a controller is listed twice: {names}", param_hint="--controllers"
        )
    out: list[Any] = []
    for n in names:
        if n == "dqn":
            f = _dqn_factory(dqn_model, required=explicit or dqn_model is not None)
            if f is None:
                err_console.print("[yellow]note:[/] no shipped DQN model: dqn is skipped")
                continue
            out.append(("dqn", f))
        else:
            out.append(n)
    return out


def _print_congestion(result: WindowEvalResult) -> None:
    from oxidize_ml.evaluation.formatting import percent

    t = Table(
        title=f"Held-out windows vs CUBIC ({len(result.units)} window x RTT runs; "
        "95 % paired bootstrap intervals)"
    )
    for col in (
        "controller",
        "goodput x CUBIC",
        "95 % CI",
        "p95 queueing x CUBIC",
        "95 % CI",
        "worst window",
        "max loss",
        "loss violations",
    ):
        t.add_column(col, justify="left" if col == "controller" else "right")

    ci = functools.partial(_ci_cell, digits=2)

    for a in result.aggregates:
        name = f"{a.controller} (default)" if a.controller == result.default else a.controller
        t.add_row(
            name,
            _cell(a.goodput_ratio_vs_cubic),
            ci(a.goodput_ratio_ci),
            _cell(a.queue_delay_ratio_vs_cubic),
            ci(a.queue_delay_ratio_ci),
            _cell(a.worst_goodput_ratio_vs_cubic),
            percent(a.max_loss, 1),
            str(a.loss_violations),
        )
    console.print(t)
    flagged = [w for w in result.windows if w.silent_start or w.outage]
    if flagged:
        console.print(
            f"{len(flagged)} of {len(result.windows)} windows start in a silence or "
            f"contain an outage (>= {result.config.silence_ms} ms): see the JSON "
            "'windows' and the report's per-window table."
        )
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")


def write_congestion_report(
    result: WindowEvalResult, out_dir: Path, traces: list[Path]
) -> list[Path]:
    """``out_dir/report.md`` (summary, targets, per-window table) and its figure."""
    from oxidize_ml._atomic import atomic_write_text
    from oxidize_ml.evaluation.congestion_windows import plot_windows
    from oxidize_ml.evaluation.plots import REPORT_FILE_MODE, matplotlib_available

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures: list[Path] = []
    fig_note = ""
    if matplotlib_available():
        figures = plot_windows(result, out_dir / "figures")
    else:
        fig_note = "Figures not drawn: matplotlib is not installed (pip install 'oxidize-ml[sim]')."
    lines = [
        "# oxidize-ml evaluate congestion",
        "",
        "Traces: " + ", ".join(f"`{p}`" for p in traces),
        "",
        result.markdown().rstrip(),
    ]
    for f in figures:
        lines += ["", f"![{f.stem}](figures/{f.name})"]
    if fig_note:
        lines += ["", fig_note]
    written += figures
    written.append(
        atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n", mode=REPORT_FILE_MODE)
    )
    return written


@evaluate_app.command("congestion")
def congestion_cmd(
    json_out: _JsonOut,
    trace: Annotated[
        list[Path] | None,
        typer.Option(
            "--trace", help="a Mahimahi trace file (repeatable); each gives several windows"
        ),
    ] = None,
    heldout: Annotated[
        bool,
        typer.Option(
            "--heldout",
            help="use the project's held-out traces (oxidize_ml.evaluation.splits) "
            "instead of --trace",
        ),
    ] = False,
    rtt_ms: _RttMs = "40,100",
    duration: Annotated[
        float, typer.Option("--duration", help="seconds per window (simulated)")
    ] = 30.0,
    windows: Annotated[
        int,
        typer.Option(
            "--windows", help="evenly spaced windows per trace (from 0, 1/N, 2/N ... of it)"
        ),
    ] = 3,
    buffer_bdp: Annotated[
        float,
        typer.Option(
            "--buffer-bdp", help="bottleneck buffer in BDPs of the trace's mean rate x RTT"
        ),
    ] = 2.0,
    silent_starts: Annotated[
        bool,
        typer.Option(
            "--silent-starts/--no-silent-starts",
            help="also start a window into each trace's longest silence of >= 500 ms",
        ),
    ] = True,
    controllers: Annotated[
        str | None,
        typer.Option(
            "--controllers",
            help=f"comma-separated: reno, cubic, bbr, engine (MlEngine() as "
            f"shipped), dqn (the shipped DQN or --dqn-model); default {DEFAULT_CONTROLLERS} (dqn "
            "only when a model is shipped)",
        ),
    ] = None,
    dqn_model: _DqnModel = None,
    seed: _RunSeed = 0,
    bootstrap: _Bootstrap = 2000,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="also write report.md and figures into this directory"),
    ] = None,
    progress: _Progress = True,
) -> None:
    """Every controller on windows of your traces, as ratios to CUBIC on the same windows."""
    from oxidize_ml.evaluation.congestion_windows import WindowConfig, plan_run, run_windows

    if heldout == bool(trace):
        raise _fail("give --trace FILE (repeatable) or --heldout, not both and not neither")
    if heldout:
        files = _heldout_traces()
    else:
        files = _check_files(trace, "--trace")
    rtts = parse_floats(rtt_ms, option="--rtt-ms", hi=10_000.0)
    _check_seed(seed)
    cfg = _config(
        WindowConfig,
        _OPTION_OF_FIELD,
        rtts_ms=rtts,
        duration_s=duration,
        n_windows=windows,
        buffer_bdp=buffer_bdp,
        silent_start_windows=silent_starts,
        bootstrap_rounds=bootstrap,
    )
    ctrls = _controllers(
        controllers or DEFAULT_CONTROLLERS, dqn_model, explicit=controllers is not None
    )
    plan = _planned(plan_run, files, seed=seed, config=cfg, controllers=ctrls)
    with _progress_bar(progress, "congestion") as tick:
        result = run_windows(plan, progress=tick)
    _write_results(json_out, "congestion", result.to_dict(), "traces", files)
    _print_congestion(result)
    console.print(f"json: {json_out}")
    if report is not None:
        written = write_congestion_report(result, report, files)
        console.print(f"report: {written[-1]}")


# ---------------------------------------------------------------- fairness

_FAIRNESS_OPTION_OF_FIELD = {
    "rates_mbps": "--rates-mbps",
    "rtts_ms": "--rtt-ms",
    "duration_s": "--duration",
    "stagger_s": "--stagger",
    "n_windows": "--windows",
    "buffer_bdp": "--buffer-bdp",
    "bootstrap_rounds": "--bootstrap",
}


def _print_fairness(result: FairnessResult) -> None:
    from oxidize_ml.evaluation.formatting import percent

    c = result.config
    t = Table(
        title=f"Fairness: two flows of each controller, and one against CUBIC "
        f"({len(result.cases)} cases; means over scenarios, 95 % bootstrap intervals)"
    )
    for col in (
        "controller",
        "Jain, 2 flows",
        "95 % CI",
        f">= {c.jain_threshold:g}",
        "share vs CUBIC",
        "95 % CI",
        "Jain vs CUBIC",
    ):
        t.add_column(col, justify="left" if col == "controller" else "right")

    ci = functools.partial(_ci_cell, digits=3)

    for a in result.aggregates:
        if a.links != "all":
            continue
        t.add_row(
            a.controller,
            _cell(a.intra_jain.mean),
            ci(a.intra_jain.ci),
            percent(a.intra_fair, 0),
            _cell(a.inter_share.mean),
            ci(a.inter_share.ci),
            _cell(a.inter_jain.mean),
        )
    console.print(t)
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")


@evaluate_app.command("fairness")
def fairness_cmd(
    json_out: _JsonOut,
    trace: Annotated[
        list[Path] | None,
        typer.Option(
            "--trace", help="a Mahimahi trace file (repeatable) besides the constant links"
        ),
    ] = None,
    heldout: Annotated[
        bool,
        typer.Option(
            "--heldout", help="add the project's held-out traces (oxidize_ml.evaluation.splits)"
        ),
    ] = False,
    rates_mbps: Annotated[
        str, typer.Option("--rates-mbps", help="constant-rate links, Mbit/s, comma-separated")
    ] = "12,48",
    rtt_ms: _RttMs = "40,100",
    duration: Annotated[float, typer.Option("--duration", help="simulated seconds per run")] = 30.0,
    stagger: Annotated[
        float,
        typer.Option("--stagger", help="start of the later flow in staggered runs, s (0: none)"),
    ] = 5.0,
    windows: Annotated[
        int, typer.Option("--windows", help="windows per trace (from 0, 1/N, ... of it)")
    ] = 2,
    buffer_bdp: Annotated[
        float, typer.Option("--buffer-bdp", help="bottleneck buffer in BDPs of mean rate x RTT")
    ] = 2.0,
    controllers: Annotated[
        str,
        typer.Option(
            "--controllers",
            help="comma-separated: reno, cubic, bbr, engine (MlEngine() as shipped), dqn",
        ),
    ] = "reno,cubic,bbr,engine",
    dqn_model: _DqnModel = None,
    seed: _RunSeed = 0,
    bootstrap: _Bootstrap = 2000,
    report: Annotated[
        Path | None, typer.Option("--report", help="also write report.md into this directory")
    ] = None,
    progress: _Progress = True,
) -> None:
    """Two flows of each controller (Jain's index) and each against one CUBIC flow (its
    share) on constant links and, with --heldout / --trace, windows of traces."""
    from oxidize_ml.evaluation.fairness import FairnessConfig, plan_fairness, run_fairness

    if heldout and trace:
        raise _fail("give --trace FILE (repeatable) or --heldout, not both")
    files: list[Path] = []
    if heldout:
        files = _heldout_traces()
    elif trace:
        files = _check_files(trace, "--trace")
    rates = parse_floats(rates_mbps, option="--rates-mbps", hi=100_000.0)
    rtts = parse_floats(rtt_ms, option="--rtt-ms", hi=10_000.0)
    _check_seed(seed)
    cfg = _config(
        FairnessConfig,
        _FAIRNESS_OPTION_OF_FIELD,
        rates_mbps=rates,
        rtts_ms=rtts,
        duration_s=duration,
        stagger_s=stagger,
        n_windows=windows,
        buffer_bdp=buffer_bdp,
        bootstrap_rounds=bootstrap,
    )
    ctrls = _controllers(controllers, dqn_model, explicit=True)
    plan = _planned(plan_fairness, files, seed=seed, config=cfg, controllers=ctrls)
    with _progress_bar(progress, "fairness") as tick:
        result = run_fairness(plan, progress=tick)
    _write_results(json_out, "fairness", result.to_dict(), "traces", files)
    _print_fairness(result)
    console.print(f"json: {json_out}")
    if report is not None:
        from oxidize_ml._atomic import atomic_write_text
        from oxidize_ml.evaluation.plots import REPORT_FILE_MODE

        report.mkdir(parents=True, exist_ok=True)
        md = "# oxidize-ml evaluate fairness\n\n" + result.markdown().rstrip() + "\n"
        written = atomic_write_text(report / "report.md", md, mode=REPORT_FILE_MODE)
        console.print(f"report: {written}")


# ---------------------------------------------------------------- fec, compression, paths


@evaluate_app.command("fec")
def fec_cmd(
    json_out: _JsonOut,
    trace: Annotated[
        list[Path] | None, typer.Option("--trace", help="a Mahimahi trace file (repeatable)")
    ] = None,
    rtt_ms: Annotated[
        str | None,
        typer.Option("--rtt-ms", help="base round-trip times, ms, comma-separated; default 40,100"),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="simulated seconds per run; default: the evaluation's"),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of every run")] = 0,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
) -> None:
    """Loss predictors and FEC policies on your traces (PR-AUC, Brier, residual loss)."""
    files = _check_files(trace, "--trace")
    rtts = parse_floats(rtt_ms or "40,100", option="--rtt-ms", hi=10_000.0)
    if duration is not None and not (math.isfinite(duration) and 0.0 < duration <= 3600.0):
        raise typer.BadParameter(
            f"must be > 0 and <= 3600, got {duration}", param_hint="--duration"
        )
    fn = _optional("oxidize_ml.evaluation.fec", "evaluate_fec_traces", "fec")
    result = _call(
        fn,
        files,
        {
            "--rtt-ms": (("rtts_ms", "rtt_ms"), rtts, rtt_ms is not None),
            "--duration": (("duration_s", "duration"), duration, duration is not None),
            "--seed": (("seed",), seed, seed != 0),
            "--progress": (("progress",), progress, False),
        },
    )
    _write_results(json_out, "fec", result, "traces", files)
    preds = result["summary"].get("predictors")
    if isinstance(preds, dict):
        console.print(
            _summary_table(f"Loss predictors (default: {result['summary'].get('default')})", preds)
        )
    console.print(f"json: {json_out}")


@evaluate_app.command("compression")
def compression_cmd(
    json_out: _JsonOut,
    pcap: Annotated[
        list[Path] | None,
        typer.Option("--pcap", help="a packet capture, pcap or pcapng (repeatable)"),
    ] = None,
    rates_mbps: Annotated[
        str | None,
        typer.Option(
            "--rates-mbps",
            help="link rates the decisions are judged at, Mbit/s, comma-separated default 5,20,100",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed")] = 0,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
) -> None:
    """Compression oracles on the IP packets of your captures (share of the hindsight gain)."""
    files = _check_files(pcap, "--pcap")
    rates = parse_floats(rates_mbps or "5,20,100", option="--rates-mbps", hi=1_000_000.0)
    fn = _optional("oxidize_ml.evaluation.compression", "evaluate_pcaps", "compression")
    result = _call(
        fn,
        files,
        {
            "--rates-mbps": (("rates_mbps",), rates, rates_mbps is not None),
            "--seed": (("seed",), seed, seed != 0),
            "--progress": (("progress",), progress, False),
        },
    )
    _write_results(json_out, "compression", result, "pcaps", files)
    oracles = result["summary"].get("oracles")
    if isinstance(oracles, dict):
        rows = {
            n: {f"{k} Mbit/s": v for k, v in (o.get("net_share") or {}).items()}
            for n, o in oracles.items()
            if isinstance(o, dict)
        }
        console.print(_summary_table("Share of the hindsight gain, net of decision time", rows))
    console.print(f"json: {json_out}")


@evaluate_app.command("paths")
def paths_cmd(
    json_out: _JsonOut,
    trace: Annotated[
        list[Path] | None,
        typer.Option("--trace", help="a Mahimahi trace file, one per path (repeatable)"),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            max=100_000,
            help="flows (one per simulated second) per episode; default: the evaluation's",
        ),
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            min=1,
            max=10_000,
            help="episodes per scenario family; default: the evaluation's",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of the episodes")] = 0,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
) -> None:
    """Path selectors on paths driven by your traces (regret per step vs hindsight)."""
    files = _check_files(trace, "--trace")
    fn = _optional("oxidize_ml.evaluation.paths", "evaluate_path_traces", "paths")
    result = _call(
        fn,
        files,
        {
            "--steps": (("steps",), steps, steps is not None),
            "--episodes": (("seeds", "episodes"), episodes, episodes is not None),
            "--seed": (("seed",), seed, seed != 0),
            "--progress": (("progress",), progress, False),
        },
    )
    _write_results(json_out, "paths", result, "traces", files)
    sels = result["summary"].get("selectors")
    if isinstance(sels, dict):
        console.print(_summary_table("Path selectors", sels))
    console.print(f"json: {json_out}")
