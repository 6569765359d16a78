"""Held-out congestion evaluation on windows of Mahimahi traces, ratios to CUBIC.

A single run from the start of each trace hides the cases where controllers
fail on real cellular links (issue 10): a flow that starts while the link
delivers nothing, an outage in the middle of a run, a long RTT. This
evaluation starts one flow at several points of every trace and compares
every controller with CUBIC on exactly the same windows.

Windows
-------
For each trace of period ``P``: ``n_windows`` windows starting at
``k P / n_windows`` (0, 1/3 and 2/3 of the trace by default), plus, when
``silent_start_windows`` is on, one window starting right after the last
delivery before the trace's longest silence of at least ``silence_ms``
(the flow then starts into that silence). Each window lasts ``duration_s``
(the trace repeats past its end, as in Mahimahi) and runs once per base RTT
of ``rtts_ms``, with a drop-tail buffer of ``buffer_bdp`` times the trace's
mean rate x the RTT. A window is flagged

- **silent start** when its first delivery opportunity comes ``silence_ms``
  or more after it starts, and
- **outage** when it contains a gap of ``silence_ms`` or more between
  opportunities (a silent start counts).

Flagged windows are kept: they are the point.

Per-window metrics (one bulk flow)
----------------------------------
- **goodput_mbps**: acknowledged bytes x 8 / window length.
- **queue_delay_p95_ms**: 95th percentile of the delivered packets' one-way
  delay minus the propagation delay (what the controller added); nan when
  nothing was delivered.
- **loss**: lost / (acknowledged + lost), where lost includes the packets
  the link dropped that the sender had not declared lost when the window
  ended, so a flow stuck in an outage cannot show 0 %. With a simulator
  that reports those (``packets_lost_undetected``) this is its
  ``loss_rate``; with one that does not, every packet not acknowledged by
  the end counts (an upper bound: it includes the packets legitimately in
  flight, at most about ``1 + buffer_bdp`` BDP, under 1 % of a 30-s
  window at these traces' rates).
- **declared_loss**: declared losses / (acknowledged + declared).
- **stranded**: packets neither acknowledged nor declared lost at the end
  (queued, travelling or dropped unnoticed).
- **power**: goodput (Mbit/s) / p95 one-way delay (s), Kleinrock's power.

Aggregates (per controller, over the units = window x RTT)
-----------------------------------------------------------
- **goodput_ratio_vs_cubic**: sum of its goodputs / sum of CUBIC's (ratio of
  mean goodputs).
- **queue_delay_ratio_vs_cubic**: mean p95 queueing delay / CUBIC's, over the
  units where both delivered something.
- **worst_goodput_ratio_vs_cubic**: the lowest per-unit goodput ratio.
- **max_loss**: the highest per-unit loss.
- paired bootstrap 95 % intervals of both mean ratios (units resampled with
  replacement, the same resamples for every controller; seeded),
  ``loss_violations`` (units whose loss exceeds max(10 %, 2x CUBIC's), the
  bound of issue 10), ``windows_below`` (units under 0.8x CUBIC's goodput)
  and ``power_wins_vs_fallback`` (share of units with higher power than the
  BBR-style fallback).
- **power_ratio_vs_default** with its paired 95 % interval: mean power over
  the default's (`MlEngine()` as configured). Issue 10's default rule needs
  a learned controller to beat the default with 95 % confidence: an interval
  entirely above 1.

Seeds
-----
Traces carry no randomness, but controllers may (the engine's RNG, a policy's
exploration): unit ``i`` runs with seed ``EVAL_SEED_BASE + 100 * seed + i``
for every controller, so controllers are compared on identical runs, and the
bootstrap draws from ``numpy.random.default_rng(seed)``. The same seed gives
the same result, byte for byte in `to_dict`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike, fspath
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.evaluation.bootstrap import (
    DEFAULT_ROUNDS,
    bootstrap_indices,
    paired_ratio_ci,
    ratio_of_means,
)
from oxidize_ml.evaluation.congestion_controllers import resolve_controllers
from oxidize_ml.evaluation.formatting import fixed as _fmt
from oxidize_ml.evaluation.formatting import interval as _ci
from oxidize_ml.evaluation.formatting import json_number as _num
from oxidize_ml.evaluation.formatting import percent
from oxidize_ml.sim.controllers.registry import ControllerFactory, ControllerRegistry
from oxidize_ml.sim.traces import BITS_PER_OPPORTUNITY, trace_window_schedule

_pct = functools.partial(percent, digits=1)  # the tables' format

REFERENCE = "cubic"
"""every ratio is to this controller, run on the same windows"""
FALLBACK = "bbr"
"""the heuristic the engine falls back to (power comparisons)"""
SEED_STRIDE = 100
MAX_DURATION_S = 3600.0
"""longest window accepted, seconds (bounds the simulation's memory and time)"""
MAX_WINDOWS = 100
"""most evenly spaced windows per trace"""
MAX_RTTS = 10
MAX_TRACES = 1000
MAX_PACKETS_PER_WINDOW = 20_000_000
"""most delivery opportunities one window may offer (a trace's rate x the window length):
simulation time and memory grow with the packets a run carries (~20 s of CPU at this bound),
and a trace's rate comes from the user's file"""
LOSS_FLOOR = 0.10
"""loss above max(LOSS_FLOOR, LOSS_FACTOR x CUBIC's) on a unit is a violation (issue 10)"""
LOSS_FACTOR = 2.0
WORST_RATIO = 0.80
"""a unit under this share of CUBIC's goodput is counted in ``windows_below``"""

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, label)``, called after each run"""


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """What the held-out window evaluation runs."""

    rtts_ms: tuple[float, ...] = (40.0, 100.0)
    """base round-trip times, ms (each window runs once per RTT)"""
    duration_s: float = 30.0
    """length of each window, simulated seconds"""
    n_windows: int = 3
    """evenly spaced windows per trace (starts at k / n_windows of its length)"""
    buffer_bdp: float = 2.0
    """drop-tail buffer in BDPs of the trace's mean rate x the RTT (cellular queues are deep)"""
    silent_start_windows: bool = True
    """add a window starting into each trace's longest silence of >= silence_ms"""
    silence_ms: int = 500
    """a gap between delivery opportunities this long is a silence / outage, ms"""
    bootstrap_rounds: int = DEFAULT_ROUNDS
    """paired bootstrap replicates of the aggregate ratios"""

    def __post_init__(self) -> None:
        rtts = tuple(self.rtts_ms)
        if not rtts:
            raise ValueError("rtts_ms needs at least one RTT")
        if len(rtts) > MAX_RTTS:
            raise ValueError(f"rtts_ms takes at most {MAX_RTTS} RTTs, got {len(rtts)}")
        for i, r in enumerate(rtts):
            v = check_number(f"rtts_ms[{i}]", r, hi=10_000.0)
            if v <= 0.0:
                raise ValueError(f"rtts_ms[{i}] must be > 0, got {r!r}")
        if len(set(rtts)) != len(rtts):
            raise ValueError(f"rtts_ms has duplicates: {list(rtts)}")
        object.__setattr__(self, "rtts_ms", tuple(float(r) for r in rtts))
        if check_number("duration_s", self.duration_s, hi=MAX_DURATION_S) <= 0.0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s!r}")
        check_int("n_windows", self.n_windows, lo=1, hi=MAX_WINDOWS)
        if check_number("buffer_bdp", self.buffer_bdp, hi=100.0) <= 0.0:
            raise ValueError(f"buffer_bdp must be > 0, got {self.buffer_bdp!r}")
        if not isinstance(self.silent_start_windows, bool):
            raise TypeError(
                "silent_start_windows must be a bool, got "
                f"{type(self.silent_start_windows).__name__}"
            )
        check_int("silence_ms", self.silence_ms, lo=1, hi=3_600_000)
        check_int("bootstrap_rounds", self.bootstrap_rounds, lo=100, hi=100_000)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rtts_ms"] = list(self.rtts_ms)
        return d


