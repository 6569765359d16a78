"""What a compression decision is worth for one packet, measured.

Utility
-------
Compressing a packet pays when the link time it saves exceeds the CPU time
it costs. For a packet of ``size`` bytes encoded into a frame of
``out_bytes`` bytes, on a bottleneck of ``link_rate_bps``::

    utility_s = (size - out_bytes) * 8 / link_rate_bps
                - encode_cpu_weight * encode_s
                - decode_cpu_weight * decode_s

in seconds (positive = the packet is delivered sooner). ``encode_s`` and
``decode_s`` are wall times of `PacketCodec.encode` and `PacketCodec.decode`
measured on the packet itself. The reference point is sending the bare packet
with no framing and no work, so ``Skip`` scores slightly below zero (the
1-byte frame header costs 8 bits of link time plus a copy), and a codec that
tries and fails to shrink the packet scores its wasted CPU time.

The CPU weights say how much a CPU second matters next to a link second:
1.0 when both ends process packets serially with sending (a CPU-bound
tunnel endpoint), smaller when CPU is idle and the link is the bottleneck,
0 for the receiver's side when it is not the bottleneck.

Best in hindsight
-----------------
`measure_outcomes` runs every decision through the codec on the packet and
times it; `CompressionCostModel.best` returns the decision of highest
utility. Decisions within ``tie_tolerance_s`` of the best are ties, broken by
the fixed preference order ``Skip, RohcOnly, Light, Aggressive`` (least work
first), so labels do not flip with timer noise.

``RohcOnly`` is header compression (`oxidize_ml.compression.rohc`), which is
stateful: what it costs and saves on a packet depends on the packets of the
same flow before it. `measure_outcomes` runs it through the given codec's
contexts like every other decision, so measure the packets of a flow in
their order with one codec (the first packet of a flow is an IR, which is
4-10 bytes longer than the packet; later ones save most of the header).
Packets that are not IPv4/IPv6 + UDP are sent raw under ``RohcOnly``: their
outcome is ``Skip``'s plus the failed parse.

Timing notes: each encode/decode is timed individually with
``time.perf_counter_ns`` and the median of ``repeats`` runs is kept, after
one untimed warm-up call (which also checks the round trip). The timer pair itself adds roughly 50-100 ns to
every measurement, the same for every decision, so it shifts utilities but
not their order. Measurements depend on the machine and its load; they are
meant for offline evaluation and labelling, not for the packet path.

Examples
--------
>>> from oxidize_ml.compression.codec import PacketCodec
>>> model = CompressionCostModel(link_rate_bps=10e6)
>>> pkt = b'{"user": "alice", "ok": true, "score": 12} ' * 30
>>> outcomes = measure_outcomes(pkt, PacketCodec(), repeats=3)
>>> model.best(outcomes, len(pkt)) in (MlCompressionDecision.Light, MlCompressionDecision.Aggressive)
True
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.compression.codec import PacketCodec
from oxidize_ml.compression.features import as_bytes_like
from oxidize_ml.types import MlCompressionDecision

DECISION_PREFERENCE: tuple[MlCompressionDecision, ...] = (
    MlCompressionDecision.Skip,
    MlCompressionDecision.RohcOnly,
    MlCompressionDecision.Light,
    MlCompressionDecision.Aggressive,
)
"""tie-break order for `CompressionCostModel.best` (least work first)"""


class Outcome(NamedTuple):
    """Measured result of one decision on one packet."""

    out_bytes: int
    """frame length in bytes (header included)"""
    encode_s: float
    """median wall time of ``PacketCodec.encode``, seconds"""
    decode_s: float
    """median wall time of ``PacketCodec.decode``, seconds"""


@dataclass(frozen=True, slots=True)
class CompressionCostModel:
    """Turns measured outcomes into utilities (seconds saved per packet)."""

    link_rate_bps: float
    """bottleneck rate the frame is sent at, bits per second (> 0)"""
    encode_cpu_weight: float = 1.0
    """weight of the sender's compression time against link time"""
    decode_cpu_weight: float = 1.0
    """weight of the receiver's decompression time against link time"""
    tie_tolerance_s: float = 100e-9
    """utilities closer than this to the best count as ties (timer noise)"""

    def __post_init__(self) -> None:
        check_number("link_rate_bps", self.link_rate_bps)
        if self.link_rate_bps <= 0:
            raise ValueError(f"link_rate_bps must be > 0, got {self.link_rate_bps!r}")
        check_number("encode_cpu_weight", self.encode_cpu_weight)
        check_number("decode_cpu_weight", self.decode_cpu_weight)
        check_number("tie_tolerance_s", self.tie_tolerance_s)

    def utility(self, outcome: Outcome, size: int) -> float:
        """Seconds gained by ``outcome`` over sending the bare ``size``-byte packet."""
        saved_s = (size - outcome.out_bytes) * 8.0 / self.link_rate_bps
        return saved_s - (
            self.encode_cpu_weight * outcome.encode_s + self.decode_cpu_weight * outcome.decode_s
        )

    def utilities(
        self, outcomes: Mapping[MlCompressionDecision, Outcome], size: int
    ) -> dict[MlCompressionDecision, float]:
        """`utility` of every measured decision."""
        return {d: self.utility(o, size) for d, o in outcomes.items()}

    def best(
        self, outcomes: Mapping[MlCompressionDecision, Outcome], size: int
    ) -> MlCompressionDecision:
        """The decision of highest utility (ties within tolerance: least work first)."""
        if not outcomes:
            raise ValueError("outcomes is empty: measure at least one decision")
        scores = self.utilities(outcomes, size)
        top = max(scores.values())
        for decision in DECISION_PREFERENCE:
            if decision in scores and scores[decision] >= top - self.tie_tolerance_s:
                return decision
        raise ValueError(  # only reachable with keys that are not decisions
            f"outcomes keys must be MlCompressionDecision, got {sorted(map(repr, scores))}"
        )


