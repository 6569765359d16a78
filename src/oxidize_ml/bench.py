"""`oxidize-ml bench`: medians of the engine's decisions against the spec and a peer.

Each figure is the median over ``repeats`` batches of the mean per-call time in
a batch of ``number`` calls, measured through `MlEngine` with its lock and
statistics in place. Peers are measured in the same run, so the ratios hold on
any machine even when absolute times do not.

A call is timed as a user's code writes it: the statement (``sp(ctx, now=t)``)
is compiled into timeit's loop, for the subject and the peer alike. A wrapper
per call would add its own cost to both, which is not the same share of each:
a ``functools.partial`` with a keyword argument adds about 0.1 us, 5 % of lz4
compressing a packet but 20 % of `MlEngine.select_path`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.machinery
import itertools
import json
import os
import statistics
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class BenchRow:
    name: str
    median_us: float
    spec_us: float | None = None
    """the spec's figure for this operation"""
    target_us: float | None = None
    """our own target (an issue's acceptance figure)"""
    peer: str | None = None
    peer_us: float | None = None
    unit: str = "us"
    note: str = ""

    @property
    def ratio_spec(self) -> float | None:
        return None if not self.spec_us else self.median_us / self.spec_us

    @property
    def ratio_peer(self) -> float | None:
        return None if not self.peer_us else self.median_us / self.peer_us

    @property
    def meets_target(self) -> bool | None:
        if self.target_us is None:
            return None
        if self.unit == "pkt/s":
            return self.median_us >= self.target_us
        return self.median_us <= self.target_us

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(
            ratio_spec=self.ratio_spec, ratio_peer=self.ratio_peer, meets_target=self.meets_target
        )
        return d


def median_stmt_us(
    stmt: str, namespace: dict[str, Any], *, number: int = 2000, repeats: int = 15
) -> float:
    """Median over ``repeats`` batches of the mean time of ``stmt`` (microseconds).

    ``stmt`` runs in timeit's compiled loop with ``namespace`` as its globals,
    so nothing but the statement itself is timed per call.
    """
    timer = timeit.Timer(stmt, globals=namespace)
    timer.timeit(min(number, 200))  # warm caches and lazy paths
    return statistics.median(timer.timeit(number) / number * 1e6 for _ in range(repeats))


def median_call_us(fn: Callable[[], object], *, number: int = 2000, repeats: int = 15) -> float:
    """`median_stmt_us` of ``fn()`` (the call of a zero-argument callable)."""
    return median_stmt_us("fn()", {"fn": fn}, number=number, repeats=repeats)


def sample_packets(seed: int = 0, size: int = 1400) -> dict[str, bytes]:
    """Deterministic 1400-byte packets: English-like text, random bytes, JSON."""
    rng = np.random.default_rng(seed)
    words = [
        "the",
        "network",
        "packet",
        "loss",
        "window",
        "path",
        "model",
        "train",
        "delay",
        "queue",
        "cubic",
        "bbr",
        "reno",
        "stream",
        "flow",
        "latency",
        "jitter",
        "throughput",
        "congestion",
        "control",
        "engine",
    ]
    text = b""
    while len(text) < size:
        text += (" ".join(rng.choice(words, 12)) + ". ").encode()
    records: list[str] = []
    while sum(len(r) for r in records) < size:
        i = len(records)
        records.append(
            json.dumps(
                {
                    "id": i,
                    "user": f"u{int(rng.integers(1_000_000))}",
                    "rtt_ms": round(float(rng.random() * 80), 3),
                    "ok": bool(rng.random() > 0.1),
                }
            )
        )
    js = ("[" + ",".join(records) + "]").encode()
    return {"text": text[:size], "random": rng.bytes(size), "json": js[:size]}


def _warm_up(engine: Any) -> tuple[Any, list[float], Callable[[], float]]:
    """Feed ``engine`` 50 intervals and every path's metrics and rewards, so the timed
    calls run in steady state; returns the features, the clock and its stepper."""
    from oxidize_ml.features import NetworkFeatures
    from oxidize_ml.types import PathId, PathMetrics, TrafficContext

    f = NetworkFeatures(
        rtt_us=50_000,
        rtt_var_us=5_000,
        bandwidth_bps=100_000_000,
        loss_rate=0.01,
        loss_trend=0.0,
        inflight=100,
        cwnd=65535,
        time_since_loss_ms=1000,
        buffer_occupancy=0.3,
        recent_retx=0,
    )
    now = [1_700_000_000.0]

    def step_time() -> float:
        now[0] += 0.01
        return now[0]

    for _ in range(50):
        engine.observe(f, throughput_bps=90e6, now=step_time())
    for p in PathId:
        engine.update_path_metrics(
            PathMetrics(path_id=p, rtt_us=20_000 + 10_000 * int(p), bandwidth_bps=5e7),
            now=step_time(),
        )
        for c in TrafficContext:
            engine.update_path_reward(p, c, 0.5, now=step_time())
    return f, now, step_time


