"""The learned contextual path selector: features, prior verification, online correction, loading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.hub.manifest import write_manifest
from oxidize_ml.paths import calculate_path_reward
from oxidize_ml.paths.learned import (
    FEATURE_VERSION,
    INPUT_NAMES,
    N_INPUTS,
    LearnedPathConfig,
    LearnedPathSelector,
    PathFeatureState,
    load_learned_selector,
    probe_inputs,
    verify_prior,
)
from oxidize_ml.runtime.configs import PathMlpConfig
from oxidize_ml.runtime.weights import encode_weights
from oxidize_ml.types import PathId, PathMetrics, TrafficContext

MR = INPUT_NAMES.index("metrics_reward")


class MetricPrior:
    """Stand-in prior: the reward the latest metrics would give (a correct ranking)."""

    def forward_batch(self, xs: np.ndarray) -> np.ndarray:
        return np.asarray(xs)[:, MR : MR + 1]


def _m(
    path: PathId, rtt_ms: float, *, mbps: float = 20.0, loss: float = 0.0, avail: float = 1.0
) -> PathMetrics:
    return PathMetrics(
        path_id=path,
        rtt_us=rtt_ms * 1000,
        rtt_var_us=1000,
        bandwidth_bps=mbps * 1e6,
        loss_rate=loss,
        availability=avail,
    )


def test_feature_rows_layout_and_metrics_reward() -> None:
    st = PathFeatureState()
    m = _m(PathId.Secondary, 30, mbps=40, loss=0.01)
    rows = st.update(m)
    assert rows.shape == (5, N_INPUTS) and rows.dtype == np.float32
    onehot = rows[:, INPUT_NAMES.index("ctx_gaming") : INPUT_NAMES.index("ctx_web") + 1]
    assert np.array_equal(onehot, np.eye(5))
    for c in TrafficContext:
        want = calculate_path_reward(c, m.rtt_us, m.loss_rate, m.bandwidth_bps / 1e6)
        assert rows[int(c), MR] == pytest.approx(want, abs=1e-6)
    # first update: no change yet, the EWMA starts at the value
    assert np.all(rows[:, INPUT_NAMES.index("d_latency_score")] == 0.0)
    lat = INPUT_NAMES.index("latency_score")
    assert rows[0, INPUT_NAMES.index("ewma_latency_score")] == rows[0, lat]
    worse = st.update(_m(PathId.Secondary, 130, mbps=40, loss=0.01))
    d = worse[0, INPUT_NAMES.index("d_latency_score")]
    assert d == pytest.approx(worse[0, lat] - rows[0, lat], abs=1e-6) and d < 0
    ew = worse[0, INPUT_NAMES.index("ewma_latency_score")]
    assert worse[0, lat] < ew < rows[0, lat]  # smoothed: between the old and new score
    # other paths keep their own memory
    other = st.update(_m(PathId.Primary, 130))
    assert other[0, INPUT_NAMES.index("d_latency_score")] == 0.0


def test_verify_prior_refuses_bad_models() -> None:
    out = verify_prior(MetricPrior())
    assert out.shape == (probe_inputs().shape[0],)
    verify_prior(MetricPrior(), out.tolist())  # its own recorded outputs pass

    class Inverted:
        def forward_batch(self, xs: np.ndarray) -> np.ndarray:
            return 1.0 - np.asarray(xs)[:, MR : MR + 1]

    class NaNs:
        def forward_batch(self, xs: np.ndarray) -> np.ndarray:
            return np.full((len(xs), 1), np.nan)

    class Wide:
        def forward_batch(self, xs: np.ndarray) -> np.ndarray:
            return np.zeros((len(xs), 2))

    with pytest.raises(ValueError, match="failed one"):
        verify_prior(Inverted())
    with pytest.raises(ValueError, match="non-finite"):
        verify_prior(NaNs())
    with pytest.raises(ValueError, match=r"\[n, 1\]"):
        verify_prior(Wide())
    with pytest.raises(ValueError, match="recorded probe outputs"):
        verify_prior(MetricPrior(), (out + 1e-3).tolist())
    with pytest.raises(ValueError, match="failed one"):
        LearnedPathSelector(Inverted())


def test_config_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match="prior_strength"):
        LearnedPathConfig(prior_strength=0.0)
    with pytest.raises(ValueError, match="discount_gamma"):
        LearnedPathConfig(discount_gamma=0.0)
    with pytest.raises(ValueError, match="exploration_alpha"):
        LearnedPathConfig(exploration_alpha=-1.0)
    with pytest.raises(TypeError, match="LearnedPathConfig"):
        LearnedPathSelector(MetricPrior(), config=object())  # type: ignore[arg-type]


def test_selects_by_prior_per_traffic_type_and_skips_unavailable() -> None:
    sel = LearnedPathSelector(MetricPrior())
    sel.update_metrics(_m(PathId.Primary, 15, mbps=5), now=0.0)  # fast, thin
    sel.update_metrics(_m(PathId.Secondary, 90, mbps=150), now=0.0)  # slow, fat
    assert sel.select(TrafficContext.Gaming, now=0.0) is PathId.Primary
    assert sel.select(TrafficContext.Bulk, now=0.0) is PathId.Secondary
    sel.update_metrics(_m(PathId.Primary, 15, mbps=5, avail=0.0), now=1.0)
    assert sel.select(TrafficContext.Gaming, now=1.0) is PathId.Secondary
    assert set(sel.prior(TrafficContext.Gaming)) == {"Primary", "Secondary"}
    json.dumps(sel.stats())


def test_online_correction_overrides_a_wrong_prior() -> None:
    """Metrics make Primary look best, but the rewards fed back say it is useless: the
    discounted correction moves the traffic to Secondary and keeps it there."""
    sel = LearnedPathSelector(
        MetricPrior(), LearnedPathConfig(prior_strength=5.0, exploration_alpha=0.02)
    )
    ctx = TrafficContext.VoIP
    sel.update_metrics(_m(PathId.Primary, 10), now=0.0)
    sel.update_metrics(_m(PathId.Secondary, 60), now=0.0)
    true = {PathId.Primary: 0.05, PathId.Secondary: 0.6}
    picks = []
    for t in range(200):
        p = sel.select(ctx, now=float(t))
        picks.append(p)
        sel.update_reward(p, ctx, true[p], now=float(t))
    assert picks[0] is PathId.Primary  # the prior's choice first
    assert picks[-100:].count(PathId.Secondary) >= 90
    # a stationary prior without the correction would never leave Primary
    assert sum(p is PathId.Primary for p in picks) < 40


def test_same_seed_same_choices() -> None:
    def run(seed: int) -> list[PathId]:
        rng = np.random.default_rng(0)
        sel = LearnedPathSelector(MetricPrior(), seed=seed)
        out = []
        for t in range(60):
            for p in (PathId.Primary, PathId.Secondary, PathId.Tertiary):
                sel.update_metrics(
                    _m(p, float(rng.uniform(10, 100)), mbps=float(rng.uniform(1, 100))),
                    now=float(t),
                )
            c = TrafficContext(int(rng.integers(0, 5)))
            path = sel.select(c, now=float(t))
            out.append(path)
            sel.update_reward(path, c, float(rng.uniform()), now=float(t))
        return out

    assert run(3) == run(3)


# ------------------------------------------------------------------ loading from a model dir


def _metric_weights() -> dict[str, np.ndarray]:
    """A one-unit MLP computing relu(metrics_reward): a valid prior in weight-file form."""
    w0 = np.zeros((1, N_INPUTS), dtype=np.float32)
    w0[0, MR] = 1.0
    return {
        "layers.0.weight": w0,
        "layers.0.bias": np.zeros(1, np.float32),
        "layers.1.weight": np.ones((1, 1), np.float32),
        "layers.1.bias": np.zeros(1, np.float32),
    }


def make_path_model_dir(
    d: Path,
    *,
    default_enabled: bool = True,
    inputs: list[str] | None = None,
    probes: list[float] | None = None,
    online: dict[str, float] | None = None,
) -> Path:
    d.mkdir(parents=True)
    cfg = PathMlpConfig(n_inputs=N_INPUTS, hidden=1, n_hidden_layers=1)
    (d / "path_selector.safetensors").write_bytes(encode_weights(_metric_weights(), cfg))
    metrics: dict[str, object] = {
        "default_enabled": default_enabled,
        "online_config": online or {"exploration_alpha": 0.0},
    }
    if probes is not None:
        metrics["probe_outputs"] = probes
    write_manifest(
        d,
        {
            "path_selector": {
                "version": "t1",
                "kind": "path_mlp",
                "files": {"safetensors": "path_selector.safetensors"},
                "inputs": inputs if inputs is not None else list(INPUT_NAMES),
                "training": {"path_feature_version": FEATURE_VERSION},
                "metrics": metrics,
            }
        },
        package_version="test",
    )
    return d


def test_load_from_model_dir_with_probes_and_online_config(tmp_path: Path) -> None:
    probes = verify_prior(MetricPrior()).tolist()
    d = make_path_model_dir(
        tmp_path / "m", probes=probes, online={"exploration_alpha": 0.0, "prior_strength": 7.0}
    )
    sel, why = load_learned_selector(d, seed=1)
    assert why == "loaded" and isinstance(sel, LearnedPathSelector)
    assert sel.version == "t1"  # the manifest's, for the engine's loaded-models list
    assert sel.learned_config.prior_strength == 7.0  # chosen at training, from the manifest
    sel.update_metrics(_m(PathId.Primary, 15, mbps=5), now=0.0)
    sel.update_metrics(_m(PathId.Secondary, 90, mbps=150), now=0.0)
    assert sel.select(TrafficContext.Gaming, now=0.0) is PathId.Primary
    want = calculate_path_reward(TrafficContext.Bulk, 90_000, 0.0, 150.0)
    assert sel.prior(TrafficContext.Bulk)["Secondary"] == pytest.approx(want, abs=1e-5)
    # direct weight-file loading too
    sel2 = LearnedPathSelector.from_weights(d / "path_selector.safetensors")
    assert sel2.name == "learned" and sel2.is_learned


def test_load_refusals_never_raise(tmp_path: Path) -> None:
    probes = verify_prior(MetricPrior())
    bad = make_path_model_dir(tmp_path / "a", probes=(probes + 0.01).tolist())
    sel, why = load_learned_selector(bad)
    assert sel is None and "probe" in why
    other = make_path_model_dir(tmp_path / "b", inputs=[f"x{i}" for i in range(N_INPUTS)])
    sel, why = load_learned_selector(other)
    assert sel is None and why.startswith("schema_mismatch")
    nd = make_path_model_dir(tmp_path / "c", default_enabled=False)
    assert load_learned_selector(nd, only_default_enabled=True) == (None, "not default")
    assert load_learned_selector(nd)[0] is not None
    tampered = make_path_model_dir(tmp_path / "d")
    p = tampered / "path_selector.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    sel, why = load_learned_selector(tampered)
    assert sel is None and "checksum" in why
    sel, why = load_learned_selector(tmp_path / "nowhere")
    assert sel is None and why.startswith("missing")


def test_selection_is_an_argmax_over_cached_scores() -> None:
    """select never calls the model: scores are computed when metrics or rewards arrive."""

    class Counting(MetricPrior):
        calls = 0

        def forward_batch(self, xs: np.ndarray) -> np.ndarray:
            Counting.calls += 1
            return super().forward_batch(xs)

    prior = Counting()
    sel = LearnedPathSelector(prior)
    sel.update_metrics(_m(PathId.Primary, 20), now=0.0)
    sel.update_metrics(_m(PathId.Secondary, 40), now=0.0)
    before = Counting.calls
    for t in range(50):
        p = sel.select(TrafficContext.Web, now=float(t))
        sel.update_reward(p, TrafficContext.Web, 0.5, now=float(t))
    assert Counting.calls == before
    assert all(math.isfinite(v) for v in sel.scores(TrafficContext.Web).values())


def test_a_nan_prior_scores_zero_instead_of_winning() -> None:
    class NanOnOddLoss(MetricPrior):
        def forward_batch(self, xs: np.ndarray) -> np.ndarray:
            out = super().forward_batch(xs).copy()
            out[np.isclose(xs[:, INPUT_NAMES.index("loss_rate")], 0.037)] = np.nan
            return out

    sel = LearnedPathSelector(NanOnOddLoss())
    sel.update_metrics(_m(PathId.Primary, 10, loss=0.037), now=0.0)  # NaN prior
    sel.update_metrics(_m(PathId.Secondary, 200, mbps=1), now=0.0)
    assert sel.prior(TrafficContext.Gaming)["Primary"] == 0.0
    assert sel.select(TrafficContext.Gaming, now=0.0) is PathId.Secondary


def test_fallbacks_without_available_paths() -> None:
    sel = LearnedPathSelector(MetricPrior())
    assert sel.select(TrafficContext.Web, now=0.0) is PathId.Primary  # nothing known
    sel.update_metrics(_m(PathId.Primary, 80), now=0.0)
    sel.update_metrics(_m(PathId.Tertiary, 10), now=0.0)
    assert sel.select(TrafficContext.Web, now=0.0) is PathId.Tertiary
    sel.update_metrics(_m(PathId.Tertiary, 10, avail=0.0), now=1.0)
    sel.update_metrics(_m(PathId.Primary, 80, avail=0.0), now=1.0)
    # none available: stay on the path last used for this traffic type
    assert sel.select(TrafficContext.Web, now=1.0) is PathId.Tertiary
    assert sel.select(TrafficContext.Gaming, now=1.0) is PathId.Primary  # never used: Primary
    sel.update_metrics(_m(PathId.Primary, 80), now=2.0)  # back up
    assert sel.select(TrafficContext.Web, now=2.0) is PathId.Primary
    assert sel.stats()["per_context"]["Web"]["selections"] == {
        "Primary": 2,
        "Secondary": 0,
        "Tertiary": 2,
        "Quaternary": 0,
    }
