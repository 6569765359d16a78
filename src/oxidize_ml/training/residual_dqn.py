"""Train the residual DQN (`oxidize_ml.congestion.residual`): learned corrections on the fallback.

Reads top to bottom (CleanRL's habit): `ResidualTrainConfig`, the training
episodes (`sample_episode`), the recorder that turns the policy's decisions
into n-step transitions, then `fit` (the whole algorithm) and `save`.

Algorithm
---------
- Episodes: ``episode_s`` of one TRAINING-split link (`oxidize_ml.evaluation.splits`):
  a Mahimahi ``TRAIN_TRACES`` window at a random offset (when the trace folder
  exists), a built-in ``TRAIN_SCENARIOS`` scenario, or a random synthetic
  link; base RTT log-uniform in [20, 300] ms, buffer 0.5-4 BDP. Each runs in the
  simulator with pacing and the delivery envelope, as the policy is served.
- Acting: `ResidualDqnPolicy` with a numpy copy of the Q-network refreshed
  after every episode; epsilon-greedy with a *training* schedule: linear from
  ``eps_start`` to ``eps_end`` over ``eps_fraction`` of the decision budget
  (the spec's x0.995 per decision reaches 0.01 after ~920 decisions, far too
  early for training; it stays the schedule for online learning).
- Learning: Double-DQN with n-step returns (`oxidize_ml.training.dqn.dqn_update`,
  `NStepAccumulator`) over the agent's decisions (one per ~smoothed RTT; the
  reward of a decision is the mean `residual_reward` of the intervals its
  correction held; utilisation is measured against the link's true capacity,
  which only training knows), a bounded uniform replay buffer, a target network synced
  every ``target_sync`` updates, ``updates_per_decision`` updates after each
  episode.

Everything random draws from one ``np.random.Generator(seed)`` plus
``torch.manual_seed(seed)``: a run is reproducible on one machine.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oxidize_ml._atomic import atomic_write_bytes
from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.dqn import ReplayBuffer
from oxidize_ml.congestion.interval import PolicyController
from oxidize_ml.congestion.residual import N_INPUTS, ResidualDqnPolicy, residual_reward
from oxidize_ml.evaluation.splits import TRAIN_SCENARIOS, TRAIN_SEED_BASE, TRAIN_TRACES, trace_paths
from oxidize_ml.runtime.configs import DqnMlpConfig
from oxidize_ml.runtime.numpy_models import MlpModel
from oxidize_ml.sim.core import Simulation
from oxidize_ml.sim.links import BufferSpec, TraceLink
from oxidize_ml.sim.scenarios import FlowSpec, Scenario, get_scenario, scenario_from_trace
from oxidize_ml.training.dqn import DuelingDqn, NStepAccumulator, dqn_update, weights_from_torch

N_ACTIONS = 6


@dataclass(frozen=True, slots=True)
class ResidualTrainConfig:
    seed: int = 0
    """seeds the episode choice, exploration and torch"""
    budget_s: float = 780.0
    """wall-clock budget, seconds (the machine is shared)"""
    max_decisions: int = 300_000
    """agent decisions (not 10-ms intervals) to train on at most"""
    episode_s: float = 20.0
    """simulated length of one episode, seconds"""
    hidden: int = 128
    """width of the two hidden layers (the spec's DQN)"""
    gamma: float = 0.95
    """discount per agent decision (~one RTT): horizon ~20 RTTs"""
    n_step: int = 4
    """n-step returns over agent decisions"""
    lr: float = 3e-4
    """Adam learning rate"""
    batch: int = 128
    """minibatch size"""
    replay: int = 200_000
    """replay buffer capacity, transitions"""
    updates_per_decision: float = 0.25
    """gradient updates run after each episode, per decision it produced"""
    target_sync: int = 500
    """updates between target-network copies"""
    eps_start: float = 1.0
    """initial exploration probability"""
    eps_end: float = 0.05
    """final exploration probability"""
    eps_fraction: float = 0.5
    """share of ``max_decisions`` over which epsilon decays linearly"""
    learn_start: int = 5_000
    """transitions collected before the first update"""
    trace_share: float = 0.6
    """share of episodes on Mahimahi training traces (when present)"""
    reward: str = "power"
    """"power": `power_reward` (log utilisation - log(rtt / min_rtt), the evaluation's
    goodput / delay in log form); "linear": `residual_reward`"""

    def __post_init__(self) -> None:
        check_int("seed", self.seed)
        check_number("budget_s", self.budget_s, lo=1.0)
        check_int("max_decisions", self.max_decisions, lo=1)
        check_number("episode_s", self.episode_s, lo=1.0)
        check_int("hidden", self.hidden, lo=8, hi=1024)
        check_number("gamma", self.gamma, hi=1.0)
        check_int("n_step", self.n_step, lo=1, hi=64)
        check_number("lr", self.lr, lo=1e-7, hi=1.0)
        check_int("batch", self.batch, lo=1, hi=65_536)
        check_int("replay", self.replay, lo=1_000, hi=10_000_000)
        check_number("updates_per_decision", self.updates_per_decision, hi=16.0)
        check_int("target_sync", self.target_sync, lo=1)
        check_number("eps_start", self.eps_start, hi=1.0)
        check_number("eps_end", self.eps_end, hi=1.0)
        check_number("eps_fraction", self.eps_fraction, lo=1e-6, hi=1.0)
        check_int("learn_start", self.learn_start, lo=1)
        check_number("trace_share", self.trace_share, hi=1.0)
        if self.reward not in ("power", "linear"):
            raise ValueError(f"reward must be 'power' or 'linear', got {self.reward!r}")


def sample_episode(rng: np.random.Generator, episode_s: float, trace_share: float) -> Scenario:
    """One training-split link: a trace window, a built-in scenario or a random constant link."""
    rtt = float(np.exp(rng.uniform(np.log(0.02), np.log(0.3))))  # 20-300 ms, log-uniform
    bdp = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
    traces = trace_paths(TRAIN_TRACES)
    u = rng.random()
    if traces and u < trace_share:
        p = traces[int(rng.integers(len(traces)))]
        link = TraceLink(str(p))
        start = float(rng.uniform(0.0, max(link.period_s - episode_s, 0.0)))
        return scenario_from_trace(
            p, rtt_s=rtt, buffer=BufferSpec(bdp=bdp), duration_s=episode_s, start_s=start, link=link
        )
    if u < trace_share + (1.0 - trace_share) / 2.0:
        name = TRAIN_SCENARIOS[int(rng.integers(len(TRAIN_SCENARIOS)))]
        sc = get_scenario(name)
        if len(sc.flows) == 1:
            return sc.with_duration(episode_s)
    from oxidize_ml.sim.links import StepLink

    # a random piecewise-constant link: 1-50 Mbit/s, a change every 2-8 s
    t = 0.0
    steps = []
    while t < episode_s:
        steps.append((t, float(np.exp(rng.uniform(np.log(1e6), np.log(50e6))))))
        t += float(rng.uniform(2.0, 8.0))
    return Scenario(
        "random-steps",
        StepLink(tuple(steps)),
        (FlowSpec(delay_s=rtt / 2.0),),
        buffer=BufferSpec(bdp=bdp),
        duration_s=episode_s,
    )


class _Recorder(ResidualDqnPolicy):
    """The policy in training: records (state, action, mean reward over the hold, next state)."""

    def __init__(
        self, q_model: Any, actor: Callable[[np.ndarray, Any], int], sink: NStepAccumulator
    ) -> None:
        super().__init__(q_model, actor=actor)
        self._sink = sink
        self._prev: tuple[np.ndarray, int] | None = None
        self._r_sum = 0.0
        self._r_n = 0
        self.n_decisions = 0
        # training only: the link's true capacity over (t0, t1], bits/s
        self.capacity_bps: Callable[[float, float], float] | None = None
        self.reward = "linear"
        self._cap_t: float | None = None
        self._cap_s = 0.0

    def learn_one(self, obs: Any, feedback: float = 0.0, *, now: float) -> None:
        super().learn_one(obs, feedback, now=now)
        feats = self.features
        if self.capacity_bps is not None:
            # Utilisation against the link's true capacity, smoothed like the delivery
            # rate: a reward measured against the flow's own max delivery rate can be
            # gamed by starving the link (the max then decays with it).
            prev = self._cap_t
            self._cap_t = now
            if prev is not None and now > prev:
                cap = self.capacity_bps(prev, now)
                a = 1.0 - float(np.exp(-(now - prev) / feats.tau_s))
                self._cap_s += a * (cap - self._cap_s)
            u = feats.smoothed_throughput_bps / self._cap_s if self._cap_s > 0.0 else 1.0
            if self.reward == "power":
                r = power_reward(u, feats.queue_share, obs.features.loss_rate)
            else:
                r = residual_reward(u, feats.queue_share, obs.features.loss_rate)
        else:
            r = feats.last_reward
        self._r_sum += r
        self._r_n += 1

    def predict_one(self, obs: Any, *, now: float) -> Any:
        out = super().predict_one(obs, now=now)
        if self.decided and self._state is not None:
            s = self._state.copy()
            if self._prev is not None and self._r_n:
                ps, pa = self._prev
                self._sink.push(ps, pa, self._r_sum / self._r_n, s, False)
            self._prev = (s, self.last_action)
            self._r_sum = 0.0
            self._r_n = 0
            self.n_decisions += 1
        return out

    def close_episode(self) -> None:
        if self._prev is not None and self._r_n and self._state is not None:
            ps, pa = self._prev
            self._sink.push(ps, pa, self._r_sum / self._r_n, self._state.copy(), True)
        self._sink.reset()


def power_reward(util: float, queue_share: float, loss: float) -> float:
    """``(log u - log(rtt / min_rtt)) / 3 - 5 loss``, clipped to [-1, 0.0]: the log of the
    power (goodput / delay) relative to an empty-queue, full-link flow. Utilisation is
    floored at 5 % so one silent interval does not dominate."""
    u = min(max(util, 0.05), 1.0)
    q = min(max(queue_share, 0.0), 0.95)
    r = (math.log(u) + math.log(1.0 - q)) / 3.0 - 5.0 * loss
    return max(-1.0, min(r, 0.0))


def _capacity_fn(sim: Simulation) -> Callable[[float, float], float]:
    """Link capacity in (t0, t1], bits/s, from the schedule (reads no event-loop state)."""
    bits = 1500 * 8.0

    def capacity(t0: float, t1: float) -> float:
        return sim.opportunities_between(t0, t1) * bits / (t1 - t0)

    return capacity


def fit(
    config: ResidualTrainConfig, *, progress: Callable[[str], None] | None = None
) -> tuple[DuelingDqn, dict[str, Any]]:
    """Train; returns the Q-network and a log (episodes, decisions, losses, epsilon)."""
    rng = np.random.default_rng(TRAIN_SEED_BASE + config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(1)  # small batches: threads cost more than they give on 2 shared cores
    mcfg = DqnMlpConfig(n_inputs=N_INPUTS, hidden=config.hidden)
    online = DuelingDqn(mcfg)
    target = DuelingDqn(mcfg)
    target.load_state_dict(online.state_dict())
    opt = torch.optim.Adam(online.parameters(), lr=config.lr)
    replay = ReplayBuffer(config.replay, N_INPUTS, seed=config.seed)
    nstep = NStepAccumulator(config.n_step, config.gamma, replay)
    decisions = 0
    updates = 0
    episodes = 0
    t0 = time.perf_counter()
    log: dict[str, Any] = {"episode_reward": [], "epsilon": [], "loss": []}
    eps_span = config.eps_fraction * config.max_decisions

    def epsilon() -> float:
        frac = min(1.0, decisions / eps_span)
        return config.eps_start + frac * (config.eps_end - config.eps_start)

    def actor(state: np.ndarray, q: Any) -> int:
        if q is None or rng.random() < epsilon():
            return int(rng.integers(N_ACTIONS))
        return int(np.argmax(q))

    model = MlpModel(weights_from_torch(online))
    while decisions < config.max_decisions and time.perf_counter() - t0 < config.budget_s:
        sc = sample_episode(rng, config.episode_s, config.trace_share)
        rec = _Recorder(model, actor, nstep)
        ctrl = PolicyController(rec)
        sim = Simulation(sc, ctrl, seed=int(rng.integers(1 << 31)), record_series=False)
        rec.capacity_bps = _capacity_fn(sim)
        rec.reward = config.reward
        sim.run()
        rec.close_episode()
        decisions += rec.n_decisions
        episodes += 1
        log["epsilon"].append(epsilon())
        n_upd = (
            int(rec.n_decisions * config.updates_per_decision)
            if len(replay) >= config.learn_start
            else 0
        )
        losses = []
        for _ in range(n_upd):
            losses.append(
                dqn_update(online, target, opt, replay.sample(config.batch), gamma=config.gamma)
            )
            updates += 1
            if updates % config.target_sync == 0:
                target.load_state_dict(online.state_dict())
        log["loss"].append(float(np.mean(losses)) if losses else None)
        model = MlpModel(weights_from_torch(online))
        if progress is not None and episodes % 10 == 0:
            progress(
                f"episode {episodes} decisions {decisions} updates {updates} "
                f"eps {epsilon():.3f} loss {log['loss'][-1]} "
                f"wall {time.perf_counter() - t0:.0f}s"
            )
    log.update(
        episodes=episodes,
        decisions=decisions,
        updates=updates,
        wall_s=time.perf_counter() - t0,
        config=asdict(config),
    )
    return online, log


def save(net: DuelingDqn, log: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``residual_dqn.safetensors`` (+ its training log) atomically into ``out_dir``."""
    from oxidize_ml.training.export import export_safetensors

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = export_safetensors(
        net.to_dqn_mlp(),
        out / "residual_dqn.safetensors",
        extra_metadata={"policy": "residual-dqn"},
    )
    atomic_write_bytes(out / "residual_dqn_train_log.json", json.dumps(log, default=str).encode())
    return path


def load(path: str | Path) -> ResidualDqnPolicy:
    """A `ResidualDqnPolicy` from a file written by `save` (`ResidualDqnPolicy.load`)."""
    return ResidualDqnPolicy.load(path)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual use
    """``python -m oxidize_ml.training.residual_dqn OUT_DIR [SEED]``: train with the defaults
    (the candidate in ``oxidize_ml/models/candidates/residual_dqn`` is seed 0, ~11 min on
    one core) and write ``residual_dqn.safetensors`` + its log into OUT_DIR."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m oxidize_ml.training.residual_dqn OUT_DIR [SEED]")
    cfg = ResidualTrainConfig(seed=int(args[1]) if len(args) > 1 else 0)
    net, log = fit(cfg, progress=print)
    print(save(net, log, args[0]))


if __name__ == "__main__":  # pragma: no cover
    main()
