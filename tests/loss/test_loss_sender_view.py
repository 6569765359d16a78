"""Tests of the one sender-side observation (oxidize_ml.loss.sender_view)."""

from __future__ import annotations

import doctest

import pytest

import oxidize_ml.loss.sender_view as sv
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.interval_stats import estimate_buffer_occupancy
from oxidize_ml.loss.sender_view import SenderView


def f(rtt_us: float, occ: float = 0.7) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=rtt_us,
        rtt_var_us=1.0,
        bandwidth_bps=1e7,
        loss_rate=0.01,
        loss_trend=0.0,
        inflight=3,
        cwnd=4500,
        time_since_loss_ms=5.0,
        buffer_occupancy=occ,
        recent_retx=2,
    )


def test_running_minimum_of_smoothed_rtt():
    v = SenderView()
    rtts = [0.0, 60_000.0, 50_000.0, 80_000.0, 55_000.0]
    got = [v.view(f(r)).buffer_occupancy for r in rtts]
    want = [
        0.0,
        0.0,
        0.0,
        estimate_buffer_occupancy(0.08, 0.05),
        estimate_buffer_occupancy(0.055, 0.05),
    ]
    assert got == pytest.approx(want)
    assert v.min_rtt_us == 50_000.0


def test_only_buffer_occupancy_changes_and_reset():
    v = SenderView()
    a = f(40_000.0, occ=0.9)
    b = v.view(a)
    assert b.buffer_occupancy == 0.0
    assert {k: x for k, x in b.to_dict().items() if k != "buffer_occupancy"} == {
        k: x for k, x in a.to_dict().items() if k != "buffer_occupancy"
    }
    v.reset()
    assert v.min_rtt_us == float("inf")


def test_doctests():
    assert doctest.testmod(sv).failed == 0
