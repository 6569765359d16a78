"""Random loss models: Bernoulli and Gilbert-Elliott (REFERENCES section 3)."""

from __future__ import annotations

import numpy as np
import pytest

from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss


def draw(model, n: int, seed: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    s = model.sampler(np.random.default_rng(seed))
    out = []
    left = n
    while left:  # several blocks: the chain must continue across draws
        k = min(left, 4096)
        out.extend(s.draw(k))
        left -= k
    return np.asarray(out)


def test_bernoulli_rate() -> None:
    x = draw(BernoulliLoss(0.02), 200_000)
    assert x.mean() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize(
    "model",
    [
        GilbertElliottLoss(p=0.005, r=0.25, k=1.0, h=0.5),
        GilbertElliottLoss(p=0.01, r=0.1, k=0.99, h=0.2),
        GilbertElliottLoss(p=0.05, r=0.5, k=1.0, h=0.0),
    ],
)
def test_gilbert_elliott_matches_stationary_formula(model: GilbertElliottLoss) -> None:
    x = draw(model, 400_000, seed=3)
    pb = model.p / (model.p + model.r)
    expected = pb * (1 - model.h) + (1 - pb) * (1 - model.k)
    assert model.stationary_loss_rate == pytest.approx(expected)
    assert x.mean() == pytest.approx(expected, rel=0.10)


def test_gilbert_elliott_is_bursty() -> None:
    ge = GilbertElliottLoss(p=0.01, r=0.2, k=1.0, h=0.0)  # Bad loses everything
    x = draw(ge, 200_000, seed=1)
    # run lengths of losses: mean 1 / r = 5 packets
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], x.astype(int), [0])))))[::2]
    assert runs.mean() == pytest.approx(ge.mean_burst_packets, rel=0.15)
    # Bernoulli with the same mean has runs of ~1
    b = draw(BernoulliLoss(ge.stationary_loss_rate), 200_000, seed=1)
    runs_b = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], b.astype(int), [0])))))[::2]
    assert runs_b.mean() < 1.2


def test_same_seed_same_losses() -> None:
    ge = GilbertElliottLoss(p=0.01, r=0.3)
    assert np.array_equal(draw(ge, 10_000, 5), draw(ge, 10_000, 5))
    assert not np.array_equal(draw(ge, 10_000, 5), draw(ge, 10_000, 6))


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: BernoulliLoss(1.0), "p must be < 1"),
        (lambda: BernoulliLoss(-0.1), "p must be >= 0"),
        (lambda: GilbertElliottLoss(p=0.0, r=0.5), "p must be > 0"),
        (lambda: GilbertElliottLoss(p=0.1, r=1.5), "r must be <= 1"),
        (lambda: GilbertElliottLoss(p=0.1, r=0.5, k=0.0, h=0.0), "every packet"),
    ],
)
def test_loss_models_validate(factory, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        factory()
