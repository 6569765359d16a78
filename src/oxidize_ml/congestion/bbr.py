"""BBRv3-style congestion control fallback, speaking the spec's six actions.

This is the controller the engine runs when no learned congestion model is
loaded (spec, "Heuristic Fallback": "BBRv3-inspired algorithm"). It keeps
BBR's path model (windowed max delivery rate, windowed min RTT, an upper bound
``inflight_hi`` learned from loss) and its state machine, and turns every
decision into one of the six `DrlAction` values through the shared action
table (`oxidize_ml.congestion.actions`), so it is interchangeable with the DQN.

Model (REFERENCES.md section 2, BBR v3 constants)
-------------------------------------------------
- ``max_bw``: max over the last ``bw_filter_rounds`` (10) rounds of the
  per-round delivery rate. A round's sample is the mean of the interval
  delivery rates (``obs.throughput_bps``) over the round, which like BBR's own
  rate samples measures delivery over about one round trip. Rounds marked
  app-limited (in flight below ``app_limited_fraction`` of cwnd), rounds that
  overlap PROBE_RTT and rounds spent ramping the window back after PROBE_RTT
  or a persistent-congestion collapse only enter the filter when they raise
  the max (tcp_bbr.c keeps app-limited samples the same way, and v3 ignores
  low samples during PROBE_RTT); such rounds do not age the filter either.
- STARTUP rate samples: in STARTUP the filter also takes, every interval, the
  delivery rate over the last min-RTT (the round so far plus the tail of the
  previous round), as BBR's per-ack samples do. The round's mean alone lags:
  it is known when the round ends and measures data sent the round before, so
  a target of 2x it grew the window only ~sqrt(2) per round (the held-out
  600-ms satellite link took 11 s to fill; 8 s with these samples, 6 s with
  the delivery envelope spreading ack bursts as well).
- ``min_rtt``: v3's two-level filter. ``probe_rtt_min`` is the min RTT over
  ``probe_rtt_interval_s`` (5 s); a sample below ``(1 + min_rtt_tolerance)``
  x ``probe_rtt_min`` (2 %) confirms it (the RTT the controller sees is the
  smoothed one, which a queue-free path approaches but never undercuts, so
  a strict "lower or equal" sent such paths into PROBE_RTT every 5 s); when
  it expires without such a sample the controller enters PROBE_RTT. ``min_rtt`` takes ``probe_rtt_min``
  when that is lower or when ``min_rtt`` is older than ``min_rtt_window_s``.
- loss: a round is lossy when its mean loss ratio exceeds ``loss_threshold``
  (2 %) and the loss it implies (ratio x delivered bytes) is at least
  ``loss_min_packets`` (2) packets: one random loss in a 40-packet round is
  already 2.5 %, and reacting to it would make 1 % random loss look like
  congestion. Below that, loss is ignored (BBR is loss-tolerant). A round too
  small to lose 2 packets at a few percent (a 5-packet BDP) is judged with the
  rounds before it: the ratio over the rounds since the last verdict once they
  carried ``loss_min_packets / loss_threshold`` (100) packets, so a small-BDP
  path losing 10 % steadily is seen as lossy (one held-out ATT uplink window,
  1.3 Mbit/s at 40 ms: 9.8 % -> 8.5 % loss).
- ``inflight_hi`` (long-term upper bound, unset until a lossy probe): a lossy
  round in STARTUP or while probing (PROBE_BW REFILL/UP) sets
  ``inflight_hi = beta x`` the round's peak bytes in flight (beta = 0.7;
  never raised by a loss; floored at ``min_inflight_packets`` and, when
  leaving STARTUP, at the BDP as v3's ``bbr_handle_queue_too_high_in_startup``
  does). STARTUP then ends; UP/REFILL go to DOWN, so this happens once per
  probe, as in v3's ``bbr_handle_inflight_too_high``. Non-lossy rounds raise
  ``inflight_hi`` to the observed peak and, in UP while the window presses
  against it, by 1, 2, 4, ... packets per round (v3
  ``bbr_probe_inflight_hi_upward``).
- ``inflight_lo`` (short-term bound, v3 ``bbr_loss_lower_bounds``): a lossy
  round while not probing (DRAIN, DOWN, CRUISE) sets ``inflight_lo =
  max(bytes delivered in the round, beta x inflight_lo)`` (starting from
  cwnd), so loss that a queue did not cause costs little while a standing
  queue is cut to what the path delivers. Reset when the next probe starts
  (REFILL) and after PROBE_RTT.
- ack aggregation: ``extra_acked`` as in tcp_bbr.c, per interval: bytes
  delivered beyond ``max_bw`` since the aggregation epoch began; max over two
  slots of ``extra_acked_window_rounds`` rounds; capped at cwnd and at
  ``extra_acked_max_s`` of ``max_bw``; added to the target once the pipe has
  been filled.
- ramps: after PROBE_RTT or a persistent-congestion collapse the window climbs
  back at most 10 % per decision; those rounds are ignored by the bandwidth
  filter (see above) until the window reaches its target, or for at most
  ``bw_filter_rounds`` rounds if the transport does not follow the actions.

Window-only transport
---------------------
The transport has one lever, the window (aioquic paces at cwnd / srtt), so
BBR is expressed as a target window (REFERENCES.md section 2)::

    bdp    = max_bw x min_rtt
    target = gain x bdp + quantization_margin x bdp + extra_acked
    target = min(target, cap), then >= max(min_inflight_packets x mss, limits.min_cwnd)

``cap`` is ``min(phase cap, inflight_lo)``.
``gain`` is the phase's pacing gain capped by its cwnd gain (with no pacer the
window sets the sending rate, and BBR's cwnd = cwnd_gain x BDP still bounds
it): STARTUP min(2.77, 2) = 2, DRAIN 0.35, PROBE_BW DOWN 0.9 / CRUISE 1.0 /
REFILL 1.0 / UP 1.25. ``cap`` follows v3's ``bbr_bound_cwnd_for_inflight_model``:
``inflight_hi`` in DOWN/REFILL/UP, ``inflight_hi`` minus the 15 % headroom in
CRUISE and PROBE_RTT, none in STARTUP/DRAIN. In PROBE_RTT the target is
``max(probe_rtt_cwnd_gain x bdp, min_inflight_packets x mss)``.

``quantization_margin`` (5 %) is the analogue of tcp_bbr.c's
``bbr_quantization_budget``: the six actions move the window in 5 % steps, so
a window aimed exactly at the BDP settles up to 2.5 % below it, under-fills the
pipe and would let the 10-round bandwidth filter decay between probes.

STARTUP ends after ``full_bw_rounds`` (3) rounds without ``full_bw_growth``
(25 %) growth of ``max_bw``, counting only rounds whose window reached the
target: a window held below it (by the engine's delivery envelope, or by the
10 %-per-decision action steps on a long path) did not probe the path, and its
flat delivery rate says nothing about the bottleneck (without this rule the
satellite link left STARTUP at 2.5 s at a tenth of its capacity).

Actions
-------
`predict_one` returns ``nearest_action(obs.cwnd_bytes, target, limits)`` (its
arithmetic inlined, checked equal to it by the tests, because calling it
costs about 4 us), except:

- no bandwidth sample yet: ``Increase10`` (STARTUP with the largest step) if
  the last interval delivered data, else ``Maintain``: with nothing
  acknowledged (a silent start, an outage) the window is held, not grown by
  the clock (issue 10; the engine's `DeliveryEnvelope` enforces the same for
  every controller);
- the interval in which PROBE_RTT was entered: ``SlowStart`` (the window
  collapses to the initial window, the closest of the six actions to v3's
  half-BDP / 4-packet PROBE_RTT window; later intervals steer to that window),
  unless the window is already at or below the initial window;
- persistent congestion: ``loss_rate >= persistent_loss_rate`` (0.5) at every
  decision for at least ``persistent_congestion_srtts`` (3) smoothed RTTs
  (RFC 9002 declares persistent congestion after about three PTOs, and
  collapses the window): ``SlowStart`` once, then again after each further
  full stretch; if the window is already at or below the initial window, the
  action that lowers it most.

Decision cadence
----------------
The caller calls `learn_one` then `predict_one` once per decision interval
(the engine uses 10 ms; the interval belongs to the caller, not to the
config). Rounds are approximated by elapsed time: a round ends at the first
`learn_one` at least ``min_rtt`` after the previous round ended. The
controller is correct for any interval <= min_rtt; coarser intervals make
rounds last one interval, which only slows its reactions. The window moves at
most 10 % per decision, so STARTUP grows at most 1.1 per interval.

A PROBE_BW cycle (v3): DOWN (gain 0.9) until in flight <= min(BDP, 85 % of
``inflight_hi``), CRUISE until the probe time (2-3 s after DOWN began, or
after min(BDP in packets, 63) rounds for Reno coexistence), REFILL (gain 1.0)
for one min_rtt, UP (1.25) until a lossy round, or until the window has held
1.25 BDP for a min_rtt (no more bandwidth: a queue formed), then DOWN again.
PROBE_RTT holds ``max(0.5 BDP, 4 packets)`` for 200 ms and a round, then goes
to CRUISE (or back to STARTUP if the pipe was never filled).

Nothing here is random: the 2-3 s wait between bandwidth probes comes from a
golden-ratio sequence over the probe count, so equal inputs give equal
actions.

Known limits: the caller must report ``features.inflight`` (packets in
flight); a sender that always reports 0 looks app-limited, so its bandwidth
estimate never decays. When the initial window already exceeds the path's
BDP, the first RTT sample includes a queue and, as in BBR, the min-RTT
estimate only ratchets down as lower samples arrive (seen on a 4 ms, 12
Mbit/s path: RTT stays ~3x base).
"""

