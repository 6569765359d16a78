"""Inference timings of the runtime backends, for ``oxidize-ml bench``.

TIMING ONLY: the models here have random weights built in memory (seeded),
because the cost of a forward pass does not depend on the weight values. The
numbers say nothing about prediction quality.

The onnxruntime graphs are built directly with ``onnx.helper`` from the same
weights, with the ops torch's exporter emits for these models (MatMul, Add,
Split, Sigmoid, Tanh for the LSTM step; the ONNX ``LSTM`` operator for the
window; MatMul/Add/Relu for the MLPs), so no torch is needed; they are
checked against the numpy backend before timing. The torch column (eager
mode, ``torch.no_grad``) is measured only with ``include_torch=True`` and
torch installed: this module never imports torch otherwise.
"""

from __future__ import annotations

import functools
import timeit
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from oxidize_ml.runtime.configs import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    MlpConfig,
    ModelConfig,
    config_to_json,
    expected_tensors,
    mlp_widths,
)
from oxidize_ml.runtime.kernels import F32
from oxidize_ml.runtime.numpy_models import LstmLossModel, MlpModel

# Scale of the random weights: about PyTorch's default init for these widths,
# so activations are in their normal (unsaturated) range.
_WEIGHT_SCALE = 0.1
_AGREE_TOL = 1e-4


class BenchRow(NamedTuple):
    """Median microseconds per call on one core; ``None`` when the backend is absent."""

    name: str
    numpy_us: float
    onnxruntime_us: float | None
    torch_us: float | None = None


