"""Hyperparameters of the congestion controllers that the optional compiled build compiles.

`CwndLimits`, `BbrConfig`, `EnvelopeConfig` and `StateConfig` are read by
`actions`, `bbr`, `envelope` and `state`, which ``OXIDIZE_ML_COMPILE=1`` compiles with mypyc (see
``docs/decisions.md``, "Compiled build"). The configs stay plain Python here:
inside a compiled module a dataclass's constructor checks field types itself,
with a message that does not name the field, and its ``==`` falls back to
identity, so a saved state's config would never match. Every name stays
importable from its controller's module as before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.features import N_FEATURES

__all__ = ["N_DERIVED", "BbrConfig", "CwndLimits", "EnvelopeConfig", "StateConfig"]

N_DERIVED = 4
"""derived features per history interval in the congestion state (see `state`)"""


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


@dataclass(frozen=True, slots=True)
class BbrConfig:
    """Hyperparameters of `BbrFallback`; defaults are BBR v3's (REFERENCES.md section 2).

    Gains are unitless multipliers of the estimated BDP / bandwidth.
    """

    startup_pacing_gain: float = 2.77
    """STARTUP pacing gain, 4 ln 2: doubles the delivery rate per round (v3)"""
    startup_cwnd_gain: float = 2.0
    """STARTUP (and DRAIN) cwnd gain (v3: 2); caps the STARTUP window at 2 BDP"""
    drain_pacing_gain: float = 0.35
    """DRAIN gain, about 1 / 2.885: empties the STARTUP queue in about a round
    (draft-ietf-ccwg-bbr BBRDrainPacingGain; tcp_bbr.c v1 1000/2885)"""
    cwnd_gain: float = 2.0
    """PROBE_BW cwnd gain (v3: 2); caps every PROBE_BW phase gain"""
    probe_up_gain: float = 1.25
    """PROBE_BW UP gain: push 25 % above the BDP to look for more bandwidth"""
    probe_down_gain: float = 0.90
    """PROBE_BW DOWN gain: drain the queue the UP phase built"""
    probe_cruise_gain: float = 1.0
    """PROBE_BW CRUISE gain: use the pipe, keep the queue empty"""
    probe_refill_gain: float = 1.0
    """PROBE_BW REFILL gain: refill the pipe for one round before probing"""
    full_bw_growth: float = 1.25
    """max_bw must grow by this factor within ``full_bw_rounds`` rounds, or the
    pipe is considered full and STARTUP ends"""
    full_bw_rounds: int = 3
    """rounds without ``full_bw_growth`` growth that end STARTUP"""
    loss_threshold: float = 0.02
    """a round whose mean loss ratio exceeds this is lossy (v3: 2 %)"""
    loss_min_packets: float = 2.0
    """a round is lossy only if it also lost about this many packets (estimated
    from its loss ratio and delivered bytes), so a single random loss in a
    small round is not read as > 2 % (v3 similarly waits for 6 loss events
    before leaving STARTUP on loss), >= 0"""
    beta: float = 0.7
    """on a lossy round ``inflight_hi`` becomes beta x the round's peak in
    flight (v3: cut by 0.3)"""
    headroom: float = 0.15
    """share of ``inflight_hi`` left free in CRUISE and PROBE_RTT so other
    flows can enter (v3: 15 %)"""
    bw_filter_rounds: int = 10
    """length of the max-bandwidth filter, in (non-ignored) rounds"""
    min_rtt_window_s: float = 10.0
    """min_rtt is replaced by a newer, higher sample after this many seconds"""
    probe_rtt_interval_s: float = 5.0
    """enter PROBE_RTT when no RTT sample matched or beat the recent minimum
    for this long, seconds (v3 probe_rtt_win: 5 s)"""
    probe_rtt_duration_s: float = 0.2
    """time spent at the PROBE_RTT window, seconds (and at least one round)"""
    probe_rtt_cwnd_gain: float = 0.5
    """PROBE_RTT window as a fraction of the BDP (v3: half the BDP)"""
    min_inflight_packets: int = 4
    """smallest window target, packets (tcp_bbr.c bbr_cwnd_min_target: 4)"""
    probe_wait_min_s: float = 2.0
    """shortest wait between bandwidth probes, seconds (v3: 2 s)"""
    probe_wait_max_s: float = 3.0
    """longest wait between bandwidth probes, seconds (v3: 2 s + up to 1 s)"""
    probe_max_rounds: int = 63
    """also probe after min(BDP in packets, this) rounds, for Reno/CUBIC
    coexistence (v3 bbr_bw_probe_max_rounds)"""
    extra_acked_window_rounds: int = 5
    """rounds per slot of the two-slot ack-aggregation max filter (tcp_bbr.c: 5)"""
    extra_acked_max_s: float = 0.1
    """ack-aggregation allowance is capped at this much time at max_bw, seconds
    (tcp_bbr.c bbr_extra_acked_max_us: 100 ms)"""
    quantization_margin: float = 0.05
    """added to every gain (x BDP) so the 5 %-step window settles at or above
    its goal (the analogue of tcp_bbr.c's quantization budget), >= 0"""
    app_limited_fraction: float = 0.5
    """an interval is app-limited when in-flight bytes are below this share of
    cwnd; its round then only enters the bandwidth filter if it raises it"""
    persistent_loss_rate: float = 0.5
    """loss ratio at or above which an interval counts toward persistent
    congestion"""
    persistent_congestion_srtts: float = 3.0
    """persistent congestion after this many smoothed RTTs of such intervals
    (RFC 9002 uses three PTOs)"""
    min_rtt_tolerance: float = 0.02
    """an RTT sample within this share above the recent minimum confirms it (the
    sample is the smoothed RTT, which a queue-free path approaches but never
    undercuts), so a path without a standing queue is not sent into PROBE_RTT, in [0, 1)"""

    def __post_init__(self) -> None:
        _check_positive("startup_pacing_gain", self.startup_pacing_gain)
        _check_positive("startup_cwnd_gain", self.startup_cwnd_gain)
        if min(self.startup_pacing_gain, self.startup_cwnd_gain) <= 1.0:
            raise ValueError(
                "startup_pacing_gain and startup_cwnd_gain must be > 1 for STARTUP to grow, "
                f"got {self.startup_pacing_gain!r} and {self.startup_cwnd_gain!r}"
            )
        _check_open_unit("drain_pacing_gain", self.drain_pacing_gain, closed_hi=False)
        _check_positive("cwnd_gain", self.cwnd_gain)
        up = check_number("probe_up_gain", self.probe_up_gain)
        if up <= 1.0:
            raise ValueError(f"probe_up_gain must be > 1, got {self.probe_up_gain!r}")
        _check_open_unit("probe_down_gain", self.probe_down_gain, closed_hi=False)
        _check_positive("probe_cruise_gain", self.probe_cruise_gain)
        _check_positive("probe_refill_gain", self.probe_refill_gain)
        for name in ("probe_up_gain", "probe_cruise_gain", "probe_refill_gain"):
            if getattr(self, name) > self.cwnd_gain:
                raise ValueError(
                    f"{name} must be <= cwnd_gain ({self.cwnd_gain!r}), got {getattr(self, name)!r}"
                )
        if check_number("full_bw_growth", self.full_bw_growth) <= 1.0:
            raise ValueError(f"full_bw_growth must be > 1, got {self.full_bw_growth!r}")
        check_int("full_bw_rounds", self.full_bw_rounds, lo=1)
        _check_open_unit("loss_threshold", self.loss_threshold, closed_hi=False)
        check_number("loss_min_packets", self.loss_min_packets)
        _check_open_unit("beta", self.beta, closed_hi=False)
        if not 0.0 <= check_number("headroom", self.headroom) < 1.0:
            raise ValueError(f"headroom must be in [0, 1), got {self.headroom!r}")
        check_int("bw_filter_rounds", self.bw_filter_rounds, lo=1, hi=1000)
        _check_positive("min_rtt_window_s", self.min_rtt_window_s)
        _check_positive("probe_rtt_interval_s", self.probe_rtt_interval_s)
        if self.probe_rtt_interval_s > self.min_rtt_window_s:
            raise ValueError(
                f"probe_rtt_interval_s ({self.probe_rtt_interval_s!r}) must be <= "
                f"min_rtt_window_s ({self.min_rtt_window_s!r})"
            )
        _check_positive("probe_rtt_duration_s", self.probe_rtt_duration_s)
        if self.probe_rtt_duration_s >= self.probe_rtt_interval_s:
            raise ValueError(
                f"probe_rtt_duration_s ({self.probe_rtt_duration_s!r}) must be < "
                f"probe_rtt_interval_s ({self.probe_rtt_interval_s!r})"
            )
        _check_open_unit("probe_rtt_cwnd_gain", self.probe_rtt_cwnd_gain, closed_hi=True)
        check_int("min_inflight_packets", self.min_inflight_packets, lo=1)
        _check_positive("probe_wait_min_s", self.probe_wait_min_s)
        if check_number("probe_wait_max_s", self.probe_wait_max_s) < self.probe_wait_min_s:
            raise ValueError(
                f"probe_wait_max_s ({self.probe_wait_max_s!r}) must be >= "
                f"probe_wait_min_s ({self.probe_wait_min_s!r})"
            )
        check_int("probe_max_rounds", self.probe_max_rounds, lo=1)
        check_int("extra_acked_window_rounds", self.extra_acked_window_rounds, lo=1)
        check_number("extra_acked_max_s", self.extra_acked_max_s)
        check_number("quantization_margin", self.quantization_margin, hi=1.0)
        check_number("app_limited_fraction", self.app_limited_fraction, hi=1.0)
        _check_open_unit("persistent_loss_rate", self.persistent_loss_rate, closed_hi=True)
        _check_positive("persistent_congestion_srtts", self.persistent_congestion_srtts)
        if not 0.0 <= check_number("min_rtt_tolerance", self.min_rtt_tolerance) < 1.0:
            raise ValueError(f"min_rtt_tolerance must be in [0, 1), got {self.min_rtt_tolerance!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BbrConfig:
        """Rebuild from `to_dict` output; unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown BbrConfig fields {unknown}; allowed: {sorted(names)}")
        return cls(**d)


def _check_positive(name: str, value: object) -> None:
    if check_number(name, value) <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_open_unit(name: str, value: object, *, closed_hi: bool) -> None:
    v = check_number(name, value, hi=1.0)
    if v <= 0.0 or (not closed_hi and v >= 1.0):
        allowed = "(0, 1]" if closed_hi else "(0, 1)"
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")


@dataclass(frozen=True, slots=True)
class EnvelopeConfig:
    """Hyperparameters of `DeliveryEnvelope`."""

    gain: float = 2.5
    """the window may reach ``gain`` x the BDP estimate (BBR cwnd_gain 2 + slack), > 1"""
    validated_fraction: float = 0.5
    """the flow is window-limited when bytes in flight >= this share of cwnd (RFC 7661
    pipeACK >= cwnd / 2); only then may the window grow, in (0, 1]"""
    window_s: float = 10.0
    """how long a BDP sample stays valid, seconds (BBR's 10 s bandwidth window)"""
    bucket_s: float = 1.0
    """granularity of the windowed BDP max filter, seconds"""
    default_interval_s: float = 0.010
    """interval length assumed for the first observation (no previous time), seconds"""
    max_interval_s: float = 1.0
    """longest interval credited with delivered bytes: a caller's stale clock or a long
    pause cannot turn one rate sample into a large growth budget, seconds"""

    def __post_init__(self) -> None:
        if check_number("gain", self.gain) <= 1.0:
            raise ValueError(f"gain must be > 1, got {self.gain!r}")
        v = check_number("validated_fraction", self.validated_fraction, hi=1.0)
        if v <= 0.0:
            raise ValueError(
                f"validated_fraction must be in (0, 1], got {self.validated_fraction!r}"
            )
        if check_number("window_s", self.window_s) <= 0.0:
            raise ValueError(f"window_s must be > 0, got {self.window_s!r}")
        if not 0.0 < check_number("bucket_s", self.bucket_s) <= self.window_s:
            raise ValueError(f"bucket_s must be in (0, window_s], got {self.bucket_s!r}")
        if check_number("default_interval_s", self.default_interval_s) <= 0.0:
            raise ValueError(f"default_interval_s must be > 0, got {self.default_interval_s!r}")
        if check_number("max_interval_s", self.max_interval_s) <= 0.0:
            raise ValueError(f"max_interval_s must be > 0, got {self.max_interval_s!r}")


@dataclass(frozen=True, slots=True)
class StateConfig:
    history: int = 4
    """intervals of derived features kept (newest first)"""
    window_s: float = 10.0
    """window of the max-throughput and min-RTT filters, seconds"""
    bucket_s: float = 1.0
    """granularity of the windowed filters, seconds"""

    def __post_init__(self) -> None:
        check_int("history", self.history, lo=1, hi=64)
        check_number("window_s", self.window_s, lo=0.01)
        check_number("bucket_s", self.bucket_s, lo=0.001)
        if self.bucket_s > self.window_s:
            raise ValueError("bucket_s must be <= window_s")

    @property
    def size(self) -> int:
        return N_FEATURES + N_DERIVED * self.history
