"""Process settings from environment variables, read in this one place.

Nothing else in oxidize-ml reads ``os.environ``: callers build an
`EnvSettings` (usually with `EnvSettings.from_env`) and pass it on, so tests
and embedding applications can supply settings without touching the process
environment.

Variables
---------
``OXIDIZE_MODEL_DIR``
    Local model cache. Default: ``$XDG_CACHE_HOME/oxidize-ml/models``, or
    ``~/.cache/oxidize-ml/models`` when ``XDG_CACHE_HOME`` is unset or not
    absolute (the XDG Base Directory rule). The spec's default was
    ``/tmp/oxidize_models``; it is deliberately not used: ``/tmp`` is writable
    by every local user, so another user can create that directory first (or
    drop files into it) and have this process load a model they planted. A
    per-user cache directory is writable only by its owner.
``OXIDIZE_COLLECT_TRAINING``
    Whether to collect training telemetry: ``1/0``, ``true/false``,
    ``yes/no``, ``on/off`` (any letter case). Default: off.
``HF_TOKEN``
    Hugging Face API token, surrounding whitespace stripped; empty means none.
    It never appears in ``repr``/``str`` of `EnvSettings` (shown as ``'***'``)
    and must never be logged.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_MODEL_DIR = "OXIDIZE_MODEL_DIR"
ENV_COLLECT_TRAINING = "OXIDIZE_COLLECT_TRAINING"
ENV_HF_TOKEN = "HF_TOKEN"

_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")
_MASK = "***"

PRIVATE_DIR_MODE = 0o700
"""Mode of directories created by `ensure_private_dir`: owner only."""


def parse_bool(name: str, value: str) -> bool:
    """Parse an environment flag; ``name`` is the variable, used in the error.

    Examples
    --------
    >>> parse_bool("OXIDIZE_COLLECT_TRAINING", " Yes ")
    True
    >>> parse_bool("OXIDIZE_COLLECT_TRAINING", "off")
    False
    """
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    allowed = "/".join(_TRUE_WORDS + _FALSE_WORDS)
    raise ValueError(f"{name} must be one of {allowed} (any case), got {value!r}")


def _home(environ: Mapping[str, str]) -> Path:
    """The user's home: ``HOME`` from ``environ``, else the password database."""
    home = environ.get("HOME", "").strip()
    if home:
        return Path(home)
    try:
        import pwd  # POSIX only

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError):
        return Path.home()


def _expand_user(value: str, environ: Mapping[str, str]) -> Path:
    """``~`` and ``~/x`` expanded with ``environ``'s home (``~user`` is left to the OS)."""
    if value == "~" or value.startswith("~/"):
        return _home(environ) / value[2:]
    return Path(value).expanduser()


