"""The congestion controller's state vector and reward, shared by every user.

The spec's 8 features are normalised by fixed divisors (bandwidth / 10 Gbit/s),
which leaves a cellular link's bandwidth at ~1e-3: invisible to an MLP. The
spec adds "throughput history" to the DQN state; this module makes that
concrete with scale-free ratios, so one model works from 1 to 100 Mbit/s:

    state = features.to_vector()                      # 8, spec normalisation
          + for each of the last HISTORY intervals (newest first):
              throughput / max_throughput             # [0, 1]
              min_rtt / rtt                           # (0, 1], 1 = empty queue
              cwnd / (4 * BDP)                        # [0, 1], BDP = max_thr x min_rtt
              loss_rate                               # [0, 1]

``max_throughput`` and ``min_rtt`` are windowed (``window_s``, default 10 s,
the BBR min-RTT window of REFERENCES section 2) so they forget an old link.
The reward is `oxidize_ml.congestion.reward.congestion_reward` on the same
windowed values. The engine, the simulator's Gymnasium environment and the
telemetry exporter all use `CongestionStateEncoder`, so training data and
live decisions agree (version `CONGESTION_STATE_VERSION`).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from oxidize_ml.congestion.configs import N_DERIVED, StateConfig
from oxidize_ml.congestion.reward import reward_of
from oxidize_ml.features import NetworkFeatures

CONGESTION_STATE_VERSION = 1

_DEFAULT_STATE_CONFIG = StateConfig()
_fromiter = np.fromiter
_F32 = np.float32


class WindowedExtreme:
    """Max (or min) over a sliding time window, kept as per-bucket extremes.

    The extreme over the buckets is cached: a call that lands in the newest
    bucket (almost all of them, with 10-ms intervals and 1-s buckets) only
    compares with the cache instead of rescanning every bucket. The result is
    the rescan's, bit for bit (ties keep the older bucket's value, as the scan
    did).
    """

    __slots__ = ("_best", "_bucket_s", "_buckets", "_is_max", "_n")

    def __init__(self, window_s: float, bucket_s: float, *, is_max: bool) -> None:
        self._n = max(1, round(window_s / bucket_s))
        self._bucket_s = bucket_s
        self._buckets: deque[list[float]] = deque(maxlen=self._n)  # [bucket_index, value]
        self._is_max = is_max
        self._best = 0.0  # extreme over the buckets after the last update (read only then)

    def update(self, value: float, now: float) -> float:
        idx = int(now // self._bucket_s)
        b = self._buckets
        if b and b[-1][0] == idx:
            # Same bucket as the newest: the bucket set is unchanged (the call that
            # made this bucket the newest already evicted for this ``idx``), so
            # only this bucket's value can move, and only towards the extreme.
            last = b[-1]
            if self._is_max:
                if value > last[1]:
                    last[1] = value
                    self._best = max(self._best, value)
            elif value < last[1]:
                last[1] = value
                self._best = min(self._best, value)
            return self._best
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
        self._best = best
        return best

    def clear(self) -> None:
        self._buckets.clear()


class CongestionStateEncoder:
    """Turns per-interval observations into DQN states and rewards.

    Call `update` once per decision interval with the interval's features and
    measured throughput; it returns ``(state, reward)``. ``state`` is a new
    float32 array each call (it is stored in replay buffers and telemetry).
    Its first `N_FEATURES` entries are ``features.to_vector()`` exactly, so a
    caller that also needs the model vector slices it (``state[:N_FEATURES]``)
    instead of normalising the features again.
    """

    __slots__ = (
        "_derived",
        "_max_thr",
        "_min_rtt",
        "config",
        "max_throughput_bps",
        "min_rtt_us",
        "n_updates",
    )

    def __init__(self, config: StateConfig = _DEFAULT_STATE_CONFIG) -> None:
        self.config = config
        self._max_thr = WindowedExtreme(config.window_s, config.bucket_s, is_max=True)
        self._min_rtt = WindowedExtreme(config.window_s, config.bucket_s, is_max=False)
        # The derived rows, newest first, flattened; zeros stand for intervals not seen
        # yet. One flat list makes the state one list concatenation instead of a loop.
        self._derived: list[float] = [0.0] * (N_DERIVED * config.history)
        self.max_throughput_bps = 0.0
        self.min_rtt_us = 0.0
        self.n_updates = 0
        """`update` calls since construction (how often the state was encoded)"""

    @property
    def size(self) -> int:
        return self.config.size

    def reset(self) -> None:
        self._max_thr.clear()
        self._min_rtt.clear()
        self._derived = [0.0] * (N_DERIVED * self.config.history)
        self.max_throughput_bps = 0.0
        self.min_rtt_us = 0.0

    def update(
        self, features: NetworkFeatures, throughput_bps: float, *, now: float
    ) -> tuple[np.ndarray, float]:
        self.n_updates += 1
        max_thr = self._max_thr.update(throughput_bps, now)
        rtt = features.rtt_us
        min_rtt = self._min_rtt.update(rtt, now) if rtt > 0.0 else self.min_rtt_us
        self.max_throughput_bps = max_thr
        self.min_rtt_us = min_rtt
        thr_ratio = throughput_bps / max_thr if max_thr > 0.0 else 0.0
        rtt_ratio = min_rtt / rtt if rtt > 0.0 and min_rtt > 0.0 else 1.0
        bdp_bytes = max_thr * min_rtt / 8e6
        cwnd_bdp = features.cwnd / (4.0 * bdp_bytes) if bdp_bytes > 0.0 else 0.0
        loss_rate = features.loss_rate
        # Newest row first; the oldest row drops off the end. ``1.0 if x > 1.0 else x``
        # is ``min(x, 1.0)`` without a builtin call.
        self._derived = derived = [
            1.0 if thr_ratio > 1.0 else thr_ratio,  # noqa: FURB136
            1.0 if rtt_ratio > 1.0 else rtt_ratio,  # noqa: FURB136
            1.0 if cwnd_bdp > 1.0 else cwnd_bdp,  # noqa: FURB136
            loss_rate,
            *self._derived[:-N_DERIVED],
        ]
        values = features.to_list()
        values += derived
        # fromiter: the same float64 -> float32 rounding as np.array, with less overhead
        state = _fromiter(values, _F32, len(values))
        reward = reward_of(throughput_bps, max_thr, rtt, min_rtt, loss_rate)
        return state, reward
