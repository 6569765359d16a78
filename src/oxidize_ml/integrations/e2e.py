"""End-to-end evaluation: aioquic reno / cubic / oxidize through the link emulator on loopback.

For each controller, in turn:

1. an aioquic server on ``127.0.0.1`` (a self-signed certificate made for
   the run with ``cryptography`` in a private temporary directory; ALPN
   ``oxidize-e2e``) whose congestion controller is the one under test;
2. a `LinkEmulator` in front of it, **in its own process**
   (`oxidize_ml.integrations.emulator_process`): aioquic is CPU-bound Python,
   and in the endpoints' event loop the emulator's timers fired late during
   every burst the endpoints processed, adding queueing the link never had.
   The downlink (server -> client, the data)
   has the trace or the constant rate, the one-way delay, the drop-tail
   queue and the optional random loss; the uplink (client -> server, acks
   and the request) has the same delay, a 100 Mbit/s constant rate and a
   queue no ack burst fills, because the simulator's acks are never queued
   or lost and the two are compared;
3. an aioquic client (NewReno; it only sends the request and acks) that
   opens one stream, sends ``GET <n>\\n`` and reads ``n`` bytes; the server
   answers with ``n`` bytes on that stream and closes it.

Measured per controller: completion (bounded by ``timeout_s``: a run that
does not finish is reported as not completed, never hangs), goodput =
payload bits / (last byte - request sent), the link capacity offered over
the same window (from the emulator's schedule, link bytes including the
28 header bytes per datagram; the child reports its schedule's time 0 on
``time.monotonic()``, one clock for all processes), the server's smoothed
and latest RTT as
aioquic measured them (``connection._loss._rtt_smoothed`` /
``_rtt_latest``, sampled every 10 ms while the transfer runs; p50 / p95
over those samples, i.e. over time), and the emulator's drops (queue,
random loss) and queueing delay in the data direction, and the CPU share
of the endpoints' process and of the emulator's.

Beside each row, when `oxidize_ml.sim` is importable, the simulator runs the
equivalent scenario (same capacity model, one-way delay, buffer bytes,
loss, transfer size, seed): reno and cubic are the simulator's own, oxidize
is an `MlEngine` behind the simulator's ``EngineController`` (the same
engine and features as the plug-in). Differences to keep in mind: the
simulator has no handshake, packets of 1500 bytes (aioquic here uses
1472-byte datagrams = 1500-byte IP packets), and a receiver that acks every
packet (aioquic acks every other packet or on a timer). The columns compared
are goodput (``goodput_vs_sim`` = e2e / sim) and the 95th percentile of the
bottleneck queueing delay per packet (the emulator's, against the
simulator's one-way delay minus the propagation delay: ``qdelay_p95_diff_s``
= e2e - sim); docs/e2e.md gives the measured margins.

aioquic is CPU-bound at a few tens of Mbit/s on loopback here, and server and
client share one event loop: keep rates at 2-12 Mbit/s and transfers at 1-4 MB
(defaults: 4 Mbit/s, 1 MB, 20 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import ssl
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

try:
    from aioquic.asyncio import QuicConnectionProtocol, connect, serve
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.congestion.base import create_congestion_control
    from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "oxidize_ml.integrations.e2e needs aioquic: install the 'aioquic' extra "
        "(pip install 'oxidize-ml[aioquic]')"
    ) from exc

from oxidize_ml._atomic import atomic_write_bytes, atomic_write_text
from oxidize_ml._validate import check_int, check_number
from oxidize_ml.integrations.aioquic import controller_of, register_oxidize
from oxidize_ml.integrations.emulator import EmulatorConfig, LinkConfig
from oxidize_ml.integrations.emulator_process import EmulatorProcess
from oxidize_ml.sim.links import CellularLink, ConstantLink, TraceLink
from oxidize_ml.sim.random_loss import BernoulliLoss
from oxidize_ml.sim.traces import MTU_BYTES, CellularConfig

__all__ = [
    "ALPN",
    "KNOWN_CONTROLLERS",
    "E2eConfig",
    "E2eReport",
    "SimNumbers",
    "TransferResult",
    "make_self_signed_cert",
    "run_e2e",
    "run_e2e_async",
    "synthetic_cellular_trace",
]

ALPN = "oxidize-e2e"
"""application protocol negotiated by the test client and server"""
KNOWN_CONTROLLERS = ("reno", "cubic", "oxidize")
"""controllers the evaluation can run (aioquic's two plus the engine-driven one)"""
OXIDIZE_NAME = "oxidize"
DATAGRAM_BYTES = 1472
"""aioquic max_datagram_size: 1472 + 28 header bytes = one 1500-byte delivery opportunity"""
ACK_LINK_RATE_BPS = 100e6
"""uplink rate: far above the ack traffic, so acks are not queued (as in the simulator)"""
ACK_LINK_QUEUE_BYTES = 1000 * MTU_BYTES
"""uplink queue: no ack burst fills it"""
SAMPLE_INTERVAL_S = 0.010
"""period of the RTT / progress samples, seconds (the decision interval)"""
MAX_SAMPLES = 100_000
"""bound on samples kept per run (1000 s at 10 ms)"""
MAX_REQUEST_BYTES = 64
"""the server ignores requests longer than this"""
MAX_TRANSFER_BYTES = 1 << 30
"""largest transfer a request may ask for"""
FLOW_CONTROL_BYTES = 64 * 1024 * 1024
"""client receive windows (connection and stream): never the bottleneck"""


@dataclass(frozen=True, slots=True)
class E2eConfig:
    """One evaluation: the link, the transfer, the controllers."""

    rate_bps: float | None = 4e6
    """constant downlink capacity, bits/s (ignored when ``trace`` is set)"""
    trace: str | None = None
    """Mahimahi trace file for the downlink capacity"""
    delay_s: float = 0.020
    """one-way propagation delay of each direction, seconds (base RTT = 2 x delay)"""
    transfer_bytes: int = 1_000_000
    """bytes the client asks for"""
    controllers: tuple[str, ...] = KNOWN_CONTROLLERS
    """controllers to run, in order"""
    queue_bytes: int | None = None
    """downlink drop-tail queue; None: 1 BDP of the mean capacity x base RTT (the
    simulator's default `BufferSpec`), at least one packet"""
    loss: float = 0.0
    """Bernoulli loss probability on the downlink (0: none)"""
    seed: int = 0
    """seeds the emulator's loss, the engines and the simulator"""
    timeout_s: float = 60.0
    """per-controller bound on the whole run (handshake, transfer, close), seconds"""
    simulate: bool = True
    """also run the simulator on the equivalent scenario when it is available"""
    collect_dir: str | None = None
    """export the oxidize engine's training telemetry here after its run"""

    def __post_init__(self) -> None:
        if self.trace is None and (
            self.rate_bps is None or check_number("rate_bps", self.rate_bps) <= 0.0
        ):
            raise ValueError(f"rate_bps must be > 0 without a trace, got {self.rate_bps!r}")
        check_number("delay_s", self.delay_s, hi=10.0)
        check_int("transfer_bytes", self.transfer_bytes, lo=1, hi=MAX_TRANSFER_BYTES)
        ctrls = tuple(self.controllers)
        if not ctrls:
            raise ValueError("controllers must name at least one controller")
        for c in ctrls:
            if c not in KNOWN_CONTROLLERS:
                raise ValueError(f"unknown controller {c!r}; choose from {list(KNOWN_CONTROLLERS)}")
        object.__setattr__(self, "controllers", ctrls)
        if self.queue_bytes is not None:
            check_int("queue_bytes", self.queue_bytes, lo=1)
        check_number("loss", self.loss, hi=0.5)
        check_int("seed", self.seed, lo=0)
        if check_number("timeout_s", self.timeout_s) <= 0.0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")

    def capacity(self) -> ConstantLink | TraceLink:
        """The downlink capacity model (reads and validates the trace)."""
        if self.trace is not None:
            return TraceLink(self.trace)
        assert self.rate_bps is not None
        return ConstantLink(float(self.rate_bps))

    def resolved_queue_bytes(self, capacity: ConstantLink | TraceLink) -> int:
        if self.queue_bytes is not None:
            return self.queue_bytes
        from oxidize_ml.sim.links import BufferSpec

        return BufferSpec().size_bytes(capacity.mean_rate_bps(1.0), 2.0 * self.delay_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate_bps": self.rate_bps if self.trace is None else None,
            "trace": self.trace,
            "delay_s": self.delay_s,
            "transfer_bytes": self.transfer_bytes,
            "controllers": list(self.controllers),
            "queue_bytes": self.queue_bytes,
            "loss": self.loss,
            "seed": self.seed,
            "timeout_s": self.timeout_s,
        }


@dataclass(frozen=True, slots=True)
class SimNumbers:
    """The simulator's figures for the equivalent scenario."""

    completed: bool
    completion_s: float | None
    goodput_bps: float
    srtt_p50_s: float
    srtt_p95_s: float
    dropped_queue: int
    dropped_random: int
    packets_lost: int
    queue_delay_p95_s: float = math.nan
    """95th percentile of one-way delay minus the propagation delay (queueing + transmission)"""
    utilisation: float = math.nan
    """bytes delivered / link bytes offered over the flow's active time"""
    series_t: tuple[float, ...] = ()
    series_bytes: tuple[float, ...] = ()
    series_srtt: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "completion_s": self.completion_s,
            "goodput_bps": self.goodput_bps,
            "srtt_p50_s": _nan_none(self.srtt_p50_s),
            "srtt_p95_s": _nan_none(self.srtt_p95_s),
            "dropped_queue": self.dropped_queue,
            "dropped_random": self.dropped_random,
            "packets_lost": self.packets_lost,
            "queue_delay_p95_s": _nan_none(self.queue_delay_p95_s),
            "utilisation": _nan_none(self.utilisation),
        }


