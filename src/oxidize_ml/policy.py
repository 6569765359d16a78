"""The one policy interface shared by heuristic and learned components.

A component is swappable when it satisfies `Policy`: the engine calls
``predict_one`` to decide (reads state only) and ``learn_one`` to feed back
what happened (changes state, returns ``None``, as in river). The caller
passes ``now`` (seconds, wall clock or simulated), so nothing reads a clock
and simulated runs replay exactly.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

ObsT = TypeVar("ObsT", contravariant=True)
ActT = TypeVar("ActT", covariant=True)


@runtime_checkable
class Policy(Protocol[ObsT, ActT]):
    """Decide from an observation; learn from feedback."""

    name: str
    """short identifier shown in statistics ("ewma", "lstm", "bbr", "dqn", ...)"""

    is_learned: bool
    """True when decisions come from a trained model rather than a heuristic"""

    def predict_one(self, obs: ObsT, *, now: float) -> ActT: ...

    def learn_one(self, obs: ObsT, feedback: float, *, now: float) -> None: ...
