"""Reading model files without trusting the file system.

Every file a model is built from (manifest, safetensors, ONNX, the hub's
``CURRENT`` pointer and provenance) is read through this module, by the
engine's loader and by the hub alike, so one set of rules holds everywhere:

Trusted directories (`check_dir`, `check_subdir`)
    A directory models are read from, and every directory below it on the
    way to a file, must be neither world-writable nor owned by another user
    (root excepted): either would let another local user plant a model that
    then runs as our decision logic. Symlinks are resolved and the *target*
    is checked, so a link to a 0777 folder is refused like the folder itself.
    Directories *above* the model directory are only required not to let
    other users rename our entries (world-writable without the sticky bit is
    refused; ``/tmp`` with its sticky bit is fine), which is what keeps the
    checked directory itself from being swapped.
Regular files only (`read_regular`)
    A FIFO, device or socket in place of a model file would block ``open`` or
    ``read`` forever (or stream without end). The file is ``lstat``-ed
    first, opened with ``O_NONBLOCK | O_NOFOLLOW`` (opening a FIFO for
    reading then returns at once instead of waiting for a writer), and
    ``fstat``-ed after opening: it must still be the same regular file, not
    world-writable and ours or root's.
Bounded reads
    The size the file system reports is never trusted: at most
    ``max_bytes + 1`` bytes are read, and more means refusal. Callers pass a
    cap per file type (a manifest is a few KiB, a weight file ~100 KiB).

Violations raise `UnsafeFileError` (a ``ValueError``); a missing file raises
``FileNotFoundError`` as ``open`` would, so callers can tell "missing" from
"refused".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

_READ_CHUNK: Final = 1 << 20
# O_NOFOLLOW/O_CLOEXEC/O_NONBLOCK do not exist on every platform (Windows);
# there the lstat check before opening is what remains.
_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class UnsafeFileError(ValueError):
    """A path a model would be read from is untrusted, not a regular file, or too large."""


class FileTooLargeError(UnsafeFileError):
    """A file holds more than the cap for its type (the content is wrong, not the path)."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def _check_owner_and_mode(path: str, st: os.stat_result, what: str) -> None:
    """Refuse world-writable entries and entries owned by another user (root is trusted)."""
    if st.st_mode & stat.S_IWOTH:
        raise UnsafeFileError(
            f"refusing world-writable {what} {path} (mode {stat.S_IMODE(st.st_mode):o}): "
            "any local user could replace the models there (chmod o-w)"
        )
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid not in (getuid(), 0):
        raise UnsafeFileError(
            f"refusing {what} {path} owned by uid {st.st_uid} (we are uid {getuid()}): "
            "another user controls its contents"
        )


def _check_ancestors(real: str) -> None:
    """No directory above ``real`` may let other users rename entries (o+w without sticky)."""
    parent = os.path.dirname(real)
    while True:
        st = os.stat(parent)
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise UnsafeFileError(
                f"refusing {real}: its parent directory {parent} is world-writable without "
                "the sticky bit, so any local user could swap it"
            )
        up = os.path.dirname(parent)
        if up == parent:
            return
        parent = up


def check_dir(path: str | os.PathLike[str]) -> Path:
    """The real (symlink-free) path of a trusted directory models may be read from.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    UnsafeFileError
        Not a directory, world-writable or another user's (after following
        symlinks), or under a directory other users can rename entries in.
    """
    real = os.path.realpath(os.fspath(path))
    st = os.stat(real)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(f"{path} is {_kind(st.st_mode)}, not a directory")
    _check_owner_and_mode(real, st, "directory")
    _check_ancestors(real)
    return Path(real)


def check_subdir(root: Path, *parts: str) -> Path:
    """Walk from the trusted directory ``root`` (a `check_dir` result) down ``parts``.

    Each component is a bare name; each directory on the way is checked as
    in `check_dir`, symlink targets included. Returns the real path.
    """
    cur = os.fspath(root)
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise UnsafeFileError(f"{part!r} is not a bare directory name")
        lexical = os.path.join(cur, part)
        real = os.path.realpath(lexical)
        st = os.stat(real)
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeFileError(f"{lexical} is {_kind(st.st_mode)}, not a directory")
        _check_owner_and_mode(real, st, "directory")
        if real != lexical:  # a symlink led elsewhere: check the new ancestry too
            _check_ancestors(real)
        cur = real
    return Path(cur)


def read_regular(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The content of the regular file ``path``, at most ``max_bytes`` (never blocks on FIFOs).

    ``path`` itself must not be a symlink (resolve it first; `read_file`
    does). The file must not be world-writable or another user's.

    Raises
    ------
    FileNotFoundError
        No such file.
    UnsafeFileError
        Not a regular file, unsafe owner or mode, changed while being
        opened, or larger than ``max_bytes``.
    OSError
        Other read errors.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    p = os.fspath(path)
    before = os.lstat(p)
    if not stat.S_ISREG(before.st_mode):
        raise UnsafeFileError(f"{p} is {_kind(before.st_mode)}; only regular files are read")
    try:
        fd = os.open(p, _OPEN_FLAGS)
    except OSError as exc:
        if os.path.islink(p):  # ELOOP from O_NOFOLLOW: swapped for a symlink after lstat
            raise UnsafeFileError(f"{p} became a symlink while being opened") from None
        raise exc from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise UnsafeFileError(f"{p} changed while being opened; refusing it")
        _check_owner_and_mode(p, st, "file")
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(_READ_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > max_bytes:
        raise FileTooLargeError(f"{p} is larger than {max_bytes} bytes; not a file of this kind")
    return b"".join(chunks)


def read_file(directory: str | os.PathLike[str], name: str, max_bytes: int) -> bytes:
    """Read ``directory/name`` under every rule of this module.

    ``directory`` is checked with `check_dir`; ``name`` must be a bare file
    name. When the file is a symlink (the Hugging Face cache links snapshot
    files to blobs) the directory holding its target is checked as well.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise UnsafeFileError(f"{name!r} is not a bare file name")
    d = check_dir(directory)
    lexical = os.path.join(d, name)
    real = os.path.realpath(lexical)
    if real != lexical:
        parent = os.path.dirname(real)
        _check_owner_and_mode(parent, os.stat(parent), "directory")
        _check_ancestors(parent)
    return read_regular(real, max_bytes)


def read_path(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """`read_file` for a file given by its full path (its directory is the trusted one)."""
    p = Path(path)
    return read_file(p.parent, p.name, max_bytes)


__all__ = [
    "FileTooLargeError",
    "UnsafeFileError",
    "check_dir",
    "check_subdir",
    "read_file",
    "read_path",
    "read_regular",
]
