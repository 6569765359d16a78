"""The hub refuses sources another user could write to and special files (issue 8, 5-6)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from pathlib import Path

import pytest
from hub_model_dirs import make_model_dir as _make_model_dir

from oxidize_ml.hub import HubConfig, HubError, ModelHub
from oxidize_ml.hub.hub import POINTER_NAME, VERSIONS_DIR

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def make_model_dir(root: Path, day: int, seed: int = 0) -> Path:
    return _make_model_dir(root, day, seed, default_enabled=True)


def hub_for(tmp_path: Path, **changes) -> ModelHub:  # type: ignore[no-untyped-def]
    cfg = HubConfig(cache_dir=tmp_path / "cache", source="local", local_path=tmp_path / "store")
    return ModelHub(dataclasses.replace(cfg, **changes))


def published_store(tmp_path: Path) -> tuple[ModelHub, str]:
    hub = hub_for(tmp_path)
    version = hub.upload_models(make_model_dir(tmp_path, day=2)).version
    return hub, version


def test_world_writable_versions_dir_in_source_is_refused(tmp_path: Path) -> None:
    hub, _ = published_store(tmp_path)
    os.chmod(tmp_path / "store" / VERSIONS_DIR, 0o777)
    with pytest.raises(HubError, match="world-writable"):
        hub.download_models(tmp_path / "dest")
    assert hub.active_dir(tmp_path / "dest") is None


def test_world_writable_file_in_source_is_refused(tmp_path: Path) -> None:
    hub, version = published_store(tmp_path)
    os.chmod(tmp_path / "store" / VERSIONS_DIR / version / "loss_predictor.safetensors", 0o666)
    with pytest.raises(HubError, match="world-writable file"):
        hub.download_models(tmp_path / "dest")
    assert hub.active_dir(tmp_path / "dest") is None
    # A plain model directory as the source: same rule for its files.
    src = make_model_dir(tmp_path, day=3)
    os.chmod(src / "manifest.json", 0o666)
    with pytest.raises(HubError, match="world-writable file"):
        hub_for(tmp_path, local_path=src).download_models(tmp_path / "dest")


def test_version_symlinked_to_an_open_folder_is_refused(tmp_path: Path) -> None:
    hub, version = published_store(tmp_path)
    vdir = tmp_path / "store" / VERSIONS_DIR / version
    elsewhere = tmp_path / "open-folder"
    shutil.move(vdir, elsewhere)
    os.chmod(elsewhere, 0o777)
    vdir.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(HubError, match="world-writable"):
        hub.download_models(tmp_path / "dest")
    os.chmod(elsewhere, 0o700)  # the same link to a private folder is fine
    assert hub.download_models(tmp_path / "dest").name == version


@pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root")
def test_source_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    hub, version = published_store(tmp_path)
    os.chown(tmp_path / "store" / VERSIONS_DIR / version, 12345, 12345)
    with pytest.raises(HubError, match="uid 12345"):
        hub.download_models(tmp_path / "dest")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name", ["loss_predictor.safetensors", "manifest.json", POINTER_NAME])
def test_fifo_in_source_does_not_hang_pull_nor_keep_the_lock(tmp_path: Path, name: str) -> None:
    hub, version = published_store(tmp_path)
    target = (
        tmp_path / "store" / POINTER_NAME
        if name == POINTER_NAME
        else tmp_path / "store" / VERSIONS_DIR / version / name
    )
    target.unlink()
    os.mkfifo(target, 0o600)
    dest = tmp_path / "dest"
    box: dict[str, object] = {}

    def pull() -> None:
        try:
            hub.download_models(dest)
        except BaseException as exc:  # noqa: BLE001 - checked below
            box["error"] = exc

    t = threading.Thread(target=pull, daemon=True)
    t.start()
    t.join(20.0)
    if t.is_alive():
        os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("hub pull hung on a FIFO in the source")
    assert isinstance(box.get("error"), HubError)
    assert "FIFO" in str(box["error"])
    # The store lock was released: another pull from a good source goes through.
    good = hub_for(tmp_path, local_path=make_model_dir(tmp_path, day=3))
    assert good.download_models(dest).is_dir()
