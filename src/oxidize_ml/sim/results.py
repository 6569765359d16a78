"""Run results: per-flow and per-run metrics, time series, JSON summary.

Definitions
-----------
- **throughput_bps** (goodput): acknowledged bytes x 8 / the flow's active
  time (start to completion, or to the end of the run). Capped at the flow
  size for finite flows.
- **utilisation**: bytes delivered to the receiver / (delivery opportunities
  offered by the link during the flow's active time x 1500). For the run:
  all flows' bytes over the opportunities from the first start to the end.
  Opportunities that found the queue empty count as offered, so an idle
  link lowers it.
- **delay_p50_s / delay_p95_s / delay_max_s**: one-way delay of each
  delivered packet (arrival at the receiver minus send time: propagation +
  queueing), over the packets whose ack reached the sender. Exact up to
  ``max_delay_samples`` packets per flow, a uniform subsample beyond.
- **loss_rate**: packets lost / (acked + lost), where lost = declared lost
  by the sender + ``packets_lost_undetected`` (dropped by the link but not
  yet declared by the end of the run: the sender saw no later ack). A flow
  stuck behind a dropped window therefore shows its loss, not 0 %.
  ``dropped_queue`` and ``dropped_random`` count what the link dropped
  (buffer overflow, random loss), whether or not the sender noticed yet.
- **packets_stranded**: packets of an unfinished flow neither acknowledged
  nor declared lost by the end of the run (its packets in flight: queued,
  travelling, or dropped unnoticed). A healthy flow strands about one
  window; a flow stuck in an outage strands everything it sent after the
  link went silent. ``stranded_rate`` = stranded / sent.
- **run throughput_bps**: all flows' acknowledged bytes x 8 / (end - first
  flow start).
- **jain_index**: Jain's fairness index over the flows' goodput,
  (sum x)^2 / (n sum x^2); 1 = equal shares, 1/n = one flow takes all.
- **series**: one row per decision interval per flow: time, cwnd, queue
  bytes, interval goodput, smoothed RTT, interval loss rate, inflight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

SERIES_COLUMNS = (
    "time_s",
    "cwnd_bytes",
    "queue_bytes",
    "throughput_bps",
    "rtt_s",
    "loss_rate",
    "inflight_packets",
)
"""the per-interval series, in the order the simulator records them"""


def jain_index(values: list[float] | np.ndarray) -> float:
    """Jain's fairness index of non-negative values (1.0 for a single or all-zero set)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("jain_index needs at least one value")
    if np.any(x < 0.0):
        raise ValueError("jain_index values must be >= 0")
    sq = float(np.sum(x * x))
    if sq == 0.0:
        return 1.0
    return float(np.sum(x)) ** 2 / (x.size * sq)


@dataclass(frozen=True, slots=True, eq=False)
class FlowSeries:
    """Per-interval time series of one flow (float64 arrays of equal length)."""

    time_s: np.ndarray
    cwnd_bytes: np.ndarray
    queue_bytes: np.ndarray
    throughput_bps: np.ndarray
    rtt_s: np.ndarray
    """smoothed RTT at the tick (0 before the first sample)"""
    loss_rate: np.ndarray
    inflight_packets: np.ndarray

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlowSeries):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
        )

    def __len__(self) -> int:
        return int(self.time_s.size)

    def to_dict(self) -> dict[str, list[float]]:
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}


def percentile(x: np.ndarray, q: float) -> float:
    """The q-th percentile of ``x`` (nan when empty)."""
    return float(np.percentile(x, q)) if x.size else math.nan


