"""Simulator speed: simulated packets per second of wall time.

The reference workload (the brief's target, at least 300,000 packets/s) is
one RFC 9002 NewReno flow on a constant 12 Mbit/s link with 40 ms RTT and a
1-BDP buffer (the ``wired-clean`` scenario), recording the per-interval
series as `simulate` does by default. Aurora's Python simulator does about
80,000 packets/s on the same machines (REFERENCES section 2).
"""

from __future__ import annotations

import statistics
import time

from oxidize_ml.sim.core import Simulation
from oxidize_ml.sim.scenarios import get_scenario


def measure_packets_per_second(
    seconds_simulated: float = 30.0,
    seed: int = 0,
    *,
    repeats: int = 5,
    controller: str = "reno",
    scenario: str = "wired-clean",
) -> float:
    """Median over ``repeats`` runs of packets sent / wall-clock seconds.

    Parameters
    ----------
    seconds_simulated
        Simulated length of each run (30 s of the reference link is about
        30,000 packets).
    seed
        Run seed.
    repeats
        Runs measured; the median is returned (the machine is shared, single
        runs vary).
    controller, scenario
        What to run (defaults: the reference workload).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sc = get_scenario(scenario)
    rates = []
    for _ in range(repeats):
        sim = Simulation(sc, controller, seed=seed, duration_s=seconds_simulated)
        t0 = time.perf_counter()
        sim.advance(sim.end_s)
        wall = time.perf_counter() - t0
        rates.append(sim.packets_sent / wall if wall > 0.0 else float("inf"))
    return float(statistics.median(rates))


def main() -> None:  # pragma: no cover - manual use: python -m oxidize_ml.sim.bench
    print(f"{measure_packets_per_second():,.0f} simulated packets/s (median of 5)")


if __name__ == "__main__":  # pragma: no cover
    main()
