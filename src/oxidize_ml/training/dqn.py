"""Train the DQN congestion controller in `CongestionEnv` and judge it against BBR / CUBIC / Reno.

Reads top to bottom like CleanRL's ``dqn.py`` (STYLE section 2): `fit_dqn`
is the whole learning algorithm, `train` adds export and evaluation; the
helpers above them are small.

Algorithm
---------
1. **Demonstrations** (`collect_demonstrations`): the BBR-style fallback
   (`oxidize_ml.congestion.bbr.BbrFallback`) drives the environment on the
   training mix; its n-step transitions fill a fixed demonstration buffer.
2. **Warm start**: the Q-network is trained on the demonstrations alone with
   the same Double-DQN TD loss (offline Q-learning on BBR's experience): it
   learns the value of the states BBR visits (a full pipe with a small
   queue) and which window changes lead there, before the agent acts.
   DQfD's large-margin imitation loss (Hester et al., AAAI 2018;
   ``margin_weight`` > 0) is available but off by default: BBR's choices
   depend on state our 24 inputs do not hold (its phase, its round-based
   filters), so in the same-looking state BBR mostly says Maintain (88 % of
   its decisions) and sometimes Increase (STARTUP). Measured on the training
   scenarios (50k demonstrations, 10k updates, margin 0.8): 90 % agreement
   with BBR's actions, yet in closed loop the greedy policy never left the
   initial window (3.9 Mbit/s on wired-clean where BBR gets 11.7). With the
   TD-only warm start the same budget plus 60k DQN steps reached 11.9.
3. **DQN** with epsilon-greedy exploration (the spec's schedule: 1.0, x0.995
   per decision, floor 0.01), n-step Double-DQN targets (van Hasselt et al.
   2016), Huber loss, Adam, a bounded replay buffer sampled uniformly at
   random (`oxidize_ml.congestion.dqn.ReplayBuffer`), a target network
   copied every ``target_sync_updates`` updates. Each minibatch mixes
   ``demo_fraction`` demonstrations and agent data. The network is a
   dueling Q-network (`DuelingDqn`) whose two heads merge exactly into the
   spec's plain MLP at export. The agent acts with the numpy runtime copy of
   the network (8 us instead of torch's 100 us), refreshed every
   ``actor_sync_updates`` updates.
4. **Export** to ``congestion_controller.safetensors`` / ``.onnx``
   (`oxidize_ml.training.export`), with the `StateConfig` in the metadata.
5. **Held-out evaluation** (`evaluate_congestion`): the exported file, run by
   `DqnCwndPolicy` in the simulator (`dqn_factory`), beside bbr, cubic and
   reno.

Why n-step returns and gamma = 0.98: a window change shows in the delay and
throughput only one RTT later, 1 to 30 decisions at 10 ms on the training
links (10-300 ms). n = 8 steps carries the reward of 80 ms back in one
update; gamma = 0.98 gives a horizon of ~50 decisions (0.5 s) so longer RTTs
still see their consequences, while keeping Q-values small (|Q| <= 50).

Data
----
TRAINING split only (`oxidize_ml.evaluation.splits`): the built-in
`TRAIN_SCENARIOS`, random links (`RandomLinkConfig`), the Mahimahi
`TRAIN_TRACES` when present; environment seeds from ``TRAIN_SEED_BASE``.
Telemetry transitions (``read_exports(root)["congestion"]``) pre-fill the
agent's replay buffer when ``telemetry_root`` is given.

Target (``beats_heuristic``)
----------------------------
On the held-out suite, with per-scenario figures averaged over eval seeds:
the DQN's aggregate throughput (sum over scenarios) is at least CUBIC's, its
suite p95 queueing delay (mean over scenarios of each scenario's p95) is at
most half of CUBIC's, and in no scenario does it get under half of CUBIC's
throughput. Queueing delay of a packet = its one-way delay minus its flow's
one-way propagation delay (what the controller added).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.bbr import BbrFallback
from oxidize_ml.congestion.dqn import EpsilonSchedule, ReplayBatch, ReplayBuffer
from oxidize_ml.congestion.state import CONGESTION_STATE_VERSION, StateConfig
from oxidize_ml.evaluation.splits import (
    EVAL_SEED_BASE,
    HELDOUT_SCENARIOS,
    HELDOUT_TRACES,
    TRAIN_SCENARIOS,
    TRAIN_SEED_BASE,
    TRAIN_TRACES,
    heldout_provenance,
    trace_paths,
)
from oxidize_ml.features import FEATURE_NAMES
from oxidize_ml.runtime.configs import DqnMlpConfig
from oxidize_ml.runtime.numpy_models import MlpModel, MlpWeights
from oxidize_ml.training.result import TrainResult
from oxidize_ml.training.torch_models import DqnMlp

if TYPE_CHECKING:
    from oxidize_ml.sim.controllers.registry import ControllerFactory
    from oxidize_ml.sim.gym.congestion_env import CongestionEnv
    from oxidize_ml.sim.random_links import RandomLinkConfig
    from oxidize_ml.sim.scenarios import Scenario

__all__ = [
    "STEM",
    "DqnTrainConfig",
    "NStepAccumulator",
    "collect_demonstrations",
    "dqn_update",
    "evaluate_congestion",
    "fit_dqn",
    "heldout_suite",
    "state_input_names",
    "torch_from_weights",
    "train",
]

STEM = "congestion_controller"
"""file stem of the exported model (`oxidize_ml.runtime.configs.MODEL_FILE_STEMS`)"""
MODEL_VERSION = "1"
BASELINES: tuple[str, ...] = ("bbr", "cubic", "reno")
"""controllers the DQN is compared with; bbr is the engine's fallback"""
TRACE_RTT_S = 0.060
"""base RTT of the held-out trace scenarios (as `oxidize_ml.evaluation.congestion`)"""
TRACE_BUFFER_BDP = 2.0
"""buffer of the held-out trace scenarios, BDPs of the trace's mean rate (ditto)"""
TRACE_DURATION_S = 30.0
"""length of the held-out trace scenarios, seconds (ditto)"""
TARGET = (
    "held-out suite: aggregate throughput >= CUBIC's, mean p95 queueing delay <= 0.5 x CUBIC's, "
    "and no scenario under 0.5 x CUBIC's throughput"
)
_DERIVED_NAMES = ("thr_ratio", "rtt_ratio", "cwnd_bdp", "loss")


