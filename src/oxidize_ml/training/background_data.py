"""Data of the background retrainer: the bounded buffer of telemetry loss rows, their
per-connection sequences, the time windows of a round, and the ``.npz`` packing the fit
worker reads (numbers only)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from oxidize_ml.features import N_FEATURES, NetworkFeatures

GAP_S: Final = 1.0
"""observations further apart than this start a new sequence (a new connection),
as in `oxidize_ml.training.loss.telemetry_sequences`"""


class RowBuffer:
    """The newest ``capacity`` loss rows (time, source, features, loss rate, label)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.t = np.zeros(0)
        self.source = np.zeros(0, dtype=object)
        self.x = np.zeros((0, N_FEATURES), dtype=np.float32)
        self.loss_rate = np.zeros(0)
        self.label = np.zeros(0)

    def __len__(self) -> int:
        return int(self.t.size)

    def extend(
        self,
        t: np.ndarray,
        source: np.ndarray,
        x: np.ndarray,
        loss_rate: np.ndarray,
        label: np.ndarray,
    ) -> None:
        keep = slice(-self.capacity, None)
        self.t = np.concatenate((self.t, t))[keep]
        self.source = np.concatenate((self.source, source))[keep]
        self.x = np.concatenate((self.x, x))[keep]
        self.loss_rate = np.concatenate((self.loss_rate, loss_rate))[keep]
        self.label = np.concatenate((self.label, label))[keep]


@dataclass(frozen=True, slots=True)
class RowSequence:
    """One connection's rows in time order (indices into the buffer snapshot)."""

    t: np.ndarray
    x: np.ndarray
    loss_rate: np.ndarray
    label: np.ndarray


def split_sequences(
    t: np.ndarray, source: np.ndarray, x: np.ndarray, loss_rate: np.ndarray, label: np.ndarray
) -> list[RowSequence]:
    """Rows grouped per source in time order, cut at gaps longer than `GAP_S`."""
    out: list[RowSequence] = []
    for s in sorted(set(source.tolist()), key=str):
        idx = np.flatnonzero(source == s)
        idx = idx[np.argsort(t[idx], kind="stable")]
        cuts = np.flatnonzero(np.diff(t[idx]) > GAP_S) + 1
        for part in np.split(idx, cuts):
            if part.size >= 2:
                out.append(RowSequence(t[part], x[part], loss_rate[part], label[part]))
    return out


def window(seqs: Sequence[RowSequence], lo: float, hi: float) -> list[RowSequence]:
    """The parts of ``seqs`` with ``lo <= t < hi`` (at least 2 rows each)."""
    out = []
    for s in seqs:
        m = (s.t >= lo) & (s.t < hi)
        if int(m.sum()) >= 2:
            out.append(RowSequence(s.t[m], s.x[m], s.loss_rate[m], s.label[m]))
    return out


def to_loss_sequences(seqs: Sequence[RowSequence], group: str) -> list[Any]:
    from oxidize_ml.training.loss import LossSequence

    return [
        LossSequence(f"background:{group}/{i}", group, s.t, s.x, s.loss_rate, s.label)
        for i, s in enumerate(seqs)
    ]


def pack(seqs: Sequence[RowSequence]) -> dict[str, np.ndarray]:
    """Sequences as plain numeric arrays (for the worker's ``.npz``)."""
    lengths = [s.t.size for s in seqs]
    return {
        "t": np.concatenate([s.t for s in seqs]) if seqs else np.zeros(0),
        "x": (
            np.concatenate([s.x for s in seqs]) if seqs else np.zeros((0, N_FEATURES), np.float32)
        ),
        "loss_rate": np.concatenate([s.loss_rate for s in seqs]) if seqs else np.zeros(0),
        "label": np.concatenate([s.label for s in seqs]) if seqs else np.zeros(0),
        "offsets": np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
    }


def unpack(arrays: Any, prefix: str) -> list[RowSequence]:
    off = arrays[f"{prefix}_offsets"]
    cols = [arrays[f"{prefix}_{k}"] for k in ("t", "x", "loss_rate", "label")]
    return [RowSequence(*(c[a:b] for c in cols)) for a, b in itertools.pairwise(off)]


def features_from_vector(x: np.ndarray, loss_rate: float) -> NetworkFeatures:
    """A `NetworkFeatures` whose ``to_vector()`` is ``x`` (schema divisors undone).

    ``time_since_loss_ms`` and ``recent_retx`` are not in the vector; they are
    left at their defaults (no model reads them).
    """
    v = [float(a) for a in x]
    return NetworkFeatures(
        rtt_us=max(v[0], 0.0) * 1e6,
        rtt_var_us=max(v[1], 0.0) * 5e5,
        bandwidth_bps=max(v[2], 0.0) * 1e10,
        loss_rate=min(max(loss_rate, 0.0), 1.0),
        loss_trend=v[4],
        inflight=max(v[5], 0.0) * 1e4,
        cwnd=max(v[6], 0.0) * 1e6,
        buffer_occupancy=min(max(v[7], 0.0), 1.0),
    )