from __future__ import annotations

import math
from dataclasses import fields
from enum import StrEnum
from typing import Any

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.actions import ACTION_FACTORS, CwndLimits, nearest_action
from oxidize_ml.congestion.configs import BbrConfig
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.types import DrlAction

__all__ = ["STATE_VERSION", "BbrConfig", "BbrFallback", "BbrPhase"]

_INF = float("inf")

STATE_VERSION = 2
"""version of the `BbrFallback.state_dict` layout"""

# Bits per second x microseconds -> bytes: 1 / 8 / 1e6.
_BPS_US_TO_BYTES = 1.25e-7
_US_TO_S = 1e-6
_TIME_SLACK_S = 1e-6
# Golden-ratio conjugate: k * phi mod 1 is a low-discrepancy sequence in
# [0, 1), a deterministic stand-in for v3's random probe wait.
_PHI = 0.6180339887498949
# Enum attribute access costs ~0.2 us; predict_one returns these globals.
_INCREASE5 = DrlAction.Increase5
_INCREASE10 = DrlAction.Increase10
_MAINTAIN = DrlAction.Maintain
_DECREASE5 = DrlAction.Decrease5
_DECREASE10 = DrlAction.Decrease10
_SLOW_START = DrlAction.SlowStart
# Why predict_one departs from nearest_action for one interval.
_OVERRIDE_PROBE_RTT = 1
_OVERRIDE_COLLAPSE = 2


class BbrPhase(StrEnum):
    """BBR's states, with PROBE_BW split into its four v3 phases."""

    STARTUP = "STARTUP"
    DRAIN = "DRAIN"
    PROBE_BW_DOWN = "PROBE_BW_DOWN"
    PROBE_BW_CRUISE = "PROBE_BW_CRUISE"
    PROBE_BW_REFILL = "PROBE_BW_REFILL"
    PROBE_BW_UP = "PROBE_BW_UP"
    PROBE_RTT = "PROBE_RTT"


