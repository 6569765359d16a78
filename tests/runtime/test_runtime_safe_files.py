"""`runtime.safe_files`: trusted directories, regular files only, bounded reads (issue 8, items 5-6)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from oxidize_ml.runtime.safe_files import (
    FileTooLargeError,
    UnsafeFileError,
    check_dir,
    check_subdir,
    read_file,
    read_path,
    read_regular,
)
from oxidize_ml.runtime.weights import ModelLoadError, read_bounded

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _private_dir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o700)
    return p


def run_bounded(fn, fifo: Path | None = None, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """Run ``fn`` in a thread; fail (and unblock it via ``fifo``) if it does not return in time."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        if fifo is not None:  # give the blocked reader a writer so the thread can end
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        pytest.fail(f"call did not return within {timeout} s (blocked on a special file?)")
    return box


def test_reads_regular_file_and_bounds_size(tmp_path: Path) -> None:
    d = _private_dir(tmp_path / "d")
    (d / "f").write_bytes(b"x" * 100)
    assert read_file(d, "f", 100) == b"x" * 100
    assert read_path(d / "f", 1000) == b"x" * 100
    with pytest.raises(FileTooLargeError, match="larger than 99"):
        read_file(d, "f", 99)
    with pytest.raises(FileNotFoundError):
        read_file(d, "missing", 10)
    for bad in ("", ".", "..", "a/b", "x\x00"):
        with pytest.raises(UnsafeFileError, match="bare file name"):
            read_file(d, bad, 10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    d = _private_dir(tmp_path / "d")
    fifo = d / "model.safetensors"
    os.mkfifo(fifo, 0o600)
    box = run_bounded(lambda: read_file(d, fifo.name, 1000), fifo)
    assert isinstance(box.get("error"), UnsafeFileError)
    assert "FIFO" in str(box["error"])
    # read_regular on its own (no lstat shortcut possible for a caller) also refuses it.
    box = run_bounded(lambda: read_regular(fifo, 1000), fifo)
    assert isinstance(box.get("error"), UnsafeFileError)
    # The weight reader used by LstmLossModel.load / MlpModel.load maps it to ModelLoadError.
    box = run_bounded(lambda: read_bounded(fifo), fifo)
    assert isinstance(box.get("error"), ModelLoadError)


def test_device_and_directory_are_refused(tmp_path: Path) -> None:
    if os.path.exists("/dev/zero"):
        with pytest.raises(UnsafeFileError, match="device"):
            read_regular("/dev/zero", 10)
    d = _private_dir(tmp_path / "d")
    (d / "sub").mkdir()
    with pytest.raises(UnsafeFileError, match="directory"):
        read_file(d, "sub", 10)
    with pytest.raises(UnsafeFileError, match="not a directory"):
        check_dir(_touch(d / "plain"))


def _touch(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def test_world_writable_directory_and_file_are_refused(tmp_path: Path) -> None:
    d = _private_dir(tmp_path / "d")
    (d / "f").write_bytes(b"ok")
    os.chmod(d, 0o777)
    with pytest.raises(UnsafeFileError, match="world-writable directory"):
        check_dir(d)
    with pytest.raises(UnsafeFileError, match="world-writable"):
        read_file(d, "f", 10)
    os.chmod(d, 0o755)
    os.chmod(d / "f", 0o666)
    with pytest.raises(UnsafeFileError, match="world-writable file"):
        read_file(d, "f", 10)
    os.chmod(d / "f", 0o644)
    assert read_file(d, "f", 10) == b"ok"


def test_parent_world_writable_without_sticky_is_refused(tmp_path: Path) -> None:
    parent = _private_dir(tmp_path / "p")
    d = _private_dir(parent / "models")
    (d / "f").write_bytes(b"ok")
    os.chmod(parent, 0o777)  # anyone could rename models/ away and plant another
    with pytest.raises(UnsafeFileError, match="sticky"):
        check_dir(d)
    os.chmod(parent, 0o1777)  # like /tmp: entries of others cannot be renamed
    assert check_dir(d) == Path(os.path.realpath(d))
    os.chmod(parent, 0o700)


def test_symlink_targets_are_checked(tmp_path: Path) -> None:
    root = _private_dir(tmp_path / "root")
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "f").write_bytes(b"planted")
    os.chmod(evil, 0o777)
    (root / "link").symlink_to(evil, target_is_directory=True)
    with pytest.raises(UnsafeFileError, match="world-writable"):
        check_subdir(check_dir(root), "link")
    with pytest.raises(UnsafeFileError, match="world-writable"):
        check_dir(root / "link")
    # A file symlinked into a world-writable directory (HF-cache style link) is refused.
    (root / "f").symlink_to(evil / "f")
    with pytest.raises(UnsafeFileError, match="world-writable"):
        read_file(root, "f", 100)
    os.chmod(evil, 0o755)
    assert read_file(root, "f", 100) == b"planted"
    assert check_subdir(check_dir(root), "link") == Path(os.path.realpath(evil))
    with pytest.raises(UnsafeFileError, match="bare directory name"):
        check_subdir(check_dir(root), "..")


@pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root")
def test_other_users_directory_and_file_are_refused(tmp_path: Path) -> None:
    d = _private_dir(tmp_path / "d")
    (d / "f").write_bytes(b"ok")
    os.chown(d / "f", 12345, 12345)
    with pytest.raises(UnsafeFileError, match="owned by uid 12345"):
        read_file(d, "f", 10)
    os.chown(d / "f", 0, 0)
    os.chown(d, 12345, 12345)
    with pytest.raises(UnsafeFileError, match="owned by uid 12345"):
        check_dir(d)
    os.chown(d, 0, 0)


def test_max_bytes_must_be_non_negative(tmp_path: Path) -> None:
    d = _private_dir(tmp_path / "d")
    (d / "f").write_bytes(b"")
    assert read_regular(d / "f", 0) == b""
    with pytest.raises(ValueError, match="max_bytes"):
        read_regular(d / "f", -1)
