"""CLI: ``oxidize-ml hub push|pull|status`` and ``oxidize-ml serve-metrics``.

Registered by `oxidize_ml.cli` through `register`. Optional dependencies
(huggingface_hub) are imported by the hub only when a command needs them.
Exit codes: 0 success, 1 the operation failed (message says why), 2 bad usage.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from oxidize_ml.hub.hub import (
    DEFAULT_REPO_ID,
    SOURCE_HF,
    SOURCE_LOCAL,
    HubConfig,
    HubError,
    ModelHub,
)

console = Console(width=None if Console().is_terminal else 160)

LocalOpt = Annotated[
    Path | None,
    typer.Option("--local", help="a local hub store (or, for pull, a model directory)"),
]
RepoOpt = Annotated[
    str | None,
    typer.Option("--repo", help=f"Hugging Face repository org/name (default {DEFAULT_REPO_ID})"),
]
RevisionOpt = Annotated[str, typer.Option("--revision", help="branch, tag or commit")]
DestOpt = Annotated[
    Path | None,
    typer.Option("--dest", help="local store for activated models (default OXIDIZE_MODEL_DIR)"),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _hub(local: Path | None, repo: str | None, revision: str, **changes: Any) -> ModelHub:
    if local is not None and repo is not None:
        raise _fail("give either --local or --repo, not both", 2)
    try:
        if local is not None:
            cfg = HubConfig.from_settings(source=SOURCE_LOCAL, local_path=local, **changes)
        else:
            cfg = HubConfig.from_settings(
                source=SOURCE_HF, repo_id=repo or DEFAULT_REPO_ID, revision=revision, **changes
            )
    except (TypeError, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    return ModelHub(cfg)


def _print_status(hub: ModelHub, dest: Path | None) -> bool:
    st = hub.status(dest)
    table = Table(title=f"model store {st.dest_dir}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("active", st.active or "[yellow]none[/]")
    if st.pointer_error:
        table.add_row("pointer", f"[red]{st.pointer_error}[/]")
    table.add_row("versions", ", ".join(st.versions) or "-")
    if st.provenance:
        prov = st.provenance
        where = prov.get("location", "?")
        extra = f" (commit {prov['commit']})" if prov.get("commit") else ""
        table.add_row("from", f"{prov.get('source', '?')}: {where}{extra}")
        table.add_row("fetched", str(prov.get("fetched_at") or prov.get("uploaded_at") or "-"))
    console.print(table)
    if st.report is not None:
        models = Table(title="active models")
        for col in ("model", "kind", "status", "reason"):
            models.add_column(col)
        if st.report.error:
            console.print(f"[red]{st.report.error}[/]")
        for m in st.report.models.values():
            colour = "green" if m.ok else "red"
            models.add_row(m.name, m.kind or "-", f"[{colour}]{m.status}[/]", m.reason)
        console.print(models)
        return st.report.ok
    return st.active is not None


def register(app: typer.Typer) -> None:
    """Add the ``hub`` group and ``serve-metrics`` to the main CLI."""
    hub_app = typer.Typer(
        help="Publish, fetch and inspect versioned model directories.", no_args_is_help=True
    )
    app.add_typer(hub_app, name="hub")

    @hub_app.command("push")
    def hub_push(
        model_dir: Annotated[Path, typer.Argument(help="model directory with manifest.json")],
        local: LocalOpt = None,
        repo: RepoOpt = None,
        revision: RevisionOpt = "main",
        allow_public: Annotated[
            bool, typer.Option(help="allow publishing to a public Hub repository")
        ] = False,
    ) -> None:
        """Verify MODEL_DIR and publish it (to a local store or a private Hub repo)."""
        if local is None and repo is None:
            raise _fail("say where to publish: --local PATH or --repo ORG/NAME", 2)
        if not model_dir.is_dir():
            raise _fail(f"{model_dir} is not a directory", 2)
        hub = _hub(local, repo, revision)
        try:
            with console.status(f"publishing {model_dir} to {hub.config.location()}..."):
                pub = hub.upload_models(model_dir, allow_public=allow_public)
        except HubError as exc:
            raise _fail(str(exc)) from None
        commit = f" (commit {pub.commit})" if pub.commit else ""
        console.print(f"[green]published[/] {pub.version} to {pub.location}{commit}")

    @hub_app.command("pull")
    def hub_pull(
        local: LocalOpt = None,
        repo: RepoOpt = None,
        revision: RevisionOpt = "main",
        dest: DestOpt = None,
        offline: Annotated[
            bool, typer.Option(help="use only the local Hub cache (as HF_HUB_OFFLINE=1)")
        ] = False,
        allow_downgrade: Annotated[
            bool, typer.Option(help="activate a version older than the active one")
        ] = False,
    ) -> None:
        """Fetch the source's models, verify them and make them the active version."""
        hub = _hub(local, repo, revision, offline=offline, allow_downgrade=allow_downgrade)
        before = hub.status(dest).active
        try:
            with console.status(f"fetching from {hub.config.location()}..."):
                active = hub.download_models(dest)
        except HubError as exc:
            kept = f"; {before} stays active" if before else ""
            raise _fail(f"{exc}{kept}") from None
        if active.name == before:
            console.print(f"up to date: {active.name} ({active})")
        else:
            console.print(f"[green]activated[/] {active.name} ({active})")

    @hub_app.command("status")
    def hub_status(
        dest: DestOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """Show the active model version of a local store and whether it verifies."""
        try:
            hub = ModelHub(HubConfig.from_settings())
        except (TypeError, ValueError) as exc:
            raise _fail(str(exc), 2) from None
        if as_json:
            st = hub.status(dest)
            out = {
                "dest_dir": str(st.dest_dir),
                "active": st.active,
                "versions": list(st.versions),
                "ok": None if st.report is None else st.report.ok,
                "models": {}
                if st.report is None
                else {n: m.status for n, m in st.report.models.items()},
                "provenance": st.provenance,
                "pointer_error": st.pointer_error,
            }
            typer.echo(json.dumps(out, indent=2))  # plain: no rich wrapping of machine output
            if st.report is not None and not st.report.ok:
                raise typer.Exit(1)
            return
        if not _print_status(hub, dest):
            raise typer.Exit(1)

    @app.command("serve-metrics")
    def serve_metrics(
        port: Annotated[int, typer.Option(help="TCP port (0: any free port)")] = 9464,
        host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
        demo: Annotated[
            bool, typer.Option(help="drive the engine with synthetic decisions")
        ] = False,
        models: Annotated[
            Path | None, typer.Option(help="load this model directory into the engine")
        ] = None,
        duration: Annotated[
            float | None, typer.Option(help="stop after this many seconds (default: Ctrl-C)")
        ] = None,
        seed: Annotated[int, typer.Option(help="seed of the --demo traffic")] = 0,
    ) -> None:
        """Serve an engine's statistics as Prometheus metrics at http://HOST:PORT/metrics."""
        from oxidize_ml.engine import EngineConfig, MlEngine

        try:
            from oxidize_ml.prometheus import start_metrics_server
        except ImportError as e:  # prometheus_client lives in the `metrics` extra
            typer.echo(
                f"error: serve-metrics needs the metrics extra "
                f"(pip install 'oxidize-ml[metrics]'): {e}",
                err=True,
            )
            raise typer.Exit(2) from None
        from oxidize_ml.prometheus.demo import DemoConfig, DemoDriver

        if duration is not None and duration <= 0:
            raise _fail(f"--duration must be > 0, got {duration}", 2)
        engine = MlEngine(EngineConfig(load_default_models=models is None))
        if models is not None:
            status = engine.load_models(models)
            for name, s in status.items():
                colour = "green" if s == "loaded" else "yellow"
                console.print(f"  {name}: [{colour}]{s}[/]")
        try:
            server = start_metrics_server(engine, host=host, port=port)
        except (OSError, ValueError, TypeError) as exc:
            raise _fail(f"cannot serve on {host}:{port}: {exc}") from None
        driver = DemoDriver(engine, DemoConfig(seed=seed)).start() if demo else None
        console.print(
            f"serving Prometheus metrics on {server.url}"
            + (" with synthetic traffic" if demo else "")
            + (" (Ctrl-C to stop)" if duration is None else f" for {duration:g} s"),
            highlight=False,
        )
        try:
            threading.Event().wait(duration)
        except KeyboardInterrupt:
            pass
        finally:
            if driver is not None:
                driver.stop()
            server.stop()
        console.print("stopped")
