"""``oxidize-ml emulate`` and ``oxidize-ml e2e``: the link emulator and the end-to-end evaluation.

`register` adds both commands to the main CLI. Optional dependencies
(aioquic, matplotlib) are imported inside the commands, so registering never
needs them; a missing one is reported with the extra that provides it.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(width=None if Console().is_terminal else 160)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(2)


def _ms(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.1f}"


def _mbps(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x / 1e6:.2f}"


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0%}"


def _capacity(trace: Path | None, rate_mbps: float | None, what: str) -> Any:
    from oxidize_ml.sim.links import ConstantLink, TraceLink

    if trace is not None and rate_mbps is not None:
        raise _fail(f"give either --{what}trace or --{what}rate-mbps, not both")
    if trace is not None:
        try:
            return TraceLink(str(trace))
        except ValueError as exc:
            raise _fail(str(exc)) from None
    if rate_mbps is None:
        return None
    if not rate_mbps > 0:
        raise _fail(f"--{what}rate-mbps must be > 0, got {rate_mbps}")
    return ConstantLink(rate_mbps * 1e6)


def _link_table(report: Any) -> Table:
    table = Table(
        title=f"link emulator report ({report.elapsed_s:.1f} s, {report.clients} client(s))"
    )
    cols = (
        "direction",
        "received",
        "delivered",
        "dropped queue",
        "dropped loss",
        "MB delivered",
        "queue delay p50 ms",
        "p95 ms",
        "late mean ms",
        "capacity Mbit/s",
    )
    for c in cols:
        table.add_column(c, justify="left" if c == "direction" else "right")
    for d in (report.uplink, report.downlink):
        table.add_row(
            d.name,
            str(d.received),
            str(d.delivered),
            str(d.dropped_queue),
            str(d.dropped_loss),
            f"{d.bytes_delivered / 1e6:.3f}",
            _ms(d.queue_delay_p50_s),
            _ms(d.queue_delay_p95_s),
            _ms(d.late_mean_s),
            _mbps(d.mean_capacity_bps),
        )
    return table


def e2e_table(report: Any) -> Table:
    """The e2e report as a rich table (emulated run beside the simulator)."""
    cfg = report.config
    link = f"trace {Path(cfg.trace).name}" if cfg.trace else f"{(cfg.rate_bps or 0) / 1e6:g} Mbit/s"
    table = Table(
        title=(
            f"e2e: {link} (mean {report.mean_capacity_bps / 1e6:.2f} Mbit/s), "
            f"{cfg.delay_s * 1e3:g} ms one-way, queue {report.queue_bytes} B, "
            f"{cfg.transfer_bytes} B, loss {cfg.loss:g}, seed {cfg.seed}"
        ),
        caption="rates in Mbit/s, delays in ms; qdelay = bottleneck queueing delay per packet; "
        "cpu = endpoints' process / emulator process",
    )
    # Units: Mbit/s for rates, ms for delays (the caption says so; narrow headers).
    cols = (
        "ctrl",
        "done",
        "time s",
        "goodput",
        "capacity",
        "srtt p50",
        "srtt p95",
        "qdelay p95",
        "drops q/l",
        "cpu ep/emu",
        "sim time s",
        "sim goodput",
        "sim srtt p95",
        "sim qdelay p95",
        "sim drops",
        "goodput e2e/sim",
        "qdelay p95 e2e-sim",
    )
    for c in cols:
        table.add_column(c, justify="left" if c == "ctrl" else "right")
    for r in report.results:
        s = r.sim
        table.add_row(
            r.controller,
            "[green]yes[/]" if r.completed else f"[red]no[/] ({r.error})",
            "-" if r.transfer_s is None else f"{r.transfer_s:.2f}",
            _mbps(r.goodput_bps),
            _mbps(r.capacity_bps),
            _ms(r.srtt_p50_s),
            _ms(r.srtt_p95_s),
            _ms(r.queue_delay_p95_s),
            f"{r.dropped_queue}/{r.dropped_loss}",
            f"{r.cpu_share:.0%}/{_pct(r.emulator_cpu_share)}",
            "-" if s is None or s.completion_s is None else f"{s.completion_s:.2f}",
            "-" if s is None else _mbps(s.goodput_bps),
            "-" if s is None else _ms(s.srtt_p95_s),
            "-" if s is None else _ms(s.queue_delay_p95_s),
            "-" if s is None else f"{s.dropped_queue}/{s.dropped_random}",
            "-" if math.isnan(r.goodput_vs_sim) else f"{r.goodput_vs_sim:.2f}",
            _ms(r.qdelay_p95_diff_s),
        )
    return table


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""signals that end ``emulate`` in order: relay stopped, report printed and written"""


