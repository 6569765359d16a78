"""Telemetry exports on disk: writing, validating, reading, merging, summarising.

Layout
------
Each export is its own directory under an export root::

    <root>/20260509T073525.123456Z-1a2b3c4d/
        manifest.json
        loss.parquet          # one file per non-empty table
        congestion.parquet
        ...

The directory name is the UTC creation time plus a random suffix, so exports
from one or many servers never overwrite each other and sort by time. Files
are written into a hidden staging directory ``.partial-<name>`` (each file
atomically, the manifest last), which is renamed to ``<name>`` only when
complete: an export directory either does not exist or is whole. Readers
ignore hidden directories and directories without ``manifest.json``.

``manifest.json`` holds the telemetry schema version, the feature schema
(`oxidize_ml.features.schema_description`), the producer's source id and
software version, per-table row counts, time ranges, dropped-row counts and
SHA-256 of each file (checked on read).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oxidize_ml._atomic import atomic_write_text, atomic_write_with, fsync_dir
from oxidize_ml.config import ensure_private_dir
from oxidize_ml.features import FEATURE_SCHEMA_VERSION, schema_description
from oxidize_ml.telemetry.ring import RingSnapshot
from oxidize_ml.telemetry.schema import (
    COMPRESSION,
    CONGESTION,
    LOSS,
    PATH,
    TABLE_COLUMNS,
    TABLE_NAMES,
    TELEMETRY_SCHEMA_VERSION,
    arrow_schema,
    column_names,
)
from oxidize_ml.types import DrlAction, MlCompressionDecision, TrafficContext

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST_NAME = "manifest.json"
STAGING_PREFIX = ".partial-"
PARQUET_COMPRESSION = "zstd"
"""Parquet codec: zstd is in every pyarrow wheel and shrinks these numeric tables well."""

_HASH_CHUNK_BYTES = 1 << 20
STALE_STAGING_S = 3600.0
"""A ``.partial-*`` staging directory untouched for this long is the leftover of
an export whose process died (SIGKILL, power loss: no ``except`` ran); the next
export removes it. Younger ones may belong to an export still running elsewhere."""

log = logging.getLogger("oxidize_ml")


@dataclass(frozen=True, slots=True)
class TableManifest:
    """One table's entry in ``manifest.json``."""

    rows: int
    file: str | None
    """file name inside the export directory; None when the table is empty"""
    sha256: str | None
    time_min: float | None
    time_max: float | None
    dropped: int
    """rows lost to the ring bound since the collector's previous export"""

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "file": self.file,
            "sha256": self.sha256,
            "time_min": self.time_min,
            "time_max": self.time_max,
            "dropped": self.dropped,
        }


@dataclass(frozen=True, slots=True)
class ExportManifest:
    """Contents of one export's ``manifest.json`` (plus where it was read from)."""

    path: Path
    """the export directory"""
    export_id: str
    """the directory's name; unique per export"""
    schema_version: int
    feature_schema: dict[str, Any]
    source: str
    source_version: str
    created_at: float
    """Unix seconds"""
    loss_horizon_s: tuple[float, float]
    tables: dict[str, TableManifest]
    loss_labels: dict[str, int]
    """``unlabeled_dropped``, ``pending_overflow``, ``clock_resets`` since the
    previous export, and ``pending`` (samples still awaiting labels, not exported)"""
    warnings: tuple[str, ...] = ()
    """what a reader should know before training on it (e.g. empty tables)"""

    @property
    def empty_tables(self) -> tuple[str, ...]:
        return tuple(name for name, t in self.tables.items() if t.rows == 0)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "export_id": self.export_id,
            "created_at": self.created_at,
            "created_at_utc": datetime.fromtimestamp(self.created_at, tz=UTC).isoformat(),
            "source": self.source,
            "source_version": self.source_version,
            "feature_schema": self.feature_schema,
            "loss_horizon_s": list(self.loss_horizon_s),
            "loss_labels": dict(self.loss_labels),
            "tables": {name: t.to_json() for name, t in self.tables.items()},
            "empty_tables": list(self.empty_tables),
            "warnings": list(self.warnings),
        }


