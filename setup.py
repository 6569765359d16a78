"""setuptools entry for the opt-in mypyc build; the project's metadata is in pyproject.toml.

``OXIDIZE_ML_COMPILE=1`` compiles the modules listed in ``_build/compiled-modules.txt``
into extension modules beside their ``.py`` (which stay in the wheel); otherwise
this adds nothing and the package is pure Python. Run through the in-tree backend
(``_build/backend.py``), which installs mypy for a compiled build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

# _build is on sys.path when the backend runs this file, not for `python setup.py ...`.
sys.path.insert(0, str(Path(__file__).resolve().parent / "_build"))
from mypyc_config import compile_requested, compiled_modules

if compile_requested():
    # Imported here: mypy is a build requirement only of compiled builds.
    from mypyc.build import mypycify

    setup(
        # One shared library for all the modules (mypyc's default), so calls between
        # compiled modules stay native. mypy reads its settings from [tool.mypy].
        ext_modules=mypycify([f"src/{m}" for m in compiled_modules()], opt_level="3"),
        # Extensions build concurrently; mypyc's small per-module shims gain, the one
        # shared library does not.
        options={"build_ext": {"parallel": os.cpu_count() or 1}},
    )
else:
    setup()
