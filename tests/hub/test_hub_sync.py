"""ModelHub with a local source: publish, download, verify, activate, refuse, prune, sync."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import pytest
from hub_model_dirs import MODELS
from hub_model_dirs import make_model_dir as _make_model_dir
from typer.testing import CliRunner

from oxidize_ml.config import EnvSettings
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.hub import (
    MANIFEST_NAME,
    HubConfig,
    HubError,
    ModelHub,
    verify_model_dir,
    version_name,
)
from oxidize_ml.hub.hub import POINTER_NAME, PROVENANCE_NAME, VERSIONS_DIR
from oxidize_ml.types import TrafficContext


def make_model_dir(root: Path, day: int, seed: int = 0) -> Path:
    """A model directory whose models are marked as beating their heuristics."""
    return _make_model_dir(root, day, seed, default_enabled=True)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def hub_for(tmp_path: Path, **changes) -> ModelHub:
    cfg = HubConfig(cache_dir=tmp_path / "cache", source="local", local_path=tmp_path / "store")
    return ModelHub(dataclasses.replace(cfg, **changes))


def hidden_dirs(store: Path) -> list[str]:
    return [p.name for p in (store / VERSIONS_DIR).iterdir() if p.name.startswith(".")]


def test_config_checks_and_masked_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        HubConfig(cache_dir=tmp_path, source="s3")
    with pytest.raises(ValueError, match="local_path"):
        HubConfig(cache_dir=tmp_path, source="local")
    with pytest.raises(ValueError, match="org/name"):
        HubConfig(cache_dir=tmp_path, repo_id="../../etc")
    with pytest.raises(ValueError, match="revision"):
        HubConfig(cache_dir=tmp_path, revision="../x")
    with pytest.raises(ValueError, match="keep_versions"):
        HubConfig(cache_dir=tmp_path, keep_versions=0)
    with pytest.raises(ValueError, match="sync_interval_s"):
        HubConfig(cache_dir=tmp_path, sync_interval_s=0.01)
    settings = EnvSettings(model_dir=tmp_path / "m", hf_token="hf_secret_value")
    cfg = HubConfig.from_settings(settings, revision="v2")
    assert cfg.cache_dir == tmp_path / "m" and cfg.token == "hf_secret_value"
    assert cfg.revision == "v2" and cfg.repo_id == "oxidize-ml/oxidize-models"
    assert "hf_secret_value" not in repr(cfg) and "hf_secret_value" not in str(cfg)
    assert "'***'" in repr(cfg)


def test_version_name_is_time_then_content(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path, day=2)
    raw = (d / MANIFEST_NAME).read_bytes()
    name = version_name(raw)
    assert name.startswith("20260102T000000Z-") and len(name) == len("20260102T000000Z-") + 12
    assert version_name(raw + b" ") != name  # any byte changes the identity
    with pytest.raises(HubError, match="created_at"):
        version_name(json.dumps({"models": {}}).encode())


def test_local_round_trip(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    src = make_model_dir(tmp_path, day=2)
    pub = hub.upload_models(src)
    store = tmp_path / "store"
    assert (store / POINTER_NAME).read_text().strip() == pub.version
    assert verify_model_dir(store / VERSIONS_DIR / pub.version).ok

    dest = tmp_path / "dest"
    active = hub.download_models(dest)
    assert active == dest / VERSIONS_DIR / pub.version
    report = verify_model_dir(active)
    assert report.ok, report.summary()
    # Exactly the manifest's files, plus our provenance note; private modes.
    assert sorted(p.name for p in active.iterdir()) == sorted(
        [MANIFEST_NAME, PROVENANCE_NAME, *(f"{n}.safetensors" for n in MODELS)]
    )
    assert (active / MANIFEST_NAME).read_bytes() == (src / MANIFEST_NAME).read_bytes()
    assert all((p.stat().st_mode & 0o077) == 0 for p in active.iterdir())
    assert (dest.stat().st_mode & 0o077) == 0
    st = hub.status(dest)
    assert st.active == pub.version and st.versions == (pub.version,) and st.report.ok
    assert st.provenance["source"] == "local"
    # Same version again: nothing copied, same directory.
    mtime = active.stat().st_mtime_ns
    assert hub.download_models(dest) == active
    assert active.stat().st_mtime_ns == mtime
    assert hidden_dirs(dest) == []


def test_plain_model_dir_is_a_source(tmp_path: Path) -> None:
    src = make_model_dir(tmp_path, day=3)
    hub = hub_for(tmp_path, local_path=src)
    active = hub.download_models(tmp_path / "dest")
    assert active.name == version_name((src / MANIFEST_NAME).read_bytes())
    assert verify_model_dir(active).ok


def test_corrupt_source_is_refused_and_previous_stays_active(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    dest = tmp_path / "dest"
    v1 = hub.upload_models(make_model_dir(tmp_path, day=2)).version
    hub.download_models(dest)
    v2 = hub.upload_models(make_model_dir(tmp_path, day=3, seed=1)).version
    flip_byte(tmp_path / "store" / VERSIONS_DIR / v2 / "congestion_controller.safetensors")
    with pytest.raises(HubError, match="congestion_controller: checksum_mismatch"):
        hub.download_models(dest)
    assert hub.status(dest).active == v1
    assert (dest / POINTER_NAME).read_text().strip() == v1
    assert sorted(p.name for p in (dest / VERSIONS_DIR).iterdir()) == [v1]  # no staging left


def test_partial_source_is_refused(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    dest = tmp_path / "dest"
    v1 = hub.upload_models(make_model_dir(tmp_path, day=2)).version
    hub.download_models(dest)
    v2 = hub.upload_models(make_model_dir(tmp_path, day=3, seed=1)).version
    (tmp_path / "store" / VERSIONS_DIR / v2 / "loss_predictor.safetensors").unlink()
    with pytest.raises(HubError, match="loss_predictor.safetensors is named in the manifest"):
        hub.download_models(dest)
    assert hub.status(dest).active == v1 and hidden_dirs(dest) == []


def test_other_feature_schema_is_refused(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    dest = tmp_path / "dest"
    v1 = hub.upload_models(make_model_dir(tmp_path, day=2)).version
    hub.download_models(dest)
    v2 = hub.upload_models(make_model_dir(tmp_path, day=3, seed=1)).version
    man = tmp_path / "store" / VERSIONS_DIR / v2 / MANIFEST_NAME
    data = json.loads(man.read_text())
    data["feature_schema"]["version"] += 1
    man.write_text(json.dumps(data))
    with pytest.raises(HubError, match="schema_mismatch"):
        hub.download_models(dest)
    assert hub.status(dest).active == v1 and hidden_dirs(dest) == []


def test_upload_refuses_a_directory_that_does_not_verify(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    src = make_model_dir(tmp_path, day=2)
    flip_byte(src / "loss_predictor.safetensors")
    with pytest.raises(HubError, match="refusing to publish.*loss_predictor: checksum_mismatch"):
        hub.upload_models(src)
    assert not (tmp_path / "store").exists()
    with pytest.raises(HubError, match="no manifest.json"):
        hub.upload_models(tmp_path)


def test_keep_versions_prunes_oldest_never_active(tmp_path: Path) -> None:
    hub = hub_for(tmp_path, keep_versions=2, prune_grace_s=0.0)
    dest = tmp_path / "dest"
    names = []
    for day in (2, 3, 4):
        names.append(hub.upload_models(make_model_dir(tmp_path, day=day, seed=day)).version)
        hub.download_models(dest)
    assert hub.status(dest).versions == tuple(names[1:])
    assert hub.status(dest).active == names[2]
    assert sorted(p.name for p in (tmp_path / "store" / VERSIONS_DIR).iterdir()) == names[1:]


def test_older_source_version_is_not_activated_unless_allowed(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    dest = tmp_path / "dest"
    newer = hub.upload_models(make_model_dir(tmp_path, day=5)).version
    hub.download_models(dest)
    older = hub.upload_models(make_model_dir(tmp_path, day=4, seed=1)).version  # a stale publish
    with pytest.raises(HubError, match="created before the active"):
        hub.download_models(dest)
    engine = MlEngine(EngineConfig(load_default_models=False))
    assert hub.sync(engine, dest) is True  # the engine gets the active (newer) version
    assert hub.sync(engine, dest) is False
    assert hub.status(dest).active == newer
    rolled = hub.with_config(allow_downgrade=True).download_models(dest)
    assert rolled.name == older and hub.status(dest).active == older


def test_bad_pointer_and_litter_are_handled(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    dest = tmp_path / "dest"
    (dest / VERSIONS_DIR / ".staging-crashed").mkdir(parents=True)
    (dest / VERSIONS_DIR / ".staging-crashed" / "x").write_bytes(b"half")
    (dest / POINTER_NAME).write_text("../../../etc\n")
    st = hub.status(dest)
    assert st.active is None and "not a version name" in st.pointer_error
    assert hub.active_dir(dest) is None
    v = hub.upload_models(make_model_dir(tmp_path, day=2)).version
    assert hub.download_models(dest).name == v
    assert hidden_dirs(dest) == [] and hub.status(dest).pointer_error is None


def test_damaged_active_copy_is_repaired(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    dest = tmp_path / "dest"
    hub.upload_models(make_model_dir(tmp_path, day=2))
    active = hub.download_models(dest)
    flip_byte(active / "compression_oracle.safetensors")
    assert not hub.status(dest).report.ok
    assert hub.download_models(dest) == active
    assert hub.status(dest).report.ok and hidden_dirs(dest) == []


def test_local_source_errors(tmp_path: Path) -> None:
    hub = hub_for(tmp_path, local_path=tmp_path / "nowhere")
    with pytest.raises(HubError, match="does not exist"):
        hub.download_models(tmp_path / "dest")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HubError, match="neither a hub store"):
        hub_for(tmp_path, local_path=empty).download_models(tmp_path / "dest")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(HubError, match="world-writable"):
        hub_for(tmp_path, local_path=open_dir).download_models(tmp_path / "dest")
    # A destination or a store another user could write to is refused too.
    src = make_model_dir(tmp_path, day=2)
    with pytest.raises(HubError, match="cannot update the model store.*world-writable"):
        hub_for(tmp_path, local_path=src).download_models(open_dir)
    with pytest.raises(HubError, match="cannot publish into.*world-writable"):
        hub_for(tmp_path, local_path=open_dir).upload_models(src)
    assert list(open_dir.iterdir()) == []


def test_adownload_models(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    v = hub.upload_models(make_model_dir(tmp_path, day=2)).version
    active = asyncio.run(hub.adownload_models(tmp_path / "dest"))
    assert active.name == v and verify_model_dir(active).ok


def _features(i: int) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000 + (i % 50) * 100,
        rtt_var_us=4_000,
        bandwidth_bps=50e6,
        loss_rate=0.01 * (i % 3),
        loss_trend=0.0,
        inflight=50,
        cwnd=64_000,
        time_since_loss_ms=100.0,
        buffer_occupancy=0.2,
        recent_retx=0,
    )


def test_sync_hot_swaps_while_decisions_run(tmp_path: Path) -> None:
    hub = hub_for(tmp_path)
    dest = tmp_path / "dest"
    engine = MlEngine(EngineConfig(load_default_models=False))
    errors: list[BaseException] = []
    stop = threading.Event()
    made = [0]

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            try:
                t = 1000.0 + i * 0.001
                engine.observe(_features(i), now=t)
                engine.fec_decision(now=t)
                engine.congestion_action(now=t)
                engine.compress(b"payload %d " % i * 40)
                engine.select_path(TrafficContext(i % 5), now=t)
                made[0] += 1
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
                return
            i += 1

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        seen = []
        for day in (2, 3, 4, 5):
            v = hub.upload_models(make_model_dir(tmp_path, day=day, seed=day)).version
            assert hub.sync(engine, dest) is True
            assert hub.sync(engine, dest) is False  # nothing new
            seen.append(v)
            assert hub.status(dest).active == v
            status = hub.last_load_status
            # The engine also answers for its path-selector slot (no such model here).
            assert set(status) == {*MODELS, "path_selector"}
            stats = engine.stats()
            for name, s in status.items():
                # Whatever the engine answers, a "loaded" model must show in its stats.
                if s == "loaded":
                    assert getattr(stats, name).model_loaded
        deadline = time.monotonic() + 10.0
        while made[0] < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(10.0)
    assert errors == []
    assert made[0] >= 50
    assert len(set(seen)) == 4


def test_background_sync_picks_up_new_versions_and_stops(tmp_path: Path) -> None:
    hub = hub_for(tmp_path, sync_interval_s=1.0)
    dest = tmp_path / "dest"
    engine = MlEngine(EngineConfig(load_default_models=False))
    v1 = hub.upload_models(make_model_dir(tmp_path, day=2)).version
    handle = hub.start_background_sync(engine, dest_dir=dest, seed=1)
    try:
        deadline = time.monotonic() + 15.0
        while handle.stats().updates < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hub.status(dest).active == v1 and handle.stats().updates == 1
        v2 = hub.upload_models(make_model_dir(tmp_path, day=3, seed=1)).version
        while handle.stats().updates < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hub.status(dest).active == v2
        # A broken source is counted and reported, and the thread keeps going.
        (tmp_path / "store" / POINTER_NAME).write_text("garbage\n")
        attempts = handle.stats().attempts
        while handle.stats().attempts < attempts + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        while handle.stats().failures < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        st = handle.stats()
        assert st.failures >= 1 and "not a version name" in st.last_error and st.running
        assert hub.status(dest).active == v2
    finally:
        assert handle.stop(timeout=15.0)
    assert not handle.running


def test_cli_push_pull_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oxidize_ml.cli import app

    monkeypatch.setenv("OXIDIZE_MODEL_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    src = make_model_dir(tmp_path, day=2)
    store = tmp_path / "store"
    r = runner.invoke(app, ["hub", "push", str(src), "--local", str(store)])
    assert r.exit_code == 0, r.output
    v = version_name((src / MANIFEST_NAME).read_bytes())
    assert f"published {v}" in r.output
    r = runner.invoke(app, ["hub", "pull", "--local", str(store)])
    assert r.exit_code == 0, r.output
    assert f"activated {v}" in r.output
    assert (tmp_path / "cache" / POINTER_NAME).read_text().strip() == v  # default dest
    r = runner.invoke(app, ["hub", "pull", "--local", str(store)])
    assert r.exit_code == 0 and "up to date" in r.output
    r = runner.invoke(app, ["hub", "status", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["active"] == v and out["ok"] is True and set(out["models"]) == set(MODELS)
    r = runner.invoke(app, ["hub", "status"])
    assert r.exit_code == 0 and v in r.output
    # errors: usage and refusals
    r = runner.invoke(app, ["hub", "push", str(src)])
    assert r.exit_code == 2 and "--local" in r.output
    r = runner.invoke(app, ["hub", "pull", "--local", str(store), "--repo", "a/b"])
    assert r.exit_code == 2
    flip_byte(src / "loss_predictor.safetensors")
    r = runner.invoke(app, ["hub", "push", str(src), "--local", str(store)])
    assert r.exit_code == 1 and "refusing to publish" in r.output
    r = runner.invoke(app, ["hub", "status", "--dest", str(tmp_path / "none")])
    assert r.exit_code == 1 and "none" in r.output
