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
4. **Random loss** (`oxidize_ml.sim.random_loss` Bernoulli or Gilbert-Elliott,
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

Bounds (every allocation an input can cause)
--------------------------------------------
* **Clients**: a client is a source address; each gets an upstream socket.
  A client silent in both directions for ``client_idle_timeout_s`` is
  forgotten (its socket closed), like a NAT binding; when ``max_clients``
  are active, a new one evicts the least recently active (LRU), so throwaway
  source ports can never lock new clients out. Packets still in flight to an
  evicted client's upstream socket are counted as ``dropped_send``.
* **Link memory**: per direction at most ``max_pipe_bytes`` (link bytes:
  datagram + header) and ``max_pipe_packets`` packets queued or propagating
  (the delay line holds rate x delay bytes, which a long delay makes large);
  beyond either, datagrams are dropped and counted as ``dropped_overflow``.
  Datagrams above ``max_datagram_bytes`` are dropped on entry
  (``dropped_oversize``). The report gives the peak (``max_pending_bytes``).
* **Samples**: ``max_delay_samples`` queueing-delay samples per direction
  (beyond it every other sample is kept and the stride doubles: a uniform
  subsample, as the simulator does).
"""

from __future__ import annotations

# Per-packet code: an `if` is cheaper than calling min()/max() on two numbers.
# ruff: noqa: PLR1730
import asyncio
import ipaddress
import math
import socket
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields
from typing import Any, Self

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.sim.links import CellularLink, ConstantLink, StepLink, TraceLink
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss, LossSampler
from oxidize_ml.sim.traces import MTU_BYTES, OpportunitySchedule, first_index_at_or_after

__all__ = [
    "DEFAULT_HEADER_BYTES",
    "EmulatorConfig",
    "EmulatorReport",
    "LinkConfig",
    "LinkEmulator",
    "LinkReport",
    "direction_rng",
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
"""receive buffer: no UDP datagram over IPv4 is larger (65507 bytes of payload)"""
MAX_UDP_PAYLOAD = 65507
"""largest UDP payload over IPv4; the default and the ceiling of ``max_datagram_bytes``"""
MIN_SWEEP_PERIOD_S = 0.01
MAX_SWEEP_PERIOD_S = 1.0
"""idle clients are looked for every ``client_idle_timeout_s / 4``, within these bounds"""

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
    """client addresses served at once; a further one evicts the least recently active"""
    client_idle_timeout_s: float = 30.0
    """a client silent in both directions this long is forgotten (NAT-binding style; QUIC
    sends a packet at least every idle-timeout / 2 on a live connection)"""
    max_pipe_packets: int = 65536
    """per-direction bound on packets queued or propagating"""
    max_pipe_bytes: int = 32 * 1024 * 1024
    """per-direction bound on link bytes (datagram + header) queued or propagating: the
    emulator's memory is at most about twice this (plus per-packet overhead)"""
    max_datagram_bytes: int = MAX_UDP_PAYLOAD
    """larger datagrams are dropped on entry"""
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
        check_int("max_clients", self.max_clients, lo=1, hi=65536)
        if check_number("client_idle_timeout_s", self.client_idle_timeout_s, hi=86400.0) <= 0.0:
            raise ValueError(
                f"client_idle_timeout_s must be > 0, got {self.client_idle_timeout_s!r}"
            )
        check_int("max_pipe_packets", self.max_pipe_packets, lo=1)
        check_int("max_pipe_bytes", self.max_pipe_bytes, lo=1)
        check_int("max_datagram_bytes", self.max_datagram_bytes, lo=1, hi=MAX_UDP_PAYLOAD)
        check_int("max_delay_samples", self.max_delay_samples, lo=2)


def parse_host_port(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; ``ValueError`` naming the text otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port)


def direction_rng(seed: int, direction: str) -> np.random.Generator:
    """The generator of one direction: its capacity draw first, then its loss decisions.

    One independent stream per direction, derived from the seed, so a second
    process can rebuild the same schedule (`emulator_process.schedule_of`).
    """
    return np.random.default_rng([seed, 1 if direction == "uplink" else 2])


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
    """beyond ``max_pipe_bytes`` / ``max_pipe_packets`` (0 unless the sender floods)"""
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
    dropped_oversize: int = 0
    """datagrams above ``max_datagram_bytes``"""
    pending_bytes: int = 0
    """link bytes still queued or propagating when the report was taken"""
    max_pending_bytes: int = 0
    """peak of ``pending_bytes`` over the run (bounded by ``max_pipe_bytes``)"""

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
    """client addresses served over the run"""
    uplink: LinkReport
    downlink: LinkReport
    config: dict[str, Any] = field(default_factory=dict)
    active_clients: int = 0
    """clients in the table when the report was taken"""
    expired_clients: int = 0
    """forgotten after ``client_idle_timeout_s`` of silence"""
    evicted_clients: int = 0
    """forgotten to make room (``max_clients`` active, least recently active first)"""
    stop_reason: str | None = None
    """why the run ended, when the caller says (``duration``, ``SIGTERM``, ...)"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "elapsed_s": self.elapsed_s,
            "clients": self.clients,
            "active_clients": self.active_clients,
            "expired_clients": self.expired_clients,
            "evicted_clients": self.evicted_clients,
            "stop_reason": self.stop_reason,
            "uplink": self.uplink.to_dict(),
            "downlink": self.downlink.to_dict(),
            "config": self.config,
        }


class _Direction:
    """One direction's delay line, drop-tail queue, opportunities, loss and sender."""

    __slots__ = (
        "_credit",
        "_d_cnt",
        "_d_stride",
        "_delays",
        "_g",
        "_header",
        "_late_max",
        "_late_n",
        "_late_sum",
        "_loop",
        "_loss",
        "_loss_flags",
        "_loss_pos",
        "_max_datagram",
        "_max_delays",
        "_max_pipe",
        "_max_pipe_bytes",
        "_n",
        "_occ",
        "_period",
        "_pipe",
        "_pipe_bytes",
        "_q",
        "_send",
        "_t0",
        "_timer",
        "_times",
        "bytes_delivered",
        "bytes_received",
        "delay_s",
        "delivered",
        "dropped_loss",
        "dropped_overflow",
        "dropped_oversize",
        "dropped_queue",
        "dropped_send",
        "limit",
        "max_pending_bytes",
        "mean_capacity_bps",
        "name",
        "received",
        "schedule",
    )

    def __init__(
        self,
        name: str,
        cfg: LinkConfig,
        *,
        rng: np.random.Generator,
        header_bytes: int,
        max_pipe: int,
        max_pipe_bytes: int,
        max_datagram: int,
        max_delays: int,
        loop: asyncio.AbstractEventLoop,
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
        self._max_pipe_bytes = max_pipe_bytes
        self._max_datagram = max_datagram
        self._pipe_bytes = 0
        self.max_pending_bytes = 0
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
        self.dropped_oversize = 0
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
        n_data = len(data)
        size = n_data + self._header
        self.received += 1
        self.bytes_received += size
        if n_data > self._max_datagram:
            self.dropped_oversize += 1
            return
        # The pipe bound is in bytes as well as packets: the delay line holds rate x
        # delay bytes whatever the queue size, and datagrams can be 64 KB each.
        pipe_bytes = self._pipe_bytes + size
        if len(self._pipe) >= self._max_pipe or pipe_bytes > self._max_pipe_bytes:
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
        self._pipe_bytes = pipe_bytes
        if pipe_bytes > self.max_pending_bytes:
            self.max_pending_bytes = pipe_bytes
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
            self._pipe_bytes -= len(data) + hdr
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
            name=self.name,
            received=self.received,
            delivered=self.delivered,
            dropped_queue=self.dropped_queue,
            dropped_loss=self.dropped_loss,
            dropped_overflow=self.dropped_overflow,
            dropped_send=self.dropped_send,
            pending=len(self._pipe),
            bytes_received=self.bytes_received,
            bytes_delivered=self.bytes_delivered,
            queue_delay_p50_s=p50,
            queue_delay_p95_s=p95,
            queue_delay_max_s=mx,
            late_mean_s=self._late_sum / self._late_n if self._late_n else math.nan,
            late_max_s=self._late_max if self._late_n else math.nan,
            mean_capacity_bps=self.mean_capacity_bps,
            dropped_oversize=self.dropped_oversize,
            pending_bytes=self._pipe_bytes,
            max_pending_bytes=self.max_pending_bytes,
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


class _Client:
    """One client address: its upstream socket and when it was last heard of."""

    __slots__ = ("addr", "last_active", "sock")

    def __init__(self, addr: tuple[str, int], sock: socket.socket, now: float) -> None:
        self.addr = addr
        self.sock = sock
        self.last_active = now


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
        # Least recently active first: expiry and eviction both take from the front.
        self._clients: OrderedDict[tuple[str, int], _Client] = OrderedDict()
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._sweep_period = min(
            MAX_SWEEP_PERIOD_S, max(MIN_SWEEP_PERIOD_S, config.client_idle_timeout_s / 4.0)
        )
        self._up: _Direction | None = None
        self._down: _Direction | None = None
        self._t0 = 0.0
        self._t_stop: float | None = None
        self.clients_seen = 0
        self.expired_clients = 0
        self.evicted_clients = 0

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the listening socket and start both directions (schedule time 0 is now)."""
        if self._loop is not None:
            raise RuntimeError("LinkEmulator.start was already called")
        loop = asyncio.get_running_loop()
        cfg = self.config
        rng_up, rng_down = direction_rng(cfg.seed, "uplink"), direction_rng(cfg.seed, "downlink")
        self._up, self._down = (
            _Direction(
                name,
                link,
                rng=rng,
                header_bytes=cfg.header_bytes,
                max_pipe=cfg.max_pipe_packets,
                max_pipe_bytes=cfg.max_pipe_bytes,
                max_datagram=cfg.max_datagram_bytes,
                max_delays=cfg.max_delay_samples,
                loop=loop,
            )
            for name, link, rng in (
                ("uplink", cfg.uplink, rng_up),
                ("downlink", cfg.downlink, rng_down),
            )
        )
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
        self._sweep_timer = loop.call_later(self._sweep_period, self._sweep)

    async def stop(self) -> None:
        """Stop relaying and close every socket; packets still in the link are discarded."""
        loop = self._loop
        if loop is None or self._t_stop is not None:
            return
        self._t_stop = loop.time()
        for d in (self._up, self._down):
            if d is not None:
                d.stop()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        socks = [self._listen, *(c.sock for c in self._clients.values())]
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
        clients = self._clients
        for _ in range(RECV_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP unreachable reported on the socket
                continue
            client = clients.get(addr)
            if client is None:
                client = self._open_client(addr, now)
                if client is None:
                    continue
            else:
                client.last_active = now
                clients.move_to_end(addr)
            push(data, client.sock, now)

    def _open_client(self, addr: tuple[str, int], now: float) -> _Client | None:
        assert self._loop is not None
        clients = self._clients
        if len(clients) >= self.config.max_clients:
            self._expire(now)
        if len(clients) >= self.config.max_clients:
            # Full of live clients: the least recently active one makes room, so a
            # sender cycling source ports cannot lock everybody else out.
            _, old = clients.popitem(last=False)
            self._close_client(old)
            self.evicted_clients += 1
        up = _udp_socket()
        try:
            up.bind((LISTEN_HOST, 0))
            up.connect(self._target)
        except OSError:  # out of ports or descriptors: drop this datagram, keep running
            up.close()
            return None
        client = _Client(addr, up, now)
        clients[addr] = client
        self.clients_seen += 1
        self._loop.add_reader(up.fileno(), self._on_target_readable, client)
        return client

    def _close_client(self, client: _Client) -> None:
        assert self._loop is not None
        self._loop.remove_reader(client.sock.fileno())
        client.sock.close()

    def _expire(self, now: float) -> None:
        """Forget clients silent in both directions for ``client_idle_timeout_s``."""
        clients = self._clients
        deadline = now - self.config.client_idle_timeout_s
        while clients:
            oldest = next(iter(clients.values()))
            if oldest.last_active > deadline:
                break
            del clients[oldest.addr]
            self._close_client(oldest)
            self.expired_clients += 1

    def _sweep(self) -> None:
        assert self._loop is not None
        self._sweep_timer = None
        if self._t_stop is not None:
            return
        self._expire(self._loop.time())
        self._sweep_timer = self._loop.call_later(self._sweep_period, self._sweep)

    def _on_target_readable(self, client: _Client) -> None:
        assert self._down is not None and self._loop is not None
        now = self._loop.time()
        push = self._down.push
        up = client.sock
        got = False
        for _ in range(RECV_BATCH):
            try:
                data = up.recv(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ConnectionRefused: target not (yet) listening
                continue
            got = True
            push(data, client.addr, now)
        if got and self._clients.get(client.addr) is client:
            # Answers keep the binding alive too (a download's client may only ack).
            client.last_active = now
            self._clients.move_to_end(client.addr)

    def _send_up(self, data: bytes, up: socket.socket) -> None:
        up.send(data)

    def _send_down(self, data: bytes, client: tuple[str, int]) -> None:
        assert self._listen is not None
        self._listen.sendto(data, client)

    # ---- results -------------------------------------------------------------------------
    def report(self, stop_reason: str | None = None) -> EmulatorReport:
        """Per-direction counts and queueing delays since `start`."""
        if self._up is None or self._down is None or self._loop is None:
            raise RuntimeError("call LinkEmulator.start() first")
        end = self._t_stop if self._t_stop is not None else self._loop.time()
        return EmulatorReport(
            elapsed_s=end - self._t0,
            clients=self.clients_seen,
            active_clients=len(self._clients),
            expired_clients=self.expired_clients,
            evicted_clients=self.evicted_clients,
            uplink=self._up.report(),
            downlink=self._down.report(),
            config={
                "target": list(self._target),
                "uplink": self.config.uplink.to_dict(),
                "downlink": self.config.downlink.to_dict(),
                "seed": self.config.seed,
                "header_bytes": self.config.header_bytes,
                "max_clients": self.config.max_clients,
                "client_idle_timeout_s": self.config.client_idle_timeout_s,
                "max_pipe_bytes": self.config.max_pipe_bytes,
                "max_datagram_bytes": self.config.max_datagram_bytes,
            },
            stop_reason=stop_reason,
        )
