"""The engine's configuration, its bounds on a caller's time, and the parts every fork
of an engine shares.

Kept apart from `oxidize_ml.engine_core` because these are the types users build
(with checks that name the field) and the optional compiled build compiles the
core only (see ``docs/decisions.md``, "Compiled build").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.compression import HeuristicCompressionOracle, PacketCodec
from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.configs import BbrConfig, StateConfig
from oxidize_ml.loss import FecPolicy
from oxidize_ml.loss.burst_weights import REPAIR_PRICE
from oxidize_ml.loss.configs import BurstLossConfig
from oxidize_ml.loss.fec import BurstFecConfig, BurstFecPolicy, FecConfig
from oxidize_ml.telemetry import TelemetryConfig

__all__ = ["CLOCK_STEP_S", "MAX_NOW_S", "EngineConfig", "SharedParts", "check_now"]

MAX_NOW_S = 1e11
"""Largest accepted ``now`` (seconds since the epoch; year ~5100). Anything later
is a unit bug (milliseconds or nanoseconds passed as seconds) or hostile input."""
CLOCK_STEP_S = 1.0
"""A caller's clock that goes back by more than this is treated as a clock step
(a reset, or an earlier bogus value from the future): the engine rebases its
internal clock instead of freezing it at the highest value ever seen."""


def check_now(now: object) -> float:
    """Validate a caller's ``now``: a finite number of seconds in [0, `MAX_NOW_S`]."""
    if type(now) is float and 0.0 <= now <= MAX_NOW_S:  # fast path (also rejects nan)
        return now
    return check_number("now", now, lo=0.0, hi=MAX_NOW_S)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine-wide settings. Component hyperparameters live in their own configs."""

    limits: CwndLimits = field(default_factory=CwndLimits)
    """congestion window bounds and initial window"""
    fec: FecConfig = field(default_factory=FecConfig)
    """block FEC table the loss prediction is turned into"""
    state: StateConfig = field(default_factory=StateConfig)
    """DQN state encoder (history length, filter windows)"""
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    """bounded buffers for training collection"""
    collect_training: bool | None = None
    """collect training telemetry from the start; None: read OXIDIZE_COLLECT_TRAINING"""
    load_default_models: bool = True
    """load the trained models shipped inside the package (those whose evaluation
    beat their heuristic; see the evaluation report)"""
    backend: str = "numpy"
    """inference backend for learned models: "numpy" or "onnxruntime\""""
    latency_sample_every: int = 8
    """measure the latency of one call in this many (keeps the hot path cheap): the
    per-interval decisions (FEC, congestion)"""
    packet_latency_sample_every: int = 64
    """the same for the decisions a caller may make per packet, `compression_decision`
    and `select_path`: a timed call costs 0.4-0.8 us (two clock reads, the sampler and,
    for compression, the lock), which one call in 8 would spread as 0.05-0.1 us over
    every call, a tenth of the decision; one in 64 still gives thousands of samples a
    second at packet rates"""
    seed: int = 0
    """seed for every random choice the engine makes (exploration)"""

    def __post_init__(self) -> None:
        if self.backend not in ("numpy", "onnxruntime"):
            raise ValueError(f"backend must be 'numpy' or 'onnxruntime', got {self.backend!r}")
        check_int("latency_sample_every", self.latency_sample_every, lo=1)
        check_int("packet_latency_sample_every", self.packet_latency_sample_every, lo=1)
        check_int("seed", self.seed, lo=0)
        if self.collect_training is not None and not isinstance(self.collect_training, bool):
            raise TypeError("collect_training must be a bool or None")


@dataclass(frozen=True, slots=True)
class SharedParts:
    """Immutable (or thread-safe and connection-independent) parts that every
    fork of an engine shares: building them costs milliseconds (the FEC table
    alone is 132,000 binomial terms), and a server forks one engine per
    connection."""

    fec: FecPolicy
    burst: BurstLossConfig
    burst_fec: BurstFecPolicy
    oracle: HeuristicCompressionOracle
    codec: PacketCodec
    bbr: BbrConfig

    fork_configs: dict[int, tuple[EngineConfig, EngineConfig]] = field(default_factory=dict)
    """``id(config)`` -> ``(config, the same with load_default_models=False)``, built once;
    keyed by identity because hashing the nested frozen config costs about 1 us a fork
    (the entry keeps ``config`` alive, so its id is not reused while it is here)"""

    @classmethod
    def build(cls, config: EngineConfig) -> SharedParts:
        burst = BurstLossConfig.default()
        burst_fec = BurstFecPolicy(
            BurstFecConfig(
                burst.severity,
                REPAIR_PRICE,
                k_data_packets=config.fec.k_data_packets,
                max_redundancy_ratio=config.fec.max_redundancy_ratio,
            )
        )
        return cls(
            FecPolicy(config.fec),
            burst,
            burst_fec,
            HeuristicCompressionOracle(),
            PacketCodec(),
            BbrConfig(),
        )

    def fork_config(self, config: EngineConfig) -> EngineConfig:
        entry = self.fork_configs.get(id(config))
        if entry is not None and entry[0] is config:
            return entry[1]
        # A benign race: two threads may both build it; either result is equal.
        forked = replace(config, load_default_models=False)
        self.fork_configs[id(config)] = (config, forked)
        return forked
