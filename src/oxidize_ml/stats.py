"""Typed, JSON-serialisable statistics for `MlEngine.stats()`.

Latency is sampled (one call in ``sample_every``) into a bounded ring so that
measuring it costs the hot path almost nothing.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from typing import Any

_perf_ns = time.perf_counter_ns

# Histogram bucket upper bounds, nanoseconds (1 us .. 5 ms).
BUCKET_BOUNDS_NS: tuple[int, ...] = tuple(
    us * 1000 for us in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
)


class LatencySampler:
    """Bounded ring of sampled call latencies in nanoseconds.

    Not thread-safe on its own: the engine calls it under its lock.
    """

    __slots__ = (
        "_buckets",
        "_count",
        "_filled",
        "_pos",
        "_ring",
        "_size",
        "_sum_ns",
        "_tick",
        "sample_every",
    )

    def __init__(self, size: int = 512, sample_every: int = 8) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if sample_every < 1:
            raise ValueError(f"sample_every must be >= 1, got {sample_every}")
        # Allocated on the first sample: a server forks one engine (four samplers)
        # per connection, and most samplers of short connections never fill.
        self._ring: array[int] | None = None
        self._size = size
        self._pos = 0
        self._filled = 0
        self.sample_every = sample_every
        self._tick = 0
        # Cumulative totals over every sampled call (the ring holds recent ones):
        # what a Prometheus histogram needs.
        self._count = 0
        self._sum_ns = 0
        self._buckets: list[int] | None = None

    def should_sample(self) -> bool:
        self._tick += 1
        if self._tick >= self.sample_every:
            self._tick = 0
            return True
        return False

    def add(self, ns: int) -> None:
        ring, buckets = self._ring, self._buckets
        if ring is None or buckets is None:
            ring = self._ring = array("q", bytes(8 * self._size))
            buckets = self._buckets = [0] * (len(BUCKET_BOUNDS_NS) + 1)
        self._count += 1
        self._sum_ns += ns
        buckets[bisect_left(BUCKET_BOUNDS_NS, ns)] += 1
        pos = self._pos
        ring[pos] = ns
        pos += 1
        size = self._size
        self._pos = 0 if pos == size else pos
        if self._filled < size:
            self._filled += 1

    def summary(self) -> LatencySummary:
        cum = 0
        buckets = []
        counts = self._buckets or [0] * (len(BUCKET_BOUNDS_NS) + 1)
        for bound, n_in in zip(BUCKET_BOUNDS_NS, counts, strict=False):
            cum += n_in
            buckets.append((bound / 1e9, cum))
        count, sum_s, hist = self._count, self._sum_ns / 1e9, tuple(buckets)
        if self._filled == 0:
            return LatencySummary(
                samples=0,
                p50_us=None,
                p99_us=None,
                max_us=None,
                count=count,
                sum_s=sum_s,
                buckets=hist,
            )
        assert self._ring is not None  # filled > 0
        vals = sorted(self._ring[: self._filled])
        n = len(vals)
        return LatencySummary(
            samples=n,
            p50_us=vals[n // 2] / 1000.0,
            p99_us=vals[min(n - 1, int(0.99 * n))] / 1000.0,
            max_us=vals[-1] / 1000.0,
            count=count,
            sum_s=sum_s,
            buckets=hist,
        )


@dataclass(frozen=True, slots=True)
class LatencySummary:
    samples: int
    """sampled calls in the recent ring"""
    p50_us: float | None
    p99_us: float | None
    max_us: float | None
    count: int = 0
    """sampled calls since start (cumulative)"""
    sum_s: float = 0.0
    """total time of the sampled calls since start, seconds"""
    buckets: tuple[tuple[float, int], ...] = ()
    """cumulative histogram of sampled calls: (upper bound seconds, count <= bound);
    the +Inf bucket is ``count``"""


@dataclass(frozen=True, slots=True)
class LossPredictorStats:
    decisions: int
    model_decisions: int
    fallback_decisions: int
    model_loaded: bool
    policy: str
    last_prediction: float | None
    fec_injections: int
    last_redundancy_ratio: float | None
    observations: int
    latency: LatencySummary
    nonfinite_fallbacks: int = 0
    """decisions the learned model could not make (NaN/inf output): answered by
    the heuristic and counted in ``fallback_decisions``"""


@dataclass(frozen=True, slots=True)
class CongestionStats:
    decisions: int
    model_decisions: int
    fallback_decisions: int
    model_loaded: bool
    policy: str
    epsilon: float | None
    cwnd: int
    last_action: str | None
    action_counts: dict[str, int]
    latency: LatencySummary
    controller: dict[str, Any] = field(default_factory=dict)
    nonfinite_fallbacks: int = 0
    """decisions the learned model could not make (NaN/inf Q-values): answered
    by the BBR-style fallback and counted in ``fallback_decisions``"""


@dataclass(frozen=True, slots=True)
class CompressionStats:
    decisions: int
    model_decisions: int
    fallback_decisions: int
    model_loaded: bool
    policy: str
    decision_counts: dict[str, int]
    skipped: int
    compressed: int
    bytes_in: int
    bytes_out: int
    bytes_saved: int
    latency: LatencySummary


@dataclass(frozen=True, slots=True)
class PathSelectorStats:
    decisions: int
    model_loaded: bool
    policy: str
    selections: dict[str, int]
    mean_reward: dict[str, float | None]
    latency: LatencySummary
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngineStats:
    loss_predictor: LossPredictorStats
    congestion_controller: CongestionStats
    compression_oracle: CompressionStats
    path_selector: PathSelectorStats
    training_collection: bool
    telemetry: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
