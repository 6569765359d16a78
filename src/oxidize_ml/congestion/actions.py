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

from oxidize_ml._validate import check_number
from oxidize_ml.congestion.configs import CwndLimits
from oxidize_ml.types import DrlAction

__all__ = ["ACTION_FACTORS", "N_ACTIONS", "CwndLimits", "apply_action", "nearest_action"]

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
