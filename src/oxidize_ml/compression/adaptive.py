"""The learned compression oracle, following the measured link rate: one table per rate bucket.

Whether compressing a packet pays depends on the link: at 5 Mbit/s zstd
nearly always repays its CPU time, at 100 Mbit/s lz4 often does not, and
header compression (``RohcOnly``) only pays on slow links. A
`LearnedCompressionOracle` is built for one rate (its decision table folds
the rate into the cost model); `RateBucketOracle` keeps one such table per
rate bucket and switches between them when told the current rate, so a
decision still costs one table read.

Rate buckets (`RATE_BUCKETS_BPS`) are the 1-2-5 series from 1 Mbit/s to
10 Gbit/s; a measured rate goes to the nearest bucket in log scale (at most
a factor 1.6 away). Tables are built on first use of a bucket (milliseconds,
`LearnedCompressionOracle.table_build_s`) and shared, read-only, by every
`fork` of the oracle, so an engine per connection costs no table memory.

Wiring (engine): call `follow_link_rate_bps` (the packet path's
non-blocking form of `set_link_rate_bps`) with the connection's measured
bottleneck rate (``NetworkFeatures.bandwidth_bps`` in ``observe``, or the
path's measured bandwidth); until then the oracle decides for the rate it
was built with (the manifest's ``engine_link_rate_bps``, 100 Mbit/s by
default). `set_link_rate_bps` takes no lock on the per-packet path: the
active table is swapped with one attribute assignment, so a concurrent
``decide`` sees either the old or the new table, both valid.
"""

from __future__ import annotations

import bisect
import itertools
import math
import sys
import threading
from typing import Any, Final

from oxidize_ml._validate import check_number
from oxidize_ml.compression.decide_policy import DecidePolicy
from oxidize_ml.compression.learned import LearnedCompressionOracle

RATE_BUCKETS_BPS: Final[tuple[float, ...]] = tuple(
    m * 10.0**e for e in range(6, 10) for m in (1.0, 2.0, 5.0)
) + (10e9,)
"""rates a table is built for, bits per second (1 Mbit/s ... 10 Gbit/s, 1-2-5 steps)"""
_EDGES: Final = tuple(math.sqrt(a * b) for a, b in itertools.pairwise(RATE_BUCKETS_BPS))


def rate_bucket(link_rate_bps: float) -> int:
    """Index in `RATE_BUCKETS_BPS` of the bucket nearest to ``link_rate_bps`` (log scale)."""
    return bisect.bisect_left(_EDGES, link_rate_bps)


def _bucket_range(bucket: int) -> tuple[float, float]:
    """``(lo, hi)``: the rates ``r`` with ``lo < r <= hi`` fall in ``bucket`` (finite
    bounds, so an infinite rate is never in range and reaches the validation)."""
    lo = _EDGES[bucket - 1] if bucket > 0 else 0.0
    hi = _EDGES[bucket] if bucket < len(_EDGES) else sys.float_info.max
    return lo, hi


def _checked_bucket(link_rate_bps: float) -> int:
    """`rate_bucket` of a validated rate (ValueError/TypeError naming the field)."""
    rate = check_number("link_rate_bps", link_rate_bps)
    if rate <= 0:
        raise ValueError(f"link_rate_bps must be > 0, got {link_rate_bps!r}")
    return bisect.bisect_left(_EDGES, rate)


