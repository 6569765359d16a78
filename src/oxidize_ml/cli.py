"""The `oxidize-ml` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="oxidize-ml",
    help="Machine-learned transport decisions, and the simulator that proves them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
telemetry_app = typer.Typer(help="Inspect exported training telemetry.", no_args_is_help=True)
app.add_typer(telemetry_app, name="telemetry")

# Wide enough for the benchmark and report tables when output is not a terminal.
console = Console(width=None if Console().is_terminal else 160)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


@app.command()
def version() -> None:
    """Print the package version and feature-schema version."""
    from oxidize_ml import __version__
    from oxidize_ml.features import FEATURE_SCHEMA_VERSION

    console.print(f"oxidize-ml {__version__} (feature schema v{FEATURE_SCHEMA_VERSION})")


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="fewer repetitions (noisier)")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write rows as JSON")] = None,
) -> None:
    """Median latency of each decision beside the spec's figures and a peer measured now."""
    from oxidize_ml import bench as b

    with console.status("benchmarking (medians of repeated batches)..."):
        rows = b.run_all(quick=quick)
    table = Table(title="oxidize-ml bench (medians, this machine)")
    for col in (
        "operation",
        "median",
        "spec",
        "x spec",
        "target",
        "ok",
        "peer",
        "peer median",
        "x peer",
    ):
        table.add_column(col, justify="left" if col in ("operation", "peer") else "right")
    for r in rows:
        unit = r.unit
        ok = r.meets_target
        table.add_row(
            r.name,
            f"{_fmt(r.median_us)} {unit}",
            "-" if r.spec_us is None else f"{_fmt(r.spec_us)} {unit}",
            _fmt(r.ratio_spec),
            "-" if r.target_us is None else f"{_fmt(r.target_us)} {unit}",
            "-" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]"),
            r.peer or "-",
            "-" if r.peer_us is None else f"{_fmt(r.peer_us)} {unit}",
            _fmt(r.ratio_peer),
        )
    console.print(table)
    console.print(b.environment())
    if json_out is not None:
        from oxidize_ml._atomic import atomic_write_text

        atomic_write_text(json_out, json.dumps([r.to_dict() for r in rows], indent=2))


@telemetry_app.command("inspect")
def telemetry_inspect(
    directory: Annotated[Path, typer.Argument(help="an export directory or a root of exports")],
) -> None:
    """Summarise a telemetry export (rows, time range, label and action histograms)."""
    from oxidize_ml.telemetry import summarize_export

    if not directory.exists():
        console.print(f"[red]error:[/] {directory} does not exist")
        raise typer.Exit(2)
    try:
        summary = summarize_export(directory)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print_json(json.dumps(summary, default=str))


# Each area adds its commands through a `register(app)` function in its own
# module, so areas never edit this file at the same time. Those modules import
# optional dependencies inside the commands, so registration always works.
_COMMAND_MODULES = (
    "oxidize_ml.sim.commands",
    "oxidize_ml.training.commands",
    "oxidize_ml.integrations.commands",
    "oxidize_ml.hub.commands",
    "oxidize_ml.evaluation.commands",
)


def _register_all() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # that area has no commands (yet)
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