@dataclass(frozen=True, slots=True)
class TransferResult:
    """One controller's run through the emulator."""

    controller: str
    completed: bool
    error: str | None
    bytes_received: int
    handshake_s: float | None
    """connect() call to handshake done"""
    transfer_s: float | None
    """request sent to last byte received (None when not completed)"""
    goodput_bps: float
    """payload bits / transfer_s (completed) or / time until the timeout"""
    capacity_bps: float
    """link capacity offered over the same window (link bytes, incl. headers)"""
    srtt_p50_s: float
    srtt_p95_s: float
    latest_rtt_p50_s: float
    latest_rtt_p95_s: float
    dropped_queue: int
    """downlink drop-tail drops during the run"""
    dropped_loss: int
    """downlink random-loss drops during the run"""
    queue_delay_p95_s: float
    """downlink queueing delay, 95th percentile over packets (emulator)"""
    cpu_share: float
    """endpoints' process CPU time / wall time over the run: near 1 means the event loop that
    runs server and client was saturated, and RTTs include processing backlog"""
    link: dict[str, Any]
    """the emulator's full report"""
    controller_stats: dict[str, Any] | None
    """the oxidize controller's counters (None for reno / cubic)"""
    telemetry_export: str | None
    series_t: tuple[float, ...] = ()
    """sample times, seconds from the request"""
    series_bytes: tuple[int, ...] = ()
    series_srtt: tuple[float, ...] = ()
    series_cwnd: tuple[int, ...] = ()
    sim: SimNumbers | None = None
    emulator_cpu_share: float = math.nan
    """the emulator process's CPU time / wall time over the run"""
    link_offset_s: float = math.nan
    """schedule time at which the server started sending (request sent + one-way delay):
    the simulator's run of a trace starts there"""

    @property
    def goodput_vs_sim(self) -> float:
        """e2e goodput / the simulator's on the same link (NaN without a simulator row)."""
        if self.sim is None or self.sim.goodput_bps <= 0.0 or not self.completed:
            return math.nan
        return self.goodput_bps / self.sim.goodput_bps

    @property
    def utilisation_vs_sim(self) -> float:
        """e2e / simulator utilisation (goodput over the capacity each saw during its own
        transfer): on a variable link, the goodput comparison without the part due to
        the two runs meeting different stretches of the trace."""
        if self.sim is None or not self.sim.utilisation > 0.0 or not self.completed:
            return math.nan
        return self.utilisation / self.sim.utilisation

    @property
    def qdelay_p95_diff_s(self) -> float:
        """e2e - simulator p95 queueing delay at the bottleneck, seconds (NaN without one)."""
        if self.sim is None:
            return math.nan
        return self.queue_delay_p95_s - self.sim.queue_delay_p95_s

    @property
    def utilisation(self) -> float:
        """Goodput / offered capacity (payload over link bytes: below 1 even when full)."""
        return self.goodput_bps / self.capacity_bps if self.capacity_bps > 0 else math.nan

    def to_dict(self, *, include_series: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "controller": self.controller,
            "completed": self.completed,
            "error": self.error,
            "bytes_received": self.bytes_received,
            "handshake_s": self.handshake_s,
            "transfer_s": self.transfer_s,
            "goodput_bps": self.goodput_bps,
            "capacity_bps": self.capacity_bps,
            "utilisation": _nan_none(self.utilisation),
            "srtt_p50_s": _nan_none(self.srtt_p50_s),
            "srtt_p95_s": _nan_none(self.srtt_p95_s),
            "latest_rtt_p50_s": _nan_none(self.latest_rtt_p50_s),
            "latest_rtt_p95_s": _nan_none(self.latest_rtt_p95_s),
            "dropped_queue": self.dropped_queue,
            "dropped_loss": self.dropped_loss,
            "queue_delay_p95_s": _nan_none(self.queue_delay_p95_s),
            "cpu_share": self.cpu_share,
            "emulator_cpu_share": _nan_none(self.emulator_cpu_share),
            "link_offset_s": _nan_none(self.link_offset_s),
            "goodput_vs_sim": _nan_none(self.goodput_vs_sim),
            "utilisation_vs_sim": _nan_none(self.utilisation_vs_sim),
            "qdelay_p95_diff_s": _nan_none(self.qdelay_p95_diff_s),
            "link": self.link,
            "controller_stats": self.controller_stats,
            "telemetry_export": self.telemetry_export,
            "sim": None if self.sim is None else self.sim.to_dict(),
        }
        if include_series:
            d["series"] = {
                "t_s": list(self.series_t),
                "bytes": list(self.series_bytes),
                "srtt_s": list(self.series_srtt),
                "cwnd": list(self.series_cwnd),
            }
        return d


