"""EWMA loss predictor: the spec's heuristic fallback for the LSTM.

    level_t  = alpha * x_t + (1 - alpha) * level_{t-1}          (EWMA of loss rate)
    slope_t  = (level_t - level_{t-1}) / dt_t                   (per second)
    trend_t  = trend_alpha * slope_t + (1 - trend_alpha) * trend_{t-1}
    jitter   = jitter_weight * clip(rtt_var / rtt - jitter_ratio_floor, 0, jitter_ratio_span)
    p        = clip(level + trend_weight * trend * (horizon_s + lag_s) + jitter, 0, 1)

``lag_s`` is the EWMA's own delay, ``mean_dt * (1 - alpha) / alpha``: on a ramp
an EWMA sits that far behind the signal, so the trend is projected over the
horizon plus the lag. ``x_t`` is the feedback passed to ``learn_one`` (the
loss rate observed over the last interval). ``dt`` comes from the caller's
``now``; nothing here reads a clock.

The jitter term reads the features passed to ``predict_one``: RTT variation
that is large relative to the RTT means a queue is building and congestion
loss tends to follow, so the prediction rises before the loss rate does.
"""

from __future__ import annotations

from typing import Any

from oxidize_ml._validate import check_number
from oxidize_ml.features import NetworkFeatures
from oxidize_ml.loss.configs import EwmaLossConfig

__all__ = ["STATE_VERSION", "EwmaLossConfig", "EwmaLossPredictor"]

_INF = float("inf")

STATE_VERSION = 1
"""version of the `EwmaLossPredictor.state_dict` layout"""

_DEFAULT_CONFIG = EwmaLossConfig()


