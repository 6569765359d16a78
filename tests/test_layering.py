"""The package's layering, checked from the source: runtime code never imports
training, simulation, evaluation, integration or CLI code (not even lazily inside
a function), never torch, and no two modules import each other in a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "oxidize_ml"
RUNTIME = (
    "engine",
    "engine_config",
    "engine_core",
    "loss",
    "congestion",
    "compression",
    "paths",
    "runtime",
    "telemetry",
    "models",
    "features",
    "policy",
    "types",
    "stats",
    "config",
    "interval_stats",
    "_validate",
    "_atomic",
    "_frozen",
    "_mypyc",
)
FORBIDDEN_FOR_RUNTIME = (
    "oxidize_ml.training",
    "oxidize_ml.sim",
    "oxidize_ml.evaluation",
    "oxidize_ml.integrations",
    "oxidize_ml.cli",
    "oxidize_ml.hub",
    "oxidize_ml.bench",
    "torch",
    "onnx",
    "gymnasium",
    "matplotlib",
)
# Optional inference backend: imported lazily only when a user asks for it.
ALLOWED_LAZY = {"onnxruntime"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (never run: no runtime import)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement that runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    skip = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, id(node) in top))
            found += [(f"{node.module}.{a.name}", id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports")
    return found


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def is_runtime(mod: str) -> bool:
    rest = mod.removeprefix("oxidize_ml.")
    return mod != "oxidize_ml" and rest.split(".")[0] in RUNTIME


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if is_runtime(m)))
def test_runtime_module_imports_no_training_sim_or_evaluation_code(mod):
    bad = [
        name
        for name, _ in imports_of(MODULES[mod])
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_FOR_RUNTIME)
        and name.split(".")[0] not in ALLOWED_LAZY
    ]
    assert not bad, f"{mod} imports {bad}"


def test_no_import_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        deps = set()
        for name, _ in imports_of(path):
            # "from a.b import c" may name module a.b.c or attribute c of a.b
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != mod and name != "oxidize_ml" and not mod.startswith(name + "."):
                deps.add(name)
        graph[mod] = deps
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


UNPICKLING = ("pickle", "cPickle", "dill", "joblib", "shelve", "marshal")


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_nothing_read_from_disk_is_unpickled(mod):
    """No module imports an unpickler, calls torch.load, or lets numpy unpickle."""
    path = MODULES[mod]
    bad = [name for name, _ in imports_of(path) if name.split(".")[0] in UNPICKLING]
    assert not bad, f"{mod} imports {bad}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        assert func not in ("torch.load", "torch.jit.load"), f"{mod}:{node.lineno} calls {func}"
        for kw in node.keywords:
            if kw.arg == "allow_pickle":
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, (
                    f"{mod}:{node.lineno} allows pickle"
                )
        if func in ("np.load", "numpy.load"):
            assert any(kw.arg == "allow_pickle" for kw in node.keywords), (
                f"{mod}:{node.lineno}: np.load without allow_pickle=False"
            )
