"""The two sources of `oxidize_ml.hub.ModelHub`: a local directory and a Hugging Face
Hub repository. Each resolves the models it offers to a directory to install from, and
publishes a verified model directory (`Published`)."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from oxidize_ml.config import ensure_private_dir
from oxidize_ml.hub.config import SOURCE_HF, SOURCE_LOCAL, HubConfig
from oxidize_ml.hub.manifest import MANIFEST_NAME, verify_model_dir
from oxidize_ml.hub.store import (
    POINTER_NAME,
    VERSIONS_DIR,
    HubError,
    Store,
    copy_model_dir,
    failed_models,
    model_files,
    parse_manifest,
    trusted_source,
)

log = logging.getLogger("oxidize_ml.hub")

HF_CACHE_SUBDIR: Final = "hf"
HF_ALLOW_PATTERNS: Final = (MANIFEST_NAME, "*.safetensors", "*.onnx")
"""only these files are fetched from a Hub repository (not READMEs, not .gitattributes)"""
HF_DELETE_PATTERNS: Final = ("*.safetensors", "*.onnx")
"""stale model files removed from the repository by an upload that does not carry them"""


@dataclass(frozen=True, slots=True)
class Published:
    """What `ModelHub.upload_models` published."""

    version: str
    """the version name (same rule as downloads: created_at + manifest hash)"""
    location: str
    """the store directory, or ``hf:org/name@revision``"""
    commit: str | None = None
    """the Hub commit id (source ``"hf"``)"""


class LocalSource:
    """A directory: a hub store (``CURRENT`` + ``versions/``) or a plain model directory.

    ``lock`` is the hub's lock, held with the store's file lock while publishing.
    """

    def __init__(self, config: HubConfig, lock: threading.RLock) -> None:
        self.config = config
        self._lock = lock

    def resolve(self) -> tuple[Path, dict[str, Any]]:
        root = self.config.local_path
        assert root is not None
        if not root.is_dir():
            raise HubError(f"local source {root} does not exist or is not a directory")
        real_root = trusted_source(root)
        store = Store(root)
        if os.path.lexists(store.pointer):
            version, why = store.read_pointer()
            if version is None:
                raise HubError(f"local source {root}: {why}")
            # Every directory from the store down to the version (versions/ and
            # a version that is a symlink elsewhere included) must be trusted.
            directory = trusted_source(real_root, VERSIONS_DIR, version)
        elif os.path.lexists(root / MANIFEST_NAME):
            directory = real_root
        else:
            raise HubError(
                f"local source {root} is neither a hub store ({POINTER_NAME} + {VERSIONS_DIR}/) "
                f"nor a model directory ({MANIFEST_NAME})"
            )
        return directory, {"source": SOURCE_LOCAL, "location": str(directory)}

    def publish(self, src: Path, manifest_bytes: bytes, version: str) -> Published:
        root = self.config.local_path
        assert root is not None
        try:
            self._install(root, src, manifest_bytes, version)
        except HubError:
            raise
        except (OSError, ValueError) as exc:
            raise HubError(f"cannot publish into {root}: {exc}") from None
        log.info("published %s to %s", version, root)
        return Published(version=version, location=str(root))

    def _install(self, root: Path, src: Path, manifest_bytes: bytes, version: str) -> None:
        store = Store(root)
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


@dataclass(frozen=True, slots=True)
class HfSource:
    """A Hugging Face Hub model repository (``repo_id`` at ``revision``); needs the
    ``hub`` extra."""

    config: HubConfig
    hf_api: Any | None = None
    """``huggingface_hub.HfApi``-compatible uploader (None: a new ``HfApi()``, imported
    lazily); injected by tests"""
    snapshot_download: Callable[..., str] | None = None
    """``huggingface_hub.snapshot_download``-compatible function (None: the real one)"""

    def offline(self) -> bool:
        if self.config.offline:
            return True
        try:
            from huggingface_hub import constants
        except ImportError:
            return False
        # huggingface_hub reads HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) once at import.
        return bool(constants.HF_HUB_OFFLINE)

    def resolve(self) -> tuple[Path, dict[str, Any]]:
        cfg = self.config
        download: Callable[..., Any]
        if self.snapshot_download is not None:
            download = self.snapshot_download
        else:
            try:
                from huggingface_hub import snapshot_download as download
            except ImportError:
                raise HubError(
                    "the 'hf' source needs huggingface_hub: pip install 'oxidize-ml[hub]' "
                    "(or use a local source)"
                ) from None
        offline = self.offline()
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
            raise HubError(self.scrub(self._hf_error(exc, offline))) from None
        directory = Path(path)
        return directory, {
            "source": SOURCE_HF,
            "location": f"{cfg.repo_id}@{cfg.revision}",
            "commit": directory.name,
            "offline": offline,
        }

    def scrub(self, message: str) -> str:
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

    def prune_cache(self, keep_commit: str | None) -> None:
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

    def _api(self) -> Any:
        if self.hf_api is not None:
            return self.hf_api
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise HubError(
                "uploading to the Hub needs huggingface_hub: pip install 'oxidize-ml[hub]'"
            ) from None
        return HfApi()

    def publish(
        self, src: Path, manifest_bytes: bytes, version: str, *, allow_public: bool
    ) -> Published:
        cfg = self.config
        if cfg.token is None:
            raise HubError(
                f"uploading to {cfg.repo_id} needs a Hugging Face token with write access: "
                "set HF_TOKEN"
            )
        if self.offline():
            raise HubError("cannot upload in offline mode (HF_HUB_OFFLINE=1 or offline=True)")
        api = self._api()
        with tempfile.TemporaryDirectory(prefix="oxidize-upload-") as tmp:
            # Upload a verified private copy, so the files cannot change between
            # the check and the upload.
            staged = Path(tmp) / version
            staged.mkdir(mode=0o700)
            copy_model_dir(src, staged, manifest_bytes, str(src))
            report = verify_model_dir(staged)
            if not report.ok:
                raise HubError(f"{src} changed while being published: {failed_models(report)}")
            files = [MANIFEST_NAME, *model_files(parse_manifest(manifest_bytes, ""), "")]
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
                raise HubError(self.scrub(msg)) from None
        oid = getattr(commit, "oid", None)
        log.info("published %s to %s (commit %s)", version, cfg.location(), oid)
        return Published(version=version, location=cfg.location(), commit=oid)
