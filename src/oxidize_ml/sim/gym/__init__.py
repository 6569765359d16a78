"""Gymnasium environments over the simulator (needs the ``sim`` extra).

Importing this package registers, once per process:

===================================== ==================================================
id                                    entry point
===================================== ==================================================
``oxidize_ml/CongestionControl-v0``   `oxidize_ml.sim.gym.congestion_env.CongestionEnv`
``oxidize_ml/PathSelection-v0``       `oxidize_ml.sim.gym.path_env.PathSelectionEnv`
===================================== ==================================================

Entry points are strings, so registering loads neither environment module::

    import gymnasium
    import oxidize_ml.sim.gym  # noqa: F401  (registers the ids)

    env = gymnasium.make("oxidize_ml/PathSelection-v0", scenario="primary-fails")

or, without the explicit import,
``gymnasium.make("oxidize_ml.sim.gym:oxidize_ml/PathSelection-v0")``.

Registration writes into gymnasium's process-wide registry (that is how
``gymnasium.make`` finds environments); `register_envs` skips ids that are
already there, so importing or reloading this module twice is harmless.
"""

from __future__ import annotations

CONGESTION_ENV_ID = "oxidize_ml/CongestionControl-v0"
PATH_ENV_ID = "oxidize_ml/PathSelection-v0"

ENTRY_POINTS: dict[str, str] = {
    CONGESTION_ENV_ID: "oxidize_ml.sim.gym.congestion_env:CongestionEnv",
    PATH_ENV_ID: "oxidize_ml.sim.gym.path_env:PathSelectionEnv",
}
"""environment id -> ``module:class``"""


class DependencyNotInstalled(ImportError):
    """An optional dependency of the simulator extra is missing.

    Mirrors ``gymnasium.error.DependencyNotInstalled``, which cannot be used
    here because gymnasium itself is what may be missing.
    """


try:
    import gymnasium as _gym
except ModuleNotFoundError as _exc:
    raise DependencyNotInstalled(
        "oxidize_ml.sim.gym needs gymnasium, which is not installed; install the simulator "
        "extra: pip install 'oxidize-ml[sim]'"
    ) from _exc


def register_envs() -> list[str]:
    """Register every id of `ENTRY_POINTS` not yet in gymnasium's registry.

    Returns the ids registered by this call (empty when all were already
    there).
    """
    added = []
    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id in _gym.envs.registry:
            continue
        _gym.register(id=env_id, entry_point=entry_point)
        added.append(env_id)
    return added


register_envs()

__all__ = [
    "CONGESTION_ENV_ID",
    "ENTRY_POINTS",
    "PATH_ENV_ID",
    "DependencyNotInstalled",
    "register_envs",
]
