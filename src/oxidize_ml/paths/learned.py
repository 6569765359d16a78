"""The learned contextual path selector (spec model table: ``path_selector``).

Neural-linear contextual bandit: a small MLP, trained offline on the path
environment (`oxidize_ml.training.paths`), predicts the reward the next flow
of each traffic type would get on each path from that path's latest
`PathMetrics` (the *prior*); an online Bayesian linear correction per
(traffic type, path), discounted so it keeps tracking, adjusts the prior
from the rewards actually fed back, with a LinUCB exploration bonus on top
(Li et al., 2010; the neural-linear split of Riquelme et al., 2018).

Features (`INPUT_NAMES`, per path and traffic type; `PathFeatureState`)
----------------------------------------------------------------------
The saturating scores of `oxidize_ml.paths.reward` (latency, jitter, loss,
throughput), availability, RTT in seconds (clipped at 1) and the raw loss
rate; each score's change since the path's previous metrics update and an
EWMA of it (gain `FEATURE_EWMA_GAIN` per update); the traffic type one-hot;
and `calculate_path_reward` of the latest and of the smoothed metrics. The
cost factor is left out on purpose: the reward does not contain it, and in
the training scenarios it only marks cellular paths, a shortcut that would
not transfer. The changes and EWMAs are per *update*: they assume metrics
arrive once per measurement interval (the environment: one per second), not
per packet.

Scores and the online part
--------------------------
For traffic type ``c`` and path ``i`` with prior ``f = MLP(x_ci)`` (clipped
to [0, 1]) and ``phi = (1, f)``::

    score(c, i) = w_ci . phi + alpha * sqrt(phi' A_ci^-1 phi)

with ``A_ci`` and ``b_ci`` the discounted ridge statistics of the residual
model ``reward ~ w . phi`` whose prior is ``w = (0, 1)`` (trust the MLP)
with precision ``prior_strength``: ``A = lam I + sum phi phi'``, ``b = lam
(0, 1) + sum phi r``, ``w = A^-1 b``. Every reward of traffic type ``c``
discounts all of ``c``'s statistics toward the prior by ``discount_gamma``
(as D-UCB does), so a path whose rewards stopped matching its metrics is
re-learnt in about ``1 / (1 - gamma)`` rewards. Scores change only when
metrics (the prior) or rewards (the correction) arrive, so they are
computed then and `select` is an argmax over at most four cached floats.

Verification at load (`verify_prior`)
-------------------------------------
A loaded model must reproduce the probe outputs recorded at export (when
the manifest carries them) and must rank a clean fast path above a failed
one for every traffic type; otherwise loading raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

import numpy as np

from oxidize_ml._validate import check_number
from oxidize_ml.paths.reward import (
    JITTER_REF_US,
    LOSS_REF,
    REWARD_WEIGHTS,
    RTT_REF_US,
    THROUGHPUT_REF_MBPS,
)
from oxidize_ml.paths.selector import (
    _CTX_INDEX,
    _PATHS,
    N_CONTEXTS,
    N_PATHS,
    BasePathSelector,
    PathSelectorConfig,
    _context_index,
    argmax_available,
)
from oxidize_ml.types import PathId, PathMetrics, TrafficContext

_CONTEXTS: tuple[TrafficContext, ...] = tuple(TrafficContext)

INPUT_NAMES: Final[tuple[str, ...]] = (
    "latency_score",
    "jitter_score",
    "loss_score",
    "throughput_score",
    "availability",
    "rtt_s",
    "loss_rate",
    "d_latency_score",
    "d_loss_score",
    "d_throughput_score",
    "ewma_latency_score",
    "ewma_loss_score",
    "ewma_throughput_score",
    "ctx_gaming",
    "ctx_voip",
    "ctx_streaming",
    "ctx_bulk",
    "ctx_web",
    "metrics_reward",
    "ewma_metrics_reward",
)
"""inputs of the prior MLP, in order (one row per path and traffic type)"""
N_INPUTS: Final = len(INPUT_NAMES)
FEATURE_VERSION: Final = 1
"""version of `INPUT_NAMES` and their definitions; a model of another version is refused"""
FEATURE_EWMA_GAIN: Final = 0.3
"""gain of the smoothed scores per metrics update: loss measured on a few hundred
packets is noisy (sd 0.7 % at 1 %), and 0.3 averages about 5 updates"""
_CTX_OFFSET: Final = 13
_W_LIST: Final = tuple(REWARD_WEIGHTS[c] for c in _CONTEXTS)
_ROW_TEMPLATE: Final[np.ndarray] = np.zeros((N_CONTEXTS, N_INPUTS), dtype=np.float32)
_ROW_TEMPLATE[:, _CTX_OFFSET : _CTX_OFFSET + N_CONTEXTS] = np.eye(N_CONTEXTS)


class PriorModel(Protocol):
    """What the prior needs of a model: `oxidize_ml.runtime.numpy_models.MlpModel`'s batch forward."""

    def forward_batch(self, xs: np.ndarray) -> np.ndarray: ...


