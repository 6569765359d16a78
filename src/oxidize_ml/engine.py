"""`MlEngine`: the spec's engine, four components behind one thread-safe object.

Each component is a `oxidize_ml.policy.Policy`; the engine holds one policy
per component, a heuristic until a learned model is loaded, and swaps them
without the caller noticing. All public methods take one lock, so the engine
may be shared between threads; decisions on valid inputs never raise.

Time: every method takes an optional keyword ``now`` (seconds since the Unix
epoch). When omitted the engine reads ``time.time()`` once, so telemetry
timestamps are absolute and records from many servers merge. Simulations pass
their own clock.
"""

from __future__ import annotations

from oxidize_ml.engine_config import CLOCK_STEP_S, MAX_NOW_S, EngineConfig, check_now
from oxidize_ml.engine_core import EngineCore

__all__ = ["CLOCK_STEP_S", "MAX_NOW_S", "EngineConfig", "MlEngine", "check_now"]


class MlEngine(EngineCore):
    """The four decision components of the spec, with statistics and telemetry.

    Every method is `oxidize_ml.engine_core.EngineCore`'s; this class adds none.
    It stays a plain Python class (one that can be subclassed, given attributes
    and weakly referenced) also when the optional compiled build compiles the
    core.

    Examples
    --------
    >>> from oxidize_ml import MlEngine, NetworkFeatures
    >>> engine = MlEngine(EngineConfig(load_default_models=False))
    >>> f = NetworkFeatures(rtt_us=50_000, rtt_var_us=5_000, bandwidth_bps=100_000_000,
    ...     loss_rate=0.01, loss_trend=0.0, inflight=100, cwnd=65535,
    ...     time_since_loss_ms=1000, buffer_occupancy=0.3, recent_retx=0)
    >>> engine.observe(f, throughput_bps=90e6, now=1.0)
    >>> 0.0 <= engine.fec_decision(f, now=1.0).loss_probability <= 1.0
    True
    """
