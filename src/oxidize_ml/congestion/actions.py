"""The congestion window action table: the spec's six actions, applied to cwnd.

Every controller (BBR-style fallback, DQN, simulator adapters, the aioquic
plug-in) changes cwnd only through `apply_action`, so there is one table.

Semantics (bytes):
- ``Increase5`` / ``Increase10``: cwnd x 1.05 / x 1.10
- ``Maintain``: unchanged
- ``Decrease5`` / ``Decrease10``: cwnd x 0.95 / x 0.90
- ``SlowStart``: reset to the initial window (``initial_cwnd_packets`` x mss).
  The transport does not run its own slow start afterwards: the controller
  keeps deciding every interval. BBR-style fallback uses it for PROBE_RTT and
  after persistent congestion, the two cases where a transport collapses its
  window.
The result is clamped to [min_cwnd_packets x mss, max_cwnd_bytes].
"""

from __future__ import annotations

from dataclasses import dataclass

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.types import DrlAction

# Multiplicative factor per action; None means "reset to initial window".
ACTION_FACTORS: dict[DrlAction, float | None] = {
    DrlAction.Increase5: 1.05,
    DrlAction.Increase10: 1.10,
    DrlAction.Maintain: 1.0,
    DrlAction.Decrease5: 0.95,
    DrlAction.Decrease10: 0.90,
    DrlAction.SlowStart: None,
}
N_ACTIONS = len(DrlAction)
# The same table indexed by action value: a tuple index costs less than
# hashing an Enum (Enum.__hash__ is Python code).
_FACTORS_BY_INDEX: tuple[float | None, ...] = tuple(ACTION_FACTORS[a] for a in DrlAction)


@dataclass(frozen=True, slots=True)
class CwndLimits:
    """Window bounds shared by every controller."""

    mss: int = 1500
    """maximum segment size, bytes (Mahimahi traces deliver 1500-byte packets)"""
    initial_cwnd_packets: int = 10
    """initial window, packets (RFC 9002 / NewReno: 10)"""
    min_cwnd_packets: int = 2
    """minimum window, packets (RFC 9002: 2)"""
    max_cwnd_bytes: int = 64 * 1024 * 1024
    """upper bound, bytes"""

    def __post_init__(self) -> None:
        check_int("mss", self.mss, lo=1)
        check_int("initial_cwnd_packets", self.initial_cwnd_packets, lo=1)
        check_int("min_cwnd_packets", self.min_cwnd_packets, lo=1)
        check_int("max_cwnd_bytes", self.max_cwnd_bytes, lo=1)
        if self.min_cwnd_packets > self.initial_cwnd_packets:
            raise ValueError("min_cwnd_packets must be <= initial_cwnd_packets")
        if self.max_cwnd_bytes < self.initial_cwnd_packets * self.mss:
            raise ValueError("max_cwnd_bytes must be >= initial_cwnd_packets * mss")

    @property
    def initial_cwnd(self) -> int:
        return self.initial_cwnd_packets * self.mss

    @property
    def min_cwnd(self) -> int:
        return self.min_cwnd_packets * self.mss


def apply_action(action: DrlAction, cwnd: float, limits: CwndLimits) -> int:
    """Return the new cwnd in bytes after ``action``; always within ``limits``."""
    factor = _FACTORS_BY_INDEX[action]
    if factor is None:
        new = float(limits.initial_cwnd)
    else:
        new = cwnd * factor
    lo = limits.min_cwnd
    hi = limits.max_cwnd_bytes
    if new < lo:
        return lo
    if new > hi:
        return hi
    return int(new)


def nearest_action(cwnd: float, target: float, limits: CwndLimits) -> DrlAction:
    """The non-reset action whose result lands closest to ``target`` (ties: smaller step).

    This is how a controller that computes a target window (BBR) speaks the
    shared six-action language.
    """
    check_number("target", target)
    best = DrlAction.Maintain
    best_err = abs(apply_action(DrlAction.Maintain, cwnd, limits) - target)
    for a in (DrlAction.Increase5, DrlAction.Decrease5, DrlAction.Increase10, DrlAction.Decrease10):
        err = abs(apply_action(a, cwnd, limits) - target)
        if err < best_err:
            best, best_err = a, err
    return best
