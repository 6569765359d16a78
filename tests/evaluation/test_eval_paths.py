"""Tests of the path-selection evaluation (oxidize_ml.evaluation.paths), quick and small."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from oxidize_ml.evaluation import paths
from oxidize_ml.paths import RoundRobinPathSelector
from oxidize_ml.types import PathId, PathMetrics, TrafficContext


@pytest.fixture(scope="module")
def degrading():
    return paths.run(seed=0, quick=True, scenarios=["degrading"], n_seeds=2, episode_steps=220)


def test_oracle_has_zero_regret(degrading):
    s = degrading.score("degrading", paths.ORACLE)
    assert s.final_regret == 0.0
    assert s.regret_per_step == 0.0
    assert s.best_share == 1.0
    mean, _sd = degrading.regret_curves["degrading"][paths.ORACLE]
    assert max(mean) == 0.0


def test_ml_selector_beats_round_robin_on_degrading_paths(degrading):
    ml = degrading.score("degrading", "ucb1")
    rr = degrading.score("degrading", "round_robin")
    assert ml.final_regret < 0.5 * rr.final_regret
    assert ml.mean_reward > rr.mean_reward
    # every other selector has nonnegative regret, and regret curves are nondecreasing
    for sel in degrading.selectors:
        mean = np.asarray(degrading.regret_curves["degrading"][sel][0])
        assert np.all(np.diff(mean) >= -1e-12), sel


def test_result_shapes_and_serialisation(degrading, tmp_path):
    assert degrading.selectors == (*paths.BUILTIN, paths.ORACLE)
    ch = degrading.choices["degrading"]
    assert set(ch) == {"best", *degrading.selectors}
    assert all(len(v) == 220 for v in ch.values())
    assert ch["best"] == ch[paths.ORACLE]
    json.dumps(degrading.to_dict(), allow_nan=False)
    md = degrading.markdown()
    assert "| degrading | ucb1 |" in md and "Regret per step by traffic type" in md
    assert degrading.headline()[0].startswith("Paths:")
    pytest.importorskip("matplotlib")
    files = paths.plot(degrading, tmp_path)
    assert len(files) == 2 and all(f.read_bytes()[:4] == b"\x89PNG" for f in files)


def test_min_rtt_selector_follows_lowest_available_rtt():
    sel = paths.MinRttPathSelector()
    sel.update_metrics(PathMetrics(path_id=PathId.Primary, rtt_us=50_000), now=0.0)
    sel.update_metrics(PathMetrics(path_id=PathId.Secondary, rtt_us=20_000), now=0.0)
    assert sel.select(TrafficContext.Gaming, now=0.0) is PathId.Secondary
    # the fast path goes down: the next best available path is chosen
    sel.update_metrics(
        PathMetrics(path_id=PathId.Secondary, rtt_us=20_000, availability=0.0), now=1.0
    )
    assert sel.select(TrafficContext.Gaming, now=1.0) is PathId.Primary


def test_passed_in_selectors_and_name_checks():
    res = paths.run(
        seed=1,
        quick=True,
        scenarios=["stable"],
        n_seeds=1,
        episode_steps=30,
        selectors={"rr2": lambda seed: RoundRobinPathSelector(seed=seed)},
        include_oracle=False,
    )
    assert res.selectors == (*paths.BUILTIN, "rr2")
    # paired episodes: the same selector type on the same episode scores identically
    mine = dataclasses.replace(res.score("stable", "rr2"), selector="round_robin")
    assert mine == res.score("stable", "round_robin")
    with pytest.raises(ValueError, match="taken"):
        paths.run(seed=0, quick=True, selectors={"ucb1": lambda seed: None})
    with pytest.raises(ValueError, match="unknown path scenarios"):
        paths.run(seed=0, quick=True, scenarios=["nowhere"])


def test_same_seed_same_result():
    a = paths.run(seed=2, quick=True, scenarios=["primary-fails"], n_seeds=1, episode_steps=40)
    b = paths.run(seed=2, quick=True, scenarios=["primary-fails"], n_seeds=1, episode_steps=40)
    assert a.scores == b.scores
    assert a.choices == b.choices
