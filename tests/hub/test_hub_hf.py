"""ModelHub's Hugging Face source against a Hub cache laid out by the test (offline),
and uploads against an injected HfApi-compatible recorder.

The cache layout is huggingface_hub's (read from its snapshot_download in 2.x):
``models--{org}--{name}/blobs/<hash>``, ``snapshots/<commit>/<file>`` as
relative symlinks to the blobs, ``refs/<revision>`` holding the commit hash
(no newline). Offline, snapshot_download resolves the ref, and returns the
snapshot folder when it exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hub_model_dirs import MODELS, make_model_dir

hf = pytest.importorskip("huggingface_hub")

from oxidize_ml.hub import (
    MANIFEST_NAME,
    HubConfig,
    HubError,
    ModelHub,
    verify_model_dir,
    version_name,
)
from oxidize_ml.hub.hub import HF_CACHE_SUBDIR, POINTER_NAME, VERSIONS_DIR

REPO = "acme/oxidize-models-test"
TOKEN = "hf_test_token_never_printed"


def repo_cache(cache_dir: Path) -> Path:
    org, name = REPO.split("/")
    return cache_dir / HF_CACHE_SUBDIR / f"models--{org}--{name}"


def lay_out_snapshot(
    cache_dir: Path, model_dir: Path, commit: str, refs: tuple[str, ...] = ("main",)
) -> Path:
    """Put ``model_dir``'s files into the Hub cache as commit ``commit`` (40 hex)."""
    rc = repo_cache(cache_dir)
    snap = rc / "snapshots" / commit
    snap.mkdir(parents=True)
    (rc / "blobs").mkdir(exist_ok=True)
    (rc / "refs").mkdir(exist_ok=True)
    for f in sorted(model_dir.iterdir()):
        data = f.read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (rc / "blobs" / blob).write_bytes(data)
        os.symlink(os.path.join("..", "..", "blobs", blob), snap / f.name)
    # Hub repos carry files that are not models: they must not be copied.
    (rc / "blobs" / "readme").write_bytes(b"# models\n")
    os.symlink(os.path.join("..", "..", "blobs", "readme"), snap / "README.md")
    for ref in refs:
        (rc / "refs" / ref).write_text(commit)  # huggingface_hub reads it without stripping
    return snap