@dataclass(frozen=True, slots=True)
class E2eReport:
    """All controllers of one evaluation."""

    config: E2eConfig
    queue_bytes: int
    mean_capacity_bps: float
    results: tuple[TransferResult, ...]
    sim_note: str
    """why the simulator column is missing, or how it was run"""
    files: tuple[str, ...] = field(default_factory=tuple)

    def result(self, controller: str) -> TransferResult:
        for r in self.results:
            if r.controller == controller:
                return r
        raise KeyError(f"no result for {controller!r}; have {[r.controller for r in self.results]}")

    def to_dict(self, *, include_series: bool = False) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "queue_bytes": self.queue_bytes,
            "mean_capacity_bps": self.mean_capacity_bps,
            "sim_note": self.sim_note,
            "results": [r.to_dict(include_series=include_series) for r in self.results],
        }

    def write(self, directory: str | os.PathLike[str], *, plot: bool = True) -> E2eReport:
        """Write ``e2e.json`` (with series) and, with matplotlib, ``e2e.png`` into ``directory``."""
        import json

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        files = [
            str(
                atomic_write_text(
                    out / "e2e.json", json.dumps(self.to_dict(include_series=True), indent=2)
                )
            )
        ]
        if plot:
            files.append(str(_plot(self, out / "e2e.png")))
        return replace(self, files=tuple(files))


