"""A bounded, column-wise FIFO of rows with drop accounting and two-phase draining.

Not thread-safe on its own: `TelemetryCollector` holds its one lock around
every call.

Rows live in preallocated numpy arrays (one per column), so a full ring of
100,000 loss rows costs about 6 MB rather than the ~50 MB of Python tuples.
Storage starts small and doubles up to ``capacity``, so a table that is never
written costs almost nothing. When the ring is full, appending overwrites the
oldest row and counts it as dropped.

Exports drain in two phases so rows are never lost between collection and a
durable export: `begin_export` copies the current rows and remembers the
sequence number of the last one; `commit_export` (after the files are on disk)
removes exactly those rows, keeping rows appended meanwhile; `abort_export`
removes nothing. Rows of an in-flight export that are overwritten while it is
being written are counted as dropped only if the export then fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oxidize_ml.telemetry.schema import ColumnSpec, numpy_dtype

INITIAL_ROWS = 1024
"""Rows allocated on the first append (storage then doubles up to the capacity)."""

VarList = tuple[np.ndarray, np.ndarray]
"""A ``varlist`` column as ``(values[n, width], lengths[n])``; row i is ``values[i, :lengths[i]]``."""


@dataclass(frozen=True, slots=True)
class RingSnapshot:
    """Rows copied out by `ColumnRing.begin_export`, oldest first."""

    rows: int
    columns: dict[str, np.ndarray | VarList]
    """column name -> array of ``rows`` rows (``[rows, width]`` for vectors; `VarList` for varlists)"""
    dropped: int
    """rows dropped since the previous successful export, up to this snapshot"""
    time_min: float | None
    time_max: float | None


class ColumnRing:
    """Bounded FIFO of rows laid out as `ColumnSpec` columns."""

    __slots__ = (
        "_alloc",
        "_appended",
        "_capacity",
        "_cols",
        "_dropped",
        "_dropped_reported",
        "_inflight_dropped",
        "_inflight_end",
        "_inflight_evicted",
        "_lens",
        "_size",
        "_specs",
        "_start",
    )

    def __init__(self, specs: Sequence[ColumnSpec], capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._specs = tuple(specs)
        self._capacity = capacity
        self._alloc = 0
        self._cols: list[np.ndarray] = []
        self._lens: list[np.ndarray | None] = []
        self._start = 0
        self._size = 0
        self._appended = 0
        """total rows ever appended = sequence number of the next row"""
        self._dropped = 0
        """rows lost to the bound, cumulative"""
        self._dropped_reported = 0
        """value of ``_dropped`` included in the last successful export"""
        self._inflight_end: int | None = None
        """sequence number just past the in-flight export's last row, or None"""
        self._inflight_evicted = 0
        """in-flight rows overwritten since `begin_export` (lost only if it fails)"""
        self._inflight_dropped = 0
        """``_dropped`` at `begin_export`"""

    # ---- counters -------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self._size

    @property
    def appended(self) -> int:
        """Rows ever appended."""
        return self._appended

    @property
    def dropped(self) -> int:
        """Rows lost to the bound (overwritten before any successful export), cumulative."""
        return self._dropped

    # ---- writing --------------------------------------------------------
    def _allocate(self, rows: int) -> None:
        new_cols: list[np.ndarray] = []
        new_lens: list[np.ndarray | None] = []
        for k, spec in enumerate(self._specs):
            dtype = numpy_dtype(spec)
            if spec.kind == "vector":
                shape: tuple[int, ...] = (rows, spec.width)
            elif spec.kind == "varlist":
                width = self._cols[k].shape[1] if self._cols else 1
                shape = (rows, width)
            else:
                shape = (rows,)
            col = np.zeros(shape, dtype=dtype) if dtype != object else np.empty(shape, dtype)
            lens = np.zeros(rows, dtype=np.int32) if spec.kind == "varlist" else None
            if self._size:
                # Copy the live rows to the front, oldest first.
                order = (self._start + np.arange(self._size)) % self._alloc
                col[: self._size] = self._cols[k][order]
                if lens is not None:
                    old_lens = self._lens[k]
                    assert old_lens is not None
                    lens[: self._size] = old_lens[order]
            new_cols.append(col)
            new_lens.append(lens)
        self._cols, self._lens = new_cols, new_lens
        self._alloc, self._start = rows, 0

    def _widen(self, k: int, width: int) -> None:
        old = self._cols[k]
        new = np.zeros((self._alloc, width), dtype=old.dtype)
        new[:, : old.shape[1]] = old
        self._cols[k] = new

    def append(self, row: Sequence[Any]) -> None:
        """Append one row (values in column order). Evicts the oldest row when full.

        Values must already be validated and of the right kind (`TelemetryCollector`
        does that); a varlist value is a 1-D float32 array.
        """
        if self._size == self._alloc:
            if self._alloc < self._capacity:
                self._allocate(min(self._capacity, max(INITIAL_ROWS, 2 * self._alloc)))
            else:
                oldest_seq = self._appended - self._size
                if self._inflight_end is not None and oldest_seq < self._inflight_end:
                    self._inflight_evicted += 1
                else:
                    self._dropped += 1
                self._start = (self._start + 1) % self._alloc
                self._size -= 1
        i = (self._start + self._size) % self._alloc
        for k, value in enumerate(row):
            lens = self._lens[k]
            if lens is None:
                self._cols[k][i] = value
            else:
                n = value.shape[0]
                if n > self._cols[k].shape[1]:
                    self._widen(k, n)
                col = self._cols[k]
                col[i, :n] = value  # values past lens[i] are never read
                lens[i] = n
        self._size += 1
        self._appended += 1

    # ---- export ---------------------------------------------------------
    def _ordered(self, a: np.ndarray) -> np.ndarray:
        end = self._start + self._size
        if end <= self._alloc:
            return a[self._start : end].copy()
        return np.concatenate((a[self._start :], a[: end - self._alloc]))

    def begin_export(self) -> RingSnapshot:
        """Copy the rows out and mark them as in flight. Call `commit_export` or `abort_export` next."""
        if self._inflight_end is not None:
            raise RuntimeError("an export of this ring is already in progress")
        columns: dict[str, np.ndarray | VarList] = {}
        for k, spec in enumerate(self._specs):
            if self._size == 0:
                columns[spec.name] = _empty_column(spec)
                continue
            lens = self._lens[k]
            if lens is None:
                columns[spec.name] = self._ordered(self._cols[k])
            else:
                ordered_lens = self._ordered(lens)
                width = int(ordered_lens.max())
                columns[spec.name] = (self._ordered(self._cols[k])[:, :width], ordered_lens)
        ts = columns.get("timestamp")
        t_min = t_max = None
        if isinstance(ts, np.ndarray) and ts.size > 0:
            t_min, t_max = float(ts.min()), float(ts.max())
        self._inflight_end = self._appended
        self._inflight_evicted = 0
        self._inflight_dropped = self._dropped
        return RingSnapshot(
            rows=self._size,
            columns=columns,
            dropped=self._dropped - self._dropped_reported,
            time_min=t_min,
            time_max=t_max,
        )

    def commit_export(self) -> None:
        """The snapshot is durably written: remove its rows, keep newer ones."""
        if self._inflight_end is None:
            raise RuntimeError("commit_export without begin_export")
        keep = min(self._size, self._appended - self._inflight_end)
        if self._alloc:
            self._start = (self._start + (self._size - keep)) % self._alloc
        self._size = keep
        self._dropped_reported = self._inflight_dropped
        self._inflight_end = None
        self._inflight_evicted = 0

    def abort_export(self) -> None:
        """The export failed: keep every row; snapshot rows overwritten meanwhile are now lost."""
        if self._inflight_end is None:
            raise RuntimeError("abort_export without begin_export")
        self._dropped += self._inflight_evicted
        self._inflight_end = None
        self._inflight_evicted = 0


def _empty_column(spec: ColumnSpec) -> np.ndarray | VarList:
    dtype = numpy_dtype(spec)
    if spec.kind == "vector":
        return np.zeros((0, spec.width), dtype=dtype)
    if spec.kind == "varlist":
        return (np.zeros((0, 0), dtype=dtype), np.zeros(0, dtype=np.int32))
    return np.empty(0, dtype=dtype)
