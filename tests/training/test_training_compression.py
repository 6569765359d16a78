"""Compression-oracle training: split, labels, telemetry rows, the target, a tiny real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from oxidize_ml.compression import PacketCodec, RateBucketOracle, measure_outcomes
from oxidize_ml.compression.learned import DECISIONS, quantize
from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.evaluation.corpus import FILE_CATEGORIES, corpus_side, heldout_source
from oxidize_ml.hub.manifest import verify_model_dir, write_manifest
from oxidize_ml.models import load_policies
from oxidize_ml.runtime.numpy_models import MlpModel
from oxidize_ml.training.compression import (
    NAME,
    CompressionTrainConfig,
    LabelledPackets,
    evaluate_oracles,
    judge,
    label_packets,
    share_of_optimum,
    telemetry_rows,
    train,
)
from oxidize_ml.types import MlCompressionDecision as D

TINY = CompressionTrainConfig(
    train_packets_per_corpus=270,
    train_corpora=1,
    heldout_packets=135,
    timing_repeats=3,
    epochs=8,
    batch_size=64,
    cost_rounds=2,
    cost_number=100,
)


def test_heldout_source_rule() -> None:
    assert heldout_source("generated:random", 0.25) is None
    sides = [heldout_source(f"/usr/share/doc/pkg{i}/README", 0.25) for i in range(400)]
    assert sides == [heldout_source(f"/usr/share/doc/pkg{i}/README", 0.25) for i in range(400)]
    assert 0.15 < np.mean(sides) < 0.35
    assert not any(heldout_source(f"/f{i}", 0.0) for i in range(50))
    assert all(heldout_source(f"/f{i}", 1.0) for i in range(50))


def test_corpus_sides_share_no_file() -> None:
    train_side, train_counts = corpus_side(seed=3, max_packets=90, heldout=False, file_share=0.3)
    held_side, held_counts = corpus_side(seed=3, max_packets=90, heldout=True, file_share=0.3)
    train_files = {p.source for p in train_side if not p.generated}
    held_files = {p.source for p in held_side if not p.generated}
    assert not train_files & held_files
    assert all(heldout_source(s, 0.3) for s in held_files)
    assert not any(heldout_source(s, 0.3) for s in train_files)
    # Every category keeps its quota (files allowing), so the split does not starve any.
    for counts in (train_counts, held_counts):
        assert sum(counts["per_category"].values()) == counts["kept"]
        assert all(v == 10 for c, v in counts["per_category"].items() if c not in FILE_CATEGORIES)


def test_labels_are_the_measured_outcomes() -> None:
    pkts = [b'{"a": 1, "b": [1, 2, 3]} ' * 40, bytes(range(256)) * 4, b"x" * 10]
    data = label_packets(pkts, ["json", "bin", "tiny"], repeats=1)
    assert data.inputs.shape == (3, 9)
    assert np.array_equal(data.inputs[0], quantize(pkts[0]).to_vector())
    ref = measure_outcomes(pkts[0], PacketCodec(), repeats=1)
    assert list(data.out_bytes[0]) == [ref[d].out_bytes for d in DECISIONS]
    y, mask = data.targets()
    assert mask.all()
    skip = DECISIONS.index(D.Skip)
    assert y[0, skip] == pytest.approx(-1 / len(pkts[0]))  # the 1-byte frame header
    assert y[0, DECISIONS.index(D.Aggressive)] > 0.5  # repetitive JSON shrinks a lot


def _hand_set() -> LabelledPackets:
    # Two packets; decision columns in enum order (Skip, Light, Aggressive, RohcOnly).
    return LabelledPackets(
        inputs=np.zeros((2, 9), dtype=np.float32),
        size=np.array([1000, 1000]),
        out_bytes=np.array([[1001, 600, 500, 1001], [1001, 1001, 1001, 1001]]),
        encode_s=np.array([[0.0, 2e-6, 10e-6, 0.0], [0.0, 2e-6, 10e-6, 0.0]]),
        decode_s=np.zeros((2, 4)),
        category=("text", "random"),
        packets=(b"a" * 1000, b"b" * 1000),
    )


class _Always:
    def __init__(self, d: D) -> None:
        self.d = d

    def decide(self, data: bytes) -> D:
        return self.d


def test_share_of_optimum() -> None:
    data = _hand_set()
    rows = evaluate_oracles(
        {"skip": _Always(D.Skip), "light": _Always(D.Light), "aggr": _Always(D.Aggressive)},
        data,
        [1e6],
    )
    (row,) = rows
    # At 1 Mbit/s the best is Aggressive on packet 0 and Skip on packet 1.
    assert row["skip_share"] == pytest.approx(0.0)
    gain_best = 500 * 8 / 1e6 - 10e-6 + 8 / 1e6  # over Skip, packet 0 only
    aggr_total = gain_best - (10e-6 + 0)  # packet 1: Aggressive wastes 10 us for nothing
    assert row["aggr_share"] == pytest.approx(aggr_total / gain_best)
    assert row["light_share"] < row["aggr_share"]
    util = np.zeros((2, 4))
    assert share_of_optimum(util, np.zeros(2, int), np.zeros(2, int)) is None  # nothing to gain


def test_judge_rule() -> None:
    per_rate = [
        {"model_share": 0.99, "heuristic_share": 0.97},
        {"model_share": 0.90, "heuristic_share": 0.905},
    ]

    def cost(ratio: float, learned_us: float = 1.0, heuristic_us: float = 1.0) -> dict:
        return {"learned_over_lz4": ratio, "learned_us": learned_us, "heuristic_us": heuristic_us}

    cost_ok = {"text": cost(0.6), "random": cost(0.9)}
    beats, why = judge(TINY, per_rate, cost_ok)
    assert beats and why["share_within_tolerance_every_rate"] and why["fast_enough"]
    slow = {"text": cost(0.6), "random": cost(1.2)}
    assert judge(TINY, per_rate, slow)[0] is False
    slower_than_heuristic = {"text": cost(0.6, 1.3, 1.0), "random": cost(0.9)}
    beats, why = judge(TINY, per_rate, slower_than_heuristic)
    assert beats is False and why["no_slower_than_heuristic"] is False
    worse = [
        {"model_share": 0.99, "heuristic_share": 0.97},
        {"model_share": 0.85, "heuristic_share": 0.90},
    ]
    assert judge(TINY, worse, cost_ok)[0] is False
    equal = [{"model_share": 0.9, "heuristic_share": 0.9}]
    assert judge(TINY, equal, cost_ok)[0] is False  # no gain is not a win


def _telemetry_export(root: Path, packets: list[bytes]) -> None:
    engine = MlEngine(EngineConfig(load_default_models=False, collect_training=True))
    for i, p in enumerate(packets):
        engine.compress(p, now=1_700_000_000.0 + i)
    engine.export_training_data(root)


def test_telemetry_rows_match_quantize(tmp_path: Path) -> None:
    packets = [
        b"hello world " * 100,
        bytes(range(256)) * 5,
        b"\x17\x03\x03\x01\x00" + bytes(256),
        bytes([0x80, 0, 0, 1]) + bytes(150),
        b"zz",
    ]
    _telemetry_export(tmp_path / "tel", packets)
    data, counts = telemetry_rows(tmp_path / "tel")
    assert counts["used"] == len(packets)
    for i, p in enumerate(packets):
        assert np.array_equal(data.inputs[i], quantize(p).to_vector()), i
    _y, mask = data.targets()
    assert mask[:, :4].sum() == len(packets)  # one saved fraction per row: the decision taken
    assert mask[:, 4:8].sum() == len(packets)  # its encode time
    assert not mask[:, 8:].any()  # no decode times in telemetry


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("ctrain")
    _telemetry_export(root / "tel", [b"log line %d ok\n" % i * 30 for i in range(20)])
    out = root / "model"
    return out, train(TINY, seed=0, out_dir=out, telemetry_root=root / "tel", progress=False)


def test_train_writes_a_loadable_model(trained: tuple[Path, object]) -> None:
    out, result = trained
    assert result.name == NAME and result.kind == "compression_mlp"
    assert (out / result.files["safetensors"]).is_file()
    assert (out / result.files["onnx"]).is_file()
    data = result.training["data"]
    assert data["telemetry"]["used"] == 20
    assert data["train_packets"] > 200 and data["heldout_packets"] > 100
    write_manifest(out, {NAME: result.manifest_entry()}, package_version="test")
    assert verify_model_dir(out).ok
    loaded = load_policies(
        out, backend="numpy", limits=CwndLimits(), state_config=StateConfig(), seed=0
    )
    assert loaded.status[NAME] == "loaded"
    oracle = loaded.compression
    # load_policies wraps the learned oracle so the engine can re-target it per link rate.
    assert isinstance(oracle, RateBucketOracle)
    assert oracle.link_rate_bps == TINY.engine_link_rate_bps


def test_train_metrics_and_target(trained: tuple[Path, object]) -> None:
    _, result = trained
    m = result.metrics
    assert [r["link_rate_bps"] for r in m["per_rate"]] == list(TINY.eval_link_rates_bps)
    for row in m["per_rate"][:2]:  # at 5 and 20 Mbit/s compressing text clearly pays
        assert row["best_utility_us_per_packet"] > row["skip_utility_us_per_packet"]
        # No policy beats the per-packet hindsight optimum on the same measurements.
        assert row["model_share"] <= 1.0 + 1e-9 and row["heuristic_share"] <= 1.0 + 1e-9
        assert row["model_utility_us_per_packet"] <= row["best_utility_us_per_packet"] + 1e-9
    assert set(m["decision_cost_us"]) == {"text", "random", "json"}
    for c in m["decision_cost_us"].values():
        assert c["lz4_us"] > 0 and c["learned_us"] > 0 and c["mlp_per_packet_us"] > 0
    assert result.target and "lz4" in result.target
    assert result.beats_heuristic == judge(TINY, m["per_rate"], m["decision_cost_us"])[0]
    assert result.manifest_entry()["metrics"]["default_enabled"] is result.beats_heuristic


def test_onnx_agrees_with_numpy(trained: tuple[Path, object]) -> None:
    ort = pytest.importorskip("onnxruntime")
    out, result = trained
    m = MlpModel.load(out / result.files["safetensors"])
    sess = ort.InferenceSession(str(out / result.files["onnx"]), providers=["CPUExecutionProvider"])
    x = quantize(b"some text some text " * 30).to_vector()[None, :]
    (y,) = sess.run(None, {"x": x})
    assert np.allclose(y[0], m.forward(x[0]), atol=1e-5)


def test_compare_with_current(trained: tuple[Path, object]) -> None:
    from oxidize_ml.compression import HeuristicCompressionOracle
    from oxidize_ml.training.compression import compare_with_current, heldout_set, load_exported

    out, result = trained
    candidate = load_exported(out / result.files["safetensors"])
    held = heldout_set(TINY, seed=0)
    vs_itself = compare_with_current(candidate, candidate, TINY, seed=0, heldout=held)
    assert vs_itself["candidate_mean_share"] == pytest.approx(vs_itself["current_mean_share"])
    assert vs_itself["better"] is False  # no gain is not an improvement
    vs_heuristic = compare_with_current(
        candidate, HeuristicCompressionOracle(), TINY, seed=0, heldout=held
    )
    assert vs_heuristic["current"] == "heuristic"
    gain = vs_heuristic["candidate_mean_share"] - vs_heuristic["current_mean_share"]
    worst = min(r["candidate_share"] - r["current_share"] for r in vs_heuristic["per_rate"])
    assert vs_heuristic["better"] == (gain > 0.005 and worst >= -TINY.max_share_loss_per_rate)