def commit_of(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


def hf_hub(tmp_path: Path, **changes: Any) -> ModelHub:
    cfg = HubConfig(cache_dir=tmp_path / "cache", repo_id=REPO, offline=True, token=TOKEN)
    return ModelHub(dataclasses.replace(cfg, **changes))


def test_offline_download_from_hub_cache(tmp_path: Path) -> None:
    src = make_model_dir(tmp_path, day=2)
    lay_out_snapshot(tmp_path / "cache", src, commit_of(1))
    hub = hf_hub(tmp_path)
    active = hub.download_models()  # default dest: cache_dir
    assert active.parent == tmp_path / "cache" / VERSIONS_DIR
    assert active.name == version_name((src / MANIFEST_NAME).read_bytes())
    assert verify_model_dir(active).ok
    assert not (active / "README.md").exists()
    assert not any(p.is_symlink() for p in active.iterdir())  # real bytes, not links to the cache
    prov = hub.status().provenance
    assert prov["source"] == "hf" and prov["commit"] == commit_of(1)
    assert prov["location"] == f"{REPO}@main" and prov["offline"] is True
    assert TOKEN not in json.dumps(prov)


def test_hf_hub_offline_env_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """offline=False in our config, HF_HUB_OFFLINE=1 in the library: only the cache is used."""
    from huggingface_hub import constants

    lay_out_snapshot(tmp_path / "cache", make_model_dir(tmp_path, day=2), commit_of(1))
    # huggingface_hub reads HF_HUB_OFFLINE at import; set both the variable and its reading.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    calls: list[dict[str, Any]] = []

    def recording_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return hf.snapshot_download(repo_id, **kwargs)

    cfg = HubConfig(cache_dir=tmp_path / "cache", repo_id=REPO, offline=False)
    hub = ModelHub(cfg, snapshot_download=recording_snapshot_download)
    assert verify_model_dir(hub.download_models()).ok
    (call,) = calls
    assert call["repo_id"] == REPO and call["revision"] == "main"
    assert call["local_files_only"] is True
    assert call["cache_dir"] == str(tmp_path / "cache" / HF_CACHE_SUBDIR)
    assert set(call["allow_patterns"]) == {MANIFEST_NAME, "*.safetensors", "*.onnx"}


def test_offline_without_cache_is_a_clear_error(tmp_path: Path) -> None:
    hub = hf_hub(tmp_path)
    with pytest.raises(HubError) as info:
        hub.download_models(tmp_path / "dest")
    msg = str(info.value)
    assert f"no cached copy of repo {REPO} at revision main" in msg
    assert "connect once or use a local source" in msg
    assert hub.status(tmp_path / "dest").active is None
    # Another revision than the cached one: same clear error.
    lay_out_snapshot(tmp_path / "cache", make_model_dir(tmp_path, day=2), commit_of(1))
    with pytest.raises(HubError, match="at revision v9"):
        hf_hub(tmp_path, revision="v9").download_models(tmp_path / "dest")


def test_revision_tag_and_commit(tmp_path: Path) -> None:
    lay_out_snapshot(tmp_path / "cache", make_model_dir(tmp_path, day=2), commit_of(1), ("v1",))
    a = hf_hub(tmp_path, revision="v1").download_models(tmp_path / "a")
    b = hf_hub(tmp_path, revision=commit_of(1)).download_models(tmp_path / "b")
    assert a.name == b.name and verify_model_dir(b).ok


def test_new_commit_activates_corrupt_commit_refused_and_cache_pruned(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    lay_out_snapshot(cache, make_model_dir(tmp_path, day=2), commit_of(1))
    hub = hf_hub(tmp_path)
    v1 = hub.download_models().name
    # A new commit on main: activated, and the older snapshot leaves the Hub cache.
    rc = repo_cache(cache)
    (rc / "refs" / "main").unlink()
    lay_out_snapshot(cache, make_model_dir(tmp_path, day=3, seed=1), commit_of(2))
    v2 = hub.download_models().name
    assert v2 != v1 and hub.status().active == v2
    assert sorted(p.name for p in (rc / "snapshots").iterdir()) == [commit_of(2)]
    assert hub.status().versions == (v1, v2)  # our store keeps the history
    # A commit that changes no model (a README edit): same version, cache still pruned.
    (rc / "refs" / "main").unlink()
    lay_out_snapshot(cache, tmp_path / "cache" / VERSIONS_DIR / v2, commit_of(9))
    assert hub.download_models().name == v2
    assert sorted(p.name for p in (rc / "snapshots").iterdir()) == [commit_of(9)]
    # A corrupted blob in the next commit: refused, v2 stays active.
    (rc / "refs" / "main").unlink()
    snap = lay_out_snapshot(cache, make_model_dir(tmp_path, day=4, seed=2), commit_of(3))
    blob = (snap / "loss_predictor.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(HubError, match="loss_predictor: checksum_mismatch"):
        hub.download_models()
    assert hub.status().active == v2
    assert (tmp_path / "cache" / POINTER_NAME).read_text().strip() == v2
    assert not [p for p in (tmp_path / "cache" / VERSIONS_DIR).iterdir() if p.name[0] == "."]


def test_network_failure_keeps_active_and_hides_token(tmp_path: Path) -> None:
    lay_out_snapshot(tmp_path / "cache", make_model_dir(tmp_path, day=2), commit_of(1))
    v1 = hf_hub(tmp_path).download_models().name

    def unreachable(repo_id: str, **kwargs: Any) -> str:
        raise ConnectionError(f"cannot reach huggingface.co for {repo_id} with {kwargs['token']}")

    cfg = HubConfig(cache_dir=tmp_path / "cache", repo_id=REPO, token=TOKEN)
    hub = ModelHub(cfg, snapshot_download=unreachable)
    with pytest.raises(HubError) as info:
        hub.download_models()
    assert "ConnectionError" in str(info.value) and TOKEN not in str(info.value)
    assert hub.status().active == v1


# ----------------------------------------------------------------------------- upload


class RecordingHfApi:
    """HfApi-compatible recorder: keeps the arguments and what the folder held."""

    def __init__(self, *, private: bool = True, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.private = private
        self.fail = fail
        self.uploaded: dict[str, bytes] = {}
        self.uploaded_verified: bool | None = None

    def create_repo(self, repo_id: str, **kw: Any) -> str:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://huggingface.co/{repo_id}"

    def repo_info(self, repo_id: str, **kw: Any) -> Any:
        self.calls.append(("repo_info", {"repo_id": repo_id, **kw}))
        return SimpleNamespace(private=self.private, sha=commit_of(0))

    def create_branch(self, repo_id: str, **kw: Any) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw: Any) -> Any:
        self.calls.append(("upload_folder", kw))
        if self.fail is not None:
            raise self.fail
        folder = Path(kw["folder_path"])
        self.uploaded = {p.name: p.read_bytes() for p in folder.iterdir()}
        self.uploaded_verified = verify_model_dir(folder).ok
        return SimpleNamespace(oid=commit_of(7), commit_url="https://example.invalid/commit")


def test_upload_to_hub_arguments(tmp_path: Path) -> None:
    src = make_model_dir(tmp_path, day=2)
    (src / "notes.txt").write_text("not a model file")
    api = RecordingHfApi()
    cfg = HubConfig(cache_dir=tmp_path / "cache", repo_id=REPO, token=TOKEN)
    pub = ModelHub(cfg, hf_api=api).upload_models(src)
    version = version_name((src / MANIFEST_NAME).read_bytes())
    assert pub.version == version and pub.commit == commit_of(7)
    assert pub.location == f"hf:{REPO}@main"
    names = [n for n, _ in api.calls]
    assert names == ["create_repo", "repo_info", "upload_folder"]
    create = api.calls[0][1]
    assert create == {
        "repo_id": REPO,
        "token": TOKEN,
        "private": True,
        "repo_type": "model",
        "exist_ok": True,
    }
    up = api.calls[2][1]
    assert up["repo_id"] == REPO and up["revision"] == "main" and up["token"] == TOKEN
    assert up["repo_type"] == "model" and version in up["commit_message"]
    assert sorted(up["allow_patterns"]) == sorted(
        [MANIFEST_NAME, *(f"{n}.safetensors" for n in MODELS)]
    )
    assert set(up["delete_patterns"]) == {"*.safetensors", "*.onnx"}
    # The uploaded folder was a verified copy holding only the model files.
    assert api.uploaded_verified is True
    assert sorted(api.uploaded) == sorted(up["allow_patterns"])
    assert api.uploaded[MANIFEST_NAME] == (src / MANIFEST_NAME).read_bytes()
    assert not Path(up["folder_path"]).exists()  # the staging copy is cleaned up


def test_upload_to_branch_creates_it(tmp_path: Path) -> None:
    api = RecordingHfApi()
    cfg = HubConfig(cache_dir=tmp_path, repo_id=REPO, token=TOKEN, revision="canary")
    ModelHub(cfg, hf_api=api).upload_models(make_model_dir(tmp_path, day=2))
    assert [n for n, _ in api.calls] == [
        "create_repo",
        "repo_info",
        "create_branch",
        "upload_folder",
    ]
    assert api.calls[2][1]["branch"] == "canary" and api.calls[3][1]["revision"] == "canary"


def test_upload_refusals(tmp_path: Path) -> None:
    src = make_model_dir(tmp_path, day=2)
    cfg = HubConfig(cache_dir=tmp_path, repo_id=REPO, token=TOKEN)
    # a public repository
    api = RecordingHfApi(private=False)
    with pytest.raises(HubError, match="is public"):
        ModelHub(cfg, hf_api=api).upload_models(src)
    assert "upload_folder" not in [n for n, _ in api.calls]
    assert ModelHub(cfg, hf_api=api).upload_models(src, allow_public=True).commit == commit_of(7)
    # no token: nothing is called
    api = RecordingHfApi()
    with pytest.raises(HubError, match="HF_TOKEN"):
        ModelHub(dataclasses.replace(cfg, token=None), hf_api=api).upload_models(src)
    assert api.calls == []
    # offline
    with pytest.raises(HubError, match="offline"):
        ModelHub(dataclasses.replace(cfg, offline=True), hf_api=api).upload_models(src)
    # a Hub failure (echoing the token) becomes a HubError without the token
    api = RecordingHfApi(fail=PermissionError(f"403 for token {TOKEN}"))
    with pytest.raises(HubError) as info:
        ModelHub(cfg, hf_api=api).upload_models(src)
    assert "PermissionError" in str(info.value) and TOKEN not in str(info.value)
    # a directory that does not verify: nothing is called
    api = RecordingHfApi()
    (src / "compression_oracle.safetensors").unlink()
    with pytest.raises(HubError, match="compression_oracle: missing"):
        ModelHub(cfg, hf_api=api).upload_models(src)
    assert api.calls == []


def test_cli_pull_offline_from_the_environment(tmp_path: Path) -> None:
    """The real command in a fresh process: HF_HUB_OFFLINE=1 read by huggingface_hub itself."""
    cache = tmp_path / "cache"
    src = make_model_dir(tmp_path, day=2)
    lay_out_snapshot(cache, src, commit_of(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OXIDIZE_"))} | {
        "HF_HUB_OFFLINE": "1",
        "OXIDIZE_MODEL_DIR": str(cache),
        "HF_TOKEN": TOKEN,
    }
    cmd = [sys.executable, "-m", "oxidize_ml.cli", "hub", "pull", "--repo", REPO]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    v = version_name((src / MANIFEST_NAME).read_bytes())
    assert f"activated {v}" in r.stdout and TOKEN not in r.stdout + r.stderr
    assert (cache / POINTER_NAME).read_text().strip() == v


def test_cli_pull_offline_without_cache_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from oxidize_ml.cli import app

    monkeypatch.setenv("OXIDIZE_MODEL_DIR", str(tmp_path / "cache"))
    r = CliRunner().invoke(app, ["hub", "pull", "--repo", "acme/missing", "--offline"])
    assert r.exit_code == 1
    assert "no cached copy of repo acme/missing at revision main" in " ".join(r.output.split())
    assert r.exception is None or isinstance(r.exception, SystemExit)
