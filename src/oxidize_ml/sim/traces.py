"""Link capacity as a schedule of delivery opportunities (Mahimahi style).

Every capacity model of the simulator (a Mahimahi trace file, a constant
rate, step changes, the synthetic cellular generator) becomes one
`OpportunitySchedule`: the times at which the bottleneck may deliver one
MTU-sized (1500-byte) packet, repeating with a period. The bottleneck code
therefore has exactly one path, the one Mahimahi's ``LinkQueue`` takes.

Mahimahi format (``shared/traces/mahimahi/README.md``): one line per delivery
opportunity, each an integer timestamp in milliseconds from the start of the
trace; equal timestamps mean several packets in that millisecond; the trace
repeats when it reaches its end, shifted by its last timestamp (so a file
holding only ``1`` is a constant 12 Mbit/s link: 1500 bytes every 1 ms).

Opportunities that find the queue empty are lost (not banked), as in
Mahimahi.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from oxidize_ml._validate import check_number

MTU_BYTES = 1500
"""bytes one delivery opportunity carries (Mahimahi's packet size)"""
BITS_PER_OPPORTUNITY = MTU_BYTES * 8
MAX_TRACE_FILE_BYTES = 256 * 2**20
"""largest trace file `load_mahimahi` reads (the shared cellular traces are ~1 MB; a
file is read whole, so its size bounds the memory used)"""
MAX_TRACE_MS = 10**10
"""largest timestamp accepted, ms (~116 days): keeps times exact in float64 seconds and
far from int64 overflow"""


def load_mahimahi(path: str | PathLike[str]) -> np.ndarray:
    """Read a Mahimahi trace file: int64 millisecond timestamps, one per opportunity.

    Blank lines are ignored. Raises ``ValueError`` (naming the file and line)
    when the file cannot be read, is larger than `MAX_TRACE_FILE_BYTES`, is
    empty, a line is not a non-negative integer (or exceeds `MAX_TRACE_MS`),
    timestamps decrease, or the trace lasts zero milliseconds (its last
    timestamp is 0, which Mahimahi also rejects because the trace could never
    repeat).

    Parameters
    ----------
    path
        Any Mahimahi trace file (e.g. ``shared/traces/mahimahi/*.down``).

    Returns
    -------
    numpy.ndarray
        int64 ``[n]``, non-decreasing, ``n >= 1``, last value > 0.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            # read one byte past the limit: the file's reported size is not trusted
            raw = f.read(MAX_TRACE_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"Mahimahi trace {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"Mahimahi trace {str(p)!r} is a directory, not a file") from None
    except OSError as exc:
        raise ValueError(
            f"Mahimahi trace {str(p)!r} cannot be read: {exc.strerror or exc}"
        ) from None
    if len(raw) > MAX_TRACE_FILE_BYTES:
        raise ValueError(
            f"Mahimahi trace {str(p)!r} is larger than {MAX_TRACE_FILE_BYTES // 2**20} MiB; "
            "split it or check that it is a trace file"
        )
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"Mahimahi trace {str(p)!r} is not ASCII text") from None
    values: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        # isdigit() alone accepts Unicode digits; the text is ASCII here, so it is 0-9 only
        if not s.isdigit():
            raise ValueError(
                f"Mahimahi trace {str(p)!r} line {lineno}: expected a non-negative integer "
                f"millisecond timestamp, got {s[:40]!r}"
            )
        if len(s) > 11 or int(s) > MAX_TRACE_MS:
            raise ValueError(
                f"Mahimahi trace {str(p)!r} line {lineno}: timestamp {s[:40]} ms is beyond "
                f"the largest accepted ({MAX_TRACE_MS} ms)"
            )
        values.append(int(s))
    if not values:
        raise ValueError(f"Mahimahi trace {str(p)!r} is empty: it needs at least one timestamp")
    ms = np.asarray(values, dtype=np.int64)
    bad = np.flatnonzero(np.diff(ms) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"Mahimahi trace {str(p)!r}: timestamps must be non-decreasing, but entry {i + 1} "
            f"({int(ms[i])} ms) is before entry {i} ({int(ms[i - 1])} ms)"
        )
    if ms[-1] <= 0:
        raise ValueError(
            f"Mahimahi trace {str(p)!r} lasts 0 ms (last timestamp is 0); a trace must end "
            "after time 0 so that it can repeat"
        )
    return ms


@dataclass(frozen=True, slots=True, eq=False)
class OpportunitySchedule:
    """Delivery opportunities at ``times_s[i] + c * period_s`` for cycles ``c = 0, 1, ...``.

    Opportunity number ``g`` (global, counting from 0) is in cycle
    ``g // n`` at offset ``times_s[g % n]``; with offsets in ``[0, period_s]``
    the global sequence is non-decreasing, exactly like Mahimahi's repeating
    schedule. Build one with the constructors below rather than by hand.
    """

    times_s: np.ndarray
    """float64 offsets within one period, non-decreasing, in [0, period_s]"""
    period_s: float
    """length of one cycle, seconds (> 0)"""

    def __post_init__(self) -> None:
        t = np.ascontiguousarray(self.times_s, dtype=np.float64)
        if t.ndim != 1 or t.size == 0:
            raise ValueError(
                "a link needs at least one delivery opportunity per period; got "
                f"{t.size} (check the trace or the rates: all zero?)"
            )
        period = check_number("period_s", self.period_s)
        if period <= 0.0:
            raise ValueError(f"period_s must be > 0, got {self.period_s!r}")
        if not np.all(np.isfinite(t)) or t[0] < 0.0 or t[-1] > period:
            raise ValueError(f"opportunity offsets must lie in [0, period_s={period}]")
        if np.any(np.diff(t) < 0.0):
            raise ValueError("opportunity offsets must be non-decreasing")
        t.setflags(write=False)
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "period_s", period)

    # ---- constructors -------------------------------------------------------------------
    @classmethod
    def from_mahimahi_ms(cls, ms: np.ndarray | Sequence[int]) -> OpportunitySchedule:
        """Schedule of a Mahimahi trace (as returned by `load_mahimahi`); period = last stamp."""
        arr = np.asarray(ms, dtype=np.int64)
        if arr.size == 0:
            raise ValueError("Mahimahi trace is empty")
        if arr[-1] <= 0:
            raise ValueError("Mahimahi trace lasts 0 ms (last timestamp is 0)")
        return cls(arr.astype(np.float64) / 1000.0, float(arr[-1]) / 1000.0)

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> OpportunitySchedule:
        """`load_mahimahi` then `from_mahimahi_ms`."""
        return cls.from_mahimahi_ms(load_mahimahi(path))

    @classmethod
    def constant(cls, rate_bps: float) -> OpportunitySchedule:
        """A constant rate: one opportunity every ``1500 * 8 / rate_bps`` seconds."""
        rate = check_number("rate_bps", rate_bps)
        if rate <= 0.0:
            raise ValueError(f"rate_bps must be > 0, got {rate_bps!r}")
        spacing = BITS_PER_OPPORTUNITY / rate
        # One offset at the end of the period: opportunities at spacing, 2 spacing, ...
        # (the Mahimahi file "1" gives 1 ms, 2 ms, ...).
        return cls(np.array([spacing]), spacing)

    @classmethod
    def from_rates(
        cls,
        starts_s: Sequence[float] | np.ndarray,
        rates_bps: Sequence[float] | np.ndarray,
        horizon_s: float,
    ) -> OpportunitySchedule:
        """A piecewise-constant rate: ``rates_bps[i]`` from ``starts_s[i]`` to the next start.

        Opportunities fall where the integral of rate / (1500 * 8 bits) crosses
        an integer, so fractional credit carries across segments. The last
        segment ends at ``horizon_s``, which is also the period: the pattern
        repeats after ``horizon_s`` (make the horizon at least the run length).
        A rate of 0 is an outage (no opportunities).
        """
        horizon = check_number("horizon_s", horizon_s)
        if horizon <= 0.0:
            raise ValueError(f"horizon_s must be > 0, got {horizon_s!r}")
        starts = np.asarray(starts_s, dtype=np.float64)
        rates = np.asarray(rates_bps, dtype=np.float64)
        if starts.ndim != 1 or starts.size == 0 or starts.shape != rates.shape:
            raise ValueError("starts_s and rates_bps must be equal-length, non-empty sequences")
        if not (np.all(np.isfinite(starts)) and np.all(np.isfinite(rates))):
            raise ValueError("starts_s and rates_bps must be finite")
        if starts[0] != 0.0:
            raise ValueError(f"the first segment must start at 0 s, got {float(starts[0])}")
        if np.any(np.diff(starts) <= 0.0):
            raise ValueError("segment start times must be strictly increasing")
        if starts[-1] >= horizon:
            raise ValueError(f"every segment must start before horizon_s={horizon}")
        if np.any(rates < 0.0):
            raise ValueError("rates_bps must be >= 0")
        ends = np.append(starts[1:], horizon)
        credits = rates * (ends - starts) / BITS_PER_OPPORTUNITY
        before = np.concatenate(([0.0], np.cumsum(credits)[:-1]))
        pieces: list[np.ndarray] = []
        for s, r, c0, n in zip(starts, rates, before, credits, strict=True):
            if r <= 0.0:
                continue
            k = np.arange(math.floor(c0) + 1, math.floor(c0 + n) + 1, dtype=np.float64)
            if k.size:
                pieces.append(s + (k - c0) * (BITS_PER_OPPORTUNITY / r))
        if not pieces:
            raise ValueError("the rates give no delivery opportunity before horizon_s")
        times = np.minimum(np.concatenate(pieces), horizon)
        return cls(times, horizon)

    # ---- queries (not per packet: the simulator inlines these on lists) ----------------
    @property
    def n_per_period(self) -> int:
        return int(self.times_s.size)

    @property
    def mean_rate_bps(self) -> float:
        """Average capacity over one period, bits per second."""
        return self.times_s.size * BITS_PER_OPPORTUNITY / self.period_s

    def count_until(self, t_s: float) -> int:
        """Number of opportunities at times ``<= t_s`` (0 for negative times)."""
        if t_s < 0.0:
            return 0
        cycle = math.floor(t_s / self.period_s)
        offset = t_s - cycle * self.period_s
        return cycle * self.times_s.size + int(np.searchsorted(self.times_s, offset, side="right"))

    def count_between(self, t0_s: float, t1_s: float) -> int:
        """Number of opportunities in the half-open interval ``(t0_s, t1_s]``."""
        if t1_s <= t0_s:
            return 0
        return self.count_until(t1_s) - self.count_until(t0_s)

    def opportunity_times(self, t0_s: float, t1_s: float) -> np.ndarray:
        """All opportunity times in ``(t0_s, t1_s]`` (for tests and plots)."""
        n = self.times_s.size
        g0 = self.count_until(t0_s)
        g1 = self.count_until(t1_s)
        g = np.arange(g0, g1, dtype=np.int64)
        return (g // n) * self.period_s + self.times_s[g % n]

    def first_at_or_after(self, t_s: float) -> int:
        """Global index of the first opportunity at time ``>= t_s``."""
        times = self.times_s.tolist()
        return first_index_at_or_after(times, self.period_s, max(t_s, 0.0))


def trace_window_schedule(ms: np.ndarray | Sequence[int], start_ms: int) -> OpportunitySchedule:
    """The schedule of a Mahimahi trace seen from ``start_ms`` on.

    Time 0 of the result is ``start_ms`` of the trace; the trace repeats as
    usual, so a window that runs past the trace's end continues with its
    beginning: opportunity ``t >= start_ms`` of the file is at ``t - start_ms``,
    one before (``t < start_ms``) comes back at ``t + period - start_ms``. The
    period is unchanged, and ``start_ms`` is taken modulo it; ``start_ms = 0``
    gives exactly `OpportunitySchedule.from_mahimahi_ms`.

    Parameters
    ----------
    ms
        int64 ``[n]`` timestamps as returned by `load_mahimahi`.
    start_ms
        Where the window starts in the trace, ms (>= 0).
    """
    arr = np.asarray(ms, dtype=np.int64)
    if arr.ndim != 1 or arr.size == 0 or arr[-1] <= 0:
        raise ValueError("ms must be a non-empty Mahimahi trace lasting more than 0 ms")
    if isinstance(start_ms, bool) or not isinstance(start_ms, int | np.integer):
        raise TypeError(f"start_ms must be an int, got {type(start_ms).__name__}")
    if start_ms < 0:
        raise ValueError(f"start_ms must be >= 0, got {start_ms}")
    period = int(arr[-1])
    o = int(start_ms) % period
    # from o on: [0, period - o]; the next cycle's start: [period - o, period); concatenated
    # they stay non-decreasing because arr[-1] = period > o
    shifted = np.concatenate((arr[arr >= o] - o, arr[arr < o] + (period - o)))
    return OpportunitySchedule(shifted.astype(np.float64) / 1000.0, period / 1000.0)


def first_index_at_or_after(times: list[float], period: float, t: float) -> int:
    """Global index of the first opportunity at or after ``t`` (``times`` as a list)."""
    n = len(times)
    cycle = math.floor(t / period)
    off = t - cycle * period
    if cycle > 0 and off <= times[-1] - period:
        # t is exactly a cycle boundary and the previous cycle ends with an opportunity there
        cycle -= 1
        off += period
    i = bisect_left(times, off)
    if i == n:
        cycle += 1
        i = 0
    return cycle * n + i


def count_at_or_before(times: list[float], period: float, t: float) -> int:
    """`OpportunitySchedule.count_until` on a list (no numpy scalars)."""
    if t < 0.0:
        return 0
    cycle = math.floor(t / period)
    return cycle * len(times) + bisect_right(times, t - cycle * period)


# ---- synthetic cellular-like capacity ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellularConfig:
    """Parameters of the synthetic cellular-like capacity generator.

    Model (documented so results can be reproduced and criticised):

    1. A continuous-time Markov chain over ``state_rates_bps`` (e.g. poor,
       fair, good radio conditions) with exponentially distributed dwell
       times of mean ``mean_dwell_s``; on leaving a state the next state is a
       neighbour (index +-1, equally likely, reflected at the ends), so the
       rate drifts rather than jumping from worst to best.
    2. Within a state the rate is re-drawn every ``slot_s`` as the state rate
       times a log-normal factor ``exp(sigma Z - sigma^2 / 2)`` (mean 1), the
       fast fading and scheduler noise seen in LTE traces.
    3. Outages (handover, deep fade): they start as a Poisson process of rate
       ``outage_rate_per_s`` and last an exponential time of mean
       ``mean_outage_s``; the rate is 0 during an outage.

    The result is a piecewise-constant rate turned into delivery
    opportunities by `OpportunitySchedule.from_rates`.
    """

    state_rates_bps: tuple[float, ...] = (2e6, 6e6, 12e6, 20e6)
    """mean rate of each Markov state, bits per second (ordered poor -> good)"""
    mean_dwell_s: float = 2.0
    """mean time spent in a state before moving to a neighbour, seconds"""
    slot_s: float = 0.02
    """how often the log-normal fluctuation is re-drawn, seconds"""
    sigma: float = 0.35
    """standard deviation of log(rate) within a state (0 = no fluctuation)"""
    outage_rate_per_s: float = 0.05
    """outages per second (Poisson)"""
    mean_outage_s: float = 0.3
    """mean outage length, seconds"""
    max_rate_bps: float = 100e6
    """clip for the fluctuating rate, bits per second"""

    def __post_init__(self) -> None:
        if len(self.state_rates_bps) == 0:
            raise ValueError("state_rates_bps must hold at least one rate")
        for i, r in enumerate(self.state_rates_bps):
            if check_number(f"state_rates_bps[{i}]", r) <= 0.0:
                raise ValueError(f"state_rates_bps[{i}] must be > 0, got {r!r}")
        for name in ("mean_dwell_s", "slot_s", "mean_outage_s", "max_rate_bps"):
            if check_number(name, getattr(self, name)) <= 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        check_number("sigma", self.sigma, hi=3.0)
        check_number("outage_rate_per_s", self.outage_rate_per_s)


def synthetic_cellular_rates(
    config: CellularConfig, duration_s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one realisation of the `CellularConfig` model.

    Returns
    -------
    (starts_s, rates_bps)
        float64 ``[m]`` slot start times (from 0, every ``slot_s``) and the
        rate in each slot; feed them to `OpportunitySchedule.from_rates`.
    """
    duration = check_number("duration_s", duration_s)
    if duration <= 0.0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    n_slots = max(1, math.ceil(duration / config.slot_s))
    starts = np.arange(n_slots, dtype=np.float64) * config.slot_s
    # 1. Markov state per slot.
    n_states = len(config.state_rates_bps)
    state = np.empty(n_slots, dtype=np.int64)
    s = int(rng.integers(n_states))
    t_next = rng.exponential(config.mean_dwell_s)
    for j in range(n_slots):
        t = starts[j]
        while t >= t_next:
            if n_states > 1:
                step = 1 if rng.random() < 0.5 else -1
                s = s + step
                if s < 0:
                    s = 1
                elif s >= n_states:
                    s = n_states - 2
            t_next += rng.exponential(config.mean_dwell_s)
        state[j] = s
    means = np.asarray(config.state_rates_bps, dtype=np.float64)[state]
    # 2. Mean-one log-normal fluctuation per slot.
    sig = config.sigma
    factor = np.exp(sig * rng.standard_normal(n_slots) - 0.5 * sig * sig)
    rates = np.minimum(means * factor, config.max_rate_bps)
    # 3. Outages.
    if config.outage_rate_per_s > 0.0:
        t = rng.exponential(1.0 / config.outage_rate_per_s)
        while t < duration:
            length = rng.exponential(config.mean_outage_s)
            lo = int(t / config.slot_s)
            hi = math.ceil((t + length) / config.slot_s)
            rates[lo:hi] = 0.0
            t += length + rng.exponential(1.0 / config.outage_rate_per_s)
    return starts, rates