def _float(x: Any) -> float:
    """A number from the emulator's JSON report (null: NaN)."""
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else math.nan


def _nan_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def _pcts(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50.0, 95.0])
    return float(p50), float(p95)


# ---- synthetic trace ---------------------------------------------------------------------
def synthetic_cellular_trace(
    path: str | os.PathLike[str],
    *,
    seed: int,
    duration_s: float = 30.0,
    config: CellularConfig | None = None,
) -> Path:
    """Write one realisation of the simulator's synthetic cellular model as a Mahimahi trace.

    The emulator process takes capacities as files (a trace is data, a random
    model is not), so tests and reports without the shared traces draw one
    here: `CellularLink` with ``seed``, each delivery opportunity rounded up
    to its millisecond (Mahimahi's grid). Returns ``path``.
    """
    check_int("seed", seed, lo=0)
    if check_number("duration_s", duration_s, hi=3600.0) < 1.0:
        raise ValueError(f"duration_s must be >= 1, got {duration_s!r}")
    link = CellularLink(config if config is not None else CellularConfig())
    sched = link.schedule(duration_s, np.random.default_rng(seed))
    ms = np.maximum(np.ceil(sched.times_s * 1000.0 - 1e-9), 1.0).astype(np.int64)
    # The trace must last the whole horizon so that it repeats on the same period.
    ms = np.append(ms[ms < int(duration_s * 1000)], int(duration_s * 1000))
    return atomic_write_text(Path(path), "\n".join(map(str, ms.tolist())) + "\n")


