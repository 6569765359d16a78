"""`three_field_maker`: the same object as the dataclass's constructor builds, and only
for the classes it is safe for."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from oxidize_ml._frozen import three_field_maker
from oxidize_ml.congestion.observation import CongestionObservation, make_observation
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.types import FecDecision, make_fec_decision


def test_made_objects_equal_constructed_ones_in_every_respect() -> None:
    f = NetworkFeatures(
        rtt_us=40_000, rtt_var_us=1_000, bandwidth_bps=12e6, loss_rate=0.0, loss_trend=0.0,
        inflight=40, cwnd=60_000,
    )  # fmt: skip
    pairs = [
        (make_fec_decision(0.02, 0.2, True), FecDecision(0.02, 0.2, True)),
        (make_observation(f, 12e6, 60_000), CongestionObservation(f, 12e6, 60_000)),
    ]
    for made, built in pairs:
        assert type(made) is type(built)
        assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
        assert dataclasses.astuple(made) == dataclasses.astuple(built)
        assert pickle.loads(pickle.dumps(made)) == built
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.__setattr__(dataclasses.fields(made)[0].name, 1)


def test_classes_it_would_skip_checks_of_are_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int
        b: int
        c: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("a must be >= 0")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Two:
        a: int
        b: int

    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        a: int
        b: int
        c: int

    for cls in (Checked, Two, Unslotted):
        with pytest.raises(TypeError, match=cls.__name__):
            three_field_maker(cls)
