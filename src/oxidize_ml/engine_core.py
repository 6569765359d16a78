"""`EngineCore`: the implementation of `oxidize_ml.engine.MlEngine`.

`MlEngine` is this class's plain-Python subclass and adds nothing; users build,
subclass and weakly reference `MlEngine`. The split lets the optional compiled
build (``OXIDIZE_ML_COMPILE=1``) compile this module with mypyc while
`MlEngine` stays an ordinary Python class: a compiled class cannot be weakly
referenced (the model hub keeps weak references to the engines it syncs), and
an interpreted subclass of it can.
"""

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Self, cast

from oxidize_ml._mypyc import mypyc_attr
from oxidize_ml._validate import check_number
from oxidize_ml.compression import feature_vector
from oxidize_ml.config import EnvSettings
from oxidize_ml.congestion.actions import apply_action
from oxidize_ml.congestion.bbr import BbrFallback
from oxidize_ml.congestion.envelope import DeliveryEnvelope
from oxidize_ml.congestion.observation import CongestionObservation, make_observation
from oxidize_ml.congestion.state import CongestionStateEncoder
from oxidize_ml.engine_config import CLOCK_STEP_S, MAX_NOW_S, EngineConfig, SharedParts, check_now
from oxidize_ml.features import N_FEATURES, NetworkFeatures
from oxidize_ml.loss.burst import BurstLossPredictor
from oxidize_ml.paths import MlPathSelector
from oxidize_ml.policy import CompressionPolicy, CongestionPolicy, LossPolicy, PathPolicy
from oxidize_ml.stats import (
    CompressionStats,
    CongestionStats,
    EngineStats,
    LatencySampler,
    LossPredictorStats,
    PathSelectorStats,
)
from oxidize_ml.telemetry import TelemetryCollector
from oxidize_ml.types import (
    DrlAction,
    FecDecision,
    MlCompressionDecision,
    PathId,
    PathMetrics,
    TrafficContext,
)

log = logging.getLogger("oxidize_ml")
_perf_ns = time.perf_counter_ns
_get_ident = threading.get_ident
_wall = time.time

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _bytes_len(data: bytes | bytearray | memoryview) -> int:
    """Payload size in bytes (a memoryview of int32 has ``len`` = items, not bytes)."""
    return data.nbytes if type(data) is memoryview else len(data)


