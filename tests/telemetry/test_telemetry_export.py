"""Export to Parquet + manifest, reading back, merging, failure handling."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oxidize_ml.features import FEATURE_NAMES, NetworkFeatures, schema_description
from oxidize_ml.telemetry import (
    TELEMETRY_SCHEMA_VERSION,
    TelemetryCollector,
    TelemetryConfig,
    find_exports,
    read_export,
    read_exports,
    read_manifest,
    summarize_export,
)
from oxidize_ml.telemetry import export as export_mod
from oxidize_ml.types import DrlAction, PathId, PathMetrics, TrafficContext

BASE_S = 1_700_000_000.0


def feats(loss_rate: float) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000,
        rtt_var_us=4_000,
        bandwidth_bps=2e8,
        loss_rate=loss_rate,
        loss_trend=-0.01,
        inflight=80,
        cwnd=120_000,
        buffer_occupancy=0.5,
    )


def filled(source: str = "local", t0: float = BASE_S) -> TelemetryCollector:
    """A collector with known rows in every table."""
    c = TelemetryCollector(TelemetryConfig(source=source))
    for k in range(20):  # 20 observations, 10 ms apart -> samples 0..8 labelled
        c.record_observation(feats(0.05 if k % 4 == 0 else 0.0), now=t0 + k * 0.01)
    c.record_transition([0.5] * 8, DrlAction.Increase10, 1.25, [0.25] * 12, now=t0 + 1.0)
    c.record_transition(np.arange(3), DrlAction.SlowStart, -2.0, [1.0], now=t0 + 2.0, done=True)
    c.record_compression(
        [0.1, 0.2, 0.3], "skip", size=1400, compressed_size=1400, encode_ns=0, now=t0 + 3.0
    )
    c.record_compression(
        [0.4], "aggressive", size=1400, compressed_size=300, encode_ns=25_000, now=t0 + 4.0
    )
    c.record_path(
        TrafficContext.Streaming,
        PathMetrics(
            PathId.Tertiary, rtt_us=80_000, bandwidth_bps=5e7, loss_rate=0.01, availability=0.95
        ),
        0.6,
        now=t0 + 5.0,
    )
    return c


def test_round_trip_types_and_values(tmp_path: Path) -> None:
    c = filled(source="srv-a")
    manifest = c.export(tmp_path, source_version="9.9.9")
    # Read the files back with plain pyarrow, not through our reader.
    loss = pq.read_table(manifest.path / "loss.parquet")
    assert loss.column_names == [
        "timestamp",
        "source",
        *[f"f_{n}" for n in FEATURE_NAMES],
        "loss_rate",
        "future_loss",
        "future_loss_any",
    ]
    assert loss.schema.field("timestamp").type == pa.float64()
    assert loss.schema.field("f_rtt").type == pa.float32()
    assert loss.schema.field("future_loss_any").type == pa.bool_()
    assert loss.num_rows == 9
    assert loss.column("timestamp").to_pylist() == [BASE_S + k * 0.01 for k in range(9)]
    # Sample 0: window obs 6..10 -> only obs 8 has loss 0.05 -> 0.01.
    assert loss.column("future_loss").to_pylist()[0] == pytest.approx(0.01, abs=1e-12)
    vec = feats(0.05).to_vector()
    row0 = np.array([loss.column(f"f_{n}")[0].as_py() for n in FEATURE_NAMES], np.float32)
    np.testing.assert_array_equal(row0, vec)
    assert set(loss.column("source").to_pylist()) == {"srv-a"}

    cc = pq.read_table(manifest.path / "congestion.parquet")
    assert cc.schema.field("state").type == pa.list_(pa.float32())
    assert cc.schema.field("action").type == pa.int8()
    assert cc.schema.field("reward").type == pa.float32()
    assert cc.column("state").to_pylist() == [[0.5] * 8, [0.0, 1.0, 2.0]]
    assert cc.column("next_state").to_pylist() == [[0.25] * 12, [1.0]]
    assert cc.column("action").to_pylist() == [1, 5]
    assert cc.column("reward").to_pylist() == [1.25, -2.0]
    assert cc.column("done").to_pylist() == [False, True]

    comp = pq.read_table(manifest.path / "compression.parquet")
    assert comp.schema.field("size").type == pa.int32()
    assert comp.schema.field("encode_ns").type == pa.int64()
    assert comp.column("decision").to_pylist() == ["skip", "aggressive"]
    got = comp.column("features").to_pylist()
    assert got[0] == pytest.approx([0.1, 0.2, 0.3]) and got[1] == pytest.approx([0.4])
    assert comp.column("compressed_size").to_pylist() == [1400, 300]

    path = pq.read_table(manifest.path / "path.parquet")
    assert path.to_pylist() == [
        {
            "timestamp": BASE_S + 5.0,
            "source": "srv-a",
            "context": "Streaming",
            "path": "Tertiary",
            "reward": pytest.approx(0.6),
            "rtt_us": 80_000.0,
            "loss_rate": 0.01,
            "bandwidth_bps": 5e7,
            "availability": 0.95,
        }
    ]

    # Our reader returns the same data with the same explicit schema.
    tables = read_export(manifest.path)
    assert tables["congestion"].equals(cc.replace_schema_metadata(None))
    assert tables["loss"].num_rows == 9


def test_manifest_contents(tmp_path: Path) -> None:
    c = filled(source="srv-a")
    m = c.export(tmp_path, source_version="1.2.3", created_at=BASE_S + 100.0)
    data = json.loads((m.path / "manifest.json").read_text())
    assert data["schema_version"] == TELEMETRY_SCHEMA_VERSION == 1
    assert data["feature_schema"] == schema_description()
    assert data["source"] == "srv-a" and data["source_version"] == "1.2.3"
    assert data["created_at"] == BASE_S + 100.0
    # 1_700_000_000 is 2023-11-14 22:13:20 UTC; +100 s.
    assert data["created_at_utc"] == "2023-11-14T22:15:00+00:00"
    assert data["export_id"] == m.path.name and m.path.name.startswith("20231114T221500.000000Z-")
    assert data["loss_horizon_s"] == [0.05, 0.10]
    assert data["loss_labels"] == {
        "unlabeled_dropped": 0,
        "pending_overflow": 0,
        "clock_resets": 0,
        "pending": 11,
    }
    t = data["tables"]
    assert {k: v["rows"] for k, v in t.items()} == {
        "loss": 9,
        "congestion": 2,
        "compression": 2,
        "path": 1,
    }
    assert t["loss"]["time_min"] == BASE_S and t["loss"]["time_max"] == BASE_S + 0.08
    assert (t["congestion"]["time_min"], t["congestion"]["time_max"]) == (BASE_S + 1, BASE_S + 2)
    for name, entry in t.items():
        assert entry["file"] == f"{name}.parquet"
        assert entry["sha256"] == hashlib.sha256((m.path / entry["file"]).read_bytes()).hexdigest()
        assert entry["dropped"] == 0
    # The dataclass and the file agree.
    assert read_manifest(m.path).to_json() == data
    assert m.total_rows == 14


def test_manifest_reports_drops_since_previous_export(tmp_path: Path) -> None:
    c = TelemetryCollector(TelemetryConfig(capacity=2))
    for i in range(5):
        c.record_transition([1.0], 0, 0.0, [1.0], now=BASE_S + i)
    first = c.export(tmp_path, source_version="x")
    assert first.tables["congestion"].rows == 2 and first.tables["congestion"].dropped == 3
    c.record_transition([1.0], 0, 0.0, [1.0], now=BASE_S + 9)
    second = c.export(tmp_path, source_version="x")
    assert second.tables["congestion"].rows == 1 and second.tables["congestion"].dropped == 0
    assert c.stats()["tables"]["congestion"]["dropped"] == 3  # cumulative in stats


def test_successful_export_drains_and_next_export_is_separate(tmp_path: Path) -> None:
    c = filled()
    m1 = c.export(tmp_path, source_version="x")
    stats = c.stats()
    assert all(t["rows"] == 0 for t in stats["tables"].values())
    assert stats["tables"]["loss"]["pending"] == 11  # unlabelled samples wait for the next export
    assert stats["exports"] == 1
    c.record_path(TrafficContext.Web, PathMetrics(PathId.Primary, rtt_us=1.0), 0.1, now=BASE_S + 50)
    m2 = c.export(tmp_path, source_version="x")
    assert m1.path != m2.path and m1.path.exists()
    assert [p.name for p in sorted(m2.path.iterdir())] == ["manifest.json", "path.parquet"]
    assert find_exports(tmp_path) == sorted([m1.path, m2.path])


def test_empty_collector_writes_manifest_with_zero_rows(tmp_path: Path) -> None:
    m = TelemetryCollector().export(tmp_path, source_version="x")
    assert [p.name for p in m.path.iterdir()] == ["manifest.json"]
    data = json.loads((m.path / "manifest.json").read_text())
    for entry in data["tables"].values():
        assert entry == {
            "rows": 0,
            "file": None,
            "sha256": None,
            "time_min": None,
            "time_max": None,
            "dropped": 0,
        }
    tables = read_export(m.path)
    assert all(t.num_rows == 0 for t in tables.values())
    assert tables["congestion"].schema.field("state").type == pa.list_(pa.float32())


def _all_rows(c: TelemetryCollector) -> dict[str, int]:
    return {k: v["rows"] for k, v in c.stats()["tables"].items()}


def test_failed_parquet_write_keeps_data_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = filled()
    before = _all_rows(c)
    real_write = pq.write_table
    calls = []

    def failing_write(table, where, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(where)
        if len(calls) == 3:  # the first two tables succeed, the third fails half-way
            Path(where).write_bytes(b"PAR1 partial")
            raise OSError("disk full")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing_write)
    with pytest.raises(OSError, match="disk full"):
        c.export(tmp_path, source_version="x")
    assert _all_rows(c) == before
    assert list(tmp_path.iterdir()) == []  # no export, no staging directory, no temp file
    assert c.stats()["exporting"] is False and c.stats()["exports"] == 0

    monkeypatch.setattr(pq, "write_table", real_write)
    m = c.export(tmp_path, source_version="x")
    assert {k: v.rows for k, v in m.tables.items()} == before
    assert all(v == 0 for v in _all_rows(c).values())


def test_failed_manifest_write_keeps_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = filled()
    before = _all_rows(c)

    def failing_text(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("no space for manifest")

    monkeypatch.setattr(export_mod, "atomic_write_text", failing_text)
    with pytest.raises(OSError, match="manifest"):
        c.export(tmp_path, source_version="x")
    assert _all_rows(c) == before
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_world_writable_root(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    c = filled()
    with pytest.raises(ValueError, match="world-writable"):
        c.export(root, source_version="x")
    assert c.stats()["tables"]["path"]["rows"] == 1


def test_export_root_created_private(tmp_path: Path) -> None:
    m = filled().export(tmp_path / "a" / "b", source_version="x")
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
    assert m.path.stat().st_mode & 0o777 == 0o700


def test_read_exports_merges_sources_sorted(tmp_path: Path) -> None:
    # Two servers with interleaved clocks, each exporting into its own folder.
    a = filled(source="srv-a", t0=BASE_S)
    b = filled(source="srv-b", t0=BASE_S + 0.005)
    ma = a.export(tmp_path / "srv-a", source_version="x")
    mb = b.export(tmp_path / "srv-b", source_version="x")
    merged = read_exports(tmp_path)
    loss = merged["loss"]
    assert loss.num_rows == 18
    ts = loss.column("timestamp").to_numpy()
    assert np.all(np.diff(ts) > 0)
    assert loss.column("source").to_pylist()[:4] == ["srv-a", "srv-b", "srv-a", "srv-b"]
    assert merged["congestion"].num_rows == 4
    # A copy of an export (same export_id) is read only once; a staging directory is ignored.
    copy = tmp_path / "mirror" / ma.path.name
    copy.mkdir(parents=True)
    for f in ma.path.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (tmp_path / ".partial-x").mkdir()
    (tmp_path / ".partial-x" / "manifest.json").write_text("{}")
    assert read_exports(tmp_path)["loss"].num_rows == 18
    assert mb.path in find_exports(tmp_path)


def test_read_exports_of_empty_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no telemetry export"):
        read_exports(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_exports(tmp_path / "missing")


def _rewrite_manifest(path: Path, **changes: object) -> None:
    data = json.loads((path / "manifest.json").read_text())
    data.update(changes)
    (path / "manifest.json").write_text(json.dumps(data))


def test_schema_version_mismatch_raises(tmp_path: Path) -> None:
    m = filled().export(tmp_path, source_version="x")
    _rewrite_manifest(m.path, schema_version=2)
    with pytest.raises(ValueError, match="schema_version 2 is not supported"):
        read_export(m.path)


def test_feature_schema_mismatch_raises(tmp_path: Path) -> None:
    m = filled().export(tmp_path, source_version="x")
    _rewrite_manifest(m.path, feature_schema={"version": 99, "features": []})
    with pytest.raises(ValueError, match="feature schema version 99"):
        read_export(m.path)


def test_corrupt_file_detected(tmp_path: Path) -> None:
    m = filled().export(tmp_path, source_version="x")
    target = m.path / "path.parquet"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="SHA-256"):
        read_export(m.path)


def test_manifest_cannot_point_outside_export(tmp_path: Path) -> None:
    m = filled().export(tmp_path, source_version="x")
    data = json.loads((m.path / "manifest.json").read_text())
    data["tables"]["path"]["file"] = "../../etc/passwd"
    (m.path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not allowed"):
        read_export(m.path)


def test_wrong_column_type_detected(tmp_path: Path) -> None:
    m = filled().export(tmp_path, source_version="x")
    # Replace the path table with one whose reward is a string, and fix up the checksum.
    bad = pq.read_table(m.path / "path.parquet")
    bad = bad.set_column(4, "reward", pa.array(["high"]))
    pq.write_table(bad, m.path / "path.parquet")
    data = json.loads((m.path / "manifest.json").read_text())
    data["tables"]["path"]["sha256"] = hashlib.sha256(
        (m.path / "path.parquet").read_bytes()
    ).hexdigest()
    (m.path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="types do not match"):
        read_export(m.path)


def test_summarize_export(tmp_path: Path) -> None:
    m = filled(source="srv-a").export(tmp_path / "a", source_version="1.0")
    filled(source="srv-b").export(tmp_path / "b", source_version="1.1")
    one = summarize_export(m.path)
    json.dumps(one)  # JSON-able
    assert one["exports"] == 1 and one["sources"] == ["srv-a"]
    assert one["tables"]["loss"]["rows"] == 9
    assert one["tables"]["loss"]["time_min"] == BASE_S
    # Labels of samples 0..8: a loss (every 4th obs) lies in every window of 5 -> all positive.
    assert one["loss"]["positive_rate"] == 1.0
    # Windows k+6..k+10 hold one loss observation, two for k = 2 and 6: 11 x 0.01 / 9.
    assert one["loss"]["mean_future_loss"] == pytest.approx(0.11 / 9)
    assert one["congestion"]["action_histogram"] == {
        "Increase5": 0,
        "Increase10": 1,
        "Maintain": 0,
        "Decrease5": 0,
        "Decrease10": 0,
        "SlowStart": 1,
    }
    assert one["congestion"]["done"] == 1
    assert one["compression"]["decision_histogram"] == {
        "skip": 1,
        "light": 0,
        "aggressive": 1,
        "rohc_only": 0,
    }
    assert one["compression"]["bytes_out"] == 1700
    assert one["path"]["context_histogram"]["Streaming"] == 1
    both = summarize_export(tmp_path)
    assert both["exports"] == 2 and both["sources"] == ["srv-a", "srv-b"]
    assert both["source_versions"] == ["1.0", "1.1"]
    assert both["tables"]["congestion"]["rows"] == 4


def test_summarize_empty_export(tmp_path: Path) -> None:
    m = TelemetryCollector().export(tmp_path, source_version="x")
    s = summarize_export(m.path)
    assert s["loss"]["positive_rate"] is None
    assert s["tables"]["loss"] == {"rows": 0, "time_min": None, "time_max": None, "dropped": 0}


def test_export_while_recording_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Writers keep recording while exports run; every row ends up exactly once."""
    n_per_writer = 3_000
    c = TelemetryCollector(TelemetryConfig(capacity=100_000))
    stop = threading.Event()
    exported: list[Path] = []
    errors: list[BaseException] = []

    def writer(offset: float) -> None:
        for i in range(n_per_writer):
            c.record_transition([float(i)], 0, 0.0, [0.0], now=BASE_S + offset + i)

    def exporter() -> None:
        try:
            while not stop.is_set():
                exported.append(c.export(tmp_path, source_version="x").path)
        except Exception as e:  # noqa: BLE001 - surfaced by the assert below
            errors.append(e)

    writers = [threading.Thread(target=writer, args=(k * 0.25,)) for k in range(2)]
    ex = threading.Thread(target=exporter)
    ex.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    ex.join()
    assert not errors
    exported.append(c.export(tmp_path, source_version="x").path)
    assert len(exported) >= 2, len(exported)
    ts = read_exports(tmp_path)["congestion"].column("timestamp").to_pylist()
    expected = sorted(BASE_S + k * 0.25 + i for k in range(2) for i in range(n_per_writer))
    assert ts == expected
    assert c.stats()["tables"]["congestion"]["dropped"] == 0


def test_concurrent_export_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = filled()
    entered, release = threading.Event(), threading.Event()
    real_write = pq.write_table

    def slow_write(table, where, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(timeout=10)
        real_write(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", slow_write)
    t = threading.Thread(target=c.export, args=(tmp_path,), kwargs={"source_version": "x"})
    t.start()
    assert entered.wait(timeout=10)
    with pytest.raises(RuntimeError, match="already in progress"):
        c.export(tmp_path, source_version="x")
    release.set()
    t.join()
    assert len(find_exports(tmp_path)) == 1


def test_source_version_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source_version"):
        filled().export(tmp_path, source_version=" ")
