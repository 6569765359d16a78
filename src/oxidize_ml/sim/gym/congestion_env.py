"""`CongestionEnv`: set a flow's congestion window every 10 ms in the packet simulator.

## Description

One bulk flow (the agent's; in multi-flow scenarios, flow 0, the others run a
heuristic) sends through the bottleneck of a `oxidize_ml.sim` scenario. Each
step is one decision interval (the scenario's ``interval_s``, 10 ms): the
action changes the window with the shared action table
(`oxidize_ml.congestion.actions.apply_action`), the simulator runs to the
next decision tick (`oxidize_ml.sim.Simulation.run_interval` with an
`oxidize_ml.congestion.interval.ExternalCwndController`), whose encoder
(`oxidize_ml.congestion.state.CongestionStateEncoder`, run once per
interval) turns the interval's `NetworkFeatures` and throughput into the
observation and the reward: the same encoder the engine runs (`oxidize_ml.engine.MlEngine`), so a policy
trained here runs unchanged there (`oxidize_ml.congestion.dqn.DqnCwndPolicy`).

The link of an episode is a named scenario, a Mahimahi trace, or a random
link drawn by `oxidize_ml.sim.random_links.random_link_scenario` (domain
randomisation as in Aurora, REFERENCES section 2, adapted to cellular paths;
the same generator as the loss predictor's training data). A random link may
carry 1-2 competing flows beside the agent's. With several sources configured, each
`reset` picks a source kind (scenario / trace / random) uniformly among those
present, then one item uniformly within it.

## Action Space

``Discrete(6)``, the spec's `DrlAction` order:

| Num | Action       | Effect on cwnd                          |
|-----|--------------|-----------------------------------------|
| 0   | Increase5    | x 1.05                                  |
| 1   | Increase10   | x 1.10                                  |
| 2   | Maintain     | unchanged                               |
| 3   | Decrease5    | x 0.95                                  |
| 4   | Decrease10   | x 0.90                                  |
| 5   | SlowStart    | reset to the initial window (10 packets)|

The window is clamped to [2 packets, 64 MiB] (`CwndLimits`).

## Observation Space

``Box(low, high, (24,), float32)`` with the default `StateConfig` (history 4):
the 8 spec features of the interval (`NetworkFeatures.to_vector`), then for
each of the last 4 intervals (newest first) 4 scale-free ratios:

| Index        | Observation                                  | Min | Max |
|--------------|----------------------------------------------|-----|-----|
| 0            | smoothed RTT, s (rtt_us / 1e6)               | 0   | 10  |
| 1            | RTT variation / 0.5 s                        | 0   | 10  |
| 2            | delivery rate / 10 Gbit/s                    | 0   | 10  |
| 3            | loss rate of the interval                    | 0   | 1   |
| 4            | loss trend                                   | -1  | 1   |
| 5            | packets in flight / 10 000                   | 0   | 10  |
| 6            | cwnd, bytes / 1e6                            | 0   | 10  |
| 7            | buffer occupancy (see "Sender view")         | 0   | 1   |
| 8 + 4k       | throughput / windowed max throughput         | 0   | 1   |
| 9 + 4k       | windowed min RTT / RTT (1 = empty queue)     | 0   | 1   |
| 10 + 4k      | cwnd / (4 x windowed BDP)                    | 0   | 1   |
| 11 + 4k      | loss rate                                    | 0   | 1   |

Sender view: the simulator knows the true queue fill; a real sender does
not. Index 7 is the sender's estimate ``(srtt - min_rtt) / srtt`` with the
transport's min RTT, which the simulator's interval features carry
(`oxidize_ml.interval_stats`, the same function the aioquic integration
uses), so the agent observes what the engine is served in deployment.

## Rewards

``congestion_reward`` of the interval that followed the action, computed by
the encoder on its 10-s windowed filters (`oxidize_ml.congestion.reward`)::

    r = clip(u x d - 5 x loss_rate, -1, 1),  u = throughput / max_throughput,
    d = min(1, 1.25 x min_rtt / rtt)

Bounded in [-1, 1] and never infinite (zero throughput gives ``-5 x loss``).

## Starting State

A new `Simulation` of the episode's link with the window at the initial
10 packets; the first observation is the first 10-ms interval.

## Episode End

No terminal state (``terminated`` is always False: the link never "ends").
The episode is truncated when simulated time reaches ``episode_s`` (default:
the scenario's own duration; 20 s for random links), so value targets should
bootstrap through truncation.

## Arguments

``gymnasium.make("oxidize_ml/CongestionControl-v0", scenario="step-change")``;
see `CongestionEnv` for every keyword. ``reset(options=...)`` accepts
``{"scenario": name or Scenario}``, ``{"trace": path}`` or ``{"random": True}``
to override the source of one episode.

## Version History

* v0: initial version (state version `CONGESTION_STATE_VERSION` 1, 10-ms steps).
  Issue 9 changed the random episodes without a new id: they are drawn by
  `oxidize_ml.sim.random_links` (RTT 10-800 ms, buffers 0.1-4 BDP, burst loss,
  up to 3 flows) instead of the env's own generator (RTT 10-300 ms, single
  flow, Bernoulli loss), and the ``sender_view`` flag is gone (the simulator's
  features are the sender's view).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from os import PathLike, fspath
from typing import Any

import numpy as np

from oxidize_ml._validate import check_number
from oxidize_ml.congestion.actions import N_ACTIONS, CwndLimits
from oxidize_ml.congestion.interval import ExternalCwndController
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import StateConfig
from oxidize_ml.features import FEATURE_TABLE, N_FEATURES
from oxidize_ml.sim.core import Simulation
from oxidize_ml.sim.random_links import (
    DEFAULT_RANDOM_LINKS,
    RandomLinkConfig,
    random_link_scenario,
    random_trace_path,
)
from oxidize_ml.sim.scenarios import Scenario, get_scenario, scenario_from_trace

try:
    import gymnasium as gym
    from gymnasium import spaces
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    from oxidize_ml.sim.gym import DependencyNotInstalled

    raise DependencyNotInstalled(
        "CongestionEnv needs gymnasium; install the simulator extra: pip install 'oxidize-ml[sim]'"
    ) from exc

__all__ = ["CongestionEnv", "observation_bounds"]

RANDOM_EPISODE_S = 20.0
"""length of a random-link episode when ``episode_s`` is not given, seconds"""
_DEFAULT_STATE = StateConfig()


def observation_bounds(config: StateConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 bounds of the encoder's state vector for ``config``."""
    lo = [row[3] for row in FEATURE_TABLE] + [0.0] * (config.size - N_FEATURES)
    hi = [row[4] for row in FEATURE_TABLE] + [1.0] * (config.size - N_FEATURES)
    return np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32)


