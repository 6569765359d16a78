"""Burst-aware loss predictor: P(loss in the next block) and how much, from the sender's view.

Loss on cellular links comes in episodes (drop-tail overflow when capacity
collapses, CUBIC's sawtooth, BBR's probing), and an episode loses a large
share of the packets it touches (10-25 % per 10-ms interval on the training
traces), so what FEC needs is *whether* the next window is in an episode and
*how bad* episodes are, not a smoothed loss rate (the EWMA ranks windows at
ROC-AUC 0.58-0.63 on the same data).

Inputs (`BurstFeatures`): built only from the sequence of `NetworkFeatures`
passed to ``learn_one`` and the caller's ``now``, so training (which runs the
same class over simulator observations) and serving compute them identically
by construction, and the engine passes nothing new. The fields read are
``rtt_us`` (smoothed RTT), ``rtt_var_us``, ``bandwidth_bps``, ``loss_rate``,
``inflight``, ``cwnd`` and ``buffer_occupancy``, the sender-side estimate
``(srtt - min_rtt) / srtt`` that `oxidize_ml.interval_stats.IntervalStats`
computes for the simulator and the aioquic plug-in alike: the queue delay
below is ``buffer_occupancy x srtt`` (= srtt - min_rtt) and min RTT is
``srtt - queue delay``, the transport's minimum RTT sample, so no second
estimate of either is kept here (issue 9: one observation). One call per
10-ms decision interval (the windows below are counted in calls).

============================  ==================================================
feature                       definition
============================  ==================================================
time since loss (one-hot)     ``now`` minus the last interval with loss, in
                              `TSL_EDGES_S` buckets (piecewise-constant hazard)
episode phase (one-hot)       time since loss / EWMA of the gap between loss
                              episodes, `PHASE_EDGES` buckets (periodic loss:
                              CUBIC's sawtooth), plus "no gap seen yet"
sqrt fast / slow loss         sqrt of EWMAs of loss_rate, weights 0.3 and 0.02
episodes in 2 s               log1p(count of loss episodes that started in the
                              last `EPISODE_WINDOW_S`)
burst severity                EWMA (0.3) of loss_rate over lossy intervals
queue vs loss queue           queue delay / the same at recent losses
                              (EWMA 0.3), capped at 3: how close the queue is
                              to where it overflowed
no loss yet                   1 before the first loss
RTT gradient                  (srtt - srtt 5 intervals ago) / min RTT, +-3
delivery-rate trend           log(bandwidth / bandwidth 10 intervals ago)
jitter ratio                  rtt_var / srtt, capped at 3
queue share                   buffer_occupancy (the sender's estimate)
queue vs max                  queue delay / its decaying maximum (x0.999/call)
loss last / previous RTT      sqrt mean loss_rate over the last RTT's intervals
                              and the RTT before (RTT = min RTT, 1-30 calls)
inflight / cwnd vs loss       inflight (cwnd) over its EWMA (0.3) at lossy
                              intervals, capped at 3: how close the sender is to
                              the window that overflowed last time (CUBIC's W_max,
                              BBR's inflight_hi)
BDP ratio                     log(inflight / (delivery rate x min RTT in
                              packets of `MSS_BYTES`)), +-3
cwnd growth                   log(cwnd / cwnd 5 intervals ago), +-3
long-RTT interactions         when min RTT > `LONG_RTT_US`: its own time-since-
                              loss buckets, bias, and copies of the `LONG_DENSE`
                              features (feedback is one RTT late there; loss
                              dynamics differ)
============================  ==================================================

Model: logistic regression on these features for q = P(label > 0) (fitted by
`oxidize_ml.training.loss_burst` on the training split only, weights in
`oxidize_ml.loss.burst_weights`), and a burst-severity distribution
(quantiles of the label given label > 0 on the same data). ``predict_one``
returns the expected per-packet loss ``q x severity``, a per-packet loss
probability like every predictor's, where the severity is the fitted mean
scaled by the connection's own lossy windows (`BurstFeatures.severity`: the
label's definition applied to its past, shrunk towards the fitted mean);
`BurstLossPredictor.block_loss_probability` and ``severity_scale`` give the two
parts to `oxidize_ml.loss.fec.BurstFecPolicy.decide_block`. (Validated on the
training split: the adaptive scale moved FEC residual at the EWMA's overhead
from 1.13x to 1.07x on randomised links with RTT > 250 ms and from 0.83x to
0.80x on shorter ones, and left the 40 / 100 ms traces at 0.63 / 0.84x.)

Cost: pure Python, no numpy on the hot path; the one-hot groups index the
weights directly, so one step is ~25 multiply-adds: `BurstFeatures.update`
~4 us, ``learn_one`` ~6 us on the development machine.

Honest limits (held-out figures from `oxidize_ml.evaluation.fec.evaluate_fec_heldout`):
fitted on 40 and 100 ms traces plus randomised links. On the held-out split its
residual loss at the EWMA's overhead is 0.83x the EWMA's [0.76, 0.91], but its
worst family is the 600-ms satellite scenario, 1.10x (1.13x with the version-2
features): a fixed severity distribution does not fit the long, mild episodes there.
"""

