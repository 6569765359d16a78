"""Model directories another user could write to, and special files, are refused (issue 8, 5-6)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from test_models_loading import make_model_dir

from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.models import MODEL_NAMES

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _engine() -> MlEngine:
    return MlEngine(EngineConfig(load_default_models=False))


def _load_bounded(d: Path, fifo: Path | None = None, timeout: float = 20.0) -> dict[str, str]:
    """engine.load_models(d) in a thread; fails instead of hanging on a special file."""
    box: dict[str, object] = {}
    engine = _engine()

    def target() -> None:
        try:
            box["status"] = engine.load_models(d)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_models hung on a special file")
    assert "error" not in box, box.get("error")
    assert not engine.models_loaded() or box["status"]
    return box["status"]  # type: ignore[return-value]


def test_world_writable_model_directory_is_refused(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    os.chmod(d, 0o777)
    engine = _engine()
    status = engine.load_models(d)
    # The engine also reports the path selector, read under the same rules.
    assert set(status) == {*MODEL_NAMES, "path_selector"}
    assert all(s.startswith("unsafe: ") and "world-writable" in s for s in status.values())
    assert not engine.models_loaded()
    os.chmod(d, 0o755)
    status = _engine().load_models(d)
    assert status.pop("path_selector").startswith("missing: ")  # this directory has none
    assert status == dict.fromkeys(MODEL_NAMES, "loaded")


def test_world_writable_model_file_is_refused(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    os.chmod(d / "loss_predictor.safetensors", 0o666)
    status = _engine().load_models(d)
    assert status["loss_predictor"].startswith("unsafe: ")
    assert "world-writable file" in status["loss_predictor"]
    assert status["congestion_controller"] == status["compression_oracle"] == "loaded"
    os.chmod(d / "manifest.json", 0o666)
    status = _engine().load_models(d)
    assert all(s.startswith("unsafe: ") for s in status.values())


def test_model_directory_symlinked_to_an_open_folder_is_refused(tmp_path: Path) -> None:
    real = make_model_dir(tmp_path / "real")
    os.chmod(real, 0o777)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    status = _engine().load_models(link)
    assert all(s.startswith("unsafe: ") for s in status.values())


@pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root")
def test_model_file_of_another_user_is_refused(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    os.chown(d / "congestion_controller.safetensors", 12345, 12345)
    status = _engine().load_models(d)
    assert status["congestion_controller"].startswith("unsafe: ")
    assert "uid 12345" in status["congestion_controller"]
    assert status["loss_predictor"] == "loaded"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_place_of_a_model_file_does_not_hang(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    fifo = d / "compression_oracle.safetensors"
    fifo.unlink()
    os.mkfifo(fifo, 0o600)
    status = _load_bounded(d, fifo)
    assert status["compression_oracle"].startswith("unsafe: ")
    assert "FIFO" in status["compression_oracle"]
    assert status["loss_predictor"] == status["congestion_controller"] == "loaded"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_place_of_the_manifest_does_not_hang(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    fifo = d / "manifest.json"
    fifo.unlink()
    os.mkfifo(fifo, 0o600)
    status = _load_bounded(d, fifo)
    assert all(s.startswith("unsafe: ") and "FIFO" in s for s in status.values())