def metric_scores(m: PathMetrics) -> tuple[float, float, float, float]:
    """(latency, jitter, loss, throughput) scores of ``m``, each in [0, 1]."""
    return (
        math.exp(-m.rtt_us / RTT_REF_US),
        math.exp(-m.rtt_var_us / JITTER_REF_US),
        math.exp(-m.loss_rate / LOSS_REF),
        1.0 - math.exp(-m.bandwidth_bps / 1e6 / THROUGHPUT_REF_MBPS),
    )


class PathFeatureState:
    """Per-path feature memory (previous scores, EWMAs) and the feature rows.

    `update` takes a path's new metrics and returns its ``[N_CONTEXTS,
    N_INPUTS]`` float32 rows (one per traffic type), the prior's input. The
    trainer builds its data with this very class, so training and serving
    features cannot drift apart.
    """

    __slots__ = ("_ewma", "_prev")

    def __init__(self) -> None:
        self._prev: list[tuple[float, float, float] | None] = [None] * N_PATHS
        self._ewma: list[list[float] | None] = [None] * N_PATHS

    def reset(self) -> None:
        self._prev = [None] * N_PATHS
        self._ewma = [None] * N_PATHS

    def update(self, metrics: PathMetrics) -> np.ndarray:
        """Record ``metrics`` and return the feature rows of its path ``[5, N_INPUTS]``."""
        i = int(metrics.path_id)
        lat, jit, loss_s, thr_s = metric_scores(metrics)
        cur = (lat, loss_s, thr_s)
        prev = self._prev[i]
        if prev is None:
            prev = cur
        ew = self._ewma[i]
        if ew is None:
            ew = list(cur)
        else:
            g = FEATURE_EWMA_GAIN
            ew = [e + g * (x - e) for e, x in zip(ew, cur, strict=True)]
        self._prev[i] = cur
        self._ewma[i] = ew
        # One template copy and row-wise assignments: cheaper than building the
        # rows with repeat/eye/matmul (this runs on every metrics update).
        rows = _ROW_TEMPLATE.copy()
        rows[:, :_CTX_OFFSET] = (
            lat,
            jit,
            loss_s,
            thr_s,
            metrics.availability,
            min(metrics.rtt_us / 1e6, 1.0),
            metrics.loss_rate,
            lat - prev[0],
            loss_s - prev[1],
            thr_s - prev[2],
            ew[0],
            ew[1],
            ew[2],
        )
        rows[:, -2] = [a * lat + b * loss_s + c * thr_s for a, b, c in _W_LIST]
        rows[:, -1] = [a * ew[0] + b * ew[1] + c * ew[2] for a, b, c in _W_LIST]
        return rows


