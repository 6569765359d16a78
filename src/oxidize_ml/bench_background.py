"""Decision latency while the background retrainer trains, for ``oxidize-ml bench``.

`measure_decision_latency` times the engine's per-packet calls with the
`oxidize_ml.training.background.BackgroundTrainer` idle and while it runs rounds
back to back; ``python -m oxidize_ml.bench_background [isolation [seconds]]`` prints
it as JSON. A benchmark, not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from oxidize_ml.features import NetworkFeatures
from oxidize_ml.training.background import BackgroundTrainer, BackgroundTrainerConfig

log = logging.getLogger(__name__)


def _features_at(i: int, rng: np.random.Generator) -> NetworkFeatures:
    return NetworkFeatures(
        rtt_us=40_000 + 5_000 * math.sin(i / 50),
        rtt_var_us=3_000,
        bandwidth_bps=50e6,
        loss_rate=0.05 if rng.random() < 0.03 else 0.0,
        loss_trend=0.0,
        inflight=60,
        cwnd=90_000,
        time_since_loss_ms=100,
        buffer_occupancy=0.3 + 0.2 * math.sin(i / 70),
        recent_retx=0,
    )


def measure_decision_latency(
    *,
    isolation: str = "process",
    duration_s: float = 20.0,
    idle_s: float = 10.0,
    interval_s: float = 0.002,
    seed: int = 0,
    config: BackgroundTrainerConfig | None = None,
    prefill_rows: int = 20_000,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Decision latency p50/p99 with the trainer idle vs while a round trains.

    One engine; a decision loop on this thread calls, every ``interval_s``,
    ``observe`` + ``fec_decision`` + ``congestion_action`` +
    ``compression_decision`` and times each call with ``perf_counter_ns``.
    Phase 1 (``idle_s``): no trainer. Phase 2: the telemetry of
    ``prefill_rows`` observations is in the engine, a `BackgroundTrainer`
    thread runs rounds back to back (``force``) for ``duration_s``. Returns
    microsecond percentiles per call and phase, the p99 ratios, and the
    rounds completed. A benchmark, not a test: numbers depend on the machine.
    """
    from oxidize_ml.engine import EngineConfig, MlEngine

    rng = np.random.default_rng(seed)
    engine = MlEngine(EngineConfig(load_default_models=False, collect_training=True, seed=seed))
    payload = (b'{"user": "alice", "event": "view", "ok": true} ' * 28)[:1200]
    clock = [1_700_000_000.0]
    i_obs = [0]

    def tick(samples: dict[str, list[int]]) -> None:
        clock[0] += 0.01
        t = clock[0]
        f = _features_at(i_obs[0], rng)
        i_obs[0] += 1
        for name, call in (
            ("observe", lambda: engine.observe(f, now=t)),
            ("fec_decision", lambda: engine.fec_decision(now=t)),
            ("congestion_action", lambda: engine.congestion_action(now=t)),
            ("compression_decision", lambda: engine.compression_decision(payload)),
        ):
            t0 = time.perf_counter_ns()
            call()
            samples[name].append(time.perf_counter_ns() - t0)

    def phase(seconds: float) -> dict[str, list[int]]:
        samples: dict[str, list[int]] = {
            k: [] for k in ("observe", "fec_decision", "congestion_action", "compression_decision")
        }
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            tick(samples)
            time.sleep(interval_s)
        return samples

    def summary(samples: dict[str, list[int]]) -> dict[str, dict[str, float]]:
        out = {}
        for k, v in samples.items():
            a = np.asarray(v, dtype=np.float64) / 1e3
            out[k] = {
                "n": int(a.size),
                "p50_us": float(np.percentile(a, 50)),
                "p99_us": float(np.percentile(a, 99)),
                "max_us": float(a.max()),
            }
        return out

    # Phase 1: idle (the collector records, nobody trains).
    for _ in range(prefill_rows):  # the history a round will train on
        tick(
            {
                k: []
                for k in ("observe", "fec_decision", "congestion_action", "compression_decision")
            }
        )
    if on_progress:
        on_progress("idle phase")
    idle = summary(phase(idle_s))
    cfg = config or BackgroundTrainerConfig(
        isolation=isolation,
        min_new_samples=1,
        poll_interval_s=0.01,
        max_epochs=3,
        min_heldout_positives=1,
        seed=seed,
    )
    cfg = dataclasses.replace(cfg, isolation=isolation)
    trainer = BackgroundTrainer(engine, cfg)
    stop = threading.Event()

    def rounds() -> None:
        while not stop.is_set():
            try:
                trainer.run_once(force=True)
            except Exception:
                log.exception("benchmark round failed")
                return

    if on_progress:
        on_progress("training phase")
    worker = threading.Thread(target=rounds, daemon=True)
    worker.start()
    busy = summary(phase(duration_s))
    stop.set()
    trainer._stop.set()  # end a running worker fit promptly
    worker.join(120)
    trainer.stop()
    ratios = {k: busy[k]["p99_us"] / idle[k]["p99_us"] for k in idle if idle[k]["p99_us"] > 0}
    return {
        "isolation": isolation,
        "idle": idle,
        "training": busy,
        "p99_ratio": ratios,
        "rounds": [dataclasses.asdict(r) for r in trainer.reports()],
        "interval_s": interval_s,
        "cpu_count": os.cpu_count(),
        "median_p99_ratio": statistics.median(ratios.values()) if ratios else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m oxidize_ml.bench_background [isolation [seconds]]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    isolation = args[0] if args else "process"
    seconds = float(args[1]) if len(args) > 1 else 20.0
    res = measure_decision_latency(
        isolation=isolation, duration_s=seconds, on_progress=lambda m: print(m, file=sys.stderr)
    )
    print(json.dumps({k: v for k, v in res.items() if k != "rounds"}, indent=2))
    print(
        json.dumps(
            [
                {k: r[k] for k in ("round", "swapped", "reason", "fit_s", "eval_s")}
                for r in res["rounds"]
            ],
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
