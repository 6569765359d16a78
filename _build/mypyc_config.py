"""What an OXIDIZE_ML_COMPILE build compiles, read by both `backend` and ``setup.py``.

The variable is read here only: unset or "0" builds pure Python, "1" compiles the
modules listed in ``compiled-modules.txt`` with mypyc; anything else is an error.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

VARIABLE = "OXIDIZE_ML_COMPILE"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODULE_LIST = HERE / "compiled-modules.txt"


def compile_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``OXIDIZE_ML_COMPILE`` asks for a mypyc build (raises on other values)."""
    value = environ.get(VARIABLE, "").strip()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise ValueError(
        f"{VARIABLE}={value!r}: expected unset, '0' (pure Python) or '1' (compile with mypyc)"
    )


def compiled_modules() -> list[str]:
    """Paths of the modules to compile, relative to ``src/`` (``oxidize_ml/...py``)."""
    modules = []
    for number, raw in enumerate(MODULE_LIST.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("oxidize_ml/") or not line.endswith(".py"):
            raise ValueError(
                f"{MODULE_LIST.name}:{number}: {line!r} is not an oxidize_ml/...py path"
            )
        if not (ROOT / "src" / line).is_file():
            raise ValueError(f"{MODULE_LIST.name}:{number}: src/{line} does not exist")
        modules.append(line)
    if not modules:
        raise ValueError(f"{MODULE_LIST.name} lists no modules; unset {VARIABLE} for a pure build")
    return modules


def build_requirements() -> list[str]:
    """What a compiled build needs besides setuptools, read from pyproject.toml.

    The dev extra's exact mypy pin, so the build compiles with the mypy CI type-checks
    with; and the runtime dependencies, because mypyc type-checks the modules it
    compiles and everything they import: without numpy's annotations, narrowing such
    as ``type(x) is np.ndarray`` fails and mypy reports errors CI's mypy does not.
    (Compiled modules are runtime code, which imports no optional extra at module level.)
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dev = project["optional-dependencies"]["dev"]
    pins = [r for r in dev if r.replace(" ", "").startswith("mypy==")]
    if len(pins) != 1:
        raise ValueError(
            f"pyproject.toml: the dev extra must pin mypy exactly once (mypy==X.Y.Z), found {pins}"
        )
    return [pins[0], *project["dependencies"]]
