"""A user-space bottleneck link emulator (Mahimahi style) as an asyncio UDP relay on loopback.

Linux netem is not available on these machines (REFERENCES section 6), so
delay, capacity, queueing and loss are emulated in the process: clients send
UDP datagrams to ``127.0.0.1:<listen port>``; the emulator forwards them over
the *uplink* to the target, and forwards the target's answers over the
*downlink* back to the client that sent the first datagram. Each client gets
its own upstream socket, so the target sees one address per client.

Link model (per direction, the simulator's model: `oxidize_ml.sim.core`)
-----------------------------------------------------------------------
1. **Propagation delay** ``delay_s`` first: a datagram received at ``t``
   reaches the bottleneck at ``t + delay_s``.
2. **Drop-tail queue** of ``queue_bytes``: the datagram is dropped when the
   bytes still queued at its arrival plus its own size exceed the limit.
   Sizes count the datagram plus ``header_bytes`` (28: IPv4 + UDP), because
   Mahimahi's link carries IP packets.
3. **Capacity** from the simulator's `OpportunitySchedule` (a Mahimahi trace,
   a constant rate, steps, the synthetic cellular model): each delivery
   opportunity carries up to 1500 bytes of the queue head, a packet larger
   than what is left of an opportunity continues in the next ones, and
   whatever an opportunity cannot use because the queue is empty is lost
   (Mahimahi ``LinkQueue`` semantics). Time 0 of the schedule is `start`.
   Because the queue is FIFO and opportunities are exogenous, a packet's
   departure time is known the moment it arrives, so each packet costs O(1).
4. **Random loss** (`oxidize_ml.sim.loss` Bernoulli or Gilbert-Elliott,
   seeded, one decision per packet) at the egress: the packet uses its
   opportunity, then vanishes, as in the simulator.
5. The receiver sits right after the bottleneck: the packet is sent on at
   its departure time.

Scheduling: one timer per direction (``loop.call_at`` at the head packet's
departure); when it fires it sends every packet that is due, then re-arms for
the next. Departure times are non-decreasing, so no heap is needed. asyncio
wakes up with about 1 ms granularity (epoll timeouts are whole
milliseconds), so packets leave up to about 1 ms late; the report gives the
measured lateness (``late_mean_s`` / ``late_max_s``). Mahimahi itself works
on a 1 ms grid.

Bounds: at most ``max_clients`` clients, ``max_pipe_packets`` packets in
each direction (queue plus propagation; beyond it datagrams are dropped and
counted as ``dropped_overflow``), and ``max_delay_samples`` queueing-delay
samples per direction (beyond it every other sample is kept and the stride
doubles: a uniform subsample, as the simulator does).
"""

from __future__ import annotations

# Per-packet code: an `if` is cheaper than calling min()/max() on two numbers.
# ruff: noqa: PLR1730
import asyncio
import ipaddress
import math
import socket
from array import array
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Self

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.sim.links import CellularLink, ConstantLink, StepLink, TraceLink
from oxidize_ml.sim.loss import BernoulliLoss, GilbertElliottLoss, LossSampler
from oxidize_ml.sim.traces import MTU_BYTES, OpportunitySchedule, first_index_at_or_after

__all__ = [
    "DEFAULT_HEADER_BYTES",
    "EmulatorConfig",
    "EmulatorReport",
    "LinkConfig",
    "LinkEmulator",
    "LinkReport",
    "parse_host_port",
]

LISTEN_HOST = "127.0.0.1"
"""the emulator only ever listens on IPv4 loopback"""
DEFAULT_HEADER_BYTES = 28
"""IPv4 (20) + UDP (8) header bytes added to each datagram's size on the link"""
LOSS_BLOCK = 4096
"""random loss decisions drawn per numpy call (as the simulator does)"""
RECV_BATCH = 256
"""datagrams read per socket wake-up before yielding to the event loop"""
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
"""SO_RCVBUF / SO_SNDBUF asked for (the kernel caps it at net.core.rmem_max)"""
MAX_DATAGRAM_BYTES = 65535
"""largest UDP datagram read"""

