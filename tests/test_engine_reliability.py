"""Regression tests for the engine's reliability defects (issue 8 items 3, 7, 11; fork cost).

Each test reproduces a defect found by probing the engine and fails on the code
before its fix.
"""

from __future__ import annotations

import array
import json
import logging
import math
import os
import time

import pyarrow.parquet as pq
import pytest

from oxidize_ml import MlEngine, NetworkFeatures, PathId, PathMetrics, TrafficContext
from oxidize_ml.config import EnvSettings
from oxidize_ml.engine import CLOCK_STEP_S, MAX_NOW_S, EngineConfig
from oxidize_ml.telemetry.export import STAGING_PREFIX, read_manifest


def make_engine(**kw) -> MlEngine:
    return MlEngine(
        EngineConfig(load_default_models=False, **kw), settings=EnvSettings.from_env({})
    )


def feats(i: int) -> NetworkFeatures:
    """A deterministic, varied sequence of observations (loss bursts every 37 steps)."""
    loss = 0.08 if i % 37 in (5, 6, 7) else 0.0
    return NetworkFeatures(
        rtt_us=40_000 + 300 * (i % 11),
        rtt_var_us=2_000 + 100 * (i % 5),
        bandwidth_bps=12e6 + 1e5 * (i % 7),
        loss_rate=loss,
        loss_trend=0.0,
        inflight=30 + i % 9,
        cwnd=60_000 + 500 * (i % 13),
        time_since_loss_ms=10.0 * (i % 37),
        buffer_occupancy=0.1 * (i % 10),
        recent_retx=0,
    )


# ---- item 3: telemetry through the spec's usage ------------------------------
def test_spec_usage_without_observe_records_loss_rows_and_transitions(tmp_path):
    engine = make_engine()
    engine.enable_training_collection()
    for i in range(400):
        now = 1000.0 + 0.01 * i
        engine.fec_decision(feats(i), now=now)  # the spec's loop: no observe() call
        engine.congestion_action(now=now)
        engine.compression_decision(b"x" * 200)
    manifest = engine.export_training_data(tmp_path)
    assert manifest.tables["loss"].rows > 300  # labelled 50-100 ms later
    assert manifest.tables["congestion"].rows > 300
    loss = pq.read_table(manifest.path / "loss.parquet")
    assert loss.num_rows == manifest.tables["loss"].rows
    assert engine.stats().loss_predictor.observations == 400


def test_fec_decision_with_the_observed_features_is_not_a_second_observation():
    engine = make_engine()
    f = feats(1)
    engine.observe(f, now=10.0)
    engine.fec_decision(f, now=10.0)
    assert engine.stats().loss_predictor.observations == 1


def test_empty_export_warns_and_says_so_in_the_manifest(tmp_path, caplog):
    engine = make_engine()
    engine.enable_training_collection()
    with caplog.at_level(logging.WARNING, logger="oxidize_ml"):
        manifest = engine.export_training_data(tmp_path)
    assert manifest.total_rows == 0
    assert any("zero rows in every table" in r.getMessage() for r in caplog.records)
    data = json.loads((manifest.path / "manifest.json").read_text())
    assert sorted(data["empty_tables"]) == sorted(manifest.tables)
    assert data["warnings"] and "zero rows" in data["warnings"][0]
    assert read_manifest(manifest.path).warnings == manifest.warnings


