"""Synthetic traffic for ``oxidize-ml serve-metrics --demo``: something to look at.

A random-walk link (bandwidth, RTT, loss) drives every engine call at a fixed
rate in a background thread. It exists to exercise the exporter and
dashboards; it is not a network model (that is `oxidize_ml.sim`).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.paths.reward import calculate_path_reward
from oxidize_ml.types import PathId, PathMetrics, TrafficContext

PAYLOAD_BYTES = 1200
"""a typical packet payload under a 1280-1500 byte MTU"""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Synthetic traffic settings."""

    rate_hz: float = 100.0
    """engine rounds per second (each round: observe, FEC, cwnd, compress, path)"""
    seed: int = 0
    """seed of the random walk and payload choice"""

    def __post_init__(self) -> None:
        check_number("rate_hz", self.rate_hz, lo=0.1, hi=10_000.0)
        check_int("seed", self.seed, lo=0)


class DemoDriver:
    """Runs synthetic rounds against ``engine`` until `stop`."""

    def __init__(self, engine: Any, config: DemoConfig | None = None) -> None:
        self.engine = engine
        self.config = config if config is not None else DemoConfig()
        self._rng = random.Random(self.config.seed)
        self._stop = threading.Event()
        self.rounds = 0
        self._bw_bps = 50e6
        self._rtt_us = 40_000.0
        self._loss = 0.005
        self._since_loss_ms = 0.0
        text = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\n\r\n"
        self._payloads = (
            (text * (PAYLOAD_BYTES // len(text) + 1))[:PAYLOAD_BYTES],
            json.dumps([{"id": i, "ok": True, "v": i * 0.5} for i in range(60)]).encode()[
                :PAYLOAD_BYTES
            ],
        )
        self._thread = threading.Thread(target=self._run, name="oxidize-ml-demo", daemon=True)

    def start(self) -> DemoDriver:
        self._thread.start()
        return self

    def step(self, now: float) -> None:
        """One synthetic round at time ``now`` (seconds)."""
        rng, e = self._rng, self.engine
        # Multiplicative random walks, clamped to a plausible cellular/wired range.
        self._bw_bps = min(1e9, max(1e6, self._bw_bps * math.exp(rng.gauss(0.0, 0.05))))
        self._rtt_us = min(400_000.0, max(5_000.0, self._rtt_us * math.exp(rng.gauss(0.0, 0.03))))
        self._loss = min(0.2, max(0.0, self._loss + rng.gauss(0.0, 0.002)))
        lost = rng.random() < self._loss
        self._since_loss_ms = 0.0 if lost else self._since_loss_ms + 1000.0 / self.config.rate_hz
        cwnd = e.cwnd
        f = NetworkFeatures(
            rtt_us=self._rtt_us,
            rtt_var_us=self._rtt_us * 0.1,
            bandwidth_bps=self._bw_bps,
            loss_rate=self._loss,
            loss_trend=0.0,
            inflight=max(0, int(cwnd / 1200 * rng.uniform(0.5, 1.0))),
            cwnd=cwnd,
            time_since_loss_ms=self._since_loss_ms,
            buffer_occupancy=rng.uniform(0.0, 0.6),
            recent_retx=1 if lost else 0,
        )
        e.observe(f, throughput_bps=self._bw_bps * rng.uniform(0.6, 1.0), now=now)
        e.fec_decision(now=now)
        e.congestion_action(now=now)
        kind = rng.randrange(3)
        payload = rng.randbytes(PAYLOAD_BYTES) if kind == 2 else self._payloads[kind]
        e.compress(payload, now=now)
        ctx = TrafficContext(rng.randrange(len(TrafficContext)))
        path = e.select_path(ctx, now=now)
        rtt = self._rtt_us * (1.0 + 0.3 * int(path))
        e.update_path_metrics(
            PathMetrics(
                path_id=path,
                rtt_us=rtt,
                bandwidth_bps=self._bw_bps,
                loss_rate=self._loss,
                last_update_ms=now * 1000.0,
            ),
            now=now,
        )
        reward = calculate_path_reward(ctx, rtt, self._loss, self._bw_bps / 1e6)
        e.update_path_reward(PathId(path), ctx, reward, now=now)
        self.rounds += 1

    def _run(self) -> None:
        period = 1.0 / self.config.rate_hz
        while not self._stop.wait(period):
            self.step(time.time())

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