# ---- certificate -----------------------------------------------------------------------
def make_self_signed_cert(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A fresh EC P-256 certificate for ``localhost`` / ``127.0.0.1``, valid one day.

    Writes ``cert.pem`` and ``key.pem`` (owner-only) into ``directory`` and
    returns their paths. The certificate is its own CA, so the client can
    verify the server against it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = Path(directory)
    cert_path = atomic_write_bytes(d / "cert.pem", cert.public_bytes(serialization.Encoding.PEM))
    key_path = atomic_write_bytes(
        d / "key.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    return cert_path, key_path


# ---- protocols ---------------------------------------------------------------------------
class _ServerProtocol(QuicConnectionProtocol):
    """Answers ``GET <n>\\n`` on a stream with ``n`` bytes and closes the stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests: dict[int, bytearray] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if not isinstance(event, StreamDataReceived):
            return
        buf = self._requests.setdefault(event.stream_id, bytearray())
        if len(buf) + len(event.data) > MAX_REQUEST_BYTES:
            self._requests.pop(event.stream_id, None)
            self._quic.reset_stream(event.stream_id, error_code=1)
            self.transmit()
            return
        buf += event.data
        if not event.end_stream:
            return
        del self._requests[event.stream_id]
        text = bytes(buf).decode("ascii", errors="replace").strip()
        verb, _, size = text.partition(" ")
        if verb != "GET" or not size.isdigit() or not 0 < int(size) <= MAX_TRANSFER_BYTES:
            self._quic.reset_stream(event.stream_id, error_code=2)
        else:
            self._quic.send_stream_data(event.stream_id, bytes(int(size)), end_stream=True)
        self.transmit()


class _ClientProtocol(QuicConnectionProtocol):
    """Requests ``n`` bytes on one stream and counts what arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0
        self.t_request: float | None = None
        self.t_done: float | None = None
        self._done: asyncio.Future[None] | None = None
        self._stream_id: int | None = None

    async def fetch(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._stream_id = self._quic.get_next_available_stream_id()
        self.t_request = loop.time()
        self._quic.send_stream_data(self._stream_id, f"GET {n}\n".encode(), end_stream=True)
        self.transmit()
        await self._done

    def quic_event_received(self, event: QuicEvent) -> None:
        done = self._done
        if isinstance(event, StreamDataReceived) and event.stream_id == self._stream_id:
            self.received += len(event.data)
            if event.end_stream and done is not None and not done.done():
                self.t_done = self._loop.time()
                done.set_result(None)
        elif isinstance(event, ConnectionTerminated) and done is not None and not done.done():
            done.set_exception(ConnectionError(f"connection closed: {event.reason_phrase!r}"))


# ---- one run -----------------------------------------------------------------------------
async def _sample(
    server: list[_ServerProtocol],
    client: _ClientProtocol,
    t0: float,
    out: dict[str, list[Any]],
) -> None:
    loop = asyncio.get_running_loop()
    while len(out["t"]) < MAX_SAMPLES:
        if server:
            loss = server[-1]._quic._loss
            if loss._rtt_initialized:
                out["t"].append(loop.time() - t0)
                out["bytes"].append(client.received)
                out["srtt"].append(loss._rtt_smoothed)
                out["latest"].append(loss._rtt_latest)
                out["cwnd"].append(loss.congestion_window)
        await asyncio.sleep(SAMPLE_INTERVAL_S)


def _oxidize_engine_factory(cfg: E2eConfig, engines: list[Any]) -> Any:
    from oxidize_ml.congestion.actions import CwndLimits
    from oxidize_ml.engine import EngineConfig, MlEngine

    def make() -> MlEngine:
        engine = MlEngine(
            EngineConfig(
                limits=CwndLimits(mss=DATAGRAM_BYTES),
                seed=cfg.seed,
                collect_training=cfg.collect_dir is not None,
            )
        )
        engines.append(engine)
        return engine

    return make


async def _run_one(
    controller: str,
    cfg: E2eConfig,
    capacity: ConstantLink | TraceLink,
    queue_bytes: int,
    cert: Path,
    key: Path,
) -> TransferResult:
    loop = asyncio.get_running_loop()
    engines: list[Any] = []
    if controller == OXIDIZE_NAME:
        # Re-registering replaces the factory: this run's engines carry its seed.
        register_oxidize(_oxidize_engine_factory(cfg, engines), name=OXIDIZE_NAME)
    try:
        # Build one controller now: a broken factory fails here with its own error
        # instead of inside aioquic's packet handler, where it would stall the run.
        create_congestion_control(controller, max_datagram_size=DATAGRAM_BYTES)
    except Exception as exc:  # noqa: BLE001 - reported in the row, the other runs go on
        return _failed(controller, f"controller could not be created: {type(exc).__name__}: {exc}")
    engines.clear()
    server_cfg = QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN],
        congestion_control_algorithm=controller,
        max_datagram_size=DATAGRAM_BYTES,
    )
    server_cfg.load_cert_chain(str(cert), str(key))
    client_cfg = QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        congestion_control_algorithm="reno",
        max_datagram_size=DATAGRAM_BYTES,
        server_name="localhost",
        max_data=FLOW_CONTROL_BYTES,
        max_stream_data=FLOW_CONTROL_BYTES,
    )
    client_cfg.load_verify_locations(cafile=str(cert))
    client_cfg.verify_mode = ssl.CERT_REQUIRED

    servers: list[_ServerProtocol] = []

    def make_server(*args: Any, **kwargs: Any) -> _ServerProtocol:
        p = _ServerProtocol(*args, **kwargs)
        servers.append(p)
        return p

    loss = BernoulliLoss(cfg.loss) if cfg.loss > 0.0 else None
    samples: dict[str, list[Any]] = {k: [] for k in ("t", "bytes", "srtt", "latest", "cwnd")}
    error: str | None = None
    client: _ClientProtocol | None = None
    t_connect = loop.time()
    t_connected: float | None = None
    sampler: asyncio.Task[None] | None = None
    server = await serve("127.0.0.1", 0, configuration=server_cfg, create_protocol=make_server)
    emu: EmulatorProcess | None = None
    report: dict[str, Any] = {}
    try:
        transport = server._transport
        assert transport is not None  # serve() returns a bound server
        port = transport.get_extra_info("sockname")[1]
        emu = EmulatorProcess(
            EmulatorConfig(
                target=("127.0.0.1", port),
                downlink=LinkConfig(
                    capacity, delay_s=cfg.delay_s, queue_bytes=queue_bytes, loss=loss
                ),
                uplink=LinkConfig(
                    ConstantLink(ACK_LINK_RATE_BPS),
                    delay_s=cfg.delay_s,
                    queue_bytes=ACK_LINK_QUEUE_BYTES,
                ),
                seed=cfg.seed,
            )
        )
        try:
            await emu.start()
        except RuntimeError as exc:
            return _failed(controller, str(exc))
        cpu0, wall0 = time.process_time(), loop.time()
        host, eport = emu.listen_address
        try:
            async with asyncio.timeout(cfg.timeout_s):
                t_connect = loop.time()
                async with connect(
                    host, eport, configuration=client_cfg, create_protocol=_ClientProtocol
                ) as proto:
                    assert isinstance(proto, _ClientProtocol)  # create_protocol above
                    client = proto
                    t_connected = loop.time()
                    sampler = asyncio.create_task(_sample(servers, client, t_connected, samples))
                    await client.fetch(cfg.transfer_bytes)
                    sampler.cancel()
        except TimeoutError:
            error = f"not completed within {cfg.timeout_s:g} s"
        except (ConnectionError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            t_end = loop.time()
            cpu_share = (time.process_time() - cpu0) / max(t_end - wall0, 1e-9)
            try:
                report = await emu.stop()
            except RuntimeError as exc:
                error = error or str(exc)
    finally:
        server.close()
    assert emu is not None
    emu_cpu = emu.cpu_s / max(t_end - wall0, 1e-9)
    completed = client is not None and client.t_done is not None
    if completed and client is not None and client.received != cfg.transfer_bytes:
        completed = False
        error = f"received {client.received} bytes, expected {cfg.transfer_bytes}"
    received = 0 if client is None else client.received
    t_req = None if client is None else client.t_request
    transfer_s = None
    goodput = 0.0
    capacity_bps = math.nan
    if client is not None and t_req is not None:
        t_stop = client.t_done if completed and client.t_done is not None else t_end
        span = t_stop - t_req
        if completed:
            transfer_s = span
        if span > 0:
            goodput = received * 8.0 / span
            capacity_bps = emu.offered_bytes(t_req, t_stop) * 8.0 / span
    # Keep the samples of the transfer itself (request -> last byte).
    t_off = 0.0 if t_req is None or t_connected is None else t_req - t_connected
    t_last = math.inf if transfer_s is None else t_off + transfer_s
    keep = [i for i, t in enumerate(samples["t"]) if t_off <= t <= t_last]
    srtt = [samples["srtt"][i] for i in keep]
    latest = [samples["latest"][i] for i in keep]
    s50, s95 = _pcts(srtt)
    l50, l95 = _pcts(latest)
    cc_stats = None
    export: str | None = None
    if controller == OXIDIZE_NAME and servers:
        cc = controller_of(servers[-1])
        if cc is not None:
            cc_stats = cc.stats()
            if cfg.collect_dir is not None:
                manifest = cc.engine.export_training_data(cfg.collect_dir)
                export = str(manifest.path)
    down = report.get("downlink", {})
    return TransferResult(
        controller=controller,
        completed=completed,
        error=error,
        bytes_received=received,
        handshake_s=None if t_connected is None else t_connected - t_connect,
        transfer_s=transfer_s,
        goodput_bps=goodput,
        capacity_bps=capacity_bps,
        srtt_p50_s=s50,
        srtt_p95_s=s95,
        latest_rtt_p50_s=l50,
        latest_rtt_p95_s=l95,
        dropped_queue=int(down.get("dropped_queue", 0)),
        dropped_loss=int(down.get("dropped_loss", 0)),
        queue_delay_p95_s=_float(down.get("queue_delay_p95_s")),
        cpu_share=cpu_share,
        emulator_cpu_share=emu_cpu,
        link=report,
        link_offset_s=math.nan if t_req is None else t_req + cfg.delay_s - emu.start_time,
        controller_stats=cc_stats,
        telemetry_export=export,
        series_t=tuple(samples["t"][i] - t_off for i in keep),
        series_bytes=tuple(samples["bytes"][i] for i in keep),
        series_srtt=tuple(srtt),
        series_cwnd=tuple(samples["cwnd"][i] for i in keep),
    )


def _failed(controller: str, error: str) -> TransferResult:
    nan = math.nan
    return TransferResult(
        controller=controller,
        completed=False,
        error=error,
        bytes_received=0,
        handshake_s=None,
        transfer_s=None,
        goodput_bps=0.0,
        capacity_bps=nan,
        srtt_p50_s=nan,
        srtt_p95_s=nan,
        latest_rtt_p50_s=nan,
        latest_rtt_p95_s=nan,
        dropped_queue=0,
        dropped_loss=0,
        queue_delay_p95_s=nan,
        cpu_share=0.0,
        link={},
        controller_stats=None,
        telemetry_export=None,
    )


# ---- simulator ---------------------------------------------------------------------------
def _simulate(
    cfg: E2eConfig,
    capacity: ConstantLink | TraceLink,
    queue_bytes: int,
    offsets: dict[str, float],
) -> tuple[dict[str, SimNumbers], str]:
    try:
        from oxidize_ml.sim import simulate
        from oxidize_ml.sim.controllers.registry import engine_factory
        from oxidize_ml.sim.links import BufferSpec
        from oxidize_ml.sim.scenarios import FlowSpec, Scenario, TraceWindowLink
    except ImportError as exc:
        return {}, f"simulator not available ({exc}); sim columns left out"
    from oxidize_ml.engine import EngineConfig, MlEngine

    def scenario(name: str) -> Scenario:
        link: Any = capacity
        offset = offsets.get(name, math.nan)
        if isinstance(capacity, TraceLink) and math.isfinite(offset):
            # The simulator's flow starts sending at time 0; the e2e server started
            # sending at schedule time `offset` (emulator start-up, handshake, request),
            # so the simulator sees the trace from there: the same capacity, not the
            # same file from its first line.
            link = TraceWindowLink(capacity.path, capacity._ms, start_s=max(offset, 0.0))
        return Scenario(
            name="e2e-equivalent",
            link=link,
            flows=(FlowSpec(delay_s=cfg.delay_s, size_bytes=cfg.transfer_bytes),),
            buffer=BufferSpec(bytes=queue_bytes),
            loss=BernoulliLoss(cfg.loss) if cfg.loss > 0.0 else None,
            duration_s=cfg.timeout_s,
        )

    out: dict[str, SimNumbers] = {}
    failures: list[str] = []
    for name in cfg.controllers:
        ctrl: Any = name
        if name == OXIDIZE_NAME:
            ctrl = engine_factory(
                lambda i, s: MlEngine(EngineConfig(seed=cfg.seed, collect_training=False))
            )
        try:
            res = simulate(scenario(name), ctrl, seed=cfg.seed)
        except Exception as exc:  # noqa: BLE001 - a comparison column: report, do not abort
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        f = res.flows[0]
        srtt: list[float] = []
        t: tuple[float, ...] = ()
        cum: tuple[float, ...] = ()
        if f.series is not None:
            end = f.completion_time_s if f.completion_time_s is not None else res.duration_s
            m = f.series.time_s <= end + 1e-9
            srtt = [x for x in f.series.rtt_s[m].tolist() if x > 0.0]
            t = tuple(f.series.time_s[m].tolist())
            cum = tuple(np.cumsum(f.series.throughput_bps[m] * res.interval_s / 8.0).tolist())
        s50, s95 = _pcts(srtt)
        out[name] = SimNumbers(
            completed=f.completion_time_s is not None,
            completion_s=f.completion_time_s,
            goodput_bps=f.throughput_bps,
            srtt_p50_s=s50,
            srtt_p95_s=s95,
            dropped_queue=f.dropped_queue,
            dropped_random=f.dropped_random,
            packets_lost=f.packets_lost,
            queue_delay_p95_s=f.delay_p95_s - cfg.delay_s,
            utilisation=f.utilisation,
            series_t=t,
            series_bytes=cum,
            # 0 before the first RTT sample: NaN so plots leave it out.
            series_srtt=tuple(x if x > 0.0 else math.nan for x in f.series.rtt_s[: len(t)].tolist())
            if f.series is not None
            else (),
        )
    note = (
        "oxidize_ml.sim on the equivalent scenario (no handshake, 1500-byte packets, "
        "oxidize = MlEngine behind EngineController"
        + (
            ", the trace from where each e2e transfer started)"
            if isinstance(capacity, TraceLink)
            else ")"
        )
    )
    if failures:
        note += "; simulator failed for " + "; ".join(failures)
    return out, note


# ---- entry points ------------------------------------------------------------------------
async def run_e2e_async(config: E2eConfig) -> E2eReport:
    """`run_e2e` inside a running event loop."""
    capacity = config.capacity()
    queue_bytes = config.resolved_queue_bytes(capacity)
    results: list[TransferResult] = []
    with tempfile.TemporaryDirectory(prefix="oxidize-e2e-") as tmp:
        os.chmod(tmp, 0o700)
        cert, key = make_self_signed_cert(tmp)
        for name in config.controllers:
            results.append(await _run_one(name, config, capacity, queue_bytes, cert, key))
    note = "simulator not run (--no-sim)"
    if config.simulate:
        offsets = {r.controller: r.link_offset_s for r in results}
        sims, note = _simulate(config, capacity, queue_bytes, offsets)
        results = [replace(r, sim=sims.get(r.controller)) for r in results]
    return E2eReport(
        config=config,
        queue_bytes=queue_bytes,
        mean_capacity_bps=capacity.mean_rate_bps(1.0),
        results=tuple(results),
        sim_note=note,
    )


def run_e2e(config: E2eConfig) -> E2eReport:
    """Run every controller of ``config`` through the emulator (and the simulator); see module docs.

    Each run is bounded by ``config.timeout_s``; one that does not finish is
    reported with ``completed=False`` and an ``error``.
    """
    return asyncio.run(run_e2e_async(config))


# ---- plot --------------------------------------------------------------------------------
def _plot(report: E2eReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.results
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = [r.controller for r in rows]
    x = np.arange(len(rows))
    ax = axes[0]
    ax.bar(x - 0.2, [r.goodput_bps / 1e6 for r in rows], 0.4, label="aioquic + emulator")
    sims = [r.sim.goodput_bps / 1e6 if r.sim is not None else 0.0 for r in rows]
    if any(r.sim is not None for r in rows):
        ax.bar(x + 0.2, sims, 0.4, label="simulator")
    ax.axhline(
        report.mean_capacity_bps / 1e6,
        color="k",
        ls="--",
        lw=1,
        label="mean capacity (whole trace)" if report.config.trace else "capacity",
    )
    if report.config.trace:
        ax.scatter(
            x - 0.2,
            [r.capacity_bps / 1e6 for r in rows],
            marker="_",
            s=400,
            color="k",
            zorder=3,
            label="capacity during the transfer",
        )
    ax.set_xticks(x, names)
    ax.set_ylabel("goodput, Mbit/s")
    ax.set_title("goodput")
    ax.legend(fontsize=8)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(rows):
        c = colors[i % len(colors)]
        if r.series_t:
            axes[1].plot(r.series_t, np.asarray(r.series_bytes) / 1e6, color=c, label=r.controller)
            axes[2].plot(r.series_t, np.asarray(r.series_srtt) * 1e3, color=c, label=r.controller)
        if r.sim is not None and r.sim.series_t:
            axes[1].plot(
                r.sim.series_t,
                np.asarray(r.sim.series_bytes) / 1e6,
                color=c,
                ls=":",
                label=f"{r.controller} (sim)",
            )
            axes[2].plot(
                r.sim.series_t,
                np.asarray(r.sim.series_srtt) * 1e3,
                color=c,
                ls=":",
                label=f"{r.controller} (sim)",
            )
    axes[1].set_xlabel("time since request, s")
    axes[1].set_ylabel("MB delivered")
    axes[1].set_title("progress")
    axes[2].set_xlabel("time since request, s")
    axes[2].set_ylabel("smoothed RTT, ms")
    axes[2].set_title("smoothed RTT (sender)")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    cfg = report.config
    link = f"trace {Path(cfg.trace).name}" if cfg.trace else f"{(cfg.rate_bps or 0) / 1e6:g} Mbit/s"
    fig.suptitle(
        f"oxidize-ml e2e: {link}, {cfg.delay_s * 1e3:g} ms one-way, "
        f"queue {report.queue_bytes} B, {cfg.transfer_bytes} B, seed {cfg.seed}"
    )
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    from oxidize_ml._atomic import atomic_write_with

    try:
        atomic_write_with(path, write)
    finally:
        plt.close(fig)
    return path