_NEXT_INTERVAL = "clock[0] += 0.01; "
"""the statement prefix that moves `_namespace`'s clock to the next 10-ms interval"""


def _timer(engine: Any, *, quick: bool) -> tuple[dict[str, Any], Callable[[str], float]]:
    """The names the timed statements use, and the timer of a statement (microseconds).

    Names: the engine's bound decisions, lz4, the warmed-up features ``f`` (and
    ``alternating`` between two observations), the time ``t``, the mutable ``clock``
    that `_NEXT_INTERVAL` advances and ``pkt``, the 1400-byte text packet (a caller
    may rebind it).
    """
    import lz4.block

    from oxidize_ml.types import TrafficContext

    f, clock, _ = _warm_up(engine)
    ns: dict[str, Any] = {
        "fec": engine.fec_decision,
        "cc": engine.congestion_action,
        "observe": engine.observe,
        "path": engine.select_path,
        "compress": engine.compression_decision,
        "lz4": lz4.block.compress,
        "ctx": TrafficContext.Gaming,
        "f": f,
        "alternating": itertools.cycle((f, dataclasses.replace(f, loss_rate=0.02, rtt_us=55_000))),
        "t": clock[0],
        "clock": clock,
        "pkt": sample_packets()["text"],
    }
    time_us = functools.partial(
        median_stmt_us, namespace=ns, number=300 if quick else 2000, repeats=5 if quick else 15
    )
    return ns, time_us


def bench_engine(*, quick: bool = False) -> list[BenchRow]:
    """Decision latencies through `MlEngine` (heuristic paths unless models are loaded)."""
    from oxidize_ml.engine import EngineConfig, MlEngine

    engine = MlEngine(EngineConfig(collect_training=False))
    ns, time_us = _timer(engine, quick=quick)
    lz_text = time_us("lz4(pkt, store_size=False)")
    rows = [
        BenchRow("fec_decision", time_us("fec(f, now=clock[0])"), spec_us=50.0, target_us=10.0),
        BenchRow(
            "fec_decision, new features each call (spec usage: a full observation)",
            time_us(_NEXT_INTERVAL + "fec(next(alternating), now=clock[0])"),
            spec_us=50.0,
            peer="lz4 1400 B text",
            peer_us=lz_text,
            target_us=5.0 * lz_text,
            note="target <= 5x lz4",
        ),
        BenchRow("congestion_action", time_us("cc(now=clock[0])"), spec_us=30.0, target_us=6.0),
        BenchRow("select_path", time_us("path(ctx, now=t)"), spec_us=1.0, target_us=1.0),
        BenchRow(
            "observe (per interval, feeds all components)",
            time_us(_NEXT_INTERVAL + "observe(f, throughput_bps=90e6, now=clock[0])"),
        ),
    ]
    for kind, pkt in sample_packets().items():
        ns["pkt"] = pkt
        dec = time_us("compress(pkt)")
        lz = time_us("lz4(pkt, store_size=False)")
        rows.append(
            BenchRow(
                f"compression_decision 1400 B {kind}",
                dec,
                spec_us=5.0,
                peer="lz4.block.compress",
                peer_us=lz,
                target_us=lz,
                note="target: no slower than compressing",
            )
        )
    return rows


def bench_learned_ratios(*, quick: bool = False) -> list[BenchRow]:
    """Decisions with every shipped learned model loaded, as ratios to lz4 compressing
    the same 1400-byte text packet in the same run (the architecture issue's targets)."""
    from oxidize_ml.engine import EngineConfig, MlEngine
    from oxidize_ml.models import default_model_dir

    directory = default_model_dir()
    if directory is None:
        return []
    engine = MlEngine(EngineConfig(collect_training=False, load_default_models=False))
    status = engine.load_models(directory)
    loaded = ", ".join(sorted(k for k, v in status.items() if v == "loaded")) or "none"
    _, time_us = _timer(engine, quick=quick)
    lz = time_us("lz4(pkt, store_size=False)")
    cases = [
        # New features each call (the spec's usage): one LSTM step from carried state,
        # and the full observation the engine makes of them.
        (
            "fec_decision (new features)",
            _NEXT_INTERVAL + "fec(next(alternating), now=clock[0])",
            5.0,
        ),
        (
            "observe + congestion_action",
            _NEXT_INTERVAL + "observe(f, throughput_bps=90e6, now=clock[0]); cc(now=clock[0])",
            5.0,
        ),
        ("compression_decision 1400 B text", "compress(pkt)", 0.5),
        ("select_path", "path(ctx, now=t)", 0.25),
    ]
    rows = []
    for name, stmt, ratio in cases:
        us = time_us(stmt)
        rows.append(
            BenchRow(
                f"learned models: {name}",
                us,
                peer="lz4 1400 B text",
                peer_us=lz,
                target_us=ratio * lz,
                note=f"target <= {ratio}x lz4; loaded: {loaded}",
            )
        )
    return rows


