"""Readers of the active version never see it pruned under them (issue 8, item 10)."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import pytest
from hub_model_dirs import make_model_dir

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.hub import HubConfig, ModelHub, verify_model_dir
from oxidize_ml.hub.store import VERSIONS_DIR, Store


def hub_for(tmp_path: Path, **changes) -> ModelHub:  # type: ignore[no-untyped-def]
    cfg = HubConfig(cache_dir=tmp_path / "cache", source="local", local_path=tmp_path / "store")
    return ModelHub(dataclasses.replace(cfg, **changes))


def test_sync_with_keep_one_never_prunes_what_a_reader_is_loading(tmp_path: Path) -> None:
    n_versions, n_readers = 12, 3
    (tmp_path / "src").mkdir()
    dirs = [
        make_model_dir(tmp_path / "src", day=1 + k, seed=k, default_enabled=True)
        for k in range(n_versions)
    ]
    publisher = hub_for(tmp_path, keep_versions=n_versions + 1)
    syncer = hub_for(tmp_path, keep_versions=1)  # the default grace period applies
    dest = tmp_path / "dest"
    publisher.upload_models(dirs[0])
    syncer.download_models(dest)
    done = threading.Event()
    failures: list[str] = []
    loads = [0] * n_readers

    def reader(idx: int) -> None:
        engine = MlEngine(EngineConfig(load_default_models=False))
        watcher = hub_for(tmp_path)  # another hub object, as another process would have
        while not done.is_set():
            active = watcher.active_dir(dest)
            if active is None:
                failures.append("no active version")
                continue
            report = verify_model_dir(active)
            status = engine.load_models(active)
            if not report.ok or status["loss_predictor"] != "loaded":
                failures.append(f"{active.name}: {report.summary()} / {status}")
            loads[idx] += 1

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(n_readers)]
    for t in threads:
        t.start()
    try:
        for d in dirs[1:]:
            publisher.upload_models(d)
            syncer.download_models(dest)
            time.sleep(0.005)  # let the readers resolve CURRENT between switches
    finally:
        done.set()
        for t in threads:
            t.join(30.0)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert min(loads) >= 1 and sum(loads) >= n_versions


def test_prune_spares_recently_retired_versions_then_deletes_them(tmp_path: Path) -> None:
    publisher = hub_for(tmp_path, keep_versions=10)
    names = [
        publisher.upload_models(make_model_dir(tmp_path, day=d, seed=d)).version for d in (2, 3, 4)
    ]
    store = Store(tmp_path / "store")
    assert store.current() == names[2]
    # Just retired: kept despite keep=1, for the grace period.
    assert store.prune(1, grace_s=60.0) == []
    assert sorted(os.listdir(tmp_path / "store" / VERSIONS_DIR)) == names
    # After the grace period (clock passed in), only the active one remains.
    assert store.prune(1, grace_s=60.0, now=time.time() + 61.0) == names[:2]
    assert os.listdir(tmp_path / "store" / VERSIONS_DIR) == [names[2]]
    # The active version is never pruned, whatever the clock says.
    assert store.prune(1, grace_s=0.0) == []


def test_activate_stamps_the_retired_version(tmp_path: Path) -> None:
    publisher = hub_for(tmp_path, keep_versions=10)
    first = publisher.upload_models(make_model_dir(tmp_path, day=2)).version
    vdir = tmp_path / "store" / VERSIONS_DIR / first
    os.utime(vdir, (1_000_000.0, 1_000_000.0))  # long ago
    store = Store(tmp_path / "store")
    assert store.prune(1, grace_s=60.0, now=1_000_000.0 + 3600) == []  # still active
    publisher.upload_models(make_model_dir(tmp_path, day=3))
    assert os.stat(vdir).st_mtime > time.time() - 60  # retirement time stamped
    assert store.prune(1, grace_s=60.0) == []
    assert verify_model_dir(vdir).ok


def test_prune_grace_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prune_grace_s"):
        hub_for(tmp_path, prune_grace_s=-1.0)
    assert "prune_grace_s=300.0" in repr(hub_for(tmp_path).config)


def test_a_pointer_swapped_during_a_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CURRENT is replaced by an atomic rename; a safe read racing it refuses the
    # file as "changed while being opened". Readers must read again, not report
    # that there is no active version (seen once in CI with three readers).
    import oxidize_ml.hub.store as store_mod
    from oxidize_ml.runtime.safe_files import UnsafeFileError

    (tmp_path / "src").mkdir()
    d = make_model_dir(tmp_path / "src", day=1, seed=0, default_enabled=True)
    hub = hub_for(tmp_path)
    hub.upload_models(d)
    dest = tmp_path / "dest"
    hub.download_models(dest)
    expected = hub.active_dir(dest)
    assert expected is not None
    real = store_mod.read_path
    raced = [0]

    def racing_read(path: Path, limit: int) -> bytes:
        if Path(path).name == "CURRENT" and raced[0] == 0:
            raced[0] += 1
            raise UnsafeFileError(f"{path} changed while being opened; refusing it")
        return real(path, limit)

    monkeypatch.setattr(store_mod, "read_path", racing_read)
    assert hub.active_dir(dest) == expected and raced[0] == 1
