"""Run the learned DQN congestion controller in the simulator, beside reno / cubic / bbr.

`make_dqn_controller` wraps a `oxidize_ml.congestion.dqn.DqnCwndPolicy` in a
`SenderViewPolicyController`; `dqn_factory` returns a registry factory that
loads the weights once and gives every flow its own policy (``fork``)::

    from oxidize_ml.sim import default_registry, simulate
    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory

    registry = default_registry()
    registry.register("dqn", dqn_factory("path/to/model_dir"))
    simulate("step-change", "dqn", seed=0, registry=registry)

Sender view
-----------
The simulator's `NetworkFeatures` carry the *true* bottleneck queue fill as
``buffer_occupancy`` (`oxidize_ml.sim.core`), which no real sender can see;
the aioquic integration passes `oxidize_ml.interval_stats.estimate_buffer_occupancy`
``(srtt - min_rtt) / srtt`` instead. A model that learnt to rely on the
oracle value would look good here and fail in deployment, so the controllers
in this module (and `oxidize_ml.sim.gym.congestion_env.CongestionEnv`, which
trains the model) replace it with the same estimate, computed from the
connection's min RTT (RFC 9002 ``min_rtt``, tracked from
``on_rtt_measurement``) and the interval's smoothed RTT. Pass
``sender_view=False`` to keep the simulator's value.
"""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING, Any

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.interval_stats import estimate_buffer_occupancy
from oxidize_ml.sim.controllers.base import CongestionController
from oxidize_ml.sim.controllers.policy import (
    REWARD_WINDOW_S,
    ExternalCwndController,
    PolicyController,
)

if TYPE_CHECKING:
    from oxidize_ml.congestion.dqn import DqnCwndPolicy
    from oxidize_ml.runtime.numpy_models import MlpModel
    from oxidize_ml.runtime.onnx_backend import OrtMlpModel
    from oxidize_ml.sim.controllers.registry import ControllerFactory

__all__ = [
    "SenderViewExternalController",
    "SenderViewPolicyController",
    "dqn_factory",
    "make_dqn_controller",
    "sender_view_features",
]


def sender_view_features(features: NetworkFeatures, min_rtt_s: float) -> NetworkFeatures:
    """``features`` with ``buffer_occupancy`` replaced by the sender's estimate.

    ``(srtt - min_rtt) / srtt`` from ``features.rtt_us`` (the smoothed RTT) and
    ``min_rtt_s``; 0 before the first RTT sample. Every other field is kept.
    """
    return features.with_buffer_occupancy(
        estimate_buffer_occupancy(features.rtt_us * 1e-6, min_rtt_s)
    )


class SenderViewPolicyController(PolicyController):
    """`PolicyController` whose policy sees what a real sender sees (see module docs).

    Tracks the connection's min RTT from ``on_rtt_measurement`` (one call per
    ack) and hands the policy `sender_view_features` of each interval.
    """

    def __init__(
        self,
        policy: Any,
        *,
        limits: CwndLimits | None = None,
        reward_window_s: float = REWARD_WINDOW_S,
    ) -> None:
        super().__init__(policy, limits=limits, reward_window_s=reward_window_s)
        self.min_rtt_s = 0.0

    def on_rtt_measurement(
        self, *, now: float, latest_rtt: float, smoothed_rtt: float, min_rtt: float
    ) -> None:
        self.min_rtt_s = min_rtt

    def on_interval(self, *, now: float, features: NetworkFeatures, throughput_bps: float) -> None:
        super().on_interval(
            now=now,
            features=sender_view_features(features, self.min_rtt_s),
            throughput_bps=throughput_bps,
        )


class SenderViewExternalController(ExternalCwndController):
    """`ExternalCwndController` that also tracks the connection's min RTT (for the env)."""

    def __init__(
        self, *, limits: CwndLimits | None = None, reward_window_s: float = REWARD_WINDOW_S
    ) -> None:
        super().__init__(limits=limits, reward_window_s=reward_window_s)
        self.min_rtt_s = 0.0

    def on_rtt_measurement(
        self, *, now: float, latest_rtt: float, smoothed_rtt: float, min_rtt: float
    ) -> None:
        self.min_rtt_s = min_rtt


def _load_policy(
    model: str | PathLike[str] | MlpModel | OrtMlpModel,
    backend: str,
    state_config: StateConfig | None,
) -> DqnCwndPolicy:
    """A template policy: paths load with the StateConfig stored beside the weights."""
    from oxidize_ml.congestion.dqn import DqnCwndPolicy

    if isinstance(model, str | PathLike):
        policy = DqnCwndPolicy.load(model, backend=backend)
        if state_config is not None and state_config != policy.state_config:
            raise ValueError(
                f"the model was trained with {policy.state_config}, not {state_config}"
            )
        return policy
    return DqnCwndPolicy(model.fork(), state_config=state_config or StateConfig())


def make_dqn_controller(
    model: str | PathLike[str] | MlpModel | OrtMlpModel,
    *,
    backend: str = "numpy",
    state_config: StateConfig | None = None,
    limits: CwndLimits | None = None,
    sender_view: bool = True,
    seed: int = 0,
) -> PolicyController:
    """A simulator controller running the DQN greedily (no exploration, no learning).

    Parameters
    ----------
    model
        A model directory (``congestion_controller.safetensors`` / ``.onnx``
        inside), a weight file, or an already loaded `MlpModel` / `OrtMlpModel`
        (forked, so the caller's instance is not shared).
    backend
        ``"numpy"`` or ``"onnxruntime"`` when ``model`` is a path.
    state_config
        The state encoder's config: read from the weight file's metadata when
        ``model`` is a path (a different value here raises ``ValueError``);
        `StateConfig()` by default for an already loaded model.
    limits
        Window bounds (default `CwndLimits()`).
    sender_view
        Replace the simulator's true queue fill with the sender's estimate.
    seed
        Seed of the policy (only used if exploration were enabled).
    """
    return _wrap(_reseed(_load_policy(model, backend, state_config), seed), limits, sender_view)


def _wrap(policy: DqnCwndPolicy, limits: CwndLimits | None, sender_view: bool) -> PolicyController:
    lim = limits if limits is not None else CwndLimits()
    if sender_view:
        return SenderViewPolicyController(policy, limits=lim)
    return PolicyController(policy, limits=lim)


def dqn_factory(
    model: str | PathLike[str] | MlpModel | OrtMlpModel,
    *,
    backend: str = "numpy",
    state_config: StateConfig | None = None,
    limits: CwndLimits | None = None,
    sender_view: bool = True,
) -> ControllerFactory:
    """A `ControllerRegistry` factory for ``"dqn"``: loads ``model`` once, one policy per flow.

    Same parameters as `make_dqn_controller`; each flow gets a fresh policy
    (its own state encoder and scratch buffers) seeded with the flow's seed.
    """
    template = _load_policy(model, backend, state_config)

    def factory(*, flow_index: int, seed: int) -> CongestionController:
        return _wrap(_reseed(template, seed), limits, sender_view)

    return factory


def _reseed(template: DqnCwndPolicy, seed: int) -> DqnCwndPolicy:
    """A fresh policy sharing ``template``'s weights, with its own buffers and ``seed``."""
    from oxidize_ml.congestion.dqn import DqnCwndPolicy

    return DqnCwndPolicy(
        template.model.fork(), state_config=template.state_config, seed=seed & 0x7FFFFFFF
    )
