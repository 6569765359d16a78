"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the project writes (models, configs, telemetry, manifests) goes
through here. The recipe is the POSIX one: write a temporary file in the
*same directory* as the target (``os.replace`` is only atomic within one file
system), ``fsync`` it so its bytes are on disk before it gets the real name,
``os.replace`` it over the target, then ``fsync`` the directory so the rename
itself survives a crash. If anything fails before the rename, the temporary
file is removed and the target is untouched.

Temporary files are named ``.tmp-<random>-<target name>``: hidden, clearly
ours, and ending in the target's own suffix, because some writers
(``numpy.save``, a few exporters) pick a format from the suffix or append one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

DEFAULT_FILE_MODE = 0o600
"""Permission bits of files written here unless the caller asks otherwise.

Private by default: telemetry can describe users' traffic, and a model file
another local user could not read is never a security problem, while one they
could replace is (see `oxidize_ml.config.ensure_private_dir`)."""

_TMP_PREFIX = ".tmp-"


def _fsync_path(path: Path) -> None:
    """fsync a file (opened read-only: that is enough for fsync on POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable. Not possible on every OS (Windows): skip there."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_with(
    path: str | os.PathLike[str],
    writer: Callable[[Path], None],
    *,
    mode: int = DEFAULT_FILE_MODE,
) -> Path:
    """Atomically create or replace ``path`` with whatever ``writer`` writes.

    Parameters
    ----------
    path
        The target file. Its directory must exist.
    writer
        Called once with a temporary path in the target's directory; it must
        write the complete file there (e.g. ``lambda p: pq.write_table(t, p)``).
        It may open, truncate or recreate that path, but must not rename it.
    mode
        Permission bits given to the file before it is renamed into place.

    Returns
    -------
    Path
        ``path`` as a `Path`.

    Raises
    ------
    Exception
        Whatever ``writer`` raises, after the temporary file is removed; the
        target is then exactly as it was.
    """
    target = Path(path)
    directory = target.parent
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=f"-{target.name}", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        os.chmod(tmp, mode)
        _fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-write must not leave litter.
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return target


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int = DEFAULT_FILE_MODE
) -> Path:
    """Atomically create or replace ``path`` with ``data``. See `atomic_write_with`."""
    payload = memoryview(data)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(payload)

    return atomic_write_with(path, write, mode=mode)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    mode: int = DEFAULT_FILE_MODE,
) -> Path:
    """Atomically create or replace ``path`` with ``text`` (UTF-8 unless told otherwise)."""
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)
