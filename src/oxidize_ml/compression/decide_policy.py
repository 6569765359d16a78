"""`DecidePolicy`: the `oxidize_ml.policy.CompressionPolicy` calls of an oracle whose
``decide(data)`` is the whole decision, written once for every compression oracle.

``predict_one`` is ``decide``; ``learn_one`` is a no-op: no compression oracle
learns at run time. Outcomes reach training through the engine's telemetry
(``compression`` table) and `oxidize_ml.training.compression`, never through the
oracle, so decisions stay reproducible and the per-packet path lock-free.

It is a `typing.Protocol` that the oracles subclass explicitly to inherit these two
methods (PEP 544); being a protocol, it is not itself a policy class.
"""

from __future__ import annotations

from typing import Protocol

from oxidize_ml.types import MlCompressionDecision


class _Decides(Protocol):
    def decide(self, data: bytes | bytearray | memoryview, /) -> MlCompressionDecision: ...


class DecidePolicy(Protocol):
    """``predict_one`` = ``decide``, ``learn_one`` = no-op (module docstring)."""

    __slots__ = ()

    def predict_one(
        self: _Decides, obs: bytes | bytearray | memoryview, *, now: float = 0.0
    ) -> MlCompressionDecision:
        """`Policy` entry point; same as ``decide`` (``now`` is unused)."""
        return self.decide(obs)

    def learn_one(
        self, obs: bytes | bytearray | memoryview, feedback: float, *, now: float = 0.0
    ) -> None:
        """No-op: compression oracles do not learn at run time (module docstring)."""
        return  # an explicit body: mypy takes an empty protocol method as abstract
