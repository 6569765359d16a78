"""Fixtures shared by test modules in several folders."""

from __future__ import annotations

import ast
import doctest
import types
from collections.abc import Callable
from pathlib import Path

import pytest


def _doctest_results(module: types.ModuleType) -> doctest.TestResults:
    """doctest's results for ``module``. In the compiled build (``OXIDIZE_ML_COMPILE``)
    doctest finds no compiled class's or function's docstring, so the examples are read
    from the module's source installed beside it and run against the compiled module."""
    path = Path(module.__file__ or "")
    if path.suffix == ".py":
        return doctest.testmod(module)
    source = path.with_name(module.__name__.rpartition(".")[2] + ".py").read_text()
    runner = doctest.DocTestRunner()
    parser = doctest.DocTestParser()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                name = getattr(node, "name", module.__name__)
                runner.run(parser.get_doctest(doc, dict(vars(module)), name, str(path), 0))
    return runner.summarize(verbose=False)


@pytest.fixture
def run_doctests() -> Callable[[types.ModuleType], doctest.TestResults]:
    """The docstring examples of a module, run in the pure and the compiled build alike."""
    return _doctest_results