def bench_fork(*, quick: bool = False) -> list[BenchRow]:
    """`MlEngine.fork()` (one engine per connection) against creating an aioquic
    `QuicConnection` in the same run, and the memory of many forks."""
    import tracemalloc

    from oxidize_ml.engine import EngineConfig, MlEngine

    engine = MlEngine(EngineConfig(collect_training=False))
    number = 200 if quick else 1000
    repeats = 5 if quick else 11
    fork_us = median_call_us(engine.fork, number=number, repeats=repeats)
    peer_us: float | None = None
    try:
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.connection import QuicConnection

        config = QuicConfiguration(is_client=True)
        peer_us = median_call_us(
            lambda: QuicConnection(configuration=config), number=number, repeats=repeats
        )
    except ImportError:  # the aioquic extra is not installed
        pass
    n = 1000 if quick else 10_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        forks = [engine.fork() for _ in range(n)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del forks
    return [
        BenchRow(
            "fork (one engine per connection)",
            fork_us,
            peer="aioquic QuicConnection()",
            peer_us=peer_us,
            target_us=None if peer_us is None else 0.5 * peer_us,
            note="target <= 0.5x creating a QuicConnection",
        ),
        BenchRow(
            f"fork memory, {n:,} engines",
            used / n / 1024,
            unit="KB/fork",
            target_us=16.0,
            note=f"{used / 2**20:.1f} MiB in total (tracemalloc)",
        ),
    ]


def bench_simulator(*, quick: bool = False) -> list[BenchRow]:
    """Simulated packets per second of wall time (one Reno flow, 12 Mbit/s, 40 ms)."""
    try:
        from oxidize_ml.sim.bench import measure_packets_per_second
    except ImportError:
        return []
    pps = measure_packets_per_second(seconds_simulated=10.0 if quick else 30.0, seed=0)
    return [
        BenchRow(
            "simulator, Reno 12 Mbit/s 40 ms",
            pps,
            unit="pkt/s",
            target_us=300_000.0,
            peer="Aurora's simulator (REFERENCES 2)",
            peer_us=80_000.0,
        )
    ]


def bench_models(*, quick: bool = False) -> list[BenchRow]:
    """Learned-model inference: numpy runtime against onnxruntime in the same run."""
    try:
        from oxidize_ml.bench_models import bench_models as _bench
    except ImportError:
        return []
    targets = {"lstm": 50.0, "dqn": 15.0}
    spec = {"lstm": 50.0, "dqn": 30.0}
    rows = []
    for r in _bench(quick=quick):
        key = {"lstm_step": "lstm", "dqn_argmax": "dqn"}.get(r.name, "")
        rows.append(
            BenchRow(
                f"model: {r.name}",
                r.numpy_us,
                spec_us=spec.get(key),
                target_us=targets.get(key),
                peer="onnxruntime",
                peer_us=r.onnxruntime_us,
                note="random weights: timing only",
            )
        )
    return rows


def run_all(*, quick: bool = False) -> list[BenchRow]:
    rows = bench_engine(quick=quick)
    rows += bench_learned_ratios(quick=quick)
    rows += bench_fork(quick=quick)
    rows += bench_models(quick=quick)
    rows += bench_simulator(quick=quick)
    return rows


def compiled_modules(package_dir: Path | None = None) -> list[str]:
    """Extension modules in the installed package (relative paths, sorted).

    Found by file suffix, not from a list: only a mypyc build (``OXIDIZE_ML_COMPILE=1
    pip install .``) puts extension modules in the package, one per compiled module.
    """
    if package_dir is None:
        import oxidize_ml

        package_dir = Path(oxidize_ml.__file__).parent
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(
        p.relative_to(package_dir).as_posix()
        for p in package_dir.rglob("*")
        if p.name.endswith(suffixes) and p.is_file()
    )


def environment() -> dict[str, str]:
    import platform

    compiled = compiled_modules()
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "compiled": f"mypyc, {len(compiled)} modules" if compiled else "no (pure Python)",
    }
