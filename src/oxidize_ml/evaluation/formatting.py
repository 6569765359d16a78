"""Numbers for the evaluations' JSON and Markdown tables, defined once.

Every evaluation writes NaN and infinities as JSON ``null`` and prints a
missing value as a dash; these are the functions they share.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["fixed", "interval", "json_number", "percent"]


def json_number(x: Any) -> Any:
    """``x`` for JSON: a finite float (numpy floats included) as a float, NaN and
    infinities as None; anything else unchanged."""
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def fixed(x: float | None, digits: int, *, missing: str = "-") -> str:
    """``x`` with ``digits`` decimals, or ``missing`` for None, NaN and infinities."""
    return missing if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def percent(x: float, digits: int, *, missing: str = "-") -> str:
    """A share in [0, 1] as ``"12.3 %"`` (``digits`` decimals), or ``missing``."""
    return missing if not math.isfinite(x) else f"{x * 100:.{digits}f} %"


def interval(ci: tuple[float, float], digits: int = 2) -> str:
    """A confidence interval as ``"[lo, hi]"``, or ``"[-]"`` when an end is not finite."""
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "[-]"
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"
