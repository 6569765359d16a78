"""Column definitions of the four telemetry tables: in memory and in Parquet.

Each table is a tuple of `ColumnSpec`. The same specs drive the in-memory
ring buffers (numpy dtypes) and the Parquet schema (pyarrow types), so the two
cannot disagree. Column names are part of the on-disk format: renaming or
retyping one is a new `TELEMETRY_SCHEMA_VERSION`.

pyarrow is imported only inside `arrow_schema`, so recording telemetry does
not pay pyarrow's import time (about 0.3 s here).

Version history
---------------
1: tables ``loss``, ``congestion``, ``compression``, ``path`` as documented in
   `oxidize_ml.telemetry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from oxidize_ml.features import FEATURE_NAMES

if TYPE_CHECKING:
    import pyarrow as pa

TELEMETRY_SCHEMA_VERSION = 1
"""Version of the table layout below and of ``manifest.json``."""

LOSS, CONGESTION, COMPRESSION, PATH = "loss", "congestion", "compression", "path"
TABLE_NAMES: tuple[str, ...] = (LOSS, CONGESTION, COMPRESSION, PATH)

LOSS_FEATURE_COLUMNS: tuple[str, ...] = tuple(f"f_{name}" for name in FEATURE_NAMES)
"""``f_rtt, f_rtt_var, ...``: the normalised model input, `FEATURE_NAMES` order."""

ColumnKind = Literal["scalar", "string", "vector", "varlist"]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One stored column.

    ``scalar``: one number per row. ``string``: one ``str`` per row.
    ``vector``: ``width`` numbers per row, written to Parquet as the scalar
    columns ``expand`` (kept together in memory so a row is one array copy).
    ``varlist``: a float32 list of any length up to the collector's
    ``max_vector_len``, written as Parquet ``list<float32>``.
    """

    name: str
    kind: ColumnKind
    dtype: str = "float64"
    """numpy dtype name of the values (ignored for ``string``)"""
    width: int = 0
    """values per row for ``vector``"""
    expand: tuple[str, ...] = ()
    """Parquet column names of a ``vector``'s components"""

    def __post_init__(self) -> None:
        if self.kind == "vector" and len(self.expand) != self.width:
            raise ValueError(f"vector column {self.name!r} needs {self.width} expand names")

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.expand if self.kind == "vector" else (self.name,)


_TS = ColumnSpec("timestamp", "scalar", "float64")
_SOURCE = ColumnSpec("source", "string")

TABLE_COLUMNS: dict[str, tuple[ColumnSpec, ...]] = {
    LOSS: (
        _TS,
        _SOURCE,
        ColumnSpec("features", "vector", "float32", len(FEATURE_NAMES), LOSS_FEATURE_COLUMNS),
        ColumnSpec("loss_rate", "scalar", "float64"),
        ColumnSpec("future_loss", "scalar", "float64"),
        ColumnSpec("future_loss_any", "scalar", "bool"),
    ),
    CONGESTION: (
        _TS,
        _SOURCE,
        ColumnSpec("state", "varlist", "float32"),
        ColumnSpec("action", "scalar", "int8"),
        ColumnSpec("reward", "scalar", "float32"),
        ColumnSpec("next_state", "varlist", "float32"),
        ColumnSpec("done", "scalar", "bool"),
    ),
    COMPRESSION: (
        _TS,
        _SOURCE,
        ColumnSpec("features", "varlist", "float32"),
        ColumnSpec("decision", "string"),
        ColumnSpec("size", "scalar", "int32"),
        ColumnSpec("compressed_size", "scalar", "int32"),
        ColumnSpec("encode_ns", "scalar", "int64"),
    ),
    PATH: (
        _TS,
        _SOURCE,
        ColumnSpec("context", "string"),
        ColumnSpec("path", "string"),
        ColumnSpec("reward", "scalar", "float32"),
        ColumnSpec("rtt_us", "scalar", "float64"),
        ColumnSpec("loss_rate", "scalar", "float64"),
        ColumnSpec("bandwidth_bps", "scalar", "float64"),
        ColumnSpec("availability", "scalar", "float64"),
    ),
}


def column_names(table: str) -> tuple[str, ...]:
    """Parquet column names of ``table``, in file order."""
    return tuple(n for spec in _columns(table) for n in spec.output_names)


def numpy_dtype(spec: ColumnSpec) -> np.dtype:
    """In-memory dtype of one column (``object`` for strings)."""
    return np.dtype(object) if spec.kind == "string" else np.dtype(spec.dtype)


def arrow_schema(table: str) -> pa.Schema:
    """The explicit Parquet/Arrow schema of ``table`` (no metadata)."""
    import pyarrow as pa

    fields = []
    for spec in _columns(table):
        if spec.kind == "string":
            fields.append(pa.field(spec.name, pa.string(), nullable=False))
        elif spec.kind == "varlist":
            fields.append(pa.field(spec.name, pa.list_(pa.float32()), nullable=False))
        else:
            typ = pa.from_numpy_dtype(np.dtype(spec.dtype))
            fields.extend(pa.field(n, typ, nullable=False) for n in spec.output_names)
    return pa.schema(fields)


def _columns(table: str) -> tuple[ColumnSpec, ...]:
    try:
        return TABLE_COLUMNS[table]
    except KeyError:
        raise ValueError(
            f"unknown telemetry table {table!r}; choose from {list(TABLE_NAMES)}"
        ) from None
