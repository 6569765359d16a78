"""torch models -> safetensors / ONNX -> numpy and onnxruntime runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from oxidize_ml.runtime import LstmLossModel, MlpModel, load_lstm, load_mlp
from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel, OrtMlpModel
from oxidize_ml.runtime.weights import read_weight_file
from oxidize_ml.training.export import (
    ONNX_TOLERANCE,
    export_onnx,
    export_safetensors,
    load_torch_model,
    verify_onnx,
)
from oxidize_ml.training.torch_models import (
    CompressionMlp,
    DqnMlp,
    LossLstm,
    detach_state,
    iter_tbptt_chunks,
)

TOL = 1e-5


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """One export of each model (a dynamo ONNX export costs 2-6 s here; do it once).

    The compression MLP's ONNX file goes through the TorchScript fallback
    (cheap, and it is the code path `test_torchscript_fallback` forces);
    its graph is the same kind as the DQN's, which takes the dynamo path.
    """
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("models")
    models = {
        "loss_predictor": LossLstm().eval(),
        "congestion_controller": DqnMlp(n_inputs=10).eval(),
        "compression_oracle": CompressionMlp(n_inputs=6).eval(),
    }
    for stem, m in models.items():
        export_safetensors(m, d / f"{stem}.safetensors")
    export_onnx(models["loss_predictor"], d / "loss_predictor.onnx")
    export_onnx(models["congestion_controller"], d / "congestion_controller.onnx")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.onnx, "export", _dynamo_fails(torch.onnx.export))
        export_onnx(models["compression_oracle"], d / "compression_oracle.onnx")
    return d, models


def _dynamo_fails(real_export):
    def export(*args, **kwargs):
        if kwargs.get("dynamo", True):
            raise RuntimeError("simulated dynamo failure")
        return real_export(*args, **kwargs)

    return export


def test_files_are_single_and_valid(exported) -> None:
    d, _ = exported
    names = sorted(p.name for p in d.iterdir())
    assert not any(n.endswith(".data") or n.startswith(".tmp") for n in names), names
    for p in d.glob("*.onnx"):
        proto = onnx.load(str(p))
        onnx.checker.check_model(proto, full_check=True)
        meta = {e.key: e.value for e in proto.metadata_props}
        assert meta["format"] == "oxidize-ml-onnx/1" and meta["exporter"] in (
            "dynamo",
            "torchscript",
        )
        assert not any(
            t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer
        )


def test_safetensors_round_trip(exported) -> None:
    d, models = exported
    for stem, m in models.items():
        wf = read_weight_file(d / f"{stem}.safetensors")
        assert wf.config == m.config
        back = load_torch_model(d / f"{stem}.safetensors")
        for k, v in m.state_dict().items():
            assert torch.equal(back.state_dict()[k], v), k


def test_numpy_and_ort_runtimes_match_torch_lstm(exported) -> None:
    d, models = exported
    tm = models["loss_predictor"]
    xs = np.random.default_rng(0).standard_normal((1, 45, 8)).astype(np.float32)
    with torch.no_grad():
        ref = tm(torch.from_numpy(xs))[0][0].numpy()
    for backend in ("numpy", "onnxruntime"):
        m = load_lstm(d, backend=backend)
        assert isinstance(m, LstmLossModel if backend == "numpy" else OrtLstmLossModel)
        got = np.array([m.step(x) for x in xs[0]])
        assert np.max(np.abs(got - ref)) < TOL, backend
        assert abs(m.predict_window(xs[0, :20]) - ref[19]) < TOL


def test_numpy_and_ort_runtimes_match_torch_mlps(exported) -> None:
    d, models = exported
    for stem, kind in (("congestion_controller", "dqn"), ("compression_oracle", "compression_mlp")):
        tm = models[stem]
        x = np.random.default_rng(1).standard_normal((8, tm.config.n_inputs)).astype(np.float32)
        with torch.no_grad():
            ref = tm(torch.from_numpy(x)).numpy()
        for backend, cls in (("numpy", MlpModel), ("onnxruntime", OrtMlpModel)):
            m = load_mlp(d, kind, backend=backend)
            assert isinstance(m, cls)
            got = np.stack([m.forward(v).copy() for v in x])
            assert np.max(np.abs(got - ref)) < TOL, (stem, backend)


def test_verify_onnx_reports_small_error(exported) -> None:
    d, models = exported
    for stem, m in models.items():
        assert verify_onnx(m, d / f"{stem}.onnx", n=8) < ONNX_TOLERANCE
    # A model whose weights changed no longer verifies against the old file.
    other = LossLstm().eval()
    assert verify_onnx(other, d / "loss_predictor.onnx", n=2) > 1e-3
    with pytest.raises(ValueError, match="ONNX file is for"):
        verify_onnx(DqnMlp(n_inputs=8), d / "congestion_controller.onnx", n=1)


def test_export_rejects_bad_input(tmp_path: Path) -> None:
    m = DqnMlp()
    from oxidize_ml.runtime.configs import DqnMlpConfig

    with pytest.raises(ValueError, match="does not match"):
        export_safetensors(m, tmp_path / "a.safetensors", DqnMlpConfig(hidden=64))
    with torch.no_grad():
        m.layers[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        export_safetensors(m, tmp_path / "b.safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="variant"):
        export_onnx(DqnMlp(), tmp_path / "c.onnx", variant="window")
    with pytest.raises(ValueError, match="unknown variant"):
        export_onnx(LossLstm(), tmp_path / "d.onnx", variant="batch")
    with pytest.raises(TypeError, match="LossLstm, DqnMlp, CompressionMlp or PathMlp"):
        export_safetensors(torch.nn.Linear(2, 2), tmp_path / "e.safetensors")


def test_exporters_used(exported) -> None:
    d, _ = exported
    used = {
        p.stem: {e.key: e.value for e in onnx.load(str(p)).metadata_props}["exporter"]
        for p in d.glob("*.onnx")
    }
    assert used == {
        "loss_predictor": "dynamo",
        "congestion_controller": "dynamo",
        "compression_oracle": "torchscript",  # the forced fallback
    }


@pytest.mark.slow
def test_lstm_window_variant(tmp_path: Path) -> None:
    torch.manual_seed(2)
    m = LossLstm().eval()
    p = export_onnx(m, tmp_path / "loss_window.onnx", variant="window", window_len=12)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    assert [i.shape for i in sess.get_inputs()] == [[1, 12, 8]]
    xs = np.random.default_rng(3).standard_normal((1, 12, 8)).astype(np.float32)
    with torch.no_grad():
        ref = float(m(torch.from_numpy(xs))[0][0, -1])
    assert abs(float(sess.run(None, {"xs": xs})[0][0]) - ref) < TOL
    assert verify_onnx(m, p, n=4) < ONNX_TOLERANCE
    with pytest.raises(Exception, match="variant"):
        OrtLstmLossModel.load(p)  # the runtime needs the step graph


def test_tbptt_chunks_carry_state_and_cut_gradients() -> None:
    torch.manual_seed(1)
    m = LossLstm()
    xs = torch.randn(3, 50, 8)
    ys = (torch.rand(3, 50) < 0.1).float()
    chunks = list(iter_tbptt_chunks(xs, ys, m.config.seq_len))
    assert [c[0].shape[1] for c in chunks] == [20, 20, 10]
    state = None
    outs = []
    for cx, _ in chunks:
        p, state = m(cx, state)
        outs.append(p)
        state = detach_state(state)
        assert state[0].grad_fn is None and state[1].grad_fn is None
    full, _ = m(xs)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-6, rtol=0)
    # The explicit step used for ONNX equals the nn.LSTM path.
    h = torch.zeros(3, 64)
    c = torch.zeros(3, 64)
    for t in range(5):
        p, h, c = m.step(xs[:, t], h, c)
        torch.testing.assert_close(p[:, 0], full[:, t], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="disagree"):
        list(iter_tbptt_chunks(xs, ys[:, :10], 20))
