"""DQN training: a tiny-budget smoke run (CleanRL style), determinism and the building blocks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("gymnasium")

from oxidize_ml.congestion.dqn import ReplayBatch, ReplayBuffer
from oxidize_ml.features import FEATURE_NAMES
from oxidize_ml.runtime import MlpModel, load_mlp
from oxidize_ml.runtime.weights import read_weight_file
from oxidize_ml.telemetry import TelemetryCollector
from oxidize_ml.training.dqn import (
    DqnTrainConfig,
    NStepAccumulator,
    _mixed_batch,
    dqn_update,
    fit_dqn,
    state_input_names,
    torch_from_weights,
    train,
    weights_from_torch,
)
from oxidize_ml.training.torch_models import DqnMlp

TINY = dataclasses.replace(
    DqnTrainConfig.quick(), demo_steps=200, total_steps=300, pretrain_updates=10, learning_starts=50
)


def _torchscript_export(real_export):
    """Force the exporter's TorchScript path: same graph, seconds instead of the dynamo
    exporter's 15-50 s on a busy machine (the export module's own tests cover dynamo)."""

    def export(*args, **kwargs):
        if kwargs.get("dynamo", True):
            raise RuntimeError("dynamo skipped in this test")
        return real_export(*args, **kwargs)

    return export


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dqn")
    # A telemetry export with congestion transitions of the right state size (and one that
    # does not fit, which must be skipped).
    tel = TelemetryCollector()
    rng = np.random.default_rng(0)
    for i in range(40):
        s = rng.random(24).astype(np.float32)
        tel.record_transition(s, i % 6, 0.5, rng.random(24).astype(np.float32), now=1e9 + i)
    tel.record_transition(np.zeros(8), 0, 0.0, np.zeros(8), now=1e9 + 50)
    tel.export(root / "telemetry", source_version="test")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.onnx, "export", _torchscript_export(torch.onnx.export))
        result = train(
            DqnTrainConfig.quick(),
            seed=0,
            out_dir=root / "model",
            telemetry_root=root / "telemetry",
            progress=False,
        )
    return root / "model", result


def test_training_writes_loadable_model_files(trained) -> None:
    out, result = trained
    assert result.files == {
        "safetensors": "congestion_controller.safetensors",
        "onnx": "congestion_controller.onnx",
    }
    m_np = load_mlp(out, backend="numpy")
    m_ort = load_mlp(out, backend="onnxruntime")
    assert m_np.config.n_inputs == 24 and m_ort.config.n_inputs == 24
    states = np.random.default_rng(1).random((32, 24)).astype(np.float32)
    for s in states:
        np.testing.assert_allclose(m_np.forward(s), m_ort.forward(s), atol=1e-5)
    meta = read_weight_file(out / "congestion_controller.safetensors").metadata
    assert meta["congestion_state_version"] == "1" and '"history": 4' in meta["state_config"]


def test_train_result_reports_the_heldout_comparison(trained) -> None:
    _, result = trained
    assert result.name == "congestion_controller" and result.kind == "dqn"
    assert result.inputs == state_input_names(DqnTrainConfig().state)
    assert result.inputs[:8] == list(FEATURE_NAMES) and len(result.inputs) == 24
    held = result.metrics["heldout"]
    assert {"step-change", "satellite"} <= set(held["scenarios"])
    for row in held["scenarios"].values():
        assert set(row) == {"dqn", "bbr", "cubic", "reno"}
        for figures in row.values():
            assert figures["throughput_mbps"] >= 0.0 and figures["queue_delay_p95_ms"] >= 0.0
    assert set(held["checks"]) == {
        "throughput_vs_cubic",
        "queue_delay_vs_cubic",
        "worst_scenario_throughput_vs_cubic",
    }
    assert isinstance(result.beats_heuristic, bool) and "CUBIC" in result.target
    phases = result.training["phases"]
    assert phases["telemetry"] == {"root": phases["telemetry"]["root"], "rows": 41, "used": 40}
    assert phases["demonstrations"]["steps"] == 400 and phases["dqn"]["updates"] > 0
    entry = result.manifest_entry()
    assert entry["metrics"]["default_enabled"] is result.beats_heuristic


def test_fit_is_deterministic_for_a_seed() -> None:
    a, sa = fit_dqn(TINY, seed=3)
    b, sb = fit_dqn(TINY, seed=3)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k
    assert sa == sb
    c, _ = fit_dqn(TINY, seed=4)
    assert not torch.equal(a.state_dict()["layers.0.weight"], c.state_dict()["layers.0.weight"])


def test_n_step_returns_and_truncation() -> None:
    buf = ReplayBuffer(100, 1, seed=0)
    acc = NStepAccumulator(3, 0.5, buf)
    s = [np.array([float(i)]) for i in range(6)]
    for t in range(5):
        acc.push(s[t], t, 1.0, s[t + 1], truncated=(t == 4))
    b = buf.sample(1000)
    rows = {
        int(x): (r, n, int(nx))
        for x, r, n, nx in zip(b.states[:, 0], b.rewards, b.steps, b.next_states[:, 0], strict=True)
    }
    assert rows[0] == (1.75, 3, 3) and rows[1] == (1.75, 3, 4) and rows[2] == (1.75, 3, 5)
    assert rows[3] == (1.5, 2, 5) and rows[4] == (1.0, 1, 5)  # flushed at truncation
    assert len(buf) == 5 and not b.dones.any()


def test_margin_loss_makes_demonstrated_actions_greedy() -> None:
    torch.manual_seed(0)
    net, tgt = DqnMlp(n_inputs=8), DqnMlp(n_inputs=8)
    tgt.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    states = rng.random((64, 8)).astype(np.float32)
    actions = (states[:, 0] * 6).astype(np.int64)  # an action that depends on the state
    batch = ReplayBatch(
        states,
        actions,
        np.zeros(64, np.float32),
        states,
        np.zeros(64, np.float32),
        np.ones(64, np.int64),
    )
    for _ in range(300):
        dqn_update(
            net, tgt, opt, batch, gamma=0.9, demo=np.ones(64, bool), margin=0.8, margin_weight=1.0
        )
    with torch.no_grad():
        greedy = net(torch.from_numpy(states)).argmax(1).numpy()
    assert np.mean(greedy == actions) > 0.9


def test_double_dqn_target_uses_the_online_argmax_and_target_values() -> None:
    net, tgt = DqnMlp(n_inputs=8), DqnMlp(n_inputs=8)
    for m, out in ((net, [0.0, 5.0, 0, 0, 0, 0]), (tgt, [1.0, 2.0, 9.0, 0, 0, 0])):
        sd = m.state_dict()
        for k in sd:
            sd[k] = torch.zeros_like(sd[k])
        sd["layers.2.bias"] = torch.tensor(out)
        m.load_state_dict(sd)
    # Q_online(s', .) picks action 1, whose target value is 2 (not the target's max 9).
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    batch = ReplayBatch(
        np.zeros((1, 8), np.float32),
        np.array([0]),
        np.array([1.0], np.float32),
        np.zeros((1, 8), np.float32),
        np.zeros(1, np.float32),
        np.array([2]),
    )
    loss = dqn_update(net, tgt, opt, batch, gamma=0.5, huber_delta=100.0)
    y = 1.0 + 0.5**2 * 2.0
    assert loss == pytest.approx(0.5 * (0.0 - y) ** 2)


def test_weights_round_trip_between_torch_and_the_runtime() -> None:
    torch.manual_seed(1)
    net = DqnMlp(n_inputs=24)
    w = weights_from_torch(net)
    back = torch_from_weights(w)
    x = torch.rand(5, 24)
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), net(x).numpy(), atol=1e-6)
        np.testing.assert_allclose(MlpModel(w).forward_batch(x.numpy()), net(x).numpy(), atol=1e-5)


def test_mixed_batch_flags_demonstrations() -> None:
    demo, agent = ReplayBuffer(10, 1, seed=0), ReplayBuffer(10, 1, seed=1)
    for i in range(10):
        demo.add(np.array([-1.0]), 0, 0.0, np.array([0.0]))
        agent.add(np.array([float(i)]), 1, 0.0, np.array([0.0]))
    b, flags = _mixed_batch(demo, agent, 16, 0.25)
    assert flags.sum() == 4 and (b.states[flags, 0] == -1.0).all()
    assert (b.states[~flags, 0] >= 0.0).all()
    b, flags = _mixed_batch(demo, ReplayBuffer(10, 1), 8, 0.25)
    assert flags.all()  # no agent data yet: demonstrations only


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="gamma"):
        DqnTrainConfig(gamma=1.5)
    with pytest.raises(ValueError, match="n_step"):
        DqnTrainConfig(n_step=0)
    with pytest.raises(TypeError, match="config"):
        train({}, seed=0, out_dir=".")  # type: ignore[arg-type]


def test_dueling_network_merges_exactly_into_the_plain_mlp() -> None:
    from oxidize_ml.runtime import DqnMlpConfig
    from oxidize_ml.training.dqn import DuelingDqn

    torch.manual_seed(2)
    duel = DuelingDqn(DqnMlpConfig(n_inputs=24))
    plain = duel.to_dqn_mlp()
    assert isinstance(plain, DqnMlp)
    x = torch.randn(64, 24)
    with torch.no_grad():
        np.testing.assert_allclose(plain(x).numpy(), duel(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(
        MlpModel(weights_from_torch(duel)).forward_batch(x.numpy()),
        duel(x).detach().numpy(),
        atol=1e-5,
    )


def test_onnx_export_of_return_sized_q_values(tmp_path, monkeypatch) -> None:
    """Q-values of ~50 differ by float32 rounding (~2e-5) between torch and onnxruntime;
    the export accepts that (relative check) and leaves no temporary file."""
    from oxidize_ml.training.dqn import export_dqn_onnx

    monkeypatch.setattr(torch.onnx, "export", _torchscript_export(torch.onnx.export))
    torch.manual_seed(0)
    net = DqnMlp(n_inputs=24)
    with torch.no_grad():
        net.layers[2].bias += 45.0
        net.layers[0].weight *= 20.0
    path = export_dqn_onnx(net, tmp_path / "congestion_controller.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["congestion_controller.onnx"]
    m = load_mlp(path, backend="onnxruntime")
    x = np.random.default_rng(0).standard_normal(24).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(m.forward(x), ref, rtol=1e-5, atol=1e-4)
