"""Compression decisions on real payloads: utility against the best decision in hindsight.

Data
----
`oxidize_ml.evaluation.corpus.build_corpus`: packets cut from files on this
machine (text, executables, compressed files, images) plus generated JSON,
HTML, random (encrypted) bytes, TLS records and RTP packets. Every packet is
encoded and decoded with every decision by `measure_stream` (frame size and
median encode/decode wall time with the engine's `PacketCodec`), once; the
utilities at each link rate are computed from those same measurements.

Utility
-------
`CompressionCostModel` (REFERENCES section 4): seconds of link time saved
minus CPU seconds spent, per packet, at link rates `LINK_RATES_BPS` (5, 20,
100 Mbit/s: slow cellular, typical broadband, fast fibre; compression pays
less the faster the link). The hindsight decision of each packet is
`CompressionCostModel.best` on its measured outcomes.

Scores per method and link rate:

- **utility share**: ``sum(U_method - U_never) / sum(U_hindsight - U_never)``,
  the share of the achievable gain over never compressing that the method
  realises: 1 for the hindsight choice, 0 for ``never``, negative when a
  method loses time. Undefined (n/a) where compressing cannot gain anything
  (e.g. random bytes, where the best is to skip).
- **regret**: mean ``U_hindsight - U_method`` per packet, microseconds
  (always defined; 0 is perfect).
- **net of decision time**: the same with the method's own per-packet
  decision time charged as sender CPU time. A learned oracle must win its
  gains back after paying for its inference. The time is measured in passes
  over the packets interleaved with lz4 passes and put on the time scale of
  the codec measurements (`time_decisions_vs_lz4`), so a load change on a
  shared machine between measuring the codecs and timing the decisions does
  not distort the comparison.
- **agreement**: share of packets where the decision equals the hindsight one
  (``RohcOnly`` is header compression, measured on the flows in sending order
  by `oxidize_ml.compression.cost.measure_stream`).
- **bytes saved** (share of payload bytes) and **CPU** (encode + decode
  microseconds per packet) of the decisions taken.

Methods: ``never`` (always Skip), ``lz4`` (always Light), ``zstd`` (always
Aggressive), ``heuristic`` (`HeuristicCompressionOracle`), ``hindsight``, and
any oracle passed in (``oracles={"mlp": factory}``; the factory builds an
object with ``decide(data)`` or ``predict_one(data, now=...)``). An oracle
that follows the link rate (``set_link_rate_bps`` and ``fork``, as the
learned `oxidize_ml.compression.RateBucketOracle`) is told each link rate, as
the engine tells it the measured bandwidth.

Timings are wall-clock measurements on a shared machine: utilities are not
bit-reproducible run to run, although their ranking is stable (the timing
noise is a few hundred nanoseconds against savings of microseconds).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.compression import (
    DECISION_PREFERENCE,
    CompressionCostModel,
    HeuristicCompressionOracle,
    PacketCodec,
)
from oxidize_ml.compression.cost import measure_stream
from oxidize_ml.evaluation.corpus import (
    CATEGORIES,
    MAX_CORPUS_PACKETS,
    CorpusPacket,
    CorpusSources,
    build_corpus,
    summarize,
)
from oxidize_ml.evaluation.formatting import json_number as _num
from oxidize_ml.types import MlCompressionDecision

LINK_RATES_BPS: tuple[float, ...] = (5e6, 20e6, 100e6)
"""link rates the utilities are computed at, bits per second"""
N_PACKETS_FULL = MAX_CORPUS_PACKETS
"""corpus size in full mode"""
N_PACKETS_QUICK = 900
"""corpus size in quick mode (100 per category: measuring costs about 0.3 ms per packet)"""
REPEATS_FULL = 5
"""timed runs per encode/decode in full mode (median kept)"""
REPEATS_QUICK = 3
"""timed runs per encode/decode in quick mode"""
DECISION_TIMING_ROUNDS = 3
"""passes over the corpus when timing a method's decisions (median pass kept)"""
MIN_GAIN_S_PER_PACKET = 1e-6
"""a category whose hindsight gain over never compressing is below this (seconds
per packet, mean) has no defined utility share: below a microsecond the "gain" is
timer noise between the two passthrough decisions (Skip, RohcOnly), and a share of
noise is meaningless (the regret column still applies)"""
HINDSIGHT = "hindsight"
BASELINES: dict[str, MlCompressionDecision] = {
    "never": MlCompressionDecision.Skip,
    "lz4": MlCompressionDecision.Light,
    "zstd": MlCompressionDecision.Aggressive,
}
"""fixed-decision baselines, name -> decision"""
HEURISTIC = "heuristic"

