"""`HubConfig`: where models come from and how they are kept locally."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.config import EnvSettings

SOURCE_HF: Final = "hf"
SOURCE_LOCAL: Final = "local"
SOURCES: Final = (SOURCE_HF, SOURCE_LOCAL)

DEFAULT_REPO_ID: Final = "oxidize-ml/oxidize-models"
"""Default Hugging Face repository; configurable (``HubConfig.repo_id``,
``--repo``). Deployments should point at their own (private) repository."""

MIN_SYNC_INTERVAL_S: Final = 1.0
DEFAULT_SYNC_INTERVAL_S: Final = 3600.0
"""servers poll hourly by default: models change weekly (docs/retraining.md)"""
SYNC_JITTER_FRACTION: Final = 0.1
"""each wait is interval x (1 +- this), so a fleet started together does not poll in step"""
DEFAULT_PRUNE_GRACE_S: Final = 300.0
"""a retired version survives pruning this long: loading one takes milliseconds, but a
reader may have resolved ``CURRENT`` and then been descheduled on a busy host"""

_REPO_ID_RE: Final = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_REVISION_RE: Final = re.compile(r"^[\w.][\w./-]*$")


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
