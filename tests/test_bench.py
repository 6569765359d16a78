"""`oxidize_ml.bench.environment` reports whether the package runs mypyc-compiled."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
from pathlib import Path

import pytest

from oxidize_ml.bench import compiled_modules, environment

ROOT = Path(__file__).resolve().parents[1]
EXTENSION_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _is_extension(path: str | None) -> bool:
    return path is not None and path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_compiled_modules_finds_extension_files_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "loss").mkdir()
    for name in ("engine.py", "engine.pyc", "loss/ewma.py", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / f"engine{EXTENSION_SUFFIX}").write_bytes(b"")
    (tmp_path / f"loss/ewma{EXTENSION_SUFFIX}").write_bytes(b"")

    assert compiled_modules(tmp_path) == [
        f"engine{EXTENSION_SUFFIX}",
        f"loss/ewma{EXTENSION_SUFFIX}",
    ]
    assert compiled_modules(tmp_path / "loss") == [f"ewma{EXTENSION_SUFFIX}"]


def test_compiled_modules_is_empty_for_a_pure_package(tmp_path: Path) -> None:
    (tmp_path / "engine.py").write_text("")
    assert compiled_modules(tmp_path) == []


def test_environment_matches_how_the_package_was_loaded() -> None:
    loaded = {
        name
        for name, module in list(sys.modules.items())
        if name.startswith("oxidize_ml.") and _is_extension(getattr(module, "__file__", None))
    }
    found = compiled_modules()
    # "loss/ewma.cpython-311-x86_64-linux-gnu.so" -> "oxidize_ml.loss.ewma"
    found_names = {"oxidize_ml." + f.split(".", 1)[0].replace("/", ".") for f in found}
    assert loaded <= found_names
    expected = f"mypyc, {len(found)} modules" if found else "no (pure Python)"
    assert environment()["compiled"] == expected


@pytest.mark.skipif(
    os.environ.get("OXIDIZE_ML_EXPECT_COMPILED") != "1",
    reason="only in scripts/test-compiled.sh, which runs the suite against a mypyc build",
)
def test_compiled_run_imports_every_listed_module_compiled() -> None:
    # The compiled pass must test the installed build, not src/ (which has no .so).
    listed = [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "_build" / "compiled-modules.txt").read_text().splitlines()
    ]
    names = [m.removesuffix(".py").replace("/", ".") for m in listed if m]
    assert names
    for name in names:
        path = importlib.import_module(name).__file__
        assert _is_extension(path), f"{name} was imported from {path}, not an extension module"
        assert not Path(path).is_relative_to(ROOT / "src"), f"{name} was imported from src/"
    assert environment()["compiled"] == f"mypyc, {len(names)} modules"
