"""TelemetryCollector: loss labelling, bounds, validation, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from oxidize_ml.features import NetworkFeatures
from oxidize_ml.telemetry import TelemetryCollector, TelemetryConfig
from oxidize_ml.telemetry.schema import LOSS
from oxidize_ml.types import DrlAction, MlCompressionDecision, PathId, PathMetrics, TrafficContext

BASE_S = 1_700_000_000.0  # epoch scale, where float64 spacing is 2.4e-7 s


def feats(loss_rate: float, rtt_us: float = 50_000.0) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=rtt_us,
        rtt_var_us=5_000,
        bandwidth_bps=100_000_000,
        loss_rate=loss_rate,
        loss_trend=0.0,
        inflight=100,
        cwnd=65_535,
        buffer_occupancy=0.3,
    )


def loss_rows(c: TelemetryCollector) -> dict[str, np.ndarray]:
    """The loss table's rows, read through a snapshot that is then aborted."""
    ring = c._rings[LOSS]
    snap = ring.begin_export()
    ring.abort_export()
    return snap.columns  # type: ignore[return-value]


# ---- loss labels -------------------------------------------------------------
# Observations every 10 ms. Sample k's window (t + 0.05, t + 0.10] holds
# observations k+6 .. k+10: k+5 sits exactly on the open lower bound (out),
# k+10 exactly on the closed upper bound (in).
RATES = [
    0.0,
    0.1,
    0.0,
    0.2,
    0.0,
    0.0,
    0.3,
    0.0,
    0.0,
    0.0,
    0.5,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
    0.0,
]


def test_loss_labels_on_regular_grid() -> None:
    c = TelemetryCollector()
    for k, rate in enumerate(RATES):
        c.record_observation(feats(rate), now=BASE_S + k * 0.01)
    rows = loss_rows(c)
    # The last observation is at k=21, so samples with t + 0.10 < t_21, i.e. k <= 10, are labelled.
    assert len(rows["timestamp"]) == 11
    assert c.stats()["tables"]["loss"]["pending"] == len(RATES) - 11
    labels = rows["future_loss"].tolist()
    # Worked by hand: sample 0 -> obs 6..10 = (0.3 + 0 + 0 + 0 + 0.5) / 5.
    assert labels[0] == pytest.approx(0.16, abs=1e-12)
    # sample 1 -> obs 7..11 = 0.5 / 5; sample 5 -> obs 11..15 = 0.
    assert labels[1] == pytest.approx(0.10, abs=1e-12)
    assert labels[5] == 0.0
    expected = [sum(RATES[k + 6 : k + 11]) / 5 for k in range(11)]
    assert labels == pytest.approx(expected, abs=1e-12)
    assert rows["future_loss_any"].tolist() == [e > 0 for e in expected]
    # Raw loss rate and the normalised features belong to the sample itself.
    assert rows["loss_rate"].tolist() == RATES[:11]
    np.testing.assert_array_equal(rows["features"][3], feats(RATES[3]).to_vector())
    assert rows["timestamp"].tolist() == [BASE_S + k * 0.01 for k in range(11)]


def test_loss_labels_irregular_times_and_unlabeled_drop() -> None:
    c = TelemetryCollector()
    offsets = [0.0, 0.03, 0.07, 0.12, 0.2]
    rates = [0.0, 0.0, 0.4, 0.2, 0.0]
    for off, rate in zip(offsets, rates, strict=True):
        c.record_observation(feats(rate), now=BASE_S + off)
    rows = loss_rows(c)
    # t=0.00: window (0.05, 0.10] holds 0.07 -> 0.4
    # t=0.03: window (0.08, 0.13] holds 0.12 -> 0.2
    # t=0.07: window (0.12, 0.17] is empty (0.12 is on the open bound) -> dropped
    # t=0.12: window (0.17, 0.22] not over at 0.20 -> pending, as is t=0.20
    assert rows["timestamp"].tolist() == [BASE_S, BASE_S + 0.03]
    assert rows["future_loss"].tolist() == pytest.approx([0.4, 0.2])
    stats = c.stats()
    assert stats["loss_labels"]["unlabeled_dropped"] == 1
    assert stats["tables"]["loss"]["pending"] == 2


def test_advance_labels_without_new_observation() -> None:
    c = TelemetryCollector()
    c.record_observation(feats(0.0), now=BASE_S)
    c.record_observation(feats(0.25), now=BASE_S + 0.06)
    c.advance(now=BASE_S + 0.05)  # earlier than the last observation: nothing happens
    assert c.stats()["tables"]["loss"]["rows"] == 0
    c.advance(now=BASE_S + 0.2)
    rows = loss_rows(c)
    assert rows["future_loss"].tolist() == [0.25]
    assert rows["future_loss_any"].tolist() == [True]
    # The second sample's window (0.11, 0.16] saw nothing.
    assert c.stats()["loss_labels"]["unlabeled_dropped"] == 1
    assert c.stats()["tables"]["loss"]["pending"] == 0