# ruff: noqa: PLR1730, FURB136
# (the hot path clamps with conditional expressions: min()/max() calls cost a third
# of `BurstFeatures.update`)
from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from operator import mul

from oxidize_ml._validate import check_number
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss.configs import (
    FEATURE_VERSION,
    LONG_DENSE,
    N_DENSE,
    N_PHASE,
    N_TSL,
    N_WEIGHTS,
    OFF_DENSE,
    OFF_LONG,
    OFF_PHASE,
    OFF_TSL,
    OFF_TSL_LONG,
    PHASE_EDGES,
    TSL_EDGES_S,
    BurstLossConfig,
    feature_names,
)

FAST_ALPHA = 0.3
"""weight of the newest loss rate in the fast EWMA (3 intervals)"""
SLOW_ALPHA = 0.02
"""weight of the newest loss rate in the slow EWMA (50 intervals, 0.5 s)"""
EVENT_ALPHA = 0.3
"""weight of the newest value in the per-episode EWMAs (gap, severity, loss queue)"""
EPISODE_WINDOW_S = 2.0
"""window of the episode count, seconds"""
MIN_GAP_S = 0.02
"""two lossy intervals closer than this are one episode for the gap estimate"""
RTT_LAG = 5
"""intervals back for the RTT gradient"""
RATE_LAG = 10
"""intervals back for the delivery-rate trend"""
QUEUE_MAX_DECAY = 0.999
"""per-call decay of the queue-delay maximum (half-life ~7 s at 10 ms calls)"""
LOSS_HISTORY = 30
"""intervals of loss rate kept for the last-RTT / previous-RTT means (300 ms)"""
MSS_BYTES = 1500.0
"""packet size assumed to turn the delivery rate into packets (the simulator's)"""
SEVERITY_WINDOW = 5
"""intervals of the past window whose mean loss rate is one severity sample (50 ms:
the label's window length)"""
SEVERITY_ALPHA = 0.1
"""weight of the newest lossy-window sample in the connection's severity EWMA"""
SEVERITY_PRIOR_WINDOWS = 10.0
"""lossy windows the fitted severity counts as before the connection has its own"""
LONG_RTT_US = 70_000.0
"""min RTT above which the long-RTT interaction features switch on, microseconds"""


