"""The hub store: a directory of immutable, verified model versions and the
``CURRENT`` pointer that names the active one (`Store`), plus the manifest-reading
and copying helpers every source uses.

Destination layout (a *hub store*, also used for local sources)::

    dest_dir/
      CURRENT                     # one line: the active version name
      versions/
        20260102T000000Z-3f2a9c0d1b7e/   # immutable, verified model directory
          manifest.json
          loss_predictor.safetensors ...
          .oxidize-source.json    # where it came from (not part of the manifest)
      .lock                       # advisory lock serialising writers

A version's name is ``<manifest created_at, UTC, to the second>-<first 12 hex
of the manifest's SHA-256>``: sortable by creation time, and equal for equal
content wherever it was fetched from (the manifest holds the SHA-256 of every
model file, so its own hash identifies the whole directory).

Why a ``CURRENT`` pointer file rather than a ``current`` symlink: both are
swapped atomically with ``os.replace``, but the pointer file is written with
`oxidize_ml._atomic` (file and directory fsynced, so the switch survives a
crash), works on file systems and platforms without symlinks (Windows,
some container volumes), and its content is validated as a bare version name,
so a planted pointer cannot redirect loading outside ``versions/``. Readers
resolve it once to an immutable versioned directory, so a load never mixes
files of two versions.

Every file is read under `oxidize_ml.runtime.safe_files`' rules, as the
engine's loader reads them: regular files only (a FIFO fails at once instead
of hanging a pull that holds the store lock), size-capped per file type, and
no world-writable or other-owned (root excepted) directory or file anywhere
from the source root down, symlink targets included (a ``versions/`` of mode
0777, a 0666 model file, or a version directory linked to an open folder are
refused).

Pruning keeps ``keep_versions`` versions, and never deletes the active one
or one retired less than ``prune_grace_s`` ago (300 s by default): a reader
that resolved ``CURRENT`` just before a switch may still be loading it.
`activate` stamps the retirement time on the retired version directory's
mtime.

Activation order: fetch into a hidden staging directory under ``versions/``,
verify it completely with `verify_model_dir` (SHA-256 of every file, feature
schema, weight-file validation), rename it to its version name, then swap
``CURRENT``. Any failure before the swap removes the staging directory and
leaves the previous version active.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from oxidize_ml._atomic import atomic_write_text, fsync_dir
from oxidize_ml.config import ensure_private_dir
from oxidize_ml.hub.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    ModelDirReport,
    verify_model_dir,
)
from oxidize_ml.runtime.safe_files import UnsafeFileError, check_dir, check_subdir, read_path
from oxidize_ml.runtime.weights import MAX_WEIGHT_FILE_BYTES

POINTER_NAME: Final = "CURRENT"
_POINTER_READ_ATTEMPTS: Final = 3
"""reads of CURRENT before a reader reports it unreadable (a swap can race one read)"""
VERSIONS_DIR: Final = "versions"
LOCK_NAME: Final = ".lock"
PROVENANCE_NAME: Final = ".oxidize-source.json"
_STAGING_PREFIX: Final = ".staging-"
_TRASH_PREFIX: Final = ".trash-"

MAX_MODEL_FILES: Final = 32
"""a manifest naming more files than this is not one of ours (the spec has 3 models x 2 files)"""

_VERSION_RE: Final = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")


class HubError(RuntimeError):
    """Fetching, verifying, activating or publishing models failed; the message says why.

    Whatever was active before stays active.
    """


def _plain_name(name: object) -> str | None:
    """``name`` if it is a bare, visible file name (no paths, no ..), else None."""
    if not isinstance(name, str) or not name or name.startswith("."):
        return None
    if "/" in name or "\\" in name or "\x00" in name or Path(name).name != name:
        return None
    return name


def _read_bounded(path: Path, limit: int) -> bytes:
    """``path``'s bytes under `oxidize_ml.runtime.safe_files`' rules (regular file, trusted
    directory, at most ``limit`` bytes); a refusal is a `HubError`, a missing file
    ``FileNotFoundError``."""
    try:
        return read_path(path, limit)
    except UnsafeFileError as exc:
        raise HubError(f"refusing {path}: {exc}") from None


def read_manifest_bytes(directory: Path) -> bytes:
    path = directory / MANIFEST_NAME
    try:
        return _read_bounded(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise HubError(f"no {MANIFEST_NAME} in {directory}") from None
    except OSError as exc:
        raise HubError(f"cannot read {path}: {exc}") from None


def parse_manifest(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HubError(f"{where}: {MANIFEST_NAME} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HubError(f"{where}: {MANIFEST_NAME} is not a JSON object")
    return data


def created_at(data: Mapping[str, Any], where: str) -> datetime:
    raw = data.get("created_at")
    try:
        if not isinstance(raw, str):
            raise TypeError("created_at must be a string")
        when = datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        raise HubError(f"{where}: manifest created_at {raw!r} is not an ISO timestamp") from None
    # write_manifest records UTC; a naive stamp is read as UTC too.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def version_name(manifest_bytes: bytes) -> str:
    """The version name of a model directory from its manifest's exact bytes.

    Raises `HubError` when the manifest is not JSON or lacks a valid ``created_at``.
    """
    data = parse_manifest(manifest_bytes, "manifest")
    when = created_at(data, "manifest")
    return f"{when:%Y%m%dT%H%M%SZ}-{hashlib.sha256(manifest_bytes).hexdigest()[:12]}"


def model_files(data: Mapping[str, Any], where: str) -> list[str]:
    """Every file the manifest's models name (what a copy of the directory needs)."""
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise HubError(f"{where}: manifest has no 'models' object")
    names: set[str] = set()
    for model, entry in models.items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, dict):
            raise HubError(f"{where}: model {model!r} has no 'files' object")
        for role, fname in files.items():
            if _plain_name(fname) is None or fname == MANIFEST_NAME:
                raise HubError(f"{where}: model {model!r} {role} file {fname!r} is not a bare name")
            names.add(fname)
    if len(names) > MAX_MODEL_FILES:
        raise HubError(f"{where}: manifest names {len(names)} files (limit {MAX_MODEL_FILES})")
    return sorted(names)


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist) owner-only with ``data``, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_model_dir(src: Path, dst: Path, manifest_bytes: bytes, where: str) -> None:
    """Copy the manifest's files from ``src`` into the empty ``dst``, manifest last.

    Only the files the manifest names are copied (symlinks, as in the Hub
    cache, are followed); every read is size-bounded.
    """
    names = model_files(parse_manifest(manifest_bytes, where), where)
    for name in names:
        path = src / name
        try:
            blob = _read_bounded(path, MAX_WEIGHT_FILE_BYTES)
        except FileNotFoundError:
            raise HubError(f"{where}: {name} is named in the manifest but missing") from None
        except OSError as exc:
            raise HubError(f"{where}: cannot read {name}: {exc}") from None
        _write_new_file(dst / name, blob)
    _write_new_file(dst / MANIFEST_NAME, manifest_bytes)
    fsync_dir(dst)


