"""Issue 10 regressions: silent starts, long outages and runaway policies.

- silent start: a link that delivers nothing for its first 800 ms made the
  fallback take Increase10 every 10 ms (10 -> 33,000 packets, 74-96 % loss);
- long outage: a flow inside an outage reported 0 % loss with 44,736 packets
  "in flight" and a PTO that outlasted the run;
- runaway: a policy that always says Increase10 must stay within the delivery
  envelope and lose little.
"""

from __future__ import annotations

import pytest

from oxidize_ml.congestion import BbrFallback, CwndLimits
from oxidize_ml.congestion.envelope import EnvelopeConfig
from oxidize_ml.congestion.interval import PolicyController
from oxidize_ml.engine import EngineConfig, MlEngine
from oxidize_ml.sim import Simulation
from oxidize_ml.sim.controllers.engine import EngineController
from oxidize_ml.sim.core import K_MAX_PTO_S
from oxidize_ml.sim.links import BufferSpec, StepLink
from oxidize_ml.sim.scenarios import FlowSpec, Scenario
from oxidize_ml.types import DrlAction

INIT = CwndLimits().initial_cwnd
RATE = 12e6


class AlwaysIncrease10:
    """The DQN runaway of issue 10, as an adversarial policy."""

    name = "always-increase10"
    is_learned = True

    def learn_one(self, obs: object, feedback: float = 0.0, *, now: float) -> None:
        pass

    def predict_one(self, obs: object, *, now: float) -> DrlAction:
        return DrlAction.Increase10


def make_controller(kind: str) -> object:
    if kind == "engine-fallback":
        return EngineController(
            MlEngine(EngineConfig(load_default_models=False, collect_training=False))
        )
    if kind == "engine-runaway":
        eng = MlEngine(EngineConfig(load_default_models=False, collect_training=False))
        eng.replace_policy("congestion_controller", AlwaysIncrease10())
        return EngineController(eng)
    if kind == "bbr":
        return PolicyController(BbrFallback())
    assert kind == "policy-runaway"
    return PolicyController(AlwaysIncrease10())


KINDS = ["engine-fallback", "engine-runaway", "bbr", "policy-runaway"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rtt_s", [0.04, 0.1])
def test_silent_start_holds_the_window(kind: str, rtt_s: float) -> None:
    sc = Scenario(
        "silent-start",
        StepLink(((0.0, 0.0), (0.8, RATE))),
        (FlowSpec(delay_s=rtt_s / 2),),
        buffer=BufferSpec(bdp=2.0),
        duration_s=10.0,
    )
    sim = Simulation(sc, make_controller(kind), seed=0)
    res = sim.run()
    s = res.flows[0].series
    assert s is not None
    silent = s.time_s < 0.8
    assert s.cwnd_bytes[silent].max() <= INIT  # no sample is not "grow"
    f = res.flows[0]
    assert f.loss_rate < 0.10, f.summary()
    assert f.throughput_bps > 0.6 * RATE * (10.0 - 0.8) / 10.0


@pytest.mark.parametrize("kind", ["policy-runaway", "engine-runaway"])
def test_runaway_policy_stays_within_the_envelope(kind: str) -> None:
    sc = Scenario(
        "runaway",
        StepLink(((0.0, RATE), (5.0, RATE / 4), (10.0, RATE))),
        (FlowSpec(delay_s=0.05),),
        buffer=BufferSpec(bdp=2.0),
        duration_s=15.0,
    )
    sim = Simulation(sc, make_controller(kind), seed=0)
    res = sim.run()
    s = res.flows[0].series
    assert s is not None
    bdp = RATE / 8 * 0.1
    # the cap is gain x the largest bytes delivered per min-RTT span (srtt-based span, plus
    # ack bunching): a few BDP at most, never the 20-25k packets of the issue
    assert s.cwnd_bytes.max() <= EnvelopeConfig().gain * 2.0 * bdp
    assert res.flows[0].loss_rate < 0.10, res.flows[0].summary()


def test_flow_inside_an_outage_reports_stranded_packets() -> None:
    # the flow starts 1 s into a 20-s outage and the run ends inside it
    link = StepLink(((0.0, RATE), (0.5, 0.0), (20.5, RATE)))
    sc = Scenario(
        "outage",
        link,
        (FlowSpec(delay_s=0.02, start_s=1.5),),
        buffer=BufferSpec(bdp=2.0),
        duration_s=21.0,
    )
    sim = Simulation(sc, make_controller("engine-fallback"), seed=0)
    sim.advance(15.0)
    r = sim.result()
    f = r.flows[0]
    assert f.packets_acked == 0
    assert f.packets_sent > 0
    assert f.packets_stranded == f.packets_sent  # nothing acked, nothing declared lost
    assert f.stranded_rate == 1.0 and r.packets_stranded == f.packets_stranded
    assert f.summary()["packets_stranded"] == f.packets_stranded
    # in flight stays bounded by the window (+ two probes per PTO, backoff capped)
    assert f.packets_sent <= INIT // 1500 + 2 * 20
    # once the link returns the flow recovers: acks, and nothing left stranded but a window
    end = sim.run().flows[0]
    assert end.packets_acked > 0
    assert end.throughput_bps > 0.0


def test_undetected_drops_count_as_loss() -> None:
    # a 1-packet buffer and a link that goes silent for good: the tail of the window is
    # dropped and no later ack ever reveals it
    link = StepLink(((0.0, RATE), (1.0, 0.0), (9.0, 1.0)))
    sc = Scenario(
        "cut", link, (FlowSpec(delay_s=0.02),), buffer=BufferSpec(packets=1), duration_s=8.0
    )
    res = Simulation(sc, "cubic", seed=0).run()
    f = res.flows[0]
    assert f.packets_lost_undetected > 0
    lost = f.packets_lost + f.packets_lost_undetected
    assert f.loss_rate == pytest.approx(lost / (f.packets_acked + lost))
    assert f.packets_stranded >= f.packets_lost_undetected


@pytest.mark.parametrize("force_general", [False, True])
def test_pto_is_capped_after_a_huge_rtt_sample(force_general: bool) -> None:
    # packets queued across a 22-s outage give a ~22-s RTT sample (the PTO of
    # srtt + 4 rttvar ~ 66 s, doubled per probe, outlasted the run)
    link = StepLink(((0.0, RATE), (0.5, 0.0), (22.5, RATE), (23.0, 0.0), (90.0, RATE)))
    sc = Scenario(
        "huge-rtt", link, (FlowSpec(delay_s=0.02),), buffer=BufferSpec(bdp=4.0), duration_s=120.0
    )
    sim = Simulation(sc, "cubic", seed=0, record_series=False)
    sim._force_general = force_general
    worst_srtt = 0.0
    while not sim.done:
        sim.run_interval()
        fl = sim._flows[0]
        worst_srtt = max(worst_srtt, fl.srtt)
        if fl.timer < float("inf"):
            assert fl.timer - fl.last_send <= K_MAX_PTO_S + 1e-9
    assert worst_srtt > 5.0  # the scenario did produce a huge RTT sample
    f = sim.result().flows[0]
    # the link returned at 90 s: the capped PTO probes found it before the end
    assert f.packets_acked > 0 and sim._flows[0].largest_acked > 0
