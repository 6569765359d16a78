"""Pure float32 numpy kernels for the learned models (picoGPT style).

Every kernel is a function of arrays that writes into caller-owned ``out``
buffers, so a call on the hot path allocates nothing. Shapes are in the
comments: ``F`` input features, ``H`` hidden units.

Fused LSTM layout
-----------------
torch.nn.LSTM keeps ``weight_ih [4H, F]``, ``weight_hh [4H, H]`` and two biases
with gates in the order (i, f, g, o). `fuse_lstm_weights` turns them once, at
load time, into one matrix ``w [F + 1 + H, 4H]`` multiplied by the concatenation
``[x, 1, h]``: one matmul per step instead of two matmuls and two adds (the
summed bias is the row the constant 1 multiplies, so it is added inside the
matmul's accumulation, which rounds differently from a separate add by about
one float32 ulp). Two more changes make the step cheaper and are exact:

* gate columns reordered to (o, i, f, g): the three sigmoid gates are one
  contiguous slice, and with the cell state stored right after ``g`` the
  products ``i * g`` and ``f * c`` are one multiply of ``[i, f]`` by
  ``[g, c]`` (`LstmScratch`);
* the sigmoid gates' weights and bias scaled by 0.5, because
  ``sigmoid(z) = 0.5 + 0.5 tanh(z / 2)``: a single ``tanh`` over all 4H gates
  then serves both activations. Scaling by a power of two is exact in binary
  floating point, and this form of sigmoid cannot overflow (``exp(-z)`` for a
  large negative ``z`` is what makes the naive form unstable).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

F32 = np.float32

# The hot-path kernels call these through module globals: one lookup instead of
# two (``np`` then the attribute) per call, a measurable share of a small ufunc call.
_add = np.add
_multiply = np.multiply
_tanh = np.tanh
_maximum = np.maximum


@functools.lru_cache(maxsize=64)
def shared_constant(n: int, value: float) -> np.ndarray:  # -> read-only [n]
    """A read-only float32 vector of ``value``, one per (n, value) for the whole process.

    Scratch sets take their constant operands from here, so a model fork
    (one per connection) allocates only the buffers it writes.
    """
    a = np.full(n, value, dtype=F32)
    a.flags.writeable = False
    return a


def sigmoid(z: np.ndarray, out: np.ndarray) -> np.ndarray:  # [...] -> [...]
    """Numerically stable logistic function, ``0.5 + 0.5 tanh(z / 2)``, into ``out``."""
    np.multiply(z, F32(0.5), out=out)
    np.tanh(out, out=out)
    np.multiply(out, F32(0.5), out=out)
    np.add(out, F32(0.5), out=out)
    return out


def sigmoid_scalar(z: float) -> float:
    """Stable logistic function of one Python float (no overflow for any finite ``z``)."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def fuse_lstm_weights(
    weight_ih: np.ndarray,  # [4H, F]
    weight_hh: np.ndarray,  # [4H, H]
    bias_ih: np.ndarray,  # [4H]
    bias_hh: np.ndarray,  # [4H]
) -> np.ndarray:  # -> w [F + 1 + H, 4H]
    """Torch LSTM weights (gates i, f, g, o) -> the fused layout described above."""
    four_h = weight_ih.shape[0]
    h = four_h // 4
    # torch rows are (i, f, g, o); we want (o, i, f, g).
    order = np.concatenate([np.arange(3 * h, 4 * h), np.arange(0, 2 * h), np.arange(2 * h, 3 * h)])
    scale = np.ones(four_h, dtype=np.float64)
    scale[: 3 * h] = 0.5
    b = bias_ih.astype(np.float64) + bias_hh.astype(np.float64)
    w = np.concatenate([weight_ih, b[:, None], weight_hh], axis=1).astype(np.float64)[order]
    # Two biases near the float32 limit sum to inf here; that is not warned
    # about but caught where it matters, by the load-time probe
    # (oxidize_ml.models.probe) and at run time (NonFiniteOutputError).
    with np.errstate(over="ignore"):
        return np.ascontiguousarray((w * scale[:, None]).T, dtype=F32)  # [F+1+H, 4H]


