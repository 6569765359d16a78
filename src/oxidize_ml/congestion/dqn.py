"""The learned congestion controller: a DQN's greedy action on the shared state vector.

`DqnCwndPolicy` is a ``Policy[CongestionObservation, DrlAction]`` like
`oxidize_ml.congestion.bbr.BbrFallback`, so the engine and the simulator
swap one for the other. Per decision interval the caller calls

1. ``learn_one(obs, feedback, now=t)``: the policy's own
   `CongestionStateEncoder` turns ``(obs.features, obs.throughput_bps, t)``
   into the 24-float state and the reward (the exact encoder the Gymnasium
   environment trained on, so a model trained there runs unchanged here);
   with online learning on, the transition (previous state, previous action,
   reward, state) goes into a bounded replay buffer. A caller that runs the
   encoder itself (the engine: one encoding per interval, shared with the
   loss predictor and telemetry) calls ``learn_state(state, reward, now=t)``
   instead, which does the rest of ``learn_one``;
2. ``predict_one(obs, now=t)``: ``argmax Q(state)`` with the numpy runtime
   (`oxidize_ml.runtime.MlpModel`) or onnxruntime (`OrtMlpModel`).

Exploration (opt-in)
--------------------
Deployed, the policy is greedy: ``epsilon = 0`` and no random numbers are
drawn. Exploring on live traffic costs real users throughput and delay, so
it is opt-in: ``OnlineConfig(explore=True)`` turns on the spec's schedule,
epsilon = max(0.01, 1.0 x 0.995^n) after n decisions (`EpsilonSchedule`).
The decay is applied in `predict_one`, the one call made per decision, so
"per decision" means exactly that (`learn_one` may run without a decision,
e.g. while the engine keeps a fallback warm). `predict_one` therefore only
reads state, apart from the exploration RNG and the decision counter (and,
when learning online, remembering the action for the next transition).
A constant ``epsilon`` > 0 without online learning is also accepted (e.g.
noisy evaluation); it does not decay.

Online learning (opt-in, needs the ``train`` extra)
---------------------------------------------------
With ``online=OnlineConfig(...)`` and a training loop injected from training
code (``trainer=oxidize_ml.training.dqn_online.torch_online_trainer``: this
module never imports torch or training code) a background thread wakes every
``train_interval_s``, samples the replay buffer uniformly at random, runs
Double-DQN updates on a torch copy of the network
(`oxidize_ml.training.dqn.dqn_update`, the same update offline training
uses) and every ``publish_every_updates`` updates publishes new read-only
weights by replacing one reference. A decision reads that reference once and
never waits for the trainer: no lock is held while training (the replay
buffer's lock covers only a row write or a batch copy). Forks share the
learner and its replay buffer; each keeps its own encoder and buffers.

Weights live in files (`oxidize_ml.training.export`); the policy has no
``state_dict``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from oxidize_ml._validate import check_int, check_number
from oxidize_ml.congestion.actions import N_ACTIONS
from oxidize_ml.congestion.observation import CongestionObservation
from oxidize_ml.congestion.state import CongestionStateEncoder, StateConfig
from oxidize_ml.types import DrlAction

if TYPE_CHECKING:
    from oxidize_ml.runtime.numpy_models import MlpModel, MlpWeights
    from oxidize_ml.runtime.onnx_backend import OrtMlpModel

__all__ = [
    "EPSILON_DECAY",
    "EPSILON_END",
    "EPSILON_START",
    "STATE_CONFIG_KEY",
    "DqnCwndPolicy",
    "EpsilonSchedule",
    "OnlineConfig",
    "ReplayBatch",
    "ReplayBuffer",
    "state_config_from_metadata",
]

log = logging.getLogger(__name__)

EPSILON_START = 1.0
"""spec, "Exploration Strategy": epsilon starts at 1.0"""
EPSILON_DECAY = 0.995
"""spec: multiplied by 0.995 per decision"""
EPSILON_END = 0.01
"""spec: decays to 0.01"""

STATE_CONFIG_KEY = "state_config"
"""safetensors metadata key holding the `StateConfig` (JSON) a DQN was trained with"""

# DrlAction(k) costs ~0.3 us; index the members instead.
_ACTIONS: tuple[DrlAction, ...] = tuple(DrlAction)
_MAINTAIN = DrlAction.Maintain
_DEFAULT_STATE = StateConfig()


@dataclass(frozen=True, slots=True)
class EpsilonSchedule:
    """epsilon(n) = max(end, start x decay^n) after n decisions (the spec's schedule)."""

    start: float = EPSILON_START
    """exploration rate of the first decision"""
    decay: float = EPSILON_DECAY
    """factor per decision"""
    end: float = EPSILON_END
    """floor"""

    def __post_init__(self) -> None:
        check_number("start", self.start, hi=1.0)
        if not 0.0 < check_number("decay", self.decay, hi=1.0):
            raise ValueError(f"decay must be in (0, 1], got {self.decay!r}")
        check_number("end", self.end, hi=self.start)

    def __call__(self, decisions: int) -> float:
        """Epsilon after ``decisions`` decisions (computed from n, so no drift accumulates)."""
        return max(self.end, self.start * self.decay**decisions)


class ReplayBatch:
    """One uniformly sampled minibatch (copies, safe to keep)."""

    __slots__ = ("actions", "dones", "next_states", "rewards", "states", "steps")

    def __init__(
        self,
        states: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_states: np.ndarray,
        dones: np.ndarray,
        steps: np.ndarray,
    ) -> None:
        self.states = states  # float32 [B, S]
        self.actions = actions  # int64 [B]
        self.rewards = rewards  # float32 [B], the (discounted n-step) return
        self.next_states = next_states  # float32 [B, S], the state ``steps`` decisions later
        self.dones = dones  # float32 [B], 1.0 = terminal (no bootstrap)
        self.steps = steps  # int64 [B], decisions between state and next_state (1: one-step)


class ReplayBuffer:
    """Bounded ring buffer of transitions, sampled uniformly at random.

    Holds at most ``capacity`` transitions; when full the oldest is
    overwritten. `sample` draws indices uniformly over every stored
    transition (with replacement) from the buffer's own RNG, never "the
    newest batch" (the earlier engine's bug, REFERENCES section 1). A small
    lock makes `add` and `sample` safe across threads; it covers one row
    write or one batch copy, never training.

    Examples
    --------
    >>> buf = ReplayBuffer(capacity=100, state_size=3, seed=0)
    >>> for i in range(150):
    ...     buf.add(np.full(3, i), 0, 0.0, np.full(3, i + 1))
    >>> len(buf), int(buf.sample(8).states[:, 0].min()) >= 50
    (100, True)
    """

    def __init__(self, capacity: int, state_size: int, *, seed: int = 0) -> None:
        self.capacity = check_int("capacity", capacity, lo=1)
        self.state_size = check_int("state_size", state_size, lo=1)
        self._states = np.zeros((capacity, state_size), dtype=np.float32)
        self._next = np.zeros((capacity, state_size), dtype=np.float32)
        self._actions = np.zeros(capacity, dtype=np.int64)
        self._rewards = np.zeros(capacity, dtype=np.float32)
        self._dones = np.zeros(capacity, dtype=np.float32)
        self._steps = np.ones(capacity, dtype=np.int64)
        self._pos = 0
        self._size = 0
        self._added = 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    @property
    def added(self) -> int:
        """Transitions added since construction (including overwritten ones)."""
        return self._added

    def add(
        self,
        state: np.ndarray,
        action: int,
        reward: float,
        next_state: np.ndarray,
        done: bool = False,
        *,
        steps: int = 1,
    ) -> None:
        """Store one transition (overwrites the oldest when full).

        ``steps`` > 1 marks an n-step transition: ``reward`` is the discounted
        return over ``steps`` decisions and ``next_state`` the state after them.
        """
        with self._lock:
            i = self._pos
            self._states[i] = state
            self._next[i] = next_state
            self._actions[i] = action
            self._rewards[i] = reward
            self._dones[i] = done
            self._steps[i] = steps
            self._pos = 0 if i + 1 == self.capacity else i + 1
            if self._size < self.capacity:
                self._size += 1
            self._added += 1

    def add_batch(
        self,
        states: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_states: np.ndarray,
        dones: np.ndarray | None = None,
    ) -> None:
        """Store many transitions (e.g. telemetry); rows beyond ``capacity`` keep the newest."""
        states = np.asarray(states, dtype=np.float32)
        n = states.shape[0]
        if states.ndim != 2 or states.shape[1] != self.state_size:
            raise ValueError(f"states must have shape [n, {self.state_size}], got {states.shape}")
        next_states = np.asarray(next_states, dtype=np.float32)
        if next_states.shape != states.shape:
            raise ValueError(f"next_states {next_states.shape} must match states {states.shape}")
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (n,) or (n and (actions.min() < 0 or actions.max() >= N_ACTIONS)):
            raise ValueError(f"actions must be [n] integers in [0, {N_ACTIONS - 1}]")
        rewards = np.asarray(rewards, dtype=np.float32)
        if rewards.shape != (n,) or not np.isfinite(rewards).all():
            raise ValueError("rewards must be [n] finite numbers")
        d = np.zeros(n, np.float32) if dones is None else np.asarray(dones, dtype=np.float32)
        for k in range(max(0, n - self.capacity), n):
            self.add(states[k], int(actions[k]), float(rewards[k]), next_states[k], bool(d[k]))

    def sample(self, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions drawn uniformly at random (with replacement)."""
        check_int("batch_size", batch_size, lo=1)
        with self._lock:
            if self._size == 0:
                raise ValueError("cannot sample from an empty replay buffer")
            idx = self._rng.integers(0, self._size, size=batch_size)
            return ReplayBatch(
                self._states[idx],
                self._actions[idx],
                self._rewards[idx],
                self._next[idx],
                self._dones[idx],
                self._steps[idx],
            )


@dataclass(frozen=True, slots=True)
class OnlineConfig:
    """Online learning from live traffic (background thread; needs the ``train`` extra)."""

    explore: bool = False
    """explore with the epsilon schedule (off by default: exploring costs live traffic)"""
    epsilon: EpsilonSchedule = EpsilonSchedule()
    """schedule used when ``explore`` is on (the spec's 1.0 -> 0.01, x0.995 per decision)"""
    replay_capacity: int = 50_000
    """transitions kept (bounded; oldest overwritten), about 8 minutes of 10-ms decisions"""
    batch_size: int = 64
    """minibatch size of each update"""
    gamma: float = 0.98
    """discount factor per decision; keep the one the model was trained with
    (`oxidize_ml.training.dqn.DqnTrainConfig.gamma`, saved in the weight file's metadata)"""
    learning_rate: float = 5e-5
    """Adam step size (smaller than offline training: live data is correlated)"""
    huber_delta: float = 1.0
    """Huber loss threshold"""
    max_grad_norm: float = 10.0
    """gradient clipping norm"""
    min_replay: int = 1_000
    """transitions needed before the first update"""
    train_interval_s: float = 0.05
    """how often the trainer thread wakes up, seconds"""
    updates_per_wake: int = 4
    """gradient steps per wake-up"""
    target_sync_updates: int = 500
    """updates between copies of the online network into the target network"""
    publish_every_updates: int = 100
    """updates between publications of new weights to the decision path"""
    torch_threads: int = 1
    """torch intra-op threads in the trainer (process-wide setting in torch)"""
    seed: int = 0
    """seed of the replay sampler (the updates themselves draw no random numbers)"""

    def __post_init__(self) -> None:
        if not isinstance(self.epsilon, EpsilonSchedule):
            raise TypeError(
                f"epsilon must be an EpsilonSchedule, got {type(self.epsilon).__name__}"
            )
        check_int("replay_capacity", self.replay_capacity, lo=1)
        check_int("batch_size", self.batch_size, lo=1)
        check_number("gamma", self.gamma, hi=1.0)
        if check_number("learning_rate", self.learning_rate) <= 0.0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if check_number("huber_delta", self.huber_delta) <= 0.0:
            raise ValueError(f"huber_delta must be > 0, got {self.huber_delta!r}")
        if check_number("max_grad_norm", self.max_grad_norm) <= 0.0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        check_int("min_replay", self.min_replay, lo=1)
        if check_number("train_interval_s", self.train_interval_s) <= 0.0:
            raise ValueError(f"train_interval_s must be > 0, got {self.train_interval_s!r}")
        check_int("updates_per_wake", self.updates_per_wake, lo=1)
        check_int("target_sync_updates", self.target_sync_updates, lo=1)
        check_int("publish_every_updates", self.publish_every_updates, lo=1)
        check_int("torch_threads", self.torch_threads, lo=1)
        check_int("seed", self.seed, lo=0)


OnlineTrainLoop = Callable[["OnlineLearner"], None]
"""A training loop run on the learner's thread: it samples ``learner.replay``,
updates a network and publishes weights with ``learner.publish``, until
``learner.wait`` says stop. Training code provides it
(`oxidize_ml.training.dqn_online.torch_online_trainer`): this runtime module
never imports torch or training code."""


class OnlineLearner:
    """The replay buffer, the trainer thread and the published weights shared by forks.

    The loop itself is injected (`OnlineTrainLoop`), so inference stays numpy-only.
    """

    def __init__(
        self, weights: MlpWeights, config: OnlineConfig, train_loop: OnlineTrainLoop
    ) -> None:
        if not callable(train_loop):
            raise TypeError(f"train_loop must be callable, got {type(train_loop).__name__}")
        self.config = config
        self.weights = weights  # replaced (one reference store) on publication
        self.replay = ReplayBuffer(
            config.replay_capacity, weights.config.n_inputs, seed=config.seed
        )
        self.decisions = itertools.count()  # next() is atomic in CPython
        self.updates = 0
        self.publications = 0
        self.last_loss: float | None = None
        self.error: BaseException | None = None
        self._train_loop = train_loop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True when the learner was asked to stop."""
        return self._stop.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def publish(self, tensors: dict[str, np.ndarray]) -> None:
        """New weights for every decision from the next call on (one reference store)."""
        from oxidize_ml.runtime.numpy_models import MlpWeights

        self.weights = MlpWeights.from_tensors(tensors, self.weights.config)
        self.publications += 1

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="oxidize-dqn-online", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None:
            t.join(timeout)
            if t.is_alive():
                log.warning("online DQN trainer did not stop within %s s", timeout)
            else:
                self._thread = None

    def _run(self) -> None:
        try:
            self._train_loop(self)
        except BaseException as exc:  # reported in stats; decisions go on
            self.error = exc
            log.exception("online DQN trainer stopped")


def state_config_from_metadata(metadata: dict[str, str] | Any) -> StateConfig:
    """The `StateConfig` stored in a weight file's metadata (`StateConfig()` when absent).

    Raises ``ValueError`` on a malformed entry (a file must not silently run
    with a state layout it was not trained on).
    """
    raw = metadata.get(STATE_CONFIG_KEY)
    if raw is None:
        return StateConfig()
    try:
        fields = json.loads(raw)
        return StateConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad {STATE_CONFIG_KEY!r} metadata {raw!r}: {exc}") from None


class DqnCwndPolicy:
    """Greedy DQN congestion controller over `CongestionStateEncoder` states.

    Parameters
    ----------
    model
        The Q-network: a numpy `MlpModel` (``kind == "dqn"``) or an
        `OrtMlpModel`; its input size must equal ``state_config.size``.
        The policy uses ``model`` itself for its buffers: pass ``model.fork()``
        if the caller keeps using it.
    state_config
        The state encoder's config; must be the one the model was trained with.
    epsilon
        Constant exploration rate when online exploration is off (default 0:
        greedy). Ignored when ``online.explore`` is on (the schedule decides).
    online
        Online learning and (opt-in) exploration; None: frozen weights.
        Needs a numpy `MlpModel` (new weights are published to it) and ``trainer``.
    trainer
        The training loop the online learner runs (`OnlineTrainLoop`), injected
        from training code: `oxidize_ml.training.dqn_online.torch_online_trainer`.
    seed
        Seed of the exploration RNG.
    fallback
        The heuristic (a ``Policy[CongestionObservation, DrlAction]``, normally
        the engine's `BbrFallback`) that answers a decision whose Q-values are
        not finite. Its owner keeps it fed (the engine feeds its BBR every
        interval anyway), so the policy only calls its ``predict_one``.
        None: such a decision answers ``Maintain``. Either way it is counted
        in `nonfinite_fallbacks`; a decision never raises because of the model.
        Settable later (``policy.fallback = ...``); `fork` leaves it None.

    Examples
    --------
    >>> from oxidize_ml.runtime import load_mlp
    >>> policy = DqnCwndPolicy(load_mlp("model_dir"))  # doctest: +SKIP
    >>> policy.learn_one(obs, 0.0, now=t)  # doctest: +SKIP
    >>> action = policy.predict_one(obs, now=t)  # doctest: +SKIP
    """

    name = "dqn"
    is_learned = True

    def __init__(
        self,
        model: MlpModel | OrtMlpModel,
        *,
        state_config: StateConfig = _DEFAULT_STATE,
        epsilon: float = 0.0,
        online: OnlineConfig | None = None,
        trainer: OnlineTrainLoop | None = None,
        seed: int = 0,
        fallback: Any = None,
    ) -> None:
        if not isinstance(state_config, StateConfig):
            raise TypeError(
                f"state_config must be a StateConfig, got {type(state_config).__name__}"
            )
        cfg = getattr(model, "config", None)
        if (
            cfg is None
            or getattr(cfg, "kind", None) != "dqn"
            or not callable(getattr(model, "forward", None))
        ):
            raise TypeError("model must be a 'dqn' MlpModel or OrtMlpModel (runtime.load_mlp)")
        if cfg.n_inputs != state_config.size:
            raise ValueError(
                f"model takes {cfg.n_inputs} inputs but state_config produces {state_config.size}; "
                "use the StateConfig the model was trained with"
            )
        self._epsilon_const = check_number("epsilon", epsilon, hi=1.0)
        check_int("seed", seed, lo=0)
        if online is not None and not isinstance(online, OnlineConfig):
            raise TypeError(f"online must be an OnlineConfig or None, got {type(online).__name__}")
        self.state_config = state_config
        self._seed: int | None = seed
        self._seed_parts: tuple[int, int] | None = None
        self.fallback = fallback
        self.nonfinite_fallbacks = 0
        """decisions answered by `fallback` (or Maintain) because the Q-values were NaN/inf"""
        self._model = model
        self._forks = 0
        self._weights: Any = getattr(model, "weights", None)
        self._learner: OnlineLearner | None = None
        if online is not None:
            from oxidize_ml.runtime.numpy_models import MlpModel

            if not isinstance(model, MlpModel):
                raise TypeError(
                    "online learning needs the numpy MlpModel (new weights are published to it); "
                    f"got {type(model).__name__}"
                )
            if trainer is None:
                raise TypeError(
                    "online learning needs trainer=, the training loop (e.g. "
                    "oxidize_ml.training.dqn_online.torch_online_trainer, extra 'train')"
                )
            self._learner = OnlineLearner(model.weights, online, trainer)
            self._learner.start()
        self._init_connection_state()

    @classmethod
    def load(
        cls,
        path: str | PathLike[str],
        *,
        backend: str = "numpy",
        epsilon: float = 0.0,
        online: OnlineConfig | None = None,
        trainer: OnlineTrainLoop | None = None,
        seed: int = 0,
    ) -> DqnCwndPolicy:
        """A policy from a model directory or weight file, with the `StateConfig` it was trained on.

        The state config comes from the safetensors metadata (``congestion_controller.safetensors``
        in a directory, or the file itself); with only an ONNX file, `StateConfig()`.
        Raises `oxidize_ml.runtime.ModelLoadError` on a missing or bad file.
        """
        from oxidize_ml.runtime.configs import KIND_DQN, MODEL_FILE_STEMS
        from oxidize_ml.runtime.load import load_mlp
        from oxidize_ml.runtime.weights import read_weight_file

        p = Path(path)
        st = p / f"{MODEL_FILE_STEMS[KIND_DQN]}.safetensors" if p.is_dir() else p
        state_config = StateConfig()
        if st.suffix == ".safetensors" and st.is_file():
            state_config = state_config_from_metadata(
                read_weight_file(st, expected_kind=KIND_DQN).metadata
            )
        model = load_mlp(p, kind=KIND_DQN, backend=backend)  # type: ignore[arg-type]
        return cls(
            model,
            state_config=state_config,
            epsilon=epsilon,
            online=online,
            trainer=trainer,
            seed=seed,
        )

    def _init_connection_state(self) -> None:
        self._encoder = CongestionStateEncoder(self.state_config)
        self._rng: np.random.Generator | None = None  # made on first use: greedy never draws
        self._state: np.ndarray | None = None
        self._reward = 0.0
        self._last_state: np.ndarray | None = None
        self._last_action = -1
        lr = self._learner
        self._explore = lr is not None and lr.config.explore
        self._schedule = lr.config.epsilon if lr is not None else None
        self._eps = (
            self._schedule(0)
            if self._explore and self._schedule is not None
            else self._epsilon_const
        )
        # Frozen weights and no exploration (the deployed case): `predict_one` is one
        # forward pass and an argmax, with the method bound once per connection.
        self._greedy = lr is None and self._epsilon_const == 0.0
        self._forward = self._model.forward

    # ------------------------------------------------------------------ Policy
    def learn_one(self, obs: CongestionObservation, feedback: float, *, now: float) -> None:
        """Update the state encoder with this interval; record a transition when learning online.

        ``feedback`` is accepted for the `Policy` protocol; the recorded reward
        is the encoder's own `congestion_reward` on its windowed filters (the
        value the model was trained on; the engine's encoder computes the same).
        A caller that already runs a `CongestionStateEncoder` with this policy's
        `state_config` hands its output to `learn_state` instead (the engine does:
        one encoding per interval).
        """
        state, reward = self._encoder.update(obs.features, obs.throughput_bps, now=now)
        self.learn_state(state, reward, now=now)

    def learn_state(self, state: np.ndarray, reward: float, *, now: float) -> None:
        """`learn_one` for a state already encoded by the caller.

        ``state`` and ``reward`` are what `CongestionStateEncoder.update` with
        `state_config` returned for this interval (``state`` is kept, not
        copied: the encoder returns a new array each call). The policy's own
        encoder is then not used: the caller's encoder carries the history.
        """
        lr = self._learner
        if lr is not None and self._last_state is not None and self._last_action >= 0:
            lr.replay.add(self._last_state, self._last_action, reward, state)
            self._last_action = -1
        self._state = state
        self._reward = reward

    def predict_one(self, obs: CongestionObservation, *, now: float) -> DrlAction:
        """argmax Q(state) for the state of the last `learn_one` (epsilon-greedy if enabled).

        Before the first `learn_one` there is no state: returns ``Maintain``.
        """
        state = self._state
        if state is None:
            return _MAINTAIN
        if self._greedy:
            try:
                q = self._forward(state)
                best = q.argmax()  # a numpy integer indexes the tuple directly
                # argmax picks the first NaN if any, and +inf means overflowing weights.
                if math.isfinite(q[best]):
                    return _ACTIONS[best]
            except (FloatingPointError, RuntimeWarning):  # np.seterr raise / -W error
                pass
            return self._nonfinite(obs, now)
        lr = self._learner
        if lr is not None:
            w = lr.weights
            if w is not self._weights:  # new weights were published: rebuild our buffers
                from oxidize_ml.runtime.numpy_models import MlpModel

                self._model = MlpModel(w)
                self._weights = w
        if self._explore:
            assert lr is not None and self._schedule is not None
            self._eps = eps = self._schedule(next(lr.decisions))
        else:
            eps = self._epsilon_const
        rng = self._rng
        if eps > 0.0 and rng is None:
            rng = self._rng = np.random.default_rng(self.seed)
        if eps > 0.0 and rng is not None and rng.random() < eps:
            k = int(rng.integers(N_ACTIONS))
        else:
            try:
                q = self._model.forward(state)
                k = int(q.argmax())
                finite = math.isfinite(q[k])
            except (FloatingPointError, RuntimeWarning):
                finite = False
            if not finite:
                return self._nonfinite(obs, now)
        if lr is not None:
            self._last_state = state
            self._last_action = k
        return _ACTIONS[k]

    def _nonfinite(self, obs: CongestionObservation, now: float) -> DrlAction:
        """The answer when the Q-values are not finite: the fallback's, or Maintain."""
        self.nonfinite_fallbacks += 1
        fb = self.fallback
        return _MAINTAIN if fb is None else fb.predict_one(obs, now=now)

    # ------------------------------------------------------------------ extras
    @property
    def seed(self) -> int:
        """Seed of the exploration RNG (a fork's is derived from its parent's seed and
        the fork's index, so forks explore independently but reproducibly)."""
        s = self._seed
        if s is None:
            assert self._seed_parts is not None
            s = int(np.random.SeedSequence(list(self._seed_parts)).generate_state(1)[0])
            self._seed = s
        return s

    @property
    def epsilon(self) -> float:
        """Exploration rate of the latest decision (0.0 when greedy)."""
        return self._eps

    @property
    def last_reward(self) -> float:
        """The encoder's reward of the last `learn_one`."""
        return self._reward

    @property
    def last_state(self) -> np.ndarray | None:
        """The state vector of the last `learn_one` (float32 [state_config.size])."""
        return self._state

    @property
    def online(self) -> bool:
        """True when online learning is configured."""
        return self._learner is not None

    @property
    def replay(self) -> ReplayBuffer | None:
        """The shared replay buffer when learning online."""
        return None if self._learner is None else self._learner.replay

    @property
    def model(self) -> Any:
        """The Q-network currently deciding (`MlpModel` or `OrtMlpModel`; read-only use)."""
        return self._model

    def q_values(self, state: np.ndarray) -> np.ndarray:
        """A copy of the Q-values of ``state`` (float32 [6]); diagnostics and tests."""
        return np.array(self._model.forward(np.asarray(state, dtype=np.float32)), copy=True)

    def fork(self) -> DqnCwndPolicy:
        """A policy for another connection: same weights (and learner), fresh encoder and RNG.

        The fork's seed is derived from this policy's seed and the number of
        forks made so far, so forks explore independently but reproducibly.
        """
        new = object.__new__(DqnCwndPolicy)
        new.state_config = self.state_config
        new.fallback = None  # per connection: the new owner sets its own heuristic
        new.nonfinite_fallbacks = 0
        self._forks += 1
        new._forks = 0
        # Derived on first use (`seed`): a greedy fork never needs it, and deriving
        # costs ~10 us of the per-connection fork budget.
        new._seed = None
        new._seed_parts = (self.seed, self._forks)
        new._epsilon_const = self._epsilon_const
        new._learner = self._learner
        new._model = self._model.fork()
        new._weights = self._weights
        new._init_connection_state()
        return new

    def stats(self) -> dict[str, Any]:
        """JSON-able details for `MlEngine.stats` (exploration and online learning)."""
        out: dict[str, Any] = {"epsilon": self._eps, "exploring": self._explore}
        lr = self._learner
        if lr is not None:
            out["online"] = {
                "running": lr.running,
                "replay_size": len(lr.replay),
                "transitions": lr.replay.added,
                "updates": lr.updates,
                "publications": lr.publications,
                "last_loss": lr.last_loss,
                "error": None if lr.error is None else repr(lr.error),
            }
        return out

    def start_learning(self) -> None:
        """(Re)start the online trainer thread (started automatically at construction)."""
        if self._learner is None:
            raise RuntimeError("online learning is off: construct with online=OnlineConfig(...)")
        self._learner.start()

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the online trainer thread (no-op without online learning). Idempotent."""
        if self._learner is not None:
            self._learner.stop(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DqnCwndPolicy(inputs={self.state_config.size}, epsilon={self._eps:.3g}, "
            f"online={self._learner is not None})"
        )