# ---- item 7: clock poisoning ---------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 1e20, 1e308, MAX_NOW_S * 2])
def test_every_call_rejects_non_finite_or_implausible_now(bad):
    engine = make_engine()
    f = feats(0)
    calls = [
        lambda: engine.observe(f, now=bad),
        lambda: engine.fec_decision(f, now=bad),
        lambda: engine.congestion_action(now=bad),
        lambda: engine.select_path(TrafficContext.Web, now=bad),
        lambda: engine.update_path_reward(PathId.Primary, TrafficContext.Web, 0.5, now=bad),
        lambda: engine.compress(b"abc" * 50, now=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="now"):
            call()
    # Nothing accepted: the engine still decides like a fresh one, and stats stay JSON.
    json.dumps(engine.stats().to_dict(), allow_nan=False)


def _run(engine: MlEngine, times: list[float]) -> list[tuple[float, str, int]]:
    out = []
    for i, t in enumerate(times):
        engine.observe(feats(i), now=t)
        d = engine.fec_decision(now=t)
        a, cwnd = engine.congestion_action(now=t)
        out.append((round(d.loss_probability, 12), a.name, cwnd))
    return out


def test_one_future_timestamp_does_not_freeze_the_clock():
    """A plausible-but-wrong timestamp (an hour ahead) once, then the true clock again:
    the engine rebases, so it behaves exactly like an engine whose clock really jumped
    an hour (the later intervals keep their 10-ms spacing) instead of freezing."""
    base = [100.0 + 0.01 * i for i in range(300)]
    jump = 3600.0
    poisoned, shifted = make_engine(), make_engine()
    _run(poisoned, base[:100])
    _run(shifted, base[:100])
    poisoned.observe(feats(100), now=base[100] + jump)
    shifted.observe(feats(100), now=base[100] + jump)
    # After the step back, the poisoned engine's caller resumes its true clock; the
    # reference engine sees the same spacing continuing from the jumped time.
    a = _run(poisoned, base[101:])
    b = _run(shifted, [t + jump - (base[101] - base[100]) for t in base[101:]])
    assert a == b
    # Not frozen: the window keeps changing and the predictions react to new loss.
    assert len({x[2] for x in a}) > 3
    assert len({x[0] for x in a}) > 3


def test_small_backward_jitter_is_clamped_not_rebased():
    engine = make_engine()
    engine.observe(feats(0), now=50.0)
    engine.observe(feats(1), now=50.0 - CLOCK_STEP_S / 2)  # a late thread
    assert engine._clock == 50.0
    engine.observe(feats(2), now=50.01)
    assert engine._clock == pytest.approx(50.01)


def test_stats_stay_strict_json_after_extreme_valid_times():
    engine = make_engine()
    engine.observe(feats(0), now=0.0)
    engine.congestion_action(now=MAX_NOW_S)
    engine.fec_decision(feats(1), now=0.5)
    engine.congestion_action(now=0.6)
    json.dumps(engine.stats().to_dict(), allow_nan=False)


# ---- item 11: smaller bad-input gaps -------------------------------------------
def test_huge_int_field_raises_value_error_naming_the_field():
    with pytest.raises(ValueError, match="rtt_us"):
        PathMetrics(
            path_id=PathId.Primary,
            rtt_us=10**400,
            rtt_var_us=0,
            bandwidth_bps=1,
            loss_rate=0.0,
            availability=1.0,
            cost_factor=1.0,
            last_update_ms=0,
        )
    with pytest.raises(ValueError, match="cwnd"):
        NetworkFeatures(
            rtt_us=1,
            rtt_var_us=0,
            bandwidth_bps=1,
            loss_rate=0,
            loss_trend=0,
            inflight=0,
            cwnd=10**400,
            time_since_loss_ms=0,
            buffer_occupancy=0,
            recent_retx=0,
        )


def test_multibyte_memoryview_is_counted_in_bytes_and_round_trips():
    engine = make_engine()
    payload = array.array("i", range(1000))  # 4,000 bytes
    view = memoryview(payload)
    assert len(view) == 1000
    frame = engine.compress(view)
    assert engine.decompress(frame) == payload.tobytes()
    assert engine.stats().compression_oracle.bytes_in == 4000
    assert engine.compression_decision(view) == engine.compression_decision(payload.tobytes())


def test_leftover_partial_export_directory_is_removed(tmp_path):
    engine = make_engine()
    engine.enable_training_collection()
    root = tmp_path / "exports"
    root.mkdir(mode=0o700)
    stale = root / f"{STAGING_PREFIX}20200101T000000.000000Z-deadbeef"
    stale.mkdir()
    (stale / "loss.parquet").write_bytes(b"half-written")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = root / f"{STAGING_PREFIX}20990101T000000.000000Z-cafef00d"
    fresh.mkdir()  # may belong to an export still running: kept
    engine.export_training_data(root)
    assert not stale.exists()
    assert fresh.exists()


# ---- fork: one engine per connection -------------------------------------------
def test_forks_share_immutable_tables_but_not_connection_state():
    engine = make_engine()
    forks = [engine.fork() for _ in range(3)]
    for f in forks:
        assert f._fec is engine._fec
        assert f._compression is engine._compression
        assert f._cc is not engine._cc
        # the state encoder is per connection (built on first use)
        assert f._state is None or f._state is not engine._state
        assert f._cc_fallback is not engine._cc_fallback
        assert f._envelope is not engine._envelope
    forks[0].observe(feats(0), now=1.0)
    forks[0].congestion_action(now=1.0)
    assert engine.stats().congestion_controller.decisions == 0
    assert forks[1].stats().congestion_controller.decisions == 0
    assert math.isfinite(forks[0].fec_decision(now=1.0).loss_probability)


# ---- the path selector slot --------------------------------------------------------
def test_path_selector_swaps_through_load_and_replace_and_forks_lazily(tmp_path):
    from oxidize_ml.models import default_model_dir
    from oxidize_ml.paths import MlPathSelector

    engine = make_engine()
    engine.update_path_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=80_000), now=1.0)
    engine.update_path_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=15_000), now=1.0)
    assert engine.policy("path_selector").name == MlPathSelector.name
    directory = default_model_dir()
    assert directory is not None
    status = engine.load_models(directory)
    assert status["path_selector"] == "loaded"
    learned = engine.policy("path_selector")
    assert learned.is_learned and engine.stats().path_selector.model_loaded
    # The metrics seen before the swap carried over: it decides at once.
    assert set(learned.known_paths) == {PathId.Primary, PathId.Secondary}
    assert engine.select_path(TrafficContext.Gaming, now=2.0) == PathId.Secondary
    fork = engine.fork()
    assert fork._paths_obj is None  # built on first use
    assert fork.stats().path_selector.model_loaded
    assert fork.policy("path_selector") is not learned
    assert fork.policy("path_selector").is_learned
    engine.replace_policy("path_selector", MlPathSelector(seed=3))
    assert not engine.stats().path_selector.model_loaded
    with pytest.raises(TypeError, match="path_selector"):
        engine.replace_policy("path_selector", object())