def _as_bytes_view(data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """The payload as a byte-addressed object: multi-byte or strided memoryviews are
    cast (contiguous) or copied so every component sees bytes, never items."""
    if type(data) is memoryview and (data.itemsize != 1 or data.ndim != 1 or data.format != "B"):
        return data.cast("B") if data.c_contiguous else data.tobytes()
    return data


# Final: the compiled build reads them as constants, not module-dict lookups.
_SKIP: Final = MlCompressionDecision.Skip
_LIGHT: Final = MlCompressionDecision.Light
_AGGRESSIVE: Final = MlCompressionDecision.Aggressive
_MAINTAIN: Final = DrlAction.Maintain
_INF: Final = math.inf

# Per-thread compression counters: [latency tick, Skip, Light, Aggressive, RohcOnly
# by a heuristic, the same four by a model]; a decision adds one at its slot's offset.
_COMP_HEURISTIC = 1
_COMP_MODEL = 5
_COMP_SIZE = 9
_NO_COUNTERS = object()
"""`EngineCore._comp_local` before any thread compressed: reading ``.counters`` fails"""


_PROTOCOLS: dict[str, type] = {
    "loss_predictor": LossPolicy,
    "congestion_controller": CongestionPolicy,
    "compression_oracle": CompressionPolicy,
    "path_selector": PathPolicy,
}
"""each component's protocol: what `MlEngine.replace_policy` accepts"""


def _members(protocol: type) -> list[str]:
    """The members a runtime-checkable protocol requires (for error messages)."""
    return sorted(getattr(protocol, "__protocol_attrs__", ()))


@mypyc_attr(allow_interpreted_subclasses=True)
class EngineCore:
    """The engine: every method of `oxidize_ml.engine.MlEngine` (see there)."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        settings: EnvSettings | None = None,
        _shared: SharedParts | None = None,
    ) -> None:
        self.config = config = config if config is not None else EngineConfig()
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
        self.settings = settings if settings is not None else EnvSettings.from_env()
        self._lock = threading.Lock()
        self._limits = config.limits
        self._shared = shared = _shared if _shared is not None else SharedParts.build(config)
        # -- components: heuristics first; load_models swaps in learned ones.
        # The burst-aware loss predictor (with its per-block FEC policy) is the default:
        # on the held-out split it beats the EWMA's residual loss at equal overhead with
        # 95 % confidence and is within 0.9x on every family (README "Evaluation").
        self._fec = shared.fec
        self._cc_fallback = BbrFallback(shared.bbr, limits=config.limits)
        # Ack clocking + delivery cap on whatever window the policy proposes (issue 10).
        self._envelope = DeliveryEnvelope(limits=config.limits)
        # The one state encoder of the connection: it runs once per observation while
        # something reads its output (a learned controller with the same StateConfig,
        # or telemetry), and every consumer reads that one state (issue 9).
        # Built on first use: most engines (a heuristic or residual controller, no
        # telemetry) never encode, and it is a tenth of a fork's cost.
        self._state: CongestionStateEncoder | None = None
        self._encode = False
        self._telemetry: TelemetryCollector | None = None
        self._codec = shared.codec
        # Each slot's policy plus what the hot paths read of it, set together by
        # `_set_loss` / `_set_cc` / `_set_compression` (attribute lookups and
        # getattr probes per call are a measurable share of a microsecond-scale call).
        self._set_loss(BurstLossPredictor(shared.burst))
        self._set_cc(self._cc_fallback)
        self._set_compression(shared.oracle)
        # Built on first use by `_path_factory`: most connection engines (the aioquic
        # plug-in's forks) never select a path, and a selector's tables are half a
        # fork's memory. Loading a learned selector replaces both.
        self._paths_obj: PathPolicy | None = None
        self._path_factory: Callable[[], PathPolicy] = functools.partial(
            MlPathSelector, seed=config.seed
        )
        self._loaded: dict[str, str] = {}
        # -- connection state
        self._cwnd = config.limits.initial_cwnd
        self._last_loss_features: NetworkFeatures | None = None
        self._last_obs: CongestionObservation | None = None
        self._last_state: Any = None
        self._last_action: DrlAction | None = None
        # Internal monotone clock = caller's clock + offset (see `_advance_clock`).
        self._clock = float("-inf")
        self._clock_offset = 0.0
        # -- statistics
        self._every = every = config.latency_sample_every
        self._every_packet = config.packet_latency_sample_every
        self._lat = {k: LatencySampler(sample_every=every) for k in ("fec", "cc")}
        for k in ("comp", "path"):  # the per-packet-rate decisions
            self._lat[k] = LatencySampler(sample_every=self._every_packet)
        # The engine counts its own ticks (one integer per component) and calls a
        # sampler only for the sampled call.
        self._lat_fec = self._lat["fec"]
        self._lat_cc = self._lat["cc"]
        self._lat_comp = self._lat["comp"]
        self._lat_path = self._lat["path"]
        self._tick_fec = 0
        self._n_obs = 0
        self._n_fec = 0
        self._n_fec_model = 0
        self._n_fec_inject = 0
        self._last_p: float | None = None
        self._last_ratio: float | None = None
        self._n_cc = 0
        self._n_cc_model = 0
        self._cc_actions = [0] * len(DrlAction)
        self._tick_cc = 0
        # Per-thread compression counters: the per-packet path takes no lock
        # (each thread writes only its own list, found through a thread-local;
        # stats() sums them). Registered by thread ident: an ident is reused only
        # after its thread ended, and a new thread with a reused ident continues
        # that list, so a thread-per-connection server does not grow this without
        # bound. Layout: the countdown to the next timed call, then the four decision counts of heuristic
        # decisions, then those of model decisions (`_COMP_MODEL`).
        self._comp_counters: dict[int, list[int]] = {}
        # Made with the first thread's counters: a threading.local costs about half a
        # microsecond, and most forked engines never compress.
        self._comp_local: Any = _NO_COUNTERS
        self._bytes_in = 0
        self._bytes_out = 0
        self._n_path = 0
        # -- telemetry
        collect = config.collect_training
        if collect is None:
            collect = self.settings.collect_training
        if collect:
            self._telemetry = TelemetryCollector(config.telemetry)
            self._encode = True
        if config.load_default_models:
            self._load_defaults()

    # ------------------------------------------------------------------ feed
    def observe(
        self,
        features: NetworkFeatures,
        *,
        throughput_bps: float | None = None,
        now: float | None = None,
    ) -> None:
        """Feed one observation of the connection (normally once per decision interval).

        ``throughput_bps`` is the delivery rate measured over the interval
        (default ``features.bandwidth_bps``). The transport's current window
        ``features.cwnd`` becomes the engine's window when it is > 0.
        """
        if type(features) is not NetworkFeatures and not isinstance(features, NetworkFeatures):
            raise TypeError(f"features must be NetworkFeatures, got {type(features).__name__}")
        thr = features.bandwidth_bps if throughput_bps is None else throughput_bps
        if type(thr) is not float or not 0.0 <= thr < _INF:  # fast path of check_number
            thr = check_number("throughput_bps", thr)
        # acquire/release in try/finally: half the cost of `with` here
        self._lock.acquire()
        try:
            t = self._clock_now(now)
            self._observe_locked(features, thr, t)
        finally:
            self._lock.release()

    def _clock_now(self, now: float | None) -> float:
        """The components' clock for a caller's ``now`` (None: the wall clock), checked
        (call under the lock): `check_now` and `_advance_clock`, their common cases
        inline, for the per-interval calls."""
        if now is None:
            t = _wall()
        elif type(now) is float and 0.0 <= now <= MAX_NOW_S:  # fast path of check_now
            t = now
        else:
            t = check_now(now)
        internal = t + self._clock_offset
        if internal >= self._clock:
            self._clock = internal
            return internal
        return self._advance_clock(t)

    def _advance_clock(self, t: float) -> float:
        """The components' clock for a caller's time ``t`` (call under the lock).

        Threads (or a transport's clocks) interleave slightly out of order, so
        the components see a monotone clock and a late caller never makes a
        decision raise. A step back of more than `CLOCK_STEP_S` is a clock
        reset (or the previous value was bogus): the offset is rebased so the
        clock neither freezes at the highest value ever seen nor goes back,
        and later intervals keep their true spacing. (The hot paths inline the
        common case, a clock that does not go back.)
        """
        clock = self._clock
        internal = t + self._clock_offset
        if internal < clock:
            if internal < clock - CLOCK_STEP_S:
                self._clock_offset = clock - t
            return clock
        self._clock = internal
        return internal

    def _observe_locked(self, features: NetworkFeatures, thr: float, t: float) -> None:
        """One observation for every component and telemetry (call under the lock).

        The congestion state is encoded once, here, when something reads it (a
        learned controller with the engine's `StateConfig`, or telemetry); its
        first `N_FEATURES` entries are ``features.to_vector()``, which the loss
        predictor and telemetry read instead of normalising the features again.
        """
        self._n_obs += 1
        loss_rate = features.loss_rate
        state: Any = None
        x: Any = None
        reward = 0.0
        if self._encode:
            encoder = self._state
            if encoder is None:
                encoder = self._state = CongestionStateEncoder(self.config.state)
            state, reward = encoder.update(features, thr, now=t)
            x = state[:N_FEATURES]
            learn_x = self._loss_learn_x
            if learn_x is not None:
                learn_x(features, x, loss_rate, now=t)
            else:
                self._loss.learn_one(features, loss_rate, now=t)
        else:
            self._loss.learn_one(features, loss_rate, now=t)
        self._last_loss_features = features
        cwnd = features.cwnd
        if cwnd > 0:
            self._cwnd = int(cwnd)
        obs = make_observation(features, thr, self._cwnd)
        self._envelope.update(obs, now=t)
        follow = self._follow
        if follow is not None:
            bandwidth = features.bandwidth_bps
            if bandwidth > 0:
                follow(float(bandwidth))
        cc = self._cc
        learn_state = self._cc_learn_state
        if learn_state is not None:
            learn_state(state, reward, now=t)  # the learned controller reads the one state
        else:
            cc.learn_one(obs, reward, now=t)
        fallback = self._cc_fallback
        if cc is not fallback and not self._cc_feeds_fallback:
            # The fallback keeps its filters warm so a swap back is seamless.
            fallback.learn_one(obs, reward, now=t)
        tel = self._telemetry
        if tel is not None:
            tel.record_observation(features, now=t, vector=x)
            if self._last_action is not None and self._last_state is not None:
                tel.record_transition(
                    self._last_state, int(self._last_action), reward, state, now=t
                )
        self._last_obs = obs
        self._last_state = state

    # ------------------------------------------------------------- decisions
    def fec_decision(
        self, features: NetworkFeatures | None = None, *, now: float | None = None
    ) -> FecDecision:
        """Predicted loss 50-100 ms ahead turned into an FEC decision.

        Passing ``features`` that were not already given to `observe` counts
        them as an observation for the loss predictor (the spec's usage);
        passing nothing uses the last observation.
        """
        if (
            features is not None
            and type(features) is not NetworkFeatures
            and not isinstance(features, NetworkFeatures)
        ):
            raise TypeError(f"features must be NetworkFeatures, got {type(features).__name__}")
        # acquire/release in try/finally: half the cost of `with` here
        self._lock.acquire()
        try:
            t = self._clock_now(now)
            tick = self._tick_fec + 1
            if tick >= self._every:
                self._tick_fec = 0
                t0 = _perf_ns()
            else:
                self._tick_fec = tick
                t0 = 0
            if features is None:
                features = self._last_loss_features
            elif features is not self._last_loss_features:
                # The spec's usage passes each interval's features here, without
                # `observe`: they count as a full observation (predictor, window
                # state, telemetry), with the measured bandwidth as throughput.
                self._observe_locked(features, float(features.bandwidth_bps), t)
            loss = self._loss
            if features is None:
                p = 0.0
                decision = self._fec.decide(p)
            else:
                p = loss.predict_one(features, now=t)
                q = loss.block_loss_probability if self._loss_block else None  # type: ignore[attr-defined]
                if q is None:
                    decision = self._fec.decide(p)
                else:
                    # A burst-aware predictor says P(the block loses) and how badly: the
                    # redundancy that pays against bursts, not a binomial spread of p.
                    decision = self._shared.burst_fec.decide_block(q, loss.severity_scale)  # type: ignore[attr-defined]
            self._n_fec += 1
            if self._loss_learned:
                self._n_fec_model += 1
            if decision.inject_fec:
                self._n_fec_inject += 1
            self._last_p = p
            self._last_ratio = decision.redundancy_ratio
            if t0:
                self._lat_fec.add(_perf_ns() - t0)
            return decision
        finally:
            self._lock.release()

    def congestion_action(self, *, now: float | None = None) -> tuple[DrlAction, int]:
        """Decide the next window change: ``(action, new_cwnd_bytes)``.

        Call once per decision interval after `observe`. The new window is
        also the engine's window until the next observation reports another.
        """
        # acquire/release in try/finally: half the cost of `with` here
        self._lock.acquire()
        try:
            t = self._clock_now(now)
            tick = self._tick_cc + 1
            if tick >= self._every:
                self._tick_cc = 0
                t0 = _perf_ns()
            else:
                self._tick_cc = tick
                t0 = 0
            obs = self._last_obs
            cc = self._cc
            cwnd = self._cwnd
            if obs is None:
                action = _MAINTAIN
            else:
                if obs.cwnd_bytes != cwnd:
                    obs = make_observation(obs.features, obs.throughput_bps, cwnd)
                action = cc.predict_one(obs, now=t)
            self._cwnd = new = self._envelope.bound(cwnd, apply_action(action, cwnd, self._limits))
            self._last_action = action
            self._n_cc += 1
            if self._cc_learned:
                self._n_cc_model += 1
            self._cc_actions[action] += 1  # list indexed by the IntEnum
            if t0:
                self._lat_cc.add(_perf_ns() - t0)
            return action, new
        finally:
            self._lock.release()

    def compression_decision(self, data: bytes | bytearray | memoryview) -> MlCompressionDecision:
        """How to compress one packet: Skip, Light (lz4), Aggressive (zstd) or RohcOnly.

        The per-packet path: it takes no lock (counters are per thread) and
        costs less than compressing the packet with lz4 (see `oxidize-ml bench`).
        """
        tp = type(data)
        if tp is not bytes:
            if tp is not bytearray and tp is not memoryview and not isinstance(data, _BYTES_LIKE):
                raise TypeError(f"data must be bytes-like, got {tp.__name__}")
            if tp is memoryview and (data.itemsize != 1 or data.ndim != 1):  # type: ignore[union-attr]
                data = _as_bytes_view(data)
        c: list[int]
        try:
            c = self._comp_local.counters
        except AttributeError:  # this thread's first packet
            c = self._new_comp_counters()
        # One read of the slot: a concurrent swap gives the old or the new policy
        # with its own offset, never a mix.
        policy, k = self._comp_slot
        # c[0] counts down to the sampled call: no read of the period per packet.
        tick = c[0]
        if tick:
            c[0] = tick - 1
            decision = policy.decide(data)
        else:
            c[0] = self._every_packet - 1  # one packet in `packet_latency_sample_every`
            decision = self._timed_decide(policy, data)
        if decision is _SKIP:
            c[k] += 1
        elif decision is _LIGHT:
            c[k + 1] += 1
        elif decision is _AGGRESSIVE:
            c[k + 2] += 1
        else:
            c[k + 3] += 1
        return decision

    def _timed_decide(
        self, policy: CompressionPolicy, data: bytes | bytearray | memoryview
    ) -> MlCompressionDecision:
        """``policy.decide(data)`` with its latency recorded: `compression_decision`'s
        sampled call."""
        t0 = _perf_ns()
        decision = policy.decide(data)
        elapsed = _perf_ns() - t0
        with self._lock:
            self._lat_comp.add(elapsed)
        return decision

    def _new_comp_counters(self) -> list[int]:
        ident = _get_ident()
        with self._lock:
            local = self._comp_local
            if local is _NO_COUNTERS:
                local = self._comp_local = threading.local()
            c = self._comp_counters.get(ident)
            if c is None:  # else a thread that ended had this ident: continue its counts
                c = self._comp_counters[ident] = [0] * _COMP_SIZE
                c[0] = self._every_packet - 1  # the countdown to the first sampled call
        local.counters = c
        return c

    def compress(self, data: bytes | bytearray | memoryview, *, now: float | None = None) -> bytes:
        """Decide and carry out the decision: a self-describing frame for `decompress`."""
        t = None if now is None else check_now(now)
        data = _as_bytes_view(data)
        decision = self.compression_decision(data)
        t0 = _perf_ns()
        frame = self._codec.encode(data, decision)
        encode_ns = _perf_ns() - t0
        size = _bytes_len(data)
        with self._lock:
            self._bytes_in += size
            self._bytes_out += len(frame)
            tel = self._telemetry
            if tel is not None:
                t = self._advance_clock(_wall() if t is None else t)
                tel.record_compression(
                    feature_vector(data),
                    decision,
                    size=size,
                    compressed_size=len(frame),
                    encode_ns=encode_ns,
                    now=t,
                )
        return frame

    def decompress(self, frame: bytes | bytearray | memoryview) -> bytes:
        """Inverse of `compress`; raises ``ValueError`` on a corrupt frame."""
        return self._codec.decode(frame)

    def select_path(self, context: TrafficContext, *, now: float | None = None) -> PathId:
        """The path to use for a flow of this traffic type."""
        if type(context) is not TrafficContext:
            raise TypeError(f"context must be a TrafficContext, got {type(context).__name__}")
        # The selector does not read `now` (UCB1 counts pulls, not time), so the
        # clock is neither read nor advanced here; a given value is still checked.
        if now is None:
            t = 0.0
        elif type(now) is float and 0.0 <= now <= MAX_NOW_S:  # fast path of check_now
            t = now
        else:
            t = check_now(now)
        # acquire/release in try/finally: half the cost of `with` here; the lock in a
        # local: one attribute load less on a ~0.4 us call
        lock = self._lock
        lock.acquire()
        try:
            paths = self._paths_obj
            if paths is None:
                paths = self._paths
            n = self._n_path = self._n_path + 1
            if n % self._every_packet:
                return paths.select(context, now=t)
            t0 = _perf_ns()
            path = paths.select(context, now=t)
            self._lat_path.add(_perf_ns() - t0)
            return path
        finally:
            lock.release()

    def update_path_metrics(self, metrics: PathMetrics, *, now: float | None = None) -> None:
        """Report the latest measurements of one path."""
        if not isinstance(metrics, PathMetrics):
            raise TypeError(f"metrics must be PathMetrics, got {type(metrics).__name__}")
        t = _wall() if now is None else check_now(now)
        with self._lock:
            self._paths.update_metrics(metrics, now=self._advance_clock(t))
            if metrics.availability > 0.0:
                self._follow_link_rate(metrics.bandwidth_bps)

    def update_path_reward(
        self, path: PathId, context: TrafficContext, reward: float, *, now: float | None = None
    ) -> None:
        """Report how well ``path`` served ``context`` (reward in [0, 1], see
        `MlPathSelector.calculate_reward`)."""
        if not isinstance(path, PathId):
            raise TypeError(f"path must be a PathId, got {type(path).__name__}")
        if not isinstance(context, TrafficContext):
            raise TypeError(f"context must be a TrafficContext, got {type(context).__name__}")
        r = check_number("reward", reward, hi=1.0)
        t = _wall() if now is None else check_now(now)
        with self._lock:
            t = self._advance_clock(t)
            self._paths.update_reward(path, context, r, now=t)
            tel = self._telemetry
            if tel is not None:
                metrics = self._paths.metrics(path)
                if metrics is not None:
                    tel.record_path(context, metrics, r, now=t)

    def _follow_link_rate(self, bandwidth_bps: float) -> None:
        """A learned compression oracle decides for the link rate it serves (its cost
        model weighs time saved on the wire against time spent compressing)."""
        follow = self._follow
        if follow is not None and bandwidth_bps > 0:
            follow(float(bandwidth_bps))

    # ------------------------------------------------------------ slots
    def _set_loss(self, policy: LossPolicy) -> None:
        """Install the loss predictor (under the lock, or in ``__init__``) with what
        `fec_decision` and `_observe_locked` read of it."""
        self._loss = policy
        self._loss_learned = bool(policy.is_learned)
        # Optional: learn from the model vector the engine already computed.
        self._loss_learn_x: Callable[..., None] | None = getattr(policy, "learn_encoded", None)
        # A burst-aware predictor decides FEC per block (`BurstFecPolicy`).
        self._loss_block = hasattr(policy, "block_loss_probability")

    def _set_cc(self, policy: CongestionPolicy) -> None:
        """Install the congestion controller (under the lock, or in ``__init__``).

        A learned controller answers with this engine's BBR-style fallback when
        its output is unusable (NaN/inf): the fallback is per connection and
        already fed every observation by `observe`. A controller that takes an
        encoded state (``learn_state``, the DQN) with the engine's `StateConfig`
        reads the engine's one encoding per interval; with another layout it
        encodes its own in ``learn_one``.
        """
        if policy is not self._cc_fallback and hasattr(policy, "fallback"):
            policy.fallback = self._cc_fallback
        # A policy that corrects a BBR-style base (the residual DQN) may take over
        # this engine's fallback as that base and feed it itself (`adopt_base`).
        adopt = getattr(policy, "adopt_base", None)
        self._cc_feeds_fallback = (
            policy is not self._cc_fallback and adopt is not None and bool(adopt(self._cc_fallback))
        )
        self._cc = policy
        self._cc_learned = bool(policy.is_learned)
        learn_state: Callable[..., None] | None = getattr(policy, "learn_state", None)
        if learn_state is not None and getattr(policy, "state_config", None) != self.config.state:
            learn_state = None
        if learn_state is not None and not self._encode:
            # The encoder was idle, so its filters and history are stale: start afresh,
            # as the policy's own encoder would have.
            self._state = CongestionStateEncoder(self.config.state)
            self._last_state = None
        self._cc_learn_state = learn_state
        self._encode = learn_state is not None or self._telemetry is not None

    def _set_compression(self, policy: CompressionPolicy) -> None:
        """Install the compression oracle (under the lock, or in ``__init__``)."""
        self._compression = policy
        self._comp_slot = (policy, _COMP_MODEL if policy.is_learned else _COMP_HEURISTIC)
        # The non-blocking form when the oracle has one: a new rate bucket's
        # table is built off the packet path (`RateBucketOracle.follow_link_rate_bps`).
        self._follow: Callable[[float], None] | None = getattr(
            policy, "follow_link_rate_bps", getattr(policy, "set_link_rate_bps", None)
        )

    @property
    def _paths(self) -> PathPolicy:
        """The path selector, built on first use (call under the lock)."""
        paths = self._paths_obj
        if paths is None:
            paths = self._paths_obj = self._path_factory()
        return paths

    def _install_path_selector(self, selector: PathPolicy, version: str) -> None:
        """Swap in ``selector`` (call under the lock), carrying the latest metrics of
        every known path over so it decides from the same view of the paths."""
        old = self._paths_obj
        if old is not None:
            t = self._clock if math.isfinite(self._clock) else 0.0
            for path in old.known_paths:
                metrics = old.metrics(path)
                if metrics is not None:
                    selector.update_metrics(metrics, now=t)
        self._paths_obj = selector
        fork = getattr(selector, "fork", None)
        self._path_factory = (
            fork if fork is not None else functools.partial(MlPathSelector, seed=self.config.seed)
        )
        if selector.is_learned:
            self._loaded["path_selector"] = version
        else:
            self._loaded.pop("path_selector", None)

    # ---------------------------------------------------------------- models
    def _load_defaults(self) -> None:
        from oxidize_ml.models import default_model_dir

        directory = default_model_dir()
        if directory is not None:
            self.load_models(directory, only_default_enabled=True)

    def load_models(
        self, directory: str | os.PathLike[str], *, only_default_enabled: bool = False
    ) -> dict[str, str]:
        """Load every model of a model directory that verifies; fall back per model.

        Returns ``{model name: status}`` where status is ``"loaded"`` or the
        reason the heuristic stays in use. Never raises for bad files: a
        missing, corrupt or other-schema model logs a warning and keeps the
        heuristic. ``only_default_enabled`` loads only the models whose
        manifest entry says they beat their heuristic (used for the shipped
        defaults).
        """
        from oxidize_ml.models import load_policies
        from oxidize_ml.paths.learned import load_learned_selector

        result = load_policies(
            Path(directory),
            backend=self.config.backend,
            limits=self._limits,
            state_config=self.config.state,
            seed=self.config.seed,
            only_default_enabled=only_default_enabled,
        )
        status = dict(result.status)
        selector, status["path_selector"] = load_learned_selector(
            Path(directory), seed=self.config.seed, only_default_enabled=only_default_enabled
        )
        with self._lock:
            if selector is not None:
                self._install_path_selector(selector, str(selector.version))
            if result.loss is not None:
                self._set_loss(result.loss)
                self._loaded["loss_predictor"] = result.versions["loss_predictor"]
            if result.congestion is not None:
                self._set_cc(result.congestion)
                self._loaded["congestion_controller"] = result.versions["congestion_controller"]
            if result.compression is not None:
                self._set_compression(result.compression)
                self._loaded["compression_oracle"] = result.versions["compression_oracle"]
        for name, why in status.items():
            quiet = only_default_enabled and (why == "not default" or why.startswith("missing"))
            if why != "loaded" and not quiet:
                log.warning(
                    "model %s not loaded from %s: %s; using the heuristic", name, directory, why
                )
        return status

    def replace_policy(self, component: str, policy: Any, *, version: str = "custom") -> None:
        """Swap one component's policy atomically (background trainers, hub sync, tests).

        ``component`` is "loss_predictor", "congestion_controller",
        "compression_oracle" or "path_selector"; ``policy`` must satisfy that
        component's `oxidize_ml.policy.Policy` (the compression oracle also needs
        ``decide(data)``; a path selector ``select``, ``update_metrics``,
        ``update_reward``, ``metrics``, ``known_paths`` and ``stats``). Decisions
        in flight finish on the old policy.
        """
        protocol = _PROTOCOLS.get(component)
        if protocol is None:
            raise ValueError(f"unknown component {component!r}; choose from {sorted(_PROTOCOLS)}")
        if not isinstance(policy, protocol):
            missing = [a for a in _members(protocol) if not hasattr(policy, a)]
            raise TypeError(
                f"policy for {component} must satisfy oxidize_ml.policy.{protocol.__name__}; "
                f"it lacks {missing}"
            )
        self._install(component, policy, version)

    def _install(self, component: str, policy: Any, version: str) -> None:
        """`replace_policy` without the protocol check: for policies already checked
        (a fork's copies of its parent's policies; the runtime protocol check is most
        of a fork's cost on Python 3.11)."""
        with self._lock:
            if component == "loss_predictor":
                self._set_loss(cast(LossPolicy, policy))
            elif component == "congestion_controller":
                self._set_cc(cast(CongestionPolicy, policy))
            elif component == "compression_oracle":
                self._set_compression(cast(CompressionPolicy, policy))
            else:
                self._install_path_selector(cast(PathPolicy, policy), version)
                return
            if cast(LossPolicy, policy).is_learned:  # every protocol has is_learned
                self._loaded[component] = version
            else:
                self._loaded.pop(component, None)

    def burst_loss_predictor(self) -> BurstLossPredictor:
        """A fresh burst-aware loss predictor with the engine's shared fitted config:
        ``engine.replace_policy("loss_predictor", engine.burst_loss_predictor())``
        switches FEC to it (and to its burst-aware FEC policy)."""
        return BurstLossPredictor(self._shared.burst)

    def policy(self, component: str) -> Any:
        """The policy currently deciding for ``component`` (read-only use)."""
        with self._lock:
            return {
                "loss_predictor": self._loss,
                "congestion_controller": self._cc,
                "compression_oracle": self._compression,
                "path_selector": self._paths,
            }[component]

    def fork(self) -> Self:
        """A new engine for another connection: same configuration and learned models
        (weights shared, not reloaded), fresh per-connection state and statistics.

        Telemetry collection follows the configuration/environment, with its
        own buffers. Policies that keep per-connection state provide ``fork()``;
        stateless ones (the compression oracle) are shared.
        """
        config = self.config
        if config.load_default_models:  # a fork takes its models from this engine
            config = self._shared.fork_config(config)
        new = type(self)(config, settings=self.settings, _shared=self._shared)
        with self._lock:
            loaded = dict(self._loaded)
            policies = {
                "loss_predictor": self._loss,
                "congestion_controller": self._cc,
                "compression_oracle": self._compression,
            }
            path_factory = self._path_factory
            collecting = self._telemetry is not None
        if "path_selector" in loaded:
            # Built lazily in the fork too: a fresh selector sharing the verified prior.
            new._path_factory = path_factory
            new._loaded["path_selector"] = loaded.pop("path_selector")
        for component, version in loaded.items():
            policy = policies[component]
            fork = getattr(policy, "fork", None)
            if fork is None:
                new._install(component, policy, version)
            elif component == "congestion_controller" and hasattr(policy, "adopt_base"):
                # it corrects the new engine's own fallback (`_set_cc` adopts it)
                new._install(component, fork(base=new._cc_fallback), version)
            else:
                new._install(component, fork(), version)
        if collecting:
            new.enable_training_collection()
        return new

    def unload_models(self) -> None:
        """Return every component to its heuristic."""
        with self._lock:
            self._set_loss(BurstLossPredictor(self._shared.burst))
            self._set_cc(self._cc_fallback)
            self._set_compression(self._shared.oracle)
            self._paths_obj = None  # rebuilt on first use, without the learned prior
            self._path_factory = functools.partial(MlPathSelector, seed=self.config.seed)
            self._loaded.clear()

    def models_loaded(self) -> bool:
        """True when at least one learned model is in use (details in `stats`)."""
        with self._lock:
            return bool(self._loaded)

    # ------------------------------------------------------------ telemetry
    def enable_training_collection(self) -> None:
        """Start collecting training telemetry into bounded buffers."""
        with self._lock:
            if self._telemetry is None:
                self._telemetry = TelemetryCollector(self.config.telemetry)
                if not self._encode:
                    # The encoder was idle (nothing read it), so it is stale: start afresh.
                    self._state = CongestionStateEncoder(self.config.state)
                    self._encode = True
                # No transition links a state from before collection started.
                self._last_state = None

    def disable_training_collection(self) -> None:
        """Stop collecting (rows not yet exported are discarded)."""
        with self._lock:
            self._telemetry = None
            self._encode = self._cc_learn_state is not None

    def export_training_data(self, directory: str | os.PathLike[str]) -> Any:
        """Write collected telemetry as Parquet + manifest into a new subdirectory.

        Rows leave the buffers only after a successful export. Raises
        ``RuntimeError`` when collection was never enabled.
        """
        from oxidize_ml import __version__

        tel = self._telemetry
        if tel is None:
            raise RuntimeError(
                "training collection is off: call enable_training_collection() "
                "or set OXIDIZE_COLLECT_TRAINING=1"
            )
        return tel.export(directory, source_version=__version__)

    # ----------------------------------------------------------------- state
    @property
    def cwnd(self) -> int:
        """The engine's current congestion window, bytes."""
        return self._cwnd

    def stats(self) -> EngineStats:
        """Typed, JSON-serialisable statistics of every component (``.to_dict()``)."""
        with self._lock:
            lat = {k: v.summary() for k, v in self._lat.items()}
            cc = self._cc
            epsilon = getattr(cc, "epsilon", None)
            cc_detail = cc.stats() if hasattr(cc, "stats") else {}
            # NaN/inf outputs answered by the heuristic: fallback decisions, not model ones.
            loss_nf = min(int(getattr(self._loss, "nonfinite_fallbacks", 0)), self._n_fec_model)
            cc_nf = min(int(getattr(cc, "nonfinite_fallbacks", 0)), self._n_cc_model)
            totals = [sum(col) for col in zip(*self._comp_counters.values(), strict=True)]
            totals = totals or [0] * _COMP_SIZE
            heuristic = totals[_COMP_HEURISTIC : _COMP_HEURISTIC + 4]
            model = totals[_COMP_MODEL : _COMP_MODEL + 4]
            comp_counts = dict(
                zip(
                    ("Skip", "Light", "Aggressive", "RohcOnly"),
                    [h + m for h, m in zip(heuristic, model, strict=True)],
                    strict=True,
                )
            )
            n_comp, n_comp_model = sum(comp_counts.values()), sum(model)
            skipped = comp_counts["Skip"]
            path_stats = self._paths.stats()
            return EngineStats(
                loss_predictor=LossPredictorStats(
                    decisions=self._n_fec,
                    model_decisions=self._n_fec_model - loss_nf,
                    fallback_decisions=self._n_fec - self._n_fec_model + loss_nf,
                    nonfinite_fallbacks=loss_nf,
                    model_loaded="loss_predictor" in self._loaded,
                    policy=self._loss.name,
                    last_prediction=self._last_p,
                    fec_injections=self._n_fec_inject,
                    last_redundancy_ratio=self._last_ratio,
                    observations=self._n_obs,
                    latency=lat["fec"],
                ),
                congestion_controller=CongestionStats(
                    decisions=self._n_cc,
                    model_decisions=self._n_cc_model - cc_nf,
                    fallback_decisions=self._n_cc - self._n_cc_model + cc_nf,
                    nonfinite_fallbacks=cc_nf,
                    model_loaded="congestion_controller" in self._loaded,
                    policy=cc.name,
                    epsilon=None if epsilon is None else float(epsilon),
                    cwnd=self._cwnd,
                    last_action=None if self._last_action is None else self._last_action.name,
                    action_counts={
                        a.name: n for a, n in zip(DrlAction, self._cc_actions, strict=True) if n
                    },
                    latency=lat["cc"],
                    controller=cc_detail,
                ),
                compression_oracle=CompressionStats(
                    decisions=n_comp,
                    model_decisions=n_comp_model,
                    fallback_decisions=n_comp - n_comp_model,
                    model_loaded="compression_oracle" in self._loaded,
                    policy=self._compression.name,
                    decision_counts=comp_counts,
                    skipped=skipped,
                    compressed=n_comp - skipped,
                    bytes_in=self._bytes_in,
                    bytes_out=self._bytes_out,
                    bytes_saved=self._bytes_in - self._bytes_out,
                    latency=lat["comp"],
                ),
                path_selector=PathSelectorStats(
                    decisions=self._n_path,
                    model_loaded="path_selector" in self._loaded,
                    policy=self._paths.name,
                    selections=path_stats.get("selections", {}),
                    mean_reward=path_stats.get("mean_reward", {}),
                    latency=lat["path"],
                    detail=path_stats,
                ),
                training_collection=self._telemetry is not None,
                telemetry=None if self._telemetry is None else self._telemetry.stats(),
            )
