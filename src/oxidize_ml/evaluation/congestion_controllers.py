"""Which congestion controllers an evaluation runs, by name or factory.

Shared by the scenario comparison (`oxidize_ml.evaluation.congestion`) and
the held-out trace windows (`oxidize_ml.evaluation.congestion_windows`); it
lives apart from both so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from oxidize_ml.sim.controllers.registry import (
    ControllerFactory,
    ControllerRegistry,
    default_registry,
)

BASELINES: tuple[str, ...] = ("reno", "cubic", "bbr")
"""the classic controllers every run includes, in this order"""


def engine_controller_factory(*, load_default_models: bool = True) -> ControllerFactory:
    """Factory of `EngineController` s around a fresh `MlEngine` per flow.

    With ``load_default_models`` the engine uses the trained models shipped in
    the package (those whose evaluation beat the heuristic); without shipped
    models it is the heuristic engine (BBR-style fallback). The engine sees
    what a real sender sees: the simulator's interval features carry the
    sender-side buffer estimate, as the aioquic plug-in's do.
    """
    from oxidize_ml.engine import EngineConfig, MlEngine
    from oxidize_ml.sim.controllers.engine import EngineController

    def factory(*, flow_index: int, seed: int) -> EngineController:
        engine = MlEngine(
            EngineConfig(
                seed=int(seed) & 0x7FFFFFFF,
                collect_training=False,
                load_default_models=load_default_models,
            )
        )
        return EngineController(engine)

    return factory


def _shipped_models() -> bool:
    from oxidize_ml.models import default_model_dir

    return default_model_dir() is not None


def resolve_controllers(
    controllers: Sequence[str | tuple[str, ControllerFactory]] | None,
    registry: ControllerRegistry | None = None,
    extra: Sequence[tuple[str, ControllerFactory]] = (),
) -> list[tuple[str, ControllerFactory]]:
    """``(name, factory)`` pairs for `run` (see the module docstring for the default);
    ``extra`` pairs are appended."""
    reg = registry if registry is not None else default_registry()
    items: list[str | tuple[str, ControllerFactory]]
    if controllers is None:
        items = [n for n in BASELINES if n in reg]
        items += [n for n in reg.names() if n not in BASELINES]
        if "engine" not in reg and _shipped_models():
            items.append("engine")
    else:
        items = list(controllers)
    items += list(extra)
    out: list[tuple[str, ControllerFactory]] = []
    seen: set[str] = set()
    for c in items:
        if isinstance(c, str):
            if c == "engine" and "engine" not in reg:
                pair = ("engine", engine_controller_factory())
            else:
                pair = (c, reg.factory(c))  # ValueError lists the known names
        elif isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str) and callable(c[1]):
            pair = (c[0], c[1])
        else:
            raise TypeError(f"controllers must be names or (name, factory) pairs, got {c!r}")
        if pair[0] in seen:
            raise ValueError(f"controller {pair[0]!r} is listed twice")
        seen.add(pair[0])
        out.append(pair)
    if not out:
        raise ValueError("at least one controller is needed")
    return out
