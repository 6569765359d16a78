"""The one random-link generator: ranges, shapes, determinism, validation."""

from __future__ import annotations

import numpy as np
import pytest

from oxidize_ml.sim import get_scenario, simulate
from oxidize_ml.sim.links import CellularLink, ConstantLink, StepLink
from oxidize_ml.sim.random_links import (
    RandomLinkConfig,
    random_link_scenario,
    random_trace_path,
)
from oxidize_ml.sim.random_loss import BernoulliLoss, GilbertElliottLoss


def test_same_generator_state_same_scenario() -> None:
    a = random_link_scenario(np.random.default_rng(11), name="a", duration_s=10.0)
    b = random_link_scenario(np.random.default_rng(11), name="a", duration_s=10.0)
    c = random_link_scenario(np.random.default_rng(12), name="a", duration_s=10.0)
    assert repr(a) == repr(b)
    assert repr(a) != repr(c)


def test_pinned_draw_of_seed_1() -> None:
    # Pins the draw order (the loss trainer's data and the gym env depend on it).
    sc = random_link_scenario(np.random.default_rng(1), name="x", duration_s=20.0)
    assert isinstance(sc.link, ConstantLink)
    assert sc.link.rate_bps == pytest.approx(10387856.03528316)
    assert sc.flows[0].delay_s == pytest.approx(0.3219496429707655)
    assert sc.buffer.packets == 1845 and sc.loss is None and len(sc.flows) == 1


def test_draws_stay_in_the_configured_ranges_and_cover_every_shape() -> None:
    cfg = RandomLinkConfig()
    rng = np.random.default_rng(0)
    links, losses, n_flows = set(), set(), set()
    for k in range(400):
        sc = random_link_scenario(rng, name=f"r{k}", duration_s=10.0)
        assert sc.name == f"r{k}" and sc.duration_s == 10.0
        rtt = sc.flows[0].base_rtt_s
        assert cfg.base_rtt_s[0] <= rtt <= cfg.base_rtt_s[1]
        assert all(f.base_rtt_s == rtt for f in sc.flows)
        assert sc.flows[0].start_s == 0.0
        assert all(0.0 <= f.start_s < cfg.late_start_s for f in sc.flows)
        assert sc.buffer.packets >= 2
        links.add(type(sc.link))
        losses.add(type(sc.loss))
        n_flows.add(len(sc.flows))
        if isinstance(sc.link, ConstantLink):
            assert cfg.capacity_bps[0] <= sc.link.rate_bps <= cfg.capacity_bps[1]
        elif isinstance(sc.link, StepLink):
            assert cfg.step_pieces[0] <= len(sc.link.steps) <= cfg.step_pieces[1]
            assert all(0.5 <= t <= 10.0 for t, _ in sc.link.steps[1:])
        if isinstance(sc.loss, BernoulliLoss):
            assert cfg.bernoulli_loss[0] <= sc.loss.p <= cfg.bernoulli_loss[1]
        elif isinstance(sc.loss, GilbertElliottLoss):
            assert cfg.burst_delivered[0] <= sc.loss.h <= cfg.burst_delivered[1]
    assert links == {ConstantLink, StepLink, CellularLink}
    assert losses == {type(None), BernoulliLoss, GilbertElliottLoss}
    assert n_flows == {1, 2, 3}


def test_config_moves_the_draws() -> None:
    cfg = RandomLinkConfig(
        capacity_bps=(5e6, 5e6),
        base_rtt_s=(0.05, 0.05),
        step_probability=0.0,
        cellular_probability=0.0,
        bernoulli_probability=0.0,
        burst_probability=0.0,
        multi_flow_probability=0.0,
    )
    rng = np.random.default_rng(3)
    for _ in range(20):
        sc = random_link_scenario(rng, name="c", duration_s=5.0, config=cfg)
        assert isinstance(sc.link, ConstantLink) and sc.link.rate_bps == pytest.approx(5e6)
        assert sc.flows[0].base_rtt_s == pytest.approx(0.05)
        assert sc.loss is None and len(sc.flows) == 1


def test_a_random_link_runs_in_the_simulator() -> None:
    sc = random_link_scenario(np.random.default_rng(4), name="run", duration_s=2.0)
    res = simulate(sc, "cubic", seed=0, record_series=False)
    assert res.flows[0].bytes_acked > 0


def test_random_trace_path_keeps_the_capacity_and_draws_the_path() -> None:
    base = get_scenario("step-change")
    cfg = RandomLinkConfig()
    a = random_trace_path(base, np.random.default_rng(0), config=cfg)
    b = random_trace_path(base, np.random.default_rng(1), duration_s=3.0)
    assert a.link is base.link and a.duration_s == base.duration_s and b.duration_s == 3.0
    assert len(a.flows) == 1 and a.flows[0].delay_s != b.flows[0].delay_s
    for sc in (a, b):
        assert cfg.base_rtt_s[0] <= sc.flows[0].base_rtt_s <= cfg.base_rtt_s[1]
        assert cfg.buffer_bdp[0] <= sc.buffer.bdp <= cfg.buffer_bdp[1]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"base_rtt_s": (0.3, 0.1)}, "base_rtt_s"),
        ({"capacity_bps": (1e6,)}, "capacity_bps"),
        ({"step_probability": 0.8, "cellular_probability": 0.5}, "step_probability"),
        ({"bernoulli_probability": 0.7, "burst_probability": 0.5}, "bernoulli_probability"),
        ({"step_pieces": (1, 3)}, "step_pieces"),
        ({"burst_delivered": (0.5, 1.5)}, "burst_delivered"),
        ({"late_start_s": -1.0}, "late_start_s"),
    ],
)
def test_config_validates(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RandomLinkConfig(**kwargs)


def test_bad_arguments_raise() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="duration_s"):
        random_link_scenario(rng, name="x", duration_s=0.0)
    with pytest.raises(TypeError, match="config"):
        random_link_scenario(rng, name="x", duration_s=1.0, config={})  # type: ignore[arg-type]
