"""`ModelHub`: fetch, verify, activate and publish versioned model directories.

Sources
-------
``"hf"``
    A Hugging Face Hub model repository (``repo_id`` at ``revision``), fetched
    with ``huggingface_hub.snapshot_download`` into ``cache_dir/hf`` (the
    standard Hub cache layout). Needs the ``hub`` extra. Offline mode
    (``HubConfig.offline`` or ``HF_HUB_OFFLINE=1``) uses only that cache.
``"local"``
    A directory: either a *hub store* (the layout below, as written by
    `ModelHub.upload_models`) or a plain model directory (``manifest.json``
    and its files, as written by training).

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
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Self

from oxidize_ml._atomic import atomic_write_text, fsync_dir
from oxidize_ml._validate import check_int, check_number
from oxidize_ml.config import EnvSettings, ensure_private_dir
from oxidize_ml.hub.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    ModelDirReport,
    verify_model_dir,
)
from oxidize_ml.runtime.safe_files import UnsafeFileError, check_dir, check_subdir, read_path
from oxidize_ml.runtime.weights import MAX_WEIGHT_FILE_BYTES

log = logging.getLogger("oxidize_ml.hub")

SOURCE_HF: Final = "hf"
SOURCE_LOCAL: Final = "local"
SOURCES: Final = (SOURCE_HF, SOURCE_LOCAL)

DEFAULT_REPO_ID: Final = "oxidize-ml/oxidize-models"
"""Default Hugging Face repository; configurable (``HubConfig.repo_id``,
``--repo``). Deployments should point at their own (private) repository."""

POINTER_NAME: Final = "CURRENT"
VERSIONS_DIR: Final = "versions"
LOCK_NAME: Final = ".lock"
PROVENANCE_NAME: Final = ".oxidize-source.json"
HF_CACHE_SUBDIR: Final = "hf"
_STAGING_PREFIX: Final = ".staging-"
_TRASH_PREFIX: Final = ".trash-"

MAX_MODEL_FILES: Final = 32
"""a manifest naming more files than this is not one of ours (the spec has 3 models x 2 files)"""
HF_ALLOW_PATTERNS: Final = (MANIFEST_NAME, "*.safetensors", "*.onnx")
"""only these files are fetched from a Hub repository (not READMEs, not .gitattributes)"""
HF_DELETE_PATTERNS: Final = ("*.safetensors", "*.onnx")
"""stale model files removed from the repository by an upload that does not carry them"""

MIN_SYNC_INTERVAL_S: Final = 1.0
DEFAULT_SYNC_INTERVAL_S: Final = 3600.0
"""servers poll hourly by default: models change weekly (docs/retraining.md)"""
SYNC_JITTER_FRACTION: Final = 0.1
"""each wait is interval x (1 +- this), so a fleet started together does not poll in step"""
DEFAULT_PRUNE_GRACE_S: Final = 300.0
"""a retired version survives pruning this long: loading one takes milliseconds, but a
reader may have resolved ``CURRENT`` and then been descheduled on a busy host"""

_VERSION_RE: Final = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
_REPO_ID_RE: Final = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_REVISION_RE: Final = re.compile(r"^[\w.][\w./-]*$")


class HubError(RuntimeError):
    """Fetching, verifying, activating or publishing models failed; the message says why.

    Whatever was active before stays active.
    """


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Where models come from and how they are kept locally.

    Build it with `HubConfig.from_settings` to take ``cache_dir`` and
    ``token`` from the environment (`EnvSettings`). ``repr`` masks the token.
    """

    cache_dir: Path
    """local model cache (``EnvSettings.model_dir``): default destination of
    activated versions; the Hugging Face download cache is ``cache_dir/hf``"""
    source: str = SOURCE_HF
    """``"hf"`` (Hugging Face Hub) or ``"local"`` (a directory)"""
    repo_id: str = DEFAULT_REPO_ID
    """Hugging Face repository ``org/name`` (source ``"hf"``)"""
    revision: str = "main"
    """branch, tag or commit of the repository (source ``"hf"``)"""
    local_path: Path | None = None
    """hub store or model directory (source ``"local"``; required there)"""
    token: str | None = field(default=None, repr=False)
    """Hugging Face token (``HF_TOKEN``); never shown or logged"""
    offline: bool = False
    """never contact the Hub: use only ``cache_dir/hf`` (also on when
    ``HF_HUB_OFFLINE=1``, as huggingface_hub reads it)"""
    sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S
    """seconds between background syncs (>= 1)"""
    keep_versions: int = 3
    """versions kept in a store, the active one included (>= 1); older ones are deleted,
    except those active less than ``prune_grace_s`` ago"""
    prune_grace_s: float = DEFAULT_PRUNE_GRACE_S
    """a version that stopped being active less than this many seconds ago is never
    deleted, whatever ``keep_versions`` says: a reader that resolved ``CURRENT`` just
    before a switch may still be loading it (0 turns the grace off)"""
    only_default_enabled: bool = True
    """`sync` loads only the models whose manifest marks them as beating their
    heuristic (``metrics.default_enabled``, set by ``oxidize-ml train``); the
    others keep the heuristic, as for the models shipped in the package"""
    allow_downgrade: bool = False
    """activate a source version created before the active one (a stale mirror
    or cache otherwise never rolls a server back; to roll back on purpose,
    re-publish the old models with a new manifest or set this)"""

    def __post_init__(self) -> None:
        if isinstance(self.cache_dir, str):
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        if not isinstance(self.cache_dir, Path) or str(self.cache_dir).strip() in ("", "."):
            raise ValueError(f"cache_dir must be a non-empty path, got {self.cache_dir!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {list(SOURCES)}, got {self.source!r}")
        if (
            not isinstance(self.repo_id, str)
            or not _REPO_ID_RE.match(self.repo_id)
            or (".." in self.repo_id or "--" in self.repo_id)
        ):
            raise ValueError(f"repo_id must look like 'org/name', got {self.repo_id!r}")
        if (
            not isinstance(self.revision, str)
            or not _REVISION_RE.match(self.revision)
            or ".." in self.revision
        ):
            raise ValueError(
                f"revision must be a branch, tag or commit name (no '..'), got {self.revision!r}"
            )
        if isinstance(self.local_path, str):
            object.__setattr__(self, "local_path", Path(self.local_path))
        if self.local_path is not None and not isinstance(self.local_path, Path):
            raise TypeError(f"local_path must be a Path, got {type(self.local_path).__name__}")
        if self.source == SOURCE_LOCAL and self.local_path is None:
            raise ValueError("source 'local' needs local_path (a hub store or a model directory)")
        if self.token is not None:
            if not isinstance(self.token, str):
                raise TypeError(f"token must be a str or None, got {type(self.token).__name__}")
            object.__setattr__(self, "token", self.token.strip() or None)
        for name in ("offline", "only_default_enabled", "allow_downgrade"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        check_number("sync_interval_s", self.sync_interval_s, lo=MIN_SYNC_INTERVAL_S)
        check_int("keep_versions", self.keep_versions, lo=1)
        check_number("prune_grace_s", self.prune_grace_s, lo=0.0)

    @classmethod
    def from_settings(cls, settings: EnvSettings | None = None, **changes: Any) -> HubConfig:
        """A config whose ``cache_dir`` and ``token`` come from ``settings``.

        ``settings`` defaults to `EnvSettings.from_env`; ``changes`` set any
        other field (``source="local", local_path=...``).
        """
        s = settings if settings is not None else EnvSettings.from_env()
        base: dict[str, Any] = {"cache_dir": s.model_dir, "token": s.hf_token}
        base.update(changes)
        return cls(**base)

    def location(self) -> str:
        """Human description of the source (no token)."""
        if self.source == SOURCE_LOCAL:
            return f"local:{self.local_path}"
        return f"hf:{self.repo_id}@{self.revision}"

    def __repr__(self) -> str:
        token = None if self.token is None else "***"
        return (
            f"HubConfig(cache_dir={self.cache_dir!r}, source={self.source!r}, "
            f"repo_id={self.repo_id!r}, revision={self.revision!r}, "
            f"local_path={self.local_path!r}, token={token!r}, offline={self.offline!r}, "
            f"sync_interval_s={self.sync_interval_s!r}, keep_versions={self.keep_versions!r}, "
            f"prune_grace_s={self.prune_grace_s!r}, "
            f"only_default_enabled={self.only_default_enabled!r}, "
            f"allow_downgrade={self.allow_downgrade!r})"
        )

    __str__ = __repr__


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Published:
    """What `ModelHub.upload_models` published."""

    version: str
    """the version name (same rule as downloads: created_at + manifest hash)"""
    location: str
    """the store directory, or ``hf:org/name@revision``"""
    commit: str | None = None
    """the Hub commit id (source ``"hf"``)"""


@dataclass(frozen=True, slots=True)
class HubStatus:
    """State of a local store (`ModelHub.status`)."""

    dest_dir: Path
    active: str | None
    """the active version name, or None"""
    active_dir: Path | None
    versions: tuple[str, ...]
    """versions present, oldest first"""
    report: ModelDirReport | None
    """verification of the active version (None when there is none)"""
    provenance: dict[str, Any] | None
    """where the active version came from"""
    pointer_error: str | None = None
    """why ``CURRENT`` could not be used, if it exists but is bad"""


@dataclass(frozen=True, slots=True)
class SyncStats:
    """Counters of a background sync (`SyncHandle.stats`)."""

    attempts: int
    failures: int
    updates: int
    """syncs that gave the engine a new version"""
    last_success_unix_s: float | None
    last_error: str | None
    running: bool


# ----------------------------------------------------------------------------- helpers


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


def _read_manifest_bytes(directory: Path) -> bytes:
    path = directory / MANIFEST_NAME
    try:
        return _read_bounded(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise HubError(f"no {MANIFEST_NAME} in {directory}") from None
    except OSError as exc:
        raise HubError(f"cannot read {path}: {exc}") from None


def _parse_manifest(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HubError(f"{where}: {MANIFEST_NAME} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HubError(f"{where}: {MANIFEST_NAME} is not a JSON object")
    return data


def _created_at(data: Mapping[str, Any], where: str) -> datetime:
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
    data = _parse_manifest(manifest_bytes, "manifest")
    when = _created_at(data, "manifest")
    return f"{when:%Y%m%dT%H%M%SZ}-{hashlib.sha256(manifest_bytes).hexdigest()[:12]}"


def _model_files(data: Mapping[str, Any], where: str) -> list[str]:
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


def _copy_model_dir(src: Path, dst: Path, manifest_bytes: bytes, where: str) -> None:
    """Copy the manifest's files from ``src`` into the empty ``dst``, manifest last.

    Only the files the manifest names are copied (symlinks, as in the Hub
    cache, are followed); every read is size-bounded.
    """
    names = _model_files(_parse_manifest(manifest_bytes, where), where)
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


def _failed_models(report: ModelDirReport) -> str:
    if report.error is not None:
        return report.error
    bad = [f"{m.name}: {m.status} ({m.reason})" for m in report.models.values() if not m.ok]
    return "; ".join(bad)


def _trusted_source(root: Path, *parts: str) -> Path:
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


# ----------------------------------------------------------------------------- store


class _Store:
    """A directory of immutable versions plus the ``CURRENT`` pointer (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / VERSIONS_DIR
        self.pointer = root / POINTER_NAME

    def read_pointer(self) -> tuple[str | None, str | None]:
        """``(version, None)``, ``(None, None)`` when there is no pointer, or ``(None, why)``."""
        try:
            raw = _read_bounded(self.pointer, 256)
        except FileNotFoundError:
            return None, None
        except (OSError, HubError) as exc:
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
            _copy_model_dir(src, staging, manifest_bytes, where)
            report = verify_model_dir(staging)
            if not report.ok:
                raise HubError(f"{where}: models do not verify: {_failed_models(report)}")
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


def _manifest_created_at(directory: Path) -> datetime | None:
    try:
        return _created_at(_parse_manifest(_read_manifest_bytes(directory), str(directory)), "")
    except HubError:
        return None


# ----------------------------------------------------------------------------- the hub


@dataclass(frozen=True, slots=True)
class _Fetched:
    directory: Path
    version: str
    changed: bool
    """a new version became active"""
    commit: str | None
    """the Hub commit the source resolved to (source "hf"), when it is the one in use"""


class ModelHub:
    """Fetch, verify and activate model versions; publish new ones; keep an engine in sync.

    Parameters
    ----------
    config
        The source and local cache (`HubConfig`).
    hf_api
        A ``huggingface_hub.HfApi``-compatible object for uploads (default: a
        new ``HfApi()``, imported lazily). Injected by tests.
    snapshot_download
        A ``huggingface_hub.snapshot_download``-compatible function (default:
        the real one, imported lazily).

    Examples
    --------
    >>> hub = ModelHub(HubConfig.from_settings(source="local", local_path=store))  # doctest: +SKIP
    >>> active = hub.download_models()                                             # doctest: +SKIP
    >>> engine.load_models(active)                                                 # doctest: +SKIP
    """

    def __init__(
        self,
        config: HubConfig,
        *,
        hf_api: Any | None = None,
        snapshot_download: Callable[..., str] | None = None,
    ) -> None:
        if not isinstance(config, HubConfig):
            raise TypeError(f"config must be a HubConfig, got {type(config).__name__}")
        self.config = config
        self._hf_api = hf_api
        self._snapshot_download = snapshot_download
        self._lock = threading.RLock()
        # engine -> (store root, version) it was last given by this hub
        self._engines: weakref.WeakKeyDictionary[Any, tuple[Path, str]] = (
            weakref.WeakKeyDictionary()
        )
        self.last_load_status: dict[str, str] | None = None
        """what the engine answered to the last `load_models` call made by this hub"""

    # ------------------------------------------------------------ sources
    def _dest(self, dest_dir: str | os.PathLike[str] | None) -> Path:
        return Path(dest_dir) if dest_dir is not None else self.config.cache_dir

    def _resolve_local(self) -> tuple[Path, dict[str, Any]]:
        root = self.config.local_path
        assert root is not None
        if not root.is_dir():
            raise HubError(f"local source {root} does not exist or is not a directory")
        real_root = _trusted_source(root)
        store = _Store(root)
        if os.path.lexists(store.pointer):
            version, why = store.read_pointer()
            if version is None:
                raise HubError(f"local source {root}: {why}")
            # Every directory from the store down to the version (versions/ and
            # a version that is a symlink elsewhere included) must be trusted.
            directory = _trusted_source(real_root, VERSIONS_DIR, version)
        elif os.path.lexists(root / MANIFEST_NAME):
            directory = real_root
        else:
            raise HubError(
                f"local source {root} is neither a hub store ({POINTER_NAME} + {VERSIONS_DIR}/) "
                f"nor a model directory ({MANIFEST_NAME})"
            )
        return directory, {"source": SOURCE_LOCAL, "location": str(directory)}

    def _offline(self) -> bool:
        if self.config.offline:
            return True
        try:
            from huggingface_hub import constants
        except ImportError:
            return False
        # huggingface_hub reads HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) once at import.
        return bool(constants.HF_HUB_OFFLINE)

    def _resolve_hf(self) -> tuple[Path, dict[str, Any]]:
        cfg = self.config
        download: Callable[..., Any]
        if self._snapshot_download is not None:
            download = self._snapshot_download
        else:
            try:
                from huggingface_hub import snapshot_download as download
            except ImportError:
                raise HubError(
                    "the 'hf' source needs huggingface_hub: pip install 'oxidize-ml[hub]' "
                    "(or use a local source)"
                ) from None
        offline = self._offline()
        cache = ensure_private_dir(cfg.cache_dir / HF_CACHE_SUBDIR)
        try:
            path = download(
                cfg.repo_id,
                revision=cfg.revision,
                cache_dir=str(cache),
                token=cfg.token,
                local_files_only=offline,
                allow_patterns=list(HF_ALLOW_PATTERNS),
            )
        except Exception as exc:  # noqa: BLE001 - any failure of the download is a HubError
            raise HubError(self._scrub(self._hf_error(exc, offline))) from None
        directory = Path(path)
        return directory, {
            "source": SOURCE_HF,
            "location": f"{cfg.repo_id}@{cfg.revision}",
            "commit": directory.name,
            "offline": offline,
        }

    def _scrub(self, message: str) -> str:
        """``message`` with the token masked, should a library ever echo it."""
        token = self.config.token
        return message if token is None else message.replace(token, "***")

    def _hf_error(self, exc: Exception, offline: bool) -> str:
        cfg = self.config
        name = type(exc).__name__
        if name == "LocalEntryNotFoundError" or (offline and name == "IncompleteSnapshotError"):
            return (
                f"no cached copy of repo {cfg.repo_id} at revision {cfg.revision} in "
                f"{cfg.cache_dir / HF_CACHE_SUBDIR}"
                + (" (offline mode)" if offline else " and the Hub could not be reached")
                + "; connect once or use a local source"
            )
        if name in ("RepositoryNotFoundError", "GatedRepoError"):
            return f"repo {cfg.repo_id} not found or not accessible (private repos need HF_TOKEN)"
        if name == "RevisionNotFoundError":
            return f"repo {cfg.repo_id} has no revision {cfg.revision!r}"
        # huggingface_hub messages name URLs and files, never the token.
        return f"cannot download {cfg.repo_id}@{cfg.revision}: {name}: {exc}"

    def _resolve(self) -> tuple[Path, dict[str, Any]]:
        if self.config.source == SOURCE_LOCAL:
            return self._resolve_local()
        return self._resolve_hf()

    # ------------------------------------------------------------ download
    def _fetch(self, dest: Path, *, downgrade_raises: bool) -> _Fetched:
        try:
            fetched = self._fetch_locked(dest, downgrade_raises=downgrade_raises)
        except HubError:
            raise
        except (OSError, ValueError) as exc:
            # A store we may not use (world-writable, someone else's) or a full disk.
            raise HubError(f"cannot update the model store {dest}: {exc}") from None
        if self.config.source == SOURCE_HF:
            self._prune_hf_cache(fetched.commit)
        return fetched

    def _fetch_locked(self, dest: Path, *, downgrade_raises: bool) -> _Fetched:
        store = _Store(dest)
        with self._lock, store.locked():
            src, provenance = self._resolve()
            where = self.config.location()
            manifest_bytes = _read_manifest_bytes(src)
            version = version_name(manifest_bytes)
            active = store.current()
            commit = provenance.get("commit")
            if active == version and verify_model_dir(store.version_dir(active)).ok:
                return _Fetched(store.version_dir(active), version, False, commit)
            if active is not None and active != version and not self.config.allow_downgrade:
                new_at = _created_at(_parse_manifest(manifest_bytes, where), where)
                old_at = _manifest_created_at(store.version_dir(active))
                if old_at is not None and new_at < old_at:
                    msg = (
                        f"{where} offers {version}, created before the active {active}; "
                        "keeping the active version (allow_downgrade to roll back)"
                    )
                    if downgrade_raises:
                        raise HubError(msg)
                    log.warning("%s", msg)
                    return _Fetched(store.version_dir(active), active, False, None)
            target = store.version_dir(version)
            if not (target.is_dir() and verify_model_dir(target).ok):
                provenance = {
                    **provenance,
                    "fetched_at": datetime.now(UTC).isoformat(),
                    "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
                }
                target = store.install(src, manifest_bytes, version, provenance, where)
            store.activate(version)
            pruned = store.prune(self.config.keep_versions, self.config.prune_grace_s)
            log.info(
                "activated models %s from %s in %s (pruned %s)",
                version,
                where,
                dest,
                pruned or "none",
            )
            return _Fetched(target, version, True, commit)

    def _prune_hf_cache(self, keep_commit: str | None) -> None:
        """Keep only the revision just used in the Hub cache: ``versions/`` is the history."""
        if keep_commit is None:
            return
        try:
            from huggingface_hub import scan_cache_dir

            info = scan_cache_dir(self.config.cache_dir / HF_CACHE_SUBDIR)
            old = [
                rev.commit_hash
                for repo in info.repos
                if repo.repo_id == self.config.repo_id and repo.repo_type == "model"
                for rev in repo.revisions
                if rev.commit_hash != keep_commit
            ]
            if old:
                info.delete_revisions(*old).execute()
        except Exception as exc:  # noqa: BLE001 - cache housekeeping must not fail a download
            log.warning("could not prune the Hugging Face cache: %s", exc)

    def download_models(self, dest_dir: str | os.PathLike[str] | None = None) -> Path:
        """Fetch the source's models, verify them and make them the active version.

        Parameters
        ----------
        dest_dir
            The local store (default ``config.cache_dir``); created owner-only.

        Returns
        -------
        Path
            The active, verified version directory (pass it to
            ``MlEngine.load_models``). When the source offers the version that
            is already active (and it still verifies) nothing is copied.

        Raises
        ------
        HubError
            The source is unreachable, a file is missing or fails its checksum,
            the feature schema differs, or the source's version is older than
            the active one (without ``allow_downgrade``). The previously active
            version stays active and no staging directory is left behind.
        """
        return self._fetch(self._dest(dest_dir), downgrade_raises=True).directory

    async def adownload_models(self, dest_dir: str | os.PathLike[str] | None = None) -> Path:
        """`download_models` for asyncio code: the blocking work runs in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.download_models, dest_dir)

    # ------------------------------------------------------------ engine
    def load_active(self, engine: Any, dest_dir: str | os.PathLike[str] | None = None) -> bool:
        """Give ``engine`` the store's active version unless this hub already did.

        Use at start-up: servers keep running the last good download while
        the source is unreachable. Returns True when ``engine.load_models``
        was called.
        """
        dest = self._dest(dest_dir)
        store = _Store(dest)
        with self._lock:
            active = store.current()
            if active is None:
                return False
            key = (dest, active)
            if self._engines.get(engine) == key:
                return False
            # The engine builds the new policies outside its lock and swaps them
            # under it, so decisions keep flowing during the load.
            status = engine.load_models(
                store.version_dir(active), only_default_enabled=self.config.only_default_enabled
            )
            self._engines[engine] = key
            self.last_load_status = dict(status)
            log.info("engine loaded %s: %s", active, status)
            return True

    def sync(self, engine: Any, dest_dir: str | os.PathLike[str] | None = None) -> bool:
        """Fetch a new version if the source has one, then hot-swap it into ``engine``.

        Returns True when the engine was given a version it did not have from
        this hub (a new download, or the active one on the first call). A
        source version older than the active one is skipped with a warning
        (see ``allow_downgrade``).

        Raises
        ------
        HubError
            The source failed; the engine keeps what it runs.
        """
        dest = self._dest(dest_dir)
        with self._lock:
            self._fetch(dest, downgrade_raises=False)
            return self.load_active(engine, dest)

    def start_background_sync(
        self,
        engine: Any,
        interval_s: float | None = None,
        *,
        dest_dir: str | os.PathLike[str] | None = None,
        seed: int | None = None,
    ) -> SyncHandle:
        """Sync ``engine`` now and then every ``interval_s`` (default ``config.sync_interval_s``)
        in a daemon thread; errors are logged and counted, never raised.

        ``seed`` seeds the +-10 % jitter of the waits; None takes OS entropy,
        which is what a fleet wants (servers must not poll in step).
        """
        interval = self.config.sync_interval_s if interval_s is None else interval_s
        interval = check_number("interval_s", interval, lo=MIN_SYNC_INTERVAL_S)
        return SyncHandle(self, engine, self._dest(dest_dir), interval, seed)

    # ------------------------------------------------------------ upload
    def upload_models(
        self, model_dir: str | os.PathLike[str], *, allow_public: bool = False
    ) -> Published:
        """Publish a verified model directory to the source.

        Local source: copied into the store as a new version and made current
        (the store is created owner-only; grant servers read access on purpose).
        Hugging Face source: the verified copy is uploaded in one commit to
        ``repo_id`` at ``revision``; the repository is created private, and
        an existing public repository is refused unless ``allow_public``.

        Raises
        ------
        HubError
            ``model_dir`` does not verify (nothing is published), no token for
            the Hub, or the upload failed.
        """
        src = Path(model_dir)
        report = verify_model_dir(src)
        if not report.ok:
            raise HubError(
                f"refusing to publish {src}: it does not verify: {_failed_models(report)}"
            )
        manifest_bytes = _read_manifest_bytes(src)
        version = version_name(manifest_bytes)
        if self.config.source == SOURCE_LOCAL:
            return self._upload_local(src, manifest_bytes, version)
        return self._upload_hf(src, manifest_bytes, version, allow_public=allow_public)

    def _upload_local(self, src: Path, manifest_bytes: bytes, version: str) -> Published:
        root = self.config.local_path
        assert root is not None
        try:
            self._install_local(root, src, manifest_bytes, version)
        except HubError:
            raise
        except (OSError, ValueError) as exc:
            raise HubError(f"cannot publish into {root}: {exc}") from None
        log.info("published %s to %s", version, root)
        return Published(version=version, location=str(root))

    def _install_local(self, root: Path, src: Path, manifest_bytes: bytes, version: str) -> None:
        store = _Store(root)
        with self._lock, store.locked():
            target = store.version_dir(version)
            if not (target.is_dir() and verify_model_dir(target).ok):
                provenance = {
                    "source": "upload",
                    "location": str(src.resolve()),
                    "uploaded_at": datetime.now(UTC).isoformat(),
                    "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
                }
                store.install(src, manifest_bytes, version, provenance, str(src))
            store.activate(version)
            store.prune(self.config.keep_versions, self.config.prune_grace_s)

    def _api(self) -> Any:
        if self._hf_api is not None:
            return self._hf_api
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise HubError(
                "uploading to the Hub needs huggingface_hub: pip install 'oxidize-ml[hub]'"
            ) from None
        return HfApi()

    def _upload_hf(
        self, src: Path, manifest_bytes: bytes, version: str, *, allow_public: bool
    ) -> Published:
        cfg = self.config
        if cfg.token is None:
            raise HubError(
                f"uploading to {cfg.repo_id} needs a Hugging Face token with write access: "
                "set HF_TOKEN"
            )
        if self._offline():
            raise HubError("cannot upload in offline mode (HF_HUB_OFFLINE=1 or offline=True)")
        api = self._api()
        with tempfile.TemporaryDirectory(prefix="oxidize-upload-") as tmp:
            # Upload a verified private copy, so the files cannot change between
            # the check and the upload.
            staged = Path(tmp) / version
            staged.mkdir(mode=0o700)
            _copy_model_dir(src, staged, manifest_bytes, str(src))
            report = verify_model_dir(staged)
            if not report.ok:
                raise HubError(f"{src} changed while being published: {_failed_models(report)}")
            files = [MANIFEST_NAME, *_model_files(_parse_manifest(manifest_bytes, ""), "")]
            try:
                api.create_repo(
                    cfg.repo_id, token=cfg.token, private=True, repo_type="model", exist_ok=True
                )
                info = api.repo_info(cfg.repo_id, repo_type="model", token=cfg.token)
                if getattr(info, "private", None) is not True and not allow_public:
                    raise HubError(
                        f"repo {cfg.repo_id} is public; refusing to publish there "
                        "(make it private, or pass allow_public / --allow-public)"
                    )
                if cfg.revision != "main":
                    api.create_branch(
                        cfg.repo_id,
                        branch=cfg.revision,
                        token=cfg.token,
                        repo_type="model",
                        exist_ok=True,
                    )
                commit = api.upload_folder(
                    repo_id=cfg.repo_id,
                    folder_path=str(staged),
                    repo_type="model",
                    revision=cfg.revision,
                    token=cfg.token,
                    commit_message=f"oxidize-ml models {version}",
                    allow_patterns=files,
                    delete_patterns=list(HF_DELETE_PATTERNS),
                )
            except HubError:
                raise
            except Exception as exc:  # noqa: BLE001 - any Hub failure is a HubError
                msg = (
                    f"uploading to {cfg.repo_id}@{cfg.revision} failed: {type(exc).__name__}: {exc}"
                )
                raise HubError(self._scrub(msg)) from None
        oid = getattr(commit, "oid", None)
        log.info("published %s to %s (commit %s)", version, cfg.location(), oid)
        return Published(version=version, location=cfg.location(), commit=oid)

    # ------------------------------------------------------------ status
    def status(self, dest_dir: str | os.PathLike[str] | None = None) -> HubStatus:
        """What is active in a local store, and whether it still verifies."""
        dest = self._dest(dest_dir)
        store = _Store(dest)
        active, why = store.read_pointer()
        return HubStatus(
            dest_dir=dest,
            active=active,
            active_dir=None if active is None else store.version_dir(active),
            versions=tuple(store.list_versions()),
            report=None if active is None else verify_model_dir(store.version_dir(active)),
            provenance=None if active is None else store.provenance(active),
            pointer_error=why,
        )

    def active_dir(self, dest_dir: str | os.PathLike[str] | None = None) -> Path | None:
        """The active version directory of a store, or None."""
        store = _Store(self._dest(dest_dir))
        active = store.current()
        return None if active is None else store.version_dir(active)

    def with_config(self, **changes: Any) -> ModelHub:
        """A hub with some config fields changed (same injected dependencies)."""
        return ModelHub(
            replace(self.config, **changes),
            hf_api=self._hf_api,
            snapshot_download=self._snapshot_download,
        )


class SyncHandle:
    """A running background sync (`ModelHub.start_background_sync`); `stop` ends it."""

    def __init__(
        self, hub: ModelHub, engine: Any, dest: Path, interval_s: float, seed: int | None
    ) -> None:
        self._hub = hub
        self._engine = engine
        self._dest = dest
        self.interval_s = interval_s
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._attempts = 0
        self._failures = 0
        self._updates = 0
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="oxidize-ml-hub-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._hub.load_active(self._engine, self._dest)
        except Exception as exc:  # noqa: BLE001 - the thread must survive and report
            log.warning("loading the cached models failed: %s", exc)
        while not self._stop.is_set():
            self._attempts += 1
            try:
                if self._hub.sync(self._engine, self._dest):
                    self._updates += 1
                self._last_success = time.time()
                self._last_error = None
            except Exception as exc:
                self._failures += 1
                self._last_error = str(exc)
                if isinstance(exc, HubError):
                    log.warning("model sync failed: %s", exc)
                else:
                    log.exception("model sync failed unexpectedly")
            jitter = 1.0 + SYNC_JITTER_FRACTION * (2.0 * self._rng.random() - 1.0)
            self._stop.wait(self.interval_s * jitter)

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` s; True when it has ended.

        A sync in progress finishes first (a download is never cut in half;
        it is atomic anyway).
        """
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> SyncStats:
        return SyncStats(
            attempts=self._attempts,
            failures=self._failures,
            updates=self._updates,
            last_success_unix_s=self._last_success,
            last_error=self._last_error,
            running=self.running,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
