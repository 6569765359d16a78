"""torch definitions of the learned models (imported only by training code).

Each module is built from its frozen size config (`oxidize_ml.runtime.configs`)
and its ``state_dict`` names are exactly the tensor names of the weight-file
contract (`expected_tensors`), so `export.export_safetensors` writes them as
they are and the numpy runtime reads them back without a mapping table.

Stateful LSTM training
----------------------
`LossLstm` is meant to be trained with truncated backpropagation through time
(TBPTT): walk a long telemetry sequence in chunks of ``config.seq_len`` (20)
steps, carry (h, c) from one chunk to the next, and cut the gradient at chunk
boundaries (`detach_state`; `iter_tbptt_chunks` does both). A model trained
this way has learnt to use state carried from arbitrarily far back, which is
what makes the runtime's one-step-from-carried-state inference correct
(REFERENCES section 5); a model trained only on zero-state windows would
only be valid when re-run over each whole window, 5-15x more expensive.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import nn

from oxidize_ml.runtime.configs import (
    CompressionMlpConfig,
    DqnMlpConfig,
    LossLstmConfig,
    MlpConfig,
    PathMlpConfig,
    mlp_widths,
)

LstmState = tuple[torch.Tensor, torch.Tensor]  # (h [1, B, H], c [1, B, H])


class LossLstm(nn.Module):
    """LSTM(F -> H, one layer, batch_first) -> Linear(H -> 1) -> sigmoid, per step."""

    def __init__(self, n_features: int = 8, hidden: int = 64, seq_len: int = 20) -> None:
        super().__init__()
        self.config = LossLstmConfig(n_features=n_features, hidden=hidden, seq_len=seq_len)
        c = self.config
        self.lstm = nn.LSTM(c.n_features, c.hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(c.hidden, 1)

    def forward(
        self, x: torch.Tensor, state: LstmState | None = None
    ) -> tuple[torch.Tensor, LstmState]:
        """``x [B, T, F]``, optional ``(h, c)`` each ``[1, B, H]`` -> (P(loss) ``[B, T]``, final state)."""
        out, new_state = self.lstm(x, state)  # out [B, T, H]
        return torch.sigmoid(self.head(out).squeeze(-1)), new_state

    def forward_logits(
        self, x: torch.Tensor, state: LstmState | None = None
    ) -> tuple[torch.Tensor, LstmState]:
        """As `forward` but returns logits, for ``BCEWithLogitsLoss`` (stabler than BCE on p)."""
        out, new_state = self.lstm(x, state)
        return self.head(out).squeeze(-1), new_state

    def step(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step written out with the LSTM's own parameters.

        ``x [B, F]``, ``h [B, H]``, ``c [B, H]`` -> (``p [B, 1]``, ``h' [B, H]``,
        ``c' [B, H]``). Same function as `forward` on a length-1 sequence; this
        explicit form exports to a plain MatMul/Tanh ONNX graph that
        onnxruntime runs faster than its LSTM operator for a single step.
        """
        # get_parameter, not attribute access: nn.Module's __getattr__ is typed
        # Tensor | Module, which the arithmetic below cannot take.
        w_ih, b_ih, w_hh, b_hh = (
            self.lstm.get_parameter(n)
            for n in ("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0")
        )
        gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = gates.chunk(4, dim=1)  # torch gate order
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return torch.sigmoid(self.head(h_new)), h_new, c_new

    def zero_state(self, batch: int) -> LstmState:
        z = torch.zeros(1, batch, self.config.hidden)
        return z, z.clone()

    @classmethod
    def from_config(cls, config: LossLstmConfig) -> LossLstm:
        return cls(**config.to_dict())


def detach_state(state: LstmState) -> LstmState:
    """Cut the gradient at a TBPTT chunk boundary while keeping the values."""
    return state[0].detach(), state[1].detach()


def iter_tbptt_chunks(
    xs: torch.Tensor, ys: torch.Tensor, seq_len: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Split ``xs [B, T, F]`` and targets ``ys [B, T]`` into consecutive chunks of ``seq_len`` steps.

    The caller carries the state across chunks and calls `detach_state`
    after each optimiser step; the last chunk may be shorter.
    """
    if xs.shape[:2] != ys.shape[:2]:
        raise ValueError(f"xs {tuple(xs.shape)} and ys {tuple(ys.shape)} disagree on [B, T]")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    for start in range(0, xs.shape[1], seq_len):
        yield xs[:, start : start + seq_len], ys[:, start : start + seq_len]


class _Mlp(nn.Module):
    """Linear -> ReLU -> ... -> Linear, layers in ``self.layers`` (weight-file names)."""

    def __init__(self, config: MlpConfig) -> None:
        super().__init__()
        self.config = config
        widths = mlp_widths(config)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, n_inputs]`` -> ``[B, n_outputs]``."""
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k != last:
                x = torch.relu(x)
        return x


class DqnMlp(_Mlp):
    """DQN Q-network: ``n_inputs -> 128 -> 128 -> 6`` Q-values in `DrlAction` order.

    ``n_inputs`` is the 8 schema features plus any history features appended.
    """

    def __init__(
        self, n_inputs: int = 8, n_actions: int = 6, hidden: int = 128, n_hidden_layers: int = 2
    ) -> None:
        super().__init__(
            DqnMlpConfig(
                n_inputs=n_inputs,
                n_actions=n_actions,
                hidden=hidden,
                n_hidden_layers=n_hidden_layers,
            )
        )

    @classmethod
    def from_config(cls, config: DqnMlpConfig) -> DqnMlp:
        return cls(**config.to_dict())


class CompressionMlp(_Mlp):
    """Compression oracle: ``n_inputs -> 32 -> 4`` predicted gains in `MlCompressionDecision` order."""

    def __init__(
        self, n_inputs: int = 8, n_outputs: int = 4, hidden: int = 32, n_hidden_layers: int = 1
    ) -> None:
        super().__init__(
            CompressionMlpConfig(
                n_inputs=n_inputs,
                n_outputs=n_outputs,
                hidden=hidden,
                n_hidden_layers=n_hidden_layers,
            )
        )

    @classmethod
    def from_config(cls, config: CompressionMlpConfig) -> CompressionMlp:
        return cls(**config.to_dict())


class PathMlp(_Mlp):
    """Learned path selector prior: per-(path, traffic type) features -> predicted reward."""

    def __init__(
        self, n_inputs: int = 20, n_outputs: int = 1, hidden: int = 32, n_hidden_layers: int = 2
    ) -> None:
        super().__init__(
            PathMlpConfig(
                n_inputs=n_inputs,
                n_outputs=n_outputs,
                hidden=hidden,
                n_hidden_layers=n_hidden_layers,
            )
        )

    @classmethod
    def from_config(cls, config: PathMlpConfig) -> PathMlp:
        return cls(**config.to_dict())


def build_model(
    config: LossLstmConfig | DqnMlpConfig | CompressionMlpConfig | PathMlpConfig,
) -> nn.Module:
    """The torch module for a config (used when loading weights back for training)."""
    if isinstance(config, LossLstmConfig):
        return LossLstm.from_config(config)
    if isinstance(config, DqnMlpConfig):
        return DqnMlp.from_config(config)
    if isinstance(config, CompressionMlpConfig):
        return CompressionMlp.from_config(config)
    if isinstance(config, PathMlpConfig):
        return PathMlp.from_config(config)
    raise TypeError(f"unknown config type {type(config).__name__}")
