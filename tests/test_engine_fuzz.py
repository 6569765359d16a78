"""Property tests: every public engine call, given hostile values, either works or
raises ValueError/TypeError naming the problem, and never leaves the engine broken."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxidize_ml import MlEngine, NetworkFeatures, PathId, PathMetrics, TrafficContext
from oxidize_ml.config import EnvSettings
from oxidize_ml.engine import EngineConfig

ENGINE = MlEngine(EngineConfig(load_default_models=False), settings=EnvSettings.from_env({}))

hostile_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just(b"\x00"),
    st.just([1.0]),
)
FEATURE_FIELDS = (
    "rtt_us",
    "rtt_var_us",
    "bandwidth_bps",
    "loss_rate",
    "loss_trend",
    "inflight",
    "cwnd",
    "time_since_loss_ms",
    "buffer_occupancy",
    "recent_retx",
)
GOOD = {
    "rtt_us": 50_000,
    "rtt_var_us": 5_000,
    "bandwidth_bps": 1e7,
    "loss_rate": 0.01,
    "loss_trend": 0.0,
    "inflight": 10,
    "cwnd": 30_000,
    "time_since_loss_ms": 100,
    "buffer_occupancy": 0.2,
    "recent_retx": 0,
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _still_healthy(engine: MlEngine) -> None:
    f = NetworkFeatures(**GOOD)
    engine.observe(f)
    d = engine.fec_decision(f)
    assert 0.0 <= d.loss_probability <= 1.0 and 0.0 <= d.redundancy_ratio <= 1.0
    _, cwnd = engine.congestion_action()
    assert cwnd > 0
    assert isinstance(engine.select_path(TrafficContext.Web), PathId)
    assert engine.decompress(engine.compress(b"hello world " * 20)) == b"hello world " * 20
    json.dumps(engine.stats().to_dict(), allow_nan=False)


@FUZZ
@given(field=st.sampled_from(FEATURE_FIELDS), value=hostile_numbers)
def test_network_features_reject_bad_values_by_name(field, value):
    try:
        NetworkFeatures(**{**GOOD, field: value})
    except (ValueError, TypeError) as e:
        assert field in str(e)
    else:
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert math.isfinite(float(value))


@FUZZ
@given(
    field=st.sampled_from(
        (
            "rtt_us",
            "rtt_var_us",
            "bandwidth_bps",
            "loss_rate",
            "availability",
            "cost_factor",
            "last_update_ms",
        )
    ),
    value=hostile_numbers,
)
def test_path_metrics_reject_bad_values_by_name(field, value):
    try:
        PathMetrics(**{"path_id": PathId.Primary, "rtt_us": 20_000, field: value})
    except (ValueError, TypeError) as e:
        assert field in str(e)


@FUZZ
@given(
    call=st.sampled_from(
        ["observe", "fec", "cc", "path", "metrics", "reward", "compress", "decision", "decompress"]
    ),
    value=hostile_numbers,
)
def test_public_calls_with_bad_arguments_raise_only_value_or_type_errors(call, value):
    e = ENGINE
    f = NetworkFeatures(**GOOD)
    try:
        if call == "observe":
            e.observe(f, throughput_bps=value, now=1e9)
        elif call == "fec":
            e.fec_decision(f, now=value)
        elif call == "cc":
            e.congestion_action(now=value)
        elif call == "path":
            e.select_path(TrafficContext.Gaming, now=value)
        elif call == "metrics":
            e.update_path_metrics(value)
        elif call == "reward":
            e.update_path_reward(PathId.Primary, TrafficContext.Web, value)
        elif call == "compress":
            e.compress(value)
        elif call == "decision":
            e.compression_decision(value)
        else:
            e.decompress(value)
    except (ValueError, TypeError):
        pass
    _still_healthy(e)


@FUZZ
@given(frame=st.binary(max_size=256))
def test_engine_decompress_of_random_bytes_raises_only_value_error(frame):
    try:
        ENGINE.decompress(frame)
    except ValueError:
        pass