# ---- writing ---------------------------------------------------------------
def snapshot_to_arrow(table: str, snap: RingSnapshot) -> pa.Table:
    """Build ``table``'s Arrow table from ring columns, with the explicit schema."""
    import pyarrow as pa

    schema = arrow_schema(table)
    arrays: list[pa.Array] = []
    for spec in TABLE_COLUMNS[table]:
        col = snap.columns[spec.name]
        if spec.kind == "varlist":
            if not isinstance(col, tuple):
                raise TypeError(f"{table}.{spec.name}: a varlist column must be (values, lengths)")
            values, lengths = col
            mask = np.arange(values.shape[1]) < lengths[:, None]
            offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            flat = pa.array(values[mask], type=pa.float32())
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), flat))
        elif isinstance(col, tuple):
            raise TypeError(f"{table}.{spec.name}: a {spec.kind} column must be one array")
        elif spec.kind == "vector":
            for j, name in enumerate(spec.expand):
                arrays.append(pa.array(col[:, j], type=schema.field(name).type))
        elif spec.kind == "string":
            arrays.append(pa.array(col.tolist(), type=pa.string()))
        else:
            arrays.append(pa.array(col, type=schema.field(spec.name).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression=PARQUET_COMPRESSION)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def _export_name(created_at: float) -> str:
    stamp = datetime.fromtimestamp(created_at, tz=UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    # Random suffix for uniqueness only (not a model's randomness: no seed).
    return f"{stamp}-{secrets.token_hex(4)}"


def write_export(
    root: str | os.PathLike[str],
    snapshots: Mapping[str, RingSnapshot],
    *,
    source: str,
    source_version: str,
    loss_horizon_s: tuple[float, float],
    loss_counters: Mapping[str, int],
    created_at: float | None = None,
) -> ExportManifest:
    """Write one export (Parquet per non-empty table + manifest) under ``root``.

    Used by `TelemetryCollector.export`; see the module docstring for the layout.
    On failure the staging directory is removed and the error propagates.
    """
    root_path = ensure_private_dir(root)
    remove_stale_staging(root_path)
    created = time.time() if created_at is None else float(created_at)
    name = _export_name(created)
    while (root_path / name).exists():  # practically never: 32 random bits
        name = _export_name(created)
    staging = root_path / f"{STAGING_PREFIX}{name}"
    staging.mkdir(mode=0o700)
    try:
        tables: dict[str, TableManifest] = {}
        for table in TABLE_NAMES:
            snap = snapshots[table]
            file_name = sha = None
            if snap.rows:
                arrow = snapshot_to_arrow(table, snap)
                file_name = f"{table}.parquet"
                target = staging / file_name
                atomic_write_with(target, functools.partial(_write_parquet, arrow))
                sha = _sha256(target)
            tables[table] = TableManifest(
                rows=snap.rows,
                file=file_name,
                sha256=sha,
                time_min=snap.time_min,
                time_max=snap.time_max,
                dropped=snap.dropped,
            )
        warnings = _export_warnings(tables, loss_counters)
        manifest = ExportManifest(
            path=root_path / name,
            export_id=name,
            schema_version=TELEMETRY_SCHEMA_VERSION,
            feature_schema=schema_description(),
            source=source,
            source_version=source_version,
            created_at=created,
            loss_horizon_s=(float(loss_horizon_s[0]), float(loss_horizon_s[1])),
            tables=tables,
            loss_labels={k: int(v) for k, v in loss_counters.items()},
            warnings=warnings,
        )
        atomic_write_text(
            staging / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n"
        )
        fsync_dir(staging)
        os.rename(staging, manifest.path)
        fsync_dir(root_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for warning in manifest.warnings:
        log.warning("telemetry export %s: %s", manifest.path, warning)
    return manifest


def _export_warnings(
    tables: Mapping[str, TableManifest], loss_counters: Mapping[str, int]
) -> tuple[str, ...]:
    """Plain-language warnings recorded in the manifest and logged."""
    empty = [name for name, t in tables.items() if t.rows == 0]
    if not empty:
        return ()
    if len(empty) == len(tables):
        pending = int(loss_counters.get("pending", 0))
        hint = (
            f" ({pending} loss samples still await their 50-100 ms label)"
            if pending
            else " (feed observations with observe() or fec_decision(features), decide with "
            "congestion_action(), compress with compress())"
        )
        return (f"export has zero rows in every table{hint}",)
    return (f"export has zero rows in table(s) {', '.join(empty)}",)


def remove_stale_staging(root: Path, *, max_age_s: float = STALE_STAGING_S) -> list[Path]:
    """Remove ``.partial-*`` staging directories older than ``max_age_s`` under ``root``.

    Returns the removed paths. Symlinks are never followed: a link named like a
    staging directory is unlinked, not traversed.
    """
    removed: list[Path] = []
    cutoff = time.time() - max_age_s
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(STAGING_PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if st.st_mtime > cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError as e:  # raced with another cleaner, or not ours to remove
            log.debug("could not remove stale staging %s: %s", entry.path, e)
    return removed


# ---- reading ---------------------------------------------------------------
def _as_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"manifest field {name} must be a non-negative int, got {value!r}")
    return value


def _as_time(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"manifest field {name} must be a finite number or null, got {value!r}")
    return float(value)


def read_manifest(path: str | os.PathLike[str]) -> ExportManifest:
    """Read and validate an export's ``manifest.json`` (``path``: the export directory or the file).

    Raises
    ------
    ValueError
        Unsupported telemetry schema version, a feature schema version other
        than `oxidize_ml.features.FEATURE_SCHEMA_VERSION` (its features would
        be normalised differently), or malformed contents.
    FileNotFoundError
        No manifest.
    """
    p = Path(path)
    manifest_path = p if p.name == MANIFEST_NAME and p.is_file() else p / MANIFEST_NAME
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{manifest_path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        # ValueError, not TypeError: the file's contents are bad, not the argument.
        raise ValueError(f"{manifest_path} must hold a JSON object")  # noqa: TRY004
    version = data.get("schema_version")
    if version != TELEMETRY_SCHEMA_VERSION:
        raise ValueError(
            f"{manifest_path}: telemetry schema_version {version!r} is not supported; "
            f"this reader reads version {TELEMETRY_SCHEMA_VERSION}"
        )
    feature_schema = data.get("feature_schema")
    fversion = feature_schema.get("version") if isinstance(feature_schema, dict) else None
    if not isinstance(feature_schema, dict) or fversion != FEATURE_SCHEMA_VERSION:
        raise ValueError(
            f"{manifest_path}: feature schema version {fversion!r} does not match this "
            f"package's FEATURE_SCHEMA_VERSION {FEATURE_SCHEMA_VERSION}"
        )
    raw_tables = data.get("tables")
    if not isinstance(raw_tables, dict) or set(raw_tables) != set(TABLE_NAMES):
        got = sorted(raw_tables) if isinstance(raw_tables, dict) else raw_tables
        raise ValueError(
            f"{manifest_path}: tables must be exactly {list(TABLE_NAMES)}, got {got!r}"
        )
    tables: dict[str, TableManifest] = {}
    for name in TABLE_NAMES:
        entry = raw_tables[name]
        if not isinstance(entry, dict):
            raise ValueError(f"{manifest_path}: tables.{name} must be an object")  # noqa: TRY004
        rows = _as_int(f"tables.{name}.rows", entry.get("rows"))
        file_name = entry.get("file")
        # Only the canonical name: a manifest must not point outside its directory.
        if (rows == 0 and file_name is not None) or (rows > 0 and file_name != f"{name}.parquet"):
            raise ValueError(f"{manifest_path}: tables.{name}.file {file_name!r} is not allowed")
        sha = entry.get("sha256")
        if rows > 0 and not (isinstance(sha, str) and len(sha) == 64):
            raise ValueError(f"{manifest_path}: tables.{name}.sha256 missing or malformed")
        tables[name] = TableManifest(
            rows=rows,
            file=file_name,
            sha256=sha if rows > 0 else None,
            time_min=_as_time(f"tables.{name}.time_min", entry.get("time_min")),
            time_max=_as_time(f"tables.{name}.time_max", entry.get("time_max")),
            dropped=_as_int(f"tables.{name}.dropped", entry.get("dropped", 0)),
        )
    try:
        horizon = tuple(float(x) for x in data["loss_horizon_s"])
        labels = {str(k): _as_int(f"loss_labels.{k}", v) for k, v in data["loss_labels"].items()}
        return ExportManifest(
            path=manifest_path.parent,
            export_id=str(data["export_id"]),
            schema_version=version,
            feature_schema=feature_schema,
            source=str(data["source"]),
            source_version=str(data["source_version"]),
            created_at=float(data["created_at"]),
            loss_horizon_s=(horizon[0], horizon[1]),
            tables=tables,
            loss_labels=labels,
            warnings=tuple(str(w) for w in data.get("warnings", ())),
        )
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"{manifest_path}: missing or malformed field: {e!r}") from None


def empty_table(table: str) -> pa.Table:
    """A zero-row table with ``table``'s schema."""
    return arrow_schema(table).empty_table()


def _read_table(manifest: ExportManifest, table: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    entry = manifest.tables[table]
    if entry.rows == 0:
        return empty_table(table)
    assert entry.file is not None
    file_path = manifest.path / entry.file
    digest = _sha256(file_path)
    if digest != entry.sha256:
        raise ValueError(
            f"{file_path}: SHA-256 {digest} does not match the manifest's {entry.sha256}"
        )
    data = pq.read_table(file_path)
    expected = arrow_schema(table)
    if tuple(data.column_names) != column_names(table):
        raise ValueError(
            f"{file_path}: columns {data.column_names} do not match schema {list(column_names(table))}"
        )
    try:
        data = data.replace_schema_metadata(None).cast(expected)
    except pa.ArrowException as e:
        raise ValueError(f"{file_path}: column types do not match the schema: {e}") from None
    if data.num_rows != entry.rows:
        raise ValueError(f"{file_path}: {data.num_rows} rows, manifest says {entry.rows}")
    return data


def read_export(path: str | os.PathLike[str]) -> dict[str, pa.Table]:
    """Read one export directory: table name -> Arrow table (all four, empty ones included).

    The manifest is validated (`read_manifest`), each file's SHA-256, column
    names, types and row count are checked; any mismatch is a ``ValueError``.
    """
    manifest = read_manifest(path)
    return {name: _read_table(manifest, name) for name in TABLE_NAMES}


def find_exports(root: str | os.PathLike[str]) -> list[Path]:
    """Every complete export directory at or under ``root``, sorted by path.

    Hidden directories (staging directories of unfinished exports) are skipped.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"telemetry root {root_path} is not a directory")
    if (root_path / MANIFEST_NAME).is_file():
        return [root_path]
    found = []
    for manifest_path in root_path.rglob(MANIFEST_NAME):
        rel = manifest_path.parent.relative_to(root_path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        found.append(manifest_path.parent)
    return sorted(found)


def read_exports(root: str | os.PathLike[str]) -> dict[str, pa.Table]:
    """Merge every export under ``root`` (e.g. one folder per server) into one table per kind.

    Each table is sorted by ``timestamp`` (stable: ties keep export order).
    An export found twice (same ``export_id``, e.g. downloaded twice) is read once.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a directory or holds no export.
    ValueError
        An export fails validation (`read_export`).
    """
    import pyarrow as pa

    dirs = find_exports(root)
    if not dirs:
        raise FileNotFoundError(f"no telemetry export ({MANIFEST_NAME}) under {root}")
    parts: dict[str, list[pa.Table]] = {name: [] for name in TABLE_NAMES}
    seen: set[str] = set()
    for d in dirs:
        manifest = read_manifest(d)
        if manifest.export_id in seen:
            continue
        seen.add(manifest.export_id)
        for name in TABLE_NAMES:
            parts[name].append(_read_table(manifest, name))
    merged = {}
    for name in TABLE_NAMES:
        table = pa.concat_tables(parts[name]).combine_chunks()
        merged[name] = table.sort_by([("timestamp", "ascending")]) if table.num_rows else table
    return merged


# ---- summary ---------------------------------------------------------------
def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def summarize_export(path: str | os.PathLike[str]) -> dict[str, Any]:
    """JSON-able summary of one export, or of every export under a root.

    Used by ``oxidize-ml telemetry inspect DIR``: rows, time range and
    dropped rows per table; the loss label's positive rate; the congestion
    action histogram; the compression decision histogram; path contexts.
    """
    dirs = find_exports(path)
    if not dirs:
        raise FileNotFoundError(f"no telemetry export ({MANIFEST_NAME}) under {path}")
    manifests: dict[str, ExportManifest] = {}
    for d in dirs:
        m = read_manifest(d)
        manifests.setdefault(m.export_id, m)
    tables = read_exports(path)

    per_table: dict[str, Any] = {}
    for name in TABLE_NAMES:
        t = tables[name]
        ts = t.column("timestamp").to_numpy()
        per_table[name] = {
            "rows": t.num_rows,
            "time_min": float(ts.min()) if ts.size else None,
            "time_max": float(ts.max()) if ts.size else None,
            "dropped": sum(m.tables[name].dropped for m in manifests.values()),
        }

    loss = tables[LOSS]
    any_loss = loss.column("future_loss_any").to_numpy(zero_copy_only=False)
    label_counters = {"unlabeled_dropped": 0, "pending_overflow": 0, "clock_resets": 0}
    for m in manifests.values():
        for k in label_counters:
            label_counters[k] += m.loss_labels.get(k, 0)

    cc = tables[CONGESTION]
    actions = cc.column("action").to_numpy()
    action_hist = {a.name: int((actions == a.value).sum()) for a in DrlAction}

    comp = tables[COMPRESSION]
    decisions = comp.column("decision").to_pylist()
    decision_hist = {d.value: decisions.count(d.value) for d in MlCompressionDecision}
    sizes = comp.column("size").to_numpy().astype(np.int64)
    compressed = comp.column("compressed_size").to_numpy().astype(np.int64)

    path_t = tables[PATH]
    contexts = path_t.column("context").to_pylist()
    paths = path_t.column("path").to_pylist()

    return {
        "location": str(path),
        "exports": len(manifests),
        "sources": sorted({m.source for m in manifests.values()}),
        "source_versions": sorted({m.source_version for m in manifests.values()}),
        "schema_version": TELEMETRY_SCHEMA_VERSION,
        "tables": per_table,
        "loss": {
            "positive_rate": _mean(any_loss.astype(np.float64)),
            "mean_future_loss": _mean(loss.column("future_loss").to_numpy()),
            **label_counters,
        },
        "congestion": {
            "action_histogram": action_hist,
            "mean_reward": _mean(cc.column("reward").to_numpy().astype(np.float64)),
            "done": int(cc.column("done").to_numpy(zero_copy_only=False).sum()),
        },
        "compression": {
            "decision_histogram": decision_hist,
            "bytes_in": int(sizes.sum()),
            "bytes_out": int(compressed.sum()),
        },
        "path": {
            "context_histogram": {c.name: contexts.count(c.name) for c in TrafficContext},
            "path_histogram": {p: paths.count(p) for p in sorted(set(paths))},
            "mean_reward": _mean(path_t.column("reward").to_numpy().astype(np.float64)),
        },
    }
