"""Tests for the path selectors (oxidize_ml.paths.selector)."""

from __future__ import annotations

import doctest
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pytest

import oxidize_ml.paths.selector as selector_module
from oxidize_ml.paths import (
    BasePathSelector,
    MlPathSelector,
    PathSelectorConfig,
    RoundRobinPathSelector,
    StationaryUcb1PathSelector,
)
from oxidize_ml.policy import Policy
from oxidize_ml.types import PathId, PathMetrics, TrafficContext

ALL_SELECTORS = (MlPathSelector, StationaryUcb1PathSelector, RoundRobinPathSelector)
UCB_SELECTORS = (MlPathSelector, StationaryUcb1PathSelector)
G = TrafficContext.Gaming


def add_paths(sel: BasePathSelector, n: int, **kw) -> None:
    for p in list(PathId)[:n]:
        sel.update_metrics(PathMetrics(path_id=p, rtt_us=20_000.0, **kw), now=0.0)


def run_bandit(
    sel: BasePathSelector,
    means: Callable[[int], Sequence[float]],
    steps: int,
    seed: int,
    ctx: TrafficContext = G,
) -> np.ndarray:
    """Select, draw a Bernoulli reward from the chosen path's mean, feed it back."""
    rng = np.random.default_rng(seed)
    picks = np.empty(steps, dtype=np.int64)
    for t in range(steps):
        path = sel.select(ctx, now=float(t))
        picks[t] = int(path)
        reward = float(rng.random() < means(t)[int(path)])
        sel.update_reward(path, ctx, reward, now=float(t))
    return picks


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_policy_shape_and_names(cls):
    sel = cls()
    assert isinstance(sel, Policy)
    assert sel.is_learned is False
    assert {MlPathSelector: "ucb1", StationaryUcb1PathSelector: "ucb1_stationary",
            RoundRobinPathSelector: "round_robin"}[cls] == sel.name  # fmt: skip


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_no_metrics_means_primary(cls):
    sel = cls()
    for ctx in TrafficContext:
        assert sel.select(ctx, now=0.0) is PathId.Primary
    sel.update_reward(PathId.Primary, G, 0.5, now=0.0)
    assert sel.select(G, now=1.0) is PathId.Primary
    assert sel.stats()["pulls"] == len(TrafficContext) + 1