class BurstFeatures:
    """Online features of one connection (see the module table). Not thread-safe."""

    __slots__ = (
        "_bw_hist",
        "_cwnd_hist",
        "_episodes",
        "_fast",
        "_gap",
        "_last_loss",
        "_loss_cum",
        "_loss_cwnd",
        "_loss_inflight",
        "_loss_queue",
        "_loss_total",
        "_n_hist",
        "_prev_lossy",
        "_queue_max",
        "_rtt_hist",
        "_sev_n",
        "_sev_win",
        "_severity",
        "_slow",
        "dense",
        "long_rtt",
        "phase_bucket",
        "tsl_bucket",
        "window_severity",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the connection."""
        self._last_loss: float | None = None
        self._gap: float | None = None
        self._loss_queue: float | None = None
        self._loss_inflight: float | None = None
        self._loss_cwnd: float | None = None
        self._severity = 0.0
        self._fast = 0.0
        self._slow = 0.0
        self._prev_lossy = False
        self._queue_max = 0.0
        # Bounded histories: memory stays constant over a connection.
        self._episodes: deque[float] = deque(maxlen=1024)
        self._rtt_hist: deque[float] = deque(maxlen=RTT_LAG + 1)
        self._bw_hist: deque[float] = deque(maxlen=RATE_LAG + 1)
        # Cumulative loss-rate sums of the last LOSS_HISTORY intervals (plus the one
        # before): a window mean is one subtraction instead of a loop.
        self._loss_total = 0.0
        self._loss_cum: deque[float] = deque((0.0,), maxlen=LOSS_HISTORY + 1)
        self._n_hist = 0
        self._cwnd_hist: deque[float] = deque(maxlen=RTT_LAG + 1)
        self.tsl_bucket = N_TSL - 1
        self.phase_bucket = N_PHASE - 1
        self.long_rtt = 0.0
        self.dense = [0.0] * N_DENSE
        self._sev_win = 0.0
        self._sev_n = 0
        self.window_severity: float | None = None

    def update(self, f: NetworkFeatures, now: float) -> None:
        """Advance by one interval's observation at time ``now`` (seconds)."""
        srtt = f.rtt_us
        lr = f.loss_rate
        bw = f.bandwidth_bps
        # The observation's own queue estimate (srtt - min_rtt) / srtt: queue delay and
        # the transport's min RTT follow from it, the same numbers for every caller.
        qd = f.buffer_occupancy * srtt if srtt > 0.0 else 0.0
        mn = srtt - qd
        has_rtt = mn > 0.0
        if lr > 0.0:
            if not self._prev_lossy:  # a new episode starts
                last = self._last_loss
                if last is not None and now - last > MIN_GAP_S:
                    g = now - last
                    self._gap = (
                        g if self._gap is None else EVENT_ALPHA * g + (1 - EVENT_ALPHA) * self._gap
                    )
                self._episodes.append(now)
            self._last_loss = now
            lq = self._loss_queue
            self._loss_queue = qd if lq is None else EVENT_ALPHA * qd + (1 - EVENT_ALPHA) * lq
            li = self._loss_inflight
            self._loss_inflight = (
                f.inflight if li is None else EVENT_ALPHA * f.inflight + (1 - EVENT_ALPHA) * li
            )
            lc = self._loss_cwnd
            self._loss_cwnd = (
                f.cwnd if lc is None else EVENT_ALPHA * f.cwnd + (1 - EVENT_ALPHA) * lc
            )
            self._severity = (
                lr
                if self._severity == 0.0
                else EVENT_ALPHA * lr + (1 - EVENT_ALPHA) * self._severity
            )
        self._prev_lossy = lr > 0.0
        self._fast = FAST_ALPHA * lr + (1 - FAST_ALPHA) * self._fast
        self._slow = SLOW_ALPHA * lr + (1 - SLOW_ALPHA) * self._slow
        eps = self._episodes
        while eps and now - eps[0] > EPISODE_WINDOW_S:
            eps.popleft()
        self._rtt_hist.append(srtt)
        self._bw_hist.append(bw)
        self._loss_total += lr
        self._loss_cum.append(self._loss_total)
        if self._n_hist < LOSS_HISTORY:
            self._n_hist += 1
        # Severity of the connection's own past lossy windows: the label's definition
        # applied to the past, one sample per non-overlapping window.
        self._sev_n += 1
        if self._sev_n == SEVERITY_WINDOW:
            self._sev_n = 0
            cum = self._loss_cum
            win = (cum[-1] - cum[-1 - SEVERITY_WINDOW]) / SEVERITY_WINDOW
            if win > 0.0:
                ws = self.window_severity
                self.window_severity = (
                    win if ws is None else SEVERITY_ALPHA * win + (1 - SEVERITY_ALPHA) * ws
                )
                self._sev_win += 1.0
        self._cwnd_hist.append(f.cwnd)
        last = self._last_loss
        tsl = now - last if last is not None else math.inf
        self.tsl_bucket = bisect_left(TSL_EDGES_S, tsl) if tsl < math.inf else N_TSL - 1
        # bisect_left puts a value equal to an edge below it; buckets are [e_i, e_i+1).
        if tsl < math.inf and self.tsl_bucket < N_TSL - 1 and tsl == TSL_EDGES_S[self.tsl_bucket]:
            self.tsl_bucket += 1
        gap = self._gap
        if gap is not None and last is not None:
            ph = tsl / gap
            b = bisect_left(PHASE_EDGES, ph)
            if b < len(PHASE_EDGES) and ph == PHASE_EDGES[b]:
                b += 1
            self.phase_bucket = b
        else:
            self.phase_bucket = N_PHASE - 1
        lq = self._loss_queue
        # Clamps as conditional expressions: min()/max() calls are a third of the cost.
        q_rel = qd / lq if (lq is not None and lq > 0.0) else 0.0
        if q_rel > 3.0:
            q_rel = 3.0
        r0 = self._rtt_hist[0]
        grad = (srtt - r0) / mn if has_rtt else 0.0
        grad = -3.0 if grad < -3.0 else (3.0 if grad > 3.0 else grad)
        b0 = self._bw_hist[0]
        trend = math.log(bw / b0) if (bw > 0.0 and b0 > 0.0) else 0.0
        qm = self._queue_max * QUEUE_MAX_DECAY
        if qd > qm:
            qm = qd
        self._queue_max = qm
        n_rtt = (
            int(mn / 10_000.0)
            if (has_rtt and mn < 10_000.0 * LOSS_HISTORY)
            else (LOSS_HISTORY if has_rtt else 1)
        )
        if n_rtt < 1:
            n_rtt = 1
        cum = self._loss_cum
        n_h = self._n_hist
        top = cum[-1]
        # last RTT: the latest min(n_rtt, n_h) intervals; previous RTT: the up to
        # n_rtt before those that are still in the history; both over n_rtt
        last_rtt = (top - cum[-1 - (n_rtt if n_rtt < n_h else n_h)]) / n_rtt
        if n_h > n_rtt:
            two = 2 * n_rtt
            prev_rtt = (cum[-1 - n_rtt] - cum[-1 - (n_h if n_h < two else two)]) / n_rtt
        else:
            prev_rtt = 0.0
        d = self.dense
        d[0] = math.sqrt(self._fast)
        d[1] = math.sqrt(self._slow)
        d[2] = math.log1p(len(eps))
        d[3] = self._severity
        d[4] = q_rel
        d[5] = 1.0 if last is None else 0.0
        d[6] = grad
        d[7] = -5.0 if trend < -5.0 else (5.0 if trend > 5.0 else trend)
        jit = f.rtt_var_us / srtt if srtt > 0.0 else 0.0
        d[8] = jit if jit < 3.0 else 3.0
        d[9] = f.buffer_occupancy if srtt > 0.0 else 0.0
        d[10] = qd / qm if qm > 0.0 else 0.0
        d[11] = math.sqrt(last_rtt)
        d[12] = math.sqrt(prev_rtt)
        li = self._loss_inflight
        x = f.inflight / li if (li is not None and li > 0.0) else 0.0
        d[13] = x if x < 3.0 else 3.0
        lc = self._loss_cwnd
        x = f.cwnd / lc if (lc is not None and lc > 0.0) else 0.0
        d[14] = x if x < 3.0 else 3.0
        # packets in flight over the path's BDP in packets (delivery rate x min RTT)
        bdp = bw * mn * 1e-6 / (8.0 * MSS_BYTES) if has_rtt else 0.0
        x = math.log(f.inflight / bdp) if (bdp > 0.0 and f.inflight > 0.0) else 0.0
        d[15] = -3.0 if x < -3.0 else (3.0 if x > 3.0 else x)
        c0 = self._cwnd_hist[0]
        x = math.log(f.cwnd / c0) if (c0 > 0.0 and f.cwnd > 0.0) else 0.0
        d[16] = -3.0 if x < -3.0 else (3.0 if x > 3.0 else x)
        self.long_rtt = 1.0 if (has_rtt and mn > LONG_RTT_US) else 0.0

    def severity(self, prior: float) -> float:
        """Mean severity of this connection's lossy windows, shrunk towards ``prior``
        (the fitted mean) by `SEVERITY_PRIOR_WINDOWS` pseudo-windows."""
        ws = self.window_severity
        if ws is None:
            return prior
        n = self._sev_win
        return (n * ws + SEVERITY_PRIOR_WINDOWS * prior) / (n + SEVERITY_PRIOR_WINDOWS)

    def vector(self) -> list[float]:
        """The full feature vector (`feature_names` order) of the latest update."""
        v = [0.0] * N_WEIGHTS
        v[0] = 1.0
        v[OFF_TSL + self.tsl_bucket] = 1.0
        v[OFF_PHASE + self.phase_bucket] = 1.0
        v[OFF_DENSE : OFF_DENSE + N_DENSE] = self.dense
        h = self.long_rtt
        if h:
            v[OFF_TSL_LONG + self.tsl_bucket] = 1.0
            v[OFF_LONG] = 1.0
            for j, i in enumerate(LONG_DENSE):
                v[OFF_LONG + 1 + j] = self.dense[i]
        return v


class BurstLossPredictor:
    """``NetworkFeatures`` -> expected per-packet loss 50-100 ms ahead, burst-aware.

    A ``Policy[NetworkFeatures, float]`` like `oxidize_ml.loss.EwmaLossPredictor`:
    ``learn_one`` advances the features and stores the prediction,
    ``predict_one`` returns it (0.0 before the first ``learn_one``).

    Parameters
    ----------
    config
        Fitted weights and severity quantiles; None: `BurstLossConfig.default`.
    """

    name = "burst"
    is_learned = False
    """fitted offline but fixed: a heuristic in the engine's sense (no model file, no
    online learning), swapped like the EWMA"""

    __slots__ = (
        "_feat",
        "_last_now",
        "_mean_sev",
        "_n_updates",
        "_p",
        "_q",
        "_scale",
        "_w",
        "_w_dense",
        "_w_long",
        "config",
    )

    def __init__(self, config: BurstLossConfig | None = None) -> None:
        cfg = BurstLossConfig.default() if config is None else config
        if not isinstance(cfg, BurstLossConfig):
            raise TypeError(f"config must be a BurstLossConfig, got {type(cfg).__name__}")
        self.config = cfg
        self._w = cfg.weights
        self._w_dense = cfg.weights[OFF_DENSE : OFF_DENSE + N_DENSE]
        self._w_long = tuple(
            zip(cfg.weights[OFF_LONG + 1 : OFF_LONG + 1 + len(LONG_DENSE)], LONG_DENSE, strict=True)
        )
        self._mean_sev = cfg.mean_severity
        self._feat = BurstFeatures()  # fresh: no `reset` of it
        self._clear()

    def reset(self) -> None:
        """Forget the connection."""
        self._feat.reset()
        self._clear()

    def _clear(self) -> None:
        """The prediction and the counters of a connection that saw nothing yet."""
        self._q = 0.0
        self._p = 0.0
        self._scale = 1.0
        self._last_now: float | None = None
        self._n_updates = 0

    def clone(self) -> BurstLossPredictor:
        """A fresh predictor with the same config and no state."""
        return BurstLossPredictor(self.config)

    def fork(self) -> BurstLossPredictor:
        """Same as `clone` (the learned predictors' name)."""
        return self.clone()

    @property
    def n_updates(self) -> int:
        return self._n_updates

    @property
    def features(self) -> BurstFeatures:
        """the online features (read-only use: tests and the trainer)"""
        return self._feat

    @property
    def block_loss_probability(self) -> float:
        """q: probability that the window 50-100 ms ahead loses any packet"""
        return self._q

    @property
    def severity_scale(self) -> float:
        """this connection's lossy-window severity over the fitted mean (1.0 until it has
        its own lossy windows; shrunk towards 1 by `SEVERITY_PRIOR_WINDOWS`)"""
        return self._scale

    @property
    def severity(self) -> tuple[float, ...]:
        """burst-severity quantiles: per-packet loss rate of a window given it loses"""
        return self.config.severity

    def learn_one(self, features: NetworkFeatures, feedback: float, *, now: float) -> None:
        """Advance by one interval's observation; ``feedback`` is checked (it is
        ``features.loss_rate``, which the features already read)."""
        if not isinstance(features, NetworkFeatures):
            raise TypeError(f"features must be NetworkFeatures, got {type(features).__name__}")
        if not (type(feedback) is float and 0.0 <= feedback <= 1.0):
            check_number("feedback", feedback, hi=1.0)
        if type(now) is not float or not -math.inf < now < math.inf:
            now = check_number("now", now, lo=None)
        last = self._last_now
        if last is not None and now < last:
            raise ValueError(f"now must not go backwards: got {now!r} after {last!r}")
        ft = self._feat
        ft.update(features, now)
        w = self._w
        z = w[0] + w[OFF_TSL + ft.tsl_bucket] + w[OFF_PHASE + ft.phase_bucket]
        d = ft.dense
        # sum() with z as its start adds the products left to right as the loop did,
        # in C (Python 3.12+ also compensates the rounding): ~0.3 us instead of ~0.9.
        z = sum(map(mul, self._w_dense, d), z)
        if ft.long_rtt:
            z += w[OFF_TSL_LONG + ft.tsl_bucket] + w[OFF_LONG]
            for wi, di in self._w_long:
                z += wi * d[di]
        # Overflow-safe logistic.
        q = 1.0 / (1.0 + math.exp(-z)) if z >= 0.0 else math.exp(z) / (1.0 + math.exp(z))
        self._q = q
        mean = self._mean_sev
        if ft.window_severity is None:  # `ft.severity(mean)` is the prior: no call
            self._scale = 1.0
            p = q * mean
        else:
            scale = self._scale = ft.severity(mean) / mean
            p = q * mean * scale
        self._p = p if p < 1.0 else 1.0
        self._last_now = now
        self._n_updates += 1

    def predict_one(self, features: NetworkFeatures, *, now: float) -> float:
        """Expected per-packet loss in (now + 50 ms, now + 100 ms]: q x this connection's
        mean severity (fitted mean x `severity_scale`)."""
        return self._p

    def __repr__(self) -> str:
        return f"BurstLossPredictor(q={self._q:.4g}, p={self._p:.4g}, n_updates={self._n_updates})"


def logistic(z: float) -> float:
    """Overflow-safe 1 / (1 + exp(-z))."""
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0.0 else math.exp(z) / (1.0 + math.exp(z))


__all__ = [
    "FEATURE_VERSION",
    "N_WEIGHTS",
    "BurstFeatures",
    "BurstLossConfig",
    "BurstLossPredictor",
    "feature_names",
    "logistic",
]