@dataclass(frozen=True, slots=True)
class DqnTrainConfig:
    """Hyperparameters of `train`.

    Defaults are the full run: 11 minutes wall on the shared 2-core machine (one torch
    thread; 6 minutes with ``train_frequency=4``), of which ~15 s evaluation.
    """

    total_steps: int = 250_000
    """agent decisions (10-ms environment steps) in the DQN phase"""
    demo_steps: int = 50_000
    """BBR demonstration steps collected before training"""
    pretrain_updates: int = 10_000
    """warm-start updates on the demonstrations alone"""
    gamma: float = 0.98
    """discount factor per 10-ms decision (horizon ~50 decisions, 0.5 s)"""
    n_step: int = 8
    """steps of the n-step return (80 ms)"""
    learning_rate: float = 1e-4
    """Adam step size"""
    batch_size: int = 128
    """minibatch size"""
    buffer_size: int = 200_000
    """agent replay capacity (bounded; oldest overwritten)"""
    demo_fraction: float = 0.25
    """share of each DQN-phase minibatch drawn from the demonstrations"""
    margin: float = 0.8
    """DQfD large-margin m (Q-value units)"""
    margin_weight: float = 0.0
    """weight of the margin loss on demonstration samples (0: TD only; see the module docs:
    imitating BBR's actions fails because BBR's choices depend on state ours lacks)"""
    train_frequency: int = 2
    """agent steps per gradient update in the DQN phase (2: chosen over 4 on the training
    split, mean p95 queueing delay 0.68 vs 0.76 of CUBIC's at the same throughput)"""
    learning_starts: int = 5_000
    """agent steps before the DQN phase starts updating"""
    target_sync_updates: int = 1_000
    """updates between hard copies of the online network into the target network"""
    actor_sync_updates: int = 100
    """updates between refreshes of the numpy copy the agent acts with"""
    epsilon: EpsilonSchedule = field(default_factory=EpsilonSchedule)
    """exploration schedule per decision (the spec's 1.0 -> 0.01, x0.995)"""
    huber_delta: float = 1.0
    """Huber loss threshold"""
    max_grad_norm: float = 10.0
    """gradient clipping norm"""
    hidden: int = 128
    """hidden width (spec: 128)"""
    dueling: bool = True
    """train a `DuelingDqn` (exported merged into the plain `DqnMlp`)"""
    state: StateConfig = field(default_factory=StateConfig)
    """state encoder config (24 inputs by default); saved in the weight file"""
    episode_s: float | None = None
    """training episode length, seconds (None: each scenario's own, 20 s for random links)"""
    random_link: RandomLinkConfig | None = None
    """ranges of the random training links (None: `RandomLinkConfig()`, the ranges of
    `oxidize_ml.sim.random_links`, shared with the loss predictor's data)"""
    use_traces: bool = True
    """train on `TRAIN_TRACES` when the trace folder exists"""
    eval_seeds: int = 3
    """seeds per random held-out scenario (deterministic ones run once)"""
    eval_duration_s: float | None = None
    """shorten every evaluation run to this many seconds (None: full scenarios; tests)"""
    eval_train_split: bool = True
    """also report the same comparison on the training scenarios (in-distribution check)"""
    torch_threads: int = 1
    """torch intra-op threads (1: the machine is shared; the model is tiny)"""

    def __post_init__(self) -> None:
        check_int("total_steps", self.total_steps, lo=1)
        check_int("demo_steps", self.demo_steps, lo=0)
        check_int("pretrain_updates", self.pretrain_updates, lo=0)
        check_number("gamma", self.gamma, hi=1.0)
        check_int("n_step", self.n_step, lo=1, hi=1000)
        if check_number("learning_rate", self.learning_rate) <= 0.0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        check_int("batch_size", self.batch_size, lo=1)
        check_int("buffer_size", self.buffer_size, lo=1)
        check_number("demo_fraction", self.demo_fraction, hi=1.0)
        check_number("margin", self.margin)
        check_number("margin_weight", self.margin_weight)
        check_int("train_frequency", self.train_frequency, lo=1)
        check_int("learning_starts", self.learning_starts, lo=0)
        check_int("target_sync_updates", self.target_sync_updates, lo=1)
        check_int("actor_sync_updates", self.actor_sync_updates, lo=1)
        if not isinstance(self.epsilon, EpsilonSchedule):
            raise TypeError("epsilon must be an EpsilonSchedule")
        if check_number("huber_delta", self.huber_delta) <= 0.0:
            raise ValueError(f"huber_delta must be > 0, got {self.huber_delta!r}")
        if check_number("max_grad_norm", self.max_grad_norm) <= 0.0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        check_int("hidden", self.hidden, lo=1, hi=4096)
        if not isinstance(self.state, StateConfig):
            raise TypeError("state must be a StateConfig")
        if self.episode_s is not None and check_number("episode_s", self.episode_s) <= 0.0:
            raise ValueError(f"episode_s must be > 0, got {self.episode_s!r}")
        check_int("eval_seeds", self.eval_seeds, lo=1)
        if (
            self.eval_duration_s is not None
            and check_number("eval_duration_s", self.eval_duration_s) <= 0.0
        ):
            raise ValueError(f"eval_duration_s must be > 0, got {self.eval_duration_s!r}")
        check_int("torch_threads", self.torch_threads, lo=1)

    @classmethod
    def quick(cls) -> DqnTrainConfig:
        """A tiny budget for smoke tests (seconds, not minutes; not a useful model)."""
        return cls(
            total_steps=600,
            demo_steps=400,
            pretrain_updates=20,
            batch_size=32,
            buffer_size=2_000,
            learning_starts=100,
            train_frequency=8,
            target_sync_updates=20,
            actor_sync_updates=10,
            episode_s=2.0,
            eval_seeds=1,
            eval_duration_s=2.0,
            eval_train_split=False,
            use_traces=False,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["random_link"] = None if self.random_link is None else asdict(self.random_link)
        return d


# ---------------------------------------------------------------------------- building blocks
def state_input_names(config: StateConfig) -> list[str]:
    """Names of the state vector's entries (the manifest's ``inputs``)."""
    names = list(FEATURE_NAMES)
    for k in range(config.history):
        names += [f"{n}_t{k}" for n in _DERIVED_NAMES]
    return names


def torch_from_weights(weights: MlpWeights) -> DqnMlp:
    """A torch `DqnMlp` holding the runtime's read-only weights (for online fine-tuning)."""
    cfg = weights.config
    model = DqnMlp(cfg.n_inputs, cfg.n_outputs, cfg.hidden, cfg.n_hidden_layers)  # type: ignore[union-attr]
    state = {}
    for k, w_aug in enumerate(weights.layers):  # w_aug [in + 1, out]: weight.T with the bias row
        state[f"layers.{k}.weight"] = torch.from_numpy(np.ascontiguousarray(w_aug[:-1].T))
        state[f"layers.{k}.bias"] = torch.from_numpy(np.array(w_aug[-1]))
    model.load_state_dict(state)
    return model


def weights_from_torch(model: DqnMlp | DuelingDqn) -> MlpWeights:
    """The runtime's weights for a torch `DqnMlp` (or the `DuelingDqn` merged into one), copies."""
    if isinstance(model, DuelingDqn):
        model = model.to_dqn_mlp()
    tensors = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    return MlpWeights.from_tensors(tensors, model.config)


class DuelingDqn(nn.Module):
    """Dueling Q-network (Wang et al., ICML 2016) that exports as a plain `DqnMlp`.

    Trunk: the `DqnMlp` hidden layers; heads: V(s) (128 -> 1) and A(s, a)
    (128 -> 6); ``Q = V + A - mean_a A``. With 10-ms decisions one action
    changes the return by a small fraction of Q (the "action gap"), and
    separate Q heads drown it in estimation noise; the shared V head learns
    the large common part once. Q is linear in the last hidden layer, so the
    two heads merge exactly into the `DqnMlp`'s last Linear layer
    (`to_dqn_mlp`): the runtime and the weight files do not change.
    """

    def __init__(self, config: DqnMlpConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.n_inputs] + [config.hidden] * config.n_hidden_layers
        self.trunk = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.value = nn.Linear(config.hidden, 1)
        self.advantage = nn.Linear(config.hidden, config.n_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, n_inputs]`` -> Q ``[B, n_actions]``."""
        for layer in self.trunk:
            x = torch.relu(layer(x))
        a = self.advantage(x)
        return self.value(x) + a - a.mean(dim=1, keepdim=True)

    def to_dqn_mlp(self) -> DqnMlp:
        """The same function as a `DqnMlp` (heads merged into its last layer)."""
        out = DqnMlp.from_config(self.config)
        n = len(self.trunk)
        layers = [cast(torch.nn.Linear, m) for m in out.layers]
        with torch.no_grad():
            for k, m in enumerate(self.trunk):
                layer = cast(torch.nn.Linear, m)
                layers[k].weight.copy_(layer.weight)
                layers[k].bias.copy_(layer.bias)
            wa, ba = self.advantage.weight, self.advantage.bias
            layers[n].weight.copy_(self.value.weight + wa - wa.mean(dim=0, keepdim=True))
            layers[n].bias.copy_(self.value.bias + ba - ba.mean())
        return out.eval()


def dqn_update(
    online: nn.Module,
    target: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: ReplayBatch,
    *,
    gamma: float,
    huber_delta: float = 1.0,
    max_grad_norm: float = 10.0,
    demo: np.ndarray | None = None,
    margin: float = 0.0,
    margin_weight: float = 0.0,
) -> float:
    """One Double-DQN gradient step on ``batch``; returns the loss.

    Target ``y = r + (1 - done) gamma^steps Q_target(s', argmax_a Q_online(s', a))``
    (n-step when ``batch.steps`` > 1), Huber loss on ``Q_online(s, a) - y``.
    Rows flagged in ``demo`` (bool [B]) add ``margin_weight`` x DQfD's
    large-margin loss ``max_a [Q(s, a) + margin 1(a != a_E)] - Q(s, a_E)``.
    """
    s = torch.from_numpy(batch.states)
    a = torch.from_numpy(batch.actions)
    r = torch.from_numpy(batch.rewards)
    s2 = torch.from_numpy(batch.next_states)
    not_done = 1.0 - torch.from_numpy(batch.dones)
    discount = torch.from_numpy(np.power(gamma, batch.steps).astype(np.float32))
    with torch.no_grad():
        a2 = online(s2).argmax(dim=1, keepdim=True)
        y = r + not_done * discount * target(s2).gather(1, a2).squeeze(1)
    q_all = online(s)
    q = q_all.gather(1, a[:, None]).squeeze(1)
    loss = nn.functional.huber_loss(q, y, delta=huber_delta)
    if demo is not None and margin_weight > 0.0 and demo.any():
        d = torch.from_numpy(demo)
        margins = torch.full_like(q_all, margin)
        margins.scatter_(1, a[:, None], 0.0)
        je = (q_all + margins).max(dim=1).values - q
        loss = loss + margin_weight * je[d].mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(online.parameters(), max_grad_norm)
    optimizer.step()
    return float(loss.detach())


class NStepAccumulator:
    """Turns one trajectory's 1-step transitions into n-step ones for a replay buffer.

    ``push(s, a, r, s', truncated)`` per environment step; a transition
    ``(s_t, a_t, sum_k gamma^k r_{t+k}, s_{t+m}, steps=m)`` is emitted once
    m = n steps are known, and at truncation every pending one is emitted with
    the steps it has (bootstrapping from the last state: a time limit is not
    a terminal state).
    """

    def __init__(self, n: int, gamma: float, sink: ReplayBuffer) -> None:
        self.n = check_int("n", n, lo=1)
        self.gamma = check_number("gamma", gamma, hi=1.0)
        self.sink = sink
        self._q: deque[tuple[np.ndarray, int, float]] = deque()

    def push(self, s: np.ndarray, a: int, r: float, s2: np.ndarray, truncated: bool) -> None:
        q = self._q
        q.append((s, a, r))
        if len(q) == self.n:
            self._emit(s2)
        if truncated:
            while q:
                self._emit(s2)

    def _emit(self, s_last: np.ndarray) -> None:
        q = self._q
        ret = 0.0
        for k, (_, _, r) in enumerate(q):
            ret += (self.gamma**k) * r
        s0, a0, _ = q.popleft()
        self.sink.add(s0, a0, ret, s_last, False, steps=len(q) + 1)

    def reset(self) -> None:
        """Drop pending steps (a new trajectory starts)."""
        self._q.clear()


def make_training_env(config: DqnTrainConfig) -> CongestionEnv:
    """The training mix: TRAIN_SCENARIOS, random links and TRAIN_TRACES (when present)."""
    from oxidize_ml.sim.gym.congestion_env import CongestionEnv
    from oxidize_ml.sim.random_links import RandomLinkConfig

    traces = trace_paths(TRAIN_TRACES) if config.use_traces else []
    return CongestionEnv(
        scenarios=TRAIN_SCENARIOS,
        traces=traces,
        random_links=True,
        random_link=config.random_link or RandomLinkConfig(),
        episode_s=config.episode_s,
        state_config=config.state,
    )


def collect_demonstrations(
    env: CongestionEnv, n_steps: int, sink: NStepAccumulator, *, progress: Any = None
) -> dict[str, Any]:
    """Run the BBR-style fallback in ``env`` for ``n_steps`` decisions; push its transitions.

    The env must have been reset with a seed once; episodes continue from its RNG.
    """
    task = progress.add_task("BBR demonstrations", total=n_steps, info="") if progress else None
    counts = np.zeros(6, dtype=np.int64)
    episodes = 0
    rewards = 0.0
    done_steps = 0
    while done_steps < n_steps:
        s, _ = env.reset()
        sink.reset()
        bbr = BbrFallback(limits=env.limits)
        episodes += 1
        truncated = False
        while not truncated and done_steps < n_steps:
            obs = env.last_observation
            assert obs is not None
            bbr.learn_one(obs, 0.0, now=env.now)
            a = int(bbr.predict_one(obs, now=env.now))
            s2, r, _, truncated, _ = env.step(a)
            sink.push(s, a, r, s2, truncated or done_steps + 1 == n_steps)
            counts[a] += 1
            rewards += r
            s = s2
            done_steps += 1
            if task is not None and done_steps % 1000 == 0:
                progress.update(task, completed=done_steps, info=f"{episodes} episodes")
    if task is not None:
        progress.update(task, completed=n_steps, info=f"{episodes} episodes")
    return {
        "steps": n_steps,
        "episodes": episodes,
        "mean_reward": rewards / max(1, n_steps),
        "action_share": (counts / max(1, counts.sum())).round(4).tolist(),
    }


def telemetry_transitions(root: str | Path, state_size: int) -> dict[str, np.ndarray]:
    """``congestion`` rows of every telemetry export under ``root`` whose states fit the model."""
    from oxidize_ml.telemetry.export import read_exports

    table = read_exports(root)["congestion"]
    states = table.column("state").to_pylist()
    nexts = table.column("next_state").to_pylist()
    keep = [
        i
        for i, (s, n) in enumerate(zip(states, nexts, strict=True))
        if len(s) == state_size and len(n) == state_size
    ]
    actions = np.asarray(table.column("action").to_numpy(zero_copy_only=False), dtype=np.int64)
    rewards = np.asarray(table.column("reward").to_numpy(zero_copy_only=False), dtype=np.float32)
    dones = np.asarray(table.column("done").to_numpy(zero_copy_only=False), dtype=np.float32)
    idx = np.array(keep, dtype=np.int64)
    return {
        "states": np.array([states[i] for i in keep], dtype=np.float32).reshape(-1, state_size),
        "actions": actions[idx],
        "rewards": rewards[idx],
        "next_states": np.array([nexts[i] for i in keep], dtype=np.float32).reshape(-1, state_size),
        "dones": dones[idx],
        "rows": np.array(table.num_rows),
    }


# ---------------------------------------------------------------------------- evaluation
def heldout_suite() -> list[Scenario]:
    """HELDOUT_SCENARIOS plus the HELDOUT_TRACES present (60 ms RTT, 2 BDP, 30 s)."""
    from oxidize_ml.sim.links import BufferSpec
    from oxidize_ml.sim.scenarios import get_scenario, scenario_from_trace

    out = [get_scenario(n) for n in HELDOUT_SCENARIOS]
    for p in trace_paths(HELDOUT_TRACES):
        out.append(
            scenario_from_trace(
                p,
                rtt_s=TRACE_RTT_S,
                buffer=BufferSpec(bdp=TRACE_BUFFER_BDP),
                duration_s=TRACE_DURATION_S,
            )
        )
    return out


def train_suite() -> list[Scenario]:
    """The same comparison's training-split counterpart (TRAIN_SCENARIOS + TRAIN_TRACES)."""
    from oxidize_ml.sim.links import BufferSpec
    from oxidize_ml.sim.scenarios import get_scenario, scenario_from_trace

    out = [get_scenario(n) for n in TRAIN_SCENARIOS]
    for p in trace_paths(TRAIN_TRACES):
        out.append(
            scenario_from_trace(
                p,
                rtt_s=TRACE_RTT_S,
                buffer=BufferSpec(bdp=TRACE_BUFFER_BDP),
                duration_s=TRACE_DURATION_S,
            )
        )
    return out


def _queue_delay_p95_s(result: Any, scenario: Scenario) -> float:
    parts = [
        f.delays_s - spec.delay_s
        for f, spec in zip(result.flows, scenario.flows, strict=True)
        if f.delays_s.size
    ]
    if not parts:
        return math.nan
    return float(np.percentile(np.concatenate(parts), 95.0))


def evaluate_congestion(
    model_path: str | Path | None,
    scenarios: Sequence[Scenario],
    *,
    state_config: StateConfig,
    seeds: int,
    duration_s: float | None = None,
    progress: Any = None,
    label: str = "held-out evaluation",
    factory: ControllerFactory | None = None,
) -> dict[str, Any]:
    """Run the DQN (from its weight file) and `BASELINES` on ``scenarios``; figures and verdict.

    Returns ``{"scenarios": {name: {controller: figures}}, "summary": {controller:
    suite figures}, "beats_heuristic": bool, "checks": {...}}``. Per scenario,
    figures are means over ``EVAL_SEED_BASE + i`` for ``i < seeds`` (one run when
    the scenario is deterministic). ``factory``, when given, is run in the DQN's place
    (under its name "dqn", ``model_path`` unused): e.g. an engine running a congestion
    controller that is not the spec's DQN, to compare a candidate with it.
    """
    from oxidize_ml.sim import default_registry, simulate
    from oxidize_ml.sim.controllers.dqn_factory import dqn_factory

    registry = default_registry()
    if factory is None:
        if model_path is None:
            raise ValueError("model_path is required when no factory is given")
        factory = dqn_factory(model_path, state_config=state_config)
    registry.register("dqn", factory)
    controllers = ("dqn", *BASELINES)
    task = (
        progress.add_task(label, total=len(scenarios) * len(controllers), info="")
        if progress
        else None
    )
    per: dict[str, dict[str, dict[str, float]]] = {}
    for sc in scenarios:
        n = seeds if sc.is_random else 1
        per[sc.name] = {}
        for ctrl in controllers:
            runs = []
            for i in range(n):
                res = simulate(
                    sc,
                    ctrl,
                    seed=EVAL_SEED_BASE + i,
                    duration_s=duration_s,
                    record_series=False,
                    registry=registry,
                )
                runs.append(
                    {
                        "throughput_mbps": res.throughput_bps / 1e6,
                        "delay_p95_ms": res.delay_p95_s * 1e3,
                        "queue_delay_p95_ms": _queue_delay_p95_s(res, sc) * 1e3,
                        "loss_rate": res.loss_rate,
                        "utilisation": res.utilisation,
                    }
                )
            per[sc.name][ctrl] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            per[sc.name][ctrl]["runs"] = n
            if task is not None:
                progress.update(task, advance=1, info=sc.name)
    summary: dict[str, dict[str, float]] = {}
    for ctrl in controllers:
        thr = [per[s][ctrl]["throughput_mbps"] for s in per]
        q = [per[s][ctrl]["queue_delay_p95_ms"] for s in per]
        d = [per[s][ctrl]["delay_p95_ms"] for s in per]
        summary[ctrl] = {
            "throughput_mbps_sum": float(np.sum(thr)),
            "queue_delay_p95_ms_mean": float(np.nanmean(q)),
            "delay_p95_ms_mean": float(np.nanmean(d)),
        }
    dqn, cubic = summary["dqn"], summary["cubic"]
    worst = min(
        (
            per[s]["dqn"]["throughput_mbps"] / per[s]["cubic"]["throughput_mbps"]
            if per[s]["cubic"]["throughput_mbps"] > 0
            else math.inf
        )
        for s in per
    )
    checks = {
        "throughput_vs_cubic": dqn["throughput_mbps_sum"] / cubic["throughput_mbps_sum"],
        "queue_delay_vs_cubic": dqn["queue_delay_p95_ms_mean"] / cubic["queue_delay_p95_ms_mean"],
        "worst_scenario_throughput_vs_cubic": worst,
    }
    beats = (
        checks["throughput_vs_cubic"] >= 1.0
        and checks["queue_delay_vs_cubic"] <= 0.5
        and worst >= 0.5
    )
    return {"scenarios": per, "summary": summary, "checks": checks, "beats_heuristic": beats}


# ---------------------------------------------------------------------------- training
@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    ) as p:
        yield p


