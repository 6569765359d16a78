"""The one policy interface shared by heuristic and learned components.

A component is swappable when it satisfies `Policy`: the engine calls
``predict_one`` to decide (reads state only) and ``learn_one`` to feed back
what happened (changes state, returns ``None``, as in river). The caller
passes ``now`` (seconds, wall clock or simulated), so nothing reads a clock
and simulated runs replay exactly.

Each of the engine's four components has its protocol, a `Policy` with the
component's types plus the extra calls the engine makes on it:

==================== ======================== ============== =========================
protocol             predict_one(obs) ->      learn_one obs  extra calls
==================== ======================== ============== =========================
`LossPolicy`         `NetworkFeatures` -> P   the features   (feedback: the interval's
                     (loss) in [0, 1]                        measured loss rate)
`CongestionPolicy`   `CongestionObservation`  the same       (feedback: the interval's
                     -> `DrlAction`                          reward)
`CompressionPolicy`  payload bytes ->         the payload    ``decide(data)``, the
                     `MlCompressionDecision`                 per-packet fast path
`PathPolicy`         `TrafficContext` ->      ``(path,       ``select``,
                     `PathId`                 context)``     ``update_metrics``,
                                                             ``update_reward``,
                                                             ``metrics``,
                                                             ``known_paths``,
                                                             ``stats``
==================== ======================== ============== =========================

A path's feedback is about the path that was chosen, so its ``learn_one``
observation is the ``(path, context)`` pair (a bandit's update), hence the
third type parameter of `Policy`.

All are ``runtime_checkable``: ``isinstance(p, LossPolicy)`` checks that the
members exist (not their signatures; mypy checks those). Optional members
the engine uses when present: ``fork()`` (a copy with fresh per-connection
state, `SupportsFork`) and, on congestion policies, a ``fallback`` attribute.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.types import DrlAction, MlCompressionDecision, PathId, PathMetrics, TrafficContext

ObsT_contra = TypeVar("ObsT_contra", contravariant=True)
"""what ``predict_one`` decides from"""
ActT_co = TypeVar("ActT_co", covariant=True)
"""what ``predict_one`` returns"""
LearnObsT_contra = TypeVar("LearnObsT_contra", contravariant=True)
"""what ``learn_one`` is told happened (the observation itself, except for paths)"""

BytesLike = bytes | bytearray | memoryview
"""a packet payload as the compression policies accept it"""


@runtime_checkable
class Policy(Protocol[ObsT_contra, ActT_co, LearnObsT_contra]):
    """Decide from an observation; learn from feedback."""

    # Read-only properties, so plain attributes, class variables and
    # properties all satisfy them.
    @property
    def name(self) -> str:
        """short identifier shown in statistics ("ewma", "lstm", "bbr", "dqn", ...)"""
        ...

    @property
    def is_learned(self) -> bool:
        """True when decisions come from a trained model rather than a heuristic"""
        ...

    def predict_one(self, obs: ObsT_contra, *, now: float) -> ActT_co:
        """The decision for ``obs``; never changes the policy's state."""
        ...

    def learn_one(self, obs: LearnObsT_contra, feedback: float, *, now: float) -> None:
        """Take in what happened; the only call that changes state."""
        ...


@runtime_checkable
class LossPolicy(Policy[NetworkFeatures, float, NetworkFeatures], Protocol):
    """Packet-loss predictor: features -> probability that the next packet is lost.

    ``learn_one(features, loss_rate)`` is called once per observation interval
    with the loss rate measured over it; ``predict_one`` returns a value in
    [0, 1] that the FEC table turns into redundancy.
    """


@runtime_checkable
class CongestionPolicy(Policy[CongestionObservation, DrlAction, CongestionObservation], Protocol):
    """Congestion-window controller: one `DrlAction` per decision interval.

    ``learn_one(obs, reward)`` is called once per observation interval with
    the shared congestion reward; the engine applies the action within its
    `CwndLimits` and delivery envelope.
    """


@runtime_checkable
class CompressionPolicy(Policy[BytesLike, MlCompressionDecision, BytesLike], Protocol):
    """Per-packet compression oracle.

    The engine calls ``decide(data)`` on every packet (the fast path, no
    ``now``); ``predict_one(data, now=...)`` must return the same decision.
    """

    def decide(self, data: BytesLike) -> MlCompressionDecision:
        """The decision for one packet payload (same as ``predict_one``)."""
        ...


@runtime_checkable
class PathPolicy(Policy[TrafficContext, PathId, tuple[PathId, TrafficContext]], Protocol):
    """Path selector: which path a new flow of a traffic type takes.

    ``predict_one(context)`` is the path ``select(context)`` would return and,
    as every `Policy`, only reads state; ``learn_one((path, context), reward)``
    records that choice (what ``select`` counts) and then ``update_reward``.
    """

    def select(self, context: TrafficContext, *, now: float) -> PathId:
        """The path for a new flow of ``context`` traffic."""
        ...

    def update_metrics(self, metrics: PathMetrics, *, now: float) -> None:
        """Store the latest measurements of ``metrics.path_id``."""
        ...

    def update_reward(
        self, path: PathId, context: TrafficContext, reward: float, *, now: float
    ) -> None:
        """Record the reward in [0, 1] that ``path`` earned with ``context`` traffic."""
        ...

    def metrics(self, path: PathId) -> PathMetrics | None:
        """The latest measurements of ``path``, or None if none arrived."""
        ...

    @property
    def known_paths(self) -> tuple[PathId, ...]:
        """Paths that have reported metrics (carried over when a selector is swapped)."""
        ...

    def stats(self) -> dict[str, Any]:
        """JSON-serialisable statistics (selections, mean reward per path and context)."""
        ...


@runtime_checkable
class SupportsFork(Protocol):
    """A policy with per-connection state: ``fork()`` gives a copy for another
    connection (shared weights, fresh state). Stateless policies are shared."""

    def fork(self) -> Self:
        """A new policy with the same model and fresh per-connection state."""
        ...
