"""Which scenarios and traces train models and which are held out for evaluation.

One definition for every trainer and every evaluation, so no learned model is
ever judged on data it was trained on.

- Training: the built-in scenarios in `TRAIN_SCENARIOS`, randomised synthetic
  links (domain randomisation, seeds from `TRAIN_SEED_BASE`), and the Mahimahi
  traces in `TRAIN_TRACES` when the shared trace folder exists.
- Held out: the built-in scenarios in `HELDOUT_SCENARIOS` (a capacity step and a
  long-RTT satellite link: the cases independent evaluations found learned
  controllers weakest on, REFERENCES section 2), the Mahimahi traces in
  `HELDOUT_TRACES`, and seeds from `EVAL_SEED_BASE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TRAIN_SCENARIOS: tuple[str, ...] = (
    "wired-clean",
    "high-bdp",
    "shallow-buffer",
    "random-loss",
    "burst-loss",
    "cellular-synthetic",
    "competing-flows",
)
HELDOUT_SCENARIOS: tuple[str, ...] = ("step-change", "satellite")

TRAIN_TRACES: tuple[str, ...] = (
    "TMobile-LTE-short.down",
    "TMobile-LTE-short.up",
    "Verizon-EVDO-driving.down",
    "Verizon-EVDO-driving.up",
)
HELDOUT_TRACES: tuple[str, ...] = (
    "Verizon-LTE-short.down",
    "Verizon-LTE-short.up",
    "ATT-LTE-driving-2016.down",
    "ATT-LTE-driving-2016.up",
)

TRAIN_SEED_BASE = 1_000
"""training runs use seeds TRAIN_SEED_BASE + i"""
EVAL_SEED_BASE = 9_000
"""evaluation runs use seeds EVAL_SEED_BASE + i (disjoint from training)"""

ENV_TRACE_DIR = "OXIDIZE_TRACE_DIR"


def trace_dir() -> Path | None:
    """The Mahimahi trace folder, or None when absent.

    ``$OXIDIZE_TRACE_DIR`` if set, else ``../shared/traces/mahimahi`` beside the
    repository checkout (the layout of the development and CI machines). The
    project works without it: evaluations then use built-in scenarios only.
    """
    env = os.environ.get(ENV_TRACE_DIR)
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "traces" / "mahimahi"
        if (parent / "pyproject.toml").is_file() and cand.is_dir():
            return cand
    return None


def trace_paths(names: tuple[str, ...]) -> list[Path]:
    """Paths of the named traces that exist (empty without the trace folder)."""
    d = trace_dir()
    if d is None:
        return []
    return [d / n for n in names if (d / n).is_file()]


def heldout_provenance() -> dict[str, Any]:
    """The held-out split as a model manifest records it (scenarios, the trace files
    present on this machine, the seed base)."""
    return {
        "scenarios": list(HELDOUT_SCENARIOS),
        "traces": [p.name for p in trace_paths(HELDOUT_TRACES)],
        "seed_base": EVAL_SEED_BASE,
    }