async def _relay_until_stopped(emulator: Any, target: str, duration: float | None) -> str:
    """Relay until ``duration`` passes or a stop signal arrives; returns why it stopped.

    The signals are handled inside the event loop (not as KeyboardInterrupt), so
    SIGTERM from a supervisor or a test harness ends the run the same orderly way
    as Ctrl-C: the caller still gets the report and writes ``--json``.
    """
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    reason = "duration"

    def on_signal(sig: signal.Signals) -> None:
        nonlocal reason
        reason = sig.name
        stopped.set()

    installed: list[signal.Signals] = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
            pass  # not the main thread, or a platform without it: duration / Ctrl-C only
    try:
        await emulator.start()
        h, p = emulator.listen_address
        console.print(
            f"relaying {h}:{p} -> {target} "
            f"({'until Ctrl-C or SIGTERM' if duration is None else f'{duration:g} s'})",
            highlight=False,
        )
        try:
            async with asyncio.timeout(duration):
                await stopped.wait()
        except TimeoutError:
            pass
    finally:
        await emulator.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return reason


def register(app: typer.Typer) -> None:
    """Add ``emulate`` and ``e2e`` to ``app``."""

    @app.command()
    def emulate(
        listen: Annotated[int, typer.Option("--listen", help="UDP port on 127.0.0.1 to listen on")],
        target: Annotated[str, typer.Option("--target", help="HOST:PORT to relay to (loopback)")],
        trace: Annotated[
            Path | None,
            typer.Option("--trace", help="Mahimahi trace for both directions (see --uplink-*)"),
        ] = None,
        rate_mbps: Annotated[
            float | None,
            typer.Option("--rate-mbps", help="constant rate for both directions, Mbit/s"),
        ] = None,
        uplink_trace: Annotated[
            Path | None,
            typer.Option("--uplink-trace", help="separate Mahimahi trace for client -> target"),
        ] = None,
        uplink_rate_mbps: Annotated[
            float | None,
            typer.Option("--uplink-rate-mbps", help="separate constant rate for client -> target"),
        ] = None,
        delay_ms: Annotated[
            float,
            typer.Option("--delay-ms", help="one-way propagation delay of each direction, ms"),
        ] = 0.0,
        queue_packets: Annotated[
            int,
            typer.Option(
                "--queue-packets", help="drop-tail queue per direction, 1500-byte packets"
            ),
        ] = 100,
        loss: Annotated[
            float, typer.Option("--loss", help="Bernoulli loss probability per direction")
        ] = 0.0,
        duration: Annotated[
            float | None,
            typer.Option(
                "--duration", help="stop after this many seconds (default: until Ctrl-C or SIGTERM)"
            ),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="seed of the loss processes")] = 0,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="also write the report as JSON")
        ] = None,
        max_clients: Annotated[
            int,
            typer.Option(
                "--max-clients",
                help="client addresses relayed at once; a new one evicts the least recently active",
            ),
        ] = 64,
        client_idle_s: Annotated[
            float, typer.Option("--client-idle-s", help="forget a client silent this long, seconds")
        ] = 30.0,
    ) -> None:
        """Relay UDP on 127.0.0.1 through an emulated bottleneck until Ctrl-C or SIGTERM.

        Mahimahi-style trace or constant rate, delay, drop-tail queue and loss
        per direction; prints per-direction counts and queueing delays at the end
        (and writes --json) however the run ends.
        """
        from oxidize_ml.integrations.emulator import (
            EmulatorConfig,
            LinkConfig,
            LinkEmulator,
            parse_host_port,
        )
        from oxidize_ml.sim.random_loss import BernoulliLoss

        down = _capacity(trace, rate_mbps, "")
        if down is None:
            raise _fail("give --trace FILE or --rate-mbps X")
        up = _capacity(uplink_trace, uplink_rate_mbps, "uplink-") or down
        try:
            host_port = parse_host_port(target)
            loss_model = BernoulliLoss(loss) if loss > 0.0 else None
            links = [
                LinkConfig(
                    cap, delay_s=delay_ms / 1e3, queue_bytes=queue_packets * 1500, loss=loss_model
                )
                for cap in (down, up)
            ]
            config = EmulatorConfig(
                target=host_port,
                downlink=links[0],
                uplink=links[1],
                listen_port=listen,
                seed=seed,
                max_clients=max_clients,
                client_idle_timeout_s=client_idle_s,
            )
            emulator = LinkEmulator(config)
        except (ValueError, TypeError) as exc:
            raise _fail(str(exc)) from None
        if duration is not None and not duration > 0:
            raise _fail(f"--duration must be > 0, got {duration}")

        try:
            reason = asyncio.run(_relay_until_stopped(emulator, target, duration))
        except OSError as exc:
            raise _fail(str(exc)) from None
        console.print(f"stopped ({reason})")
        report = emulator.report(stop_reason=reason)
        console.print(_link_table(report))
        if json_out is not None:
            from oxidize_ml._atomic import atomic_write_text

            atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2))
            console.print(f"wrote {json_out}")

    @app.command()
    def e2e(
        trace: Annotated[
            Path | None, typer.Option("--trace", help="Mahimahi trace for the data direction")
        ] = None,
        rate_mbps: Annotated[
            float | None,
            typer.Option("--rate-mbps", help="constant data-direction rate, Mbit/s (default 4)"),
        ] = None,
        delay_ms: Annotated[
            float, typer.Option("--delay-ms", help="one-way delay of each direction, ms (RTT = 2x)")
        ] = 20.0,
        nbytes: Annotated[int, typer.Option("--bytes", help="bytes to transfer")] = 1_000_000,
        controllers: Annotated[
            str, typer.Option("--controllers", help="comma-separated: reno,cubic,oxidize")
        ] = "reno,cubic,oxidize",
        out: Annotated[Path, typer.Option("--out", help="directory for e2e.json / e2e.png")] = Path(
            "e2e-out"
        ),
        seed: Annotated[int, typer.Option("--seed")] = 0,
        queue_packets: Annotated[
            int | None,
            typer.Option(
                "--queue-packets", help="data-direction queue, 1500-byte packets (default 1 BDP)"
            ),
        ] = None,
        loss: Annotated[
            float, typer.Option("--loss", help="Bernoulli loss on the data direction")
        ] = 0.0,
        timeout: Annotated[
            float, typer.Option("--timeout", help="per-controller bound, seconds")
        ] = 60.0,
        sim: Annotated[bool, typer.Option(help="also run the simulator's equivalent")] = True,
        plot: Annotated[bool, typer.Option(help="write e2e.png (needs matplotlib)")] = True,
        collect: Annotated[
            Path | None,
            typer.Option("--collect", help="export the oxidize engine's training telemetry here"),
        ] = None,
    ) -> None:
        """Move a file over aioquic through the link emulator with each controller.

        Prints goodput, RTT and drops beside the simulator's numbers for the same
        link and writes e2e.json and e2e.png into --out.
        """
        try:
            from oxidize_ml.integrations.e2e import E2eConfig, run_e2e
        except ImportError as exc:
            raise _fail(f"{exc}") from None
        if trace is not None and rate_mbps is not None:
            raise _fail("give either --trace or --rate-mbps, not both")
        try:
            config = E2eConfig(
                rate_bps=(4.0 if rate_mbps is None else rate_mbps) * 1e6,
                trace=None if trace is None else str(trace),
                delay_s=delay_ms / 1e3,
                transfer_bytes=nbytes,
                controllers=tuple(c.strip() for c in controllers.split(",") if c.strip()),
                queue_bytes=None if queue_packets is None else queue_packets * 1500,
                loss=loss,
                seed=seed,
                timeout_s=timeout,
                simulate=sim,
                collect_dir=None if collect is None else str(collect),
            )
        except (ValueError, TypeError) as exc:
            raise _fail(str(exc)) from None
        with console.status("running aioquic transfers through the emulator..."):
            report = run_e2e(config)
        console.print(e2e_table(report))
        console.print(f"simulator: {report.sim_note}")
        if any(r.cpu_share > 0.8 for r in report.results):
            console.print(
                "[yellow]note:[/] the event loop running aioquic's server and client "
                "was near saturation (cpu column): RTTs include processing backlog; "
                "use a lower rate or a less loaded machine"
            )
        for r in report.results:
            if r.telemetry_export:
                console.print(f"telemetry of {r.controller}: {r.telemetry_export}")
        want_plot = plot
        if plot:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                console.print("[yellow]matplotlib is missing (install the 'sim' extra): no plot[/]")
                want_plot = False
        report = report.write(out, plot=want_plot)
        for f in report.files:
            console.print(f"wrote {f}")
