"""Run a freshly loaded model on probe inputs before it may decide anything.

A model can pass every file check (checksums, shapes, finite weights) and
still be useless: weights of 3e38 are finite, verify, and overflow on the
first step, so the LSTM raises on every observation, the DQN's Q-values
are all infinite (its argmax is always the same action) and the
compression MLP's table is all Skip. `probe_model` runs each model on a
fixed, deterministic set of inputs, built by the very encoders the engine
uses on:

- realistic connections (a clean wired link, a lossy Wi-Fi-like link, a
  congested bufferbloated link, a cellular-like link with seeded
  variation), one step per 10 ms interval as the models were trained;
- edge cases: the smallest valid observation (everything zero), the largest
  the schema normalises (every field at or beyond its clip), total loss;
- for the compression MLP, packets of every kind the oracle distinguishes
  (empty-ish, text, JSON, random, zeros, TLS/QUIC/RTP/IP headers, media
  magic) at small and large sizes.

and refuses the model with a status when

``non_finite``
    any output is NaN or infinite (or the LSTM raises on an input);
``degenerate``
    the outputs do not depend on the input (every output the same across
    all probes, within `CONSTANT_TOLERANCE`), or an output's magnitude
    exceeds `MAX_ABS_OUTPUT` (no trained head of this package comes within
    orders of magnitude of it: LSTM logits, Q-values and predicted gains or
    log-microseconds are all O(1)-O(100)).

The probe never changes the model it checks (it runs on `fork()` copies,
which share the read-only weights), takes no randomness but a fixed seed,
and costs a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from oxidize_ml.features import NetworkFeatures
from oxidize_ml.runtime.numpy_models import NonFiniteOutputError

MAX_ABS_OUTPUT: Final = 1.0e6
"""largest output magnitude accepted from any model (raw outputs, before argmax/sigmoid)"""
CONSTANT_TOLERANCE: Final = 1.0e-7
"""outputs whose spread across every probe is at most this (x (1 + |mean|)) are constant"""
PROBE_STEPS: Final = 20
"""intervals per probe connection (the LSTM's training window)"""
_INTERVAL_S: Final = 0.01
_PROBE_SEED: Final = 20_260_101

STATUS_NON_FINITE: Final = "non_finite"
STATUS_DEGENERATE: Final = "degenerate"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Outcome of `probe_model`: ``status`` is "ok", `STATUS_NON_FINITE` or `STATUS_DEGENERATE`."""

    status: str
    reason: str
    n_probes: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _features(
    rtt_ms: float,
    var_ms: float,
    bw_mbps: float,
    loss: float,
    trend: float,
    inflight: float,
    cwnd: float,
    since_loss_ms: float,
    buffer: float,
    retx: float,
) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=rtt_ms * 1e3,
        rtt_var_us=var_ms * 1e3,
        bandwidth_bps=bw_mbps * 1e6,
        loss_rate=loss,
        loss_trend=trend,
        inflight=inflight,
        cwnd=cwnd,
        time_since_loss_ms=since_loss_ms,
        buffer_occupancy=buffer,
        recent_retx=retx,
    )


def probe_connections() -> list[list[tuple[NetworkFeatures, float]]]:
    """Deterministic probe connections: lists of (features, throughput_bps) per interval."""
    rng = np.random.default_rng(_PROBE_SEED)
    conns: list[list[tuple[NetworkFeatures, float]]] = []
    n = PROBE_STEPS
    # Clean wired link, slowly filling the window.
    conns.append(
        [
            (
                _features(
                    20, 1, 100, 0.0, 0.0, 50 + 5 * i, 65_535 + 4_000 * i, 5_000 + 10 * i, 0.05, 0
                ),
                95e6,
            )
            for i in range(n)
        ]
    )
    # Lossy Wi-Fi-like link: random loss bursts, jittery RTT.
    wifi = []
    for i in range(n):
        loss = float(rng.choice([0.0, 0.0, 0.02, 0.08]))
        wifi.append(
            (
                _features(
                    35 + 10 * rng.random(),
                    8 + 6 * rng.random(),
                    40,
                    loss,
                    float(np.clip(loss - 0.02, -1, 1)),
                    120,
                    180_000,
                    0.0 if loss else 200.0,
                    0.3,
                    2 if loss else 0,
                ),
                30e6 * (1 - loss),
            )
        )
    conns.append(wifi)
    # Congested, bufferbloated link: RTT and loss climbing, buffer full.
    conns.append(
        [
            (
                _features(
                    50 + 20 * i,
                    5 + i,
                    10,
                    min(0.3, 0.015 * i),
                    0.015,
                    400 + 30 * i,
                    600_000,
                    max(0.0, 300 - 15 * i),
                    min(1.0, 0.5 + 0.03 * i),
                    i,
                ),
                8e6 - 2e5 * i,
            )
            for i in range(n)
        ]
    )
    # Cellular-like: bandwidth swings by an order of magnitude.
    cell = []
    for _ in range(n):
        bw = float(2 + 48 * rng.random())
        cell.append(
            (
                _features(
                    60 + 80 * rng.random(),
                    20 * rng.random(),
                    bw,
                    float(rng.choice([0.0, 0.01, 0.05])),
                    0.0,
                    60 + 200 * rng.random(),
                    200_000,
                    1_000 * rng.random(),
                    rng.random(),
                    float(rng.integers(4)),
                ),
                bw * 1e6 * 0.9,
            )
        )
    conns.append(cell)
    # Edge cases: the zero observation, total loss, everything beyond its clip.
    zero = _features(0, 0, 0, 0.0, 0.0, 0, 0, 0, 0.0, 0)
    conns.append([(zero, 0.0)] * n)
    conns.append([(_features(300, 100, 1, 1.0, 1.0, 50, 3_000, 0, 1.0, 50), 0.0)] * n)
    huge = _features(1e7, 1e7, 1e6, 0.5, -1.0, 1e9, 1e12, 1e9, 1.0, 1e6)
    conns.append([(huge, 1e12)] * n)
    return conns


def probe_packets() -> list[bytes]:
    """Deterministic payloads of every kind the compression oracles distinguish."""
    rng = np.random.default_rng(_PROBE_SEED)
    text = b"The quick brown fox jumps over the lazy dog. " * 40
    json = b'{"user": "alice", "id": 12345, "items": [1, 2, 3], "ok": true} ' * 30
    rand = rng.integers(0, 256, 1400, dtype=np.uint8).tobytes()
    pkts = [
        b"x",
        text[:40],
        text[:300],
        text,
        json[:120],
        json,
        rand[:64],
        rand,
        bytes(64),
        bytes(1400),
        rand[:200] + bytes(200),
        b"\x16\x03\x03\x00\x40" + rand[:64],  # TLS record
        b"\xc3\x00\x00\x00\x01" + rand[:200],  # QUIC long header, version 1
        b"\x80\x60\x00\x01" + rand[:160],  # RTP v2
        b"\x45\x00\x00\x54" + rand[:80],  # IPv4
        b"\x60\x00\x00\x00" + rand[:120],  # IPv6
        b"\x89PNG\r\n\x1a\n" + rand[:500],  # image magic
        b"PK\x03\x04" + rand[:700],  # archive magic
        text * 20,
    ]
    return pkts


def _lstm_outputs(model: Any) -> np.ndarray:
    """P(loss) after every interval of every probe connection, each from a zero state."""
    out = []
    for conn in probe_connections():
        m = model.fork()  # shares the read-only weights; fresh state
        for features, _ in conn:
            out.append(m.step(features.to_vector()))  # raises ValueError on a non-finite output
    return np.asarray(out, dtype=np.float64)[:, None]


def _dqn_states(state_config: Any) -> np.ndarray:
    from oxidize_ml.congestion.state import CongestionStateEncoder

    states = []
    for conn in probe_connections():
        enc = CongestionStateEncoder(state_config)
        for i, (features, thr) in enumerate(conn):
            state, _ = enc.update(features, thr, now=100.0 + i * _INTERVAL_S)
            states.append(state)
    n = states[0].shape[0]
    states.append(np.zeros(n, dtype=np.float32))
    states.append(np.ones(n, dtype=np.float32))
    return np.stack(states).astype(np.float32)


def _compression_inputs() -> np.ndarray:
    from oxidize_ml.compression.learned import input_matrix

    return input_matrix(probe_packets())


def _mlp_outputs(model: Any, xs: np.ndarray) -> np.ndarray:
    m = model.fork()
    return np.stack([np.array(m.forward(x), dtype=np.float64, copy=True) for x in xs])


def judge_outputs(outputs: np.ndarray) -> ProbeResult:
    """Classify probe outputs ``[n_probes, n_outputs]`` (see the module docstring)."""
    y = np.asarray(outputs, dtype=np.float64)
    n = int(y.shape[0])
    bad = ~np.isfinite(y)
    if bad.any():
        rows = int(bad.any(axis=1).sum())
        return ProbeResult(STATUS_NON_FINITE, f"NaN or infinite outputs on {rows} of {n} probes", n)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > MAX_ABS_OUTPUT:
        return ProbeResult(
            STATUS_DEGENERATE,
            f"output magnitude {peak:.3g} on the probes exceeds {MAX_ABS_OUTPUT:g}",
            n,
        )
    spread = y.max(axis=0) - y.min(axis=0)
    scale = 1.0 + np.abs(y.mean(axis=0))
    if n > 1 and bool((spread <= CONSTANT_TOLERANCE * scale).all()):
        return ProbeResult(
            STATUS_DEGENERATE, f"outputs are the same for all {n} probes (input ignored)", n
        )
    return ProbeResult("ok", "ok", n)


def probe_model(kind: str, model: Any, *, state_config: Any = None) -> ProbeResult:
    """Run ``model`` (numpy or onnxruntime, of ``kind``) on the probes and judge its outputs.

    ``state_config`` is the DQN's `StateConfig` (required for ``kind="dqn"``;
    the model must take its state size, as `DqnCwndPolicy` checks). A
    model that raises on a probe because its output is not finite is
    reported as `STATUS_NON_FINITE`; any other exception propagates.
    """
    try:
        # Overflow is what is being looked for: no RuntimeWarning per probe.
        with np.errstate(all="ignore"):
            y = _run(kind, model, state_config)
    except NonFiniteOutputError as exc:
        return ProbeResult(STATUS_NON_FINITE, f"probe failed: {exc}", 0)
    return judge_outputs(y)


def _run(kind: str, model: Any, state_config: Any) -> np.ndarray:
    if kind == "lstm_loss":
        return _lstm_outputs(model)
    if kind == "dqn":
        if state_config is None:
            raise TypeError("state_config is required to probe a DQN")
        return _mlp_outputs(model, _dqn_states(state_config))
    if kind == "compression_mlp":
        return _mlp_outputs(model, _compression_inputs())
    raise TypeError(f"unknown model kind {kind!r}")


__all__ = [
    "CONSTANT_TOLERANCE",
    "MAX_ABS_OUTPUT",
    "STATUS_DEGENERATE",
    "STATUS_NON_FINITE",
    "ProbeResult",
    "judge_outputs",
    "probe_connections",
    "probe_model",
    "probe_packets",
]
