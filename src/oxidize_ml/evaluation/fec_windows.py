"""The report's held-out loss/FEC section: every loss predictor and FEC policy on the
whole held-out split (trace windows at RTT 40 and 100 ms plus the held-out scenarios),
with residual-vs-overhead curves, the hindsight bound and paired bootstrap intervals.

This is the default rule's evidence for the loss predictor (the earlier "Loss
prediction and FEC" section compares per-packet predictors through one table);
`oxidize_ml.evaluation.fec.evaluate_fec_heldout` does the work, this module adapts
it to the report's section interface (``run``, ``plot``, a result with
``markdown``/``headline``/``to_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oxidize_ml.evaluation.fec import evaluate_fec_heldout, markdown_traces, plot_traces

QUICK_DURATION_S = 15.0
"""simulated seconds per run with ``quick``"""


@dataclass(frozen=True, slots=True)
class FecWindowsResult:
    data: dict[str, Any]
    """`evaluate_fec_heldout`'s output"""

    def markdown(self) -> str:
        return markdown_traces(self.data)

    def headline(self) -> list[str]:
        pooled = self.data.get("pooled", {})
        ci = self.data.get("ci", {})
        default = self.data.get("summary", {}).get("default", "?")
        parts = []
        for name, v in pooled.items():
            ratio = v.get("residual_ratio_vs_ewma")
            if name == "ewma" or ratio is None or not math.isfinite(float(ratio)):
                continue
            lo, hi = ci.get(name, {}).get("residual_ratio_vs_ewma", [None, None])
            interval = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
            parts.append(f"{name} {float(ratio):.2f}x{interval}")
        return [
            f"Loss/FEC, held-out split (default: {default}): residual loss at the EWMA's "
            "overhead vs the EWMA's, 95 % CI: " + ", ".join(parts)
        ]

    def to_dict(self) -> dict[str, Any]:
        return self.data


def run(
    *,
    seed: int = 0,
    quick: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> FecWindowsResult:
    """Score every predictor on the held-out split (see the module docstring)."""
    data = evaluate_fec_heldout(
        seed=seed, duration_s=QUICK_DURATION_S if quick else 30.0, n_seeds=1 if quick else 2
    )
    if progress is not None:
        progress(1, 1, "held-out split")
    return FecWindowsResult(data)


def plot(result: FecWindowsResult, out_dir: str | Path) -> list[Path]:
    return plot_traces(result.data, out_dir)