def _median_s(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call()`` over ``repeats`` runs, seconds."""
    clock = time.perf_counter_ns
    times = []
    for _ in range(repeats):
        t0 = clock()
        call()
        times.append(clock() - t0)
    return statistics.median(times) * 1e-9


def measure_outcomes(
    data: bytes | bytearray | memoryview,
    codec: PacketCodec,
    *,
    repeats: int = 5,
    decisions: tuple[MlCompressionDecision, ...] = DECISION_PREFERENCE,
) -> dict[MlCompressionDecision, Outcome]:
    """Encode and decode ``data`` with every decision; return sizes and median times.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        The packet.
    codec : PacketCodec
        The codec under evaluation (its level and dictionary apply).
    repeats : int
        Timed runs per operation (median kept), after one warm-up run.
    decisions : tuple of MlCompressionDecision
        Which decisions to measure (all four by default).

    Raises
    ------
    RuntimeError
        If a frame does not decode back to the packet (a codec bug).
    """
    check_int("repeats", repeats, lo=1)
    buf = bytes(as_bytes_like(data))
    out: dict[MlCompressionDecision, Outcome] = {}
    for decision in decisions:
        frame = codec.encode(buf, decision)
        if codec.decode(frame) != buf:
            raise RuntimeError(f"{decision.name} frame did not round-trip ({len(buf)} bytes)")
        encode_s = _median_s(partial(codec.encode, buf, decision), repeats)
        decode_s = _median_s(partial(codec.decode, frame), repeats)
        out[decision] = Outcome(len(frame), encode_s, decode_s)
    return out


STATELESS_DECISIONS: tuple[MlCompressionDecision, ...] = tuple(
    d for d in DECISION_PREFERENCE if d is not MlCompressionDecision.RohcOnly
)
"""decisions whose outcome depends on the packet alone"""


def measure_stream(
    packets: Sequence[bytes | bytearray | memoryview],
    codec: PacketCodec | None = None,
    *,
    repeats: int = 5,
    on_packet: Callable[[], object] | None = None,
) -> list[dict[MlCompressionDecision, Outcome]]:
    """`measure_outcomes` for packets sent in this order, header compression included.

    Skip, Light and Aggressive are measured per packet as in
    `measure_outcomes` (median of ``repeats`` timed runs). ``RohcOnly`` is
    stateful, so it is measured as a stream: a sending codec encodes every
    packet once, in order, and a receiving codec decodes each frame once (the
    frame sizes are what the peer would receive: IRs at the start of a flow
    and at refreshes, compressed headers in between). The stream is replayed
    ``repeats`` times with fresh codec pairs, and each packet keeps the median
    of its encode and decode times: a single timed call is at the mercy of a
    preemption on a shared machine (one measured run charged the heuristic
    31 us per RTP packet at 100 Mbit/s for such spikes, against under 1 us
    with medians).

    Raises
    ------
    RuntimeError
        If a frame does not decode back to its packet, or a replay of the
        stream gives other frame sizes (a codec bug: contexts are deterministic).
    """
    check_int("repeats", repeats, lo=1)
    codec = PacketCodec() if codec is None else codec
    clock = time.perf_counter_ns
    rohc = MlCompressionDecision.RohcOnly
    bufs = [bytes(as_bytes_like(d)) for d in packets]
    out: list[dict[MlCompressionDecision, Outcome]] = []
    for buf in bufs:
        out.append(measure_outcomes(buf, codec, repeats=repeats, decisions=STATELESS_DECISIONS))
        if on_packet is not None:
            on_packet()
    sizes: list[int] = []
    enc: list[list[int]] = [[] for _ in bufs]
    dec: list[list[int]] = [[] for _ in bufs]
    for rep in range(repeats):
        tx, rx = PacketCodec(codec.config), PacketCodec(codec.config)
        for i, buf in enumerate(bufs):
            t0 = clock()
            frame = tx.encode(buf, rohc)
            t1 = clock()
            back = rx.decode(frame)
            t2 = clock()
            if back != buf:
                raise RuntimeError(f"RohcOnly frame did not round-trip ({len(buf)} bytes)")
            if rep == 0:
                sizes.append(len(frame))
            elif sizes[i] != len(frame):
                raise RuntimeError(
                    f"RohcOnly replay {rep} gave a {len(frame)}-byte frame for packet {i}, "
                    f"the first pass {sizes[i]}"
                )
            enc[i].append(t1 - t0)
            dec[i].append(t2 - t1)
    for i, res in enumerate(out):
        res[rohc] = Outcome(
            sizes[i], statistics.median(enc[i]) * 1e-9, statistics.median(dec[i]) * 1e-9
        )
    return out


def best_in_hindsight(
    data: bytes | bytearray | memoryview,
    codec: PacketCodec,
    model: CompressionCostModel,
    *,
    repeats: int = 5,
) -> tuple[MlCompressionDecision, dict[MlCompressionDecision, float]]:
    """Measure every decision on ``data``; return the best and all utilities."""
    outcomes = measure_outcomes(data, codec, repeats=repeats)
    size = len(as_bytes_like(data))
    return model.best(outcomes, size), model.utilities(outcomes, size)