def _mixed_batch(
    demo: ReplayBuffer | None, agent: ReplayBuffer, batch_size: int, demo_fraction: float
) -> tuple[ReplayBatch, np.ndarray]:
    """A minibatch with round(demo_fraction x B) demonstration rows (flagged) and agent rows."""
    n_demo = 0 if demo is None or len(demo) == 0 else round(demo_fraction * batch_size)
    if len(agent) == 0:
        n_demo = batch_size
    parts = []
    if n_demo:
        parts.append(demo.sample(n_demo))  # type: ignore[union-attr]
    if batch_size - n_demo:
        parts.append(agent.sample(batch_size - n_demo))
    if len(parts) == 1:
        b = parts[0]
    else:
        b = ReplayBatch(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("states", "actions", "rewards", "next_states", "dones", "steps")
            )
        )
    flags = np.zeros(batch_size, dtype=bool)
    flags[:n_demo] = True
    return b, flags


@dataclass
class _Stats:
    losses: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    episode_rewards: deque[float] = field(default_factory=lambda: deque(maxlen=50))
    """mean reward per decision of the last episodes"""

    def mean_loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else math.nan

    def mean_return(self) -> float:
        return float(np.mean(self.episode_rewards)) if self.episode_rewards else math.nan


def export_dqn_onnx(model: DqnMlp, path: Path, *, seed: int = 0, n: int = 64) -> Path:
    """`export_onnx` with a verification tolerance relative to the Q-values' size.

    Q-values are returns, |Q| up to 1 / (1 - gamma) = 50, where float32
    reassociation alone differs by ~2e-5 (4e-7 relative): the export
    module's absolute `ONNX_TOLERANCE` (1e-5, sized for outputs of order 1)
    rejects a correct graph. The graph is exported under a temporary name,
    compared with torch on ``n`` random inputs (`verify_onnx`), accepted when
    the largest difference is within ``ONNX_TOLERANCE x max(1, max |Q|)``, and
    only then renamed into place.
    """
    import os

    from oxidize_ml.training.export import ONNX_TOLERANCE, export_onnx, verify_onnx

    tmp = path.with_name(f".unverified-{path.name}")
    export_onnx(model, tmp, verify_n=0, seed=seed)
    try:
        err = verify_onnx(model, tmp, n=n, seed=seed)
        x = torch.from_numpy(
            np.random.default_rng(seed)
            .standard_normal((n, model.config.n_inputs))
            .astype(np.float32)
        )
        with torch.no_grad():
            scale = max(1.0, float(model(x).abs().max()))
        if not err <= ONNX_TOLERANCE * scale:
            raise ValueError(
                f"onnxruntime output differs from torch by {err:.3g} > "
                f"{ONNX_TOLERANCE} x {scale:.3g}; not written"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fit_dqn(
    config: DqnTrainConfig,
    *,
    seed: int,
    telemetry_root: str | Path | None = None,
    progress: Any = None,
) -> tuple[DqnMlp, dict[str, Any]]:
    """Phases 1-3 of the module docstring: the trained Q-network and a summary of the run.

    Deterministic: the same ``config`` and ``seed`` give the same weights.
    ``progress`` is a rich ``Progress`` (or None).
    """
    state_size = config.state.size

    # ---- seeding: every random stream of the run comes from here -------------------------
    seeds = np.random.SeedSequence([seed, TRAIN_SEED_BASE]).generate_state(5)
    torch.manual_seed(int(seeds[0]))
    torch.set_num_threads(config.torch_threads)
    explore_rng = np.random.default_rng(int(seeds[1]))
    demo_buf = ReplayBuffer(max(1, config.demo_steps), state_size, seed=int(seeds[2]))
    agent_buf = ReplayBuffer(config.buffer_size, state_size, seed=int(seeds[3]))
    env = make_training_env(config)
    env.reset(seed=TRAIN_SEED_BASE + seed)
    env.action_space.seed(int(seeds[4]))

    # ---- networks ----------------------------------------------------------------------------
    mlp_cfg = DqnMlpConfig(n_inputs=state_size, hidden=config.hidden)
    net_cls = DuelingDqn if config.dueling else DqnMlp.from_config
    q_net = net_cls(mlp_cfg)
    target_net = net_cls(mlp_cfg)
    target_net.load_state_dict(q_net.state_dict())
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)
    stats = _Stats()
    summary: dict[str, Any] = {}
    prog = progress

    # ---- 1. demonstrations ----------------------------------------------------------------
    if config.demo_steps:
        summary["demonstrations"] = collect_demonstrations(
            env,
            config.demo_steps,
            NStepAccumulator(config.n_step, config.gamma, demo_buf),
            progress=prog,
        )

    # ---- telemetry pre-fill (optional) ---------------------------------------------------
    if telemetry_root is not None:
        tel = telemetry_transitions(telemetry_root, state_size)
        agent_buf.add_batch(
            tel["states"], tel["actions"], tel["rewards"], tel["next_states"], tel["dones"]
        )
        summary["telemetry"] = {
            "root": str(telemetry_root),
            "rows": int(tel["rows"]),
            "used": len(tel["actions"]),
        }

    # ---- 2. warm start: TD (+ optional DQfD margin) on the demonstrations --------------
    updates = 0
    if config.pretrain_updates and len(demo_buf):
        task = (
            prog.add_task("warm start (BBR demonstrations)", total=config.pretrain_updates, info="")
            if prog
            else None
        )
        all_demo = np.ones(config.batch_size, dtype=bool)
        for _ in range(config.pretrain_updates):
            b = demo_buf.sample(config.batch_size)
            stats.losses.append(
                dqn_update(
                    q_net,
                    target_net,
                    optimizer,
                    b,
                    gamma=config.gamma,
                    huber_delta=config.huber_delta,
                    max_grad_norm=config.max_grad_norm,
                    demo=all_demo,
                    margin=config.margin,
                    margin_weight=config.margin_weight,
                )
            )
            updates += 1
            if updates % config.target_sync_updates == 0:
                target_net.load_state_dict(q_net.state_dict())
            if task is not None and updates % 200 == 0:
                prog.update(task, completed=updates, info=f"loss {stats.mean_loss():.4f}")
        target_net.load_state_dict(q_net.state_dict())
        if task is not None:
            prog.update(
                task, completed=config.pretrain_updates, info=f"loss {stats.mean_loss():.4f}"
            )
        summary["warm_start"] = {
            "updates": updates,
            "final_loss": stats.mean_loss(),
            "demo_agreement": _agreement(q_net, demo_buf),
        }

    # ---- 3. DQN: epsilon-greedy in the environment ------------------------------------
    actor = MlpModel(weights_from_torch(q_net))
    nstep = NStepAccumulator(config.n_step, config.gamma, agent_buf)
    s, _ = env.reset()
    ep_return, ep_steps, episodes = 0.0, 0, 0
    task = prog.add_task("DQN", total=config.total_steps, info="") if prog else None
    for step in range(config.total_steps):
        eps = config.epsilon(step)
        if explore_rng.random() < eps:
            a = int(explore_rng.integers(6))
        else:
            a = actor.argmax(s)
        s2, r, _, truncated, _ = env.step(a)
        nstep.push(s, a, r, s2, truncated)
        ep_return += r
        ep_steps += 1
        s = s2
        if truncated:
            stats.episode_rewards.append(ep_return / ep_steps)
            episodes += 1
            ep_return, ep_steps = 0.0, 0
            s, _ = env.reset()
            nstep.reset()
        if step >= config.learning_starts and step % config.train_frequency == 0:
            batch, flags = _mixed_batch(
                demo_buf, agent_buf, config.batch_size, config.demo_fraction
            )
            stats.losses.append(
                dqn_update(
                    q_net,
                    target_net,
                    optimizer,
                    batch,
                    gamma=config.gamma,
                    huber_delta=config.huber_delta,
                    max_grad_norm=config.max_grad_norm,
                    demo=flags,
                    margin=config.margin,
                    margin_weight=config.margin_weight,
                )
            )
            updates += 1
            if updates % config.target_sync_updates == 0:
                target_net.load_state_dict(q_net.state_dict())
            if updates % config.actor_sync_updates == 0:
                actor = MlpModel(weights_from_torch(q_net))
        if task is not None and step % 1000 == 0:
            prog.update(
                task,
                completed=step,
                info=(
                    f"eps {eps:.3f} loss {stats.mean_loss():.4f} "
                    f"reward/step {stats.mean_return():.3f}"
                ),
            )
    if task is not None:
        prog.update(task, completed=config.total_steps)
    env.close()
    summary["dqn"] = {
        "steps": config.total_steps,
        "episodes": episodes,
        "updates": updates,
        "final_loss": stats.mean_loss(),
        "final_epsilon": config.epsilon(config.total_steps - 1),
        "recent_reward_per_step": stats.mean_return(),
        "demo_agreement": _agreement(q_net, demo_buf),
    }
    final = q_net.to_dqn_mlp() if isinstance(q_net, DuelingDqn) else q_net
    return final.eval(), summary


