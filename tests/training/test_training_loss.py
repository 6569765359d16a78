"""Loss-predictor training: labels, metrics, data recording, TBPTT fit, export, held-out eval."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from oxidize_ml.evaluation.fec import horizon_labels
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.hub.manifest import load_verified, write_manifest
from oxidize_ml.interval_stats import estimate_buffer_occupancy
from oxidize_ml.loss import FecPolicy, LstmLossPredictor, residual_loss
from oxidize_ml.loss.fec import FecConfig
from oxidize_ml.runtime import LstmLossModel, load_lstm
from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel
from oxidize_ml.telemetry import TelemetryCollector
from oxidize_ml.training.loss import (
    PR_AUC_MARGIN,
    RESIDUAL_RATIO_MAX,
    LossSequence,
    LossTrainConfig,
    RunSpec,
    _folded_model,
    fec_sweep,
    fit_lstm,
    meets_target,
    simulate_sequences,
    split_by_run,
    telemetry_sequences,
    train,
)
from oxidize_ml.training.torch_models import LossLstm


# ------------------------------------------------------------------------------ labels
def test_labels_match_the_telemetry_collector(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    col = TelemetryCollector()
    ts, lrs = [], []
    for i in range(300):
        now = 1_700_000_000.0 + 0.01 * (i + 1)
        lr = float(rng.uniform(0, 0.3)) if rng.uniform() < 0.1 else 0.0
        f = NetworkFeatures(
            rtt_us=40_000,
            rtt_var_us=2_000,
            bandwidth_bps=1e7,
            loss_rate=lr,
            loss_trend=0.0,
            inflight=20,
            cwnd=30_000,
            buffer_occupancy=float(rng.uniform()),
        )
        col.record_observation(f, now=now)
        ts.append(now)
        lrs.append(lr)
    col.advance(now=ts[-1] + 1.0)
    col.export(tmp_path / "export", source_version="test", created_at=1_700_000_100.0)
    seqs = telemetry_sequences(tmp_path)
    assert len(seqs) == 1
    (seq,) = seqs
    # telemetry rows are what the collector labelled (it also labels the last
    # partial windows); where the simulator's labeller has a label they agree
    assert seq.t.size >= len(ts) - 10
    np.testing.assert_allclose(seq.t, np.array(ts)[: seq.t.size])
    np.testing.assert_allclose(seq.loss_rate, np.array(lrs)[: seq.t.size])
    # (relative times: the simulator's labeller is meant for run time from 0; its
    # 1e-9 s boundary tolerance is below float64 resolution at Unix-epoch times)
    rel = 0.01 * np.arange(1, len(ts) + 1)
    sim_labels = horizon_labels(rel, np.array(lrs))[: seq.t.size]
    ok = ~np.isnan(sim_labels)
    assert ok.sum() >= len(ts) - 10
    np.testing.assert_allclose(seq.label[ok], sim_labels[ok], atol=1e-12)
    assert (seq.label[ok] > 0).sum() > 10  # the stream had losses to label


# ------------------------------------------------------------------------------ metrics
def test_fec_sweep_uses_the_policy_and_exact_residual() -> None:
    rng = np.random.default_rng(3)
    y = np.where(rng.uniform(size=200) < 0.3, rng.uniform(0, 0.4, 200), 0.0)
    p = np.clip(y + rng.normal(0, 0.02, 200), 0, 1)
    fec = FecConfig()
    policy = FecPolicy(fec)
    scales = (0.0, 0.5, 1.0, 3.0)
    over, res = fec_sweep(p, y, fec=fec, scales=scales)
    for j, s in enumerate(scales):
        r = [policy.repair_packets(min(1.0, s * float(v))) for v in p]
        assert over[j] == pytest.approx(sum(r) / (10 * len(r) + sum(r)), abs=1e-12)
        want = np.mean([residual_loss(float(yy), x, 10) for yy, x in zip(y, r, strict=True)])
        assert res[j] == pytest.approx(want, abs=1e-12)
    assert over[0] == 0.0 and res[0] == pytest.approx(y.mean())
    assert np.all(np.diff(over) >= 0) and np.all(np.diff(res) <= 1e-15)


# ------------------------------------------------------------------------------ data
def test_recorder_replaces_queue_fill_by_sender_estimate() -> None:
    from oxidize_ml.sim import get_scenario, simulate

    sc = get_scenario("wired-clean")
    sim_view = []
    res = simulate(
        sc,
        "cubic",
        seed=0,
        duration_s=3.0,
        on_interval=lambda now, i, f, thr, cwnd: sim_view.append(f.buffer_occupancy),
    )
    (seq,) = simulate_sequences(RunSpec(sc, "cubic", 0, "test", 3.0))
    srtt = seq.x[:, 0].astype(np.float64)  # rtt / 1e6, the divisor cancels in the ratio
    running_min = np.minimum.accumulate(np.where(srtt > 0, srtt, np.inf))
    est = [
        estimate_buffer_occupancy(a, b) if np.isfinite(b) else 0.0
        for a, b in zip(srtt, running_min, strict=True)
    ]
    np.testing.assert_allclose(seq.x[:, 7], est, atol=1e-6)
    # The simulator's features carry the sender-side estimate too (one observation for
    # the simulator and the aioquic plug-in): on this run the transport's min RTT is
    # the smallest smoothed RTT, so training (recorder) and serving see the same value.
    np.testing.assert_allclose(seq.x[:, 7], sim_view, atol=1e-6)
    # ... and not the true queue fill, which stays in the run's series for evaluation
    series = res.flows[0].series
    assert series is not None
    assert max(series.queue_bytes) > 0  # a queue built; its true fill stays in the series
    assert np.all(np.diff(seq.t) > 0) and len(seq) == len(sim_view)
    np.testing.assert_allclose(seq.label, horizon_labels(seq.t, seq.loss_rate))


def _toy_sequences(n_runs: int, length: int, seed: int) -> list[LossSequence]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_runs):
        t = 0.01 * np.arange(1, length + 1)
        x = rng.uniform(0, 0.2, (length, 8)).astype(np.float32)
        burst = (np.sin(t * (3 + k)) > 0.7).astype(np.float64)
        lr = burst * rng.uniform(0, 0.3, length)
        x[:, 3] = lr
        for flow in range(1 + k % 2):
            out.append(
                LossSequence(
                    f"sim:toy{k}/flow{flow}", "toy", t, x.copy(), lr, horizon_labels(t, lr)
                )
            )
    return out


def test_split_by_run_keeps_runs_whole() -> None:
    seqs = _toy_sequences(10, 50, 0)
    tr, va = split_by_run(seqs, 0.3, np.random.default_rng(0))
    runs_tr = {s.source.split("/")[0] for s in tr}
    runs_va = {s.source.split("/")[0] for s in va}
    assert runs_tr.isdisjoint(runs_va) and len(runs_va) == 3
    assert len(tr) + len(va) == len(seqs)


def _small_config() -> LossTrainConfig:
    return dataclasses.replace(
        LossTrainConfig.quick(), segment_steps=60, batch_size=4, max_epochs=2, patience=2
    )


def test_fit_is_deterministic_for_a_seed() -> None:
    seqs = _toy_sequences(8, 200, 1)
    tr, va = split_by_run(seqs, 0.25, np.random.default_rng(0))
    cfg = _small_config()
    a = fit_lstm(tr, va, cfg, seed=5).model.state_dict()
    b = fit_lstm(tr, va, cfg, seed=5).model.state_dict()
    c = fit_lstm(tr, va, cfg, seed=6).model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_folding_standardisation_and_calibration() -> None:
    torch.manual_seed(0)
    core = LossLstm().eval()
    rng = np.random.default_rng(4)
    mu = rng.uniform(0, 0.1, 8).astype(np.float32)
    sd = rng.uniform(0.01, 0.2, 8).astype(np.float32)
    a, b = 0.6, -3.0
    folded = _folded_model(core, mu, sd, a, b)
    xs = rng.uniform(0, 0.3, (1, 30, 8)).astype(np.float32)
    with torch.no_grad():
        z, _ = core.forward_logits(torch.from_numpy((xs - mu) / sd))
        want = torch.sigmoid(a * z + b).numpy()[0]
        got = folded(torch.from_numpy(xs))[0].numpy()[0]
    np.testing.assert_allclose(got, want, atol=2e-6)


# ------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("loss_model")
    result = train(LossTrainConfig.quick(), seed=0, out_dir=out, progress=False)
    return out, result


def test_train_writes_loadable_files(trained) -> None:
    out, result = trained
    assert result.name == "loss_predictor" and result.kind == "lstm_loss"
    for f in result.files.values():
        assert (out / f).is_file()
    np_model = load_lstm(out)
    ort_model = load_lstm(out, backend="onnxruntime")
    assert isinstance(np_model, LstmLossModel) and isinstance(ort_model, OrtLstmLossModel)
    # the two runtimes agree step by step through the policy
    rng = np.random.default_rng(0)
    a, b = LstmLossPredictor(np_model), LstmLossPredictor(ort_model)
    for i in range(100):
        f = NetworkFeatures(
            rtt_us=float(rng.uniform(2e4, 2e5)),
            rtt_var_us=float(rng.uniform(0, 3e4)),
            bandwidth_bps=float(rng.uniform(1e6, 5e7)),
            loss_rate=float(rng.choice([0.0, 0.05])),
            loss_trend=0.0,
            inflight=float(rng.integers(1, 200)),
            cwnd=float(rng.integers(3000, 300_000)),
            buffer_occupancy=float(rng.uniform()),
        )
        a.learn_one(f, f.loss_rate, now=0.01 * i)
        b.learn_one(f, f.loss_rate, now=0.01 * i)
        assert abs(a.predict_one(f, now=0.01 * i) - b.predict_one(f, now=0.01 * i)) <= 1e-5


def test_manifest_entry_verifies(trained) -> None:
    out, result = trained
    write_manifest(out, {result.name: result.manifest_entry()}, package_version="test")
    for backend in ("numpy", "onnxruntime"):
        model, reason = load_verified(out, "loss_predictor", backend=backend)
        assert reason == "ok" and model is not None
    entry = result.manifest_entry()
    assert entry["metrics"]["default_enabled"] is result.beats_heuristic


def test_result_reports_heldout_figures(trained) -> None:
    _, result = trained
    m = result.metrics
    for key in (
        "pr_auc_lstm",
        "pr_auc_ewma",
        "brier_lstm",
        "brier_ewma",
        "fec_overhead",
        "fec_residual_lstm",
        "fec_residual_ewma",
    ):
        assert math.isfinite(m[key]), key
    assert m["pr_auc_gain"] == pytest.approx(m["pr_auc_lstm"] - m["pr_auc_ewma"])
    assert result.beats_heuristic == meets_target(m["heldout"])
    assert result.beats_heuristic == (
        m["pr_auc_gain"] >= PR_AUC_MARGIN and m["fec_residual_ratio"] <= RESIDUAL_RATIO_MAX
    )
    held = result.training["heldout_sets"]["primary"]
    assert held and all("step-change" in s for s in held)  # the quick config's held-out set
    data = result.training["data"]["train"]
    assert data["rows"] > 0 and 0.0 < data["positive_rate"] < 1.0
    assert result.training["epochs"] >= 1


def test_config_rejects_training_on_heldout() -> None:
    with pytest.raises(ValueError, match="training split"):
        LossTrainConfig(train_scenarios=("satellite",))
    with pytest.raises(ValueError, match="held-out split"):
        LossTrainConfig(heldout_scenarios=("wired-clean",))
    with pytest.raises(ValueError, match="target"):
        LossTrainConfig(target="mse")
