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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oxidize_ml._atomic import atomic_write_bytes
from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.dqn import ReplayBuffer
from oxidize_ml.congestion.interval import PolicyController
from oxidize_ml.congestion.residual import (
    INPUT_NAMES,
    N_INPUTS,
    POLICY_NAME,
    ResidualDqnPolicy,
    residual_reward,
)
from oxidize_ml.evaluation.splits import (
    TRAIN_SCENARIOS,
    TRAIN_SEED_BASE,
    TRAIN_TRACES,
    heldout_provenance,
    trace_paths,
)
from oxidize_ml.runtime.configs import DqnMlpConfig
from oxidize_ml.runtime.numpy_models import MlpModel
from oxidize_ml.sim.core import Simulation
from oxidize_ml.sim.links import BufferSpec, TraceLink
from oxidize_ml.sim.scenarios import FlowSpec, Scenario, get_scenario, scenario_from_trace
from oxidize_ml.training.dqn import DuelingDqn, NStepAccumulator, dqn_update, weights_from_torch
from oxidize_ml.training.result import TrainResult

N_ACTIONS = 6
STEM = "residual_dqn"
"""file stem of the model (``residual_dqn.safetensors`` / ``.onnx``)"""
COMPONENT = "residual_dqn"
"""the `oxidize-ml train --components` name (the model fills the engine's
``congestion_controller`` slot, `oxidize_ml.training.pipeline.MODEL_SLOTS`)"""
MODEL_VERSION = "1"
DEFAULT_RULE_FAMILY_FLOOR = 0.9
"""issue 10's default rule: no scenario family below this share of the default's power"""
TARGET = (
    "issue 10 default rule: power (goodput / p95 delay) above the current default's with "
    "95 % confidence on the held-out windows, and no held-out family below "
    f"{DEFAULT_RULE_FAMILY_FLOOR:g}x the default's power"
)


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
    eval_window_s: float = 30.0
    """length of each held-out trace window in the evaluation, simulated seconds"""
    eval_windows: int = 3
    """evenly spaced held-out windows per trace (plus its silent-start window)"""
    eval_rtts_ms: tuple[float, ...] = (40.0, 100.0)
    """base RTTs of the held-out windows, ms"""
    eval_scenario_s: float = 30.0
    """length of the built-in held-out scenario runs, simulated seconds"""
    eval_bootstrap: int = 2000
    """paired bootstrap replicates of the power ratio's interval"""

    @classmethod
    def quick(cls) -> ResidualTrainConfig:
        """Seconds, not minutes: for tests and smoke runs (not a useful model)."""
        return cls(
            budget_s=120.0,
            max_decisions=400,
            learn_start=50,
            batch=16,
            episode_s=2.0,
            hidden=16,
            updates_per_decision=0.5,
            eval_window_s=3.0,
            eval_windows=1,
            eval_rtts_ms=(40.0,),
            eval_scenario_s=3.0,
            eval_bootstrap=200,
        )

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
        check_number("eval_window_s", self.eval_window_s, lo=0.5, hi=600.0)
        check_int("eval_windows", self.eval_windows, lo=1, hi=20)
        if not self.eval_rtts_ms:
            raise ValueError("eval_rtts_ms needs at least one RTT")
        for i, r in enumerate(self.eval_rtts_ms):
            check_number(f"eval_rtts_ms[{i}]", r, lo=1.0, hi=2000.0)
        check_number("eval_scenario_s", self.eval_scenario_s, lo=0.5, hi=600.0)
        check_int("eval_bootstrap", self.eval_bootstrap, lo=100, hi=100_000)


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

    def learn_one(self, obs: Any, feedback: float, *, now: float) -> None:
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
        state = self.state
        if self.decided and state is not None:
            s = state.copy()
            if self._prev is not None and self._r_n:
                ps, pa = self._prev
                self._sink.push(ps, pa, self._r_sum / self._r_n, s, False)
            self._prev = (s, self.last_action)
            self._r_sum = 0.0
            self._r_n = 0
            self.n_decisions += 1
        return out

    def close_episode(self) -> None:
        state = self.state
        if self._prev is not None and self._r_n and state is not None:
            ps, pa = self._prev
            self._sink.push(ps, pa, self._r_sum / self._r_n, state.copy(), True)
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