@dataclass(frozen=True, slots=True)
class LstmScratch:
    """Preallocated buffers and fixed views for `lstm_step` (one per model instance).

    One buffer holds ``[x, 1, h, o, i, f, g, c]``: ``xh`` is the concatenated
    input ``[x, 1, h]`` (the 1 multiplies the bias row of the fused weights and
    is never overwritten), ``gates`` the 4H pre-activations, ``c_part`` the cell
    state. Because ``c`` follows ``g``, ``[i, f] * [g, c]`` gives both
    products of the cell update in one ufunc call (into ``prod``). The views
    are made once because slicing costs about as much as a small ufunc call.
    """

    xh: np.ndarray  # [F + 1 + H]
    x_part: np.ndarray  # view xh[:F]
    h_part: np.ndarray  # view xh[F + 1:]
    gates: np.ndarray  # [4H], order (o, i, f, g)
    sig: np.ndarray  # view gates[:3H]: o, i, f
    o: np.ndarray  # view gates[:H]
    i_f: np.ndarray  # view gates[H:3H]: i, f
    g_c: np.ndarray  # [2H] view of g and the cell state that follows it
    c_part: np.ndarray  # [H] the cell state (view g_c[H:])
    prod: np.ndarray  # [2H]: i * g, f * c
    prod_ig: np.ndarray  # view prod[:H]
    prod_fc: np.ndarray  # view prod[H:]
    half: np.ndarray  # [3H] read-only 0.5: an array operand is cheaper than a scalar

    @classmethod
    def allocate(cls, n_features: int, hidden: int) -> LstmScratch:
        # One allocation for everything written (a fork per connection pays only
        # this); the read-only 0.5 operand is shared by all instances.
        f, h = n_features + 1, hidden  # f: the inputs and the bias's constant 1
        buf = np.zeros(f + 8 * h, dtype=F32)
        buf[n_features] = 1.0
        xh = buf[: f + h]
        gates = buf[f + h : f + 5 * h]
        g_c = buf[f + 4 * h : f + 6 * h]
        prod = buf[f + 6 * h :]
        return cls(
            xh=xh,
            x_part=xh[:n_features],
            h_part=xh[f:],
            gates=gates,
            sig=gates[: 3 * h],
            o=gates[:h],
            i_f=gates[h : 3 * h],
            g_c=g_c,
            c_part=g_c[h:],
            prod=prod,
            prod_ig=prod[:h],
            prod_fc=prod[h:],
            half=shared_constant(3 * h, 0.5),
        )


def lstm_step(
    x: np.ndarray,  # [F]
    h: np.ndarray,  # [H]
    c: np.ndarray,  # [H]
    w: np.ndarray,  # [F + 1 + H, 4H] fused (see module docstring)
    out_h: np.ndarray,  # [H] (may alias h)
    out_c: np.ndarray,  # [H] (may alias c)
    scratch: LstmScratch,
) -> None:
    """One LSTM step: ``(x, h, c) -> (out_h, out_c)``, allocation-free.

    ``h`` and ``c`` are copied into ``scratch.h_part`` / ``scratch.c_part``
    unless they *are* those views (the model classes keep their state there,
    saving two copies per step); likewise ``out_c``.
    """
    s = scratch
    if x is not s.x_part:
        s.x_part[...] = x
    if h is not s.h_part:
        s.h_part[...] = h
    if c is not s.c_part:
        s.c_part[...] = c
    gates, sig, half = s.gates, s.sig, s.half
    # ``out`` passed positionally and the matmul in method form: each saves about
    # 50 ns of argument parsing per call, and the step makes ten of them.
    s.xh.dot(w, gates)  # [F+1+H] @ [F+1+H, 4H] -> [4H], bias included
    _tanh(gates, gates)  # tanh(z/2) for o, i, f (pre-scaled); tanh(z) for g
    _multiply(sig, half, sig)
    _add(sig, half, sig)  # sigmoid(z) = 0.5 + 0.5 tanh(z/2)
    _multiply(s.i_f, s.g_c, s.prod)  # [i * g, f * c]
    _add(s.prod_fc, s.prod_ig, s.c_part)  # c' = f * c + i * g
    if out_c is not s.c_part:
        out_c[...] = s.c_part
    _tanh(s.c_part, out_h)  # h' = o * tanh(c')
    _multiply(out_h, s.o, out_h)


def lstm_window(
    xs: np.ndarray,  # [T, F]
    w: np.ndarray,  # [F + 1 + H, 4H] fused
    h0: np.ndarray,  # [H]
    c0: np.ndarray,  # [H]
    out_hs: np.ndarray,  # [T, H]
    out_c: np.ndarray,  # [H] final cell state
) -> np.ndarray:  # -> out_hs; the final hidden state is out_hs[-1]
    """Run the LSTM over ``T`` steps from ``(h0, c0)``.

    The input projection of all steps is one ``[T, F] @ [F, 4H]`` matmul, so
    each step only multiplies ``h @ w[F:]``; the arithmetic is otherwise the
    same as `lstm_step`.
    """
    n_steps, n_features = xs.shape
    hidden = h0.shape[0]
    if n_steps == 0:
        raise ValueError("lstm_window needs at least one step, got xs with T=0")
    w_h = w[n_features + 1 :]  # [H, 4H]
    xproj = np.dot(xs.astype(F32, copy=False), w[:n_features])  # [T, 4H]
    xproj += w[n_features]  # the bias row
    gates = np.empty(4 * hidden, dtype=F32)
    half = np.full(3 * hidden, 0.5, dtype=F32)  # array operand: cheaper than a scalar
    sig, o, i, f, g = (
        gates[: 3 * hidden],
        gates[:hidden],
        gates[hidden : 2 * hidden],
        gates[2 * hidden : 3 * hidden],
        gates[3 * hidden :],
    )
    out_c[...] = c0
    h_prev = h0
    for t in range(n_steps):
        np.dot(h_prev, w_h, out=gates)  # [H] @ [H, 4H] -> [4H]
        np.add(gates, xproj[t], out=gates)
        np.tanh(gates, out=gates)
        np.multiply(sig, half, out=sig)
        np.add(sig, half, out=sig)
        np.multiply(f, out_c, out=out_c)
        np.multiply(i, g, out=i)
        np.add(out_c, i, out=out_c)
        h_t = out_hs[t]
        np.tanh(out_c, out=h_t)
        np.multiply(h_t, o, out=h_t)
        h_prev = h_t
    return out_hs