def test_clock_step_back_drops_pending_and_counts() -> None:
    c = TelemetryCollector()
    for k in range(3):
        c.record_observation(feats(0.0), now=BASE_S + k * 0.01)
    c.record_observation(feats(0.0), now=BASE_S - 5.0)
    stats = c.stats()
    assert stats["loss_labels"]["clock_resets"] == 1
    assert stats["loss_labels"]["unlabeled_dropped"] == 3
    assert stats["tables"]["loss"]["pending"] == 1


def test_pending_is_bounded() -> None:
    c = TelemetryCollector(TelemetryConfig(max_pending=4))
    for k in range(10):  # 1 ms apart: nothing is labelled yet
        c.record_observation(feats(0.0), now=BASE_S + k * 0.001)
    stats = c.stats()
    assert stats["tables"]["loss"]["pending"] == 4
    assert stats["loss_labels"]["pending_overflow"] == 6


def test_custom_horizon() -> None:
    c = TelemetryCollector(TelemetryConfig(loss_horizon_s=(0.0, 0.02)))
    for k, rate in enumerate([0.1, 0.2, 0.3, 0.0, 0.0]):
        c.record_observation(feats(rate), now=BASE_S + k * 0.01)
    # sample 0: window (0, 0.02] -> obs 1, 2 -> 0.25; sample 1 -> obs 2, 3 -> 0.15;
    # sample 2's window ends at 0.04, the last observation: not over yet.
    assert loss_rows(c)["future_loss"].tolist() == pytest.approx([0.25, 0.15])


# ---- bounds ------------------------------------------------------------------
def test_tables_are_bounded_and_count_drops() -> None:
    c = TelemetryCollector(TelemetryConfig(capacity=5))
    for i in range(12):
        c.record_transition([float(i)], 0, 0.0, [0.0], now=BASE_S + i)
    t = c.stats()["tables"]["congestion"]
    assert (t["rows"], t["appended"], t["dropped"]) == (5, 12, 7)
    snap = c._rings["congestion"].begin_export()
    assert snap.columns["timestamp"].tolist() == [BASE_S + i for i in range(7, 12)]  # type: ignore[union-attr]


# ---- recording and validation -----------------------------------------------
def test_record_methods_store_values() -> None:
    c = TelemetryCollector(TelemetryConfig(source="srv-7"))
    c.record_transition(np.ones(10), DrlAction.Decrease5, -1.5, [0.5, 0.25], now=BASE_S, done=True)
    c.record_compression(
        [0.9, 0.1], "rohc_only", size=60, compressed_size=20, encode_ns=900, now=BASE_S + 1
    )
    c.record_path(
        TrafficContext.VoIP,
        PathMetrics(
            PathId.Secondary, rtt_us=30_000, bandwidth_bps=5e6, loss_rate=0.02, availability=0.9
        ),
        0.75,
        now=BASE_S + 2,
    )
    cc = c._rings["congestion"].begin_export().columns
    assert cc["source"].tolist() == ["srv-7"]  # type: ignore[union-attr]
    assert cc["action"].tolist() == [3] and cc["done"].tolist() == [True]  # type: ignore[union-attr]
    assert cc["reward"].dtype == np.float32 and cc["reward"].tolist() == [-1.5]  # type: ignore[union-attr]
    _values, lengths = cc["state"]  # type: ignore[misc]
    assert lengths.tolist() == [10]
    comp = c._rings["compression"].begin_export().columns
    assert comp["decision"].tolist() == ["rohc_only"]  # type: ignore[union-attr]
    assert comp["size"].dtype == np.int32 and comp["encode_ns"].dtype == np.int64  # type: ignore[union-attr]
    path = c._rings["path"].begin_export().columns
    assert path["context"].tolist() == ["VoIP"] and path["path"].tolist() == ["Secondary"]  # type: ignore[union-attr]
    assert path["loss_rate"].tolist() == [0.02] and path["availability"].tolist() == [0.9]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.record_transition([1.0], 6, 0.0, [1.0], now=BASE_S), "action"),
        (lambda c: c.record_transition([1.0], True, 0.0, [1.0], now=BASE_S), "action"),
        (lambda c: c.record_transition([], 0, 0.0, [1.0], now=BASE_S), "state"),
        (lambda c: c.record_transition([float("nan")], 0, 0.0, [1.0], now=BASE_S), "state"),
        (lambda c: c.record_transition([1e39], 0, 0.0, [1.0], now=BASE_S), "state"),
        (lambda c: c.record_transition([[1.0]], 0, 0.0, [1.0], now=BASE_S), "state"),
        (lambda c: c.record_transition([1.0] * 65, 0, 0.0, [1.0], now=BASE_S), "state"),
        (lambda c: c.record_transition([1.0], 0, float("inf"), [1.0], now=BASE_S), "reward"),
        (lambda c: c.record_transition([1.0], 0, 0.0, [1.0], now=-1.0), "now"),
        (lambda c: c.record_transition([1.0], 0, 0.0, [1.0], now=BASE_S, done=1), "done"),
        (
            lambda c: c.record_compression(
                [1.0], "zip", size=1, compressed_size=1, encode_ns=1, now=BASE_S
            ),
            "decision",
        ),
        (
            lambda c: c.record_compression(
                [1.0], "skip", size=-1, compressed_size=1, encode_ns=1, now=BASE_S
            ),
            "size",
        ),
        (
            lambda c: c.record_compression(
                [1.0], "skip", size=2**31, compressed_size=1, encode_ns=1, now=BASE_S
            ),
            "size",
        ),
        (
            lambda c: c.record_path(
                "Gaming", PathMetrics(PathId.Primary, rtt_us=1.0), 0.0, now=BASE_S
            ),
            "context",
        ),
        (lambda c: c.record_path(TrafficContext.Web, {"rtt_us": 1.0}, 0.0, now=BASE_S), "metrics"),
        (lambda c: c.record_observation({"rtt_us": 1.0}, now=BASE_S), "features"),
        (lambda c: c.record_observation(feats(0.0), now=float("nan")), "now"),
    ],
)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_invalid_records_raise_and_store_nothing(call, match) -> None:  # type: ignore[no-untyped-def]
    c = TelemetryCollector()
    with pytest.raises((ValueError, TypeError), match=match):
        call(c)
    assert all(t["appended"] == 0 and t["pending"] == 0 for t in c.stats()["tables"].values())


