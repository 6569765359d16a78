"""The discrete-event, packet-level simulator: senders -> bottleneck -> receivers -> acks.

Model
-----
- **Senders** are window-based (cwnd in bytes, MSS 1500) and send whenever
  ``bytes_in_flight + packet <= cwnd``; a controller whose ``pacing``
  attribute is true is also paced as aioquic paces (``QuicPacketPacer``:
  rate cwnd / srtt, a burst of max(2, min(cwnd / 4, 16)) packets, no pacing
  before the first RTT sample). The engine-driven controllers
  (`EngineController`, `PolicyController`, `ExternalCwndController`) pace by
  default, as the aioquic plug-in does; Reno and CUBIC do not (Linux without
  fq). Paced runs use the general event loop (the pacer adds a timer event). A flow is always
  backlogged unless its `FlowSpec` gives a size. Packets carry new data
  only: a lost packet is not retransmitted as such, the sender simply has
  more new data to send (as QUIC, which retransmits lost frames in new
  packets); goodput counts acknowledged bytes only, and a finite flow
  completes when ``size_bytes`` have been acknowledged.
- **Forward path**: each flow's one-way delay, then the shared **bottleneck**:
  a FIFO drop-tail queue (bytes) served at the link's delivery opportunities
  (`OpportunitySchedule`, one MTU each, Mahimahi semantics: an opportunity
  that finds the queue empty is wasted). Random loss (Bernoulli or
  Gilbert-Elliott, one decision per packet) is applied at the egress: the
  packet uses its opportunity, then vanishes.
- **Receiver** sits right after the bottleneck and acks every packet at once
  (no delayed acks); acks travel back with the flow's reverse delay and are
  never lost.
- **Loss detection and RTT** follow RFC 9002: smoothed_rtt / rttvar /
  min_rtt / latest_rtt; a packet is lost when a packet sent 3 or more later
  is acked, or when it is older than 9/8 max(smoothed_rtt, latest_rtt)
  (at least 1 ms) and a later packet was acked; a loss timer fires for the
  time threshold. A probe timeout (PTO = smoothed_rtt + max(4 rttvar, 1 ms),
  doubled per consecutive PTO up to `K_MAX_PTO_BACKOFF` times and capped at
  `K_MAX_PTO_S`; 999 ms before the first RTT sample) fires when nothing is
  acked: the sender sends up to two probe packets of new
  data regardless of cwnd, whose acks expose the lost tail, so a flow whose
  whole window was dropped recovers. Persistent congestion (RFC 9002 7.6: a
  run of consecutive lost packets spanning more than 3 PTO durations) calls
  ``on_persistent_congestion``. The path never reorders, so every gap in the
  acked packet numbers is a real loss; the general rules still decide *when*
  the sender notices.
- **Delivery-rate samples** are BBR-style: each packet records, when sent,
  the flow's delivered bytes, the time of the last ack and the send time of
  the last acked packet; on its ack, rate = delta delivered / max(send
  elapsed, ack elapsed) (samples shorter than min_rtt are discarded, as in
  Linux ``tcp_rate.c``).
- Every ``interval_s`` (10 ms) each active flow's events are aggregated by
  `IntervalStats` into `NetworkFeatures` (buffer_occupancy is the sender-side
  estimate a real transport has, computed by `IntervalStats` exactly as for the
  aioquic plug-in; the true queue fill is in the run's ``queue_bytes`` series,
  for evaluation only) and given to the controller's ``on_interval`` and to the caller's
  ``on_interval`` hook.

Engine
------
Propagation delays are constant per flow, so the packets travelling to the
bottleneck and the acks travelling back are FIFO deques per flow: there is
no general event heap. Because the bottleneck is a FIFO with exogenous
service times, a packet's departure time is known the moment it arrives,
so the queue is a list of departure times. A packet's bottleneck arrival is
processed as soon as no packet of any flow can still arrive before it
(immediately at send time for a single flow). The main loop merges a
handful of next-event times (each flow's next ack and timer, the next
decision tick, the next flow start). The hot path uses local variables,
tuples and plain floats (no numpy scalars, no per-packet objects beyond
tuples); random loss decisions are drawn in numpy blocks.
"""

# ruff: noqa: PLR1730, FURB136
# (per-packet code: `x if x > y else y` avoids a min()/max() builtin call, ~3x a comparison)

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.controller import CongestionController, overridden_events
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.interval_stats import IntervalStats
from oxidize_ml.sim.results import (
    SERIES_COLUMNS,
    FlowResult,
    FlowSeries,
    RunResult,
    jain_index,
    percentile,
)
from oxidize_ml.sim.scenarios import Scenario, base_rtt_s
from oxidize_ml.sim.traces import MTU_BYTES, OpportunitySchedule, count_at_or_before

if TYPE_CHECKING:
    from oxidize_ml.sim.controllers.registry import ControllerFactory, ControllerRegistry

INF = math.inf
K_PACKET_THRESHOLD = 3
"""RFC 9002 kPacketThreshold"""
K_TIME_THRESHOLD = 9.0 / 8.0
"""RFC 9002 kTimeThreshold"""
K_GRANULARITY_S = 0.001
"""RFC 9002 kGranularity, seconds"""
K_INITIAL_RTT_S = 0.333
"""RFC 9002 kInitialRtt, seconds (PTO before the first RTT sample)"""
K_PERSISTENT_CONGESTION_THRESHOLD = 3
"""RFC 9002 kPersistentCongestionThreshold"""
MAX_PROBES = 2
"""probe packets sent when the PTO fires (RFC 9002 section 6.2.4)"""
K_MICRO_SECOND = 1e-6
"""aioquic's K_MICRO_SECOND: floor of the pacer's packet time and of the smoothed RTT"""
K_MAX_PTO_S = 60.0
"""cap on the probe timeout, backoff included, seconds (RFC 6298 allows a maximum of at
least 60 s; quic-go uses 60 s). One RTT sample taken across an outage (22 s) must not push
the next probe past the end of a run."""
K_MAX_PTO_BACKOFF = 6
"""consecutive PTOs that still double the timeout (64x at most): a flow inside a long
outage keeps probing every few seconds and notices the link's return"""
LOSS_BLOCK = 4096
"""random loss decisions drawn per numpy call"""
QUEUE_COMPACT_ENTRIES = 4096
"""departed queue entries kept before the lists are trimmed"""
COMPACT_EVERY_TICKS_MASK = 63
"""the trim is considered every 64 decision ticks (the bound above then holds within the
packets of 64 intervals)"""
DEFAULT_MAX_DELAY_SAMPLES = 1_000_000
"""per-flow cap on stored one-way delays; beyond it the store is halved (every other sample
kept) and from then on every 2nd (4th, ...) packet is stored, a uniform subsample"""

IntervalHook = Callable[[float, int, NetworkFeatures, float, int], Any]
"""``hook(now, flow_index, features, throughput_bps, cwnd_bytes)``"""


class IntervalSample(NamedTuple):
    """One flow's observation at one decision tick (what `Simulation.run_interval` returns)."""

    now: float
    """tick time, seconds"""
    flow_index: int
    features: NetworkFeatures
    throughput_bps: float
    """goodput over the interval that just ended, bits/s"""
    cwnd: int
    """the flow's window after its controller's decision at this tick, bytes"""