def train(
    config: DqnTrainConfig,
    *,
    seed: int,
    out_dir: str | Path,
    telemetry_root: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (`fit_dqn`), export and evaluate the DQN congestion controller.

    Parameters
    ----------
    config
        Hyperparameters (`DqnTrainConfig.quick` for tests).
    seed
        Seeds everything; the same seed and config give the same weights.
    out_dir
        Where ``congestion_controller.safetensors`` and ``.onnx`` are written
        (created if missing).
    telemetry_root
        Telemetry exports whose ``congestion`` transitions pre-fill the replay buffer.
    progress
        Show rich progress bars.
    """
    from oxidize_ml.training.export import export_safetensors

    if not isinstance(config, DqnTrainConfig):
        raise TypeError(f"config must be a DqnTrainConfig, got {type(config).__name__}")
    check_int("seed", seed, lo=0)
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _progress(progress) as prog:
        q_net, summary = fit_dqn(config, seed=seed, telemetry_root=telemetry_root, progress=prog)
        train_s = time.perf_counter() - t_start

        # ---- 4. export ------------------------------------------------------------------------
        meta = {
            "congestion_state_version": str(CONGESTION_STATE_VERSION),
            "state_config": json.dumps(asdict(config.state)),
            "gamma": repr(config.gamma),
            "seed": str(seed),
        }
        st_path = export_safetensors(q_net, out / f"{STEM}.safetensors", extra_metadata=meta)
        onnx_path = export_dqn_onnx(q_net, out / f"{STEM}.onnx", seed=seed)

        # ---- 5. evaluation on the held-out split -----------------------------------------
        t_eval = time.perf_counter()
        heldout = evaluate_congestion(
            st_path,
            heldout_suite(),
            state_config=config.state,
            seeds=config.eval_seeds,
            duration_s=config.eval_duration_s,
            progress=prog,
        )
        metrics: dict[str, Any] = {"heldout": heldout, "checks": heldout["checks"]}
        if config.eval_train_split:
            metrics["train_split"] = evaluate_congestion(
                st_path,
                train_suite(),
                state_config=config.state,
                seeds=1,
                duration_s=config.eval_duration_s,
                progress=prog,
                label="training-split check",
            )
        eval_s = time.perf_counter() - t_eval

    training = {
        "algorithm": "TD warm start on BBR demonstrations, then n-step dueling Double DQN",
        "data": {
            "train_scenarios": list(TRAIN_SCENARIOS),
            "train_traces": [p.name for p in trace_paths(TRAIN_TRACES)]
            if config.use_traces
            else [],
            "random_links": True,
            "seed_base": TRAIN_SEED_BASE,
        },
        "heldout": heldout_provenance(),
        "seed": seed,
        "hyperparameters": config.to_dict(),
        "phases": summary,
        "wall_time_s": {
            "training": round(train_s, 1),
            "evaluation": round(eval_s, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "torch_threads": config.torch_threads,
    }
    return TrainResult(
        name=STEM,
        kind="dqn",
        files={"safetensors": st_path.name, "onnx": onnx_path.name},
        version=MODEL_VERSION,
        inputs=state_input_names(config.state),
        training=training,
        metrics=metrics,
        beats_heuristic=bool(heldout["beats_heuristic"]),
        target=TARGET,
    )


def _agreement(q_net: nn.Module, demo: ReplayBuffer, n: int = 4096) -> float | None:
    """Share of sampled demonstration states where the greedy action is BBR's."""
    if len(demo) == 0:
        return None
    b = demo.sample(n)
    with torch.no_grad():
        greedy = q_net(torch.from_numpy(b.states)).argmax(dim=1).numpy()
    return float(np.mean(greedy == b.actions))