def default_model_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user model cache used when ``OXIDIZE_MODEL_DIR`` is unset.

    ``$XDG_CACHE_HOME/oxidize-ml/models`` if ``XDG_CACHE_HOME`` is an absolute
    path, else ``~/.cache/oxidize-ml/models``. Never under ``/tmp`` (see the
    module docstring for why).
    """
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    # XDG Base Directory spec: a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else _home(env) / ".cache"
    return base / "oxidize-ml" / "models"


@dataclass(frozen=True, slots=True)
class EnvSettings:
    """Settings taken from the environment (see the module docstring).

    ``repr`` and ``str`` mask the token; `public_dict` is the form to log.
    ``dataclasses.asdict`` is *not* masked: do not log its output.
    """

    model_dir: Path
    """local model cache directory (not created here: see `ensure_private_dir`)"""
    collect_training: bool = False
    """whether to collect training telemetry"""
    hf_token: str | None = field(default=None, repr=False)
    """Hugging Face API token, or None; never shown by repr/str"""

    def __post_init__(self) -> None:
        if isinstance(self.model_dir, str):
            object.__setattr__(self, "model_dir", Path(self.model_dir))
        if not isinstance(self.model_dir, Path):
            raise TypeError(f"model_dir must be a Path, got {type(self.model_dir).__name__}")
        if str(self.model_dir).strip() in ("", "."):
            raise ValueError(f"model_dir must be a non-empty path, got {str(self.model_dir)!r}")
        if not isinstance(self.collect_training, bool):
            raise TypeError(
                f"collect_training must be a bool, got {type(self.collect_training).__name__}"
            )
        if self.hf_token is not None:
            if not isinstance(self.hf_token, str):
                # The type name only: the value may be a token in the wrong type.
                raise TypeError(
                    f"hf_token must be a str or None, got {type(self.hf_token).__name__}"
                )
            token = self.hf_token.strip()
            object.__setattr__(self, "hf_token", token or None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EnvSettings:
        """Read the settings from ``environ`` (default: the process environment).

        Raises
        ------
        ValueError
            ``OXIDIZE_MODEL_DIR`` set but empty, or ``OXIDIZE_COLLECT_TRAINING``
            not one of the accepted words. The message names the variable.
        """
        env = os.environ if environ is None else environ

        raw_dir = env.get(ENV_MODEL_DIR)
        if raw_dir is None:
            model_dir = default_model_dir(env)
        else:
            if not raw_dir.strip():
                raise ValueError(
                    f"{ENV_MODEL_DIR} must be a non-empty path (unset it to use the default "
                    f"{default_model_dir(env)}), got {raw_dir!r}"
                )
            # Absolute, so the cache does not move when the working directory does.
            model_dir = _expand_user(raw_dir.strip(), env).absolute()

        raw_collect = env.get(ENV_COLLECT_TRAINING)
        collect = False if raw_collect is None else parse_bool(ENV_COLLECT_TRAINING, raw_collect)

        token = (env.get(ENV_HF_TOKEN) or "").strip() or None
        return cls(model_dir=model_dir, collect_training=collect, hf_token=token)

    def public_dict(self) -> dict[str, Any]:
        """JSON-able settings with the token masked: the form to log or display."""
        return {
            "model_dir": str(self.model_dir),
            "collect_training": self.collect_training,
            "hf_token": None if self.hf_token is None else _MASK,
        }

    def __repr__(self) -> str:
        token = None if self.hf_token is None else _MASK
        return (
            f"EnvSettings(model_dir={self.model_dir!r}, "
            f"collect_training={self.collect_training!r}, hf_token={token!r})"
        )

    __str__ = __repr__


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if missing, owner-only (mode 0o700), and vet it.

    An existing directory keeps its mode, but is refused when another local
    user could plant files in it: when it is world-writable, or owned by
    another user (other than root). This guards the model cache and the
    telemetry export root: a planted model runs as our decision logic, and
    planted telemetry poisons training.

    Returns
    -------
    Path
        ``path`` as a `Path`.

    Raises
    ------
    ValueError
        Empty path, world-writable directory, or a directory owned by another user.
    NotADirectoryError
        ``path`` exists and is not a directory.
    """
    p = Path(path)
    if str(path).strip() in ("", "."):
        raise ValueError(f"directory path must be non-empty, got {str(path)!r}")
    created = not p.exists()
    p.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if not p.is_dir():
        raise NotADirectoryError(f"{p} exists and is not a directory")
    if created:
        # mkdir's mode is filtered by the umask; set it exactly.
        os.chmod(p, PRIVATE_DIR_MODE)
    st = p.stat()
    if st.st_mode & stat.S_IWOTH:
        raise ValueError(
            f"refusing world-writable directory {p} (mode {stat.S_IMODE(st.st_mode):o}): "
            "any local user could plant files there; use a private directory (e.g. chmod 700)"
        )
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid not in (getuid(), 0):
        raise ValueError(
            f"refusing directory {p} owned by uid {st.st_uid} (we are uid {getuid()}): "
            "another user controls its contents"
        )
    return p