# ---------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class TraceWindow:
    """One window of one trace (before choosing the RTT)."""

    trace: str
    """label of the trace (its file name; made unique within a run)"""
    path: str
    start_s: float
    """where the window starts in the trace, seconds"""
    duration_s: float
    kind: str
    """"even" (k / n of the trace) or "silent-start" (starts into its longest silence)"""
    first_opportunity_ms: int
    """ms from the window's start to the first delivery opportunity (capped at its length)"""
    longest_gap_ms: int
    """longest stretch without a delivery opportunity inside the window, ms (from its start
    to the first opportunity and from the last one to its end count)"""
    capacity_mbps: float
    """mean capacity over the window, Mbit/s"""
    silent_start: bool
    outage: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _longest_silence(ms: np.ndarray) -> tuple[int, int]:
    """(where a flow starts into it, length) of the longest gap between consecutive
    opportunities of one period, in ms; the wrap from the end to the next cycle's
    start counts (its flow starts at 0)."""
    gaps = np.diff(ms)
    wrap = int(ms[0])  # from ms[-1] = period to ms[0] + period
    if gaps.size == 0 or wrap >= int(gaps.max()):
        return 0, wrap
    i = int(np.argmax(gaps))
    # 1 ms after the last opportunity before the gap: that one is already past
    return int(ms[i]) + 1, int(gaps[i])


