"""Create controllers by name through an explicit registry object.

No import side effects: `default_registry()` builds a new registry holding
``"reno"``, ``"cubic"`` and ``"bbr"`` (a `PolicyController` around
``oxidize_ml.congestion.bbr.BbrFallback``, imported only when created);
callers add their own with `ControllerRegistry.register`.

A factory is called as ``factory(flow_index=i, seed=s)`` with the flow's
index in the scenario and a seed derived from the run's seed, and returns a
fresh controller (one per flow).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.controller import CongestionController
from oxidize_ml.congestion.cubic import CubicController
from oxidize_ml.congestion.interval import PolicyController
from oxidize_ml.congestion.reno import RenoController


class ControllerFactory(Protocol):
    """Builds one flow's controller."""

    def __call__(self, *, flow_index: int, seed: int) -> CongestionController: ...


def reno_factory(*, flow_index: int, seed: int) -> CongestionController:
    """RFC 9002 NewReno with the default `CwndLimits`."""
    return RenoController()


def cubic_factory(*, flow_index: int, seed: int) -> CongestionController:
    """RFC 9438 CUBIC with the default `CwndLimits`."""
    return CubicController()


def bbr_factory(*, flow_index: int, seed: int) -> CongestionController:
    """`PolicyController` around the BBR-style fallback policy (default limits)."""
    from oxidize_ml.congestion.bbr import BbrFallback

    limits = CwndLimits()
    return PolicyController(BbrFallback(limits=limits), limits=limits)


def policy_factory(
    make_policy: Callable[[int, int], object], *, limits: CwndLimits | None = None
) -> ControllerFactory:
    """A factory wrapping ``make_policy(flow_index, seed)`` in a `PolicyController`."""

    def factory(*, flow_index: int, seed: int) -> CongestionController:
        return PolicyController(make_policy(flow_index, seed), limits=limits)

    return factory


def engine_factory(
    make_engine: Callable[[int, int], object], *, limits: CwndLimits | None = None
) -> ControllerFactory:
    """A factory wrapping ``make_engine(flow_index, seed)`` (an ``MlEngine``) in an
    `EngineController`."""
    from oxidize_ml.sim.controllers.engine import EngineController

    def factory(*, flow_index: int, seed: int) -> CongestionController:
        return EngineController(make_engine(flow_index, seed), limits=limits)

    return factory


class ControllerRegistry:
    """Name -> factory. Unknown names raise ``ValueError`` listing the known ones."""

    def __init__(self, factories: Mapping[str, ControllerFactory] | None = None) -> None:
        self._factories: dict[str, ControllerFactory] = {}
        for name, f in (factories or {}).items():
            self.register(name, f)

    def register(self, name: str, factory: ControllerFactory, *, replace: bool = False) -> None:
        """Add ``factory`` under ``name`` (``replace=True`` to overwrite an existing name)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"controller name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory for {name!r} must be callable")
        if name in self._factories and not replace:
            raise ValueError(f"controller {name!r} is already registered; pass replace=True")
        self._factories[name] = factory

    def factory(self, name: str) -> ControllerFactory:
        try:
            return self._factories[name]
        except KeyError:
            raise ValueError(
                f"unknown controller {name!r}; choose from {sorted(self._factories)}"
            ) from None

    def create(self, name: str, *, flow_index: int = 0, seed: int = 0) -> CongestionController:
        """A new controller ``name`` for flow ``flow_index``."""
        return self.factory(name)(flow_index=flow_index, seed=seed)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

    def __len__(self) -> int:
        return len(self._factories)


def default_registry() -> ControllerRegistry:
    """A new registry with ``reno``, ``cubic`` and ``bbr``."""
    return ControllerRegistry({"reno": reno_factory, "cubic": cubic_factory, "bbr": bbr_factory})