def test_learned_compression_oracle_follows_the_measured_link_rate():
    from oxidize_ml.models import default_model_dir

    engine = make_engine()
    directory = default_model_dir()
    assert directory is not None
    assert engine.load_models(directory)["compression_oracle"] == "loaded"
    oracle = engine.policy("compression_oracle")
    assert oracle.link_rate_bps == 1e8  # the rate the shipped model was evaluated at
    # A new bucket's table is built off the packet path: the engine switches on
    # the first observation after the build finished.
    engine.observe(feats(0), now=1.0)  # 12 Mbit/s: decided with the 10 Mbit/s bucket's table
    oracle.wait_for_tables(30.0)
    engine.observe(feats(0), now=1.01)
    assert oracle.link_rate_bps == 1e7
    metrics = PathMetrics(path_id=PathId.Primary, rtt_us=20_000, bandwidth_bps=5e6)
    engine.update_path_metrics(metrics, now=1.1)
    oracle.wait_for_tables(30.0)
    engine.update_path_metrics(metrics, now=1.11)
    assert oracle.link_rate_bps == 5e6
    fork = engine.fork()
    fork.observe(feats(1), now=2.0)
    assert oracle.link_rate_bps == 5e6  # each connection has its own rate


def test_burst_loss_predictor_is_the_default_with_its_own_fec_policy():
    from oxidize_ml.loss import EwmaLossPredictor

    engine = make_engine()
    assert engine.policy("loss_predictor").name == "burst"  # chosen by the default rule
    engine.replace_policy("loss_predictor", EwmaLossPredictor())
    assert engine.policy("loss_predictor").name == "ewma"  # still swappable
    engine.unload_models()
    assert engine.policy("loss_predictor").name == "burst"
    decisions = [engine.fec_decision(feats(i), now=10.0 + 0.01 * i) for i in range(300)]
    assert all(0.0 <= d.redundancy_ratio <= 0.5 for d in decisions)
    pred = engine.policy("loss_predictor")
    # The decision comes from P(block loses) x the severity distribution, not the table.
    expected = engine._shared.burst_fec.decide_block(
        pred.block_loss_probability, pred.severity_scale
    )
    assert decisions[-1] == expected