@dataclass(frozen=True, slots=True, eq=False)
class FlowResult:
    """Metrics of one flow."""

    index: int
    controller: str
    start_s: float
    end_s: float
    """completion time for a finished finite flow, else the end of the run"""
    completion_time_s: float | None
    """when a finite flow's last byte was acked (None: bulk or unfinished)"""
    packets_sent: int
    bytes_sent: int
    packets_acked: int
    bytes_acked: int
    packets_lost: int
    """packets the sender declared lost"""
    packets_lost_undetected: int
    """packets the link dropped that the sender had not declared lost by the end"""
    packets_stranded: int
    """packets neither acknowledged nor declared lost by the end (unfinished flows)"""
    dropped_queue: int
    dropped_random: int
    throughput_bps: float
    utilisation: float
    delay_p50_s: float
    delay_p95_s: float
    delay_max_s: float
    loss_rate: float
    delays_s: np.ndarray
    """one-way delay per delivered packet (see module docs)"""
    series: FlowSeries | None

    @property
    def active_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @property
    def stranded_rate(self) -> float:
        """stranded packets / packets sent (0 when nothing was sent)"""
        return self.packets_stranded / self.packets_sent if self.packets_sent else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "controller": self.controller,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "completion_time_s": self.completion_time_s,
            "packets_sent": self.packets_sent,
            "bytes_sent": self.bytes_sent,
            "packets_acked": self.packets_acked,
            "bytes_acked": self.bytes_acked,
            "packets_lost": self.packets_lost,
            "packets_lost_undetected": self.packets_lost_undetected,
            "packets_stranded": self.packets_stranded,
            "stranded_rate": self.stranded_rate,
            "dropped_queue": self.dropped_queue,
            "dropped_random": self.dropped_random,
            "throughput_bps": self.throughput_bps,
            "utilisation": self.utilisation,
            "delay_p50_s": _nan_none(self.delay_p50_s),
            "delay_p95_s": _nan_none(self.delay_p95_s),
            "delay_max_s": _nan_none(self.delay_max_s),
            "loss_rate": self.loss_rate,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlowResult):
            return NotImplemented
        return (
            self.summary() == other.summary()
            and np.array_equal(self.delays_s, other.delays_s)
            and self.series == other.series
        )


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass(frozen=True, slots=True, eq=False)
class RunResult:
    """Everything measured in one run; ``to_dict()`` is the JSON-able summary."""

    scenario: str
    controllers: tuple[str, ...]
    seed: int
    duration_s: float
    interval_s: float
    buffer_bytes: int
    link_mean_rate_bps: float
    link_opportunities: int
    """delivery opportunities from the first flow start to the end"""
    delivered_bytes: int
    """bytes delivered to all receivers"""
    utilisation: float
    throughput_bps: float
    """aggregate goodput: all flows' acknowledged bytes x 8 / (end - first flow start)"""
    jain_index: float
    delay_p50_s: float
    delay_p95_s: float
    loss_rate: float
    """all flows' lost (declared + undetected) / (acked + lost)"""
    packets_sent: int
    packets_stranded: int
    """all flows' packets neither acknowledged nor declared lost by the end"""
    flows: tuple[FlowResult, ...]

    def to_dict(self, *, include_series: bool = False) -> dict[str, Any]:
        """JSON-serialisable summary (series only with ``include_series``)."""
        d: dict[str, Any] = {
            "scenario": self.scenario,
            "controllers": list(self.controllers),
            "seed": self.seed,
            "duration_s": self.duration_s,
            "interval_s": self.interval_s,
            "buffer_bytes": self.buffer_bytes,
            "link_mean_rate_bps": self.link_mean_rate_bps,
            "link_opportunities": self.link_opportunities,
            "delivered_bytes": self.delivered_bytes,
            "utilisation": self.utilisation,
            "throughput_bps": self.throughput_bps,
            "jain_index": self.jain_index,
            "delay_p50_s": _nan_none(self.delay_p50_s),
            "delay_p95_s": _nan_none(self.delay_p95_s),
            "loss_rate": self.loss_rate,
            "packets_sent": self.packets_sent,
            "packets_stranded": self.packets_stranded,
            "flows": [f.summary() for f in self.flows],
        }
        if include_series:
            for fd, f in zip(d["flows"], self.flows, strict=True):
                fd["series"] = None if f.series is None else f.series.to_dict()
        return d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunResult):
            return NotImplemented
        return self.to_dict() == other.to_dict() and all(
            a == b for a, b in zip(self.flows, other.flows, strict=True)
        )