@pytest.mark.parametrize("cls", UCB_SELECTORS)
def test_every_path_tried_before_exploitation(cls):
    sel = cls()
    add_paths(sel, 4)
    # Path Tertiary is perfect; a greedy selector would stick to it at once.
    picks = run_bandit(sel, lambda t: (0.0, 0.0, 1.0, 0.0), 4, seed=0)
    assert sorted(picks.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("cls", UCB_SELECTORS)
def test_burn_in_rotates_when_rewards_are_late(cls):
    sel = cls()
    add_paths(sel, 3)
    first = [sel.select(G, now=0.0) for _ in range(9)]
    assert Counter(first) == {PathId.Primary: 3, PathId.Secondary: 3, PathId.Tertiary: 3}
    assert first[:3] == [PathId.Primary, PathId.Secondary, PathId.Tertiary]


@pytest.mark.parametrize("cls", UCB_SELECTORS)
def test_path_whose_reward_never_arrives_is_not_captured(cls):
    # The earlier engine gave an arm without reward an infinite score forever.
    sel = cls()
    add_paths(sel, 3)
    picks = []
    for t in range(300):
        path = sel.select(G, now=float(t))
        picks.append(path)
        if path is not PathId.Tertiary:
            sel.update_reward(path, G, 0.5, now=float(t))
    share = picks.count(PathId.Tertiary) / len(picks)
    assert 0.0 < share <= 1 / 3 + 0.01


def test_per_context_independence():
    sel = MlPathSelector(seed=3)
    add_paths(sel, 3)
    run_bandit(sel, lambda t: (0.1, 0.9, 0.1), 400, seed=1, ctx=TrafficContext.Gaming)
    voip_before = sel.ucb_scores(TrafficContext.VoIP)
    picks_bulk = run_bandit(sel, lambda t: (0.1, 0.1, 0.9), 400, seed=2, ctx=TrafficContext.Bulk)
    # Bulk starts its own burn-in although Gaming is warm ...
    assert sorted(picks_bulk[:3].tolist()) == [0, 1, 2]
    # ... and converges to its own best path.
    assert np.mean(picks_bulk[-200:] == 2) > 0.8
    st = sel.stats()["per_context"]
    assert st["Gaming"]["selections"]["Secondary"] > 300
    assert st["Bulk"]["selections"]["Tertiary"] > 300
    assert st["VoIP"]["pulls"] == 0
    # Rewards of other contexts never touch VoIP's statistics.
    assert sel.ucb_scores(TrafficContext.VoIP) == voip_before


def test_log_term_uses_the_contexts_own_total():
    cfg = PathSelectorConfig(contextual_bonus_weight=0.0)
    sel = MlPathSelector(cfg)
    add_paths(sel, 2)
    run_bandit(sel, lambda t: (0.5, 0.5), 500, seed=0, ctx=TrafficContext.Gaming)
    run_bandit(sel, lambda t: (0.2, 0.6), 5, seed=1, ctx=TrafficContext.VoIP)
    disc = sel.stats()["per_context"]["VoIP"]["discounted"]
    total = sum(d["count"] for d in disc.values())
    assert total < 5  # VoIP's own (discounted) pulls, not the 505 of all contexts
    scores = sel.ucb_scores(TrafficContext.VoIP)
    for name in ("Primary", "Secondary"):
        d = disc[name]
        expected = d["mean"] + cfg.exploration_c * math.sqrt(math.log(total) / d["count"])
        assert scores[name] == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("cls", UCB_SELECTORS)
def test_converges_to_best_arm_on_stationary_bernoulli(cls):
    means = (0.3, 0.5, 0.8, 0.4)
    shares = []
    for seed in range(3):
        sel = cls(seed=seed)
        add_paths(sel, 4)
        picks = run_bandit(sel, lambda t: means, 2000, seed=seed)
        shares.append(np.mean(picks[-1000:] == 2))
    assert np.mean(shares) > 0.75


def test_round_robin_does_not_learn():
    sel = RoundRobinPathSelector()
    add_paths(sel, 4)
    picks = run_bandit(sel, lambda t: (0.3, 0.5, 0.8, 0.4), 400, seed=0)
    assert Counter(picks.tolist()) == {0: 100, 1: 100, 2: 100, 3: 100}
    assert picks[:8].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert sel.stats()["mean_reward"]["Tertiary"] > sel.stats()["mean_reward"]["Primary"]


def test_discounting_abandons_a_degraded_path_faster_than_stationary_ucb1():
    # Primary is best for 1000 rewards, then drops far below the others.
    def means(t: int) -> tuple[float, float, float]:
        return (0.8, 0.6, 0.5) if t < 1000 else (0.2, 0.6, 0.5)

    stale = {MlPathSelector: [], StationaryUcb1PathSelector: []}
    for cls, counts in stale.items():
        for seed in range(4):
            sel = cls(seed=seed)
            add_paths(sel, 3)
            picks = run_bandit(sel, means, 1300, seed=100 + seed)
            assert np.mean(picks[500:1000] == 0) > 0.6  # it had found Primary
            counts.append(int(np.sum(picks[1000:1300] == 0)))
    discounted = np.mean(stale[MlPathSelector])
    stationary = np.mean(stale[StationaryUcb1PathSelector])
    # Measured: about 36 against 132 pulls of the degraded path in 300.
    assert discounted < 70
    assert stationary > 2 * discounted


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_unavailable_paths_never_chosen(cls):
    sel = cls(seed=5)
    add_paths(sel, 3)
    # Make Secondary clearly best first, then take it away.
    run_bandit(sel, lambda t: (0.2, 0.9, 0.2), 300, seed=0)
    sel.update_metrics(PathMetrics(PathId.Secondary, rtt_us=20_000, availability=0.05), now=1.0)
    assert sel.available_paths == (PathId.Primary, PathId.Tertiary)
    picks = run_bandit(sel, lambda t: (0.2, 0.9, 0.2), 300, seed=1)
    assert 1 not in set(picks.tolist())
    # At exactly the threshold the path is available again.
    sel.update_metrics(PathMetrics(PathId.Secondary, rtt_us=20_000, availability=0.1), now=2.0)
    picks = run_bandit(sel, lambda t: (0.2, 0.9, 0.2), 300, seed=2)
    assert 1 in set(picks.tolist())


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_nothing_available_keeps_last_choice_or_primary(cls):
    sel = cls()
    sel.update_metrics(PathMetrics(PathId.Tertiary, rtt_us=1_000, availability=0.0), now=0.0)
    assert sel.select(G, now=0.0) is PathId.Primary  # never chose anything
    sel.update_metrics(PathMetrics(PathId.Tertiary, rtt_us=1_000, availability=1.0), now=1.0)
    assert sel.select(G, now=1.0) is PathId.Tertiary
    sel.update_metrics(PathMetrics(PathId.Tertiary, rtt_us=1_000, availability=0.0), now=2.0)
    assert sel.select(G, now=2.0) is PathId.Tertiary
    assert sel.select(TrafficContext.Web, now=2.0) is PathId.Primary


def test_metrics_lookup():
    sel = MlPathSelector()
    assert sel.metrics(PathId.Secondary) is None
    m = PathMetrics(PathId.Secondary, rtt_us=12_000)
    sel.update_metrics(m, now=0.0)
    assert sel.metrics(PathId.Secondary) is m
    assert sel.latest_metrics(PathId.Secondary) is m
    assert sel.known_paths == (PathId.Secondary,)
    with pytest.raises(ValueError, match="path"):
        sel.metrics(9)  # type: ignore[arg-type]


def test_new_path_is_tried_when_it_appears():
    sel = MlPathSelector()
    add_paths(sel, 2)
    run_bandit(sel, lambda t: (0.9, 0.1, 0.5), 200, seed=0)
    sel.update_metrics(PathMetrics(PathId.Tertiary, rtt_us=20_000), now=5.0)
    assert sel.select(G, now=5.0) is PathId.Tertiary


def test_contextual_bonus_guides_ties_by_traffic_type():
    sel = MlPathSelector(seed=0)
    sel.update_metrics(
        PathMetrics(PathId.Primary, rtt_us=10_000, rtt_var_us=1_000, bandwidth_bps=5e6), now=0.0
    )
    sel.update_metrics(
        PathMetrics(PathId.Secondary, rtt_us=120_000, rtt_var_us=20_000, bandwidth_bps=5e8),
        now=0.0,
    )
    # Both paths earn exactly the same reward: only the bonus can separate them.
    for ctx, best in ((G, PathId.Primary), (TrafficContext.Bulk, PathId.Secondary)):
        picks = []
        for t in range(300):
            path = sel.select(ctx, now=float(t))
            picks.append(path)
            sel.update_reward(path, ctx, 0.5, now=float(t))
        assert picks[-100:].count(best) > 80


def test_contextual_bonus_does_not_override_clear_reward_gap():
    sel = MlPathSelector(seed=0)
    sel.update_metrics(PathMetrics(PathId.Primary, rtt_us=5_000, rtt_var_us=0), now=0.0)
    sel.update_metrics(PathMetrics(PathId.Secondary, rtt_us=200_000, rtt_var_us=50_000), now=0.0)
    picks = run_bandit(sel, lambda t: (0.3, 0.7), 400, seed=2)
    assert np.mean(picks[-200:] == 1) > 0.8


def test_scores_stay_finite_when_counts_underflow():
    cfg = PathSelectorConfig(exploration_c=0.0, discount_gamma=0.5)
    sel = MlPathSelector(cfg)
    add_paths(sel, 2)
    run_bandit(sel, lambda t: (1.0, 0.0), 2000, seed=0)
    scores = sel.ucb_scores(G)
    assert all(math.isfinite(v) for v in scores.values())
    assert sel.stats()["per_context"]["Gaming"]["discounted"]["Secondary"]["count"] == 0.0
    assert sel.select(G, now=0.0) is PathId.Primary


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_same_seed_same_choices(cls):
    def run(seed: int) -> list[int]:
        sel = cls(seed=seed)
        add_paths(sel, 4)
        return run_bandit(sel, lambda t: (0.5, 0.52, 0.48, 0.5), 600, seed=9).tolist()

    assert run(11) == run(11)


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_stats_are_json_and_consistent(cls):
    sel = cls()
    add_paths(sel, 2)
    for t in range(10):
        path = sel.select(TrafficContext.Web, now=float(t))
        sel.update_reward(path, TrafficContext.Web, 0.25 if path is PathId.Primary else 0.75,
                          now=float(t))  # fmt: skip
    st = json.loads(json.dumps(sel.stats()))
    assert st["pulls"] == 10 == sum(st["selections"].values())
    assert st["mean_reward"]["Primary"] == pytest.approx(0.25)
    assert st["mean_reward"]["Secondary"] == pytest.approx(0.75)
    assert st["mean_reward"]["Tertiary"] is None
    web = st["per_context"]["Web"]
    assert web["pulls"] == 10
    assert web["mean_reward"]["Secondary"] == pytest.approx(0.75)
    assert st["known_paths"] == ["Primary", "Secondary"]
    # The dict is a copy: changing it leaves the selector alone.
    st2 = sel.stats()
    st2["selections"]["Primary"] = 10**6
    assert sel.stats()["selections"]["Primary"] != 10**6


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_policy_adapters(cls):
    a, b = cls(seed=2), cls(seed=2)
    add_paths(a, 3)
    add_paths(b, 3)
    rng = np.random.default_rng(0)
    for t in range(50):
        pa = a.select(TrafficContext.Streaming, now=float(t))
        pb = b.predict_one(TrafficContext.Streaming, now=float(t))
        assert pa is pb
        r = float(rng.random())
        a.update_reward(pa, TrafficContext.Streaming, r, now=float(t))
        b.learn_one((pb, TrafficContext.Streaming), r, now=float(t))
    assert a.stats() == b.stats()
    with pytest.raises(ValueError, match="obs"):
        b.learn_one(PathId.Primary, 0.5, now=0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_predict_one_is_what_select_returns_and_changes_nothing(cls):
    sel = cls(seed=4)
    add_paths(sel, 3)
    rng = np.random.default_rng(1)
    for t in range(40):  # burn-in (round-robin cursor, pending paths) and after
        ctx = TrafficContext(t % 2)
        before = sel.stats()
        predicted = [sel.predict_one(ctx, now=float(t)) for _ in range(3)]
        assert sel.stats() == before
        chosen = sel.select(ctx, now=float(t))
        assert predicted == [chosen] * 3
        if t % 3:  # some rewards never arrive: burn-in must still move on
            sel.update_reward(chosen, ctx, float(rng.random()), now=float(t))


def test_stationary_baseline_forces_plain_ucb1():
    sel = StationaryUcb1PathSelector(PathSelectorConfig(exploration_c=0.7))
    assert sel.config.discount_gamma == 1.0
    assert sel.config.contextual_bonus_weight == 0.0
    assert sel.config.exploration_c == 0.7
    assert StationaryUcb1PathSelector().config.exploration_c == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("cls", ALL_SELECTORS)
def test_bad_inputs_raise(cls):
    sel = cls()
    add_paths(sel, 2)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="reward"):
            sel.update_reward(PathId.Primary, G, bad, now=0.0)
    with pytest.raises(TypeError, match="reward"):
        sel.update_reward(PathId.Primary, G, "0.5", now=0.0)  # type: ignore[arg-type]
    for bad_path in (4, -1, True, "Primary"):
        with pytest.raises(ValueError, match="path"):
            sel.update_reward(bad_path, G, 0.5, now=0.0)  # type: ignore[arg-type]
    for bad_ctx in (5, True, "Gaming", None):
        with pytest.raises(ValueError, match="context"):
            sel.select(bad_ctx, now=0.0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="context"):
            sel.update_reward(PathId.Primary, bad_ctx, 0.5, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now"):
        sel.update_reward(PathId.Primary, G, 0.5, now=float("nan"))
    with pytest.raises(ValueError, match="now"):
        sel.update_metrics(PathMetrics(PathId.Primary, rtt_us=1.0), now=float("inf"))
    with pytest.raises(TypeError, match="metrics"):
        sel.update_metrics({"path_id": 0, "rtt_us": 1.0}, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed"):
        cls(seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        cls({"discount_gamma": 0.9})  # type: ignore[arg-type]
    # Nothing was counted by the rejected calls.
    assert sel.stats()["rewards"] == {p.name: 0 for p in PathId}
    # Plain ints are accepted for path and context.
    sel.update_reward(1, 0, 1, now=0)
    assert sel.stats()["per_context"]["Gaming"]["rewards"]["Secondary"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("availability_threshold", -0.1),
        ("availability_threshold", 1.1),
        ("exploration_c", -1.0),
        ("exploration_c", float("nan")),
        ("discount_gamma", 0.0),
        ("discount_gamma", 1.01),
        ("contextual_bonus_weight", -0.1),
    ],
)
def test_bad_config_raises_naming_field(field, value):
    with pytest.raises(ValueError, match=field):
        PathSelectorConfig(**{field: value})


def test_docstring_examples():
    result = doctest.testmod(selector_module)
    assert result.attempted > 0
    assert result.failed == 0