# Internal phase codes (index into _PHASES); ints keep the hot path cheap.
_PHASES: tuple[BbrPhase, ...] = tuple(BbrPhase)
_STARTUP, _DRAIN, _DOWN, _CRUISE, _REFILL, _UP, _PROBE_RTT = range(7)
# Which bound on in-flight data applies per phase (v3
# bbr_bound_cwnd_for_inflight_model): 0 none, 1 inflight_hi, 2 with headroom.
_CAP_MODE = (0, 0, 1, 2, 1, 1, 2)


def _limits_to_dict(limits: CwndLimits) -> dict[str, int]:
    return {f.name: getattr(limits, f.name) for f in fields(CwndLimits)}


# Everything `state_dict` saves: the learned model and the state machine.
# Config-derived attributes are rebuilt by __init__ and not saved.
_STATE_FIELDS: tuple[str, ...] = (
    "_phase",
    "_last_now",
    "_srtt_us",
    "_min_rtt_us",
    "_min_rtt_stamp",
    "_probe_rtt_min_us",
    "_probe_rtt_min_stamp",
    "_max_bw",
    "_bw_ring",
    "_bw_idx",
    "_round_start",
    "_rounds",
    "_rnd_bits",
    "_rnd_rate_max",
    "_prev_rnd_bits",
    "_prev_rnd_dur",
    "_rnd_loss",
    "_acc_lost",
    "_acc_total",
    "_rnd_inflight_max",
    "_rnd_app_limited",
    "_rnd_ignored",
    "_full_bw",
    "_full_bw_cnt",
    "_full_bw_reached",
    "_inflight_hi",
    "_inflight_lo",
    "_prev_probe_too_high",
    "_up_rounds",
    "_cycle_stamp",
    "_phase_stamp",
    "_probe_wait_s",
    "_probe_count",
    "_rounds_since_probe",
    "_probe_rounds",
    "_probe_rtt_done_stamp",
    "_probe_rtt_round_start",
    "_ramping",
    "_ramp_rounds",
    "_excess",
    "_xa",
    "_xa_idx",
    "_xa_rounds",
    "_cong_since",
    "_override",
    "_target",
    "_n_probe_rtt",
    "_n_lossy_rounds",
    "_n_persistent",
)