class CongestionEnv(gym.Env[np.ndarray, np.int64]):
    """Congestion-window control in the packet simulator (module docstring: the full spec).

    Parameters
    ----------
    scenario
        One built-in scenario name or a `Scenario` (shortcut for ``scenarios=(x,)``).
    trace
        One Mahimahi trace file (shortcut for ``traces=(x,)``).
    scenarios
        Named or explicit scenarios to draw episodes from.
    traces
        Mahimahi trace files to draw episodes from. Each trace episode gets a
        random base RTT and buffer from ``random_link`` (the trace is the
        capacity; the path around it is randomised).
    random_links
        Also draw random links (`RandomLinkConfig`). Default: True when no
        scenario or trace is given.
    random_link
        Ranges of the random links (and of the RTT / buffer of trace episodes,
        `oxidize_ml.sim.random_links.random_trace_path`).
    episode_s
        Episode length, simulated seconds. None: the scenario's own duration
        (traces: up to 30 s), `RANDOM_EPISODE_S` for random links.
    state_config
        The state encoder's config (history length, filter windows).
    limits
        Window bounds (MSS must be 1500, the simulator's packet size).
    competitors
        Controller names for the other flows of multi-flow scenarios; one is
        drawn per episode.
    """

    # gymnasium.Env declares ``metadata`` as an instance attribute, so a ClassVar here is a
    # type error (mypy: misc); gymnasium reads it from the class, hence the class default.
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 100}  # noqa: RUF012

    def __init__(
        self,
        scenario: str | Scenario | None = None,
        *,
        trace: str | PathLike[str] | None = None,
        scenarios: Sequence[str | Scenario] = (),
        traces: Sequence[str | PathLike[str]] = (),
        random_links: bool | None = None,
        random_link: RandomLinkConfig = DEFAULT_RANDOM_LINKS,
        episode_s: float | None = None,
        state_config: StateConfig = _DEFAULT_STATE,
        limits: CwndLimits | None = None,
        competitors: Sequence[str] = ("cubic", "reno", "bbr"),
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        scen = list(scenarios) + ([scenario] if scenario is not None else [])
        trc = list(traces) + ([trace] if trace is not None else [])
        if random_links is None:
            random_links = not scen and not trc
        if not scen and not trc and not random_links:
            raise ValueError("give a scenario, a trace, or random_links=True")
        if not isinstance(random_link, RandomLinkConfig):
            raise TypeError(
                f"random_link must be a RandomLinkConfig, got {type(random_link).__name__}"
            )
        if episode_s is not None and check_number("episode_s", episode_s) <= 0.0:
            raise ValueError(f"episode_s must be > 0, got {episode_s!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of "
                f"{self.metadata['render_modes']}, got {render_mode!r}"
            )
        competitors = tuple(competitors)
        if not competitors:
            raise ValueError("competitors must name at least one controller")
        self._scenarios = [s if isinstance(s, Scenario) else get_scenario(s) for s in scen]
        # Traces are read and validated once; episodes vary the path around them.
        self._traces = [scenario_from_trace(fspath(p)) for p in trc]
        self._random = bool(random_links)
        self.random_link = random_link
        self.episode_s = episode_s
        self.state_config = state_config
        self.limits = limits if limits is not None else CwndLimits()
        self.competitors = competitors
        self.render_mode = render_mode
        lo, hi = observation_bounds(state_config)
        self.observation_space = spaces.Box(lo, hi, dtype=np.float32)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._kinds = [
            k
            for k, on in (
                ("scenario", bool(self._scenarios)),
                ("trace", bool(self._traces)),
                ("random", self._random),
            )
            if on
        ]
        self._sim: Simulation | None = None
        self._agent: ExternalCwndController | None = None
        self._state: np.ndarray | None = None
        self.scenario: Scenario | None = None
        """the scenario of the current episode"""
        self.last_observation: CongestionObservation | None = None
        """what a `Policy` would see for the last interval (features as observed, the
        throughput, and the window that was in force): lets a heuristic act in this env"""
        self.now = 0.0

    # ------------------------------------------------------------------ episodes
    def _pick(self, options: dict[str, Any] | None) -> Scenario:
        rng = self.np_random
        if options:
            if "scenario" in options:
                s = options["scenario"]
                sc = s if isinstance(s, Scenario) else get_scenario(s)
                return sc if self.episode_s is None else sc.with_duration(self.episode_s)
            if "trace" in options:
                return self._trace_episode(scenario_from_trace(fspath(options["trace"])), rng)
            if options.get("random"):
                return self._random_episode(rng)
            raise ValueError(
                f"unknown reset options {sorted(options)}; use 'scenario', 'trace' or 'random'"
            )
        kind = self._kinds[int(rng.integers(len(self._kinds)))]
        if kind == "scenario":
            sc = self._scenarios[int(rng.integers(len(self._scenarios)))]
            return sc if self.episode_s is None else sc.with_duration(self.episode_s)
        if kind == "trace":
            return self._trace_episode(self._traces[int(rng.integers(len(self._traces)))], rng)
        return self._random_episode(rng)

    def _random_episode(self, rng: np.random.Generator) -> Scenario:
        sc = random_link_scenario(
            rng,
            name="random",
            duration_s=self.episode_s or RANDOM_EPISODE_S,
            config=self.random_link,
        )
        # A name that says what was drawn (and only depends on the seed), for logs.
        return replace(
            sc,
            name=f"random-{type(sc.link).__name__}-{2e3 * sc.flows[0].delay_s:.0f}ms-"
            f"{sc.buffer.packets}pkt-{type(sc.loss).__name__}-{len(sc.flows)}flows",
        )

    def _trace_episode(self, base: Scenario, rng: np.random.Generator) -> Scenario:
        return random_trace_path(base, rng, duration_s=self.episode_s, config=self.random_link)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        sc = self._pick(options)
        # The agent's adapter encodes each interval (state and reward) once; the env reads it.
        agent = ExternalCwndController(limits=self.limits, state_config=self.state_config)
        ctrls: list[Any] = [agent]
        if len(sc.flows) > 1:
            other = self.competitors[int(rng.integers(len(self.competitors)))]
            ctrls += [other] * (len(sc.flows) - 1)
        sim_seed = int(rng.integers(2**31 - 1))
        self._sim = Simulation(sc, ctrls, seed=sim_seed, record_series=False)
        self._agent = agent
        self.scenario = sc
        obs, _ = self._advance()
        return obs, self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        sim, agent = self._sim, self._agent
        if sim is None or agent is None:
            raise RuntimeError("Call reset before using step method.")
        a = int(action)
        if not 0 <= a < N_ACTIONS:
            raise ValueError(f"action must be in [0, 5] (DrlAction order), got {action!r}")
        if sim.done:
            raise RuntimeError("the episode is over (truncated); call reset")
        agent.apply(a)
        obs, reward = self._advance()
        return obs, reward, False, sim.done, self._info()

    def _advance(self) -> tuple[np.ndarray, float]:
        """Run to the next tick at which the agent's flow reports; return its state and reward."""
        sim, agent = self._sim, self._agent
        assert sim is not None and agent is not None
        while True:
            for s in sim.run_interval():
                if s.flow_index == 0:
                    # The agent saw this tick in its on_interval (same features, same time).
                    state = agent.last_state
                    assert state is not None
                    self.last_observation = agent.last_observation
                    self._state = state
                    self.now = s.now
                    return state, agent.last_reward
            if sim.done:
                # The agent's flow was silent to the end: repeat the last state, no reward.
                state = self._state
                if state is None:
                    shape = self.observation_space.shape
                    assert shape is not None  # a Box space always has a shape
                    state = np.zeros(shape, dtype=np.float32)
                return state, 0.0

    def _info(self) -> dict[str, Any]:
        obs = self.last_observation
        return {
            "time_s": self.now,
            "cwnd_bytes": 0 if self._agent is None else self._agent.cwnd,
            "throughput_bps": 0.0 if obs is None else obs.throughput_bps,
            "scenario": None if self.scenario is None else self.scenario.name,
        }

    # ------------------------------------------------------------------ extras
    @property
    def simulation(self) -> Simulation | None:
        """The running `Simulation` (for metrics: ``env.simulation.result()``)."""
        return self._sim

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        obs = self.last_observation
        if obs is None:
            return "no episode"
        f = obs.features
        return (
            f"t={self.now:7.2f}s cwnd={obs.cwnd_bytes / 1500:8.1f}pkt "
            f"thr={obs.throughput_bps / 1e6:7.2f}Mbit/s rtt={f.rtt_us / 1e3:7.1f}ms "
            f"loss={f.loss_rate:.3f}"
        )

    def close(self) -> None:
        self._sim = None
        self._agent = None