@dataclass(frozen=True, slots=True)
class LearnedPathConfig:
    """Hyperparameters of the online part of `LearnedPathSelector` (rewards in [0, 1])."""

    availability_threshold: float = 0.1
    """a path is available while its latest ``availability`` is at least this, in [0, 1]"""
    exploration_alpha: float = 0.03
    """weight of the LinUCB bonus, >= 0. The prior already ranks paths from their
    metrics, so exploration only has to catch a prior that is wrong for a path.
    The trainer picks it on training-split families (`oxidize_ml.training.paths`,
    stored in the manifest); 0.03 is what the shipped model's run chose"""
    prior_strength: float = 20.0
    """precision of the prior ``w = (0, 1)`` (trust the MLP), > 0: about this many
    rewards of evidence are needed to move the correction halfway (20 is what
    the shipped model's run chose: 5 to 80 were within 7 % in training-family regret)"""
    discount_gamma: float = 0.98
    """per-reward discount of a traffic type's statistics toward the prior, in (0, 1]
    (effective memory 1 / (1 - gamma) = 50 rewards, as `MlPathSelector`)"""

    def __post_init__(self) -> None:
        check_number("availability_threshold", self.availability_threshold, hi=1.0)
        check_number("exploration_alpha", self.exploration_alpha)
        if check_number("prior_strength", self.prior_strength) <= 0.0:
            raise ValueError(f"prior_strength must be > 0, got {self.prior_strength!r}")
        g = check_number("discount_gamma", self.discount_gamma, hi=1.0)
        if g <= 0.0:
            raise ValueError(f"discount_gamma must be in (0, 1], got {self.discount_gamma!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# ------------------------------------------------------------------ verification

_PROBE_GOOD = PathMetrics(
    path_id=PathId.Primary,
    rtt_us=20_000,
    rtt_var_us=2_000,
    bandwidth_bps=50e6,
    loss_rate=0.0,
    availability=1.0,
)
_PROBE_BAD = PathMetrics(
    path_id=PathId.Secondary,
    rtt_us=1_000_000,
    rtt_var_us=200_000,
    bandwidth_bps=0.0,
    loss_rate=1.0,
    availability=0.0,
)


def probe_inputs() -> np.ndarray:
    """Fixed probe rows ``[20, N_INPUTS]`` (float32): four metric histories x five traffic types.

    Recorded with their outputs at export and re-run at load (`verify_prior`).
    """
    st = PathFeatureState()
    rows = [st.update(_PROBE_GOOD), st.update(_PROBE_BAD)]
    mid = PathMetrics(
        path_id=PathId.Tertiary,
        rtt_us=80_000,
        rtt_var_us=15_000,
        bandwidth_bps=8e6,
        loss_rate=0.02,
        availability=0.9,
    )
    rows.append(st.update(mid))
    rows.append(
        st.update(
            PathMetrics(
                path_id=PathId.Tertiary,
                rtt_us=60_000,
                rtt_var_us=10_000,
                bandwidth_bps=12e6,
                loss_rate=0.01,
                availability=1.0,
            )
        )
    )
    return np.concatenate(rows, axis=0)


PROBE_TOLERANCE: Final = 1e-4
"""largest |recorded - recomputed| probe output accepted at load (float32 reassociation)"""


def verify_prior(model: PriorModel, expected: Sequence[float] | None = None) -> np.ndarray:
    """Check a prior model; return its probe outputs ``[20]``.

    Raises ``ValueError`` when the outputs are not finite, differ from
    ``expected`` (recorded at export) by more than `PROBE_TOLERANCE`, or do
    not rank a clean 20 ms / 50 Mbit/s path above a failed one for every
    traffic type (a model that cannot do that would route traffic into
    outages).
    """
    x = probe_inputs()
    try:
        y = np.asarray(model.forward_batch(x), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - any failure of a model under test is a refusal
        raise ValueError(f"path prior model failed on the probe inputs: {exc}") from None
    if y.ndim != 2 or y.shape != (x.shape[0], 1):
        raise ValueError(f"path prior model must output [n, 1], got {y.shape}")
    out = y[:, 0]
    if not np.isfinite(out).all():
        raise ValueError("path prior model gives non-finite outputs on the probe inputs")
    if expected is not None:
        exp = np.asarray(expected, dtype=np.float64)
        if exp.shape != out.shape:
            raise ValueError(f"recorded probe outputs have shape {exp.shape}, expected {out.shape}")
        err = float(np.max(np.abs(exp - out)))
        if not err <= PROBE_TOLERANCE:
            raise ValueError(
                f"path prior model differs from its recorded probe outputs by "
                f"{err:.3g} > {PROBE_TOLERANCE}"
            )
    good, bad = out[:N_CONTEXTS], out[N_CONTEXTS : 2 * N_CONTEXTS]
    if not np.all(good > bad):
        raise ValueError(
            "path prior model does not rank a clean 20 ms path above a failed "
            f"one for every traffic type (good {good.round(3).tolist()}, "
            f"failed {bad.round(3).tolist()})"
        )
    return out


# ------------------------------------------------------------------ the selector


class LearnedPathSelector(BasePathSelector):
    """Learned prior per (path, traffic type) + discounted LinUCB correction.

    Parameters
    ----------
    model
        The prior: anything with ``forward_batch(xs [n, N_INPUTS]) -> [n, 1]``
        (an `oxidize_ml.runtime.numpy_models.MlpModel` of kind ``path_mlp``).
        Checked with `verify_prior`.
    config
        Online hyperparameters (`LearnedPathConfig`).
    seed
        Seeds the tie-breaker.
    probe_outputs
        Outputs recorded at export, compared at construction when given.

    Examples
    --------
    A stand-in prior (the metrics' own reward) shows the mechanics:

    >>> class Metric:
    ...     def forward_batch(self, xs):
    ...         return xs[:, -2:-1]
    >>> sel = LearnedPathSelector(Metric())
    >>> sel.update_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=80_000), now=0.0)
    >>> sel.update_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=15_000), now=0.0)
    >>> sel.select(TrafficContext.Gaming, now=0.0)
    <PathId.Secondary: 1>
    """

    name: ClassVar[str] = "learned"
    is_learned: ClassVar[bool] = True

    def __init__(
        self,
        model: PriorModel,
        config: LearnedPathConfig = LearnedPathConfig(),
        *,
        seed: int = 0,
        probe_outputs: Sequence[float] | None = None,
        _verified: bool = False,
    ) -> None:
        if not isinstance(config, LearnedPathConfig):
            raise TypeError(f"config must be a LearnedPathConfig, got {type(config).__name__}")
        if not _verified:  # a fork reuses a prior its parent already checked
            verify_prior(model, probe_outputs)
        super().__init__(
            PathSelectorConfig(availability_threshold=config.availability_threshold), seed=seed
        )
        self.learned_config = config
        self.version: str | None = None
        """manifest version of the model (set by `load_learned_selector`)"""
        self._model = model
        self._features = PathFeatureState()
        self._alpha = config.exploration_alpha
        self._lam = config.prior_strength
        self._gamma = config.discount_gamma
        lam = self._lam
        # Per (context, path): the prior f, and the 2x2 ridge statistics
        # A = [[a11, a12], [a12, a22]] and b = (b1, b2) of reward ~ w . (1, f).
        self._prior = [[0.0] * N_PATHS for _ in range(N_CONTEXTS)]
        self._a = [[[lam, 0.0, lam] for _ in range(N_PATHS)] for _ in range(N_CONTEXTS)]
        self._b = [[[0.0, lam] for _ in range(N_PATHS)] for _ in range(N_CONTEXTS)]
        self._tie = [[self._rng.random() * 1e-9 for _ in range(N_PATHS)]
                     for _ in range(N_CONTEXTS)]  # fmt: skip
        self._scores = [[0.0] * N_PATHS for _ in range(N_CONTEXTS)]
        # The argmax over available paths per context, kept current whenever a
        # score or the availability changes, so select is one lookup.
        self._best = [-1] * N_CONTEXTS

    def fork(self) -> LearnedPathSelector:
        """A fresh selector (no metrics, no rewards) sharing this one's verified prior
        model: one per connection engine (`MlEngine.fork`) without re-verifying."""
        new = LearnedPathSelector(self._model, self.learned_config, seed=self.seed, _verified=True)
        new.version = self.version
        return new

    def select(self, context: TrafficContext, *, now: float) -> PathId:
        """`BasePathSelector.select` with the argmax precomputed (same fallbacks)."""
        c = _CTX_INDEX[context] if type(context) is TrafficContext else _context_index(context)
        i = self._best[c]
        if i < 0:  # no available path: the last one used, or Primary
            last = self._last[c]
            i = 0 if last is None else last
        self._selections[c][i] += 1
        self._last[c] = i
        return _PATHS[i]

    def predict_one(self, obs: TrafficContext, *, now: float) -> PathId:
        """The path `select` would return now (the precomputed argmax); changes nothing."""
        c = _CTX_INDEX[obs] if type(obs) is TrafficContext else _context_index(obs)
        i = self._best[c]
        if i < 0:
            last = self._last[c]
            i = 0 if last is None else last
        return _PATHS[i]

    def _refresh_best(self, c: int) -> None:
        avail = self._available
        self._best[c] = self._pull(c, avail) if avail else -1

    # -- hooks -----------------------------------------------------------------

    def _on_metrics(self, i: int, metrics: PathMetrics) -> None:
        rows = self._features.update(metrics)
        out = self._model.forward_batch(rows)[:, 0].tolist()
        for c in range(N_CONTEXTS):
            # Clip: the correction's prior assumes f is a reward in [0, 1]; a
            # NaN (verify_prior checks finiteness on probes) scores 0.
            f = out[c]
            self._prior[c][i] = 0.0 if math.isnan(f) else min(1.0, max(0.0, f))
            self._rescore(c, i)
            self._refresh_best(c)  # availability may have changed too

    def _on_reward(self, c: int, i: int, reward: float) -> None:
        g, lam = self._gamma, self._lam
        a_c, b_c = self._a[c], self._b[c]
        if g != 1.0:
            keep = 1.0 - g
            for j in range(N_PATHS):  # discount toward the prior (A0 = lam I, b0 = lam (0, 1))
                a, b = a_c[j], b_c[j]
                a[0] = g * a[0] + keep * lam
                a[1] = g * a[1]
                a[2] = g * a[2] + keep * lam
                b[0] = g * b[0]
                b[1] = g * b[1] + keep * lam
        f = self._prior[c][i]
        a, b = a_c[i], b_c[i]
        a[0] += 1.0
        a[1] += f
        a[2] += f * f
        b[0] += reward
        b[1] += reward * f
        for j in range(N_PATHS):
            self._rescore(c, j)
        self._refresh_best(c)

    def _rescore(self, c: int, i: int) -> None:
        a11, a12, a22 = self._a[c][i]
        b1, b2 = self._b[c][i]
        f = self._prior[c][i]
        det = a11 * a22 - a12 * a12  # > 0: A = lam I + PSD terms
        # w = A^-1 b; phi' A^-1 phi with phi = (1, f), written out for 2x2.
        w1 = (a22 * b1 - a12 * b2) / det
        w2 = (a11 * b2 - a12 * b1) / det
        var = (a22 - 2.0 * a12 * f + a11 * f * f) / det
        self._scores[c][i] = w1 + w2 * f + self._alpha * math.sqrt(max(var, 0.0)) + self._tie[c][i]

    def _pull(self, c: int, avail: tuple[int, ...]) -> int:
        return argmax_available(self._scores[c], avail)

    # -- inspection --------------------------------------------------------------

    def prior(self, context: TrafficContext) -> dict[str, float]:
        """The MLP's predicted reward per known path for ``context``."""
        c = int(TrafficContext(context))
        return {
            PathId(i).name: self._prior[c][i] for i, m in enumerate(self._metrics) if m is not None
        }

    def scores(self, context: TrafficContext) -> dict[str, float]:
        """Current scores (prior + correction + bonus) per known path for ``context``."""
        c = int(TrafficContext(context))
        return {
            PathId(i).name: self._scores[c][i] for i, m in enumerate(self._metrics) if m is not None
        }

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["learned_config"] = self.learned_config.to_dict()
        for c, ctx in enumerate(_CONTEXTS):
            out["per_context"][ctx.name]["prior"] = {
                PathId(i).name: self._prior[c][i]
                for i in range(N_PATHS)
                if self._metrics[i] is not None
            }
        return out

    # -- loading -----------------------------------------------------------------

    @classmethod
    def from_weights(
        cls,
        path: str | Path,
        config: LearnedPathConfig = LearnedPathConfig(),
        *,
        seed: int = 0,
        probe_outputs: Sequence[float] | None = None,
    ) -> LearnedPathSelector:
        """Load a ``path_mlp`` safetensors file (numpy runtime) and build the selector.

        Raises `oxidize_ml.runtime.weights.ModelLoadError` for a bad file and
        ``ValueError`` when the model fails `verify_prior` or has other inputs.
        """
        from oxidize_ml.runtime.configs import KIND_PATH_MLP
        from oxidize_ml.runtime.numpy_models import MlpModel
        from oxidize_ml.runtime.weights import read_weight_file

        wf = read_weight_file(path, expected_kind=KIND_PATH_MLP)
        check_model_inputs(wf.config.n_inputs, wf.metadata.get("path_feature_version"))  # type: ignore[union-attr]
        model = MlpModel.from_tensors(wf.tensors, wf.config)  # type: ignore[arg-type]
        return cls(model, config, seed=seed, probe_outputs=probe_outputs)


def check_model_inputs(n_inputs: int, feature_version: object) -> None:
    """Raise ``ValueError`` unless a model takes this package's `INPUT_NAMES`."""
    if n_inputs != N_INPUTS:
        raise ValueError(
            f"path prior model takes {n_inputs} inputs, this package computes "
            f"{N_INPUTS} ({', '.join(INPUT_NAMES)})"
        )
    if feature_version is not None and str(feature_version) != str(FEATURE_VERSION):
        raise ValueError(
            f"path prior model was trained for feature version "
            f"{feature_version!r}, this package computes {FEATURE_VERSION}"
        )


MODEL_NAME: Final = "path_selector"
"""the model's name in a model directory's manifest"""
_MAX_MANIFEST_BYTES: Final = 1024 * 1024


def _manifest_entry(directory: Path) -> dict[str, Any] | str:
    """The manifest's ``path_selector`` entry, or why there is none (a status string).

    Read under the same file-trust rules as every model file
    (`oxidize_ml.runtime.safe_files`): regular files only, size-capped, no
    world-writable or other-owned directory on the way.
    """
    import json

    from oxidize_ml.runtime.safe_files import UnsafeFileError, read_file

    try:
        raw = read_file(directory, "manifest.json", _MAX_MANIFEST_BYTES)
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return f"missing: no manifest.json in {directory}"
    except UnsafeFileError as exc:
        return f"unsafe: {exc}"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"invalid: manifest.json: {exc}"
    models = data.get("models") if isinstance(data, dict) else None
    entry = models.get(MODEL_NAME) if isinstance(models, dict) else None
    if not isinstance(entry, dict):
        return f"missing: no {MODEL_NAME!r} model in {directory / 'manifest.json'}"
    return entry


def _online_config(metrics: dict[str, Any]) -> LearnedPathConfig:
    """The online hyperparameters chosen at training (``metrics.online_config``), else defaults."""
    raw = metrics.get("online_config")
    if not isinstance(raw, dict):
        return LearnedPathConfig()
    known = {k: raw[k] for k in LearnedPathConfig.__dataclass_fields__ if k in raw}
    return LearnedPathConfig(**known)


def load_learned_selector(
    directory: str | Path,
    *,
    seed: int = 0,
    config: LearnedPathConfig | None = None,
    only_default_enabled: bool = False,
) -> tuple[LearnedPathSelector | None, str]:
    """The learned selector of a model directory, or ``(None, why not)``; never raises
    for the directory's content.

    The ``path_selector`` entry is verified (manifest, SHA-256, kind) by
    `oxidize_ml.models.manifest.load_verified`; its inputs must be `INPUT_NAMES`
    and its feature version `FEATURE_VERSION`; the model must pass
    `verify_prior` against the probe outputs recorded in the manifest.
    ``config`` defaults to the manifest's ``metrics.online_config`` (chosen
    at training). With ``only_default_enabled`` a model whose
    ``metrics.default_enabled`` is not true is refused (``"not default"``).
    """
    from oxidize_ml.models.manifest import load_verified

    d = Path(directory)
    entry = _manifest_entry(d)
    if isinstance(entry, str):
        return None, entry
    metrics = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else {}
    assert isinstance(metrics, dict)
    if only_default_enabled and metrics.get("default_enabled") is not True:
        return None, "not default"
    if entry.get("inputs") != list(INPUT_NAMES):
        return None, (
            f"schema_mismatch: inputs {entry.get('inputs')!r} are not this "
            f"package's path features {list(INPUT_NAMES)}"
        )
    training = entry.get("training") if isinstance(entry.get("training"), dict) else {}
    assert isinstance(training, dict)
    try:
        check_model_inputs(N_INPUTS, training.get("path_feature_version"))
    except ValueError as exc:
        return None, f"schema_mismatch: {exc}"
    try:
        model, reason = load_verified(d, MODEL_NAME, "numpy")
    except Exception as exc:  # noqa: BLE001 - load_verified reports; this is belt and braces
        return None, f"invalid: {exc!r}"
    if model is None:
        return None, reason
    probes = metrics.get("probe_outputs")
    try:
        cfg = config if config is not None else _online_config(metrics)
        sel = LearnedPathSelector(
            model,
            cfg,
            seed=seed,
            probe_outputs=probes if isinstance(probes, list) else None,
        )
    except (TypeError, ValueError) as exc:
        return None, f"invalid: {exc}"
    sel.version = str(entry.get("version", "?"))
    return sel, "loaded"


def default_path_selector_factory() -> tuple[Any, str]:
    """(``factory(seed)``, description) of the selector ``MlEngine()`` should use.

    The shipped learned selector when the package's default model directory
    holds a verified ``path_selector`` whose ``metrics.default_enabled`` is
    true (it met the default rule on held-out trace-driven paths); otherwise
    `MlPathSelector` (discounted UCB1).
    """
    from oxidize_ml.models import default_model_dir
    from oxidize_ml.paths.selector import MlPathSelector

    d = default_model_dir()
    if d is not None:
        sel, why = load_learned_selector(d, only_default_enabled=True)
        if sel is not None:
            return (lambda seed: load_learned_selector(d, seed=seed)[0]), (
                f"learned ({d / 'path_selector.safetensors'})"
            )
    else:
        why = "no shipped model directory"
    return (lambda seed: MlPathSelector(seed=seed)), f"ucb1 (learned not default: {why})"