_COL = {d: i for i, d in enumerate(DECISION_PREFERENCE)}
_SKIP_COL = _COL[MlCompressionDecision.Skip]

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, label)``, called while packets are measured"""

OracleFactory = Callable[[], Any]
"""builds an oracle with ``decide(data)`` or ``predict_one(data, *, now)``"""


def _decider(oracle: Any, name: str) -> Callable[[bytes], MlCompressionDecision]:
    decide = getattr(oracle, "decide", None)
    if callable(decide):
        return decide
    predict = getattr(oracle, "predict_one", None)
    if callable(predict):
        return lambda data: predict(data, now=0.0)
    raise TypeError(f"oracle {name!r} has neither decide(data) nor predict_one(data, now=...)")


# ---------------------------------------------------------------- measurements


@dataclass(frozen=True, slots=True)
class Measurements:
    """Every packet measured with every decision (columns: `DECISION_PREFERENCE`)."""

    sizes: np.ndarray
    """payload bytes ``[n]``"""
    out_bytes: np.ndarray
    """frame bytes ``[n, 4]``"""
    encode_s: np.ndarray
    """median encode seconds ``[n, 4]``"""
    decode_s: np.ndarray
    """median decode seconds ``[n, 4]``"""
    categories: np.ndarray
    """category per packet ``[n]`` (object)"""

    def utilities(self, model: CompressionCostModel) -> np.ndarray:
        """`CompressionCostModel.utility` of every (packet, decision), seconds ``[n, 4]``."""
        saved = (self.sizes[:, None] - self.out_bytes) * 8.0 / model.link_rate_bps
        return saved - (
            model.encode_cpu_weight * self.encode_s + model.decode_cpu_weight * self.decode_s
        )

    def hindsight(self, model: CompressionCostModel) -> np.ndarray:
        """Column of `CompressionCostModel.best` per packet ``[n]`` (ties: least work)."""
        util = self.utilities(model)
        top = util.max(axis=1, keepdims=True)
        ok = util >= top - model.tie_tolerance_s
        return np.argmax(ok, axis=1)  # first column within tolerance, in preference order


def measure_corpus(
    corpus: Sequence[CorpusPacket],
    *,
    codec: PacketCodec | None = None,
    repeats: int = REPEATS_QUICK,
    progress: ProgressFn | None = None,
) -> Measurements:
    """`measure_stream` over the corpus in its order (RohcOnly sees the flows), as arrays."""
    return measure_packets(
        [p.data for p in corpus],
        [p.category for p in corpus],
        codec=codec,
        repeats=repeats,
        progress=progress,
    )


def measure_packets(
    datas: Sequence[bytes],
    categories: Sequence[str],
    *,
    codec: PacketCodec | None = None,
    repeats: int = REPEATS_QUICK,
    progress: ProgressFn | None = None,
) -> Measurements:
    """`measure_stream` of packets in sending order, as arrays."""
    n = len(datas)
    out = np.empty((n, len(DECISION_PREFERENCE)))
    enc = np.empty_like(out)
    dec = np.empty_like(out)
    step = max(1, n // 20)
    done = [0]

    def tick() -> None:
        done[0] += 1
        i = done[0]
        if progress is not None and (i % step == 0 or i == n):
            progress(i, n, f"measured {i}/{n} packets")

    for i, res in enumerate(measure_stream(datas, codec, repeats=repeats, on_packet=tick)):
        for d, j in _COL.items():
            o = res[d]
            out[i, j] = o.out_bytes
            enc[i, j] = o.encode_s
            dec[i, j] = o.decode_s
    return Measurements(
        sizes=np.array([len(d) for d in datas], dtype=np.float64),
        out_bytes=out,
        encode_s=enc,
        decode_s=dec,
        categories=np.array(list(categories), dtype=object),
    )


def time_decisions(
    decide: Callable[[bytes], Any], datas: Sequence[bytes], rounds: int = DECISION_TIMING_ROUNDS
) -> float:
    """Median over ``rounds`` passes of the mean seconds per ``decide(data)`` call."""
    clock = time.perf_counter_ns
    per_pass = []
    for _ in range(rounds):
        t0 = clock()
        for d in datas:
            decide(d)
        per_pass.append((clock() - t0) / max(len(datas), 1))
    return statistics.median(per_pass) * 1e-9


def time_decisions_vs_lz4(
    decides: Mapping[str, Callable[[bytes], Any]],
    datas: Sequence[bytes],
    meas: Measurements,
    *,
    codec: PacketCodec | None = None,
    rounds: int = 2 * DECISION_TIMING_ROUNDS + 1,
) -> dict[str, dict[str, float]]:
    """Each method's decision time per packet, on the time scale of the measurements.

    Decision times and codec times are both wall-clock, but measured at
    different moments, and on a shared machine the load can change between
    them by a factor of several (a helper's run once timed the heuristic at
    4.4 us per packet against 1.0 us on a quiet machine, while the labels had
    been measured quietly). So every pass of a method over the packets is
    interleaved with a pass of ``PacketCodec.encode(data, Light)`` (lz4, as
    the labels time it); the ratio of the two (median over ``rounds``)
    times the labels' mean lz4 encode time is the charge. Load then hits the
    method and its yardstick alike.

    Returns
    -------
    dict
        name -> ``{"charged_s": seconds per packet on the labels' scale,
        "raw_s": median pass time per packet, "over_lz4": the ratio}``.
    """
    codec = PacketCodec() if codec is None else codec
    light = MlCompressionDecision.Light
    encode = codec.encode

    def lz4_pass(data: bytes) -> Any:
        return encode(data, light)

    lz4_label_s = float(meas.encode_s[:, _COL[light]].mean())
    ratios: dict[str, list[float]] = {k: [] for k in decides}
    raws: dict[str, list[float]] = {k: [] for k in decides}
    names = list(decides)
    for r in range(rounds):
        before = time_decisions(lz4_pass, datas, rounds=1)
        # Each round starts with another method, so none always runs first or last.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            raws[name].append(time_decisions(decides[name], datas, rounds=1))
        after = time_decisions(lz4_pass, datas, rounds=1)
        ref = 0.5 * (before + after)  # the yardstick: lz4 passes either side of the round
        for name in decides:
            ratios[name].append(raws[name][-1] / ref)
    out = {}
    for name in decides:
        ratio = statistics.median(ratios[name])
        out[name] = {
            "charged_s": ratio * lz4_label_s,
            "raw_s": statistics.median(raws[name]),
            "over_lz4": ratio,
        }
    return out


def _per_rate_deciders(
    oracle: Any, name: str, rates: Sequence[float]
) -> list[Callable[[bytes], Any]]:
    """One decide function per link rate: an oracle that follows the link rate
    (``set_link_rate_bps``, e.g. `oxidize_ml.compression.RateBucketOracle`) is told
    each rate, as the engine tells it the measured bandwidth; others decide alike at
    every rate."""
    follow = getattr(oracle, "set_link_rate_bps", None)
    if follow is None:
        d = _decider(oracle, name)
        return [d for _ in rates]
    out = []
    for r in rates:
        fork = getattr(oracle, "fork", None)
        o = fork() if callable(fork) else oracle
        o.set_link_rate_bps(r)
        out.append(_decider(o, name))
        if not callable(fork):
            break
    if len(out) < len(rates):
        raise TypeError(
            f"oracle {name!r} follows the link rate but has no fork(): cannot score it at "
            "several rates at once"
        )
    return out


# ---------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class MethodScore:
    """One method at one link rate."""

    method: str
    link_rate_bps: float
    utility_share: float
    """gain over never compressing / hindsight gain (NaN if no gain is possible)"""
    utility_share_net: float
    """the same with the method's decision time charged"""
    regret_us: float
    """mean hindsight utility minus the method's, microseconds per packet"""
    regret_net_us: float
    agreement: float
    """share of packets where the decision matches hindsight"""
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    """category -> {utility_share, regret_us, agreement}"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "link_rate_bps": self.link_rate_bps,
            "utility_share": _num(self.utility_share),
            "utility_share_net": _num(self.utility_share_net),
            "regret_us": _num(self.regret_us),
            "regret_net_us": _num(self.regret_net_us),
            "agreement": _num(self.agreement),
            "per_category": {
                c: {k: _num(v) for k, v in d.items()} for c, d in self.per_category.items()
            },
        }


@dataclass(frozen=True, slots=True)
class MethodCost:
    """What a method's decisions cost and save (hindsight's depend on the link rate:
    reported at the middle rate)."""

    method: str
    bytes_saved_share: float
    """payload bytes saved / payload bytes (frame headers included, so never >= 1)"""
    cpu_us_per_packet: float
    """encode + decode microseconds per packet"""
    decision_us_per_packet: float
    """the method's own decision time, microseconds per packet (0 for fixed decisions)"""
    decision_mix: dict[str, float] = field(default_factory=dict)
    """decision -> share of packets"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "bytes_saved_share": _num(self.bytes_saved_share),
            "cpu_us_per_packet": _num(self.cpu_us_per_packet),
            "decision_us_per_packet": _num(self.decision_us_per_packet),
            "decision_mix": dict(self.decision_mix),
        }


@dataclass(frozen=True, slots=True)
class CompressionEvalResult:
    """Everything `run` measured; `to_dict` is JSON-able, `markdown` the report section."""

    seed: int
    quick: bool
    n_packets: int
    corpus: dict[str, dict[str, int]]
    """`oxidize_ml.evaluation.corpus.summarize` of the corpus"""
    link_rates_bps: tuple[float, ...]
    methods: tuple[str, ...]
    scores: tuple[MethodScore, ...]
    costs: tuple[MethodCost, ...]
    repeats: int
    wall_s: float
    measure_s: float
    """seconds spent measuring the corpus"""

    def score(self, method: str, link_rate_bps: float) -> MethodScore:
        for s in self.scores:
            if s.method == method and s.link_rate_bps == link_rate_bps:
                return s
        raise KeyError(f"no score for ({method!r}, {link_rate_bps!r})")

    def cost(self, method: str) -> MethodCost:
        for c in self.costs:
            if c.method == method:
                return c
        raise KeyError(f"no cost for {method!r}; methods: {list(self.methods)}")

    def headline(self) -> list[str]:
        out = []
        rates = ", ".join(f"{r / 1e6:g}" for r in self.link_rates_bps)
        for m in self.methods:
            if m in (HINDSIGHT, "never"):
                continue
            shares = ", ".join(
                _pct(self.score(m, r).utility_share_net) for r in self.link_rates_bps
            )
            out.append(f"{m} {shares}")
        return [
            f"Compression: share of the hindsight-best gain, net of decision time, at "
            f"{rates} Mbit/s: " + "; ".join(out) + "."
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "quick": self.quick,
            "n_packets": self.n_packets,
            "corpus": self.corpus,
            "link_rates_bps": list(self.link_rates_bps),
            "methods": list(self.methods),
            "repeats": self.repeats,
            "scores": [s.to_dict() for s in self.scores],
            "costs": [c.to_dict() for c in self.costs],
            "wall_s": self.wall_s,
            "measure_s": self.measure_s,
        }

    def markdown(self) -> str:
        cats = [c for c in CATEGORIES if c in self.corpus.get("packets", {})]
        pk, by, ff = (self.corpus.get(k, {}) for k in ("packets", "bytes", "from_files"))
        lines = [
            (
                f"{self.n_packets} packets ({'quick' if self.quick else 'full'} mode, seed "
                f"{self.seed}), each encoded and decoded with every decision ({self.repeats} timed "
                f"runs, median). Utility = link time saved - CPU time (CompressionCostModel); "
                "share = gain over never compressing / hindsight gain; regret = hindsight - "
                "method utility per packet; *net* charges the method's own decision time."
            ),
            "",
            "| category | packets | KiB | from files on this machine |",
            "|---|---:|---:|---:|",
        ]
        for c in cats:
            lines.append(f"| {c} | {pk.get(c, 0)} | {by.get(c, 0) / 1024:.0f} | {ff.get(c, 0)} |")
        lines += [
            "",
            (
                "| method | bytes saved | CPU µs/packet | decision µs/packet | Skip / Light / "
                "Aggressive / RohcOnly |"
            ),
            "|---|---:|---:|---:|---|",
        ]
        for cost in self.costs:
            mix = " / ".join(
                f"{cost.decision_mix.get(d.name, 0.0):.0%}"
                for d in (
                    MlCompressionDecision.Skip,
                    MlCompressionDecision.Light,
                    MlCompressionDecision.Aggressive,
                    MlCompressionDecision.RohcOnly,
                )
            )
            lines.append(
                f"| {cost.method} | {cost.bytes_saved_share:.1%} | "
                f"{cost.cpu_us_per_packet:.2f} | {cost.decision_us_per_packet:.2f} | "
                f"{mix} |"
            )
        for r in self.link_rates_bps:
            lines += [
                "",
                f"**{r / 1e6:g} Mbit/s**",
                "",
                (
                    "| method | utility share | share (net) | regret µs/pkt | regret net µs/pkt "
                    "| agreement |"
                ),
                "|---|---:|---:|---:|---:|---:|",
            ]
            for m in self.methods:
                s = self.score(m, r)
                lines.append(
                    f"| {m} | {_pct(s.utility_share)} | {_pct(s.utility_share_net)} | "
                    f"{s.regret_us:.3f} | {s.regret_net_us:.3f} | {s.agreement:.1%} |"
                )
        mid = self.link_rates_bps[len(self.link_rates_bps) // 2]
        lines += [
            "",
            (
                f"Per category at {mid / 1e6:g} Mbit/s: utility share (regret µs/packet); "
                "n/a where no compression gains anything."
            ),
            "",
            "| category | " + " | ".join(self.methods) + " |",
            "|---|" + "---|" * len(self.methods),
        ]
        for c in cats:
            cells = []
            for m in self.methods:
                d = self.score(m, mid).per_category.get(c, {})
                cells.append(
                    f"{_pct(d.get('utility_share', math.nan))} ({d.get('regret_us', math.nan):.2f})"
                )
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.1%}"


# ---------------------------------------------------------------- the evaluation


def _share(gain: np.ndarray, best_gain: np.ndarray) -> float:
    tot = float(best_gain.sum())
    if tot < MIN_GAIN_S_PER_PACKET * max(best_gain.size, 1):
        return math.nan
    return float(gain.sum()) / tot


def score_method(
    name: str,
    cols: np.ndarray,
    meas: Measurements,
    model: CompressionCostModel,
    decision_s: float = 0.0,
) -> MethodScore:
    """Scores of decisions ``cols`` (column indices per packet) at ``model``'s link rate."""
    util = meas.utilities(model)
    rows = np.arange(cols.size)
    u_m = util[rows, cols]
    best = meas.hindsight(model)
    u_b = util[rows, best]
    u_0 = util[:, _SKIP_COL]
    net = u_m - model.encode_cpu_weight * decision_s
    agree = cols == best
    per = {}
    for c in sorted(
        set(meas.categories.tolist()),
        key=lambda x: CATEGORIES.index(x) if x in CATEGORIES else len(CATEGORIES),
    ):
        m = meas.categories == c
        per[c] = {
            "utility_share": _share(u_m[m] - u_0[m], u_b[m] - u_0[m]),
            "regret_us": float((u_b[m] - u_m[m]).mean()) * 1e6,
            "agreement": float(agree[m].mean()),
        }
    return MethodScore(
        method=name,
        link_rate_bps=model.link_rate_bps,
        utility_share=_share(u_m - u_0, u_b - u_0),
        utility_share_net=_share(net - u_0, u_b - u_0),
        regret_us=float((u_b - u_m).mean()) * 1e6,
        regret_net_us=float((u_b - net).mean()) * 1e6,
        agreement=float(agree.mean()),
        per_category=per,
    )


