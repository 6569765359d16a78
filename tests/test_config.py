"""oxidize_ml.config: environment parsing, token masking, private directories."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import tempfile
from pathlib import Path

import pytest

from oxidize_ml.config import (
    ENV_COLLECT_TRAINING,
    ENV_HF_TOKEN,
    ENV_MODEL_DIR,
    EnvSettings,
    default_model_dir,
    ensure_private_dir,
    parse_bool,
)

TOKEN = "hf_SECRETsecret1234567890"


def test_defaults_use_per_user_cache() -> None:
    s = EnvSettings.from_env({"HOME": "/home/alice"})
    assert s.model_dir == Path("/home/alice/.cache/oxidize-ml/models")
    assert s.collect_training is False
    assert s.hf_token is None


def test_xdg_cache_home_absolute_is_used_relative_is_ignored() -> None:
    env = {"HOME": "/home/alice", "XDG_CACHE_HOME": "/var/cache/alice"}
    assert EnvSettings.from_env(env).model_dir == Path("/var/cache/alice/oxidize-ml/models")
    env["XDG_CACHE_HOME"] = "relative/cache"
    assert EnvSettings.from_env(env).model_dir == Path("/home/alice/.cache/oxidize-ml/models")


@pytest.mark.parametrize(
    "environ",
    [{"HOME": "/home/alice"}, {}, {"HOME": "/home/bob", "XDG_CACHE_HOME": "  "}, None],
)
def test_default_model_dir_not_under_tmp(environ) -> None:  # type: ignore[no-untyped-def]
    # {} falls back to the password database; None reads the real environment.
    d = default_model_dir(environ)
    for tmp in {Path("/tmp"), Path(tempfile.gettempdir()), Path("/var/tmp")}:
        assert d != tmp and tmp not in d.parents, d
    assert d.parts[-2:] == ("oxidize-ml", "models")


def test_model_dir_from_env_is_absolute_and_expands_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {"HOME": "/home/alice", ENV_MODEL_DIR: "/srv/models"}
    assert EnvSettings.from_env(env).model_dir == Path("/srv/models")
    env[ENV_MODEL_DIR] = "~/m"
    assert EnvSettings.from_env(env).model_dir == Path("/home/alice/m")
    monkeypatch.chdir(tmp_path)
    env[ENV_MODEL_DIR] = " rel/models "
    assert EnvSettings.from_env(env).model_dir == tmp_path / "rel" / "models"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_model_dir_rejected(value: str) -> None:
    with pytest.raises(ValueError, match=ENV_MODEL_DIR):
        EnvSettings.from_env({"HOME": "/h", ENV_MODEL_DIR: value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("NO", False),
        ("off", False),
    ],
)
def test_collect_training_values(value: str, expected: bool) -> None:
    assert (
        EnvSettings.from_env({"HOME": "/h", ENV_COLLECT_TRAINING: value}).collect_training
        is expected
    )


@pytest.mark.parametrize("value", ["maybe", "2", "", "t", "enabled", "1.0"])
def test_collect_training_invalid(value: str) -> None:
    with pytest.raises(ValueError) as info:
        EnvSettings.from_env({"HOME": "/h", ENV_COLLECT_TRAINING: value})
    msg = str(info.value)
    assert ENV_COLLECT_TRAINING in msg
    for word in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        assert word in msg
    assert repr(value) in msg


def test_parse_bool_names_variable() -> None:
    with pytest.raises(ValueError, match="MY_FLAG"):
        parse_bool("MY_FLAG", "perhaps")


def test_token_stripped_and_empty_is_none() -> None:
    assert EnvSettings.from_env({"HOME": "/h", ENV_HF_TOKEN: f"  {TOKEN}\n"}).hf_token == TOKEN
    assert EnvSettings.from_env({"HOME": "/h", ENV_HF_TOKEN: "   "}).hf_token is None
    assert EnvSettings.from_env({"HOME": "/h", ENV_HF_TOKEN: ""}).hf_token is None


def test_token_never_in_repr_or_str(caplog: pytest.LogCaptureFixture) -> None:
    s = EnvSettings.from_env({"HOME": "/h", ENV_HF_TOKEN: TOKEN})
    with caplog.at_level(logging.INFO):
        logging.getLogger("oxidize_ml.test").info("settings %s %r", s, s)
    for text in (
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        str([s]),
        str({"s": s}),
        str(s.public_dict()),
        caplog.text,
    ):
        assert TOKEN not in text
        assert "SECRET" not in text
        assert "***" in text
    assert s.public_dict()["hf_token"] == "***"
    none = EnvSettings.from_env({"HOME": "/h"})
    assert "hf_token=None" in repr(none)
    assert none.public_dict()["hf_token"] is None


def test_settings_frozen_and_validated() -> None:
    s = EnvSettings(model_dir=Path("/m"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.collect_training = True  # type: ignore[misc]
    assert EnvSettings(model_dir="/m").model_dir == Path("/m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model_dir"):
        EnvSettings(model_dir=Path(""))
    with pytest.raises(TypeError, match="collect_training"):
        EnvSettings(model_dir=Path("/m"), collect_training="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError) as info:
        EnvSettings(model_dir=Path("/m"), hf_token=b"hf_bytes_token")  # type: ignore[arg-type]
    assert "hf_bytes_token" not in str(info.value)


def test_from_env_reads_process_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_MODEL_DIR, str(tmp_path / "m"))
    monkeypatch.setenv(ENV_COLLECT_TRAINING, "yes")
    monkeypatch.delenv(ENV_HF_TOKEN, raising=False)
    s = EnvSettings.from_env()
    assert (s.model_dir, s.collect_training, s.hf_token) == (tmp_path / "m", True, None)


# ---- ensure_private_dir -----------------------------------------------------
def test_ensure_private_dir_creates_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask the mode must be 0o700
    try:
        d = ensure_private_dir(tmp_path / "a" / "models")
    finally:
        os.umask(old)
    assert d.is_dir()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_ensure_private_dir_keeps_existing_safe_dir(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir(mode=0o750)
    d.chmod(0o750)
    assert ensure_private_dir(d) == d
    assert stat.S_IMODE(d.stat().st_mode) == 0o750


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o703])
def test_ensure_private_dir_refuses_world_writable(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(mode)
    with pytest.raises(ValueError, match="world-writable"):
        ensure_private_dir(d)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_ensure_private_dir_refuses_other_owner(tmp_path: Path) -> None:
    d = tmp_path / "theirs"
    d.mkdir(mode=0o755)
    os.chown(d, 12345, 12345)
    with pytest.raises(ValueError, match="owned by uid 12345"):
        ensure_private_dir(d)


def test_ensure_private_dir_rejects_file_and_empty(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises((NotADirectoryError, FileExistsError)):
        ensure_private_dir(f)
    with pytest.raises(ValueError, match="non-empty"):
        ensure_private_dir("")