def augment_linear(
    weight: np.ndarray,  # [out, in] torch layout
    bias: np.ndarray,  # [out]
) -> np.ndarray:  # -> [in + 1, out]
    """One Linear layer in the kernel layout: transposed, with the bias as an extra last row.

    Multiplying ``[a, 1] @ w_aug`` gives ``a @ weight.T + bias`` in one BLAS
    call; dropping the separate bias add saves about 20 % of a DQN forward.
    """
    return np.ascontiguousarray(np.vstack([weight.T, bias[None, :]]), dtype=F32)


@dataclass(frozen=True, slots=True)
class MlpScratch:
    """Buffers for `mlp_forward` (one set per model instance).

    Input and hidden activations are stored *augmented*: ``[a, 1]``, the
    trailing 1 multiplying the bias row of the next layer's weights. ReLU
    leaves that 1 alone (max(1, 0) = 1), so it is written once here.
    """

    x_aug: np.ndarray  # [n_in + 1], last element 1
    x_in: np.ndarray  # view x_aug[:n_in]
    hidden_aug: tuple[np.ndarray, ...]  # [h_k + 1] each, last element 1
    hidden_out: tuple[np.ndarray, ...]  # views hidden_aug[k][:h_k], matmul targets
    zeros: tuple[np.ndarray, ...]  # read-only zeros [h_k + 1]: ReLU with an array operand
    out: np.ndarray  # [n_out]
    hidden: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    """(hidden_out, hidden_aug, zeros) per hidden layer: what `mlp_forward` iterates"""

    @classmethod
    def allocate(cls, widths: Sequence[int]) -> MlpScratch:
        """``widths`` = ``[n_in, hidden..., n_out]``."""
        # One allocation for everything written, sliced into contiguous
        # segments (a fork per connection pays only this); the read-only zeros
        # operands are shared by all instances.
        sizes = [widths[0] + 1, *(n + 1 for n in widths[1:-1]), widths[-1]]
        buf = np.ones(sum(sizes), dtype=F32)
        parts = []
        start = 0
        for n in sizes:
            parts.append(buf[start : start + n])
            start += n
        x_aug, hidden_aug, out = parts[0], tuple(parts[1:-1]), parts[-1]
        hidden_out = tuple(h[:-1] for h in hidden_aug)
        zeros = tuple(shared_constant(n + 1, 0.0) for n in widths[1:-1])
        return cls(
            x_aug=x_aug,
            x_in=x_aug[: widths[0]],
            hidden_aug=hidden_aug,
            hidden_out=hidden_out,
            zeros=zeros,
            out=out,
            hidden=tuple(zip(hidden_out, hidden_aug, zeros, strict=True)),
        )


def mlp_forward(
    x: np.ndarray,  # [n_in]
    layers: Sequence[np.ndarray],  # w_aug [in + 1, out] per layer (`augment_linear`)
    scratch: MlpScratch,
) -> np.ndarray:  # -> scratch.out [n_out] (a view the next call overwrites)
    """Linear -> ReLU -> ... -> Linear; ReLU applied in place, nothing allocated."""
    s = scratch
    if x is not s.x_in:
        s.x_in[...] = x  # also casts any float dtype to float32
    a = s.x_aug
    # One tuple per hidden layer, unpacked in the loop header: cheaper than indexing
    # three tuples (or a zip) per layer. Method-form matmul and positional ``out``:
    # about 50 ns less argument parsing per call (as in `lstm_step`).
    for k, (out, aug, zeros) in enumerate(s.hidden):
        a.dot(layers[k], out)  # [in + 1] @ [in + 1, out] -> [out]
        _maximum(aug, zeros, out=aug)  # positional out is deprecated for maximum
        a = aug
    a.dot(layers[-1], s.out)
    return s.out


def mlp_forward_batch(
    xs: np.ndarray,  # [n, n_in]
    layers: Sequence[np.ndarray],  # w_aug [in + 1, out] per layer
) -> np.ndarray:  # -> [n, n_out] (newly allocated)
    """Batched `mlp_forward` for offline evaluation (allocates; not for the hot path)."""
    a = np.asarray(xs, dtype=F32)
    last = len(layers) - 1
    for k, w in enumerate(layers):
        a = a @ w[:-1] + w[-1]
        if k != last:
            np.maximum(a, 0.0, out=a)
    return a