CapacitySpec = ConstantLink | TraceLink | StepLink | CellularLink


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """One direction of the emulated path."""

    capacity: CapacitySpec
    """capacity model (`oxidize_ml.sim.links`): ConstantLink, TraceLink (Mahimahi), ..."""
    delay_s: float = 0.0
    """one-way propagation delay, seconds (applied before the bottleneck)"""
    queue_bytes: int = 100 * MTU_BYTES
    """drop-tail queue size, bytes (packets x 1500 for a Mahimahi-style packet limit)"""
    loss: BernoulliLoss | GilbertElliottLoss | None = None
    """random loss at the egress; None: only queue overflow drops"""
    horizon_s: float = 3600.0
    """length of StepLink / CellularLink schedules before they repeat, seconds"""

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, CapacitySpec):
            raise TypeError(
                "capacity must be ConstantLink, TraceLink, StepLink or CellularLink, got "
                f"{type(self.capacity).__name__}"
            )
        check_number("delay_s", self.delay_s, hi=60.0)
        check_int("queue_bytes", self.queue_bytes, lo=1)
        if self.loss is not None and not isinstance(self.loss, BernoulliLoss | GilbertElliottLoss):
            raise TypeError(f"loss must be a loss model or None, got {type(self.loss).__name__}")
        if check_number("horizon_s", self.horizon_s) <= 0.0:
            raise ValueError(f"horizon_s must be > 0, got {self.horizon_s!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity.to_dict(),
            "delay_s": self.delay_s,
            "queue_bytes": self.queue_bytes,
            "loss": None if self.loss is None else self.loss.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """The whole relay: where to forward and the two directions."""

    target: tuple[str, int]
    """(host, port) the relay forwards to; must be a loopback address"""
    downlink: LinkConfig
    """target -> client direction (the data of a download)"""
    uplink: LinkConfig
    """client -> target direction"""
    listen_port: int = 0
    """port on 127.0.0.1 clients send to; 0: any free port (see `LinkEmulator.listen_address`)"""
    seed: int = 0
    """seeds the loss processes (and synthetic capacity) of both directions"""
    header_bytes: int = DEFAULT_HEADER_BYTES
    """bytes added to each datagram's size on the link (IP + UDP headers)"""
    max_clients: int = 64
    """distinct client addresses served; datagrams from further ones are dropped"""
    max_pipe_packets: int = 65536
    """per-direction bound on packets queued or propagating"""
    max_delay_samples: int = 100_000
    """per-direction bound on stored queueing-delay samples"""

    def __post_init__(self) -> None:
        host, port = self.target
        if not isinstance(host, str) or not host:
            raise ValueError(f"target host must be a non-empty string, got {host!r}")
        check_int("target port", port, lo=1, hi=65535)
        if not isinstance(self.downlink, LinkConfig) or not isinstance(self.uplink, LinkConfig):
            raise TypeError("downlink and uplink must be LinkConfig")
        check_int("listen_port", self.listen_port, lo=0, hi=65535)
        check_int("seed", self.seed, lo=0)
        check_int("header_bytes", self.header_bytes, lo=0, hi=1024)
        check_int("max_clients", self.max_clients, lo=1)
        check_int("max_pipe_packets", self.max_pipe_packets, lo=1)
        check_int("max_delay_samples", self.max_delay_samples, lo=2)


def parse_host_port(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; ``ValueError`` naming the text otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port)


def _resolve_loopback(host: str) -> str:
    try:
        addr = socket.gethostbyname(host)
    except OSError as exc:
        raise ValueError(f"cannot resolve target host {host!r}: {exc}") from None
    if not ipaddress.ip_address(addr).is_loopback:
        raise ValueError(
            f"target {host!r} resolves to {addr}, which is not a loopback address; the "
            "emulator only relays on the local machine (127.0.0.0/8)"
        )
    return addr


@dataclass(frozen=True, slots=True)
class LinkReport:
    """What one direction did since `LinkEmulator.start`."""

    name: str
    received: int
    """datagrams that entered the link"""
    delivered: int
    dropped_queue: int
    """drop-tail overflow"""
    dropped_loss: int
    """random loss at the egress"""
    dropped_overflow: int
    """beyond ``max_pipe_packets`` (0 unless the sender floods)"""
    dropped_send: int
    """the socket refused the datagram when it was due (kernel buffer full)"""
    pending: int
    """still queued or propagating when the report was taken"""
    bytes_received: int
    """link bytes (datagrams + header_bytes) that entered"""
    bytes_delivered: int
    queue_delay_p50_s: float
    """time from bottleneck arrival to departure (waiting + transmission), delivered packets"""
    queue_delay_p95_s: float
    queue_delay_max_s: float
    late_mean_s: float
    """how late packets left against their computed departure (event-loop wake-up error)"""
    late_max_s: float
    mean_capacity_bps: float
    """the capacity model's mean rate"""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = None if isinstance(v, float) and math.isnan(v) else v
        return out


@dataclass(frozen=True, slots=True)
class EmulatorReport:
    """Both directions plus the run's length."""

    elapsed_s: float
    clients: int
    uplink: LinkReport
    downlink: LinkReport
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "elapsed_s": self.elapsed_s,
            "clients": self.clients,
            "uplink": self.uplink.to_dict(),
            "downlink": self.downlink.to_dict(),
            "config": self.config,
        }