def describe_window(
    trace: str,
    path: str,
    ms: np.ndarray,
    start_ms: int,
    duration_s: float,
    kind: str,
    silence_ms: int,
) -> TraceWindow:
    """Flags and capacity of the window of ``ms`` starting at ``start_ms``."""
    sched = trace_window_schedule(ms, start_ms)
    dur_ms = round(duration_s * 1000.0)
    period_ms = int(ms[-1])
    # offsets within one period, in ms: at most len(ms) values, no per-window allocation
    # beyond the trace itself
    offs = np.rint(sched.times_s * 1000.0).astype(np.int64)
    within = offs[offs <= min(dur_ms, period_ms)]
    first = int(within[0]) if within.size else dur_ms
    first = min(first, dur_ms)
    if dur_ms <= period_ms:
        edges = np.concatenate(([0], within, [dur_ms]))
        longest = int(np.max(np.diff(edges)))
    else:
        # the window covers the whole trace: every gap of the trace is inside it
        longest = max(first, _longest_silence(ms)[1])
    n_opp = sched.count_between(-1.0, duration_s)
    return TraceWindow(
        trace=trace,
        path=path,
        start_s=start_ms / 1000.0,
        duration_s=duration_s,
        kind=kind,
        first_opportunity_ms=first,
        longest_gap_ms=longest,
        capacity_mbps=n_opp * BITS_PER_OPPORTUNITY / duration_s / 1e6,
        silent_start=first >= silence_ms,
        outage=longest >= silence_ms,
    )


def plan_windows(trace: str, path: str, ms: np.ndarray, config: WindowConfig) -> list[TraceWindow]:
    """The windows of one trace (see the module docstring)."""
    period_ms = int(ms[-1])
    starts: list[tuple[int, str]] = []
    for k in range(config.n_windows):
        s = (k * period_ms) // config.n_windows
        if all(s != x for x, _ in starts):
            starts.append((s, "even"))
    if config.silent_start_windows:
        at, length = _longest_silence(ms)
        s = at % period_ms
        if length >= config.silence_ms and all(s != x for x, _ in starts):
            starts.append((s, "silent-start"))
    return [
        describe_window(trace, path, ms, s, config.duration_s, kind, config.silence_ms)
        for s, kind in starts
    ]


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class WindowRun:
    """One controller on one window at one RTT."""

    unit: int
    """index of (window, RTT) in `WindowEvalResult.units`"""
    controller: str
    seed: int
    goodput_mbps: float
    queue_delay_p95_ms: float
    delay_p95_ms: float
    loss: float
    """lost (declared and undetected) / (acked + lost); see the module docstring"""
    declared_loss: float
    """declared losses / (acked + declared)"""
    stranded: int
    """packets neither acknowledged nor declared lost when the window ended"""
    packets_sent: int
    power: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _num(getattr(self, k)) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Unit:
    """A window at one RTT: what every controller runs on."""

    window: int
    """index into `WindowEvalResult.windows`"""
    rtt_ms: float
    seed: int


@dataclass(frozen=True, slots=True)
class ControllerAggregate:
    """One controller against CUBIC over every unit (module docstring)."""

    controller: str
    goodput_ratio_vs_cubic: float
    goodput_ratio_ci: tuple[float, float]
    queue_delay_ratio_vs_cubic: float
    queue_delay_ratio_ci: tuple[float, float]
    worst_goodput_ratio_vs_cubic: float
    worst_unit: int
    max_loss: float
    max_loss_unit: int
    mean_goodput_mbps: float
    mean_queue_delay_p95_ms: float
    loss_violations: int
    windows_below: int
    """units under `WORST_RATIO` x CUBIC's goodput"""
    power_wins_vs_fallback: float | None
    power_ratio_vs_default: float = math.nan
    """mean power / the default's (nan without a default)"""
    power_ratio_vs_default_ci: tuple[float, float] = (math.nan, math.nan)
    """share of units where its power beats the fallback's (None without the fallback)"""

    def summary(self) -> dict[str, float | None]:
        """The four keys of the ``evaluate congestion`` summary."""
        return {
            "goodput_ratio_vs_cubic": _num(self.goodput_ratio_vs_cubic),
            "queue_delay_ratio_vs_cubic": _num(self.queue_delay_ratio_vs_cubic),
            "worst_goodput_ratio_vs_cubic": _num(self.worst_goodput_ratio_vs_cubic),
            "max_loss": _num(self.max_loss),
        }

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in self.__slots__}
        d["goodput_ratio_ci"] = [_num(x) for x in self.goodput_ratio_ci]
        d["queue_delay_ratio_ci"] = [_num(x) for x in self.queue_delay_ratio_ci]
        d["power_ratio_vs_default_ci"] = [_num(x) for x in self.power_ratio_vs_default_ci]
        return {k: _num(v) for k, v in d.items()}


