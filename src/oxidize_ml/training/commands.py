"""``oxidize-ml train``: train every model, compare with the current ones, write a model directory.

Registered by `oxidize_ml.cli` through `register`. torch and the other
training dependencies are imported only when the command runs, so the CLI
works (and says what to install) without the ``train`` extra. The work is
`oxidize_ml.training.pipeline.train_all`; this module parses options and
prints the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from oxidize_ml.training.pipeline import PipelineResult

console = Console(width=None if Console().is_terminal else 160)


def results_table(result: PipelineResult) -> Table:
    """Per model: status, target, model vs heuristic figures, default enabled."""
    from oxidize_ml.training.pipeline import headline

    table = Table(title=f"oxidize-ml train {result.version}", show_lines=True)
    for col in ("model", "status", "target", "model vs heuristic (held out)", "default enabled"):
        table.add_column(col, overflow="fold")
    for name, c in result.components.items():
        r = c.result
        if r is None:
            table.add_row(name, f"[yellow]{c.status}[/]", "-", escape(c.message or "-"), "-")
            continue
        default = "[green]yes[/]" if r.beats_heuristic else "[red]no[/] (heuristic stays)"
        table.add_row(name, "trained", escape(r.target or "-"), escape(headline(r)), default)
    return table


def comparison_table(result: PipelineResult) -> Table:
    """Candidate vs current per component (retraining loop)."""
    table = Table(title="candidate vs current (same held-out data)", show_lines=True)
    for col in ("model", "candidate", "current", "compared with", "decision", "rule"):
        table.add_column(col, overflow="fold")
    for name, c in result.components.items():
        comp = c.comparison or {}
        if name == "compression_oracle" and comp:
            cand = _num(comp.get("candidate_mean_share"))
            cur = _num(comp.get("current_mean_share"))
            cand, cur = f"mean share {cand}", f"mean share {cur}"
        elif comp:
            cand = ", ".join(f"{k} {_num(v)}" for k, v in comp.get("candidate", {}).items())
            cur = ", ".join(f"{k} {_num(v)}" for k, v in comp.get("current", {}).items())
        else:
            cand = cur = "-"
        decision = {
            "new": "[green]new model[/]",
            "kept current": "kept current",
            "kept heuristic": "kept heuristic",
        }.get(c.decision, c.status)
        table.add_row(
            name,
            cand,
            cur,
            escape(str(comp.get("current_is", "-"))),
            decision,
            escape(str(comp.get("rule", c.message or "-"))),
        )
    return table


def _num(x: object) -> str:
    return f"{x:.4g}" if isinstance(x, int | float) else "-"


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""

    @app.command("train")
    def train_cmd(
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="parent of the versioned model directories (default: "
                "$OXIDIZE_MODEL_DIR or ~/.cache/oxidize-ml/models)",
            ),
        ] = None,
        seed: Annotated[int, typer.Option(min=0, help="seed of every trainer")] = 0,
        quick: Annotated[
            bool,
            typer.Option(
                "--quick", help="tiny budgets: a smoke test in about a minute, not useful models"
            ),
        ] = False,
        data: Annotated[
            Path | None,
            typer.Option(
                "--data",
                help="root of exported telemetry to train on; candidates are then "
                "compared with the current models and written only where better",
            ),
        ] = None,
        no_sim: Annotated[
            bool,
            typer.Option(
                "--no-sim",
                help="train on --data only: no simulator or corpus training data "
                "(the DQN, which learns in the simulator, is skipped)",
            ),
        ] = False,
        components: Annotated[
            list[str] | None,
            typer.Option(
                "--components",
                help="train only these (repeatable): loss_predictor, "
                "congestion_controller, compression_oracle, path_selector; or "
                "residual_dqn (the residual DQN, trained only when named; it fills the "
                "congestion_controller slot, so not together with congestion_controller)",
            ),
        ] = None,
        current: Annotated[
            Path | None,
            typer.Option(
                "--current",
                help="model directory to compare with (default with --data: the package defaults)",
            ),
        ] = None,
        install_defaults: Annotated[
            bool,
            typer.Option(
                "--install-defaults",
                help="copy the new model directory into the package's "
                "shipped defaults (src/oxidize_ml/models/default)",
            ),
        ] = False,
        progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    ) -> None:
        """Train the loss predictor, the DQN, the compression oracle and the path selector; write
        OUT/<UTC time>-s<seed>/ with manifest.json; print figures against the heuristics."""
        from oxidize_ml.config import EnvSettings, ensure_private_dir
        from oxidize_ml.training import pipeline

        if no_sim and data is None:
            console.print(
                "[red]error:[/] --no-sim needs --data (there would be nothing to train on)"
            )
            raise typer.Exit(2)
        names = tuple(components) if components else pipeline.COMPONENTS
        bad = sorted(set(names) - set(pipeline.ALL_COMPONENTS))
        if bad:
            console.print(
                f"[red]error:[/] unknown components {bad}; choose from "
                f"{list(pipeline.ALL_COMPONENTS)}"
            )
            raise typer.Exit(2)
        slots = [pipeline.model_slot(n) for n in names]
        if len(set(slots)) != len(slots):
            console.print(
                "[red]error:[/] congestion_controller and residual_dqn both train the "
                "congestion_controller model; choose one"
            )
            raise typer.Exit(2)
        try:
            pipeline.check_training_dependencies()
            parent = ensure_private_dir(
                out if out is not None else EnvSettings.from_env().model_dir
            )
            result = pipeline.train_all(
                parent,
                seed=seed,
                quick=quick,
                data=data,
                include_sim=not no_sim,
                components=names,
                progress=progress,
                current=current,
                on_event=lambda msg: console.print(f"[bold]{escape(msg)}[/]"),
            )
        except pipeline.MissingTrainingDependency as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(3) from None
        except (ValueError, FileExistsError, NotADirectoryError) as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        console.print(results_table(result))
        if result.compared:
            console.print(comparison_table(result))
        minutes = result.wall_time_s / 60.0
        if result.directory is None:
            console.print(
                f"no new model directory written ({minutes:.1f} min): "
                + (
                    "no candidate beat the current models"
                    if result.compared
                    else "nothing was trained"
                )
            )
        else:
            console.print(f"wrote [bold]{result.directory}[/] ({minutes:.1f} min)")
            if install_defaults:
                target = pipeline.install_defaults(result.directory)
                console.print(f"installed as the package defaults: [bold]{target}[/]")
        if result.failed:
            console.print(f"[red]failed:[/] {', '.join(result.failed)}")
            raise typer.Exit(1)
