"""The evaluations' shared number formats: missing values, JSON nulls, intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from oxidize_ml.evaluation.formatting import fixed, interval, json_number, percent


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_non_finite_numbers_are_json_null_and_a_dash(bad: float) -> None:
    assert json_number(bad) is None
    assert fixed(bad, 2) == "-" and fixed(bad, 2, missing="n/a") == "n/a"
    assert percent(bad, 1) == "-"
    assert interval((0.1, bad)) == "[-]"


def test_numpy_floats_become_plain_floats_and_other_values_pass() -> None:
    out = json_number(np.float32(0.25))
    assert type(out) is float and out == 0.25
    json.dumps([json_number(np.float64(1.5)), json_number(3), json_number("x")])
    assert json_number(None) is None and json_number(7) == 7


def test_formats() -> None:
    assert fixed(None, 1) == "-" and fixed(1.23456, 3) == "1.235"
    assert percent(0.1234, 1) == "12.3 %" and percent(0.5, 0) == "50 %"
    assert interval((0.91234, 1.0)) == "[0.91, 1.00]"
    assert interval((0.91234, 1.0), 3) == "[0.912, 1.000]"
