"""Run the learned DQN congestion controller in the simulator, beside reno / cubic / bbr.

`make_dqn_controller` wraps a `oxidize_ml.congestion.dqn.DqnCwndPolicy` in a
`oxidize_ml.congestion.interval.PolicyController`; `dqn_factory` returns a
registry factory that loads the weights once and gives every flow its own
policy (`DqnCwndPolicy.fork`)::

    from oxidize_ml.sim import default_registry, simulate
    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory

    registry = default_registry()
    registry.register("dqn", dqn_factory("path/to/model_dir"))
    simulate("step-change", "dqn", seed=0, registry=registry)

A model path is read by `DqnCwndPolicy.load` (the runtime's loader: weights
and the `StateConfig` stored beside them). The policy sees the simulator's
interval features as they are: their ``buffer_occupancy`` is already the
sender-side estimate ``(srtt - min_rtt) / srtt`` the aioquic plug-in computes
(`oxidize_ml.interval_stats`), never the true queue fill.
"""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

from oxidize_ml.congestion.actions import CwndLimits
from oxidize_ml.congestion.interval import PolicyController
from oxidize_ml.congestion.state import StateConfig

if TYPE_CHECKING:
    from oxidize_ml.congestion.controller import CongestionController
    from oxidize_ml.congestion.dqn import DqnCwndPolicy
    from oxidize_ml.runtime.numpy_models import MlpModel
    from oxidize_ml.runtime.onnx_backend import OrtMlpModel
    from oxidize_ml.sim.controllers.registry import ControllerFactory

__all__ = ["dqn_factory", "make_dqn_controller"]


def _load_policy(
    model: str | PathLike[str] | MlpModel | OrtMlpModel,
    backend: str,
    state_config: StateConfig | None,
    seed: int,
) -> DqnCwndPolicy:
    """A greedy policy: a path goes through `DqnCwndPolicy.load`; a loaded model is forked."""
    from oxidize_ml.congestion.dqn import DqnCwndPolicy

    seed = int(seed) & 0x7FFFFFFF
    if isinstance(model, str | PathLike):
        policy = DqnCwndPolicy.load(model, backend=backend, seed=seed)
        if state_config is not None and state_config != policy.state_config:
            raise ValueError(
                f"the model was trained with {policy.state_config}, not {state_config}"
            )
        return policy
    return DqnCwndPolicy(model.fork(), state_config=state_config or StateConfig(), seed=seed)


def make_dqn_controller(
    model: str | PathLike[str] | MlpModel | OrtMlpModel,
    *,
    backend: str = "numpy",
    state_config: StateConfig | None = None,
    limits: CwndLimits | None = None,
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
    seed
        Seed of the policy (only used if exploration were enabled).
    """
    policy = _load_policy(model, backend, state_config, seed)
    return PolicyController(policy, limits=limits, state_config=policy.state_config)


def dqn_factory(
    model: str | PathLike[str] | MlpModel | OrtMlpModel,
    *,
    backend: str = "numpy",
    state_config: StateConfig | None = None,
    limits: CwndLimits | None = None,
) -> ControllerFactory:
    """A `ControllerRegistry` factory for ``"dqn"``: loads ``model`` once, one policy per flow.

    Same parameters as `make_dqn_controller`; each flow gets
    `DqnCwndPolicy.fork` of the loaded policy (shared weights, its own state
    encoder and scratch buffers).
    """
    template = _load_policy(model, backend, state_config, 0)

    def factory(*, flow_index: int, seed: int) -> CongestionController:
        return PolicyController(template.fork(), limits=limits, state_config=template.state_config)

    return factory