def save(net: DuelingDqn, log: dict[str, Any], out_dir: str | Path, *, onnx: bool = False) -> Path:
    """Write ``residual_dqn.safetensors`` (+ its training log, and ``residual_dqn.onnx``
    when ``onnx``) atomically into ``out_dir``; returns the safetensors path."""
    from oxidize_ml.training.export import export_safetensors

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mlp = net.to_dqn_mlp()
    path = export_safetensors(
        mlp, out / f"{STEM}.safetensors", extra_metadata={"policy": POLICY_NAME}
    )
    if onnx:
        from oxidize_ml.training.dqn import export_dqn_onnx

        export_dqn_onnx(mlp.eval(), out / f"{STEM}.onnx", seed=int(log.get("seed", 0)))
    atomic_write_bytes(out / f"{STEM}_train_log.json", json.dumps(log, default=str).encode())
    return path


# ----------------------------------------------------------------------------- evaluation


def residual_factory(policy: ResidualDqnPolicy) -> Callable[..., Any]:
    """A simulator controller factory: one fork of ``policy`` per flow, behind the
    delivery envelope (`PolicyController`), as the engine serves it."""

    def factory(*, flow_index: int, seed: int) -> Any:
        return PolicyController(policy.fork())

    return factory


def _scenario_power(result: Any) -> float:
    delay = float(result.delay_p95_s)
    thr = float(result.throughput_bps) / 1e6
    return thr / delay if delay > 0.0 and math.isfinite(delay) else math.nan


