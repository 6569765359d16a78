"""Random (non-congestion) packet loss at the bottleneck egress.

Two models, each a frozen spec plus a stateful sampler that owns its
``np.random.Generator``:

- `BernoulliLoss`: every packet is lost independently with probability ``p``.
- `GilbertElliottLoss`: a two-state Markov chain per packet (REFERENCES
  section 3). States Good and Bad; ``p = P(Good -> Bad)``, ``r = P(Bad ->
  Good)``; a packet is lost with probability ``1 - k`` in Good and ``1 - h``
  in Bad. Stationary ``P(Bad) = p / (p + r)`` and mean loss
  ``P(Bad) (1 - h) + P(Good) (1 - k)``.

The simulator draws decisions in blocks (`LossSampler.draw`) and consumes
them one per packet leaving the bottleneck, so there is no numpy call per
packet. The chain advances per packet, not per unit of time: each packet
first suffers the loss of the current state, then the state transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from oxidize_ml._validate import check_number


class LossSampler(Protocol):
    """Stateful source of per-packet loss decisions."""

    def draw(self, n: int) -> list[bool]:
        """The next ``n`` decisions (True = lost), continuing the process."""
        ...


@dataclass(frozen=True, slots=True)
class BernoulliLoss:
    """Independent loss with probability ``p`` per packet."""

    p: float
    """loss probability per packet, in [0, 1)"""

    def __post_init__(self) -> None:
        check_number("p", self.p, hi=1.0)
        if self.p >= 1.0:
            raise ValueError(f"p must be < 1 (every packet lost), got {self.p!r}")

    @property
    def stationary_loss_rate(self) -> float:
        return self.p

    def sampler(self, rng: np.random.Generator) -> LossSampler:
        return _BernoulliSampler(self.p, rng)

    def to_dict(self) -> dict[str, float | str]:
        return {"model": "bernoulli", "p": self.p}


@dataclass(frozen=True, slots=True)
class GilbertElliottLoss:
    """Gilbert-Elliott burst loss (REFERENCES section 3: p, r, 1-k, 1-h)."""

    p: float
    """P(Good -> Bad) per packet, in (0, 1]"""
    r: float
    """P(Bad -> Good) per packet, in (0, 1]"""
    k: float = 1.0
    """P(delivered | Good); the loss probability in Good is 1 - k"""
    h: float = 0.0
    """P(delivered | Bad); the loss probability in Bad is 1 - h"""

    def __post_init__(self) -> None:
        for name in ("p", "r"):
            v = check_number(name, getattr(self, name), hi=1.0)
            if v <= 0.0:
                raise ValueError(f"{name} must be > 0 (otherwise a state is never left), got {v}")
        check_number("k", self.k, hi=1.0)
        check_number("h", self.h, hi=1.0)
        if self.stationary_loss_rate >= 1.0:
            raise ValueError("GilbertElliottLoss loses every packet (k = h = 0)")

    @property
    def stationary_bad(self) -> float:
        """Stationary probability of the Bad state, p / (p + r)."""
        return self.p / (self.p + self.r)

    @property
    def stationary_loss_rate(self) -> float:
        """Mean loss, P(Bad) (1 - h) + P(Good) (1 - k)."""
        pb = self.stationary_bad
        return pb * (1.0 - self.h) + (1.0 - pb) * (1.0 - self.k)

    @property
    def mean_burst_packets(self) -> float:
        """Mean number of consecutive packets in the Bad state, 1 / r."""
        return 1.0 / self.r

    def sampler(self, rng: np.random.Generator) -> LossSampler:
        return _GilbertElliottSampler(self, rng)

    def to_dict(self) -> dict[str, float | str]:
        return {"model": "gilbert-elliott", "p": self.p, "r": self.r, "k": self.k, "h": self.h}


LossModel = BernoulliLoss | GilbertElliottLoss


class _BernoulliSampler:
    __slots__ = ("_p", "_rng")

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        self._p = p
        self._rng = rng

    def draw(self, n: int) -> list[bool]:
        return (self._rng.random(n) < self._p).tolist()


class _GilbertElliottSampler:
    """Vectorised chain: sojourns are geometric (Good: mean 1/p, Bad: mean 1/r packets)."""

    __slots__ = ("_bad", "_left", "_loss_bad", "_loss_good", "_p", "_r", "_rng")

    def __init__(self, spec: GilbertElliottLoss, rng: np.random.Generator) -> None:
        self._p = spec.p
        self._r = spec.r
        self._loss_good = 1.0 - spec.k
        self._loss_bad = 1.0 - spec.h
        self._rng = rng
        # Start in the stationary distribution so short runs are unbiased.
        self._bad = bool(rng.random() < spec.stationary_bad)
        self._left = self._sojourn(self._bad)

    def _sojourn(self, bad: bool) -> int:
        # Packets spent in a state including the current one: Geometric(leave prob).
        return int(self._rng.geometric(self._r if bad else self._p))

    def draw(self, n: int) -> list[bool]:
        state = np.empty(n, dtype=bool)
        i = 0
        while i < n:
            take = min(self._left, n - i)
            state[i : i + take] = self._bad
            i += take
            self._left -= take
            if self._left == 0:
                self._bad = not self._bad
                self._left = self._sojourn(self._bad)
        prob = np.where(state, self._loss_bad, self._loss_good)
        return (self._rng.random(n) < prob).tolist()
