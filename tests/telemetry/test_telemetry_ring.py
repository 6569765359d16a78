"""ColumnRing: bounded FIFO, drop accounting, two-phase export draining."""

from __future__ import annotations

import numpy as np
import pytest

from oxidize_ml.telemetry.ring import INITIAL_ROWS, ColumnRing
from oxidize_ml.telemetry.schema import ColumnSpec

SPECS = (
    ColumnSpec("timestamp", "scalar", "float64"),
    ColumnSpec("name", "string"),
    ColumnSpec("vec", "vector", "float32", 2, ("v0", "v1")),
    ColumnSpec("lst", "varlist", "float32"),
)


def _row(i: int, n: int = 1) -> tuple:
    return (float(i), f"r{i}", np.array([i, -i], np.float32), np.arange(n, dtype=np.float32) + i)


def _timestamps(ring: ColumnRing) -> list[float]:
    snap = ring.begin_export()
    ring.abort_export()
    return snap.columns["timestamp"].tolist()  # type: ignore[union-attr]


def test_bounded_and_drops_oldest() -> None:
    ring = ColumnRing(SPECS, capacity=3)
    for i in range(5):
        ring.append(_row(i))
    assert len(ring) == 3
    assert ring.appended == 5
    assert ring.dropped == 2
    assert _timestamps(ring) == [2.0, 3.0, 4.0]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ColumnRing(SPECS, capacity=0)


def test_growth_keeps_order_across_wraps() -> None:
    # Cross the initial allocation and wrap the full ring several times.
    cap = INITIAL_ROWS + 100
    ring = ColumnRing(SPECS, capacity=cap)
    total = 3 * cap + 17
    for i in range(total):
        ring.append(_row(i))
    assert len(ring) == cap
    assert ring.dropped == total - cap
    assert _timestamps(ring) == [float(i) for i in range(total - cap, total)]


def test_snapshot_values_and_varlist_widening() -> None:
    ring = ColumnRing(SPECS, capacity=4)
    ring.append(_row(1, n=1))
    ring.append(_row(2, n=5))  # wider than anything before: the column widens
    ring.append(_row(3, n=2))
    snap = ring.begin_export()
    assert snap.rows == 3
    assert snap.columns["name"].tolist() == ["r1", "r2", "r3"]  # type: ignore[union-attr]
    np.testing.assert_array_equal(snap.columns["vec"], [[1, -1], [2, -2], [3, -3]])
    values, lengths = snap.columns["lst"]  # type: ignore[misc]
    assert lengths.tolist() == [1, 5, 2]
    assert values[0, :1].tolist() == [1.0]
    assert values[1, :5].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert values[2, :2].tolist() == [3.0, 4.0]
    assert (snap.time_min, snap.time_max) == (1.0, 3.0)


def test_commit_removes_only_exported_rows() -> None:
    ring = ColumnRing(SPECS, capacity=10)
    for i in range(4):
        ring.append(_row(i))
    snap = ring.begin_export()
    ring.append(_row(100))  # arrives while the export is being written
    ring.commit_export()
    assert snap.rows == 4
    assert _timestamps(ring) == [100.0]


def test_abort_keeps_every_row() -> None:
    ring = ColumnRing(SPECS, capacity=10)
    for i in range(4):
        ring.append(_row(i))
    ring.begin_export()
    ring.abort_export()
    assert _timestamps(ring) == [0.0, 1.0, 2.0, 3.0]
    assert ring.dropped == 0


def test_eviction_during_export_counts_as_drop_only_if_export_fails() -> None:
    for outcome in ("commit", "abort"):
        ring = ColumnRing(SPECS, capacity=3)
        for i in range(3):
            ring.append(_row(i))
        snap = ring.begin_export()
        ring.append(_row(10))  # overwrites row 0, which is in the snapshot
        ring.append(_row(11))  # overwrites row 1
        if outcome == "commit":
            ring.commit_export()
            assert ring.dropped == 0  # rows 0 and 1 reached the export
            assert _timestamps(ring) == [10.0, 11.0]
        else:
            ring.abort_export()
            assert ring.dropped == 2
            assert _timestamps(ring) == [2.0, 10.0, 11.0]
        assert snap.rows == 3


def test_snapshot_reports_drops_since_previous_export() -> None:
    ring = ColumnRing(SPECS, capacity=2)
    for i in range(5):
        ring.append(_row(i))
    first = ring.begin_export()
    ring.commit_export()
    assert first.dropped == 3
    ring.append(_row(5))
    second = ring.begin_export()
    ring.commit_export()
    assert second.dropped == 0
    assert ring.dropped == 3  # cumulative


def test_double_begin_and_unmatched_commit_raise() -> None:
    ring = ColumnRing(SPECS, capacity=2)
    ring.begin_export()
    with pytest.raises(RuntimeError, match="in progress"):
        ring.begin_export()
    ring.commit_export()
    with pytest.raises(RuntimeError):
        ring.commit_export()
    with pytest.raises(RuntimeError):
        ring.abort_export()


def test_empty_snapshot() -> None:
    ring = ColumnRing(SPECS, capacity=2)
    snap = ring.begin_export()
    assert snap.rows == 0
    assert snap.time_min is None and snap.time_max is None
    assert snap.columns["vec"].shape == (0, 2)  # type: ignore[union-attr]
    ring.commit_export()
    assert len(ring) == 0