class _Direction:
    """One direction's delay line, drop-tail queue, opportunities, loss and sender."""

    __slots__ = (
        "_credit", "_d_cnt", "_d_stride", "_delays", "_g", "_header", "_late_max",
        "_late_n", "_late_sum", "_loop", "_loss", "_loss_flags", "_loss_pos", "_max_delays",
        "_max_pipe", "_n", "_occ", "_period", "_pipe", "_q", "_send", "_t0",
        "_timer", "_times", "bytes_delivered", "bytes_received", "delay_s", "delivered",
        "dropped_loss", "dropped_overflow", "dropped_queue", "dropped_send", "limit",
        "mean_capacity_bps", "name", "received", "schedule",
    )

    def __init__(
        self, name: str, cfg: LinkConfig, *, rng: np.random.Generator, header_bytes: int,
        max_pipe: int, max_delays: int, loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.name = name
        self.schedule: OpportunitySchedule = cfg.capacity.schedule(cfg.horizon_s, rng)
        self.mean_capacity_bps = self.schedule.mean_rate_bps
        self._times: list[float] = self.schedule.times_s.tolist()
        self._period = self.schedule.period_s
        self._n = len(self._times)
        self.delay_s = cfg.delay_s
        self.limit = cfg.queue_bytes
        self._header = header_bytes
        self._loss: LossSampler | None = None if cfg.loss is None else cfg.loss.sampler(rng)
        self._loss_flags: list[bool] = []
        self._loss_pos = 0
        self._loop = loop
        self._max_pipe = max_pipe
        self._max_delays = max_delays
        self._send: Any = None
        self._t0 = 0.0
        # Queue accounting: (departure rel. to t0, size) of packets not yet departed.
        self._q: deque[tuple[float, int]] = deque()
        self._occ = 0
        self._g = -1  # opportunity the tail packet finished in
        self._credit = 0  # bytes left in that opportunity
        # Delivery pipe: (absolute departure, data, dest, lost, queue delay).
        self._pipe: deque[tuple[float, bytes, Any, bool, float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._delays = array("d")
        self._d_stride = 1
        self._d_cnt = 0
        self._late_sum = 0.0
        self._late_n = 0
        self._late_max = 0.0
        self.received = self.delivered = 0
        self.dropped_queue = self.dropped_loss = self.dropped_overflow = self.dropped_send = 0
        self.bytes_received = self.bytes_delivered = 0

    def start(self, t0: float, send: Any) -> None:
        self._t0 = t0
        self._send = send

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def offered_bytes(self, t_start: float, t_end: float) -> int:
        """Link bytes the schedule can carry in ``(t_start, t_end]`` (event-loop times)."""
        n = self.schedule.count_between(t_start - self._t0, t_end - self._t0)
        return n * MTU_BYTES

    def _lost(self) -> bool:
        if self._loss is None:
            return False
        pos = self._loss_pos
        if pos >= len(self._loss_flags):
            self._loss_flags = self._loss.draw(LOSS_BLOCK)
            pos = 0
        self._loss_pos = pos + 1
        return self._loss_flags[pos]

    def push(self, data: bytes, dest: Any, now: float) -> None:
        """A datagram entered this direction at event-loop time ``now``."""
        size = len(data) + self._header
        self.received += 1
        self.bytes_received += size
        if len(self._pipe) >= self._max_pipe:
            self.dropped_overflow += 1
            return
        a = now + self.delay_s - self._t0  # bottleneck arrival, schedule time
        q = self._q
        occ = self._occ
        while q and q[0][0] <= a:
            occ -= q.popleft()[1]
        if occ + size > self.limit:
            self._occ = occ
            self.dropped_queue += 1
            return
        # Departure: continue from the tail's opportunity if the queue is busy.
        if q:
            g = self._g
            credit = self._credit
            if credit <= 0:
                g += 1
                credit = MTU_BYTES
        else:
            g = first_index_at_or_after(self._times, self._period, a)
            credit = MTU_BYTES
        rem = size
        while rem > credit:
            rem -= credit
            g += 1
            credit = MTU_BYTES
        credit -= rem
        n = self._n
        dep = (g // n) * self._period + self._times[g % n]
        self._g = g
        self._credit = credit
        q.append((dep, size))
        self._occ = occ + size
        t_dep = dep + self._t0
        self._pipe.append((t_dep, data, dest, self._lost(), dep - a))
        if self._timer is None:
            self._timer = self._loop.call_at(t_dep, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        pipe = self._pipe
        send = self._send
        hdr = self._header
        while pipe and pipe[0][0] <= now:
            t_dep, data, dest, lost, qdelay = pipe.popleft()
            if lost:
                self.dropped_loss += 1
                continue
            try:
                send(data, dest)
            except (BlockingIOError, InterruptedError, ConnectionRefusedError, OSError):
                # ConnectionRefused: the peer's port is closed (ICMP); the datagram is gone.
                self.dropped_send += 1
                continue
            self.delivered += 1
            self.bytes_delivered += len(data) + hdr
            late = now - t_dep
            self._late_sum += late
            self._late_n += 1
            if late > self._late_max:
                self._late_max = late
            self._d_cnt += 1
            if self._d_cnt >= self._d_stride:
                self._d_cnt = 0
                self._delays.append(qdelay)
                if len(self._delays) >= self._max_delays:
                    self._delays = self._delays[::2]
                    self._d_stride *= 2
        if pipe:
            self._timer = self._loop.call_at(pipe[0][0], self._fire)

    def report(self) -> LinkReport:
        d = np.frombuffer(self._delays, dtype=np.float64) if len(self._delays) else None
        p50 = p95 = mx = math.nan
        if d is not None:
            p50, p95 = (float(x) for x in np.percentile(d, [50.0, 95.0]))
            mx = float(d.max())
        return LinkReport(
            name=self.name, received=self.received, delivered=self.delivered,
            dropped_queue=self.dropped_queue, dropped_loss=self.dropped_loss,
            dropped_overflow=self.dropped_overflow, dropped_send=self.dropped_send,
            pending=len(self._pipe), bytes_received=self.bytes_received,
            bytes_delivered=self.bytes_delivered, queue_delay_p50_s=p50,
            queue_delay_p95_s=p95, queue_delay_max_s=mx,
            late_mean_s=self._late_sum / self._late_n if self._late_n else math.nan,
            late_max_s=self._late_max if self._late_n else math.nan,
            mean_capacity_bps=self.mean_capacity_bps,
        )


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)
        except OSError:  # pragma: no cover - platform refuses; the default still works
            pass
    return sock


class LinkEmulator:
    """Mahimahi-style emulated bottleneck between UDP clients and one loopback target.

    Parameters
    ----------
    config
        Target, both directions, seed and bounds.

    Examples
    --------
    Run inside an event loop::

        emu = LinkEmulator(EmulatorConfig(
            target=("127.0.0.1", 4433),
            downlink=LinkConfig(ConstantLink(4e6), delay_s=0.02, queue_bytes=30_000),
            uplink=LinkConfig(ConstantLink(4e6), delay_s=0.02, queue_bytes=30_000)))
        await emu.start()
        host, port = emu.listen_address      # point the client here
        ...
        await emu.stop()
        print(emu.report().to_dict())
    """

    def __init__(self, config: EmulatorConfig) -> None:
        if not isinstance(config, EmulatorConfig):
            raise TypeError(f"config must be an EmulatorConfig, got {type(config).__name__}")
        self.config = config
        self._target = (_resolve_loopback(config.target[0]), config.target[1])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listen: socket.socket | None = None
        self._upstream: dict[tuple[str, int], socket.socket] = {}
        self._up: _Direction | None = None
        self._down: _Direction | None = None
        self._t0 = 0.0
        self._t_stop: float | None = None
        self.rejected_clients = 0

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the listening socket and start both directions (schedule time 0 is now)."""
        if self._loop is not None:
            raise RuntimeError("LinkEmulator.start was already called")
        loop = asyncio.get_running_loop()
        cfg = self.config
        # One generator per direction, derived from the seed (independent streams).
        rng_up, rng_down = (np.random.default_rng([cfg.seed, i]) for i in (1, 2))
        self._up = _Direction("uplink", cfg.uplink, rng=rng_up, header_bytes=cfg.header_bytes,
                              max_pipe=cfg.max_pipe_packets, max_delays=cfg.max_delay_samples,
                              loop=loop)
        self._down = _Direction("downlink", cfg.downlink, rng=rng_down,
                                header_bytes=cfg.header_bytes, max_pipe=cfg.max_pipe_packets,
                                max_delays=cfg.max_delay_samples, loop=loop)
        sock = _udp_socket()
        try:
            sock.bind((LISTEN_HOST, cfg.listen_port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {LISTEN_HOST}:{cfg.listen_port}: {exc}") from exc
        self._listen = sock
        self._loop = loop
        self._t0 = loop.time()
        self._up.start(self._t0, self._send_up)
        self._down.start(self._t0, self._send_down)
        loop.add_reader(sock.fileno(), self._on_client_readable)

    async def stop(self) -> None:
        """Stop relaying and close every socket; packets still in the link are discarded."""
        loop = self._loop
        if loop is None or self._t_stop is not None:
            return
        self._t_stop = loop.time()
        for d in (self._up, self._down):
            if d is not None:
                d.stop()
        socks = [self._listen, *self._upstream.values()]
        for s in socks:
            if s is not None:
                loop.remove_reader(s.fileno())
                s.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- addresses -----------------------------------------------------------------------
    @property
    def listen_address(self) -> tuple[str, int]:
        """(host, port) clients send to (valid after `start`)."""
        if self._listen is None:
            raise RuntimeError("call LinkEmulator.start() first")
        host, port = self._listen.getsockname()[:2]
        return host, port

    @property
    def target_address(self) -> tuple[str, int]:
        return self._target

    @property
    def start_time(self) -> float:
        """Event-loop time of schedule time 0."""
        return self._t0

    def offered_bytes(self, direction: str, t_start: float, t_end: float) -> int:
        """Link bytes ``direction`` ("uplink"/"downlink") can carry in ``(t_start, t_end]``."""
        d = self._direction(direction)
        return d.offered_bytes(t_start, t_end)

    def _direction(self, direction: str) -> _Direction:
        if direction not in ("uplink", "downlink"):
            raise ValueError(f"direction must be 'uplink' or 'downlink', got {direction!r}")
        d = self._up if direction == "uplink" else self._down
        if d is None:
            raise RuntimeError("call LinkEmulator.start() first")
        return d

    # ---- relaying ------------------------------------------------------------------------
    def _on_client_readable(self) -> None:
        sock = self._listen
        assert sock is not None and self._up is not None and self._loop is not None
        now = self._loop.time()
        push = self._up.push
        for _ in range(RECV_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP unreachable reported on the socket
                continue
            up = self._upstream.get(addr)
            if up is None:
                up = self._open_upstream(addr)
                if up is None:
                    continue
            push(data, up, now)

    def _open_upstream(self, addr: tuple[str, int]) -> socket.socket | None:
        if len(self._upstream) >= self.config.max_clients:
            self.rejected_clients += 1
            return None
        assert self._loop is not None
        up = _udp_socket()
        up.bind((LISTEN_HOST, 0))
        up.connect(self._target)
        self._upstream[addr] = up
        self._loop.add_reader(up.fileno(), self._on_target_readable, up, addr)
        return up

    def _on_target_readable(self, up: socket.socket, client: tuple[str, int]) -> None:
        assert self._down is not None and self._loop is not None
        now = self._loop.time()
        push = self._down.push
        for _ in range(RECV_BATCH):
            try:
                data = up.recv(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ConnectionRefused: target not (yet) listening
                continue
            push(data, client, now)

    def _send_up(self, data: bytes, up: socket.socket) -> None:
        up.send(data)

    def _send_down(self, data: bytes, client: tuple[str, int]) -> None:
        assert self._listen is not None
        self._listen.sendto(data, client)

    # ---- results -------------------------------------------------------------------------
    def report(self) -> EmulatorReport:
        """Per-direction counts and queueing delays since `start`."""
        if self._up is None or self._down is None or self._loop is None:
            raise RuntimeError("call LinkEmulator.start() first")
        end = self._t_stop if self._t_stop is not None else self._loop.time()
        return EmulatorReport(
            elapsed_s=end - self._t0,
            clients=len(self._upstream),
            uplink=self._up.report(),
            downlink=self._down.report(),
            config={
                "target": list(self._target),
                "uplink": self.config.uplink.to_dict(),
                "downlink": self.config.downlink.to_dict(),
                "seed": self.config.seed,
                "header_bytes": self.config.header_bytes,
            },
        )
