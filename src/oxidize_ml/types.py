"""Shared value types of the engine's public API (names follow the spec)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum, IntEnum
from typing import Any

from oxidize_ml._frozen import three_field_maker
from oxidize_ml._validate import check_number


class PathId(IntEnum):
    """Up to four paths, as in the spec."""

    Primary = 0
    Secondary = 1
    Tertiary = 2
    Quaternary = 3


class TrafficContext(IntEnum):
    """Traffic types the path selector keeps separate statistics for."""

    Gaming = 0
    VoIP = 1
    Streaming = 2
    Bulk = 3
    Web = 4


class DrlAction(IntEnum):
    """The congestion controller's six actions, in the spec's order.

    This is the only action table in the project (index = DQN output index).
    `oxidize_ml.congestion.actions.apply_action` defines what each does to cwnd.
    """

    Increase5 = 0
    Increase10 = 1
    Maintain = 2
    Decrease5 = 3
    Decrease10 = 4
    SlowStart = 5


class MlCompressionDecision(Enum):
    """Per-packet compression strategy."""

    Skip = "skip"
    Light = "light"
    Aggressive = "aggressive"
    RohcOnly = "rohc_only"


@dataclass(frozen=True, slots=True)
class FecDecision:
    """What the loss predictor recommends for forward error correction.

    ``redundancy_ratio`` is r / (k + r): the share of sent packets that are
    repair packets.
    """

    loss_probability: float
    redundancy_ratio: float
    inject_fec: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


make_fec_decision: Callable[[float, float, bool], FecDecision] = three_field_maker(FecDecision)
"""``FecDecision(loss_probability, redundancy_ratio, inject_fec)`` at about 60 % of the
cost, for the FEC policies, which build one per new prediction on the packet path."""


@dataclass(frozen=True, slots=True)
class PathMetrics:
    """Measured state of one path (spec fields). Invalid values raise."""

    path_id: PathId
    rtt_us: float
    rtt_var_us: float = 0.0
    bandwidth_bps: float = 0.0
    loss_rate: float = 0.0
    availability: float = 1.0
    """share of recent probes that succeeded, in [0, 1]"""
    cost_factor: float = 1.0
    """relative cost of sending on this path (higher for cellular)"""
    last_update_ms: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.path_id, PathId):
            if isinstance(self.path_id, int) and not isinstance(self.path_id, bool):
                try:
                    object.__setattr__(self, "path_id", PathId(self.path_id))
                except ValueError:
                    raise ValueError(
                        f"path_id must be one of {[p.name for p in PathId]}, got {self.path_id!r}"
                    ) from None
            else:
                raise TypeError(f"path_id must be a PathId, got {type(self.path_id).__name__}")
        check_number("rtt_us", self.rtt_us)
        check_number("rtt_var_us", self.rtt_var_us)
        check_number("bandwidth_bps", self.bandwidth_bps)
        check_number("loss_rate", self.loss_rate, hi=1.0)
        check_number("availability", self.availability, hi=1.0)
        check_number("cost_factor", self.cost_factor)
        check_number("last_update_ms", self.last_update_ms)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path_id"] = self.path_id.name
        return d