def _cost(name: str, cols: np.ndarray, decision_s: float, meas: Measurements) -> MethodCost:
    rows = np.arange(cols.size)
    saved = float((meas.sizes - meas.out_bytes[rows, cols]).sum() / meas.sizes.sum())
    cpu = float((meas.encode_s[rows, cols] + meas.decode_s[rows, cols]).mean()) * 1e6
    mix = {d.name: float((cols == j).mean()) for d, j in _COL.items()}
    return MethodCost(name, saved, cpu, decision_s * 1e6, mix)


def run(
    *,
    seed: int = 0,
    quick: bool = False,
    oracles: Mapping[str, OracleFactory] | None = None,
    link_rates_bps: Sequence[float] = LINK_RATES_BPS,
    n_packets: int | None = None,
    categories: Sequence[str] | None = None,
    repeats: int | None = None,
    sources: CorpusSources | None = None,
    cost_model: CompressionCostModel | None = None,
    progress: ProgressFn | None = None,
) -> CompressionEvalResult:
    """Build the corpus, measure it, and score every method at every link rate.

    Parameters
    ----------
    seed
        Corpus seed.
    quick
        `N_PACKETS_QUICK` packets, `REPEATS_QUICK` timed runs.
    oracles
        Extra oracles, name -> zero-argument factory (``decide(data)`` or
        ``predict_one(data, now=...)``).
    link_rates_bps
        Link rates for the cost model, bits/s.
    n_packets, categories, sources
        Corpus size, categories and search folders (see `build_corpus`).
    repeats
        Timed runs per encode/decode (median kept).
    cost_model
        CPU weights and tie tolerance (its link rate is replaced by each of
        ``link_rates_bps``); default `CompressionCostModel` weights.
    progress
        ``progress(done, total, label)`` while measuring.
    """
    t0 = time.perf_counter()
    check_int("seed", seed)
    n = n_packets if n_packets is not None else (N_PACKETS_QUICK if quick else N_PACKETS_FULL)
    check_int("n_packets", n, lo=1, hi=MAX_CORPUS_PACKETS)
    reps = repeats if repeats is not None else (REPEATS_QUICK if quick else REPEATS_FULL)
    check_int("repeats", reps, lo=1)
    rates = tuple(float(check_number("link_rate_bps", r)) for r in link_rates_bps)
    if not rates or any(r <= 0.0 for r in rates):
        raise ValueError(f"link_rates_bps must be non-empty and > 0, got {list(link_rates_bps)}")
    extra = dict(oracles or {})
    taken = {*BASELINES, HEURISTIC, HINDSIGHT}
    for name, f in extra.items():
        if name in taken:
            raise ValueError(f"oracle name {name!r} is taken; built-in: {sorted(taken)}")
        if not callable(f):
            raise TypeError(
                f"oracle {name!r} must be a zero-argument factory, got {type(f).__name__}"
            )
    base_model = cost_model if cost_model is not None else CompressionCostModel(link_rate_bps=1e6)

    corpus = build_corpus(seed=seed, max_packets=n, categories=categories, sources=sources)
    datas = [p.data for p in corpus]
    t_meas = time.perf_counter()
    meas = measure_corpus(corpus, repeats=reps, progress=progress)
    measure_s = time.perf_counter() - t_meas

    # Decisions of every method per rate (column indices) and their per-packet
    # decision time, charged on the measurements' time scale.
    n_rates = len(rates)
    decisions: dict[str, list[tuple[np.ndarray, float]]] = {
        name: [(np.full(len(corpus), _COL[d]), 0.0)] * n_rates for name, d in BASELINES.items()
    }
    deciders: dict[str, list[Callable[[bytes], Any]]] = {
        HEURISTIC: [HeuristicCompressionOracle().decide] * n_rates
    }
    for name, f in extra.items():
        deciders[name] = _per_rate_deciders(f(), name, rates)
    timed = {
        f"{name}@{i}": decide
        for name, per_rate in deciders.items()
        for i, decide in enumerate(per_rate)
        if i == 0 or decide is not per_rate[0]
    }
    times = time_decisions_vs_lz4(timed, datas, meas)
    for name, per_rate in deciders.items():
        decisions[name] = []
        for i, decide in enumerate(per_rate):
            chosen = []
            for d in datas:
                dec = decide(d)
                if not isinstance(dec, MlCompressionDecision):
                    raise TypeError(
                        f"oracle {name!r} returned {dec!r}, not an MlCompressionDecision"
                    )
                chosen.append(_COL[dec])
            key = f"{name}@{i}" if f"{name}@{i}" in times else f"{name}@0"
            decisions[name].append((np.array(chosen), times[key]["charged_s"]))

    scores: list[MethodScore] = []
    for i, r in enumerate(rates):
        model = CompressionCostModel(
            link_rate_bps=r,
            encode_cpu_weight=base_model.encode_cpu_weight,
            decode_cpu_weight=base_model.decode_cpu_weight,
            tie_tolerance_s=base_model.tie_tolerance_s,
        )
        for name, per in decisions.items():
            cols, dsec = per[i]
            scores.append(score_method(name, cols, meas, model, dsec))
        scores.append(score_method(HINDSIGHT, meas.hindsight(model), meas, model))
    mid = rates[len(rates) // 2]
    mid_model = CompressionCostModel(
        link_rate_bps=mid,
        encode_cpu_weight=base_model.encode_cpu_weight,
        decode_cpu_weight=base_model.decode_cpu_weight,
        tie_tolerance_s=base_model.tie_tolerance_s,
    )
    mid_i = len(rates) // 2
    costs = [_cost(name, *per[mid_i], meas) for name, per in decisions.items()]
    costs.append(_cost(HINDSIGHT, meas.hindsight(mid_model), 0.0, meas))
    return CompressionEvalResult(
        seed=seed,
        quick=quick,
        n_packets=len(corpus),
        corpus=summarize(corpus).to_dict(),
        link_rates_bps=rates,
        methods=(*decisions, HINDSIGHT),
        scores=tuple(scores),
        costs=tuple(costs),
        repeats=reps,
        wall_s=time.perf_counter() - t0,
        measure_s=measure_s,
    )


# ---------------------------------------------------------------- plots

_STYLE_INDEX = {"never": 7, "lz4": 4, "zstd": 1, HEURISTIC: 0, HINDSIGHT: 2}


def _color(name: str, extra_index: int) -> str:
    from oxidize_ml.evaluation.plots import PALETTE

    free = [3, 5, 6]
    return PALETTE[_STYLE_INDEX.get(name, free[extra_index % len(free)])]


def plot(result: CompressionEvalResult, out_dir: str | Path) -> list[Path]:
    """Utility share per method per link rate; regret per category per link rate."""
    from oxidize_ml.evaluation import plots

    out = Path(out_dir)
    extra = [m for m in result.methods if m not in _STYLE_INDEX]

    def color(m: str) -> str:
        return _color(m, extra.index(m) if m in extra else 0)

    rates = result.link_rates_bps
    cats = [c for c in CATEGORIES if c in result.corpus.get("packets", {})]
    fig, axes = plots.subplot_grid(1 + len(rates), ncols=2, panel_size=(6.0, 3.8))
    handles: dict[str, Any] = {}

    ax = axes[0]
    shown = [m for m in result.methods if m != "never"]  # never is 0 by definition
    width = 0.8 / max(len(shown), 1)
    x = np.arange(len(rates))
    for i, m in enumerate(shown):
        vals = [result.score(m, r).utility_share_net for r in rates]
        bars = ax.bar(
            x + (i - (len(shown) - 1) / 2) * width,
            [v if math.isfinite(v) else 0.0 for v in vals],
            width,
            color=color(m),
        )
        handles.setdefault(m, bars)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, [f"{r / 1e6:g} Mbit/s" for r in rates])
    ax.set_ylabel("share of hindsight gain, net")
    ax.set_title(
        "Utility share per method, net of decision time\n(1 = hindsight best, 0 = never compress)",
        fontsize=9,
    )
    ax.grid(True, axis="y", alpha=0.3)

    shown = [m for m in result.methods if m != HINDSIGHT]  # hindsight's regret is 0
    width = 0.8 / max(len(shown), 1)
    xc = np.arange(len(cats))
    for ax, r in zip(axes[1:], rates, strict=True):
        for i, m in enumerate(shown):
            per = result.score(m, r).per_category
            vals = [per.get(c, {}).get("regret_us", math.nan) for c in cats]
            bars = ax.bar(xc + (i - (len(shown) - 1) / 2) * width, vals, width, color=color(m))
            handles.setdefault(m, bars)
        ax.set_xticks(xc, cats, rotation=30, fontsize=8)
        ax.set_ylabel("regret (µs per packet)")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(
            f"Regret against hindsight per category at {r / 1e6:g} Mbit/s\n"
            "(lower is better; decision time not charged)",
            fontsize=9,
        )
        ax.grid(True, axis="y", alpha=0.3)
    plots.legend_below(fig, list(handles.values()), list(handles))
    plots.tidy(fig, top_in=0.55, bottom_in=1.0, hspace=0.75, wspace=0.22)
    return [plots.save_figure(fig, out / "compression-utility.png")]