def evaluate_heldout(
    policy: ResidualDqnPolicy,
    config: ResidualTrainConfig,
    *,
    seed: int = 0,
    default_factory: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """The residual DQN against the engine's default (`MlEngine()`), CUBIC and the
    fallback on the HELD-OUT split, with issue 10's default rule.

    - Held-out trace windows (`oxidize_ml.evaluation.congestion_windows.run_windows`
      on ``HELDOUT_TRACES``, when the trace folder exists): ratios to CUBIC, power
      (goodput / p95 delay) over the default's with a paired 95 % bootstrap interval.
    - Built-in held-out scenarios (``HELDOUT_SCENARIOS``), one run each at
      ``EVAL_SEED_BASE``.
    - Families: each held-out trace and each built-in scenario; a family's figure is
      the ratio of mean powers, candidate over default.

    ``default_factory`` builds the default's controllers (a simulator controller
    factory); None: `MlEngine()` with the package's shipped models.

    ``default_rule.passed``: the power interval lies above 1 and no family is below
    0.9 (`DEFAULT_RULE_FAMILY_FLOOR`); False, with a reason, when the traces are absent
    (no interval can be computed).
    """
    from oxidize_ml.evaluation.congestion_controllers import engine_controller_factory
    from oxidize_ml.evaluation.congestion_windows import WindowConfig, run_windows
    from oxidize_ml.evaluation.splits import EVAL_SEED_BASE, HELDOUT_SCENARIOS, HELDOUT_TRACES
    from oxidize_ml.sim.runner import simulate

    name = POLICY_NAME
    default = default_factory if default_factory is not None else engine_controller_factory()
    out: dict[str, Any] = {"candidate": name, "default": "engine"}
    families: dict[str, float] = {}
    traces = trace_paths(HELDOUT_TRACES)
    agg: dict[str, Any] | None = None
    if traces:
        wcfg = WindowConfig(
            rtts_ms=tuple(config.eval_rtts_ms),
            duration_s=config.eval_window_s,
            n_windows=config.eval_windows,
            bootstrap_rounds=config.eval_bootstrap,
        )
        res = run_windows(
            traces,
            seed=seed,
            config=wcfg,
            controllers=["cubic", "bbr", ("engine", default), (name, residual_factory(policy))],
        )
        a = res.aggregate(name)
        agg = a.to_dict()
        out["windows"] = {
            "n_units": len(res.units),
            "summary": res.summary(),
            "aggregates": {c: res.aggregate(c).to_dict() for c in res.controllers},
        }
        for tr in sorted({w.trace for w in res.windows}):
            units = [u for u, unit in enumerate(res.units) if res.windows[unit.window].trace == tr]
            cand = [res.run_of(u, name).power for u in units]
            dflt = [res.run_of(u, "engine").power for u in units]
            families[tr] = float(np.nanmean(cand) / np.nanmean(dflt))
    scen: dict[str, Any] = {}
    for k, sname in enumerate(HELDOUT_SCENARIOS):
        sd = EVAL_SEED_BASE + k
        sc = get_scenario(sname).with_duration(config.eval_scenario_s)
        rc = simulate(sc, residual_factory(policy), seed=sd, record_series=False)
        rd = simulate(sc, default, seed=sd, record_series=False)
        pc, pd = _scenario_power(rc), _scenario_power(rd)
        scen[sname] = {
            "candidate_goodput_mbps": rc.throughput_bps / 1e6,
            "default_goodput_mbps": rd.throughput_bps / 1e6,
            "candidate_power": pc,
            "default_power": pd,
        }
        families[f"scenario:{sname}"] = pc / pd if pd > 0.0 else math.nan
    out["scenarios"] = scen
    out["families_power_vs_default"] = families
    worst = min(families.values()) if families else math.nan
    if agg is None:
        passed, why = False, "no held-out traces: the power interval cannot be computed"
    else:
        lo, hi = agg["power_ratio_vs_default_ci"]
        ci_ok = lo is not None and lo > 1.0
        fam_ok = bool(families) and worst >= DEFAULT_RULE_FAMILY_FLOOR
        passed = bool(ci_ok and fam_ok)
        why = (
            f"power {agg['power_ratio_vs_default']:.3f}x the default [{lo:.3f}, {hi:.3f}], "
            f"worst family {worst:.3f}x"
        )
    out["default_rule"] = {
        "passed": passed,
        "reason": why,
        "power_ratio_vs_default": None if agg is None else agg["power_ratio_vs_default"],
        "power_ratio_ci": None if agg is None else agg["power_ratio_vs_default_ci"],
        "worst_family": worst,
        "family_floor": DEFAULT_RULE_FAMILY_FLOOR,
    }
    return out


def train(
    config: ResidualTrainConfig,
    *,
    seed: int,
    out_dir: str | Path,
    telemetry_root: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (`fit`), export and evaluate the residual DQN: `oxidize-ml train
    --components residual_dqn` (`oxidize_ml.training.pipeline`).

    Writes ``residual_dqn.safetensors`` and ``.onnx`` into ``out_dir``. ``seed``
    overrides ``config.seed``. ``telemetry_root`` is not used: the agent learns by
    acting in the simulator (its corrections need the fallback's state, which
    telemetry does not record). ``beats_heuristic`` (the manifest's
    ``default_enabled``) is issue 10's default rule against the engine's current
    default (`evaluate_heldout`).
    """
    if not isinstance(config, ResidualTrainConfig):
        raise TypeError(f"config must be a ResidualTrainConfig, got {type(config).__name__}")
    check_int("seed", seed, lo=0)
    cfg = replace(config, seed=seed)
    t0 = time.perf_counter()
    say: Callable[[str], None] | None = print if progress else None
    net, log = fit(cfg, progress=say)
    log["seed"] = seed
    train_s = time.perf_counter() - t0
    st_path = save(net, log, out_dir, onnx=True)
    policy = ResidualDqnPolicy.load(st_path)
    t1 = time.perf_counter()
    heldout = evaluate_heldout(policy, cfg, seed=seed)
    eval_s = time.perf_counter() - t1

    training = {
        "policy": POLICY_NAME,
        "algorithm": (
            "residual (Orca-style) Double DQN, n-step returns, linear epsilon decay; the agent "
            "rescales the BBR-style fallback's window once per smoothed RTT while it cruises"
        ),
        "data": {
            "train_scenarios": list(TRAIN_SCENARIOS),
            "train_traces": [p.name for p in trace_paths(TRAIN_TRACES)],
            "random_links": True,
            "seed_base": TRAIN_SEED_BASE,
        },
        "heldout": heldout_provenance(),
        "seed": seed,
        "hyperparameters": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()
        },
        "episodes": log["episodes"],
        "decisions": log["decisions"],
        "updates": log["updates"],
        "wall_time_s": {
            "training": round(train_s, 1),
            "evaluation": round(eval_s, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
    }
    rule = heldout["default_rule"]
    return TrainResult(
        name=COMPONENT,
        kind="dqn",
        files={"safetensors": st_path.name, "onnx": f"{STEM}.onnx"},
        version=MODEL_VERSION,
        inputs=list(INPUT_NAMES),
        training=training,
        metrics={"heldout": heldout, "default_rule": rule},
        beats_heuristic=bool(rule["passed"]),
        target=TARGET,
    )


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
