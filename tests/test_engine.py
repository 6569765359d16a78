"""MlEngine: the spec's API, fallbacks, statistics, telemetry and thread safety."""

from __future__ import annotations

import json
import math
import threading

import pytest

from oxidize_ml import (
    DrlAction,
    FecDecision,
    MlCompressionDecision,
    NetworkFeatures,
    PathId,
    PathMetrics,
    TrafficContext,
)
from oxidize_ml.config import EnvSettings
from oxidize_ml.engine import EngineConfig, MlEngine

T0 = 1_700_000_000.0


def make_engine(**kw) -> MlEngine:
    settings = EnvSettings.from_env({})
    return MlEngine(EngineConfig(load_default_models=False, **kw), settings=settings)


def feats(**over) -> NetworkFeatures:
    base = {
        "rtt_us": 50_000,
        "rtt_var_us": 5_000,
        "bandwidth_bps": 100_000_000,
        "loss_rate": 0.01,
        "loss_trend": 0.0,
        "inflight": 100,
        "cwnd": 65535,
        "time_since_loss_ms": 1000,
        "buffer_occupancy": 0.3,
        "recent_retx": 0,
    }
    base.update(over)
    return NetworkFeatures(**base)


def test_fec_decision_without_observations_is_no_fec():
    d = make_engine().fec_decision(now=T0)
    assert isinstance(d, FecDecision)
    assert d.loss_probability == 0.0 and not d.inject_fec and d.redundancy_ratio == 0.0


def test_fec_decision_rises_with_loss():
    low, high = make_engine(), make_engine()
    for i in range(100):
        low.observe(feats(loss_rate=0.0), now=T0 + i * 0.01)
        high.observe(feats(loss_rate=0.08), now=T0 + i * 0.01)
    d_low = low.fec_decision(now=T0 + 1.0)
    d_high = high.fec_decision(now=T0 + 1.0)
    assert d_high.loss_probability > d_low.loss_probability
    assert d_high.inject_fec and d_high.redundancy_ratio > 0.0
    assert not d_low.inject_fec


def test_fec_decision_with_features_counts_as_observation_once():
    e = make_engine()
    f = feats(loss_rate=0.05)
    for i in range(20):
        e.fec_decision(f, now=T0 + i * 0.01)
    assert e.fec_decision(now=T0 + 1).loss_probability > 0.01


def test_congestion_action_returns_action_and_window_within_limits():
    e = make_engine()
    action, cwnd = e.congestion_action(now=T0)
    assert isinstance(action, DrlAction)
    limits = e.config.limits
    assert limits.min_cwnd <= cwnd <= limits.max_cwnd_bytes
    for i in range(200):
        e.observe(
            feats(cwnd=e.cwnd, bandwidth_bps=12e6, rtt_us=40_000, loss_rate=0.0),
            throughput_bps=min(12e6, e.cwnd * 8 / 0.04),
            now=T0 + i * 0.01,
        )
        action, cwnd = e.congestion_action(now=T0 + i * 0.01)
        assert limits.min_cwnd <= cwnd <= limits.max_cwnd_bytes
        assert cwnd == e.cwnd
    s = e.stats().congestion_controller
    assert s.decisions == 201 and s.fallback_decisions == 201 and s.model_decisions == 0
    assert s.policy == "bbr" and s.epsilon is None  # the fallback never explores


def test_congestion_fallback_is_deterministic():
    def run() -> list[tuple[DrlAction, int]]:
        e = make_engine()
        out = []
        for i in range(300):
            e.observe(
                feats(cwnd=e.cwnd, rtt_us=40_000 + (i % 7) * 1000, loss_rate=0.0),
                throughput_bps=8e6 + (i % 5) * 1e5,
                now=T0 + i * 0.01,
            )
            out.append(e.congestion_action(now=T0 + i * 0.01))
        return out

    assert run() == run()


@pytest.mark.parametrize(
    "data", [b"", b"x", bytearray(b"hello" * 300), memoryview(b"a" * 70000), bytes(range(256)) * 6]
)
def test_compression_decision_accepts_any_bytes_like(data):
    e = make_engine()
    assert isinstance(e.compression_decision(data), MlCompressionDecision)
    assert e.decompress(e.compress(data)) == bytes(data)


def test_compression_decision_rejects_non_bytes():
    with pytest.raises(TypeError, match="bytes-like"):
        make_engine().compression_decision("text")  # type: ignore[arg-type]


def test_compress_counts_bytes_saved():
    e = make_engine()
    e.compress(b"hello world, " * 100)
    s = e.stats().compression_oracle
    assert s.bytes_in == 1300 and s.bytes_saved > 0 and s.compressed == 1


def test_path_selection_round_robin_then_learns_best_path():
    e = make_engine()
    for p in (PathId.Primary, PathId.Secondary):
        e.update_path_metrics(PathMetrics(path_id=p, rtt_us=20_000, bandwidth_bps=5e7), now=T0)
    first = [e.select_path(TrafficContext.Gaming, now=T0) for _ in range(2)]
    assert set(first) == {PathId.Primary, PathId.Secondary}
    t = T0
    for _ in range(300):
        t += 0.01
        p = e.select_path(TrafficContext.Gaming, now=t)
        e.update_path_reward(p, TrafficContext.Gaming, 0.9 if p is PathId.Secondary else 0.2, now=t)
    picks = [e.select_path(TrafficContext.Gaming, now=t) for _ in range(20)]
    assert picks.count(PathId.Secondary) >= 15