class _TableCache:
    """Oracles per bucket, built once and shared by every fork (thread-safe)."""

    __slots__ = ("base", "lock", "oracles", "pending")

    def __init__(self, base: LearnedCompressionOracle) -> None:
        self.base = base
        self.lock = threading.Lock()
        self.oracles: dict[int, LearnedCompressionOracle] = {}
        self.pending: dict[int, threading.Thread] = {}

    def get(self, bucket: int) -> LearnedCompressionOracle:
        oracle = self.oracles.get(bucket)
        if oracle is None:
            with self.lock:
                oracle = self.oracles.get(bucket)
                if oracle is None:
                    oracle = self.base.with_link_rate(RATE_BUCKETS_BPS[bucket])
                    self.oracles[bucket] = oracle
        return oracle

    def get_or_build_later(self, bucket: int) -> LearnedCompressionOracle | None:
        """The bucket's oracle if built; otherwise start building it on a
        background thread (once) and return None."""
        oracle = self.oracles.get(bucket)
        if oracle is not None:
            return oracle
        with self.lock:
            if bucket in self.oracles:
                return self.oracles[bucket]
            if bucket not in self.pending:
                worker = threading.Thread(
                    target=self.get, args=(bucket,), name="oxidize-compression-table", daemon=True
                )
                self.pending[bucket] = worker
                worker.start()
        return None

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the background builds started so far."""
        with self.lock:
            workers = list(self.pending.values())
        for worker in workers:
            worker.join(timeout)


class RateBucketOracle(DecidePolicy):
    """`LearnedCompressionOracle` decisions for the current link rate's bucket.

    Satisfies ``Policy[bytes | bytearray | memoryview, MlCompressionDecision]``
    like the oracles it wraps; ``decide`` is the active table's own bound
    method, so it costs exactly what `LearnedCompressionOracle.decide` costs.

    Parameters
    ----------
    base : LearnedCompressionOracle
        The oracle to re-target (its model and CPU weights are kept).
    link_rate_bps : float, optional
        Initial rate (default: the base oracle's). It is used exactly, not
        rounded to a bucket, until `set_link_rate_bps` is called.

    Examples
    --------
    >>> oracle = RateBucketOracle(learned)  # doctest: +SKIP
    >>> oracle.set_link_rate_bps(5e6)  # doctest: +SKIP
    >>> oracle.link_rate_bps  # doctest: +SKIP
    5000000.0
    """

    name: str = "mlp"
    is_learned: bool = True

    __slots__ = ("_active", "_bucket", "_cache", "_hi", "_lo", "decide")

    def __init__(
        self,
        base: LearnedCompressionOracle,
        *,
        link_rate_bps: float | None = None,
        _cache: _TableCache | None = None,
    ) -> None:
        if not isinstance(base, LearnedCompressionOracle):
            raise TypeError(f"base must be a LearnedCompressionOracle, got {type(base).__name__}")
        self._cache = _TableCache(base) if _cache is None else _cache
        self._bucket = -1
        # rates in (lo, hi] are the current bucket's: the engine calls
        # `follow_link_rate_bps` every interval, and two compares answer most calls
        self._lo = self._hi = math.nan
        active = base
        if link_rate_bps is not None and link_rate_bps != base.link_rate_bps:
            check_number("link_rate_bps", link_rate_bps)
            if link_rate_bps <= 0:
                raise ValueError(f"link_rate_bps must be > 0, got {link_rate_bps!r}")
            active = base.with_link_rate(link_rate_bps)
        self._active = active
        self.decide = active.decide

    @classmethod
    def from_model(cls, model: Any, *, link_rate_bps: float) -> RateBucketOracle:
        """Build the base `LearnedCompressionOracle` for ``model`` at ``link_rate_bps``."""
        return cls(LearnedCompressionOracle(model, link_rate_bps=link_rate_bps))

    def __repr__(self) -> str:
        return f"RateBucketOracle(link_rate_bps={self.link_rate_bps:g})"

    @property
    def link_rate_bps(self) -> float:
        """The rate the active table was built for."""
        return self._active.link_rate_bps

    @property
    def model(self) -> Any:
        return self._active.model

    @property
    def active(self) -> LearnedCompressionOracle:
        """The oracle whose table decides now."""
        return self._active

    def set_link_rate_bps(self, link_rate_bps: float) -> None:
        """Decide from now on for the rate bucket nearest to ``link_rate_bps``.

        Cheap when the bucket does not change (one bisect); the first use of a
        bucket builds its table (milliseconds, once per process).
        Non-positive or non-finite rates raise ``ValueError`` naming the field.
        """
        bucket = _checked_bucket(link_rate_bps)
        if bucket == self._bucket:
            return
        active = self._cache.get(bucket)
        self._switch(bucket, active)

    def _switch(self, bucket: int, active: LearnedCompressionOracle) -> None:
        """Decide with ``active``, the table of ``bucket``, from now on."""
        self._active = active
        self.decide = active.decide
        self._bucket = bucket
        self._lo, self._hi = _bucket_range(bucket)

    def follow_link_rate_bps(self, link_rate_bps: float) -> None:
        """`set_link_rate_bps` for the packet path: never waits for a table.

        If the bucket's table is built (in this process, by any engine), switch
        at once; otherwise start building it on a background thread and keep
        deciding with the current table until a later call finds it ready (the
        engine calls this on every observation, so within one interval of the
        build finishing). The engine uses this so a connection never stalls
        10-150 ms on its first packets at a new rate; `set_link_rate_bps`
        (synchronous) stays for callers that need the switch to be immediate,
        such as evaluations and tests. Invalid rates raise ``ValueError``.
        """
        if type(link_rate_bps) is float and self._lo < link_rate_bps <= self._hi:
            return  # the current bucket (NaN, infinities and other types fall through)
        bucket = _checked_bucket(link_rate_bps)
        if bucket == self._bucket:
            return
        active = self._cache.get_or_build_later(bucket)
        if active is None:
            return
        self._switch(bucket, active)

    def wait_for_tables(self, timeout: float | None = None) -> None:
        """Wait for the tables `follow_link_rate_bps` started building."""
        self._cache.wait(timeout)

    def with_link_rate(self, link_rate_bps: float) -> LearnedCompressionOracle:
        """A plain oracle for exactly ``link_rate_bps`` (evaluation at a fixed rate)."""
        return self._cache.base.with_link_rate(link_rate_bps)

    def fork(self) -> RateBucketOracle:
        """A new oracle for another connection: own rate, shared tables."""
        new = RateBucketOracle(self._cache.base, _cache=self._cache)
        new._active = self._active
        new.decide = self._active.decide
        new._bucket = self._bucket
        new._lo, new._hi = self._lo, self._hi
        return new