def random_tensors(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights of the right names and shapes (for timing and tests only)."""
    rng = np.random.default_rng(seed)
    return {
        name: (rng.standard_normal(shape) * _WEIGHT_SCALE).astype(F32)
        for name, shape in expected_tensors(config).items()
    }


def _onnx_model(graph: Any, config: ModelConfig, variant: str) -> bytes:
    import onnx
    from onnx import helper

    from oxidize_ml.features import FEATURE_SCHEMA_VERSION
    from oxidize_ml.runtime.onnx_backend import ONNX_FORMAT

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for k, v in {
        "format": ONNX_FORMAT,
        "kind": config.kind,
        "config": config_to_json(config),
        "variant": variant,
        "feature_schema_version": str(FEATURE_SCHEMA_VERSION),
        "exporter": "onnx.helper (benchmark)",
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def lstm_step_onnx(tensors: Mapping[str, np.ndarray], config: LossLstmConfig) -> bytes:
    """ONNX step graph ``(x [1,F], h [1,H], c [1,H]) -> (p [1,1], h_out, c_out)``."""
    from onnx import TensorProto, helper, numpy_helper

    f, h = config.n_features, config.hidden
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(tensors["lstm.weight_ih_l0"].T), "w_ih"),
        numpy_helper.from_array(np.ascontiguousarray(tensors["lstm.weight_hh_l0"].T), "w_hh"),
        numpy_helper.from_array(tensors["lstm.bias_ih_l0"] + tensors["lstm.bias_hh_l0"], "b"),
        numpy_helper.from_array(np.ascontiguousarray(tensors["head.weight"].T), "w_head"),
        numpy_helper.from_array(tensors["head.bias"], "b_head"),
    ]
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "w_ih"], ["gx"]),
        n("MatMul", ["h", "w_hh"], ["gh"]),
        n("Add", ["gx", "gh"], ["g0"]),
        n("Add", ["g0", "b"], ["gates"]),
        n("Split", ["gates"], ["zi", "zf", "zg", "zo"], axis=1, num_outputs=4),
        n("Sigmoid", ["zi"], ["i"]),
        n("Sigmoid", ["zf"], ["f"]),
        n("Tanh", ["zg"], ["g"]),
        n("Sigmoid", ["zo"], ["o"]),
        n("Mul", ["f", "c"], ["fc"]),
        n("Mul", ["i", "g"], ["ig"]),
        n("Add", ["fc", "ig"], ["c_out"]),
        n("Tanh", ["c_out"], ["tc"]),
        n("Mul", ["o", "tc"], ["h_out"]),
        n("MatMul", ["h_out", "w_head"], ["z0"]),
        n("Add", ["z0", "b_head"], ["z"]),
        n("Sigmoid", ["z"], ["p"]),
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "lstm_step",
        [
            vi("x", TensorProto.FLOAT, [1, f]),
            vi("h", TensorProto.FLOAT, [1, h]),
            vi("c", TensorProto.FLOAT, [1, h]),
        ],
        [
            vi("p", TensorProto.FLOAT, [1, 1]),
            vi("h_out", TensorProto.FLOAT, [1, h]),
            vi("c_out", TensorProto.FLOAT, [1, h]),
        ],
        initializer=inits,
    )
    return _onnx_model(graph, config, "step")


def lstm_window_onnx(tensors: Mapping[str, np.ndarray], config: LossLstmConfig, t: int) -> bytes:
    """ONNX window graph ``xs [1, T, F] -> p [1]`` using the ONNX ``LSTM`` operator."""
    from onnx import TensorProto, helper, numpy_helper

    f, h = config.n_features, config.hidden
    # torch gate order (i, f, g, o) -> ONNX order (i, o, f, c).
    order = np.concatenate(
        [np.arange(0, h), np.arange(3 * h, 4 * h), np.arange(h, 2 * h), np.arange(2 * h, 3 * h)]
    )
    w = tensors["lstm.weight_ih_l0"][order][None]  # [1, 4H, F]
    r = tensors["lstm.weight_hh_l0"][order][None]  # [1, 4H, H]
    b = np.concatenate([tensors["lstm.bias_ih_l0"][order], tensors["lstm.bias_hh_l0"][order]])[None]
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(w), "W"),
        numpy_helper.from_array(np.ascontiguousarray(r), "R"),
        numpy_helper.from_array(np.ascontiguousarray(b), "B"),
        numpy_helper.from_array(np.ascontiguousarray(tensors["head.weight"].T), "w_head"),
        numpy_helper.from_array(tensors["head.bias"], "b_head"),
        numpy_helper.from_array(np.array([1, h], dtype=np.int64), "shape_bh"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "shape_1"),
    ]
    n = helper.make_node
    nodes = [
        # onnxruntime supports only layout 0 (time-major): [1, T, F] -> [T, 1, F].
        n("Transpose", ["xs"], ["xs_t"], perm=[1, 0, 2]),
        n("LSTM", ["xs_t", "W", "R", "B"], ["", "y_h"], hidden_size=h),  # y_h [1, 1, H]
        n("Reshape", ["y_h", "shape_bh"], ["h_last"]),  # [1, H]
        n("MatMul", ["h_last", "w_head"], ["z0"]),
        n("Add", ["z0", "b_head"], ["z"]),
        n("Sigmoid", ["z"], ["p2"]),  # [1, 1]
        n("Reshape", ["p2", "shape_1"], ["p"]),  # [1]
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "lstm_window",
        [vi("xs", TensorProto.FLOAT, [1, t, f])],
        [vi("p", TensorProto.FLOAT, [1])],
        initializer=inits,
    )
    return _onnx_model(graph, config, "window")


def mlp_onnx(tensors: Mapping[str, np.ndarray], config: MlpConfig) -> bytes:
    """ONNX MLP graph ``x [1, n_inputs] -> y [1, n_outputs]``."""
    from onnx import TensorProto, helper, numpy_helper

    widths = mlp_widths(config)
    n_layers = len(widths) - 1
    inits, nodes = [], []
    a = "x"
    for k in range(n_layers):
        inits.append(
            numpy_helper.from_array(np.ascontiguousarray(tensors[f"layers.{k}.weight"].T), f"w{k}")
        )
        inits.append(numpy_helper.from_array(tensors[f"layers.{k}.bias"], f"b{k}"))
        nodes.append(helper.make_node("MatMul", [a, f"w{k}"], [f"m{k}"]))
        out = "y" if k == n_layers - 1 else f"a{k}"
        if k == n_layers - 1:
            nodes.append(helper.make_node("Add", [f"m{k}", f"b{k}"], [out]))
        else:
            nodes.append(helper.make_node("Add", [f"m{k}", f"b{k}"], [f"z{k}"]))
            nodes.append(helper.make_node("Relu", [f"z{k}"], [out]))
        a = out
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "mlp",
        [vi("x", TensorProto.FLOAT, [1, widths[0]])],
        [vi("y", TensorProto.FLOAT, [1, widths[-1]])],
        initializer=inits,
    )
    return _onnx_model(graph, config, "step")


def _ort_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def bench_models(
    *,
    number: int = 1000,
    repeat: int = 15,
    include_torch: bool = False,
    seed: int = 0,
    quick: bool = False,
) -> list[BenchRow]:
    """Time every model on every available backend (random weights: timing only).

    Rows: ``lstm_step`` (one step from carried state, the engine's call),
    ``lstm_window_20`` (20 steps from zero state), ``dqn_argmax`` (8 -> 128 ->
    128 -> 6, forward + argmax), ``compression_argmax`` (8 -> 32 -> 4).

    Parameters
    ----------
    number, repeat
        Calls per timing run and runs; the median run is reported per call.
    include_torch
        Also time torch eager (imports torch; needs the ``train`` extra).
    seed
        Seed of the random weights and inputs.
    quick
        Smoke-test budget (``number`` 100, ``repeat`` 5): about 0.3 s in all.

    Raises
    ------
    RuntimeError
        A backend disagrees with numpy (the rows would compare different functions).
    """
    from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel, OrtMlpModel

    if quick:
        number, repeat = min(number, 100), min(repeat, 5)
    rng = np.random.default_rng(seed)
    have_ort = _ort_available()
    lstm_cfg = LossLstmConfig()
    lstm_t = random_tensors(lstm_cfg, seed)
    x = rng.uniform(0.0, 1.0, lstm_cfg.n_features).astype(F32)
    xs = rng.uniform(0.0, 1.0, (lstm_cfg.seq_len, lstm_cfg.n_features)).astype(F32)

    np_lstm = LstmLossModel.from_tensors(lstm_t, lstm_cfg)
    ort_lstm = ort_win = None
    if have_ort:
        ort_lstm = OrtLstmLossModel.from_bytes(lstm_step_onnx(lstm_t, lstm_cfg), source="bench")
        ort_win = _window_session(lstm_window_onnx(lstm_t, lstm_cfg, lstm_cfg.seq_len))
        _agree("lstm_step", np_lstm.fork().step(x), ort_lstm.fork().step(x))
        _agree("lstm_window", np_lstm.predict_window(xs), float(ort_win(xs)[0]))
    torch_fns = _torch_fns(lstm_t, lstm_cfg, x, xs) if include_torch else {}

    # (row name, calls per run, numpy fn, onnxruntime fn, torch fn)
    plans: list[
        tuple[
            str, int, Callable[[], object], Callable[[], object] | None, Callable[[], object] | None
        ]
    ] = [
        (
            "lstm_step",
            number,
            lambda: np_lstm.step(x),
            None if ort_lstm is None else (lambda: ort_lstm.step(x)),
            torch_fns.get("lstm_step"),
        ),
        (
            f"lstm_window_{lstm_cfg.seq_len}",
            max(1, number // 20),
            lambda: np_lstm.predict_window(xs),
            None if ort_win is None else (lambda: ort_win(xs)),
            torch_fns.get("lstm_window"),
        ),
    ]
    for name, cfg in (
        ("dqn_argmax", DqnMlpConfig()),
        ("compression_argmax", CompressionMlpConfig()),
    ):
        tensors = random_tensors(cfg, seed)
        xin = rng.uniform(0.0, 1.0, cfg.n_inputs).astype(F32)
        np_mlp = MlpModel.from_tensors(tensors, cfg)
        ort_mlp = None
        if have_ort:
            ort_mlp = OrtMlpModel.from_bytes(mlp_onnx(tensors, cfg), source="bench")
            _agree(name, np_mlp.forward(xin).copy(), ort_mlp.forward(xin).copy())
        plans.append(
            (
                name,
                number,
                functools.partial(np_mlp.argmax, xin),
                None if ort_mlp is None else functools.partial(ort_mlp.argmax, xin),
                _torch_mlp_fn(tensors, cfg, xin) if include_torch else None,
            )
        )
    restore_threads = _torch_one_thread() if include_torch else None
    try:
        rows: list[BenchRow] = []
        for name, n_calls, *fns in plans:
            np_us, ort_us, torch_us = interleaved_median_us(fns, number=n_calls, repeat=repeat)
            assert np_us is not None
            rows.append(BenchRow(name, np_us, ort_us, torch_us))
    finally:
        if restore_threads is not None:
            restore_threads()
    return rows


def _torch_one_thread() -> Callable[[], None]:
    """Run torch on one thread while timing; return the undo.

    Every column is "one core". With torch's default pool its OpenMP workers
    also keep spinning after each call, stealing the CPU the next (numpy or
    onnxruntime) run needs and skewing the comparison.
    """
    import importlib

    torch = importlib.import_module("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return lambda: torch.set_num_threads(before)


def interleaved_median_us(
    fns: list[Callable[[], object] | None], *, number: int, repeat: int
) -> list[float | None]:
    """Median microseconds per call of each function, timed in alternating runs.

    Alternating the backends run by run exposes them to the same machine
    load (other processes on a shared box), so their ratio is meaningful even
    when the absolute numbers drift.
    """
    live = [f for f in fns if f is not None]
    for f in live:
        f()  # warm-up: first calls pay for lazy allocations
    runs: dict[int, list[float]] = {id(f): [] for f in live}
    for _ in range(repeat):
        for f in live:
            runs[id(f)].append(timeit.timeit(f, number=number) / number * 1e6)
    return [None if f is None else float(np.median(runs[id(f)])) for f in fns]


def _agree(name: str, a: object, b: object) -> None:
    err = float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
    if not err <= _AGREE_TOL:
        raise RuntimeError(f"{name}: onnxruntime and numpy disagree by {err:.3g}")


def _window_session(data: bytes) -> Callable[[np.ndarray], np.ndarray]:
    from oxidize_ml.runtime.onnx_backend import import_onnxruntime

    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    buf = np.zeros((1, *sess.get_inputs()[0].shape[1:]), dtype=F32)

    def run(xs: np.ndarray) -> np.ndarray:
        buf[0] = xs
        return sess.run(["p"], {"xs": buf})[0]

    return run


def _torch_fns(
    tensors: Mapping[str, np.ndarray], cfg: LossLstmConfig, x: np.ndarray, xs: np.ndarray
) -> dict[str, Callable[[], object]]:
    import importlib

    torch = importlib.import_module("torch")
    tm = importlib.import_module("oxidize_ml.training.torch_models")
    model = tm.LossLstm.from_config(cfg).eval()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    cell = torch.nn.LSTMCell(cfg.n_features, cfg.hidden)
    with torch.no_grad():
        cell.weight_ih.copy_(model.lstm.weight_ih_l0)
        cell.weight_hh.copy_(model.lstm.weight_hh_l0)
        cell.bias_ih.copy_(model.lstm.bias_ih_l0)
        cell.bias_hh.copy_(model.lstm.bias_hh_l0)
    xt = torch.from_numpy(x)[None]
    xst = torch.from_numpy(xs)[None]
    state = [torch.zeros(1, cfg.hidden), torch.zeros(1, cfg.hidden)]

    def step() -> float:
        with torch.no_grad():
            h, c = cell(xt, (state[0], state[1]))
            state[0], state[1] = h, c
            return float(torch.sigmoid(model.head(h))[0, 0])

    def window() -> float:
        with torch.no_grad():
            return float(model(xst)[0][0, -1])

    return {"lstm_step": step, "lstm_window": window}


def _torch_mlp_fn(
    tensors: Mapping[str, np.ndarray], cfg: MlpConfig, x: np.ndarray
) -> Callable[[], object]:
    import importlib

    torch = importlib.import_module("torch")
    tm = importlib.import_module("oxidize_ml.training.torch_models")
    model = tm.build_model(cfg).eval()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    xt = torch.from_numpy(x)[None]

    def run() -> int:
        with torch.no_grad():
            return int(model(xt).argmax())

    return run


def format_rows(rows: list[BenchRow]) -> str:
    """Plain-text table of `bench_models` rows (the CLI may render its own)."""

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:9.1f}"

    lines = [
        f"{'model (random weights, timing only)':36s} {'numpy us':>9s} {'ort us':>9s} {'torch us':>9s}"
    ]
    for r in rows:
        lines.append(f"{r.name:36s} {cell(r.numpy_us)} {cell(r.onnxruntime_us)} {cell(r.torch_us)}")
    return "\n".join(lines)
