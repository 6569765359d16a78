"""evaluate_path_traces: trace-driven path evaluation (traces are built at run time)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from oxidize_ml.evaluation import paths
from oxidize_ml.hub.manifest import write_manifest
from oxidize_ml.paths import RoundRobinPathSelector
from oxidize_ml.paths.learned import FEATURE_VERSION, INPUT_NAMES, N_INPUTS, verify_prior
from oxidize_ml.runtime.configs import PathMlpConfig
from oxidize_ml.runtime.weights import encode_weights

MR = INPUT_NAMES.index("metrics_reward")
NAMES = {"ucb1", "ucb1_stationary", "min_rtt", "round_robin", "learned", "default"}


def _trace(path: Path, gap_ms: list[int], length_ms: int = 2000) -> Path:
    """A Mahimahi trace: one delivery opportunity every gap (cycling through ``gap_ms``)."""
    t, out, k = 0, [], 0
    while t < length_ms:
        t += gap_ms[k % len(gap_ms)]
        out.append(str(t))
        k += 1
    path.write_text("\n".join(out) + "\n", encoding="ascii")
    return path


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("traces")
    return [
        _trace(d / "fast.trace", [1]),
        _trace(d / "bursty.trace", [1, 1, 1, 30]),
        _trace(d / "slow.trace", [6]),
    ]


@pytest.fixture(scope="module")
def result(traces: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    empty = tmp_path_factory.mktemp("no-model")  # no path_selector model: learned is None
    return paths.evaluate_path_traces(
        traces, steps=40, seeds=2, seed=0, progress=False, model_dir=empty
    )


def test_summary_has_exactly_the_agreed_shape(result: dict) -> None:
    assert set(result["summary"]) == {"selectors"}
    sel = result["summary"]["selectors"]
    assert set(sel) == NAMES
    assert all(set(v) == {"regret_per_step"} for v in sel.values())
    assert sel["learned"]["regret_per_step"] is None
    assert any("learned: not evaluated" in n for n in result["notes"])
    for name in NAMES - {"learned"}:
        r = sel[name]["regret_per_step"]
        assert isinstance(r, float) and r >= 0.0
    json.dumps(result, allow_nan=False)


def test_breakdowns_are_consistent(result: dict) -> None:
    det = result["selectors"]["min_rtt"]
    assert set(det["per_family"]) == set(result["families"])
    assert len(det["episode_regret_per_step"]) == 4 * 2  # 4 families x 2 seeds
    # equal-length episodes: the overall figure is the mean of the per-episode ones
    assert det["regret_per_step"] == pytest.approx(np.mean(det["episode_regret_per_step"]))
    lo, hi = det["ci95"]
    assert lo <= det["regret_per_step"] <= hi
    assert set(det["per_traffic_type"]) == {"Gaming", "VoIP", "Streaming", "Bulk", "Web"}
    # round-robin ignores everything it measures: it cannot beat the metric-reading min-RTT
    # on paths this different (1, 3.5 and 6 ms per opportunity)
    rr = result["summary"]["selectors"]["round_robin"]["regret_per_step"]
    assert rr > result["summary"]["selectors"]["min_rtt"]["regret_per_step"]
    assert result["target"]["met"] in (True, False)
    assert set(result["target"]["per_traffic_type"]) <= set(det["per_traffic_type"])


def test_same_seed_same_result_and_extra_selectors(traces: list[Path], tmp_path: Path) -> None:
    kw = {"steps": 25, "seeds": 1, "seed": 3, "progress": False, "model_dir": tmp_path}
    a = paths.evaluate_path_traces(traces[:2], **kw)
    b = paths.evaluate_path_traces(
        traces[:2], **kw, extra_selectors={"rr2": lambda s: RoundRobinPathSelector(seed=s)}
    )
    assert a["summary"] == b["summary"]
    # paired episodes: a copy of round-robin scores exactly like round-robin
    assert (
        b["selectors"]["rr2"]["regret_per_step"] == b["selectors"]["round_robin"]["regret_per_step"]
    )
    assert "rr2" not in b["summary"]["selectors"]
    with pytest.raises(ValueError, match="taken"):
        paths.evaluate_path_traces(traces[:2], **kw, extra_selectors={"min_rtt": lambda s: None})


class MetricPrior:
    """Stand-in prior: the reward the latest metrics would give."""

    def forward_batch(self, xs: np.ndarray) -> np.ndarray:
        return np.asarray(xs)[:, MR : MR + 1]


def _model_dir(d: Path) -> Path:
    """A model directory whose path_selector computes relu(metrics_reward)."""
    d.mkdir(parents=True)
    cfg = PathMlpConfig(n_inputs=N_INPUTS, hidden=1, n_hidden_layers=1)
    w0 = np.zeros((1, N_INPUTS), dtype=np.float32)
    w0[0, MR] = 1.0
    tensors = {
        "layers.0.weight": w0,
        "layers.0.bias": np.zeros(1, np.float32),
        "layers.1.weight": np.ones((1, 1), np.float32),
        "layers.1.bias": np.zeros(1, np.float32),
    }
    (d / "path_selector.safetensors").write_bytes(encode_weights(tensors, cfg))
    write_manifest(
        d,
        {
            "path_selector": {
                "version": "t1",
                "kind": "path_mlp",
                "files": {"safetensors": "path_selector.safetensors"},
                "inputs": list(INPUT_NAMES),
                "training": {"path_feature_version": FEATURE_VERSION},
                "metrics": {
                    "default_enabled": True,
                    "probe_outputs": verify_prior(MetricPrior()).tolist(),
                },
            }
        },
        package_version="test",
    )
    return d


def test_learned_selector_from_a_model_dir(traces: list[Path], tmp_path: Path) -> None:
    d = _model_dir(tmp_path / "m")
    res = paths.evaluate_path_traces(traces, steps=30, seeds=1, progress=False, model_dir=d)
    r = res["summary"]["selectors"]["learned"]["regret_per_step"]
    assert isinstance(r, float) and r >= 0.0
    assert "learned" in res["paired_vs_default"]
    rule = paths.qualifies_as_default(res, candidate="learned", current="ucb1")
    assert set(rule) >= {"qualifies", "confident", "worse_than_allowed", "paired"}


def test_bad_traces_name_the_file(traces: list[Path], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.trace"
    garbage.write_text("12\nnot a number\n", encoding="ascii")
    with pytest.raises(ValueError, match="garbage.trace"):
        paths.evaluate_path_traces([traces[0], garbage], steps=5, seeds=1, progress=False)
    missing = tmp_path / "missing.trace"
    with pytest.raises(ValueError, match="missing.trace"):
        paths.evaluate_path_traces([traces[0], missing], steps=5, seeds=1, progress=False)
    a_dir = tmp_path / "a-directory"
    a_dir.mkdir()
    with pytest.raises(ValueError, match="a-directory"):
        paths.evaluate_path_traces([traces[0], a_dir], steps=5, seeds=1, progress=False)
    binary = tmp_path / "binary.trace"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="binary.trace"):
        paths.evaluate_path_traces([traces[0], binary], steps=5, seeds=1, progress=False)


def test_argument_checks(traces: list[Path]) -> None:
    with pytest.raises(ValueError, match="2 to 4 traces"):
        paths.evaluate_path_traces(traces[:1], steps=5, seeds=1, progress=False)
    with pytest.raises(ValueError, match="2 to 4 traces"):
        paths.evaluate_path_traces([*traces, *traces], steps=5, seeds=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        paths.evaluate_path_traces(traces, steps=0, seeds=1, progress=False)
    with pytest.raises(ValueError, match="seeds"):
        paths.evaluate_path_traces(traces, steps=5, seeds=0, progress=False)
    with pytest.raises(TypeError, match="list"):
        paths.evaluate_path_traces(traces[0], steps=5, seeds=1, progress=False)  # type: ignore[arg-type]


def test_paired_bootstrap_and_default_rule() -> None:
    a = [0.05, 0.06, 0.055, 0.052, 0.058]
    b = [0.03, 0.031, 0.029, 0.035, 0.03]
    p = paths.paired_bootstrap(b, a, seed=0)
    assert p["high"] < 0.0 and p["low"] <= p["mean"] <= p["high"]
    assert p == paths.paired_bootstrap(b, a, seed=0)
    noisy = paths.paired_bootstrap([0.03, 0.09, 0.02, 0.08], [0.05, 0.05, 0.05, 0.05], seed=0)
    assert noisy["low"] < 0.0 < noisy["high"]
    with pytest.raises(ValueError, match="equal-length"):
        paths.paired_bootstrap([], [], seed=0)

    def sel(eps: list[float], ctx: dict[str, float], fam: dict[str, float]) -> dict:
        return {
            "episode_regret_per_step": eps,
            "per_traffic_type": ctx,
            "per_family": fam,
            "regret_per_step": float(np.mean(eps)),
        }

    res = {
        "config": {"seed": 0},
        "selectors": {
            "cur": sel(a, {"Gaming": 0.05, "Bulk": 0.05}, {"f": 0.05}),
            "good": sel(b, {"Gaming": 0.03, "Bulk": 0.03}, {"f": 0.03}),
            # better overall, but much worse on Bulk: the rule refuses it
            "lopsided": sel(b, {"Gaming": 0.01, "Bulk": 0.06}, {"f": 0.03}),
        },
    }
    assert paths.qualifies_as_default(res, candidate="good", current="cur")["qualifies"]
    lop = paths.qualifies_as_default(res, candidate="lopsided", current="cur")
    assert lop["confident"] and not lop["qualifies"]
    assert lop["worse_than_allowed"] and lop["worse_than_allowed"][0].startswith("Bulk")
    assert not paths.qualifies_as_default(res, candidate="cur", current="good")["qualifies"]


def test_river_linucb_runs_on_the_same_episodes(traces: list[Path], tmp_path: Path) -> None:
    if paths.river_available() is not None:
        res = paths.evaluate_path_traces(
            traces[:2], steps=10, seeds=1, progress=False, model_dir=tmp_path
        )
        assert paths.RIVER_NAME not in res["selectors"]
        assert any(n.startswith(paths.RIVER_NAME) for n in res["notes"])
        pytest.skip("river is not installed (the bandits extra)")
    res = paths.evaluate_path_traces(traces, steps=40, seeds=1, progress=False, model_dir=tmp_path)
    r = res["selectors"][paths.RIVER_NAME]["regret_per_step"]
    assert r >= 0.0 and paths.RIVER_NAME not in res["summary"]["selectors"]
    off = paths.evaluate_path_traces(
        traces, steps=40, seeds=1, progress=False, model_dir=tmp_path, library_bandit=False
    )
    assert paths.RIVER_NAME not in off["selectors"]
    assert off["summary"] == res["summary"]  # the comparison does not disturb the others


def test_river_adapter_skips_unavailable_paths() -> None:
    pytest.importorskip("river")
    from oxidize_ml.types import PathId, PathMetrics, TrafficContext

    sel = paths.RiverLinUcbPathSelector(seed=0)
    assert sel.select(TrafficContext.Web, now=0.0) is PathId.Primary  # nothing known yet
    sel.update_metrics(
        PathMetrics(path_id=PathId.Primary, rtt_us=20_000, availability=0.0), now=0.0
    )
    sel.update_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=50_000), now=0.0)
    for t in range(20):
        p = sel.select(TrafficContext.Web, now=float(t))
        assert p is PathId.Secondary
        sel.update_reward(p, TrafficContext.Web, 0.5, now=float(t))


def test_metrics_reward_heuristic_is_always_compared(result: dict) -> None:
    det = result["selectors"]["metrics_reward"]
    assert det["regret_per_step"] >= 0.0
    assert "metrics_reward" not in result["summary"]["selectors"]
    # it reads the metrics against the reward function: never worse than ignoring them
    assert det["regret_per_step"] < result["selectors"]["round_robin"]["regret_per_step"]


def test_river_adapter_is_a_path_policy_the_engine_takes() -> None:
    # One policy protocol: the comparison bandit swaps into the engine like any selector.
    pytest.importorskip("river")
    from oxidize_ml import EngineConfig, MlEngine
    from oxidize_ml.policy import PathPolicy
    from oxidize_ml.types import PathId, PathMetrics, TrafficContext

    sel = paths.RiverLinUcbPathSelector(seed=0)
    assert isinstance(sel, PathPolicy)
    engine = MlEngine(EngineConfig(load_default_models=False))
    engine.replace_policy("path_selector", sel)
    engine.update_path_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=20_000), now=1.0)
    engine.update_path_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=80_000), now=1.0)
    chosen = engine.select_path(TrafficContext.Gaming, now=1.0)
    assert chosen in (PathId.Primary, PathId.Secondary)
    engine.update_path_reward(chosen, TrafficContext.Gaming, 0.7, now=1.1)
    st = engine.stats().path_selector
    assert st.policy == paths.RIVER_NAME and st.model_loaded and st.decisions == 1