# ---------------------------------------------------------------- captures

PCAP_ORACLES: tuple[str, ...] = (
    "heuristic",
    "learned",
    "default",
    "always_lz4",
    "always_zstd",
    "never",
)
"""oracle names in `evaluate_pcaps`'s summary"""
MAX_PCAP_PACKETS = 50_000
"""IP packets evaluated over all captures of one call (measuring costs ~1 ms each)"""
_FIXED = {
    "always_lz4": MlCompressionDecision.Light,
    "always_zstd": MlCompressionDecision.Aggressive,
    "never": MlCompressionDecision.Skip,
}
_HEADER_CATEGORY = {
    "RTP": "udp_rtp",
    "UDP": "udp",
    "IPV4": "other_ipv4",
    "IPV6": "other_ipv6",
    "NONE": "not_ip",
}


def _shipped_learned() -> tuple[Any, bool, str]:
    """(the shipped compression model or None, its default_enabled flag, why not loaded)."""
    from oxidize_ml.compression.learned import LEARNED_FEATURE_VERSION
    from oxidize_ml.hub.manifest import load_verified
    from oxidize_ml.models import DEFAULT_DIR

    model, reason = load_verified(DEFAULT_DIR, "compression_oracle", "numpy")
    if model is None:
        return None, False, reason
    try:
        import json

        manifest = json.loads((Path(DEFAULT_DIR) / "manifest.json").read_text())
        entry = manifest["models"]["compression_oracle"]
        version = entry.get("training", {}).get("learned_feature_version")
        enabled = bool(entry.get("metrics", {}).get("default_enabled", False))
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        return None, False, f"manifest unreadable: {exc}"
    if version is not None and version != LEARNED_FEATURE_VERSION:
        return (
            None,
            False,
            (
                f"shipped model has learned-feature version {version!r}, "
                f"this package computes {LEARNED_FEATURE_VERSION}"
            ),
        )
    return model, enabled, "ok"


