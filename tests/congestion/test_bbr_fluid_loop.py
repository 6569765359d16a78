"""Closed-loop behaviour of `BbrFallback` against a tiny fluid model of one bottleneck.

Not a simulator (that lives in `oxidize_ml.sim`): one bottleneck of capacity
C with base RTT and a drop-tail buffer B, advanced in 10 ms steps::

    rtt       = base_rtt + queue / C
    arrivals  = cwnd / rtt x dt x (1 - random_loss)       (window-limited sender)
    queue    += arrivals - C x dt  (clipped at 0; overflow above B is dropped)

Random loss is a fluid fraction of the sent bytes, so "1 % loss" is exactly
1 % in every interval. Measurements reach the controller one one-way delay
late (ack path); the window it acts on is the current one.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.congestion import (
    BbrFallback,
    CongestionObservation,
    CwndLimits,
    apply_action,
)
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.types import DrlAction

DT_S = 0.01
MBIT = 1e6


@dataclass
class Trace:
    t_s: list[float] = field(default_factory=list)
    capacity_bps: list[float] = field(default_factory=list)
    throughput_bps: list[float] = field(default_factory=list)
    rtt_s: list[float] = field(default_factory=list)
    cwnd_bytes: list[int] = field(default_factory=list)
    loss_rate: list[float] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    action: list[DrlAction] = field(default_factory=list)
    max_bw_bps: list[float] = field(default_factory=list)

    def window(self, t0: float, t1: float) -> range:
        return range(round(t0 / DT_S), round(t1 / DT_S))

    def utilisation(self, t0: float, t1: float) -> float:
        idx = self.window(t0, t1)
        return sum(self.throughput_bps[i] for i in idx) / sum(self.capacity_bps[i] for i in idx)

    def mean_rtt(self, t0: float, t1: float, phases: tuple[str, ...] | None = None) -> float:
        idx = [i for i in self.window(t0, t1) if phases is None or self.phase[i] in phases]
        return sum(self.rtt_s[i] for i in idx) / len(idx)

    def mean_cwnd(self, t0: float, t1: float) -> float:
        idx = self.window(t0, t1)
        return sum(self.cwnd_bytes[i] for i in idx) / len(idx)


def run_fluid(
    ctrl: BbrFallback,
    *,
    duration_s: float,
    capacity_bps: Callable[[float], float] | float = 12 * MBIT,
    base_rtt_s: float = 0.040,
    buffer_bdp: float = 2.0,
    random_loss: float = 0.0,
    loss_seed: int | None = None,
    limits: CwndLimits | None = None,
) -> Trace:
    """Drive ``ctrl`` over the fluid bottleneck; the buffer is given in BDPs of the initial capacity.

    With ``loss_seed`` the random loss is drawn per packet (binomial over the
    interval's packets) instead of as a fluid fraction, so the loss ratio the
    controller sees is as noisy as a real one.
    """
    rng = np.random.default_rng(loss_seed) if loss_seed is not None else None
    limits = limits or ctrl.limits
    cap_at = capacity_bps if callable(capacity_bps) else (lambda _t, c=capacity_bps: c)
    buffer_bytes = buffer_bdp * cap_at(0.0) / 8.0 * base_rtt_s
    delay_steps = max(1, round(base_rtt_s / 2.0 / DT_S))
    pending: deque[tuple[float, float, float]] = deque(maxlen=delay_steps)
    queue = 0.0
    cwnd = limits.initial_cwnd
    # Queueing delay is the queue over the recent service rate (a 100 ms
    # average), so a step without delivery opportunities (trace-driven links)
    # does not divide by zero; on a constant link it is exactly queue / C.
    c_ref = cap_at(0.0) / 8.0
    floor_bytes_s = limits.mss / 0.1
    tr = Trace()
    for k in range(round(duration_s / DT_S)):
        t = k * DT_S
        c_bytes = cap_at(t) / 8.0
        c_ref += (c_bytes - c_ref) * (DT_S / 0.1)
        c_ref = max(c_ref, floor_bytes_s)
        rtt = base_rtt_s + queue / c_ref
        sent = cwnd / rtt * DT_S
        if rng is None:
            lost = sent * random_loss
        else:
            packets = sent / limits.mss
            whole = int(packets) + (1 if rng.random() < packets - int(packets) else 0)
            lost = min(sent, float(rng.binomial(whole, random_loss)) * limits.mss)
        queue += sent - lost - c_bytes * DT_S
        if queue < 0.0:
            delivered = c_bytes * DT_S + queue
            queue = 0.0
        else:
            delivered = c_bytes * DT_S
        if queue > buffer_bytes:
            lost += queue - buffer_bytes
            queue = buffer_bytes
        loss = lost / sent if sent > 0.0 else 0.0
        rtt_end = base_rtt_s + queue / c_ref
        # The sender learns about the bottleneck one one-way delay later.
        pending.append((delivered * 8.0 / DT_S, rtt_end, loss))
        tput, rtt_seen, loss_seen = pending[0]
        feats = NetworkFeatures(
            rtt_us=rtt_seen * 1e6,
            rtt_var_us=0.0,
            bandwidth_bps=tput,
            loss_rate=min(loss_seen, 1.0),
            loss_trend=0.0,
            inflight=cwnd / limits.mss,
            cwnd=float(cwnd),
        )
        obs = CongestionObservation(features=feats, throughput_bps=tput, cwnd_bytes=cwnd)
        now = t + DT_S
        ctrl.learn_one(obs, 0.0, now=now)
        action = ctrl.predict_one(obs, now=now)
        tr.t_s.append(now)
        tr.capacity_bps.append(c_bytes * 8.0)
        tr.throughput_bps.append(delivered * 8.0 / DT_S)
        tr.rtt_s.append(rtt_end)
        tr.cwnd_bytes.append(cwnd)
        tr.loss_rate.append(loss)
        tr.phase.append(ctrl.state.value)
        tr.action.append(action)
        tr.max_bw_bps.append(ctrl.max_bw_bps)
        cwnd = apply_action(action, cwnd, limits)
    return tr


PROBE_BW = ("PROBE_BW_DOWN", "PROBE_BW_CRUISE", "PROBE_BW_REFILL", "PROBE_BW_UP")


def ramp_time(tr: Trace, share: float, window_s: float = 0.2) -> float:
    """First time the moving-average utilisation over ``window_s`` reaches ``share``."""
    n = round(window_s / DT_S)
    for i in range(n, len(tr.t_s)):
        got = sum(tr.throughput_bps[i - n : i])
        cap = sum(tr.capacity_bps[i - n : i])
        if got >= share * cap:
            return tr.t_s[i]
    return float("inf")


@pytest.fixture(scope="module")
def steady() -> Trace:
    return run_fluid(BbrFallback(), duration_s=22.0)


def test_ramps_up_to_85_percent_quickly(steady: Trace) -> None:
    t85 = ramp_time(steady, 0.85)
    assert t85 < 2.0, t85
    assert steady.utilisation(2.0, 22.0) >= 0.9


def test_leaves_startup_and_drains(steady: Trace) -> None:
    assert "DRAIN" in steady.phase
    first_bw = steady.phase.index("PROBE_BW_DOWN")
    assert steady.t_s[first_bw] < 2.0
    assert "STARTUP" not in steady.phase[first_bw:]


def test_steady_state_queueing_delay_is_small(steady: Trace) -> None:
    base = 0.040
    assert steady.mean_rtt(3.0, 22.0, PROBE_BW) <= 1.5 * base
    # Most of the time the queue is a small fraction of the BDP.
    assert steady.mean_rtt(3.0, 22.0) <= 1.25 * base


def test_probe_rtt_about_every_five_seconds(steady: Trace) -> None:
    starts = [t for t, a in zip(steady.t_s, steady.action, strict=True) if a == DrlAction.SlowStart]
    assert len(starts) >= 3
    assert 4.9 <= starts[0] <= 5.5
    gaps = [b - a for a, b in pairwise(starts)]
    assert all(4.9 <= g <= 5.8 for g in gaps), gaps
    for t in starts:
        i = round(t / DT_S) - 1
        assert steady.phase[i] == "PROBE_RTT"


def test_bandwidth_estimate_matches_capacity(steady: Trace) -> None:
    i = round(20.0 / DT_S)
    assert steady.max_bw_bps[i] == pytest.approx(12 * MBIT, rel=0.05)


def test_converges_after_capacity_halves() -> None:
    def cap(t: float) -> float:
        return 12 * MBIT if t < 10.0 else 6 * MBIT

    tr = run_fluid(BbrFallback(), duration_s=16.0, capacity_bps=cap)
    # Within ~3 s the estimate follows, the queue drains and the link stays full.
    assert tr.max_bw_bps[round(13.0 / DT_S)] == pytest.approx(6 * MBIT, rel=0.1)
    assert tr.utilisation(13.0, 16.0) >= 0.85
    assert tr.mean_rtt(13.0, 16.0) <= 1.5 * 0.040


def test_tracks_capacity_increase() -> None:
    def cap(t: float) -> float:
        return 6 * MBIT if t < 6.0 else 12 * MBIT

    tr = run_fluid(BbrFallback(), duration_s=14.0, capacity_bps=cap)
    assert tr.utilisation(10.0, 14.0) >= 0.85


def test_one_percent_random_loss_does_not_collapse_throughput(steady: Trace) -> None:
    ctrl = BbrFallback()
    tr = run_fluid(ctrl, duration_s=12.0, random_loss=0.01)
    assert ctrl.stats()["lossy_rounds"] == 0
    assert ctrl.stats()["inflight_hi_bytes"] is None
    # Delivered goodput is capacity minus the 1 % lost on the way.
    assert tr.utilisation(2.0, 12.0) >= 0.85
    assert tr.utilisation(2.0, 12.0) >= 0.95 * steady.utilisation(2.0, 12.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_percent_per_packet_loss_keeps_most_throughput(seed: int) -> None:
    # Per-packet random loss: a 40-packet round often shows 1 loss (2.5 %), so
    # the controller must not read single losses as crossing the threshold.
    tr = run_fluid(BbrFallback(), duration_s=12.0, random_loss=0.01, loss_seed=seed)
    assert tr.utilisation(2.0, 12.0) >= 0.85


def test_loss_above_threshold_reduces_the_window(steady: Trace) -> None:
    ctrl = BbrFallback()
    tr = run_fluid(ctrl, duration_s=12.0, random_loss=0.05)
    assert ctrl.stats()["lossy_rounds"] > 0
    assert ctrl.stats()["inflight_hi_bytes"] is not None
    # 0.83x with the loss bounds alone (0.79x when PROBE_RTT also ran: a path whose
    # RTT stays at its minimum now confirms it instead)
    assert tr.mean_cwnd(4.0, 12.0) < 0.85 * steady.mean_cwnd(4.0, 12.0)


def test_shallow_buffer_overflow_ends_startup_and_bounds_inflight() -> None:
    ctrl = BbrFallback()
    tr = run_fluid(ctrl, duration_s=10.0, buffer_bdp=0.25)
    assert ctrl.stats()["inflight_hi_bytes"] is not None
    first_drain = tr.phase.index("DRAIN")
    assert max(tr.loss_rate[: first_drain + 1]) > 0.02
    # After startup the flow keeps the link busy without sustained loss.
    assert tr.utilisation(3.0, 10.0) >= 0.85
    assert sum(tr.loss_rate[300:]) / len(tr.loss_rate[300:]) < 0.01


# -- real cellular traces (skipped when ../shared/traces is absent) -------------------

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"


def mahimahi_capacity(path: Path, mss: int = 1500) -> Callable[[float], float]:
    """Capacity per 10 ms step from a Mahimahi trace (one line per 1500-byte delivery, ms)."""
    stamps = np.loadtxt(path, dtype=np.int64, ndmin=1)
    period_ms = max(int(stamps[-1]), 1)
    steps = int(np.ceil(period_ms / (DT_S * 1000)))
    counts = np.bincount((stamps % period_ms) // round(DT_S * 1000), minlength=steps)
    bps = counts.astype(np.float64) * mss * 8.0 / DT_S

    def cap(t: float) -> float:
        return float(bps[round(t / DT_S) % steps])

    return cap


@pytest.mark.skipif(not TRACES.is_dir(), reason="Mahimahi traces not available")
@pytest.mark.parametrize("trace", ["TMobile-LTE-short.down", "Verizon-LTE-short.down"])
def test_cellular_trace_keeps_the_link_busy_without_filling_the_buffer(trace: str) -> None:
    cap = mahimahi_capacity(TRACES / trace)
    ctrl = BbrFallback()
    # A buffer of 100 BDPs (seconds of queue): a loss-based sender fills it.
    tr = run_fluid(ctrl, duration_s=60.0, capacity_bps=cap, base_rtt_s=0.040, buffer_bdp=100.0)
    assert tr.utilisation(5.0, 60.0) >= 0.9
    # Measured here: mean RTT 139 ms (T-Mobile) and 116 ms (Verizon) on a
    # 40 ms base; the bursty delivery inflates the per-round bandwidth peaks.
    assert tr.mean_rtt(5.0, 60.0) <= 0.25
    assert max(tr.loss_rate) == 0.0
    json.dumps(ctrl.stats())
