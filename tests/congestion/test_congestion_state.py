"""The congestion state encoder and its windowed filter, against the straightforward versions.

`WindowedExtreme` caches its extreme and `CongestionStateEncoder` keeps its
history flat (issue 9's hot-path work). The reference classes below are the
implementations they replaced, kept verbatim: every state, reward and filter
value must be the same bit for bit on seeded random streams, including time
gaps longer than the window, repeated timestamps, zero RTT or throughput, and
(for the filter) time going backwards.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from oxidize_ml.congestion.reward import congestion_reward
from oxidize_ml.congestion.state import CongestionStateEncoder, StateConfig, WindowedExtreme
from oxidize_ml.features import N_FEATURES, NetworkFeatures

N_DERIVED = 4


class _ReferenceExtreme:
    """The filter before caching: rescans every bucket on every call."""

    def __init__(self, window_s: float, bucket_s: float, *, is_max: bool) -> None:
        self._n = max(1, round(window_s / bucket_s))
        self._bucket_s = bucket_s
        self._buckets: deque[list[float]] = deque(maxlen=self._n)
        self._is_max = is_max

    def update(self, value: float, now: float) -> float:
        idx = int(now // self._bucket_s)
        b = self._buckets
        if b and b[-1][0] == idx:
            last = b[-1]
            if (value > last[1]) if self._is_max else (value < last[1]):
                last[1] = value
        else:
            b.append([idx, value])
        oldest = idx - self._n + 1
        while b and b[0][0] < oldest:
            b.popleft()
        best = b[0][1]
        if self._is_max:
            for _, v in b:
                best = max(best, v)
        else:
            for _, v in b:
                best = min(best, v)
        return best

    def clear(self) -> None:
        self._buckets.clear()


class _ReferenceEncoder:
    """The encoder before the flat history: a deque of rows copied into a list."""

    def __init__(self, config: StateConfig) -> None:
        self.config = config
        self._max_thr = _ReferenceExtreme(config.window_s, config.bucket_s, is_max=True)
        self._min_rtt = _ReferenceExtreme(config.window_s, config.bucket_s, is_max=False)
        self._hist: deque[tuple[float, float, float, float]] = deque(maxlen=config.history)
        self.min_rtt_us = 0.0

    def update(
        self, features: NetworkFeatures, throughput_bps: float, *, now: float
    ) -> tuple[np.ndarray, float]:
        max_thr = self._max_thr.update(throughput_bps, now)
        rtt = features.rtt_us
        min_rtt = self._min_rtt.update(rtt, now) if rtt > 0.0 else self.min_rtt_us
        self.min_rtt_us = min_rtt
        thr_ratio = throughput_bps / max_thr if max_thr > 0.0 else 0.0
        rtt_ratio = min_rtt / rtt if rtt > 0.0 and min_rtt > 0.0 else 1.0
        bdp_bytes = max_thr * min_rtt / 8e6
        cwnd_bdp = features.cwnd / (4.0 * bdp_bytes) if bdp_bytes > 0.0 else 0.0
        self._hist.appendleft(
            (min(thr_ratio, 1.0), min(rtt_ratio, 1.0), min(cwnd_bdp, 1.0), features.loss_rate)
        )
        values = [0.0] * self.config.size
        values[:N_FEATURES] = features.to_list()
        pos = N_FEATURES
        for row in self._hist:
            values[pos : pos + N_DERIVED] = row
            pos += N_DERIVED
        reward = congestion_reward(
            throughput_bps=throughput_bps,
            max_throughput_bps=max_thr,
            rtt_us=rtt,
            min_rtt_us=min_rtt,
            loss_rate=features.loss_rate,
        )
        return np.array(values, dtype=np.float32), reward


def _stream(seed: int, n: int) -> list[tuple[float, NetworkFeatures, float]]:
    """Seeded (now, features, throughput) with 10-ms steps, bursts of equal times,
    gaps longer than the filter window, zero RTT and zero throughput."""
    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0
    out = []
    for _ in range(n):
        u = rng.random()
        t += 0.0 if u < 0.05 else (12.0 + 5.0 * rng.random() if u < 0.07 else 0.01)
        rtt = 0.0 if rng.random() < 0.03 else float(rng.uniform(5e3, 3e5))
        f = NetworkFeatures(
            rtt_us=rtt,
            rtt_var_us=float(rng.uniform(0, 5e4)),
            bandwidth_bps=float(rng.uniform(0, 2e8)),
            loss_rate=float(rng.choice([0.0, 0.0, rng.random() * 0.2])),
            loss_trend=float(rng.uniform(-1, 1)),
            inflight=float(rng.integers(0, 400)),
            cwnd=float(rng.integers(0, 2_000_000)),
            time_since_loss_ms=float(rng.uniform(0, 5e3)),
            buffer_occupancy=float(rng.random()),
            recent_retx=float(rng.integers(0, 5)),
        )
        thr = 0.0 if rng.random() < 0.03 else float(rng.uniform(1e5, 1.5e8))
        out.append((t, f, thr))
    return out


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_windowed_extreme_matches_the_rescanning_filter(is_max: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ours = WindowedExtreme(2.0, 0.25, is_max=is_max)
    ref = _ReferenceExtreme(2.0, 0.25, is_max=is_max)
    t = 100.0
    for k in range(5_000):
        u = rng.random()
        # mostly forward in small steps; sometimes equal, long gaps, or backwards
        if u < 0.03:
            t -= float(rng.uniform(0, 3.0))
        elif u < 0.06:
            t += float(rng.uniform(2.0, 6.0))
        elif u > 0.1:
            t += float(rng.uniform(0, 0.1))
        value = float(rng.choice([0.0, -0.0, rng.normal(), rng.normal() * 1e6]))
        assert ours.update(value, t) == ref.update(value, t), k
        if k % 997 == 0:
            ours.clear()
            ref.clear()


@pytest.mark.parametrize("config", [StateConfig(), StateConfig(history=1), StateConfig(history=7)])
def test_encoder_is_bit_identical_to_the_previous_encoder(config: StateConfig) -> None:
    ours = CongestionStateEncoder(config)
    ref = _ReferenceEncoder(config)
    for k, (t, f, thr) in enumerate(_stream(seed=config.history, n=3_000)):
        state, reward = ours.update(f, thr, now=t)
        ref_state, ref_reward = ref.update(f, thr, now=t)
        assert state.dtype == np.float32 and state.shape == (config.size,)
        assert state.tobytes() == ref_state.tobytes(), k
        assert reward == ref_reward, k
        # the first N_FEATURES entries are the model vector, so consumers may share them
        assert state[:N_FEATURES].tobytes() == f.to_vector().tobytes()


def test_encoder_states_are_new_arrays_and_reset_forgets() -> None:
    enc = CongestionStateEncoder()
    (t, f, thr), *rest = _stream(seed=9, n=20)
    first, _ = enc.update(f, thr, now=t)
    kept = first.copy()
    for t2, f2, thr2 in rest:
        enc.update(f2, thr2, now=t2)
    np.testing.assert_array_equal(first, kept)  # later calls never write into a returned state
    enc.reset()
    again, _ = enc.update(f, thr, now=t)
    fresh, _ = CongestionStateEncoder().update(f, thr, now=t)
    assert again.tobytes() == fresh.tobytes()
    assert enc.max_throughput_bps == thr