class _Flow:
    """Per-flow state; the event loop reads and writes these slots directly."""

    __slots__ = (
        "ack_delay",
        "acked_bytes",
        "acked_packets",
        "ackq",
        "bif",
        "cb_acked",
        "cb_lost",
        "cb_rtt",
        "cb_sent",
        "completion_time",
        "ctrl",
        "d_cnt",
        "d_stride",
        "delay",
        "delays",
        "delivered_rx_extra",
        "delivered_time",
        "dropped_queue",
        "dropped_random",
        "finished",
        "first_rtt_time",
        "first_sent_time",
        "has_rtt",
        "i_acked_b",
        "i_acked_p",
        "i_last_loss",
        "i_lost_b",
        "i_lost_p",
        "i_rate_max",
        "index",
        "largest_acked",
        "last_send",
        "latest_rtt",
        "lost_bytes",
        "lost_packets",
        "lostq",
        "min_rtt",
        "next_pn",
        "p_bucket",
        "p_bucket_max",
        "p_eval",
        "p_pkt",
        "pace_at",
        "paced",
        "pc_prev_pn",
        "pc_run_start",
        "pend",
        "pif",
        "pto_base",
        "pto_count",
        "rttvar",
        "sent_bytes",
        "sent_packets",
        "series",
        "series_extend",
        "size",
        "spec",
        "srtt",
        "start",
        "started",
        "stats",
        "suspects",
        "timer",
        "wants_interval",
    )

    def __init__(self, index: int, spec: Any, ctrl: CongestionController) -> None:
        self.index = index
        self.spec = spec
        self.ctrl = ctrl
        self.delay = float(spec.delay_s)
        self.ack_delay = float(spec.ack_delay_s)
        self.start = float(spec.start_s)
        self.size = spec.size_bytes  # None: bulk
        ev = overridden_events(ctrl)
        self.cb_sent = ctrl.on_packet_sent if "on_packet_sent" in ev else None
        self.cb_acked = ctrl.on_packets_acked if "on_packets_acked" in ev else None
        self.cb_lost = ctrl.on_packets_lost if "on_packets_lost" in ev else None
        self.cb_rtt = ctrl.on_rtt_measurement if "on_rtt_measurement" in ev else None
        self.wants_interval = "on_interval" in ev
        self.started = False
        self.finished = False
        self.completion_time = INF
        self.next_pn = 0
        # A packet in flight is, in packet-number order, in exactly one of: `pend` (on its way
        # to the bottleneck; multi-flow only), `ackq` (passed the bottleneck, its ack will
        # reach the sender at the time it carries) or `lostq` (dropped at the bottleneck; the
        # sender does not know yet). Each entry carries what the sender recorded at send
        # time: pn, send time, bytes, delivered bytes, delivered_time, first_sent_time.
        # An ack for pn turns every lostq entry below pn into a loss candidate (`suspects`):
        # the path never reorders, so those will never be acked.
        self.pend: deque[tuple[float, int, int, float, int, float, float]] = deque()
        self.ackq: deque[tuple[float, int, int, float, int, float, float]] = deque()
        self.lostq: deque[tuple[int, float, int]] = deque()  # (pn, send time, bytes)
        self.suspects: deque[tuple[int, float, int]] = deque()
        self.bif = 0
        self.pif = 0
        self.largest_acked = -1
        self.delivered_time = self.start
        self.first_sent_time = self.start
        self.has_rtt = False
        self.srtt = 0.0
        self.rttvar = 0.0
        self.min_rtt = 0.0
        self.latest_rtt = 0.0
        self.first_rtt_time = INF
        self.pto_base = K_INITIAL_RTT_S + 4.0 * (K_INITIAL_RTT_S / 2.0)
        self.pto_count = 0
        self.last_send = self.start
        self.timer = INF
        # aioquic's QuicPacketPacer (recovery.py), when the controller asks for pacing:
        # a token bucket of send time, refilled at cwnd / srtt, at most
        # max(2, min(cwnd / 4, 16 packets)) of burst; `pace_at` is when the next packet
        # may leave (INF: not waiting on the pacer).
        self.paced = bool(getattr(ctrl, "pacing", False))
        self.pace_at = INF
        self.p_bucket = 0.0
        self.p_bucket_max = 0.0
        self.p_eval = 0.0
        self.p_pkt = 0.0  # 0: no rate yet (no RTT sample), send unpaced as aioquic does
        self.pc_prev_pn = -2
        self.pc_run_start = 0.0
        self.sent_packets = self.sent_bytes = 0
        self.acked_packets = self.acked_bytes = 0
        self.lost_packets = self.lost_bytes = 0
        self.dropped_queue = self.dropped_random = 0
        self.delivered_rx_extra = 0
        self.i_acked_b = self.i_acked_p = 0
        self.i_lost_b = self.i_lost_p = 0
        self.i_last_loss = 0.0
        self.i_rate_max = 0.0
        self.stats: IntervalStats | None = None
        self.delays = array("d")
        self.d_cnt = 0
        self.d_stride = 1
        # per-interval rows of SERIES_COLUMNS, flattened (one extend per tick)
        self.series = array("d")
        self.series_extend = self.series.extend


def _make_controllers(
    scenario: Scenario,
    controllers: Any,
    seeds: list[int],
    registry: ControllerRegistry | None,
) -> list[CongestionController]:
    n = len(scenario.flows)
    if (
        isinstance(controllers, str)
        or callable(controllers)
        and not isinstance(controllers, CongestionController)
    ):
        items: list[Any] = [controllers] * n
    elif isinstance(controllers, Sequence):
        items = list(controllers)
        if len(items) != n:
            raise ValueError(
                f"scenario {scenario.name!r} has {n} flow(s) but {len(items)} controllers "
                "were given"
            )
    else:
        items = [controllers]
        if n != 1:
            raise ValueError(
                f"scenario {scenario.name!r} has {n} flows: pass a name, a factory or one "
                "controller per flow"
            )
    out: list[CongestionController] = []
    for i, c in enumerate(items):
        if isinstance(c, str):
            if registry is None:
                from oxidize_ml.sim.controllers.registry import default_registry

                registry = default_registry()
            ctrl = registry.create(c, flow_index=i, seed=seeds[i])
        elif hasattr(c, "cwnd") and hasattr(c, "on_interval"):
            ctrl = c
        elif callable(c):
            ctrl = c(flow_index=i, seed=seeds[i])
        else:
            raise TypeError(
                f"controller for flow {i} must be a name, a factory or a controller, got "
                f"{type(c).__name__}"
            )
        if not hasattr(ctrl, "cwnd"):
            raise TypeError(f"controller for flow {i} has no cwnd attribute")
        if any(ctrl is o for o in out):
            raise ValueError("each flow needs its own controller instance")
        out.append(ctrl)
    return out


