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

The store a source is installed into (layout, version names, the ``CURRENT``
pointer, file-safety rules, pruning and activation order) is described in
`oxidize_ml.hub.store`; the sources are in `oxidize_ml.hub.backends`, the
background sync in `oxidize_ml.hub.sync`, the config in `oxidize_ml.hub.config`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oxidize_ml._validate import check_number
from oxidize_ml.hub.backends import (
    HF_ALLOW_PATTERNS,
    HF_CACHE_SUBDIR,
    HF_DELETE_PATTERNS,
    HfSource,
    LocalSource,
    Published,
)
from oxidize_ml.hub.config import (
    DEFAULT_PRUNE_GRACE_S,
    DEFAULT_REPO_ID,
    DEFAULT_SYNC_INTERVAL_S,
    MIN_SYNC_INTERVAL_S,
    SOURCE_HF,
    SOURCE_LOCAL,
    SOURCES,
    SYNC_JITTER_FRACTION,
    HubConfig,
)
from oxidize_ml.hub.manifest import ModelDirReport, verify_model_dir
from oxidize_ml.hub.store import (
    LOCK_NAME,
    MAX_MODEL_FILES,
    POINTER_NAME,
    PROVENANCE_NAME,
    VERSIONS_DIR,
    HubError,
    Store,
    created_at,
    failed_models,
    manifest_created_at,
    parse_manifest,
    read_manifest_bytes,
    version_name,
)
from oxidize_ml.hub.sync import SyncHandle, SyncStats

__all__ = [
    "DEFAULT_PRUNE_GRACE_S",
    "DEFAULT_REPO_ID",
    "DEFAULT_SYNC_INTERVAL_S",
    "HF_ALLOW_PATTERNS",
    "HF_CACHE_SUBDIR",
    "HF_DELETE_PATTERNS",
    "LOCK_NAME",
    "MAX_MODEL_FILES",
    "MIN_SYNC_INTERVAL_S",
    "POINTER_NAME",
    "PROVENANCE_NAME",
    "SOURCES",
    "SOURCE_HF",
    "SOURCE_LOCAL",
    "SYNC_JITTER_FRACTION",
    "VERSIONS_DIR",
    "HubConfig",
    "HubError",
    "HubStatus",
    "ModelHub",
    "Published",
    "SyncHandle",
    "SyncStats",
    "version_name",
]

log = logging.getLogger("oxidize_ml.hub")


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
        self._local = LocalSource(config, self._lock)
        self._hf = HfSource(config, hf_api=hf_api, snapshot_download=snapshot_download)
        # engine -> (store root, version) it was last given by this hub
        self._engines: weakref.WeakKeyDictionary[Any, tuple[Path, str]] = (
            weakref.WeakKeyDictionary()
        )
        self.last_load_status: dict[str, str] | None = None
        """what the engine answered to the last `load_models` call made by this hub"""

    # ------------------------------------------------------------ sources
    def _dest(self, dest_dir: str | os.PathLike[str] | None) -> Path:
        return Path(dest_dir) if dest_dir is not None else self.config.cache_dir

    def _resolve(self) -> tuple[Path, dict[str, Any]]:
        if self.config.source == SOURCE_LOCAL:
            return self._local.resolve()
        return self._hf.resolve()

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
            self._hf.prune_cache(fetched.commit)
        return fetched

    def _fetch_locked(self, dest: Path, *, downgrade_raises: bool) -> _Fetched:
        store = Store(dest)
        with self._lock, store.locked():
            src, provenance = self._resolve()
            where = self.config.location()
            manifest_bytes = read_manifest_bytes(src)
            version = version_name(manifest_bytes)
            active = store.current()
            commit = provenance.get("commit")
            if active == version and verify_model_dir(store.version_dir(active)).ok:
                return _Fetched(store.version_dir(active), version, False, commit)
            if active is not None and active != version and not self.config.allow_downgrade:
                new_at = created_at(parse_manifest(manifest_bytes, where), where)
                old_at = manifest_created_at(store.version_dir(active))
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
        store = Store(dest)
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
                f"refusing to publish {src}: it does not verify: {failed_models(report)}"
            )
        manifest_bytes = read_manifest_bytes(src)
        version = version_name(manifest_bytes)
        if self.config.source == SOURCE_LOCAL:
            return self._local.publish(src, manifest_bytes, version)
        return self._hf.publish(src, manifest_bytes, version, allow_public=allow_public)

    # ------------------------------------------------------------ status
    def status(self, dest_dir: str | os.PathLike[str] | None = None) -> HubStatus:
        """What is active in a local store, and whether it still verifies."""
        dest = self._dest(dest_dir)
        store = Store(dest)
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
        store = Store(self._dest(dest_dir))
        active = store.current()
        return None if active is None else store.version_dir(active)

    def with_config(self, **changes: Any) -> ModelHub:
        """A hub with some config fields changed (same injected dependencies)."""
        return ModelHub(
            replace(self.config, **changes),
            hf_api=self._hf_api,
            snapshot_download=self._snapshot_download,
        )