class EwmaLossPredictor:
    """Heuristic loss predictor: EWMA level + projected trend + jitter term.

    A `oxidize_ml.policy.Policy` of ``NetworkFeatures -> float``: ``learn_one``
    feeds the loss rate observed over the last interval, ``predict_one``
    returns the predicted per-packet loss probability 50-100 ms ahead (see
    `oxidize_ml.loss`), in [0, 1], reading state only.

    Parameters
    ----------
    config
        Hyperparameters; `clone` rebuilds from them.

    Examples
    --------
    >>> from oxidize_ml.features import NetworkFeatures
    >>> f = NetworkFeatures(rtt_us=50_000, rtt_var_us=5_000, bandwidth_bps=1e8,
    ...     loss_rate=0.02, loss_trend=0.0, inflight=100, cwnd=65535)
    >>> pred = EwmaLossPredictor()
    >>> for i in range(50):
    ...     pred.learn_one(f, 0.02, now=i * 0.01)
    >>> round(pred.predict_one(f, now=0.5), 4)
    0.02
    """

    name = "ewma"
    is_learned = False

    __slots__ = (
        "_alpha",
        "_horizon_s",
        "_jfloor",
        "_jspan",
        "_jw",
        "_lag_factor",
        "_last_now",
        "_level",
        "_mean_dt",
        "_min_dt",
        "_n_updates",
        "_trend",
        "_trend_alpha",
        "_trend_weight",
        "config",
    )

    def __init__(self, config: EwmaLossConfig = _DEFAULT_CONFIG) -> None:
        if not isinstance(config, EwmaLossConfig):
            raise TypeError(f"config must be an EwmaLossConfig, got {type(config).__name__}")
        self.config = config
        # Copies of the config as plain attributes: the hot path avoids one
        # attribute hop per constant.
        self._alpha = config.alpha
        self._trend_alpha = config.trend_alpha
        self._trend_weight = config.trend_weight
        self._horizon_s = config.horizon_s
        self._lag_factor = (1.0 - config.alpha) / config.alpha
        self._min_dt = config.min_interval_s
        self._jw = config.jitter_weight
        self._jfloor = config.jitter_ratio_floor
        self._jspan = config.jitter_ratio_span
        self.reset()

    def reset(self) -> None:
        """Forget everything learned (a new connection)."""
        self._level = 0.0
        self._trend = 0.0
        self._mean_dt = 0.0
        self._last_now: float | None = None
        self._n_updates = 0

    def clone(self) -> EwmaLossPredictor:
        """A fresh predictor with the same config and no state."""
        return EwmaLossPredictor(self.config)

    @property
    def n_updates(self) -> int:
        """number of `learn_one` calls since construction or `reset`"""
        return self._n_updates

    # ``feedback`` and ``now`` are typed ``object`` because the body checks them: in
    # the compiled build a ``float`` annotation would be checked first, by mypyc,
    # with an error that does not name the argument.
    def learn_one(self, features: NetworkFeatures, feedback: object, *, now: object) -> None:
        """Update the state with the loss rate observed over the last interval.

        Parameters
        ----------
        features
            The observation of the interval (not read; kept for the `Policy`
            shape, the jitter term is read at prediction time).
        feedback
            Observed loss rate in [0, 1], normally ``features.loss_rate``.
        now
            Caller's time, seconds; must not go backwards.
        """
        # Fast path for the common case (plain floats in range); anything else
        # goes through the full check, which names the field in its error.
        if type(feedback) is float and 0.0 <= feedback <= 1.0:
            x = feedback
        else:
            x = check_number("feedback", feedback, hi=1.0)
        if type(now) is float and -_INF < now < _INF:
            t = now
        else:
            t = check_number("now", now, lo=None)
        last = self._last_now
        if last is None:
            # First sample: start the level there, not at 0, so a connection
            # that starts lossy is not under-predicted for several intervals.
            self._level = x
            self._last_now = t
            self._n_updates = 1
            return
        if t < last:
            raise ValueError(f"now must not go backwards: got {now!r} after {last!r}")
        dt = t - last
        dt = max(dt, self._min_dt)
        a = self._alpha
        old = self._level
        level = a * x + (1.0 - a) * old
        ta = self._trend_alpha
        self._trend = ta * (level - old) / dt + (1.0 - ta) * self._trend
        self._level = level
        # Mean update interval, for the lag compensation; same smoothing as
        # the trend (intervals change slowly).
        self._mean_dt = dt if self._n_updates == 1 else ta * dt + (1.0 - ta) * self._mean_dt
        self._last_now = t
        self._n_updates += 1

    def predict_one(self, features: NetworkFeatures, *, now: float) -> float:
        """Predicted per-packet loss probability 50-100 ms ahead, in [0, 1].

        Reads state and ``features.rtt_us`` / ``features.rtt_var_us`` only.
        ``now`` is accepted for the `Policy` shape; the projection uses the
        intervals seen by `learn_one`.
        """
        p = self._level + self._trend_weight * self._trend * (
            self._horizon_s + self._lag_factor * self._mean_dt
        )
        rtt = features.rtt_us
        if rtt > 0.0:
            excess = features.rtt_var_us / rtt - self._jfloor
            if excess > 0.0:
                excess = min(excess, self._jspan)
                p += self._jw * excess
        if p <= 0.0:
            return 0.0
        if p >= 1.0:
            return 1.0
        return p

    # -- persistence ---------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Config and state as plain JSON-serialisable data."""
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "config": self.config.to_dict(),
            "level": self._level,
            "trend": self._trend,
            "mean_dt": self._mean_dt,
            "last_now": self._last_now,
            "n_updates": self._n_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned.

        The saved config must equal this predictor's config (build the
        predictor with ``EwmaLossConfig.from_dict(state["config"])`` first, or
        use `from_state_dict`); otherwise ``ValueError``.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"state version must be {STATE_VERSION}, got {version!r}")
        cfg = EwmaLossConfig.from_dict(dict(state.get("config", {})))
        if cfg != self.config:
            raise ValueError(f"state config {cfg} differs from this predictor's {self.config}")
        level = check_number("level", state["level"], hi=1.0)
        trend = check_number("trend", state["trend"], lo=None)
        mean_dt = check_number("mean_dt", state["mean_dt"])
        last_now = state["last_now"]
        if last_now is not None:
            last_now = check_number("last_now", last_now, lo=None)
        n_updates = state["n_updates"]
        if isinstance(n_updates, bool) or not isinstance(n_updates, int) or n_updates < 0:
            raise ValueError(f"n_updates must be an int >= 0, got {n_updates!r}")
        if (last_now is None) != (n_updates == 0):
            raise ValueError("last_now must be None exactly when n_updates == 0")
        self._level = level
        self._trend = trend
        self._mean_dt = mean_dt
        self._last_now = last_now
        self._n_updates = n_updates

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> EwmaLossPredictor:
        """Build a predictor from `state_dict` output (config included)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        pred = cls(EwmaLossConfig.from_dict(dict(state.get("config", {}))))
        pred.load_state_dict(state)
        return pred

    def __repr__(self) -> str:
        return (
            f"EwmaLossPredictor(level={self._level:.4g}, trend={self._trend:.4g}/s, "
            f"n_updates={self._n_updates})"
        )