class Simulation:
    """A run that can be advanced step by step (for Gymnasium environments and hooks).

    Parameters
    ----------
    scenario
        What to simulate.
    controllers
        A registry name (``"reno"``), a factory ``f(*, flow_index, seed)``, a
        controller instance (single-flow scenarios), or a sequence with one
        of those per flow.
    seed
        Seeds every random stream of the run (link realisation unless the
        scenario pins it, random loss, controller factories) through
        ``np.random.SeedSequence(seed).spawn``.
    duration_s
        Overrides ``scenario.duration_s``.
    record_series
        Keep per-interval time series per flow (cwnd, queue, throughput, RTT,
        loss rate, inflight).
    on_interval
        ``hook(now, flow_index, features, throughput_bps, cwnd_bytes)`` called
        at every decision tick for every active flow, after its controller
        decided (``cwnd_bytes`` is the window that applies next). It runs
        inside the event loop, whose state is held in local variables: use the
        arguments, do not call back into the `Simulation`.
    registry
        Where controller names are looked up (default: `default_registry`).
    max_delay_samples
        Per-flow bound on stored one-way delays (see `DEFAULT_MAX_DELAY_SAMPLES`).

    Examples
    --------
    Step-wise, one decision per interval, an external agent setting the window:

    >>> from oxidize_ml.sim import ExternalCwndController, Simulation, get_scenario
    >>> from oxidize_ml.types import DrlAction
    >>> agent = ExternalCwndController()
    >>> sim = Simulation(get_scenario("wired-clean"), [agent], seed=0, duration_s=1.0)
    >>> while not sim.done:
    ...     samples = sim.run_interval()          # one IntervalSample per active flow
    ...     _ = agent.apply(DrlAction.Increase5)  # takes effect now
    >>> sim.result().flows[0].throughput_bps > 0
    True
    """

    def __init__(
        self,
        scenario: Scenario,
        controllers: str | ControllerFactory | CongestionController | Sequence[Any],
        *,
        seed: int,
        duration_s: float | None = None,
        record_series: bool = True,
        on_interval: IntervalHook | None = None,
        registry: ControllerRegistry | None = None,
        max_delay_samples: int = DEFAULT_MAX_DELAY_SAMPLES,
    ) -> None:
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        check_int("seed", seed)
        self.max_delay_samples = check_int("max_delay_samples", max_delay_samples, lo=16)
        self.scenario = scenario
        self.seed = seed
        duration = scenario.duration_s if duration_s is None else duration_s
        if check_number("duration_s", duration) <= 0.0:
            raise ValueError(f"duration_s must be > 0, got {duration!r}")
        self.end_s = float(duration)
        self.interval_s = scenario.interval_s
        self.record_series = bool(record_series)
        self.on_interval = on_interval
        n = len(scenario.flows)
        children = np.random.SeedSequence(seed).spawn(2 + n)
        link_ss = (
            np.random.SeedSequence(scenario.seed) if scenario.seed is not None else children[0]
        )
        self.schedule: OpportunitySchedule = scenario.link.schedule(
            self.end_s, np.random.default_rng(link_ss)
        )
        self.buffer_bytes = scenario.buffer.size_bytes(
            self.schedule.mean_rate_bps, base_rtt_s(scenario)
        )
        self._loss_sampler = (
            scenario.loss.sampler(np.random.default_rng(children[1]))
            if scenario.loss is not None
            else None
        )
        ctrl_seeds = [int(c.generate_state(1)[0]) for c in children[2:]]
        ctrls = _make_controllers(scenario, controllers, ctrl_seeds, registry)
        self.controllers: list[CongestionController] = ctrls
        self._flows = [
            _Flow(i, f, c) for i, (f, c) in enumerate(zip(scenario.flows, ctrls, strict=True))
        ]
        self._mss = MTU_BYTES
        for c in ctrls:
            lim = getattr(c, "limits", None)
            if lim is not None and lim.mss != MTU_BYTES:
                raise ValueError(
                    f"controllers must use mss={MTU_BYTES} (one opportunity), got {lim.mss}"
                )
        self._d_min = min(f.delay for f in self._flows)
        self._single = n == 1
        self._starts = sorted(self._flows, key=lambda f: (f.start, f.index))
        self._start_pos = 0
        self._active: list[_Flow] = []
        self.now = 0.0
        self._tick_index = 1
        self._next_tick = self.interval_s
        self._collect: list[IntervalSample] | None = None
        # bottleneck: opportunity schedule as plain floats
        self._times: list[float] = self.schedule.times_s.tolist()
        self._period = self.schedule.period_s
        self._last_c = -1  # cycle and offset index of the last opportunity used
        self._last_i = len(self._times) - 1
        # queue entries (list + head index): departure, arrival, cumulative bytes before
        self._q_dep: list[float] = []
        self._q_arr: list[float] = []
        self._q_cum: list[int] = []
        self._q_head = 0
        self._q_total = 0
        self._loss_flags: list[bool] = []
        self._loss_pos = 0
        self._pend_min = INF
        self.packets_sent = 0
        self._force_general = False  # tests: run a single flow through the general loop
        # Paced flows need the pacer's timer event: only the general loop has it.
        self._any_paced = any(f.paced for f in self._flows)

    # ------------------------------------------------------------------ public
    @property
    def done(self) -> bool:
        """True once the simulated time reached the end."""
        return self.now >= self.end_s

    @property
    def next_tick_s(self) -> float:
        """Time of the next decision tick."""
        return self._next_tick

    @property
    def flow_count(self) -> int:
        return len(self._flows)

    def queue_bytes(self) -> int:
        """Bytes waiting in the bottleneck queue at the current time."""
        return self._queue_bytes_at(self.now)

    def run_interval(self) -> list[IntervalSample]:
        """Advance to the next decision tick, process it, and return its samples.

        One `IntervalSample` per flow active at the tick (flows not yet
        started or already finished are absent). Controllers have already
        seen the tick; an `ExternalCwndController`'s new window set after
        this returns applies from this instant on. Returns ``[]`` once the
        run is `done`.
        """
        if self.done:
            return []
        target = min(self._next_tick, self.end_s)
        self._collect = []
        try:
            self.advance(target)
            return self._collect
        finally:
            self._collect = None

    def run(self) -> RunResult:
        """Run to the end and return the result."""
        self.advance(self.end_s)
        return self.result()

    def result(self) -> RunResult:
        """Metrics of the run so far (the whole run once `done`)."""
        return build_result(self)

    # ------------------------------------------------------------------ engine
    def advance(self, until_s: float) -> None:
        """Process every event with time ``<= until_s`` (capped at the run's end)."""
        until = min(float(until_s), self.end_s)
        if until < self.now:
            raise ValueError(f"cannot go back in time: now={self.now}, until_s={until_s}")
        if self._single and not self._force_general and not self._any_paced:
            self._advance_single(until)
        else:
            self._advance_general(until)

    def _advance_general(self, until: float) -> None:
        """The event loop for any number of flows (state in the `_Flow` objects)."""
        now = self.now
        # A window may have been changed from outside (step-wise use): send at once.
        for fl in self._active:
            self._send(fl, now)
        self._drain(now)
        active = self._active
        starts = self._starts
        while True:
            # ---- next event: min over each flow's next ack and timer, tick, start, arrival
            t = self._next_tick
            ev = 0
            sel: _Flow | None = None
            for fl in active:
                aq = fl.ackq
                if aq:
                    ta = aq[0][0]
                    if ta <= t:
                        t = ta
                        ev = 1
                        sel = fl
                tm = fl.timer
                if tm < t:
                    t = tm
                    ev = 2
                    sel = fl
            pos = self._start_pos
            # strict: a flow starting exactly on a tick is first observed one interval later
            if pos < len(starts) and starts[pos].start < t:
                t = starts[pos].start
                ev = 3
            if self._pend_min < t:
                t = self._pend_min
                ev = 4
            if self._any_paced:
                for fl in active:
                    if fl.pace_at < t:
                        t = fl.pace_at
                        ev = 5
                        sel = fl
            if t > until:
                break
            now = t
            if ev == 1:
                # ---- an ack arrives at flow `sel` ------------------------------------------
                fl = sel  # type: ignore[assignment]
                _, pn, size, st, d_send, dt_send, fst_send = fl.ackq.popleft()
                lq = fl.lostq
                if lq and lq[0][0] < pn:
                    # Packets below pn will never be acked (the path does not reorder): they
                    # become loss candidates, declared by the RFC 9002 thresholds below.
                    sus = fl.suspects
                    while lq and lq[0][0] < pn:
                        sus.append(lq.popleft())
                fl.bif -= size
                fl.pif -= 1
                fl.largest_acked = pn
                fl.pto_count = 0
                delivered = fl.acked_bytes + size  # BBR's "delivered": bytes acked so far
                fl.acked_bytes = delivered
                fl.acked_packets += 1
                fl.i_acked_b += size
                fl.i_acked_p += 1
                # RFC 9002 section 5 RTT estimator (ack_delay = 0: the receiver acks at once)
                latest = now - st
                if fl.has_rtt:
                    if latest < fl.min_rtt:
                        fl.min_rtt = latest
                    srtt = fl.srtt
                    dev = srtt - latest
                    if dev < 0.0:
                        dev = -dev
                    rttvar = 0.75 * fl.rttvar + 0.25 * dev
                    srtt = 0.875 * srtt + 0.125 * latest
                    fl.srtt = srtt
                    fl.rttvar = rttvar
                else:
                    fl.has_rtt = True
                    fl.first_rtt_time = now
                    fl.min_rtt = latest
                    srtt = latest
                    rttvar = latest * 0.5
                    fl.srtt = srtt
                    fl.rttvar = rttvar
                fl.latest_rtt = latest
                v4 = 4.0 * rttvar
                fl.pto_base = srtt + (v4 if v4 > K_GRANULARITY_S else K_GRANULARITY_S)
                # BBR-style delivery-rate sample
                iv = st - fst_send
                ack_el = now - dt_send
                if ack_el > iv:
                    iv = ack_el
                if iv >= fl.min_rtt and iv > 0.0:
                    rate = (delivered - d_send) * 8.0 / iv
                    if rate > fl.i_rate_max:
                        fl.i_rate_max = rate
                fl.delivered_time = now
                fl.first_sent_time = st
                # one-way delay of the packet (delivery at the receiver - send time)
                dc = fl.d_cnt + 1
                if dc >= fl.d_stride:
                    fl.delays.append(now - fl.ack_delay - st)
                    dc = 0
                fl.d_cnt = dc
                cb_rtt = fl.cb_rtt
                if cb_rtt is not None:
                    cb_rtt(now=now, latest_rtt=latest, smoothed_rtt=srtt, min_rtt=fl.min_rtt)
                if fl.suspects:
                    self._detect_losses(fl, now)
                cb_acked = fl.cb_acked
                if cb_acked is not None:
                    cb_acked(now=now, acked_bytes=size, sent_time=st)
                if fl.size is not None and fl.acked_bytes >= fl.size:
                    self._finish(fl, now)
                else:
                    self._send(fl, now)
            elif ev == 0:
                self._tick(now)
                for fl in active:
                    self._send(fl, now)
            elif ev == 2:
                self._on_timer(sel, now)  # type: ignore[arg-type]
            elif ev == 3:
                self._start_flow(starts[pos], now)
            elif ev == 5:
                sel.pace_at = INF  # type: ignore[union-attr]
                self._send(sel, now)  # type: ignore[arg-type]
            # ev == 4: only the drain below (a packet reaches the bottleneck)
            if not self._single:
                self._drain(now)
        self.now = until

    def _advance_single(self, until: float) -> None:
        """The event loop for one flow, with all hot state in local variables.

        Same semantics as `_advance_general` (a test checks bit-identical
        results): acks, sends with their bottleneck arrival, and decision ticks
        run inline here; timers, loss detection, start and finish save the
        locals to the flow and call the shared methods.
        """
        fl = self._flows[0]
        now = self.now
        self._send(fl, now)
        inf = INF
        mss = self._mss
        times = self._times
        n_opp = len(times)
        period = self._period
        tail = times[-1] - period
        cap = self.buffer_bytes
        interval = self.interval_s
        sampler = self._loss_sampler
        q_dep = self._q_dep
        q_arr = self._q_arr
        q_cum = self._q_cum
        dep_append = q_dep.append
        arr_append = q_arr.append
        cum_append = q_cum.append
        ackq = fl.ackq
        ack_popleft = ackq.popleft
        ack_append = ackq.append
        lostq = fl.lostq
        lost_append = lostq.append
        suspects = fl.suspects
        ctrl = fl.ctrl
        cb_acked = fl.cb_acked
        cb_rtt = fl.cb_rtt
        cb_sent = fl.cb_sent
        delay = fl.delay
        back = fl.ack_delay
        size = fl.size
        observe = self._observe
        start_t = inf if fl.started else fl.start
        (
            bif,
            pif,
            next_pn,
            dlv_t,
            fst,
            srtt,
            rttvar,
            min_rtt,
            latest,
            has_rtt,
            pto_base,
            pto_count,
            largest,
            acked_b,
            acked_p,
            sent_b,
            sent_p,
            i_acked_b,
            i_acked_p,
            i_rate_max,
            last_send,
            timer,
            d_cnt,
            qh,
            q_total,
            last_c,
            last_i,
            flags,
            lpos,
            n_total,
            tick_index,
            next_tick,
            d_stride,
            delays_append,
        ) = (
            fl.bif,
            fl.pif,
            fl.next_pn,
            fl.delivered_time,
            fl.first_sent_time,
            fl.srtt,
            fl.rttvar,
            fl.min_rtt,
            fl.latest_rtt,
            fl.has_rtt,
            fl.pto_base,
            fl.pto_count,
            fl.largest_acked,
            fl.acked_bytes,
            fl.acked_packets,
            fl.sent_bytes,
            fl.sent_packets,
            fl.i_acked_b,
            fl.i_acked_p,
            fl.i_rate_max,
            fl.last_send,
            fl.timer,
            fl.d_cnt,
            self._q_head,
            self._q_total,
            self._last_c,
            self._last_i,
            self._loss_flags,
            self._loss_pos,
            self.packets_sent,
            self._tick_index,
            self._next_tick,
            fl.d_stride,
            fl.delays.append,
        )
        flowing = fl.started and not fl.finished
        while True:
            # ---- next event: ack, decision tick, timer or flow start
            t = next_tick
            ev = 0
            if ackq:
                ta = ackq[0][0]
                if ta <= t:
                    t = ta
                    ev = 1
            if timer < t:
                t = timer
                ev = 2
            if start_t < t:
                t = start_t
                ev = 3
            if t > until:
                break
            now = t
            if ev == 1:
                # ---- ack (mirrors _advance_general) ----------------------------------------
                _, pn, b, st, d_send, dt_send, fst_send = ack_popleft()
                if lostq and lostq[0][0] < pn:
                    while lostq and lostq[0][0] < pn:
                        suspects.append(lostq.popleft())
                bif -= b
                pif -= 1
                largest = pn
                pto_count = 0
                acked_b += b
                acked_p += 1
                i_acked_b += b
                i_acked_p += 1
                latest = now - st
                if has_rtt:
                    if latest < min_rtt:
                        min_rtt = latest
                    dev = srtt - latest
                    if dev < 0.0:
                        dev = -dev
                    rttvar = 0.75 * rttvar + 0.25 * dev
                    srtt = 0.875 * srtt + 0.125 * latest
                else:
                    has_rtt = True
                    fl.first_rtt_time = now
                    min_rtt = latest
                    srtt = latest
                    rttvar = latest * 0.5
                v4 = 4.0 * rttvar
                pto_base = srtt + (v4 if v4 > K_GRANULARITY_S else K_GRANULARITY_S)
                iv = st - fst_send
                ack_el = now - dt_send
                if ack_el > iv:
                    iv = ack_el
                if iv >= min_rtt and iv > 0.0:
                    rate = (acked_b - d_send) * 8.0 / iv
                    if rate > i_rate_max:
                        i_rate_max = rate
                dlv_t = now
                fst = st
                d_cnt += 1
                if d_cnt >= d_stride:
                    delays_append(now - back - st)
                    d_cnt = 0
                if cb_rtt is not None:
                    cb_rtt(now=now, latest_rtt=latest, smoothed_rtt=srtt, min_rtt=min_rtt)
                if suspects or (size is not None and acked_b >= size):
                    # rare: losses to declare or a finite flow completing -> shared methods
                    (
                        fl.bif,
                        fl.pif,
                        fl.next_pn,
                        fl.delivered_time,
                        fl.first_sent_time,
                        fl.srtt,
                        fl.rttvar,
                        fl.min_rtt,
                        fl.latest_rtt,
                        fl.has_rtt,
                        fl.pto_base,
                        fl.pto_count,
                        fl.largest_acked,
                        fl.acked_bytes,
                        fl.acked_packets,
                        fl.sent_bytes,
                        fl.sent_packets,
                        fl.i_acked_b,
                        fl.i_acked_p,
                        fl.i_rate_max,
                        fl.last_send,
                        fl.timer,
                        fl.d_cnt,
                        self._q_head,
                        self._q_total,
                        self._last_c,
                        self._last_i,
                        self._loss_flags,
                        self._loss_pos,
                        self.packets_sent,
                        self._tick_index,
                        self._next_tick,
                    ) = (
                        bif,
                        pif,
                        next_pn,
                        dlv_t,
                        fst,
                        srtt,
                        rttvar,
                        min_rtt,
                        latest,
                        has_rtt,
                        pto_base,
                        pto_count,
                        largest,
                        acked_b,
                        acked_p,
                        sent_b,
                        sent_p,
                        i_acked_b,
                        i_acked_p,
                        i_rate_max,
                        last_send,
                        timer,
                        d_cnt,
                        qh,
                        q_total,
                        last_c,
                        last_i,
                        flags,
                        lpos,
                        n_total,
                        tick_index,
                        next_tick,
                    )
                    if suspects:
                        self._detect_losses(fl, now)
                    if cb_acked is not None:
                        cb_acked(now=now, acked_bytes=b, sent_time=st)
                    if size is not None and fl.acked_bytes >= size:
                        self._finish(fl, now)
                    else:
                        self._send(fl, now)
                    (
                        bif,
                        pif,
                        next_pn,
                        dlv_t,
                        fst,
                        srtt,
                        rttvar,
                        min_rtt,
                        latest,
                        has_rtt,
                        pto_base,
                        pto_count,
                        largest,
                        acked_b,
                        acked_p,
                        sent_b,
                        sent_p,
                        i_acked_b,
                        i_acked_p,
                        i_rate_max,
                        last_send,
                        timer,
                        d_cnt,
                        qh,
                        q_total,
                        last_c,
                        last_i,
                        flags,
                        lpos,
                        n_total,
                        tick_index,
                        next_tick,
                        d_stride,
                        delays_append,
                    ) = (
                        fl.bif,
                        fl.pif,
                        fl.next_pn,
                        fl.delivered_time,
                        fl.first_sent_time,
                        fl.srtt,
                        fl.rttvar,
                        fl.min_rtt,
                        fl.latest_rtt,
                        fl.has_rtt,
                        fl.pto_base,
                        fl.pto_count,
                        fl.largest_acked,
                        fl.acked_bytes,
                        fl.acked_packets,
                        fl.sent_bytes,
                        fl.sent_packets,
                        fl.i_acked_b,
                        fl.i_acked_p,
                        fl.i_rate_max,
                        fl.last_send,
                        fl.timer,
                        fl.d_cnt,
                        self._q_head,
                        self._q_total,
                        self._last_c,
                        self._last_i,
                        self._loss_flags,
                        self._loss_pos,
                        self.packets_sent,
                        self._tick_index,
                        self._next_tick,
                        fl.d_stride,
                        fl.delays.append,
                    )
                    flowing = fl.started and not fl.finished
                    continue
                if cb_acked is not None:
                    cb_acked(now=now, acked_bytes=b, sent_time=st)
            elif ev == 0:
                # ---- decision tick (mirrors _tick) ------------------------------------------
                lo = bisect_right(q_dep, now)
                hi = bisect_right(q_arr, now)
                if hi > lo:
                    qbytes = (q_cum[hi] if hi < len(q_cum) else q_total) - q_cum[lo]
                else:
                    qbytes = 0
                if flowing:
                    observe(
                        fl,
                        now,
                        qbytes,
                        pif,
                        i_acked_b,
                        i_acked_p,
                        i_rate_max,
                        has_rtt,
                        latest,
                        srtt,
                        rttvar,
                        min_rtt,
                    )
                    i_acked_b = i_acked_p = 0
                    i_rate_max = 0.0
                    if fl.d_stride != d_stride:
                        d_stride = fl.d_stride
                        delays_append = fl.delays.append
                tick_index += 1
                next_tick = tick_index * interval
                if not tick_index & COMPACT_EVERY_TICKS_MASK:
                    kill = bisect_right(q_dep, now, 0, qh)
                    if kill > QUEUE_COMPACT_ENTRIES:
                        del q_dep[:kill]
                        del q_arr[:kill]
                        del q_cum[:kill]
                        qh -= kill
                if not flowing:
                    continue
            else:
                # ---- rare: timer, flow start -> shared methods
                (
                    fl.bif,
                    fl.pif,
                    fl.next_pn,
                    fl.delivered_time,
                    fl.first_sent_time,
                    fl.srtt,
                    fl.rttvar,
                    fl.min_rtt,
                    fl.latest_rtt,
                    fl.has_rtt,
                    fl.pto_base,
                    fl.pto_count,
                    fl.largest_acked,
                    fl.acked_bytes,
                    fl.acked_packets,
                    fl.sent_bytes,
                    fl.sent_packets,
                    fl.i_acked_b,
                    fl.i_acked_p,
                    fl.i_rate_max,
                    fl.last_send,
                    fl.timer,
                    fl.d_cnt,
                    self._q_head,
                    self._q_total,
                    self._last_c,
                    self._last_i,
                    self._loss_flags,
                    self._loss_pos,
                    self.packets_sent,
                    self._tick_index,
                    self._next_tick,
                ) = (
                    bif,
                    pif,
                    next_pn,
                    dlv_t,
                    fst,
                    srtt,
                    rttvar,
                    min_rtt,
                    latest,
                    has_rtt,
                    pto_base,
                    pto_count,
                    largest,
                    acked_b,
                    acked_p,
                    sent_b,
                    sent_p,
                    i_acked_b,
                    i_acked_p,
                    i_rate_max,
                    last_send,
                    timer,
                    d_cnt,
                    qh,
                    q_total,
                    last_c,
                    last_i,
                    flags,
                    lpos,
                    n_total,
                    tick_index,
                    next_tick,
                )
                if ev == 2:
                    self._on_timer(fl, now)
                else:
                    start_t = inf
                    self._start_flow(fl, now)
                (
                    bif,
                    pif,
                    next_pn,
                    dlv_t,
                    fst,
                    srtt,
                    rttvar,
                    min_rtt,
                    latest,
                    has_rtt,
                    pto_base,
                    pto_count,
                    largest,
                    acked_b,
                    acked_p,
                    sent_b,
                    sent_p,
                    i_acked_b,
                    i_acked_p,
                    i_rate_max,
                    last_send,
                    timer,
                    d_cnt,
                    qh,
                    q_total,
                    last_c,
                    last_i,
                    flags,
                    lpos,
                    n_total,
                    tick_index,
                    next_tick,
                    d_stride,
                    delays_append,
                ) = (
                    fl.bif,
                    fl.pif,
                    fl.next_pn,
                    fl.delivered_time,
                    fl.first_sent_time,
                    fl.srtt,
                    fl.rttvar,
                    fl.min_rtt,
                    fl.latest_rtt,
                    fl.has_rtt,
                    fl.pto_base,
                    fl.pto_count,
                    fl.largest_acked,
                    fl.acked_bytes,
                    fl.acked_packets,
                    fl.sent_bytes,
                    fl.sent_packets,
                    fl.i_acked_b,
                    fl.i_acked_p,
                    fl.i_rate_max,
                    fl.last_send,
                    fl.timer,
                    fl.d_cnt,
                    self._q_head,
                    self._q_total,
                    self._last_c,
                    self._last_i,
                    self._loss_flags,
                    self._loss_pos,
                    self.packets_sent,
                    self._tick_index,
                    self._next_tick,
                    fl.d_stride,
                    fl.delays.append,
                )
                flowing = fl.started and not fl.finished
                continue
            # ---- send while the window allows (mirrors _send + _bottleneck) -----------------
            cwnd = ctrl.cwnd
            arrive = now + delay
            pn0 = next_pn
            bif0 = bif
            qlen = len(q_dep)
            while True:
                if size is None:
                    b = mss
                else:
                    b = size - acked_b - bif
                    if b <= 0:
                        break
                    if b > mss:
                        b = mss
                if bif + b > cwnd:
                    break
                bif += b
                if cb_sent is not None:
                    cb_sent(now=now, sent_bytes=b)
                # bottleneck arrival at `arrive`
                while qh < qlen and q_dep[qh] <= arrive:
                    qh += 1
                if qh < qlen:
                    if q_total - q_cum[qh] + b > cap:
                        fl.dropped_queue += 1
                        lost_append((next_pn, now, b))
                        next_pn += 1
                        continue
                    # busy queue: the opportunity after the last one used (later than arrive)
                    last_i += 1
                    if last_i == n_opp:
                        last_i = 0
                        last_c += 1
                    dep = last_c * period + times[last_i]
                else:
                    if b > cap:
                        fl.dropped_queue += 1
                        lost_append((next_pn, now, b))
                        next_pn += 1
                        continue
                    # idle queue: first opportunity at or after the arrival (skipping idle ones)
                    c = math.floor(arrive / period)
                    off = arrive - c * period
                    if c > 0 and off <= tail:  # on a boundary the last cycle uses too
                        c -= 1
                        off += period
                    i = bisect_left(times, off)
                    if i == n_opp:
                        i = 0
                        c += 1
                    if c < last_c or (c == last_c and i <= last_i):
                        i = last_i + 1
                        c = last_c
                        if i == n_opp:
                            i = 0
                            c += 1
                    last_c = c
                    last_i = i
                    dep = c * period + times[i]
                    if dep < arrive:  # float rounding only
                        dep = arrive
                dep_append(dep)
                arr_append(arrive)
                cum_append(q_total)
                q_total += b
                qlen += 1
                if sampler is not None:
                    if lpos >= len(flags):
                        flags = sampler.draw(LOSS_BLOCK)
                        lpos = 0
                    lost = flags[lpos]
                    lpos += 1
                    if lost:
                        fl.dropped_random += 1
                        lost_append((next_pn, now, b))
                        next_pn += 1
                        continue
                ack_append((dep + back, next_pn, b, now, acked_b, dlv_t, fst))
                next_pn += 1
            if next_pn != pn0:
                n = next_pn - pn0
                pif += n
                sent_p += n
                sent_b += bif - bif0
                n_total += n
                last_send = now
            # re-arm the timer (mirrors _arm_timer)
            if suspects:
                lt = K_TIME_THRESHOLD * (srtt if srtt > latest else latest)
                timer = suspects[0][1] + (lt if lt > K_GRANULARITY_S else K_GRANULARITY_S)
            elif bif > 0:
                pto = pto_base * (1 << pto_count)
                timer = last_send + (pto if pto < K_MAX_PTO_S else K_MAX_PTO_S)
            else:
                timer = inf
        (
            fl.bif,
            fl.pif,
            fl.next_pn,
            fl.delivered_time,
            fl.first_sent_time,
            fl.srtt,
            fl.rttvar,
            fl.min_rtt,
            fl.latest_rtt,
            fl.has_rtt,
            fl.pto_base,
            fl.pto_count,
            fl.largest_acked,
            fl.acked_bytes,
            fl.acked_packets,
            fl.sent_bytes,
            fl.sent_packets,
            fl.i_acked_b,
            fl.i_acked_p,
            fl.i_rate_max,
            fl.last_send,
            fl.timer,
            fl.d_cnt,
            self._q_head,
            self._q_total,
            self._last_c,
            self._last_i,
            self._loss_flags,
            self._loss_pos,
            self.packets_sent,
            self._tick_index,
            self._next_tick,
        ) = (
            bif,
            pif,
            next_pn,
            dlv_t,
            fst,
            srtt,
            rttvar,
            min_rtt,
            latest,
            has_rtt,
            pto_base,
            pto_count,
            largest,
            acked_b,
            acked_p,
            sent_b,
            sent_p,
            i_acked_b,
            i_acked_p,
            i_rate_max,
            last_send,
            timer,
            d_cnt,
            qh,
            q_total,
            last_c,
            last_i,
            flags,
            lpos,
            n_total,
            tick_index,
            next_tick,
        )
        self.now = until

    # ------------------------------------------------------------------ sender
    def _send(self, fl: _Flow, now: float, probe: bool = False) -> None:
        """Send while the window allows; bottleneck arrivals of a single flow are processed now.

        ``probe``: PTO probes, up to `MAX_PROBES` packets regardless of cwnd; a finite flow
        with no new data left re-sends the oldest outstanding bytes instead (counted once:
        goodput is capped at the flow size).
        """
        if fl.finished or not fl.started:
            return
        if fl.paced and not probe:
            self._send_paced(fl, now)
            return
        bif = fl.bif
        cwnd = bif + MAX_PROBES * self._mss if probe else fl.ctrl.cwnd
        mss = self._mss
        size = fl.size
        if size is None and bif + mss > cwnd:
            self._arm_timer(fl)
            return
        pend = fl.pend
        arrive = now + fl.delay
        pend_append = pend.append
        cb = fl.cb_sent
        pn = fl.next_pn
        n = 0
        nbytes = 0
        dlv = fl.acked_bytes
        dlv_t = fl.delivered_time
        fst = fl.first_sent_time
        while True:
            if size is None:
                b = mss
            else:
                b = size - fl.acked_bytes - bif
                if b <= 0:
                    if not probe:
                        break
                    b = mss if size > mss else size
                elif b > mss:
                    b = mss
            if bif + b > cwnd:
                break
            pend_append((arrive, pn, b, now, dlv, dlv_t, fst))
            pn += 1
            n += 1
            nbytes += b
            bif += b
            if cb is not None:
                cb(now=now, sent_bytes=b)
        if n:
            fl.next_pn = pn
            fl.bif = bif
            fl.pif += n
            fl.sent_packets += n
            fl.sent_bytes += nbytes
            fl.last_send = now
            self.packets_sent += n
            if self._single:
                self._bottleneck_single(fl)
            elif arrive < self._pend_min:
                self._pend_min = arrive
        self._arm_timer(fl)

    def _send_paced(self, fl: _Flow, now: float) -> None:
        """`_send` for a paced flow: one packet at a time through aioquic's pacer.

        The rate is refreshed from the current window and smoothed RTT before
        sending (aioquic refreshes it on every ack, which is when this runs).
        Probes are not paced (they bypass the window too).
        """
        mss = self._mss
        cwnd = fl.ctrl.cwnd
        if fl.has_rtt:
            # QuicPacketPacer.update_rate
            rate = cwnd / (fl.srtt if fl.srtt > K_MICRO_SECOND else K_MICRO_SECOND)
            if rate > 0.0:
                pkt = mss / rate
                fl.p_pkt = K_MICRO_SECOND if pkt < K_MICRO_SECOND else (pkt if pkt < 1.0 else 1.0)
                burst = cwnd // 4
                if burst > 16 * mss:
                    burst = 16 * mss
                if burst < 2 * mss:
                    burst = 2 * mss
                fl.p_bucket_max = burst / rate
                if fl.p_bucket > fl.p_bucket_max:
                    fl.p_bucket = fl.p_bucket_max
        size = fl.size
        pend = fl.pend
        arrive = now + fl.delay
        cb = fl.cb_sent
        bif = fl.bif
        pn = fl.next_pn
        n = 0
        nbytes = 0
        dlv = fl.acked_bytes
        dlv_t = fl.delivered_time
        fst = fl.first_sent_time
        pkt = fl.p_pkt
        while True:
            if size is None:
                b = mss
            else:
                b = size - fl.acked_bytes - bif
                if b <= 0:
                    break
                if b > mss:
                    b = mss
            if bif + b > cwnd:
                break
            if pkt > 0.0:
                # QuicPacketPacer.next_send_time / update_bucket
                if now > fl.p_eval:
                    bt = fl.p_bucket + (now - fl.p_eval)
                    fl.p_bucket = bt if bt < fl.p_bucket_max else fl.p_bucket_max
                    fl.p_eval = now
                if fl.p_bucket <= 0.0:
                    t = now + pkt
                    if t < fl.pace_at:
                        fl.pace_at = t
                    break
                # update_after_send
                fl.p_bucket = 0.0 if fl.p_bucket < pkt else fl.p_bucket - pkt
            pend.append((arrive, pn, b, now, dlv, dlv_t, fst))
            pn += 1
            n += 1
            nbytes += b
            bif += b
            if cb is not None:
                cb(now=now, sent_bytes=b)
        if n:
            fl.next_pn = pn
            fl.bif = bif
            fl.pif += n
            fl.sent_packets += n
            fl.sent_bytes += nbytes
            fl.last_send = now
            self.packets_sent += n
            if self._single:
                self._bottleneck_single(fl)
            elif arrive < self._pend_min:
                self._pend_min = arrive
        self._arm_timer(fl)

    def _arm_timer(self, fl: _Flow) -> None:
        if fl.suspects:
            srtt = fl.srtt
            lat = fl.latest_rtt
            d = K_TIME_THRESHOLD * (srtt if srtt > lat else lat)
            if d < K_GRANULARITY_S:
                d = K_GRANULARITY_S
            fl.timer = fl.suspects[0][1] + d
        elif fl.bif > 0:
            pto = fl.pto_base * (1 << fl.pto_count)
            fl.timer = fl.last_send + (pto if pto < K_MAX_PTO_S else K_MAX_PTO_S)
        else:
            fl.timer = INF

    def _on_timer(self, fl: _Flow, now: float) -> None:
        if fl.suspects:
            self._detect_losses(fl, now)
            self._send(fl, now)
            return
        if fl.bif <= 0:
            fl.timer = INF
            return
        # Probe timeout: nothing acked for a PTO; probe with new data, back off (bounded).
        if fl.pto_count < K_MAX_PTO_BACKOFF:
            fl.pto_count += 1
        fl.last_send = now
        self._send(fl, now, probe=True)
        self._arm_timer(fl)

    def _detect_losses(self, fl: _Flow, now: float) -> None:
        """RFC 9002 6.1: declare loss candidates lost by packet or time threshold."""
        srtt = fl.srtt
        lat = fl.latest_rtt
        delay = K_TIME_THRESHOLD * (srtt if srtt > lat else lat)
        if delay < K_GRANULARITY_S:
            delay = K_GRANULARITY_S
        largest = fl.largest_acked
        sus = fl.suspects
        n = 0
        nbytes = 0
        last_sent = 0.0
        persistent = False
        v4 = 4.0 * fl.rttvar
        pc_duration = (srtt + (v4 if v4 > K_GRANULARITY_S else K_GRANULARITY_S)) * (
            K_PERSISTENT_CONGESTION_THRESHOLD
        )
        while sus:
            rec = sus[0]
            # `rec[1] + delay <= now`, not `rec[1] <= now - delay`: the loss timer is armed at
            # rec[1] + delay and must find the packet lost despite float rounding.
            if largest - rec[0] >= K_PACKET_THRESHOLD or rec[1] + delay <= now:
                sus.popleft()
                n += 1
                nbytes += rec[2]
                last_sent = rec[1]
                # persistent congestion: a run of consecutive packet numbers, all lost
                if rec[0] == fl.pc_prev_pn + 1:
                    if (
                        rec[1] - fl.pc_run_start > pc_duration
                        and fl.pc_run_start > fl.first_rtt_time
                    ):
                        persistent = True
                else:
                    fl.pc_run_start = rec[1]
                fl.pc_prev_pn = rec[0]
            else:
                break
        if n:
            fl.bif -= nbytes
            fl.pif -= n
            fl.lost_packets += n
            fl.lost_bytes += nbytes
            fl.i_lost_p += n
            fl.i_lost_b += nbytes
            fl.i_last_loss = now
            cb = fl.cb_lost
            if cb is not None:
                cb(now=now, lost_bytes=nbytes, lost_packets=n, largest_sent_time=last_sent)
            if persistent:
                pc = getattr(fl.ctrl, "on_persistent_congestion", None)
                if pc is not None:
                    pc(now=now)
                fl.pc_prev_pn = -2  # the next run starts afresh
        self._arm_timer(fl)

    def _start_flow(self, fl: _Flow, now: float) -> None:
        self._start_pos += 1
        fl.started = True
        fl.stats = IntervalStats(now=now)
        fl.i_last_loss = now
        self._active.append(fl)
        self._send(fl, now)

    def _finish(self, fl: _Flow, now: float) -> None:
        fl.finished = True
        fl.completion_time = now
        fl.timer = INF
        if fl.stats is not None:
            self._observe_flow(fl, now)  # the partial last interval
        self._active.remove(fl)
        # Acks still on their way are of no use to a finished flow. Packets still travelling
        # to the bottleneck (`pend`) keep going: they occupy the queue like any other.
        fl.ackq.clear()
        fl.lostq.clear()
        fl.suspects.clear()

    # ------------------------------------------------------------------ bottleneck
    def _bottleneck_single(self, fl: _Flow) -> None:
        """Process every pending arrival of the only flow (all are safe to process now)."""
        self._bottleneck(fl, fl.pend, len(fl.pend))

    def _drain(self, now: float) -> None:
        """Multi-flow: process, in arrival order, every arrival no unsent packet can precede."""
        if self._single:
            return
        horizon = now + self._d_min
        flows = self._flows  # finished flows' packets already sent still cross the bottleneck
        while True:
            best = None
            ba = horizon
            for fl in flows:
                p = fl.pend
                if p and p[0][0] <= ba:
                    ba = p[0][0]
                    best = fl
            if best is None:
                break
            self._bottleneck(best, best.pend, 1)
        m = INF
        for fl in flows:
            p = fl.pend
            if p and p[0][0] < m:
                m = p[0][0]
        self._pend_min = m

    def _bottleneck(
        self, fl: _Flow, pend: deque[tuple[float, int, int, float, int, float, float]], count: int
    ) -> None:
        """Bottleneck arrival of the next ``count`` packets in ``pend`` (FIFO, drop-tail)."""
        q_dep = self._q_dep
        q_arr = self._q_arr
        q_cum = self._q_cum
        qh = self._q_head
        qlen = len(q_dep)
        q_total = self._q_total
        cap = self.buffer_bytes
        times = self._times
        n_opp = len(times)
        period = self._period
        tail = times[-1] - period
        last_c = self._last_c
        last_i = self._last_i
        sampler = self._loss_sampler
        flags = self._loss_flags
        lpos = self._loss_pos
        ack_append = fl.ackq.append
        lost_append = fl.lostq.append
        back = fl.ack_delay
        popleft = pend.popleft
        for _ in range(count):
            a, pn, b, st, d_send, dt_send, fst_send = popleft()
            while qh < qlen and q_dep[qh] <= a:
                qh += 1
            if qh < qlen:
                queued = q_total - q_cum[qh]
                if queued + b > cap:
                    fl.dropped_queue += 1
                    lost_append((pn, st, b))
                    continue
                # the queue is busy: the next opportunity after the last one used
                i = last_i + 1
                c = last_c
                if i == n_opp:
                    i = 0
                    c += 1
            else:
                if b > cap:
                    fl.dropped_queue += 1
                    lost_append((pn, st, b))
                    continue
                # idle queue: first opportunity at or after the arrival (skipping idle ones)
                c = math.floor(a / period)
                off = a - c * period
                if c > 0 and off <= tail:  # on a boundary the last cycle uses too
                    c -= 1
                    off += period
                i = bisect_left(times, off)
                if i == n_opp:
                    i = 0
                    c += 1
                if c < last_c or (c == last_c and i <= last_i):
                    i = last_i + 1
                    c = last_c
                    if i == n_opp:
                        i = 0
                        c += 1
            dep = c * period + times[i]
            if dep < a:  # float rounding only
                dep = a
            last_c = c
            last_i = i
            q_dep.append(dep)
            q_arr.append(a)
            q_cum.append(q_total)
            q_total += b
            qlen += 1
            if sampler is not None:
                if lpos >= len(flags):
                    flags = sampler.draw(LOSS_BLOCK)
                    lpos = 0
                lost = flags[lpos]
                lpos += 1
                if lost:
                    fl.dropped_random += 1
                    lost_append((pn, st, b))
                    continue
            ack_append((dep + back, pn, b, st, d_send, dt_send, fst_send))
        self._q_head = qh
        self._q_total = q_total
        self._last_c = last_c
        self._last_i = last_i
        self._loss_flags = flags
        self._loss_pos = lpos

    def _queue_bytes_at(self, t: float) -> int:
        """Bytes in the queue at ``t``: arrived at or before ``t``, departing after ``t``."""
        q_dep = self._q_dep
        lo = bisect_right(q_dep, t)
        hi = bisect_right(self._q_arr, t)
        if hi <= lo:
            return 0
        q_cum = self._q_cum
        end = q_cum[hi] if hi < len(q_cum) else self._q_total
        return end - q_cum[lo]

    def _compact_queue(self, now: float) -> None:
        """Forget queue entries that departed before ``now`` (bounded memory)."""
        kill = bisect_right(self._q_dep, now, 0, self._q_head)
        if kill > QUEUE_COMPACT_ENTRIES:
            del self._q_dep[:kill]
            del self._q_arr[:kill]
            del self._q_cum[:kill]
            self._q_head -= kill

    # ------------------------------------------------------------------ intervals
    def _tick(self, now: float) -> None:
        qbytes = self._queue_bytes_at(now)
        for fl in self._active:
            self._observe_flow(fl, now, qbytes)
        self._tick_index += 1
        self._next_tick = self._tick_index * self.interval_s
        if not self._tick_index & COMPACT_EVERY_TICKS_MASK:
            self._compact_queue(now)

    def _observe_flow(self, fl: _Flow, now: float, qbytes: int | None = None) -> None:
        if qbytes is None:
            qbytes = self._queue_bytes_at(now)
        self._observe(
            fl,
            now,
            qbytes,
            fl.pif,
            fl.i_acked_b,
            fl.i_acked_p,
            fl.i_rate_max,
            fl.has_rtt,
            fl.latest_rtt,
            fl.srtt,
            fl.rttvar,
            fl.min_rtt,
        )
        fl.i_acked_b = fl.i_acked_p = 0
        fl.i_rate_max = 0.0

    def _observe(
        self,
        fl: _Flow,
        now: float,
        qbytes: int,
        pif: int,
        i_acked_b: int,
        i_acked_p: int,
        i_rate_max: float,
        has_rtt: bool,
        latest: float,
        srtt: float,
        rttvar: float,
        min_rtt: float,
    ) -> None:
        """Close one flow's interval: stats, controller decision, hook, series."""
        st = fl.stats
        assert st is not None
        ctrl = fl.ctrl
        v = st.snapshot_totals(
            now,
            ctrl.cwnd,
            pif,
            None,  # the sender's estimate (IntervalStats), not the true queue fill
            i_acked_b,
            i_acked_p,
            fl.i_lost_p,
            fl.i_last_loss,
            i_rate_max,
            latest,
            srtt if has_rtt else 0.0,
            rttvar,
            min_rtt,
        )
        fl.i_lost_b = fl.i_lost_p = 0
        thr = v[10]
        hook = self.on_interval
        collect = self._collect
        if fl.wants_interval or hook is not None or collect is not None:
            features = NetworkFeatures(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9])
            if fl.wants_interval:
                ctrl.on_interval(now=now, features=features, throughput_bps=thr)
            cwnd = int(ctrl.cwnd)
            if hook is not None:
                hook(now, fl.index, features, thr, cwnd)
            if collect is not None:
                collect.append(IntervalSample(now, fl.index, features, thr, cwnd))
        if self.record_series:
            fl.series_extend((now, ctrl.cwnd, qbytes, thr, srtt, v[3], pif))
        if len(fl.delays) > self.max_delay_samples:
            fl.delays = fl.delays[::2]
            fl.d_stride *= 2

    # ------------------------------------------------------------------ results helpers
    def delivered_to_receiver_bytes(self, fl_index: int) -> int:
        """Bytes of flow ``fl_index`` that reached its receiver by now (acked or ack in flight)."""
        fl = self._flows[fl_index]
        extra = 0
        limit = self.now + fl.ack_delay
        for e in fl.ackq:
            if e[0] <= limit:
                extra += e[2]
            else:
                break
        return fl.acked_bytes + extra

    def opportunities_between(self, t0: float, t1: float) -> int:
        """Delivery opportunities in ``(t0, t1]``."""
        if t1 <= t0:
            return 0
        return count_at_or_before(self._times, self._period, t1) - count_at_or_before(
            self._times, self._period, t0
        )


