"""`EngineController`: an `oxidize_ml.engine.MlEngine` as a simulated flow's controller.

The engine keeps its own state encoder and delivery envelope (it is what the
aioquic plug-in runs), so this adapter only forwards each interval's
features and adopts the window the engine returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.controller import CongestionController

if TYPE_CHECKING:
    from oxidize_ml.features import NetworkFeatures
    from oxidize_ml.types import DrlAction

__all__ = ["EngineController"]


class EngineController(CongestionController):
    """Drive an ``MlEngine`` (duck-typed: ``observe`` and ``congestion_action``).

    Each interval: ``engine.observe(features, throughput_bps=..., now=now)``
    then ``action, new_cwnd = engine.congestion_action(now=now)`` and
    ``cwnd = new_cwnd`` (clamped to the limits). The engine keeps its own
    window and adopts ``features.cwnd`` (this controller's window) on every
    observation.
    """

    name = "engine"

    def __init__(
        self, engine: Any, *, limits: CwndLimits | None = None, pacing: bool = True
    ) -> None:
        super().__init__(limits=limits)
        # the engine runs behind aioquic, which paces at cwnd / srtt
        self.pacing = bool(pacing)
        for attr in ("observe", "congestion_action"):
            if not callable(getattr(engine, attr, None)):
                raise TypeError(f"engine must have a callable {attr}(...)")
        self.engine = engine
        self.last_action: DrlAction | None = None

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        self.engine.observe(features, throughput_bps=throughput_bps, now=now)
        action, new_cwnd = self.engine.congestion_action(now=now)
        self.last_action = action
        new = int(new_cwnd)
        lo, hi = self.limits.min_cwnd, self.limits.max_cwnd_bytes
        self.cwnd = lo if new < lo else min(new, hi)