@dataclass(frozen=True, slots=True)
class WindowEvalResult:
    """Everything `run_windows` measured; `to_dict` is JSON-able and deterministic."""

    seed: int
    config: WindowConfig
    controllers: tuple[str, ...]
    default: str | None
    """the controller `MlEngine()` runs by default ("engine" when evaluated)"""
    engine_policy: str
    """the congestion policy `MlEngine()` loads by default (e.g. "bbr")"""
    windows: tuple[TraceWindow, ...]
    units: tuple[Unit, ...]
    runs: tuple[WindowRun, ...]
    aggregates: tuple[ControllerAggregate, ...]
    wall_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    # -- lookups -------------------------------------------------------------------
    def run_of(self, unit: int, controller: str) -> WindowRun:
        for r in self.runs:
            if r.unit == unit and r.controller == controller:
                return r
        raise KeyError(f"no run of {controller!r} on unit {unit}")

    def aggregate(self, controller: str) -> ControllerAggregate:
        for a in self.aggregates:
            if a.controller == controller:
                return a
        raise KeyError(f"no aggregate for {controller!r}; controllers: {list(self.controllers)}")

    def unit_label(self, unit: int) -> str:
        u = self.units[unit]
        w = self.windows[u.window]
        return f"{w.trace} @{w.start_s:g} s, {u.rtt_ms:g} ms"

    # -- output --------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """``{"default": NAME, "controllers": {NAME: {four ratios}}}`` (issue 11)."""
        return {
            "default": self.default,
            "controllers": {a.controller: a.summary() for a in self.aggregates},
        }

    def targets(self) -> dict[str, Any]:
        """Issue 10's targets, met or not, for the default and each learned controller."""
        out: dict[str, Any] = {}
        for a in self.aggregates:
            if a.controller == self.default:
                goals = {
                    "goodput_ratio_vs_cubic": (">=", 0.95),
                    "queue_delay_ratio_vs_cubic": ("<=", 0.70),
                }
            elif a.controller not in ("reno", REFERENCE, FALLBACK, "engine"):
                goals = {
                    "goodput_ratio_vs_cubic": (">=", 1.00),
                    "queue_delay_ratio_vs_cubic": ("<=", 0.60),
                    "power_wins_vs_fallback": (">=", 0.60),
                }
            else:
                continue
            goals["worst_goodput_ratio_vs_cubic"] = (">=", WORST_RATIO)
            goals["loss_violations"] = ("<=", 0)
            rows = {}
            for key, (op, bound) in goals.items():
                v = getattr(a, key)
                ok = (
                    v is not None
                    and math.isfinite(v)
                    and (v >= bound if op == ">=" else v <= bound)
                )
                rows[key] = {"value": _num(v), "target": f"{op} {bound:g}", "met": bool(ok)}
            out[a.controller] = rows
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; no wall-clock times, so the same seed gives the same dict."""
        return {
            "summary": self.summary(),
            "seed": self.seed,
            "config": self.config.to_dict(),
            "reference": REFERENCE,
            "engine_policy": self.engine_policy,
            "controllers": list(self.controllers),
            "aggregates": {a.controller: a.to_dict() for a in self.aggregates},
            "targets": self.targets(),
            "windows": [w.to_dict() for w in self.windows],
            "units": [
                {
                    "unit": i,
                    "window": u.window,
                    "rtt_ms": u.rtt_ms,
                    "seed": u.seed,
                    "label": self.unit_label(i),
                }
                for i, u in enumerate(self.units)
            ],
            "runs": [r.to_dict() for r in self.runs],
            "notes": list(self.notes),
        }

    def headline(self) -> list[str]:
        """Plain sentences for the report's summary."""
        if not self.aggregates:
            return []
        n = len(self.units)
        parts = []
        for a in self.aggregates:
            if a.controller == REFERENCE:
                continue
            parts.append(
                f"{a.controller} {_fmt(a.goodput_ratio_vs_cubic, 2)}x goodput, "
                f"{_fmt(a.queue_delay_ratio_vs_cubic, 2)}x queueing delay, worst "
                f"{_fmt(a.worst_goodput_ratio_vs_cubic, 2)}x, "
                f"{a.loss_violations} loss violation{'s' if a.loss_violations != 1 else ''}"
            )
        flagged = sum(1 for u in self.units if self.windows[u.window].outage)
        return [
            f"Congestion, held-out trace windows ({n} window x RTT runs, {flagged} with a "
            f"silence or outage >= {self.config.silence_ms} ms) vs CUBIC: " + "; ".join(parts) + "."
        ]

    def markdown(self) -> str:
        c = self.config
        lines = [
            (
                f"{len(self.windows)} windows of {len({w.trace for w in self.windows})} traces x "
                f"RTT {', '.join(f'{r:g}' for r in c.rtts_ms)} ms = {len(self.units)} runs per "
                f"controller, {c.duration_s:g} s each, buffer {c.buffer_bdp:g} BDP; every ratio is "
                f"to CUBIC on the same windows (95 % paired bootstrap intervals over the "
                f"{len(self.units)} runs, {c.bootstrap_rounds} replicates, seed {self.seed}). "
                f"`MlEngine()` runs the {self.engine_policy} policy by default."
            ),
            "",
            (
                "| controller | goodput vs CUBIC [95 % CI] | p95 queueing delay vs CUBIC [95 % CI] | "
                f"worst window | max loss | loss > max(10 %, 2x CUBIC) | windows < "
                f"{WORST_RATIO:g}x | power beats {FALLBACK} | power vs default [95 % CI] |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a in self.aggregates:
            name = f"**{a.controller}** (default)" if a.controller == self.default else a.controller
            pw = "-" if a.power_wins_vs_fallback is None else f"{a.power_wins_vs_fallback:.0%}"
            lines.append(
                f"| {name} | {_fmt(a.goodput_ratio_vs_cubic, 2)}x {_ci(a.goodput_ratio_ci)} | "
                f"{_fmt(a.queue_delay_ratio_vs_cubic, 2)}x {_ci(a.queue_delay_ratio_ci)} | "
                f"{_fmt(a.worst_goodput_ratio_vs_cubic, 2)}x | {_pct(a.max_loss)} | "
                f"{a.loss_violations} | {a.windows_below} | {pw} | "
                f"{_fmt(a.power_ratio_vs_default, 2)}x {_ci(a.power_ratio_vs_default_ci)} |"
            )
        tg = self.targets()
        if tg:
            lines += ["", "Targets (issue 10):", ""]
            for ctrl, rows in tg.items():
                parts = [
                    f"{k} {_fmt(v['value'], 0 if isinstance(v['value'], int) else 2)} "
                    f"({v['target']}: "
                    f"{'met' if v['met'] else 'not met'})"
                    for k, v in rows.items()
                ]
                lines.append(f"- {ctrl}: " + "; ".join(parts))
        lines += [
            "",
            (
                "Per window (goodput x CUBIC / p95 queueing delay x CUBIC / loss; "
                "CUBIC's own goodput in Mbit/s, queueing delay in ms and loss; "
                "flags: S silent start, O outage):"
            ),
            "",
        ]
        others = [x for x in self.controllers if x != REFERENCE]
        lines.append(
            "| trace | start (s) | RTT (ms) | capacity (Mbit/s) | flags | cubic | "
            + " | ".join(others)
            + " |"
        )
        lines.append("|---|---:|---:|---:|---|---:|" + "---:|" * len(others))
        for i, u in enumerate(self.units):
            w = self.windows[u.window]
            flags = ("S" if w.silent_start else "") + ("O" if w.outage else "")
            ref = self.run_of(i, REFERENCE)
            cells = [
                (f"{ref.goodput_mbps:.2f} / {_fmt(ref.queue_delay_p95_ms, 0)} / {_pct(ref.loss)}")
            ]
            for ctrl in others:
                r = self.run_of(i, ctrl)
                g = _safe_ratio(r.goodput_mbps, ref.goodput_mbps)
                q = _safe_ratio(r.queue_delay_p95_ms, ref.queue_delay_p95_ms)
                bad = _violates(r.loss, ref.loss)
                loss = f"**{_pct(r.loss)}**" if bad else _pct(r.loss)
                cells.append(f"{_fmt(g, 2)} / {_fmt(q, 2)} / {loss}")
            lines.append(
                f"| {w.trace} | {w.start_s:g} | {u.rtt_ms:g} | {w.capacity_mbps:.2f} | "
                f"{flags or '-'} | " + " | ".join(cells) + " |"
            )
        lines.append("")
        lines.append("Bold loss: above max(10 %, 2x CUBIC's) on that window.")
        for note in self.notes:
            lines += ["", f"- {note}"]
        return "\n".join(lines)


def _safe_ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or b <= 0.0:
        return math.nan
    return a / b


def _violates(loss: float, ref_loss: float) -> bool:
    return loss > max(LOSS_FLOOR, LOSS_FACTOR * ref_loss)


# ---------------------------------------------------------------- running


def _unique_labels(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    return [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]


def engine_default_policy() -> str:
    """Name of the congestion policy `MlEngine()` uses with its default configuration."""
    from oxidize_ml.engine import EngineConfig, MlEngine

    engine = MlEngine(EngineConfig(collect_training=False))
    return str(engine.stats().congestion_controller.policy)


def _measure(res: Any, scenario: Any, controller: str, unit: int, seed: int) -> WindowRun:
    f = res.flows[0]
    one_way_s = scenario.flows[0].delay_s
    q = f.delays_s - one_way_s
    qd = float(np.percentile(q, 95.0)) * 1000.0 if q.size else math.nan
    d95 = f.delay_p95_s * 1000.0 if f.delays_s.size else math.nan
    declared_den = f.packets_acked + f.packets_lost
    declared = f.packets_lost / declared_den if declared_den else 0.0
    if getattr(f, "packets_lost_undetected", None) is not None:
        # the simulator counts drops the sender had not noticed yet in loss_rate
        stranded = int(f.packets_stranded)
        loss = float(f.loss_rate)
    else:
        # older simulator: every packet not acknowledged by the end counts (upper bound)
        stranded = max(0, f.packets_sent - f.packets_acked - f.packets_lost)
        loss = (f.packets_lost + stranded) / f.packets_sent if f.packets_sent else 0.0
    goodput = f.bytes_acked * 8.0 / res.duration_s / 1e6 if res.duration_s > 0 else 0.0
    power = goodput / (d95 / 1000.0) if math.isfinite(d95) and d95 > 0.0 else 0.0
    return WindowRun(
        unit=unit,
        controller=controller,
        seed=seed,
        goodput_mbps=goodput,
        queue_delay_p95_ms=qd,
        delay_p95_ms=d95,
        loss=loss,
        declared_loss=declared,
        stranded=stranded,
        packets_sent=int(f.packets_sent),
        power=power,
    )


def _aggregate(
    name: str,
    runs: dict[tuple[int, str], WindowRun],
    n_units: int,
    idx: np.ndarray,
    has_fallback: bool,
    default: str | None,
) -> ControllerAggregate:
    def col(ctrl: str, attr: str) -> np.ndarray:
        return np.array([getattr(runs[(u, ctrl)], attr) for u in range(n_units)], dtype=np.float64)

    g, g_ref = col(name, "goodput_mbps"), col(REFERENCE, "goodput_mbps")
    q, q_ref = col(name, "queue_delay_p95_ms"), col(REFERENCE, "queue_delay_p95_ms")
    loss, loss_ref = col(name, "loss"), col(REFERENCE, "loss")
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(g_ref > 0.0, g / np.where(g_ref > 0.0, g_ref, 1.0), np.nan)
    worst_unit = int(np.nanargmin(per)) if np.isfinite(per).any() else -1
    power_share = None
    if has_fallback:
        p, p_fb = col(name, "power"), col(FALLBACK, "power")
        power_share = float(np.mean(p > p_fb))
    finite_q = np.isfinite(q)
    return ControllerAggregate(
        controller=name,
        goodput_ratio_vs_cubic=ratio_of_means(g, g_ref),
        goodput_ratio_ci=paired_ratio_ci(g, g_ref, idx),
        queue_delay_ratio_vs_cubic=ratio_of_means(q, q_ref),
        queue_delay_ratio_ci=paired_ratio_ci(q, q_ref, idx),
        worst_goodput_ratio_vs_cubic=float(per[worst_unit]) if worst_unit >= 0 else math.nan,
        worst_unit=worst_unit,
        max_loss=float(loss.max()),
        max_loss_unit=int(np.argmax(loss)),
        mean_goodput_mbps=float(g.mean()),
        mean_queue_delay_p95_ms=float(q[finite_q].mean()) if finite_q.any() else math.nan,
        loss_violations=int(sum(_violates(a, b) for a, b in zip(loss, loss_ref, strict=True))),
        windows_below=int(np.sum(np.isfinite(per) & (per < WORST_RATIO))),
        power_wins_vs_fallback=power_share,
        power_ratio_vs_default=(
            ratio_of_means(col(name, "power"), col(default, "power"))
            if default is not None
            else math.nan
        ),
        power_ratio_vs_default_ci=(
            paired_ratio_ci(col(name, "power"), col(default, "power"), idx)
            if default is not None
            else (math.nan, math.nan)
        ),
    )


@dataclass(frozen=True, slots=True, eq=False)
class WindowPlan:
    """What `run_windows` will run (from `plan_run`): traces loaded, windows chosen,
    controllers resolved. ``total_runs`` sizes a progress bar before anything runs."""

    seed: int
    config: WindowConfig
    controllers: tuple[tuple[str, ControllerFactory], ...]
    links: dict[str, Any]
    """trace path -> loaded `TraceLink` (each file read once)"""
    windows: tuple[TraceWindow, ...]
    units: tuple[Unit, ...]
    notes: tuple[str, ...]

    @property
    def total_runs(self) -> int:
        return len(self.units) * len(self.controllers)


def load_trace_links(
    traces: Sequence[str | PathLike[str]],
) -> tuple[list[Path], list[Any]]:
    """The paths of ``traces`` and a `TraceLink` each (at most `MAX_TRACES`; ``TypeError``
    for a single path, ``ValueError`` naming a bad file)."""
    from oxidize_ml.sim.links import TraceLink

    if isinstance(traces, str | PathLike):
        raise TypeError("traces must be a sequence of paths, not one path")
    paths = [Path(fspath(p)) for p in traces]
    if len(paths) > MAX_TRACES:
        raise ValueError(f"at most {MAX_TRACES} traces per run, got {len(paths)}")
    return paths, [TraceLink(str(p)) for p in paths]


def plan_run(
    traces: Sequence[str | PathLike[str]],
    *,
    seed: int = 0,
    config: WindowConfig | None = None,
    controllers: Sequence[str | tuple[str, ControllerFactory]] | None = None,
    registry: ControllerRegistry | None = None,
) -> WindowPlan:
    """Validate the arguments of `run_windows`, read the traces, choose the windows."""
    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE

    check_int("seed", seed)
    cfg = config if config is not None else WindowConfig()
    if not isinstance(cfg, WindowConfig):
        raise TypeError(f"config must be a WindowConfig, got {type(cfg).__name__}")
    paths, links = load_trace_links(traces)
    if not paths:
        raise ValueError("traces needs at least one Mahimahi trace file")
    names: list[str | tuple[str, ControllerFactory]] = (
        ["reno", REFERENCE, FALLBACK, "engine"] if controllers is None else list(controllers)
    )
    notes: list[str] = []
    listed = [
        c if isinstance(c, str) else c[0]
        for c in names
        if isinstance(c, str) or (isinstance(c, tuple) and c)
    ]
    if REFERENCE not in listed:
        names.insert(0, REFERENCE)
        notes.append("cubic was added: every ratio is to CUBIC on the same windows.")
    ctrls = resolve_controllers(names, registry)
    windows: list[TraceWindow] = []
    for label, p, link in zip(_unique_labels(paths), paths, links, strict=True):
        assert link._ms is not None
        windows.extend(plan_windows(label, str(p), link._ms, cfg))
    for w in windows:
        packets = w.capacity_mbps * 1e6 * w.duration_s / BITS_PER_OPPORTUNITY
        if packets > MAX_PACKETS_PER_WINDOW:
            raise ValueError(
                f"trace {w.path!r}: a {w.duration_s:g}-s window from {w.start_s:g} s offers "
                f"{packets:,.0f} packets ({w.capacity_mbps:,.0f} Mbit/s), more than "
                f"{MAX_PACKETS_PER_WINDOW:,}; shorten the windows (duration_s) or check the trace"
            )
    if cfg.silent_start_windows and not any(w.silent_start for w in windows):
        notes.append(
            f"No trace has a silence of >= {cfg.silence_ms} ms: no silent-start window was added."
        )
    base = EVAL_SEED_BASE + SEED_STRIDE * seed
    pairs = [(wi, rtt) for wi in range(len(windows)) for rtt in cfg.rtts_ms]
    units = [Unit(window=wi, rtt_ms=rtt, seed=base + i) for i, (wi, rtt) in enumerate(pairs)]
    return WindowPlan(
        seed=seed,
        config=cfg,
        controllers=tuple(ctrls),
        links={str(p): link for p, link in zip(paths, links, strict=True)},
        windows=tuple(windows),
        units=tuple(units),
        notes=tuple(notes),
    )


def run_windows(
    traces: Sequence[str | PathLike[str]] | WindowPlan,
    *,
    seed: int = 0,
    config: WindowConfig | None = None,
    controllers: Sequence[str | tuple[str, ControllerFactory]] | None = None,
    registry: ControllerRegistry | None = None,
    progress: ProgressFn | None = None,
) -> WindowEvalResult:
    """Run every controller on every window of ``traces``; see the module docstring.

    Parameters
    ----------
    traces
        Mahimahi trace files (``ValueError`` naming the file when one is
        missing, unreadable, empty or malformed), or a `WindowPlan` from
        `plan_run` (then the other arguments but ``progress`` are ignored).
    seed
        Base of the run seeds and the bootstrap's seed (>= 0).
    config
        Windows, RTTs, buffer, bootstrap (default `WindowConfig()`).
    controllers
        Registry names (``"reno"``, ``"cubic"``, ``"bbr"``, ``"engine"``) and/or
        ``(name, factory)`` pairs; None: reno, cubic, bbr and engine. CUBIC is
        added when missing: every ratio needs it.
    registry
        Where names are looked up (default `default_registry()`).
    progress
        ``progress(done, total, label)`` after each run.
    """
    from oxidize_ml.sim.links import BufferSpec
    from oxidize_ml.sim.runner import simulate
    from oxidize_ml.sim.scenarios import scenario_from_trace

    t0 = time.perf_counter()
    plan = (
        traces
        if isinstance(traces, WindowPlan)
        else plan_run(traces, seed=seed, config=config, controllers=controllers, registry=registry)
    )
    cfg, units, windows = plan.config, plan.units, plan.windows
    ctrl_names = tuple(n for n, _ in plan.controllers)
    policy = engine_default_policy()
    default = "engine" if "engine" in ctrl_names else policy if policy in ctrl_names else None
    total = plan.total_runs
    done = 0
    runs: dict[tuple[int, str], WindowRun] = {}
    for ui, u in enumerate(units):
        w = windows[u.window]
        sc = scenario_from_trace(
            w.path,
            link=plan.links[w.path],
            start_s=w.start_s,
            rtt_s=u.rtt_ms / 1000.0,
            buffer=BufferSpec(bdp=cfg.buffer_bdp),
            duration_s=cfg.duration_s,
            name=f"{w.trace}@{w.start_s:g}s/{u.rtt_ms:g}ms",
        )
        for name, factory in plan.controllers:
            res = simulate(sc, factory, seed=u.seed, record_series=False)
            runs[(ui, name)] = _measure(res, sc, name, ui, u.seed)
            done += 1
            if progress is not None:
                progress(done, total, f"{w.trace} @{w.start_s:g}s {u.rtt_ms:g}ms {name}")

    idx = bootstrap_indices(len(units), cfg.bootstrap_rounds, np.random.default_rng(plan.seed))
    aggs = tuple(
        _aggregate(n, runs, len(units), idx, FALLBACK in ctrl_names, default) for n in ctrl_names
    )
    ordered = tuple(runs[(ui, n)] for ui in range(len(units)) for n in ctrl_names)
    return WindowEvalResult(
        seed=plan.seed,
        config=cfg,
        controllers=ctrl_names,
        default=default,
        engine_policy=policy,
        windows=windows,
        units=units,
        runs=ordered,
        aggregates=aggs,
        wall_s=time.perf_counter() - t0,
        notes=plan.notes,
    )


# ---------------------------------------------------------------- plots


def plot_windows(
    result: WindowEvalResult, out_dir: str | PathLike[str], *, name: str = "congestion-windows.png"
) -> list[Path]:
    """Per window: goodput ratio against queueing-delay ratio (one marker per controller),
    and loss per window against the bound. Returns the PNG written."""
    from oxidize_ml.evaluation import plots

    others = [c for c in result.controllers if c != REFERENCE]
    if not result.units or not others:
        return []
    fig, axes = plots.subplot_grid(2, ncols=2, panel_size=(5.4, 4.2))
    ax, ax_loss = axes[0], axes[1]
    handles: dict[str, Any] = {}
    n = len(result.units)
    for ci, ctrl in enumerate(result.controllers):
        style = plots.series_style(ctrl, ci)
        xs, ys, ls = [], [], []
        for ui in range(n):
            r, ref = result.run_of(ui, ctrl), result.run_of(ui, REFERENCE)
            xs.append(_safe_ratio(r.queue_delay_p95_ms, ref.queue_delay_p95_ms))
            ys.append(_safe_ratio(r.goodput_mbps, ref.goodput_mbps))
            ls.append(r.loss * 100.0)
        if ctrl != REFERENCE:
            pts = [
                (x, y)
                for x, y in zip(xs, ys, strict=True)
                if math.isfinite(x) and math.isfinite(y) and x > 0.0
            ]
            if pts:
                h = ax.scatter(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    s=28,
                    alpha=0.8,
                    color=style["color"],
                    marker=style["marker"],
                    label=ctrl,
                    edgecolors="black",
                    linewidths=0.3,
                )
                handles.setdefault(ctrl, h)
        jitter = (ci - (len(result.controllers) - 1) / 2.0) * 0.12
        h2 = ax_loss.scatter(
            np.arange(n) + jitter,
            ls,
            s=18,
            color=style["color"],
            marker=style["marker"],
            label=ctrl,
        )
        handles.setdefault(ctrl, h2)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    ax.axhline(WORST_RATIO, color="#D55E00", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("p95 queueing delay / CUBIC's (log; left is better)")
    ax.set_ylabel("goodput / CUBIC's (up is better)")
    ax.set_title("Per window x RTT, vs CUBIC")
    ax.grid(True, alpha=0.3)
    ref_loss = [result.run_of(ui, REFERENCE).loss for ui in range(n)]
    bound = [max(LOSS_FLOOR, LOSS_FACTOR * x) * 100.0 for x in ref_loss]
    ax_loss.step(np.arange(n), bound, where="mid", color="grey", lw=1.0, ls="--")
    ax_loss.set_xlabel("window x RTT (see the per-window table)")
    ax_loss.set_ylabel("loss incl. stranded (%)")
    ax_loss.set_title("Loss per window (dashed: max(10 %, 2x CUBIC))")
    ax_loss.grid(True, alpha=0.3)
    plots.legend_below(fig, list(handles.values()), list(handles))
    plots.tidy(fig, top_in=0.45, bottom_in=0.95, hspace=0.4)
    return [plots.save_figure(fig, Path(out_dir) / name)]