def build_result(sim: Simulation) -> RunResult:
    """Collect a `RunResult` from a `Simulation` at its current time.

    Here, beside the simulator whose internals it reads, so `oxidize_ml.sim.results`
    holds only the result types and imports nothing of the simulator.
    """
    end = sim.now
    flow_results: list[FlowResult] = []
    all_delays: list[np.ndarray] = []
    total_delivered = 0
    total_acked_b = 0
    total_acked_p = 0
    total_lost_p = 0
    total_stranded = 0
    for fl in sim._flows:
        started = fl.started
        f_end = fl.completion_time if fl.finished else end
        f_start = fl.start
        active = max(0.0, f_end - f_start) if started else 0.0
        acked = fl.acked_bytes if fl.size is None else min(fl.acked_bytes, fl.size)
        thr = acked * 8.0 / active if active > 0.0 else 0.0
        delivered = sim.delivered_to_receiver_bytes(fl.index) if started else 0
        if fl.size is not None:
            delivered = min(delivered, fl.size)
        opps = sim.opportunities_between(f_start, f_end) if started else 0
        util = delivered / (opps * MTU_BYTES) if opps > 0 else 0.0
        delays = np.frombuffer(fl.delays, dtype=np.float64).copy()
        # Drops the sender never learnt of (no later ack came back) are losses too.
        undetected = 0 if fl.finished else len(fl.lostq) + len(fl.suspects)
        stranded = 0 if fl.finished or not started else fl.pif
        lost = fl.lost_packets + undetected
        denom = fl.acked_packets + lost
        series = None
        if sim.record_series:
            rows = np.frombuffer(fl.series, dtype=np.float64).reshape(-1, len(SERIES_COLUMNS))
            series = FlowSeries(**{c: rows[:, k].copy() for k, c in enumerate(SERIES_COLUMNS)})
        flow_results.append(
            FlowResult(
                index=fl.index,
                controller=str(getattr(fl.ctrl, "name", type(fl.ctrl).__name__)),
                start_s=f_start,
                end_s=f_end if started else f_start,
                completion_time_s=fl.completion_time if fl.finished else None,
                packets_sent=fl.sent_packets,
                bytes_sent=fl.sent_bytes,
                packets_acked=fl.acked_packets,
                bytes_acked=fl.acked_bytes,
                packets_lost=fl.lost_packets,
                packets_lost_undetected=undetected,
                packets_stranded=stranded,
                dropped_queue=fl.dropped_queue,
                dropped_random=fl.dropped_random,
                throughput_bps=thr,
                utilisation=util,
                delay_p50_s=percentile(delays, 50.0),
                delay_p95_s=percentile(delays, 95.0),
                delay_max_s=float(delays.max()) if delays.size else math.nan,
                loss_rate=lost / denom if denom else 0.0,
                delays_s=delays,
                series=series,
            )
        )
        all_delays.append(delays)
        total_delivered += delivered
        total_acked_b += acked
        total_acked_p += fl.acked_packets
        total_lost_p += lost
        total_stranded += stranded
    first_start = min((f.start for f in sim._flows), default=0.0)
    opps = sim.opportunities_between(first_start, end)
    joined = np.concatenate(all_delays) if all_delays else np.empty(0)
    denom = total_acked_p + total_lost_p
    running = [f for f in flow_results if f.active_s > 0.0]
    return RunResult(
        scenario=sim.scenario.name,
        controllers=tuple(f.controller for f in flow_results),
        seed=sim.seed,
        duration_s=end,
        interval_s=sim.interval_s,
        buffer_bytes=sim.buffer_bytes,
        link_mean_rate_bps=sim.schedule.mean_rate_bps,
        link_opportunities=opps,
        delivered_bytes=total_delivered,
        utilisation=total_delivered / (opps * MTU_BYTES) if opps > 0 else 0.0,
        throughput_bps=total_acked_b * 8.0 / (end - first_start) if end > first_start else 0.0,
        jain_index=jain_index([f.throughput_bps for f in running]) if running else 1.0,
        delay_p50_s=percentile(joined, 50.0),
        delay_p95_s=percentile(joined, 95.0),
        loss_rate=total_lost_p / denom if denom else 0.0,
        packets_sent=sim.packets_sent,
        packets_stranded=total_stranded,
        flows=tuple(flow_results),
    )