class BbrFallback:
    """BBRv3-style window controller: a `Policy[CongestionObservation, DrlAction]`.

    ``learn_one`` updates the path model and state machine from one interval's
    observation; ``predict_one`` reads state only and returns the action that
    moves ``obs.cwnd_bytes`` closest to the target window (see the module
    docstring for the model, the target and the exceptions).

    Parameters
    ----------
    config
        BBR constants; defaults to ``BbrConfig()`` (v3). `clone` rebuilds from it.
    limits
        Window bounds shared by every controller; defaults to ``CwndLimits()``.
        ``limits.mss`` converts ``features.inflight`` (packets) to bytes.

    Examples
    --------
    >>> from oxidize_ml.features import NetworkFeatures
    >>> from oxidize_ml.congestion import CongestionObservation, apply_action
    >>> bbr = BbrFallback()
    >>> f = NetworkFeatures(rtt_us=40_000, rtt_var_us=0, bandwidth_bps=0, loss_rate=0.0,
    ...     loss_trend=0.0, inflight=10, cwnd=15_000)
    >>> obs = CongestionObservation(features=f, throughput_bps=3e6, cwnd_bytes=15_000)
    >>> bbr.learn_one(obs, 0.0, now=0.0)
    >>> bbr.predict_one(obs, now=0.0)   # no bandwidth sample yet: grow fast
    <DrlAction.Increase10: 1>
    >>> bbr.state
    <BbrPhase.STARTUP: 'STARTUP'>
    """

    name = "bbr"
    is_learned = False

    __slots__ = (
        *_STATE_FIELDS,
        "config",
        "limits",
        "_mss",
        "_lo",
        "_hi",
        "_f_inc5",
        "_f_inc10",
        "_f_dec5",
        "_f_dec10",
        "_init_cwnd",
        "_reach",
        "_tol",
        "_floor",
        "_window_gain",
        "_pacing_gain",
        "_cwnd_gain",
        "_gain",
        "_gain_margin",
        "_cap",
        "_extra",
        "_xa_cur",
        "_margin",
        "_thr",
        "_min_lost_bytes",
        "_beta",
        "_keep",
        "_app_frac",
        "_prt_interval",
        "_prt_duration",
        "_prt_gain",
        "_mrtt_window",
        "_persist_loss",
        "_persist_srtts",
        "_xa_max_s",
        "_xa_win",
        "_ring_len",
        "_rtt_tol",
        "_loss_window",
    )

    def __init__(self, config: BbrConfig | None = None, limits: CwndLimits | None = None) -> None:
        if config is None:
            config = BbrConfig()
        if limits is None:
            limits = CwndLimits()
        if not isinstance(config, BbrConfig):
            raise TypeError(f"config must be a BbrConfig, got {type(config).__name__}")
        if not isinstance(limits, CwndLimits):
            raise TypeError(f"limits must be a CwndLimits, got {type(limits).__name__}")
        self.config = config
        self.limits = limits
        c = config
        # Plain-attribute copies of constants: the hot path saves one
        # attribute hop per read.
        self._mss = float(limits.mss)
        self._lo = limits.min_cwnd
        self._hi = limits.max_cwnd_bytes
        self._init_cwnd = limits.initial_cwnd
        # The ONE action table, read once (nearest_action's arithmetic is
        # mirrored in predict_one; the tests check they agree).
        self._f_inc5 = _factor(DrlAction.Increase5)
        self._f_inc10 = _factor(DrlAction.Increase10)
        self._f_dec5 = _factor(DrlAction.Decrease5)
        self._f_dec10 = _factor(DrlAction.Decrease10)
        # A window steered by nearest_action stops within half the smallest
        # step of its target; "reached" comparisons allow that plus 0.5 %.
        steps = [abs(f - 1.0) for f in ACTION_FACTORS.values() if f is not None and f != 1.0]
        self._tol = 1.0 + 0.5 * min(steps) + 0.005
        self._reach = 1.0 / self._tol
        self._floor = float(max(c.min_inflight_packets * limits.mss, limits.min_cwnd))
        self._window_gain = (
            min(c.startup_pacing_gain, c.startup_cwnd_gain),
            min(c.drain_pacing_gain, c.startup_cwnd_gain),
            min(c.probe_down_gain, c.cwnd_gain),
            min(c.probe_cruise_gain, c.cwnd_gain),
            min(c.probe_refill_gain, c.cwnd_gain),
            min(c.probe_up_gain, c.cwnd_gain),
            c.probe_rtt_cwnd_gain,
        )
        self._pacing_gain = (
            c.startup_pacing_gain,
            c.drain_pacing_gain,
            c.probe_down_gain,
            c.probe_cruise_gain,
            c.probe_refill_gain,
            c.probe_up_gain,
            1.0,
        )
        self._cwnd_gain = (
            c.startup_cwnd_gain,
            c.startup_cwnd_gain,
            c.cwnd_gain,
            c.cwnd_gain,
            c.cwnd_gain,
            c.cwnd_gain,
            c.probe_rtt_cwnd_gain,
        )
        self._margin = c.quantization_margin
        self._thr = c.loss_threshold
        self._min_lost_bytes = c.loss_min_packets * limits.mss
        self._beta = c.beta
        self._keep = 1.0 - c.headroom
        self._app_frac = c.app_limited_fraction
        self._prt_interval = c.probe_rtt_interval_s
        self._prt_duration = c.probe_rtt_duration_s
        self._prt_gain = c.probe_rtt_cwnd_gain
        self._mrtt_window = c.min_rtt_window_s
        self._persist_loss = c.persistent_loss_rate
        self._persist_srtts = c.persistent_congestion_srtts
        self._xa_max_s = c.extra_acked_max_s
        self._xa_win = c.extra_acked_window_rounds
        self._ring_len = c.bw_filter_rounds
        self._rtt_tol = 1.0 + c.min_rtt_tolerance
        self._loss_window = c.loss_min_packets / c.loss_threshold * limits.mss
        self.reset()

    # -- lifecycle -------------------------------------------------------------

    def reset(self) -> None:
        """Forget the path model and return to STARTUP (a new connection)."""
        self._last_now: float | None = None
        self._srtt_us = 0.0
        # +inf stamps mean "never": now - inf is never past a window.
        self._min_rtt_us = _INF
        self._min_rtt_stamp = _INF
        self._probe_rtt_min_us = _INF
        self._probe_rtt_min_stamp = _INF
        self._max_bw = 0.0
        self._bw_ring = [0.0] * self._ring_len
        self._bw_idx = 0
        self._round_start = 0.0
        self._rounds = 0
        self._rnd_bits = 0.0
        self._rnd_rate_max = 0.0
        self._prev_rnd_bits = 0.0
        self._prev_rnd_dur = 0.0
        self._rnd_loss = 0.0
        self._acc_lost = 0.0
        self._acc_total = 0.0
        self._rnd_inflight_max = 0.0
        self._rnd_app_limited = False
        self._rnd_ignored = False
        self._full_bw = 0.0
        self._full_bw_cnt = 0
        self._full_bw_reached = False
        self._inflight_hi = _INF
        self._inflight_lo = _INF
        self._prev_probe_too_high = False
        self._up_rounds = 0
        self._cycle_stamp = 0.0
        self._phase_stamp = 0.0
        self._probe_wait_s = self.config.probe_wait_min_s
        self._probe_count = 0
        self._rounds_since_probe = 0
        self._probe_rounds = float(self.config.probe_max_rounds)
        self._probe_rtt_done_stamp = -1.0
        self._probe_rtt_round_start = 0.0
        self._ramping = False
        self._ramp_rounds = 0
        self._excess = 0.0
        self._xa = [0.0, 0.0]
        self._xa_idx = 0
        self._xa_rounds = 0
        self._extra = 0.0
        self._xa_cur = 0.0
        self._cong_since: float | None = None
        self._override = 0
        self._target = 0.0
        self._n_probe_rtt = 0
        self._n_lossy_rounds = 0
        self._n_persistent = 0
        self._set_phase(_STARTUP)

    def clone(self) -> BbrFallback:
        """A fresh controller with the same config and limits and no state (river's clone)."""
        return BbrFallback(self.config, self.limits)

    # -- read-only views -------------------------------------------------------

    @property
    def state(self) -> BbrPhase:
        """current phase of the state machine"""
        return _PHASES[self._phase]

    @property
    def max_bw_bps(self) -> float:
        """windowed max delivery rate, bits per second (0 before the first round ends)"""
        return self._max_bw

    @property
    def min_rtt_us(self) -> float:
        """windowed min RTT, microseconds (inf before the first RTT sample)"""
        return self._min_rtt_us

    @property
    def target_cwnd_bytes(self) -> float:
        """the window the next decisions steer toward, bytes (0 before a bandwidth sample)"""
        return self._target

    @property
    def inflight_hi_bytes(self) -> float:
        """upper bound on in-flight bytes learned from loss (inf until a lossy round)"""
        return self._inflight_hi

    def stats(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot for ``engine.stats()`` (unset values are ``None``)."""
        return {
            "name": self.name,
            "phase": _PHASES[self._phase].value,
            "max_bw_bps": self._max_bw,
            "min_rtt_us": _finite_or_none(self._min_rtt_us),
            "srtt_us": self._srtt_us,
            "target_cwnd_bytes": self._target,
            "bdp_bytes": self._bdp(),
            "pacing_gain": self._pacing_gain[self._phase],
            "cwnd_gain": self._cwnd_gain[self._phase],
            "window_gain": self._gain,
            "inflight_hi_bytes": _finite_or_none(self._inflight_hi),
            "inflight_lo_bytes": _finite_or_none(self._inflight_lo),
            "extra_acked_bytes": self._extra,
            "full_bw_reached": self._full_bw_reached,
            "rounds": self._rounds,
            "probe_rtt_count": self._n_probe_rtt,
            "lossy_rounds": self._n_lossy_rounds,
            "persistent_congestion_count": self._n_persistent,
        }

    # -- Policy ----------------------------------------------------------------

    def learn_one(self, obs: CongestionObservation, feedback: float, *, now: float) -> None:
        """Feed one decision interval's observation.

        Parameters
        ----------
        obs
            The interval that just ended: ``throughput_bps`` is the delivery
            rate sample, ``features.rtt_us`` the RTT sample (``<= 0`` means
            none), ``features.loss_rate`` the loss ratio, ``features.inflight``
            the packets in flight, ``cwnd_bytes`` the applied window. Not
            mutated.
        feedback
            Ignored: BBR learns from the measurements in ``obs``, not from a
            reward. Accepted for the `Policy` shape.
        now
            Caller's time at the end of the interval, seconds; must not go
            backwards.

        Raises
        ------
        ValueError
            ``throughput_bps`` or ``cwnd_bytes`` negative or not finite, or
            ``now`` earlier than the previous call's.
        """
        f = obs.features
        tput = obs.throughput_bps
        cwnd = obs.cwnd_bytes
        if not 0.0 <= tput < _INF:
            raise ValueError(f"throughput_bps must be finite and >= 0, got {tput!r}")
        if not 0 <= cwnd < _INF:
            raise ValueError(f"cwnd_bytes must be finite and >= 0, got {cwnd!r}")
        prev = self._last_now
        if prev is None:
            # First observation: rounds and the probe clock start here.
            prev = now
            self._round_start = now
            self._cycle_stamp = now
            self._phase_stamp = now
        dt = now - prev
        if not dt >= 0.0:
            raise ValueError(f"now must not go backwards: got {now!r} after {prev!r}")
        self._last_now = now
        self._override = 0
        rtt = f.rtt_us
        loss = f.loss_rate
        inflight = f.inflight * self._mss
        phase = self._phase

        # RTT: RFC 9002 smoothing, then v3's two-level min filter.
        if rtt > 0.0:
            srtt = self._srtt_us
            self._srtt_us = rtt if srtt == 0.0 else srtt + 0.125 * (rtt - srtt)
            expired = now - self._probe_rtt_min_stamp > self._prt_interval
            if rtt < self._probe_rtt_min_us * self._rtt_tol or expired:
                # Within the tolerance the minimum is confirmed (its stamp refreshed),
                # not raised: it can only drift down between expiries.
                if rtt < self._probe_rtt_min_us or expired:
                    self._probe_rtt_min_us = rtt
                self._probe_rtt_min_stamp = now
                if rtt <= self._min_rtt_us:
                    self._min_rtt_us = rtt
                    self._min_rtt_stamp = now
            if now - self._min_rtt_stamp > self._mrtt_window:
                self._min_rtt_us = self._probe_rtt_min_us
                self._min_rtt_stamp = self._probe_rtt_min_stamp
            if expired and phase != _PROBE_RTT:
                self._start_probe_rtt()
                phase = _PROBE_RTT

        # Accumulate this interval into the current round.
        if dt > 0.0:
            self._rnd_bits += tput * dt
            if loss > 0.0:
                self._rnd_loss += loss * dt
        if inflight > self._rnd_inflight_max:  # noqa: PLR1730 (hot path: no call)
            self._rnd_inflight_max = inflight
        if inflight < self._app_frac * cwnd:
            self._rnd_app_limited = True
        if phase == _PROBE_RTT or self._ramping:
            self._rnd_ignored = True

        if self._full_bw_reached and dt > 0.0:
            # Ack aggregation (tcp_bbr.c bbr_update_ack_aggregation), per
            # interval: ``excess`` is bytes delivered beyond max_bw since the
            # epoch began. BBR restarts the epoch when the bytes acked so far
            # fall within what max_bw allows up to now, i.e. when the excess
            # before this interval is at most this interval's allowance; the
            # new epoch then holds this interval alone, so a flow steady at
            # max_bw has zero excess.
            allowance = self._max_bw * dt * 0.125
            d = tput * dt * 0.125 - allowance
            x = self._excess
            x = x + d if x > allowance else d
            self._excess = x
            if x > self._xa_cur:
                self._xa[self._xa_idx] = x if x < cwnd else float(cwnd)
                self._update_extra()

        # One microsecond of slack: callers step time in floats (k x 0.01 s)
        # and 0.07 - 0.03 < 0.04 must still close a 40 ms round.
        min_rtt_s = self._min_rtt_us * _US_TO_S - _TIME_SLACK_S
        elapsed = now - self._round_start
        if phase == _STARTUP and elapsed > 0.0 and min_rtt_s < _INF:
            # A delivery-rate sample over the last min-RTT (this round so far plus
            # the tail of the previous one, taken as uniform), every interval: BBR's
            # per-ack samples, which see the window grow within the round. With the
            # round's mean alone the target lags a round behind the deliveries,
            # which were sent the round before, and STARTUP grew ~sqrt(2) per round
            # instead of doubling (600-ms satellite: 11 s to fill the pipe).
            bits = self._rnd_bits
            span = elapsed
            short = min_rtt_s - elapsed
            pd = self._prev_rnd_dur
            if short > 0.0 and pd > 0.0:
                w = short / pd if short < pd else 1.0
                bits += w * self._prev_rnd_bits
                span += w * pd
            rate = bits / span
            if rate > self._rnd_rate_max:
                self._rnd_rate_max = rate
                if rate > self._max_bw:  # noqa: PLR1730 (hot path: no call)
                    self._max_bw = rate
        if elapsed >= min_rtt_s:
            self._end_round(now, cwnd)
            phase = self._phase
        max_bw = self._max_bw

        # Per-interval transitions of the state machine.
        bdp = max_bw * self._min_rtt_us * _BPS_US_TO_BYTES if max_bw > 0.0 else 0.0
        if phase == _CRUISE:
            if (
                now - self._cycle_stamp >= self._probe_wait_s
                or self._rounds_since_probe >= self._probe_rounds
            ):
                self._start_refill(now)
        elif phase >= _DRAIN:
            self._transition(phase, now, bdp, inflight, min_rtt_s)

        # Persistent congestion (RFC 9002 style, see module docstring).
        if loss >= self._persist_loss:
            since = self._cong_since
            if since is None:
                self._cong_since = prev
            elif now - since >= self._persist_srtts * self._srtt_us * _US_TO_S:
                self._override = _OVERRIDE_COLLAPSE
                self._n_persistent += 1
                self._cong_since = now
                self._ramping = True
                self._ramp_rounds = 0
        elif self._cong_since is not None:
            self._cong_since = None

        # The target window for the decisions until the next learn_one.
        if bdp > 0.0:
            if self._phase == _PROBE_RTT:
                t = bdp * self._prt_gain
            else:
                t = bdp * self._gain_margin
                if self._full_bw_reached:
                    t += self._extra
            if t > self._cap:  # noqa: PLR1730 (hot path: no call)
                t = self._cap
            if t < self._floor:  # noqa: PLR1730
                t = self._floor
            self._target = t
            if self._ramping and cwnd >= min(t, self._hi) * self._reach:
                self._ramping = False

    def predict_one(self, obs: CongestionObservation, *, now: float) -> DrlAction:
        """The action for the next interval; reads state and ``obs.cwnd_bytes`` only.

        ``now`` is accepted for the `Policy` shape; the decision depends on the
        state left by the last `learn_one`.

        The common path is `oxidize_ml.congestion.nearest_action` with its
        arithmetic inlined (calling it costs about 4 us): results are monotone
        in the factor, so when the target is at or above the Maintain result
        no decrease can be strictly closer (and vice versa), and only the two
        steps on the target's side are evaluated, in the same order and with
        the same ties. The tests check equality with `nearest_action`.
        """
        cwnd = obs.cwnd_bytes
        if self._override:
            if cwnd > self._init_cwnd:
                return _SLOW_START
            if self._override == _OVERRIDE_COLLAPSE:
                return nearest_action(cwnd, 0.0, self.limits)
        target = self._target
        if target <= 0.0:
            # No bandwidth sample yet: grow only on evidence (acks in the interval
            # just seen). "No sample" is not "grow": a link that delivers nothing
            # for its first 800 ms must not see the window climb 1.1x per interval.
            return _INCREASE10 if obs.throughput_bps > 0.0 else _MAINTAIN
        lo = self._lo
        hi = self._hi
        r = lo if cwnd < lo else (hi if cwnd > hi else int(cwnd))
        if target >= r:
            err = target - r
            v = cwnd * self._f_inc5
            r = lo if v < lo else (hi if v > hi else int(v))
            e = r - target if r > target else target - r
            v = cwnd * self._f_inc10
            r = lo if v < lo else (hi if v > hi else int(v))
            e10 = r - target if r > target else target - r
            if e < err:
                return _INCREASE10 if e10 < e else _INCREASE5
            return _INCREASE10 if e10 < err else _MAINTAIN
        err = r - target
        v = cwnd * self._f_dec5
        r = lo if v < lo else (hi if v > hi else int(v))
        e = r - target if r > target else target - r
        v = cwnd * self._f_dec10
        r = lo if v < lo else (hi if v > hi else int(v))
        e10 = r - target if r > target else target - r
        if e < err:
            return _DECREASE10 if e10 < e else _DECREASE5
        return _DECREASE10 if e10 < err else _MAINTAIN

    # -- internals ---------------------------------------------------------------

    def _transition(
        self, phase: int, now: float, bdp: float, inflight: float, min_rtt_s: float
    ) -> None:
        """Per-interval state-machine checks for DRAIN, PROBE_BW DOWN/REFILL/UP and PROBE_RTT."""
        margin = self._margin
        if phase == _DOWN:
            if (
                now - self._cycle_stamp >= self._probe_wait_s
                or self._rounds_since_probe >= self._probe_rounds
            ):
                self._start_refill(now)
            elif inflight <= bdp * (1.0 + margin) and inflight <= self._inflight_hi * self._keep:
                self._set_phase(_CRUISE)
        elif phase == _UP:
            # v3: stop when a risky probe reaches the old bound, or when the
            # window held 1.25 BDP for a min_rtt (a queue has formed).
            if (self._prev_probe_too_high and inflight >= self._inflight_hi) or (
                now - self._phase_stamp >= min_rtt_s
                and inflight * self._tol >= bdp * (self._gain + margin)
            ):
                self._prev_probe_too_high = False
                self._start_down(now)
        elif phase == _REFILL:
            if now - self._phase_stamp >= min_rtt_s:
                self._start_up(now)
        elif phase == _DRAIN:
            if inflight <= bdp * (1.0 + margin):
                self._start_down(now)
        elif phase == _PROBE_RTT:
            if self._probe_rtt_done_stamp < 0.0:
                prt = max(bdp * self._prt_gain, self._floor)
                if inflight <= prt * self._tol:
                    # Hold the small window for the duration and a round.
                    self._probe_rtt_done_stamp = now + self._prt_duration
                    self._probe_rtt_round_start = now
            elif (
                now >= self._probe_rtt_done_stamp and now - self._probe_rtt_round_start >= min_rtt_s
            ):
                self._exit_probe_rtt(now)

    def _set_phase(self, phase: int) -> None:
        self._phase = phase
        self._gain = self._window_gain[phase]
        self._gain_margin = self._gain + self._margin
        self._update_cap()

    def _update_cap(self) -> None:
        """Recompute the bound on the target from the phase, inflight_hi and inflight_lo."""
        mode = _CAP_MODE[self._phase]
        cap = _INF
        if mode == 1:
            cap = self._inflight_hi
        elif mode == 2:
            cap = self._inflight_hi * self._keep
        self._cap = min(cap, self._inflight_lo)

    def _update_extra(self) -> None:
        """Recompute the ack-aggregation allowance from the two filter slots."""
        xa = self._xa
        self._xa_cur = xa[self._xa_idx]
        self._extra = min(max(xa[0], xa[1]), self._max_bw * 0.125 * self._xa_max_s)

    def _bdp(self) -> float:
        if self._max_bw <= 0.0:
            return 0.0
        return self._max_bw * self._min_rtt_us * _BPS_US_TO_BYTES

    def _end_round(self, now: float, cwnd: float) -> None:
        """Close the round that just elapsed: bandwidth filter, loss response, STARTUP exit."""
        dur = now - self._round_start
        self._round_start = now
        self._rounds += 1
        delivered = self._rnd_bits * 0.125
        sample = self._rnd_bits / dur if dur > 0.0 else 0.0
        if self._rnd_rate_max > sample:  # noqa: PLR1730 (hot path: no call)
            sample = self._rnd_rate_max
        self._prev_rnd_bits = self._rnd_bits
        self._prev_rnd_dur = dur
        self._rnd_rate_max = 0.0
        loss = self._rnd_loss / dur if dur > 0.0 else 0.0
        peak = self._rnd_inflight_max
        app_limited = self._rnd_app_limited
        representative = not (app_limited or self._rnd_ignored)
        self._rnd_bits = 0.0
        self._rnd_loss = 0.0
        self._rnd_inflight_max = 0.0
        self._rnd_app_limited = False
        self._rnd_ignored = False

        # Max-bandwidth filter: a ring of per-round samples. Rounds that could
        # not show the path's rate only count when they raise the max.
        if representative or sample > self._max_bw:
            ring = self._bw_ring
            i = (self._bw_idx + 1) % len(ring)
            self._bw_idx = i
            ring[i] = sample
            self._max_bw = max(ring)
        bdp = self._bdp()

        phase = self._phase
        # Lossy: the loss ratio is above the threshold and rests on enough
        # lost packets to mean it (one loss in a 40-packet round is 2.5 %).
        lost = (loss / (1.0 - loss) if loss < 1.0 else _INF) * delivered
        lossy = loss > self._thr and lost >= self._min_lost_bytes
        if phase != _PROBE_RTT:
            # A round of a few packets can never show loss_min_packets losses at a
            # few percent: judge the ratio over the rounds since the last verdict
            # until they carried loss_min_packets / loss_threshold packets (100),
            # one round on a large BDP, several on a small one.
            acc_lost = self._acc_lost + lost
            acc_total = self._acc_total + delivered + lost
            if lossy or acc_total >= self._loss_window:
                lossy = lossy or (
                    acc_lost > self._thr * acc_total and acc_lost >= self._min_lost_bytes
                )
                acc_lost = acc_total = 0.0
            self._acc_lost = acc_lost
            self._acc_total = acc_total
        if lossy and phase != _PROBE_RTT:
            self._n_lossy_rounds += 1
            if phase == _STARTUP or phase == _UP or phase == _REFILL:
                # Too much loss while probing (v3 bbr_handle_inflight_too_high,
                # once per probe since the probe ends): cut the long-term bound.
                if not app_limited:
                    hi = max(self._beta * peak, self._floor)
                    if phase == _STARTUP:
                        hi = max(hi, bdp)
                    self._inflight_hi = min(self._inflight_hi, hi)
                if phase == _STARTUP:
                    self._full_bw_reached = True
                else:
                    self._prev_probe_too_high = True
                    self._start_down(now)
            elif not app_limited:
                # Not probing (v3 bbr_loss_lower_bounds): shrink the short-term
                # bound by beta per lossy round, but never below what the
                # round delivered, so loss that a queue did not cause costs
                # little. Reset when the next probe starts.
                lo = self._inflight_lo
                if lo == _INF:
                    lo = float(cwnd)
                lo = max(delivered, self._beta * lo, self._floor)
                self._inflight_lo = lo
        elif not app_limited and phase != _PROBE_RTT:
            hi = self._inflight_hi
            if hi < _INF:
                hi = max(hi, peak)
                if phase == _UP and cwnd >= hi * self._reach:
                    # The window presses on inflight_hi: raise it 1, 2, 4, ...
                    # packets per round (v3 bbr_probe_inflight_hi_upward).
                    hi += self._mss * (1 << self._up_rounds)
                    self._up_rounds = min(self._up_rounds + 1, 30)
                self._inflight_hi = hi

        if (
            phase == _STARTUP
            and not self._full_bw_reached
            and representative
            and (self._target <= 0.0 or cwnd >= self._target * self._reach)
        ):
            # Only a round whose window reached its target can show the pipe is
            # full: a window held below it (the envelope's ack clock, the 10 %
            # action steps on a long path) did not probe, so its flat delivery
            # rate says nothing about the bottleneck.
            if self._max_bw >= self._full_bw * self.config.full_bw_growth:
                self._full_bw = self._max_bw
                self._full_bw_cnt = 0
            else:
                self._full_bw_cnt += 1
                if self._full_bw_cnt >= self.config.full_bw_rounds:
                    self._full_bw_reached = True
        if phase == _STARTUP and self._full_bw_reached:
            self._set_phase(_DRAIN)

        if self._ramping:
            # A transport that does not follow the actions must not freeze the
            # filter: a ramp lasts at most one filter length.
            self._ramp_rounds += 1
            if self._ramp_rounds >= self._ring_len:
                self._ramping = False
        self._rounds_since_probe += 1
        # Reno coexistence: also probe after min(BDP in packets, 63) rounds
        # (v3 bbr_is_reno_coexistence_probe_time).
        self._probe_rounds = min(bdp / self._mss, float(self.config.probe_max_rounds))
        self._xa_rounds += 1
        if self._xa_rounds >= self._xa_win:
            self._xa_rounds = 0
            self._xa_idx ^= 1
            self._xa[self._xa_idx] = 0.0
        self._update_extra()
        self._update_cap()

    def _start_down(self, now: float) -> None:
        self._set_phase(_DOWN)
        self._cycle_stamp = now
        self._phase_stamp = now
        self._rounds_since_probe = 0
        c = self.config
        k = self._probe_count
        self._probe_count = k + 1
        frac = (k * _PHI) % 1.0
        self._probe_wait_s = c.probe_wait_min_s + (c.probe_wait_max_s - c.probe_wait_min_s) * frac

    def _start_refill(self, now: float) -> None:
        self._set_phase(_REFILL)
        self._phase_stamp = now
        self._up_rounds = 0
        self._inflight_lo = _INF

    def _start_up(self, now: float) -> None:
        self._set_phase(_UP)
        self._phase_stamp = now

    def _start_probe_rtt(self) -> None:
        self._set_phase(_PROBE_RTT)
        self._probe_rtt_done_stamp = -1.0
        self._override = _OVERRIDE_PROBE_RTT
        self._n_probe_rtt += 1

    def _exit_probe_rtt(self, now: float) -> None:
        # Schedule the next PROBE_RTT probe_rtt_interval_s from now (v3
        # bbr_check_probe_rtt_done), then cruise (or resume STARTUP).
        self._probe_rtt_min_stamp = now
        self._probe_rtt_done_stamp = -1.0
        self._ramping = True
        self._ramp_rounds = 0
        self._inflight_lo = _INF
        if self._full_bw_reached:
            self._start_down(now)
            self._set_phase(_CRUISE)
        else:
            self._set_phase(_STARTUP)

    # -- persistence ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Config, limits and state as plain JSON-serialisable data (inf -> None)."""
        state: dict[str, Any] = {}
        for key in _STATE_FIELDS:
            value = getattr(self, key)
            if isinstance(value, list):
                value = [_finite_or_none(v) for v in value]
            elif isinstance(value, float):
                value = _finite_or_none(value)
            state[key.lstrip("_")] = value
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "config": self.config.to_dict(),
            "limits": _limits_to_dict(self.limits),
            "state": state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned.

        The saved config and limits must equal this controller's (or use
        `from_state_dict`); otherwise ``ValueError``. Missing, unknown or
        ill-typed entries raise ``ValueError`` / ``TypeError`` naming them.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"state version must be {STATE_VERSION}, got {version!r}")
        cfg = BbrConfig.from_dict(dict(state.get("config", {})))
        if cfg != self.config:
            raise ValueError(f"state config {cfg} differs from this controller's {self.config}")
        limits = CwndLimits(**dict(state.get("limits", {})))
        if limits != self.limits:
            raise ValueError(f"state limits {limits} differs from this controller's {self.limits}")
        body = state.get("state")
        if not isinstance(body, dict):
            raise TypeError(f"state['state'] must be a dict, got {type(body).__name__}")
        expected = {k.lstrip("_") for k in _STATE_FIELDS}
        missing = sorted(expected - set(body))
        unknown = sorted(set(body) - expected)
        if missing or unknown:
            raise ValueError(f"state entries missing {missing}, unknown {unknown}")
        fresh = BbrFallback(self.config, self.limits)
        values: dict[str, Any] = {}
        for key in _STATE_FIELDS:
            name = key.lstrip("_")
            default = getattr(fresh, key)
            values[key] = _restore(name, body[name], default)
        if not 0 <= values["_phase"] < len(_PHASES):
            raise ValueError(f"phase must be in [0, {len(_PHASES)}), got {values['_phase']!r}")
        if len(values["_bw_ring"]) != self._ring_len:
            raise ValueError(
                f"bw_ring must have {self._ring_len} entries, got {len(values['_bw_ring'])}"
            )
        if len(values["_xa"]) != 2:
            raise ValueError(f"xa must have 2 entries, got {len(values['_xa'])}")
        if not 0 <= values["_bw_idx"] < self._ring_len or values["_xa_idx"] not in (0, 1):
            raise ValueError("bw_idx / xa_idx out of range")
        for key, value in values.items():
            setattr(self, key, value)
        self._set_phase(values["_phase"])
        self._update_extra()

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> BbrFallback:
        """Build a controller from `state_dict` output (config and limits included)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        bbr = cls(
            BbrConfig.from_dict(dict(state.get("config", {}))),
            CwndLimits(**dict(state.get("limits", {}))),
        )
        bbr.load_state_dict(state)
        return bbr

    def __repr__(self) -> str:
        return (
            f"BbrFallback(phase={_PHASES[self._phase].value}, max_bw_bps={self._max_bw:.4g}, "
            f"min_rtt_us={self._min_rtt_us:.4g}, target_cwnd_bytes={self._target:.0f})"
        )


def _factor(action: DrlAction) -> float:
    factor = ACTION_FACTORS[action]
    if factor is None:
        raise ValueError(f"{action.name} must be a multiplicative action")
    return factor


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _restore(name: str, value: Any, default: Any) -> Any:
    """Check one saved entry against the type of its fresh default; None -> inf."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        return value
    if isinstance(default, int):
        return check_int(name, value, lo=0)
    if isinstance(default, list):
        if not isinstance(value, list):
            raise TypeError(f"{name} must be a list, got {type(value).__name__}")
        return [_restore(f"{name}[{i}]", v, 0.0) for i, v in enumerate(value)]
    if default is None or name == "cong_since" or name == "last_now":
        # Optional timestamps: None means unset.
        return None if value is None else check_number(name, value, lo=None)
    # Floats: None encodes +inf (unset minimum / bound / stamp).
    if value is None:
        return _INF
    return check_number(name, value, lo=None)