def evaluate_pcaps(
    paths: list[Path],
    *,
    rates_mbps: tuple[float, ...] = (5, 20, 100),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Compression decisions on the IP packets of real captures, net of decision time.

    Each capture (classic pcap or pcapng; Ethernet, Linux cooked SLL/SLL2,
    raw IP or BSD loopback link types) is read with dpkt
    (`oxidize_ml.evaluation.pcapfile`); the packet given to the oracles and
    the codec is the IP packet, as a tunnel sees it (frames without one,
    e.g. ARP, are counted and left out). Packets are measured in capture
    order with `measure_stream` (header compression sees the flows), at most
    `MAX_PCAP_PACKETS` over all files.

    Oracles: ``heuristic`` (`HeuristicCompressionOracle`), ``learned`` (the
    shipped model as a `oxidize_ml.compression.RateBucketOracle` told each
    link rate, as the engine does when it knows the rate; None when no
    compatible model ships), ``default`` (what the engine runs by default:
    the learned one only if its manifest says ``default_enabled``),
    ``always_lz4``, ``always_zstd``, ``never``.

    Score per oracle and rate: **net share**, the share of the hindsight
    optimum's gain over never compressing that the oracle realises with its
    own measured per-packet decision time charged as sender CPU
    (`score_method`'s ``utility_share_net``); None when no gain is possible.

    Parameters
    ----------
    paths : list of Path
        Capture files, evaluated as one stream in the given order.
    rates_mbps : tuple of float
        Link rates, Mbit/s.
    seed : int
        Recorded for reproducibility: the evaluation itself draws no random
        numbers (packets are taken in capture order); timings vary run to run.
    progress : bool
        Show a progress bar while measuring.

    Returns
    -------
    dict
        ``summary``: ``{"oracles": {NAME: {"net_share": {"5": x, "20": x,
        "100": x}}}, "rohc_only_non_udp": N}`` (N: RohcOnly decisions of the
        heuristic, learned and default oracles on packets that are not
        IPv4/IPv6 + UDP, summed); ``captures``, ``packets``, ``per_rate``
        (every `MethodScore`), ``costs``, ``decision_us``, ``notes``.

    Raises
    ------
    ValueError
        No paths, bad rates, or an unreadable/truncated/unsupported capture
        (the message names the file).
    """
    from oxidize_ml.evaluation.pcapfile import read_ip_packets

    t0 = time.perf_counter()
    check_int("seed", seed)
    if isinstance(paths, str | Path) or not paths:
        raise ValueError("paths must be a non-empty list of capture files")
    rates = tuple(float(check_number("rates_mbps", r)) for r in rates_mbps)
    if not rates or min(rates) <= 0.0:
        raise ValueError(f"rates_mbps must be non-empty and > 0, got {list(rates_mbps)}")

    packets: list[bytes] = []
    captures = []
    for p in paths:
        got, stats = read_ip_packets(Path(p), max_packets=MAX_PCAP_PACKETS - len(packets))
        packets.extend(got)
        captures.append(stats.to_dict())
    if not packets:
        raise ValueError(f"no IP packets in {[str(p) for p in paths]}")
    res = evaluate_packets(packets, rates_mbps=rates, seed=seed, progress=progress)
    res["captures"] = captures
    res["packets"]["max"] = MAX_PCAP_PACKETS
    res["wall_s"] = time.perf_counter() - t0
    return res


PER_CATEGORY_FLOOR = 0.9
"""the default rule: a candidate's net share may be no lower than this times the
heuristic's in any category (where both are defined)"""
DECISION_TIME_LIMIT = 1.05
"""the default rule: a candidate may take at most this many times the heuristic's
decision time per packet (standard 1400-byte packets, as the trainer checks)"""


def _units_index(units: Sequence[str] | None, n: int) -> np.ndarray:
    """Integer unit id per packet (each packet its own unit when ``units`` is None)."""
    if units is None:
        return np.arange(n)
    if len(units) != n:
        raise ValueError(f"units must have one entry per packet ({n}), got {len(units)}")
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(u, len(ids)) for u in units], dtype=np.int64)