def test_decision_enum_and_numpy_ints_accepted() -> None:
    c = TelemetryCollector()
    c.record_compression(
        np.zeros(4),
        MlCompressionDecision.Aggressive,
        size=1400,
        compressed_size=500,
        encode_ns=10,
        now=BASE_S,
    )
    c.record_transition([1.0], np.int64(5), np.float32(0.5), [1.0], now=BASE_S, done=np.bool_(True))
    assert c.stats()["tables"]["compression"]["rows"] == 1
    assert c.stats()["tables"]["congestion"]["rows"] == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity": 0},
        {"capacity": 1.5},
        {"max_pending": 0},
        {"max_vector_len": 0},
        {"loss_horizon_s": (0.1, 0.05)},
        {"loss_horizon_s": (-0.1, 0.05)},
        {"loss_horizon_s": (0.05,)},
        {"source": ""},
        {"source": "a\nb"},
        {"source": "x" * 129},
    ],
)
def test_config_rejects_bad_values(kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError)):
        TelemetryConfig(**kwargs)


def test_stats_is_json_able() -> None:
    import json

    c = TelemetryCollector()
    c.record_observation(feats(0.1), now=BASE_S)
    stats = json.loads(json.dumps(c.stats()))
    assert stats["tables"]["loss"]["pending"] == 1
    assert set(stats["tables"]) == {"loss", "congestion", "compression", "path"}
    assert stats["exports"] == 0 and stats["exporting"] is False


# ---- threads -----------------------------------------------------------------
def test_thread_stress_counters_consistent() -> None:
    """4 writer threads x 5,000 records into bounded tables; counters must add up."""
    n_per_thread = 5_000
    c = TelemetryCollector(TelemetryConfig(capacity=3_000))
    metrics = PathMetrics(PathId.Primary, rtt_us=20_000)
    state = np.ones(8, np.float32)
    start = threading.Barrier(4)

    def transitions() -> None:
        start.wait()
        for i in range(n_per_thread):
            c.record_transition(state, i % 6, 0.1, state, now=BASE_S + i)

    def compressions() -> None:
        start.wait()
        for i in range(n_per_thread):
            c.record_compression(
                state, "light", size=100, compressed_size=50, encode_ns=i, now=BASE_S + i
            )

    def paths() -> None:
        start.wait()
        for i in range(n_per_thread):
            c.record_path(TrafficContext.Bulk, metrics, 0.5, now=BASE_S + i)

    def observations() -> None:
        start.wait()
        for i in range(n_per_thread):
            c.record_observation(feats(0.01 * (i % 2)), now=BASE_S + i * 0.01)

    threads = [threading.Thread(target=f) for f in (transitions, compressions, paths, observations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    stats = c.stats()
    for name in ("congestion", "compression", "path"):
        t = stats["tables"][name]
        assert t["appended"] == n_per_thread
        assert t["rows"] == 3_000
        assert t["rows"] + t["dropped"] == t["appended"]
    loss = stats["tables"]["loss"]
    labels = stats["loss_labels"]
    # Every observation is either labelled, dropped unlabeled or still pending.
    assert loss["appended"] + labels["unlabeled_dropped"] + loss["pending"] == n_per_thread
    assert labels["unlabeled_dropped"] == 0 and labels["clock_resets"] == 0
    assert loss["rows"] + loss["dropped"] == loss["appended"]
