"""oxidize_ml._atomic: all-or-nothing file writes.

(Lives under tests/telemetry because telemetry export is its main user here;
the module itself is shared by the whole package.)
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oxidize_ml._atomic import atomic_write_bytes, atomic_write_text, atomic_write_with


def test_bytes_and_text_create_and_replace(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    assert atomic_write_bytes(target, b"one") == target
    assert target.read_bytes() == b"one"
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    atomic_write_text(tmp_path / "f.txt", "h\u00e9llo")
    assert (tmp_path / "f.txt").read_bytes() == "h\u00e9llo".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "f.txt"]


def test_default_mode_is_private_and_mode_is_settable(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a", b"x")
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    atomic_write_bytes(tmp_path / "b", b"x", mode=0o644)
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failing_writer_leaves_target_and_no_temp(tmp_path: Path, exc: BaseException) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old model")
    seen: list[Path] = []

    def writer(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"half a new mod")
        raise exc

    with pytest.raises(type(exc)):
        atomic_write_with(target, writer)
    assert target.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    assert not seen[0].exists()


def test_failing_writer_creates_nothing_when_target_missing(tmp_path: Path) -> None:
    def writer(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(tmp_path / "new.parquet", writer)
    assert list(tmp_path.iterdir()) == []


def test_temp_file_is_in_target_dir_and_keeps_suffix(tmp_path: Path) -> None:
    seen: list[Path] = []

    def writer(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_text("ok")

    atomic_write_with(tmp_path / "weights.safetensors", writer)
    assert seen[0].parent == tmp_path
    assert seen[0].name.startswith(".tmp-") and seen[0].name.endswith("-weights.safetensors")
    assert (tmp_path / "weights.safetensors").read_text() == "ok"


def test_writer_may_recreate_the_temp_path(tmp_path: Path) -> None:
    table = pa.table({"x": [1, 2, 3]})
    atomic_write_with(tmp_path / "t.parquet", lambda p: pq.write_table(table, p))
    assert pq.read_table(tmp_path / "t.parquet").equals(table)


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "nope" / "f", b"x")