def test_invalid_inputs_raise_clear_errors():
    e = make_engine()
    with pytest.raises(TypeError):
        e.observe("not features")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="throughput_bps"):
        e.observe(feats(), throughput_bps=-1.0, now=T0)
    with pytest.raises(ValueError, match="reward"):
        e.update_path_reward(PathId.Primary, TrafficContext.Web, 1.5, now=T0)
    with pytest.raises(TypeError):
        e.select_path("Gaming")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend"):
        EngineConfig(backend="cuda")


def test_stats_are_json_serialisable_and_typed():
    e = make_engine()
    e.observe(feats(), now=T0)
    e.fec_decision(now=T0)
    e.congestion_action(now=T0)
    e.compression_decision(b"abc" * 100)
    e.select_path(TrafficContext.Web, now=T0)
    d = e.stats().to_dict()
    json.dumps(d)
    assert set(d) >= {
        "loss_predictor",
        "congestion_controller",
        "compression_oracle",
        "path_selector",
    }
    assert d["loss_predictor"]["model_loaded"] is False
    assert d["compression_oracle"]["decisions"] == 1


def test_models_not_loaded_by_default_when_disabled():
    e = make_engine()
    assert e.models_loaded() is False


def test_load_models_from_missing_directory_falls_back(tmp_path, caplog):
    e = make_engine()
    status = e.load_models(tmp_path / "nope")
    assert set(status) == {
        "loss_predictor",
        "congestion_controller",
        "compression_oracle",
        "path_selector",
    }
    assert all(v != "loaded" for v in status.values())
    assert e.models_loaded() is False
    assert "using the heuristic" in caplog.text


def test_training_collection_and_export_round_trip(tmp_path):
    pa = pytest.importorskip("pyarrow.parquet")
    e = make_engine()
    with pytest.raises(RuntimeError, match="collection is off"):
        e.export_training_data(tmp_path)
    e.enable_training_collection()
    t = T0
    for i in range(100):
        t = T0 + i * 0.01
        e.observe(feats(loss_rate=0.02 if i % 10 == 0 else 0.0, cwnd=e.cwnd), now=t)
        e.congestion_action(now=t)
    e.compress(b"payload " * 50, now=t)
    e.update_path_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=1e4), now=t)
    e.update_path_reward(PathId.Primary, TrafficContext.Bulk, 0.7, now=t)
    manifest = e.export_training_data(tmp_path)
    out_dir = manifest.directory if hasattr(manifest, "directory") else manifest.path
    tables = {p.stem: pa.read_table(p) for p in sorted(out_dir.glob("*.parquet"))}
    assert tables["congestion"].num_rows == 99
    assert tables["loss"].num_rows > 80
    assert tables["compression"].num_rows == 1 and tables["path"].num_rows == 1
    ts = tables["loss"].column("timestamp").to_pylist()
    assert all(T0 <= x <= t for x in ts)  # absolute wall-clock timestamps


def test_engine_is_thread_safe_under_stress():
    e = make_engine()
    e.update_path_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=1e4), now=T0)
    e.update_path_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=2e4), now=T0)
    errors: list[BaseException] = []
    n = 1500

    def worker(k: int) -> None:
        try:
            for i in range(n):
                t = T0 + i * 0.001
                e.observe(feats(cwnd=max(e.cwnd, 3000)), now=t)
                e.fec_decision(now=t)
                e.congestion_action(now=t)
                e.compression_decision(b"x" * (i % 300))
                p = e.select_path(TrafficContext(k % 5), now=t)
                e.update_path_reward(p, TrafficContext(k % 5), 0.5, now=t)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    s = e.stats()
    assert s.loss_predictor.decisions == 4 * n
    assert s.loss_predictor.observations == 4 * n
    assert s.congestion_controller.decisions == 4 * n
    assert sum(s.congestion_controller.action_counts.values()) == 4 * n
    assert s.compression_oracle.decisions == 4 * n
    assert sum(s.compression_oracle.decision_counts.values()) == 4 * n
    assert s.path_selector.decisions == 4 * n
    assert not math.isnan(s.loss_predictor.last_prediction or 0.0)


def test_fork_gives_fresh_state_and_keeps_configuration():
    e = make_engine(seed=3)
    e.enable_training_collection()
    for i in range(50):
        e.observe(feats(loss_rate=0.1, cwnd=e.cwnd), now=T0 + i * 0.01)
        e.congestion_action(now=T0 + i * 0.01)
    child = e.fork()
    assert child.config == e.config
    assert child.stats().congestion_controller.decisions == 0
    assert child.cwnd == e.config.limits.initial_cwnd
    assert child.stats().training_collection is True
    assert child.fec_decision(now=T0 + 1).loss_probability == 0.0
    assert e.fec_decision(now=T0 + 1).loss_probability > 0.01  # the parent learned the loss


def test_latency_is_sampled_one_call_in_the_configured_period_per_thread():
    e = MlEngine(
        EngineConfig(
            load_default_models=False, latency_sample_every=4, packet_latency_sample_every=16
        ),
        settings=EnvSettings.from_env({}),
    )
    packet = b"the network packet loss window path model " * 30
    for i in range(64):
        e.compression_decision(packet)
        e.select_path(TrafficContext.Gaming)
        e.observe(feats(), now=T0 + i * 0.01)
        e.congestion_action(now=T0 + i * 0.01)

    def other_thread() -> None:
        for _ in range(32):
            e.compression_decision(packet)

    th = threading.Thread(target=other_thread)
    th.start()
    th.join()
    s = e.stats()
    assert s.congestion_controller.latency.count == 64 // 4
    assert s.path_selector.latency.count == 64 // 16
    assert s.compression_oracle.decisions == 96
    # each thread counts down on its own: 64 / 16 + 32 / 16 sampled packets
    assert s.compression_oracle.latency.count == 4 + 2
    with pytest.raises(ValueError, match="packet_latency_sample_every"):
        EngineConfig(packet_latency_sample_every=0)
