"""`TelemetryCollector`: bounded, thread-safe recording of training data.

The table layouts are documented in `oxidize_ml.telemetry`; the column
definitions are in `oxidize_ml.telemetry.schema`.
"""

from __future__ import annotations

import math
import operator
import os
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, SupportsIndex, cast

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.actions import N_ACTIONS
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.telemetry.export import ExportManifest, write_export
from oxidize_ml.telemetry.ring import ColumnRing, RingSnapshot
from oxidize_ml.telemetry.schema import (
    COMPRESSION,
    CONGESTION,
    LOSS,
    PATH,
    TABLE_COLUMNS,
    TABLE_NAMES,
)
from oxidize_ml.types import MlCompressionDecision, PathMetrics, TrafficContext

TIME_EPS_S = 1e-6
"""Label-window boundaries are shifted later by this much (1 us).

Observations on a regular grid (every 10 ms) land exactly on the window
boundaries t + 0.05 and t + 0.10; at epoch scale (1.7e9 s) float64 spacing is
2.4e-7 s, so without the shift whether such an observation is in or out would
depend on rounding. With it, one exactly at t + 0.05 is out and one exactly at
t + 0.10 is in, as the interval (t + 0.05, t + 0.10] says. 1 us is physically
irrelevant for a 50 ms window."""

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_DECISIONS = {d.value: d.value for d in MlCompressionDecision}


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Bounds and labelling of a `TelemetryCollector`.

    Memory is bounded by ``capacity`` x (65 B loss + 22 B + 8 B x L congestion
    + 44 B + 4 B x L compression + 68 B path), L being the longest vector
    recorded (<= ``max_vector_len``), plus ``max_pending`` x ~150 B: 30 MB
    with every table full and L = 8 (measured with tracemalloc), 97 MB at
    worst (L = 64). Tables allocate lazily, so unused ones cost nothing.
    """

    capacity: int = 100_000
    """rows kept per table; when full, the oldest row is dropped and counted"""
    loss_horizon_s: tuple[float, float] = (0.05, 0.10)
    """(start, end) of the loss label window after a sample, seconds: the
    label averages observations with timestamps in (t + start, t + end]
    (the spec's "predict loss 50-100 ms ahead")"""
    max_pending: int = 4096
    """loss samples kept while waiting for their label window to pass; the
    window holds ~10 observations at the spec's 10 ms interval, so this only
    binds if observations arrive faster than ~40,000 per second"""
    max_vector_len: int = 64
    """longest accepted congestion state / compression feature vector"""
    source: str = "local"
    """id of this collector written into every row (a server id without the
    host name: ``source`` ends up in shared training data)"""

    def __post_init__(self) -> None:
        check_int("capacity", self.capacity, lo=1)
        check_int("max_pending", self.max_pending, lo=1)
        check_int("max_vector_len", self.max_vector_len, lo=1)
        horizon = self.loss_horizon_s
        if not isinstance(horizon, tuple) or len(horizon) != 2:
            raise ValueError(f"loss_horizon_s must be a (start, end) tuple, got {horizon!r}")
        start = check_number("loss_horizon_s[0]", horizon[0], lo=0.0)
        end = check_number("loss_horizon_s[1]", horizon[1], lo=0.0)
        if not start < end:
            raise ValueError(f"loss_horizon_s must have start < end, got {horizon!r}")
        object.__setattr__(self, "loss_horizon_s", (start, end))
        check_source(self.source)


def check_source(source: object) -> str:
    """A source id: 1 to 128 printable characters."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    if not 1 <= len(source) <= 128 or not source.isprintable():
        raise ValueError(f"source must be 1 to 128 printable characters, got {source!r}")
    return source


def _vector(name: str, value: object, max_len: int) -> np.ndarray:
    """1-D finite float32 vector of length 1..max_len (a copy is made later by the ring)."""
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a sequence of numbers, got {type(value).__name__}"
        ) from None
    if arr.ndim != 1 or not 1 <= arr.shape[0] <= max_len:
        raise ValueError(f"{name} must be 1-D with 1 to {max_len} values, got shape {arr.shape}")
    # A Python loop over <= max_len floats beats np.isfinite(arr).all() (~4 us
    # of ufunc + reduce overhead) for vectors this short.
    if not all(map(math.isfinite, arr.tolist())):
        raise ValueError(f"{name} must be finite (and within float32 range), got {arr!r}")
    return arr


def _now(value: object) -> float:
    """A timestamp: finite, >= 0. Plain floats take a fast path (``check_number``'s
    ``numbers.Real`` check costs ~0.5 us, a fifth of a record call)."""
    if type(value) is float and 0.0 <= value < math.inf:  # NaN fails both comparisons
        return value
    return check_number("now", value)


def _float32(name: str, value: object) -> float:
    """A finite number within float32 range (fast path for plain floats, as in `_now`)."""
    if type(value) is float and -_FLOAT32_MAX <= value <= _FLOAT32_MAX:
        return value
    return check_number(name, value, lo=-_FLOAT32_MAX, hi=_FLOAT32_MAX)


def _index(name: str, value: object, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        # The cast only names what the try tests: anything without __index__ raises.
        v = operator.index(cast("SupportsIndex", value))
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if not 0 <= v <= hi:
        raise ValueError(f"{name} must be in [0, {hi}], got {v}")
    return v


class TelemetryCollector:
    """Collects training data for the four models in bounded ring buffers.

    Every ``record_*`` method takes ``now``: absolute wall-clock seconds since
    the Unix epoch (``time.time()`` on the caller's side), so rows from
    different servers merge on one time axis. All methods are thread-safe
    (one lock; values are validated before it is taken).

    Examples
    --------
    >>> c = TelemetryCollector(TelemetryConfig(capacity=10))
    >>> c.record_transition([0.1] * 8, 2, 0.5, [0.2] * 8, now=1.7e9)
    >>> c.stats()["tables"]["congestion"]["rows"]
    1
    """

    def __init__(self, config: TelemetryConfig | None = None) -> None:
        self.config = TelemetryConfig() if config is None else config
        self._lock = threading.Lock()
        self._rings = {
            name: ColumnRing(TABLE_COLUMNS[name], self.config.capacity) for name in TABLE_NAMES
        }
        self._pending: deque[tuple[float, np.ndarray, float]] = deque()
        self._last_obs_t: float | None = None
        self._lo_s = self.config.loss_horizon_s[0] + TIME_EPS_S
        self._hi_s = self.config.loss_horizon_s[1] + TIME_EPS_S
        # Loss-label counters, cumulative; "_reported" = value in the last export.
        self._loss_counters = {"unlabeled_dropped": 0, "pending_overflow": 0, "clock_resets": 0}
        self._loss_reported = dict.fromkeys(self._loss_counters, 0)
        self._exporting = False
        self._exports = 0

    # ---- recording ------------------------------------------------------
    def record_observation(
        self, features: NetworkFeatures, *, now: float, vector: np.ndarray | None = None
    ) -> None:
        """Record one network observation: a future ``loss`` row and a label source.

        The observation waits in a pending queue until its label window
        (``now + loss_horizon_s``) has fully passed, i.e. until an observation
        (or `advance`) with a later time arrives; then it is labelled from the
        observations inside its window and moves to the ``loss`` table.
        Samples with no observation in their window are dropped and counted
        as ``unlabeled_dropped``. If ``now`` goes backwards (a wall-clock
        step), pending samples cannot be labelled consistently: they are
        dropped (``unlabeled_dropped``) and ``clock_resets`` counts the event.
        ``vector``, when given, is ``features.to_vector()`` already computed by
        the caller (the engine slices it from the congestion state); it is kept,
        so it must not be written to afterwards.
        """
        if not isinstance(features, NetworkFeatures):
            raise TypeError(f"features must be NetworkFeatures, got {type(features).__name__}")
        t = _now(now)
        vec = features.to_vector() if vector is None else vector
        loss_rate = float(features.loss_rate)
        with self._lock:
            if self._last_obs_t is not None and t < self._last_obs_t:
                self._loss_counters["clock_resets"] += 1
                self._loss_counters["unlabeled_dropped"] += len(self._pending)
                self._pending.clear()
            self._last_obs_t = t
            self._pending.append((t, vec, loss_rate))
            self._label_ready(t)
            while len(self._pending) > self.config.max_pending:
                self._pending.popleft()
                self._loss_counters["pending_overflow"] += 1

    def advance(self, *, now: float) -> None:
        """Label pending loss samples whose window has passed by ``now``, without a new observation.

        Use when observations stop (end of a connection, before an export).
        A ``now`` earlier than the last observation does nothing.
        """
        t = _now(now)
        with self._lock:
            self._label_ready(t)

    def _label_ready(self, now: float) -> None:
        """Move every pending sample whose window (t + lo, t + hi] is over to the loss table.

        Cost is the window's observation count per labelled sample (about 5 at
        10 ms intervals), so O(1) amortised per observation at a fixed rate.
        """
        pending = self._pending
        lo, hi = self._lo_s, self._hi_s
        ring = self._rings[LOSS]
        source = self.config.source
        while pending and pending[0][0] + hi < now:
            t0, vec, loss_rate = pending[0]
            start, end = t0 + lo, t0 + hi
            total = 0.0
            count = 0
            for tj, _, lj in pending:
                if tj <= start:
                    continue
                if tj > end:
                    break
                total += lj
                count += 1
            pending.popleft()
            if count == 0:
                self._loss_counters["unlabeled_dropped"] += 1
                continue
            ring.append((t0, source, vec, loss_rate, total / count, total > 0.0))

    def record_transition(
        self,
        state: Sequence[float] | np.ndarray,
        action: int,
        reward: float,
        next_state: Sequence[float] | np.ndarray,
        *,
        now: float,
        done: bool = False,
    ) -> None:
        """Record one congestion-control transition (a ``congestion`` row).

        ``state``/``next_state`` are the controller's observations (any length
        up to ``max_vector_len``), ``action`` a `DrlAction` index, ``reward``
        the value of `oxidize_ml.congestion.reward.congestion_reward`.
        """
        t = _now(now)
        max_len = self.config.max_vector_len
        s = _vector("state", state, max_len)
        ns = _vector("next_state", next_state, max_len)
        a = _index("action", action, N_ACTIONS - 1)
        r = _float32("reward", reward)
        if not isinstance(done, (bool, np.bool_)):
            raise TypeError(f"done must be a bool, got {type(done).__name__}")
        row = (t, self.config.source, s, a, r, ns, bool(done))
        with self._lock:
            self._rings[CONGESTION].append(row)

    def record_compression(
        self,
        features: Sequence[float] | np.ndarray,
        decision: MlCompressionDecision | str,
        *,
        size: int,
        compressed_size: int,
        encode_ns: int,
        now: float,
    ) -> None:
        """Record one compression outcome (a ``compression`` row).

        ``features`` is the oracle's feature vector for the packet, ``decision``
        what was done (an `MlCompressionDecision` or its value), ``size`` and
        ``compressed_size`` bytes before/after, ``encode_ns`` encode time.
        """
        t = _now(now)
        f = _vector("features", features, self.config.max_vector_len)
        value = decision.value if isinstance(decision, MlCompressionDecision) else decision
        if not isinstance(value, str) or value not in _DECISIONS:
            raise ValueError(f"decision must be one of {sorted(_DECISIONS)}, got {decision!r}")
        row = (
            t,
            self.config.source,
            f,
            _DECISIONS[value],  # the interned string: one object shared by every row
            check_int("size", size, lo=0, hi=_INT32_MAX),
            check_int("compressed_size", compressed_size, lo=0, hi=_INT32_MAX),
            check_int("encode_ns", encode_ns, lo=0, hi=_INT64_MAX),
        )
        with self._lock:
            self._rings[COMPRESSION].append(row)

    def record_path(
        self, context: TrafficContext, metrics: PathMetrics, reward: float, *, now: float
    ) -> None:
        """Record one path-selection outcome (a ``path`` row) for a traffic context."""
        t = _now(now)
        if not isinstance(context, TrafficContext):
            try:
                context = TrafficContext(_index("context", context, len(TrafficContext) - 1))
            except TypeError:
                raise TypeError(
                    f"context must be a TrafficContext, got {type(context).__name__}"
                ) from None
        if not isinstance(metrics, PathMetrics):
            raise TypeError(f"metrics must be PathMetrics, got {type(metrics).__name__}")
        row = (
            t,
            self.config.source,
            context.name,
            metrics.path_id.name,
            _float32("reward", reward),
            float(metrics.rtt_us),
            float(metrics.loss_rate),
            float(metrics.bandwidth_bps),
            float(metrics.availability),
        )
        with self._lock:
            self._rings[PATH].append(row)

    # ---- inspection -----------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """JSON-able counters: rows held, rows dropped (cumulative), pending, per table."""
        with self._lock:
            tables = {
                name: {
                    "rows": len(ring),
                    "capacity": ring.capacity,
                    "appended": ring.appended,
                    "dropped": ring.dropped,
                    "pending": len(self._pending) if name == LOSS else 0,
                }
                for name, ring in self._rings.items()
            }
            return {
                "source": self.config.source,
                "tables": tables,
                "loss_labels": dict(self._loss_counters),
                "exports": self._exports,
                "exporting": self._exporting,
            }

    # ---- export ---------------------------------------------------------
    def export(
        self,
        directory: str | os.PathLike[str],
        *,
        source_version: str,
        created_at: float | None = None,
    ) -> ExportManifest:
        """Write the collected rows to a new export under ``directory`` and drain them.

        See `oxidize_ml.telemetry.export.write_export` for the layout. Rows are
        removed from the buffers only after every file and the manifest are
        durably written; on any error nothing is removed and the error
        propagates. Pending (not yet labelled) loss samples stay pending.
        Recording continues during the export; rows recorded meanwhile are kept
        for the next one. Only one export runs at a time.

        Parameters
        ----------
        directory
            Export root (created owner-only if missing; refused if world-writable).
        source_version
            Version of the software that produced the data (``oxidize_ml.__version__``).
        created_at
            Export time, Unix seconds; default: the current wall clock.

        Returns
        -------
        ExportManifest

        Raises
        ------
        RuntimeError
            Another export of this collector is in progress.
        """
        if not isinstance(source_version, str) or not source_version.strip():
            raise ValueError(f"source_version must be a non-empty str, got {source_version!r}")
        if created_at is not None:
            created_at = check_number("created_at", created_at)
        with self._lock:
            if self._exporting:
                raise RuntimeError("an export of this collector is already in progress")
            snapshots: dict[str, RingSnapshot] = {}
            try:
                for name, ring in self._rings.items():
                    snapshots[name] = ring.begin_export()
            except BaseException:  # e.g. MemoryError copying: leave no ring in flight
                for name in snapshots:
                    self._rings[name].abort_export()
                raise
            counters = dict(self._loss_counters)
            loss_meta = {k: counters[k] - self._loss_reported[k] for k in counters}
            loss_meta["pending"] = len(self._pending)
            self._exporting = True
        try:
            manifest = write_export(
                directory,
                snapshots,
                source=self.config.source,
                source_version=source_version,
                loss_horizon_s=self.config.loss_horizon_s,
                loss_counters=loss_meta,
                created_at=created_at,
            )
        except BaseException:
            with self._lock:
                for ring in self._rings.values():
                    ring.abort_export()
                self._exporting = False
            raise
        with self._lock:
            for ring in self._rings.values():
                ring.commit_export()
            self._loss_reported = counters
            self._exporting = False
            self._exports += 1
        return manifest