def failed_models(report: ModelDirReport) -> str:
    if report.error is not None:
        return report.error
    bad = [f"{m.name}: {m.status} ({m.reason})" for m in report.models.values() if not m.ok]
    return "; ".join(bad)


def trusted_source(root: Path, *parts: str) -> Path:
    """The real path of ``root/parts...`` after checking every directory on the way
    (world-writable or another user's, symlink targets included: `safe_files.check_subdir`)."""
    try:
        return check_subdir(check_dir(root), *parts)
    except UnsafeFileError as exc:
        raise HubError(f"refusing local source {root}: {exc}") from None
    except OSError as exc:
        raise HubError(f"cannot read local source {root}: {exc}") from None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (POSIX flock; a no-op where unavailable).

    flock locks belong to the open file description, so two threads of one
    process exclude each other too.
    """
    try:
        import fcntl
    except ImportError:  # Windows: the ModelHub's thread lock still serialises this process
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class Store:
    """A directory of immutable versions plus the ``CURRENT`` pointer (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / VERSIONS_DIR
        self.pointer = root / POINTER_NAME

    def read_pointer(self) -> tuple[str | None, str | None]:
        """``(version, None)``, ``(None, None)`` when there is no pointer, or ``(None, why)``."""
        for attempt in range(_POINTER_READ_ATTEMPTS):
            try:
                raw = _read_bounded(self.pointer, 256)
                break
            except FileNotFoundError:
                return None, None
            except (OSError, HubError) as exc:
                # A writer swapping CURRENT (atomic rename) between the safe read's
                # lstat and open makes it refuse the file as "changed while being
                # opened"; the next read sees the new pointer whole.
                if attempt == _POINTER_READ_ATTEMPTS - 1:
                    return None, f"cannot read {self.pointer}: {exc}"
        name = raw.decode("utf-8", "replace").strip()
        if not _VERSION_RE.match(name):
            return None, f"{self.pointer} holds {name[:40]!r}, not a version name"
        if not (self.versions / name).is_dir():
            return None, f"{self.pointer} names {name}, which is not in {self.versions}"
        return name, None

    def current(self) -> str | None:
        return self.read_pointer()[0]

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def list_versions(self) -> list[str]:
        if not self.versions.is_dir():
            return []
        return sorted(
            p.name for p in self.versions.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        ensure_private_dir(self.root)
        ensure_private_dir(self.versions)
        with _file_lock(self.root / LOCK_NAME):
            # Under the lock, any staging or trash directory is a crashed writer's litter.
            for p in self.versions.iterdir():
                if p.name.startswith((_STAGING_PREFIX, _TRASH_PREFIX)) and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
            yield

    def install(
        self,
        src: Path,
        manifest_bytes: bytes,
        version: str,
        provenance: Mapping[str, Any],
        where: str,
    ) -> Path:
        """Copy, verify and rename ``src`` into ``versions/<version>`` (caller holds the lock).

        Does not touch ``CURRENT``. Raises `HubError` (staging removed) when
        the copy does not verify.
        """
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.versions))
        try:
            copy_model_dir(src, staging, manifest_bytes, where)
            report = verify_model_dir(staging)
            if not report.ok:
                raise HubError(f"{where}: models do not verify: {failed_models(report)}")
            text = json.dumps(dict(provenance), indent=2, sort_keys=True) + "\n"
            atomic_write_text(staging / PROVENANCE_NAME, text)
            target = self.version_dir(version)
            if target.exists():
                # A damaged copy of the same version: move it aside, then replace it.
                trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=self.versions))
                os.rename(target, trash / version)
                os.rename(staging, target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.rename(staging, target)
            fsync_dir(self.versions)
            return target
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def activate(self, version: str) -> None:
        old = self.current()
        atomic_write_text(self.pointer, version + "\n")
        if old is not None and old != version:
            # Stamp the retirement time on the retired version (its directory's
            # mtime; the files are untouched): `prune` spares it for a grace
            # period, since a reader may have resolved CURRENT just before the
            # switch and still be loading it (issue 8, item 10).
            with contextlib.suppress(OSError):
                os.utime(self.version_dir(old))

    def prune(self, keep: int, grace_s: float = 0.0, now: float | None = None) -> list[str]:
        """Delete all but the ``keep`` newest versions; never the active one, nor one
        retired (or installed) less than ``grace_s`` seconds before ``now`` (default: the
        wall clock; the stamp is the version directory's mtime, see `activate`)."""
        t = time.time() if now is None else now
        active = self.current()
        versions = self.list_versions()
        others = [v for v in versions if v != active]
        n_keep_others = max(0, keep - (1 if active is not None else 0))
        doomed = []
        for v in others[: max(0, len(others) - n_keep_others)]:
            try:
                stamped = os.stat(self.version_dir(v)).st_mtime
            except OSError:
                continue
            # A stamp in the future (clock stepped back) also counts as recent.
            if grace_s > 0.0 and t - stamped < grace_s:
                continue
            doomed.append(v)
        for v in doomed:
            shutil.rmtree(self.version_dir(v), ignore_errors=True)
        return doomed

    def provenance(self, version: str) -> dict[str, Any] | None:
        try:
            raw = _read_bounded(self.version_dir(version) / PROVENANCE_NAME, 64 * 1024)
            data = json.loads(raw)
        except (OSError, HubError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def manifest_created_at(directory: Path) -> datetime | None:
    try:
        return created_at(parse_manifest(read_manifest_bytes(directory), str(directory)), "")
    except HubError:
        return None