def _standard_decision_ratio(decide: Callable[[bytes], Any]) -> dict[str, dict[str, float]]:
    """``decide``'s time over the heuristic's on the standard 1400-byte text, random and
    JSON packets (`oxidize_ml.compression.bench`), timed interleaved in both orders.

    ``min_ratio`` (the check) is the ratio of the fastest rounds: timeit's advice,
    since slower rounds measure other processes, and on this shared machine the
    median of per-round ratios moved between 0.99 and 1.10 for the same code as
    the load changed; ``median_ratio`` is reported beside it.
    """
    from oxidize_ml.compression.bench import interleaved_us, standard_packets

    heuristic = HeuristicCompressionOracle().decide
    out = {}
    for kind, pkt in standard_packets(1400).items():
        ab = interleaved_us(pkt, {"h": heuristic, "c": decide}, rounds=11, number=2_000)
        ba = interleaved_us(pkt, {"c": decide, "h": heuristic}, rounds=11, number=2_000)
        out[kind] = {
            "min_ratio": min(ab["c"] + ba["c"]) / min(ab["h"] + ba["h"]),
            "median_ratio": statistics.median(
                c / h for t in (ab, ba) for c, h in zip(t["c"], t["h"], strict=True)
            ),
        }
    return out


def evaluate_packets(
    packets: Sequence[bytes],
    *,
    rates_mbps: tuple[float, ...] = (5, 20, 100),
    seed: int = 0,
    progress: bool = False,
    bootstrap_rounds: int = 1000,
    categories: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    learned: Any = None,
    default_enabled: bool | None = None,
    check_decision_time: bool = False,
) -> dict[str, Any]:
    """The scoring of `evaluate_pcaps` on packets given in sending order (IP packets or payloads).

    Also gives, per oracle and rate, a 95 % percentile interval of the net
    share from a paired bootstrap (``bootstrap_rounds`` replicates, indices
    drawn from ``seed``, the same for every oracle) over *units*: packets, or
    the groups named by ``units`` (e.g. the source file of each corpus packet,
    so that packets cut from one file are resampled together); paired
    intervals of the differences learned - heuristic / always_lz4 /
    always_zstd and heuristic - always_zstd (``<a>_minus_<b>_ci95``); each
    oracle's decision mix; and per category (``categories``, by default the
    parsed header kind) each oracle's net share and net regret.

    ``learned`` replaces the shipped model (an oracle with ``decide``; told
    each rate through ``set_link_rate_bps`` when it has it) and
    ``default_enabled`` says whether it is the engine's default (default: the
    manifest's flag). ``default_rule`` in the result applies the project's
    default rule to the learned oracle against the heuristic: the lower end
    of the 95 % interval of learned - heuristic above 0 at every rate; in
    every category with a defined net share, learned >= `PER_CATEGORY_FLOOR`
    x heuristic (when the heuristic's is positive); and, with
    ``check_decision_time``, its decision on the standard 1400-byte packets
    at most `DECISION_TIME_LIMIT` x the heuristic's at every rate (ratio of the
    fastest interleaved rounds, `_standard_decision_ratio`).
    """
    from oxidize_ml.compression.adaptive import RateBucketOracle
    from oxidize_ml.compression.features import header_kind
    from oxidize_ml.compression.learned import LearnedCompressionOracle
    from oxidize_ml.evaluation.bootstrap import bootstrap_indices, paired_ratio_ci

    t0 = time.perf_counter()
    check_int("seed", seed)
    check_int("bootstrap_rounds", bootstrap_rounds, lo=1, hi=100_000)
    rates = tuple(float(check_number("rates_mbps", r)) for r in rates_mbps)
    if not rates or min(rates) <= 0.0:
        raise ValueError(f"rates_mbps must be non-empty and > 0, got {list(rates_mbps)}")
    if not packets:
        raise ValueError("packets is empty")
    packets = list(packets)
    n = len(packets)
    unit_of = _units_index(units, n)
    n_units = int(unit_of.max()) + 1
    boot = bootstrap_indices(n_units, bootstrap_rounds, np.random.default_rng(seed))
    kinds = [header_kind(pkt[:64], len(pkt)).name for pkt in packets]
    if categories is None:
        categories = [_HEADER_CATEGORY[k] for k in kinds]
    elif len(categories) != n:
        raise ValueError(f"categories must have one entry per packet ({n}), got {len(categories)}")
    cats = np.array(list(categories), dtype=object)
    udp = np.array([k in ("RTP", "UDP") for k in kinds])

    def per_unit(x: np.ndarray) -> np.ndarray:
        return np.bincount(unit_of, weights=x, minlength=n_units)

    bar: Any = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("measuring packets", total=n)

        def report(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done)

    try:
        meas = measure_packets(packets, list(categories), progress=report if bar else None)
    finally:
        if bar is not None:
            bar.stop()

    if learned is None:
        model, shipped_enabled, why = _shipped_learned()
        if model is not None:
            learned = RateBucketOracle(
                LearnedCompressionOracle(model, link_rate_bps=rates[0] * 1e6)
            )
    else:
        shipped_enabled, why = False, "passed in"
    enabled = shipped_enabled if default_enabled is None else bool(default_enabled)
    heuristic = HeuristicCompressionOracle()
    col = _COL
    per_rate: list[dict[str, Any]] = []
    summary: dict[str, dict[str, dict[str, float | None]]] = {
        name: {"net_share": {}} for name in PCAP_ORACLES
    }
    decision_us: dict[str, dict[str, float]] = {name: {} for name in PCAP_ORACLES}
    rohc_non_udp: dict[str, int] = {}
    h_cols = np.array([col[heuristic.decide(pkt)] for pkt in packets])
    learned_deciders = (
        _per_rate_deciders(learned, "learned", [r * 1e6 for r in rates])
        if learned is not None
        else []
    )
    timed: dict[str, Callable[[bytes], Any]] = {"heuristic": heuristic.decide}
    for rate, decide in zip(rates, learned_deciders, strict=False):
        timed[f"learned@{rate:g}"] = decide
    times = time_decisions_vs_lz4(timed, packets, meas)
    h_time = times["heuristic"]["charged_s"]
    rohc_col = col[MlCompressionDecision.RohcOnly]
    rohc_non_udp["heuristic"] = int(((h_cols == rohc_col) & ~udp).sum())
    verdict_rates: dict[str, Any] = {}
    verdict_cats: dict[str, Any] = {}
    for i, rate in enumerate(rates):
        key = f"{rate:g}"
        model_cost = CompressionCostModel(link_rate_bps=rate * 1e6)
        chosen: dict[str, tuple[np.ndarray | None, float]] = {
            "heuristic": (h_cols, h_time),
            **{name: (np.full(n, col[d]), 0.0) for name, d in _FIXED.items()},
        }
        if learned_deciders:
            decide = learned_deciders[i]
            l_cols = np.array([col[decide(pkt)] for pkt in packets])
            chosen["learned"] = (l_cols, times[f"learned@{key}"]["charged_s"])
            rohc_non_udp[f"learned@{key}"] = int(((l_cols == rohc_col) & ~udp).sum())
        else:
            chosen["learned"] = (None, 0.0)
        chosen["default"] = chosen["learned"] if enabled else chosen["heuristic"]
        row: dict[str, Any] = {"rate_mbps": rate}
        util = meas.utilities(model_cost)
        rows = np.arange(n)
        best_gain = util[rows, meas.hindsight(model_cost)] - util[:, _SKIP_COL]
        best_units = per_unit(best_gain)
        net_gains: dict[str, np.ndarray] = {}
        by_cat: dict[str, dict[str, Any]] = {}
        for name in PCAP_ORACLES:
            cols, dsec = chosen[name]
            if cols is None:
                summary[name]["net_share"][key] = None
                continue
            score = score_method(name, cols, meas, model_cost, dsec)
            share = score.utility_share_net
            summary[name]["net_share"][key] = share if math.isfinite(share) else None
            decision_us[name][key] = dsec * 1e6
            row[name] = score.to_dict()
            net_gain = util[rows, cols] - model_cost.encode_cpu_weight * dsec - util[:, _SKIP_COL]
            lo, hi = paired_ratio_ci(per_unit(net_gain), best_units, boot)
            row[name]["net_share_ci95"] = [_num(lo), _num(hi)]
            row[name]["decision_mix"] = {d.name: float((cols == j).mean()) for d, j in col.items()}
            net_gains[name] = net_gain
            for c in sorted(set(cats.tolist())):
                m = cats == c
                cell = by_cat.setdefault(c, {"packets": int(m.sum())})
                share_c = _share(net_gain[m], best_gain[m])
                cell[name] = {
                    "net_share": _num(share_c),
                    "net_regret_us": float((best_gain[m] - net_gain[m]).mean()) * 1e6,
                }
        row["per_category"] = by_cat
        # Paired differences of net share (same resampled units on both sides).
        for a, b in (
            ("learned", "heuristic"),
            ("learned", "always_lz4"),
            ("learned", "always_zstd"),
            ("heuristic", "always_zstd"),
        ):
            if a in net_gains and b in net_gains:
                lo, hi = paired_ratio_ci(per_unit(net_gains[a] - net_gains[b]), best_units, boot)
                row[f"{a}_minus_{b}_ci95"] = [_num(lo), _num(hi)]
        row["hindsight_mix"] = {
            d.name: float((meas.hindsight(model_cost) == j).mean()) for d, j in col.items()
        }
        per_rate.append(row)
        if "learned" in net_gains:
            lo = row["learned_minus_heuristic_ci95"][0]
            verdict_rates[key] = {
                "learned_minus_heuristic_ci95": row["learned_minus_heuristic_ci95"],
                "better_with_95pct_confidence": lo is not None and lo > 0.0,
            }
            for c, cell in by_cat.items():
                ls, hs = cell["learned"]["net_share"], cell["heuristic"]["net_share"]
                ratio = ls / hs if ls is not None and hs is not None and hs > 0 else None
                verdict_cats.setdefault(c, {})[key] = {
                    "learned_over_heuristic": ratio,
                    "ok": ratio is None or ratio >= PER_CATEGORY_FLOOR,
                }
    mid = CompressionCostModel(link_rate_bps=rates[len(rates) // 2] * 1e6)
    costs = {
        "heuristic": _cost("heuristic", h_cols, h_time, meas).to_dict(),
        "hindsight_at_middle_rate": _cost(HINDSIGHT, meas.hindsight(mid), 0.0, meas).to_dict(),
    }
    default_name = "learned" if enabled else "heuristic"
    rohc_total = rohc_non_udp["heuristic"] + sum(
        v for k, v in rohc_non_udp.items() if k.startswith("learned@")
    ) * (2 if enabled else 1)
    default_rule: dict[str, Any] | None = None
    if learned_deciders:
        decision_check: dict[str, Any] = {
            "corpus_learned_over_heuristic": {
                k[len("learned@") :]: v["over_lz4"] / times["heuristic"]["over_lz4"]
                for k, v in times.items()
                if k.startswith("learned@")
            }
        }
        time_ok: bool | None = None
        if check_decision_time:
            std = {
                f"{rate:g}": _standard_decision_ratio(decide)
                for rate, decide in zip(rates, learned_deciders, strict=False)
            }
            decision_check["standard_packets_learned_over_heuristic"] = std
            worst = max(v["min_ratio"] for per in std.values() for v in per.values())
            decision_check["worst_min_ratio"] = worst
            time_ok = worst <= DECISION_TIME_LIMIT
        decision_check["ok"] = time_ok
        default_rule = {
            "per_rate": verdict_rates,
            "per_category": verdict_cats,
            "decision_time": decision_check,
            "passes": (
                all(v["better_with_95pct_confidence"] for v in verdict_rates.values())
                and all(v["ok"] for per in verdict_cats.values() for v in per.values())
                and time_ok is not False
            ),
            "rule": (
                "learned - heuristic net share > 0 with 95 % confidence at every rate; "
                f"learned >= {PER_CATEGORY_FLOOR:g} x heuristic net share in every category "
                "where both are defined; decision time <= "
                f"{DECISION_TIME_LIMIT:g} x the heuristic's on the standard packets at every rate"
            ),
        }
    return {
        "summary": {
            "oracles": {
                name: {"net_share": dict(summary[name]["net_share"])} for name in PCAP_ORACLES
            },
            "rohc_only_non_udp": int(rohc_total),
        },
        "seed": seed,
        "rates_mbps": list(rates),
        "packets": {
            "evaluated": n,
            "per_kind": {c: list(categories).count(c) for c in sorted(set(categories))},
            "bytes": int(sum(len(p) for p in packets)),
            "bootstrap_units": n_units,
        },
        "default_oracle": default_name,
        "learned_model": "loaded" if learned is not None else why,
        "rohc_only_non_udp_per_oracle": rohc_non_udp,
        "decision_us": decision_us,
        "decision_time": {
            k: {"charged_us": v["charged_s"] * 1e6, "raw_us": v["raw_s"] * 1e6, **v}
            for k, v in times.items()
        },
        "per_rate": per_rate,
        "costs": costs,
        "default_rule": default_rule,
        "wall_s": time.perf_counter() - t0,
        "notes": (
            "net share = (U(oracle) - decision time - U(never)) / (U(hindsight) - U(never)), "
            "utilities from measured frame sizes and encode/decode times (RohcOnly measured "
            "on the flows in capture order); decision time charged on the codec measurements' "
            "time scale (time_decisions_vs_lz4); timings vary run to run on a shared machine"
        ),
    }


def evaluate_heldout(
    *,
    seed: int = 0,
    n_packets: int = MAX_CORPUS_PACKETS,
    rates_mbps: tuple[float, ...] = (5, 20, 100),
    bootstrap_rounds: int = 1000,
    learned: Any = None,
    default_enabled: bool | None = None,
    check_decision_time: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """`evaluate_packets` on the held-out corpus, with the default rule's verdict.

    The corpus is the held-out side of the compression split
    (`oxidize_ml.evaluation.corpus.corpus_side`: seed ``EVAL_SEED_BASE + seed``,
    real files whose path hash puts them on the held-out side, which no
    training corpus uses). Categories are the corpus categories (the scenario
    families of the default rule); bootstrap units are source files, each
    generated packet its own unit.
    """
    from oxidize_ml.evaluation.corpus import HELDOUT_FILE_SHARE, corpus_side
    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE

    check_int("seed", seed, lo=0)
    check_int("n_packets", n_packets, lo=1, hi=MAX_CORPUS_PACKETS)
    corpus, counts = corpus_side(
        seed=EVAL_SEED_BASE + seed,
        max_packets=n_packets,
        heldout=True,
        file_share=HELDOUT_FILE_SHARE,
    )
    res = evaluate_packets(
        [p.data for p in corpus],
        rates_mbps=rates_mbps,
        seed=seed,
        progress=progress,
        bootstrap_rounds=bootstrap_rounds,
        categories=[p.category for p in corpus],
        units=[p.source if not p.generated else f"{p.source}#{i}" for i, p in enumerate(corpus)],
        learned=learned,
        default_enabled=default_enabled,
        check_decision_time=check_decision_time,
    )
    res["corpus"] = {"seed": EVAL_SEED_BASE + seed, **counts}
    return res
