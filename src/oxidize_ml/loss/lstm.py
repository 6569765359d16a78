"""The learned loss predictor: the spec's LSTM run one step per observation.

`LstmLossPredictor` wraps a runtime model (`oxidize_ml.runtime.LstmLossModel`,
numpy, or `oxidize_ml.runtime.onnx_backend.OrtLstmLossModel`) as a
``Policy[NetworkFeatures, float]``, the same shape as the EWMA heuristic, so
the engine can swap one for the other.

Inference: one LSTM step from carried (h, c) per observation, not the
20-step window of the spec's description. The model was trained statefully
with truncated backpropagation through time over chunks of 20 steps
(`oxidize_ml.training.loss`), so its carried state summarises the whole
history and one step costs what the window would cost divided by about 15
(REFERENCES section 5).

- ``learn_one(features, feedback, *, now)`` advances the state with
  ``features.to_vector()`` and stores the prediction for the window
  (now + 50 ms, now + 100 ms] (`oxidize_ml.loss`). ``feedback`` (the
  observed loss rate) is already ``features.loss_rate``, the model's fourth
  input, so it is only checked, not used separately. Call it once per
  observation interval: the model was trained on 10 ms intervals.
- ``predict_one(features, *, now)`` returns the stored prediction and reads
  nothing else; before the first ``learn_one`` (no observation yet, so no
  evidence of loss) it returns 0.0.

Heuristic fallback: the predictor keeps an `EwmaLossPredictor` fed with
every observation (about 0.5 us per call). Should the model ever compute
NaN or infinity (weights that overflow on some input; the load-time probe
of `oxidize_ml.models.probe` refuses models that do so on its probes, but
no probe set covers every input), that observation's prediction is the
EWMA's, the LSTM state is reset, and `nonfinite_fallbacks` counts it: a
decision never raises because of the model.

Not thread-safe: the carried state belongs to one connection. `fork` gives
another connection its own state over the same read-only weights.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from oxidize_ml._validate import check_number
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss.ewma import EwmaLossPredictor
from oxidize_ml.runtime.numpy_models import LstmLossModel, NonFiniteOutputError

if TYPE_CHECKING:
    from oxidize_ml.runtime.onnx_backend import OrtLstmLossModel

_INF = math.inf


class LstmLossPredictor:
    """Learned loss predictor: ``NetworkFeatures`` -> P(loss) 50-100 ms ahead.

    Parameters
    ----------
    model
        A loaded runtime model (`oxidize_ml.runtime.load_lstm` or
        `oxidize_ml.hub.manifest.load_verified`). The predictor owns it and
        its carried state from now on; pass ``model.fork()`` to keep using
        the original elsewhere.
    fallback
        The heuristic answering when the model's output is not finite
        (default: a new `EwmaLossPredictor`); the predictor feeds it every
        observation and owns it.

    Examples
    --------
    >>> import numpy as np
    >>> from oxidize_ml.runtime import LossLstmConfig, LstmLossModel
    >>> from oxidize_ml.runtime.configs import expected_tensors
    >>> rng = np.random.default_rng(0)
    >>> cfg = LossLstmConfig()
    >>> tensors = {k: rng.normal(0, 0.1, s).astype(np.float32)
    ...            for k, s in expected_tensors(cfg).items()}
    >>> pred = LstmLossPredictor(LstmLossModel.from_tensors(tensors, cfg))
    >>> f = NetworkFeatures(rtt_us=50_000, rtt_var_us=5_000, bandwidth_bps=1e8,
    ...     loss_rate=0.02, loss_trend=0.0, inflight=100, cwnd=65535)
    >>> pred.predict_one(f, now=0.0)
    0.0
    >>> pred.learn_one(f, f.loss_rate, now=0.01)
    >>> 0.0 < pred.predict_one(f, now=0.01) < 1.0
    True
    """

    name = "lstm"
    is_learned = True

    __slots__ = (
        "_fallback",
        "_input",
        "_last_now",
        "_model",
        "_n_updates",
        "_p",
        "_step",
        "nonfinite_fallbacks",
    )

    def __init__(
        self, model: LstmLossModel | OrtLstmLossModel, *, fallback: EwmaLossPredictor | None = None
    ) -> None:
        if not (
            hasattr(model, "step") and hasattr(model, "fork") and hasattr(model, "reset_state")
        ):
            raise TypeError(
                f"model must be an LstmLossModel or OrtLstmLossModel, got {type(model).__name__}"
            )
        if fallback is not None and not isinstance(fallback, EwmaLossPredictor):
            raise TypeError(
                f"fallback must be an EwmaLossPredictor or None, got {type(fallback).__name__}"
            )
        self._model = model
        self._step = model.step  # bound once: saves an attribute lookup per observation
        self._input = _input_buffer(model)
        self._fallback = fallback if fallback is not None else EwmaLossPredictor()
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------
    def reset(self) -> None:
        """Zero the carried state and forget the stored prediction (a new connection)."""
        self._model.reset_state()
        self._fallback.reset()
        self._p = 0.0
        self._last_now: float | None = None
        self._n_updates = 0
        self.nonfinite_fallbacks = 0
        """observations whose prediction came from the fallback because the model
        computed NaN/inf (since construction or `reset`)"""

    def fork(self) -> LstmLossPredictor:
        """A predictor sharing the read-only weights, with its own fresh state.

        Per-connection state is only the model's (h, c) and scratch buffers
        (`LstmLossModel.fork`: two [H] vectors and the step buffers, a few
        hundred bytes), a fresh fallback EWMA and the counters.
        """
        return LstmLossPredictor(self._model.fork(), fallback=self._fallback.clone())

    @property
    def fallback(self) -> EwmaLossPredictor:
        """The heuristic kept warm for observations the model cannot answer."""
        return self._fallback

    def clone(self) -> LstmLossPredictor:
        """Same as `fork` (the river-style name used by the heuristics)."""
        return self.fork()

    @property
    def model(self) -> LstmLossModel | OrtLstmLossModel:
        """The runtime model (its carried state is this predictor's state)."""
        return self._model

    @property
    def n_updates(self) -> int:
        """`learn_one` calls since construction or `reset`."""
        return self._n_updates

    @property
    def last_prediction(self) -> float:
        """The stored prediction (what `predict_one` returns)."""
        return self._p

    # -- policy -----------------------------------------------------------------------------
    # ``feedback`` and ``now`` are typed ``object`` because the body checks them: in
    # the compiled build a ``float`` annotation would be checked first, by mypyc,
    # with an error that does not name the argument.
    def learn_one(self, features: NetworkFeatures, feedback: object, *, now: object) -> None:
        """Advance the LSTM by one observation and store its prediction.

        Parameters
        ----------
        features
            The interval's observation; its `NetworkFeatures.to_vector` is the
            model input (not modified).
        feedback
            Observed loss rate in [0, 1] (normally ``features.loss_rate``,
            which the model already reads); checked, not used separately.
        now
            Caller's time, seconds; must not go backwards.

        Raises
        ------
        TypeError
            ``features`` is not a `NetworkFeatures`.
        ValueError
            ``feedback`` outside [0, 1], ``now`` not finite or going backwards;
            nothing changes then. A non-finite model output is not an error:
            the fallback answers (see the module docstring).
        """
        if not isinstance(features, NetworkFeatures):
            raise TypeError(f"features must be NetworkFeatures, got {type(features).__name__}")
        # Normalised straight into the model's input slot where it has one: no
        # vector built and copied per observation.
        buf = self._input
        if buf is None:
            x = features.to_vector()
        else:
            features.write_vector(buf)
            x = buf
        self.learn_encoded(features, x, feedback, now=now)

    def learn_encoded(
        self, features: NetworkFeatures, x: np.ndarray, feedback: object, *, now: object
    ) -> None:
        """`learn_one` with the model input already computed by the caller.

        ``x`` must be ``features.to_vector()`` (float32 ``[8]``; the engine slices
        it from the congestion state, which starts with exactly that vector, so
        the features are normalised once per observation). It is read, not kept.
        Raises as `learn_one` does (and ``ValueError`` for a wrong shape of ``x``).
        """
        if type(features) is not NetworkFeatures and not isinstance(features, NetworkFeatures):
            raise TypeError(f"features must be NetworkFeatures, got {type(features).__name__}")
        if type(feedback) is float and 0.0 <= feedback <= 1.0:
            loss = feedback
        else:
            loss = check_number("feedback", feedback, hi=1.0)
        if type(now) is float and -_INF < now < _INF:
            t = now
        else:
            t = check_number("now", now, lo=None)
        last = self._last_now
        if last is not None and t < last:
            raise ValueError(f"now must not go backwards: got {now!r} after {last!r}")
        fb = self._fallback
        fb.learn_one(features, loss, now=t)
        try:
            self._p = self._step(x)
        except (NonFiniteOutputError, FloatingPointError, RuntimeWarning):
            # NaN/inf out of the model (FloatingPointError under np.seterr(all="raise"),
            # RuntimeWarning under warnings-as-errors): reset the state, which may be
            # half-updated, and answer this observation with the heuristic.
            self._model.reset_state()
            self._p = fb.predict_one(features, now=t)
            self.nonfinite_fallbacks += 1
        self._last_now = t
        self._n_updates += 1

    def predict_one(self, features: NetworkFeatures, *, now: float) -> float:
        """Predicted per-packet loss probability for (now + 50 ms, now + 100 ms], in [0, 1].

        The prediction made by the latest `learn_one` (0.0 before the first);
        reads state only. ``features`` and ``now`` are accepted for the
        `Policy` shape: the engine feeds each new observation to `learn_one`
        before asking.
        """
        return self._p

    # -- introspection ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Copies of the carried (h, c) and the counters (for debugging and tests)."""
        h, c = self._model.clone_state()
        return {
            "h": h,
            "c": c,
            "p": self._p,
            "last_now": self._last_now,
            "n_updates": self._n_updates,
            "nonfinite_fallbacks": self.nonfinite_fallbacks,
        }

    def __repr__(self) -> str:
        return (
            f"LstmLossPredictor(p={self._p:.4g}, n_updates={self._n_updates}, "
            f"model={type(self._model).__name__})"
        )


def _input_buffer(model: LstmLossModel | OrtLstmLossModel) -> np.ndarray | None:
    """The numpy model's input slot (`LstmLossModel.input_buffer`); None for ONNX."""
    buf = getattr(model, "input_buffer", None)
    return buf if isinstance(buf, np.ndarray) else None


__all__ = ["LstmLossPredictor"]
