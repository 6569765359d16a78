"""Small argument checks shared by every public value type.

Errors name the field and the allowed range so the caller can fix the input.
"""

from __future__ import annotations

import math
from numbers import Real


def check_number(
    name: str, value: object, *, lo: float | None = 0.0, hi: float | None = None
) -> float:
    """Return ``value`` as a float after checking type, finiteness and range.

    ``bool`` is rejected although it is an ``int``: ``rtt_us=True`` is a bug.
    """
    tp = type(value)
    # Fast path: isinstance(x, Real) is an ABC check costing ~0.5 us.
    if (
        tp is not float
        and tp is not int
        and (isinstance(value, bool) or not isinstance(value, Real))
    ):
        raise TypeError(f"{name} must be a real number, got {tp.__name__}")
    try:
        v = float(value)  # type: ignore[arg-type]
    except OverflowError:
        # An int beyond float range (10**400) is as invalid as inf.
        bits = value.bit_length() if isinstance(value, int) else "?"
        raise ValueError(f"{name} must be finite, got an int of {bits} bits") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value!r}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value!r}")
    return v


def check_int(name: str, value: object, *, lo: int | None = 0, hi: int | None = None) -> int:
    """Return ``value`` as an int after checking type and range (floats are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value!r}")
    return value
