"""In-tree PEP 517 backend: setuptools, plus an opt-in mypyc build of the packet path.

``OXIDIZE_ML_COMPILE=1 pip install .`` compiles the modules in
``compiled-modules.txt`` (see ``setup.py``); without the variable every hook is
setuptools' own. Following setuptools' documented pattern for dynamic build
requirements, mypy (and the runtime dependencies, for mypy's view of their
types) is requested only for a compiled wheel, so a pure build never downloads it.

Only `build_wheel` may compile. Every other hook runs ``setup.py`` with the
variable set to "0": requirement and metadata hooks run before mypy is installed
and need no extensions, an sdist ships sources, and an editable install must not
compile (a compiled module next to its ``.py`` would shadow edits to the source).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mypyc_config import VARIABLE, build_requirements, compile_requested
from setuptools import build_meta as _orig

# The hooks not wrapped below, and setuptools' __legacy__ backend.
from setuptools.build_meta import *

_ConfigSettings = dict[str, str | list[str] | None] | None


@contextmanager
def _pure() -> Iterator[None]:
    """Run a setuptools hook with compiling off (``setup.py`` reads the variable)."""
    saved = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[VARIABLE]
        else:
            os.environ[VARIABLE] = saved


def get_requires_for_build_wheel(config_settings: _ConfigSettings = None) -> list[str]:
    compiling = compile_requested()
    with _pure():
        requires = _orig.get_requires_for_build_wheel(config_settings)
    return [*requires, *build_requirements()] if compiling else requires


def build_wheel(
    wheel_directory: str,
    config_settings: _ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    compile_requested()
    # setuptools stages the wheel's files in build/lib* and packs whatever is there,
    # so a module that left the compile list (or the source) would ship stale:
    # an old compiled .so shadows the .py beside it.
    for staged in Path("build").glob("lib*"):
        shutil.rmtree(staged)
    return _orig.build_wheel(wheel_directory, config_settings, metadata_directory)


def _pure_hook(hook: Callable[..., Any]) -> Callable[..., Any]:
    """``hook`` run with compiling off, after a bad variable value fails it early."""

    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> Any:
        compile_requested()
        with _pure():
            return hook(*args, **kwargs)

    return run


prepare_metadata_for_build_wheel = _pure_hook(_orig.prepare_metadata_for_build_wheel)
get_requires_for_build_sdist = _pure_hook(_orig.get_requires_for_build_sdist)
build_sdist = _pure_hook(_orig.build_sdist)
get_requires_for_build_editable = _pure_hook(_orig.get_requires_for_build_editable)
prepare_metadata_for_build_editable = _pure_hook(_orig.prepare_metadata_for_build_editable)


def build_editable(
    wheel_directory: str,
    config_settings: _ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    if compile_requested():
        print(
            f"oxidize-ml: {VARIABLE}=1 ignored for an editable install (compiled modules "
            "would shadow edits to src/); use a non-editable `pip install .` to compile",
            file=sys.stderr,
        )
    with _pure():
        return _orig.build_editable(wheel_directory, config_settings, metadata_directory)
