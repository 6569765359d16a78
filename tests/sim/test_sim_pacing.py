"""The simulator's aioquic-style pacer (issue 10 item 3)."""

from __future__ import annotations

from collections import Counter

from oxidize_ml.congestion import BbrFallback
from oxidize_ml.congestion.interval import PolicyController
from oxidize_ml.sim import Simulation
from oxidize_ml.sim.controllers.engine import EngineController
from oxidize_ml.sim.links import BufferSpec, ConstantLink
from oxidize_ml.sim.scenarios import FlowSpec, Scenario
from oxidize_ml.types import DrlAction

MSS = 1500


class FixedWindow:
    """A policy that never changes the window (set from outside)."""

    name = "fixed"
    is_learned = False

    def learn_one(self, obs: object, feedback: float = 0.0, *, now: float) -> None:
        pass

    def predict_one(self, obs: object, *, now: float) -> DrlAction:
        return DrlAction.Maintain


class RecordingController(PolicyController):
    """A 20-packet window that jumps to 200 packets at 1 s (no envelope: set directly)."""

    def __init__(self, *, pacing: bool) -> None:
        super().__init__(FixedWindow(), pacing=pacing)
        self.cwnd = 20 * MSS
        self.sends: list[float] = []

    def on_interval(self, *, now: float, features: object, throughput_bps: float) -> None:
        self.cwnd = 200 * MSS if now >= 1.0 else 20 * MSS

    def on_packet_sent(self, *, now: float, sent_bytes: int) -> None:
        self.sends.append(now)


def run(pacing: bool) -> tuple[RecordingController, object]:
    # 12 Mbit/s x 40 ms = 40 packets BDP, a deep buffer
    sc = Scenario(
        "pace",
        ConstantLink(12e6),
        (FlowSpec(delay_s=0.02),),
        buffer=BufferSpec(packets=1000),
        duration_s=3.0,
    )
    ctrl = RecordingController(pacing=pacing)
    res = Simulation(sc, ctrl, seed=0).run()
    return ctrl, res


def test_window_jump_leaves_in_one_burst_unpaced_and_spread_when_paced() -> None:
    unpaced, _ = run(False)
    paced, _ = run(True)
    burst_u = max(Counter(t for t in unpaced.sends if t >= 1.0).values())
    burst_p = max(Counter(t for t in paced.sends if t >= 1.0).values())
    assert burst_u >= 150  # the 180 new packets of window leave at the tick
    # aioquic's bucket: max(2, min(cwnd / 4, 16)) packet times back to back (+1: the
    # bucket admits a packet while any credit is left, and float residue can leave some)
    assert burst_p <= 17
    # and the jump is spread at about cwnd / srtt: 180 packets over more than 10 ms
    jump = [t for t in paced.sends if 1.0 <= t < 1.2]
    assert len(jump) > 100
    assert jump[150] - jump[0] > 0.010


def test_pacing_is_deterministic_and_changes_the_run() -> None:
    _, a = run(True)
    _, b = run(True)
    _, c = run(False)
    assert a == b
    assert a != c


def test_engine_driven_controllers_pace_by_default_classic_ones_do_not() -> None:
    assert PolicyController(BbrFallback()).pacing
    assert EngineController(
        object.__new__(
            type(
                "E",
                (),
                {"observe": lambda *a, **k: None, "congestion_action": lambda *a, **k: None},
            )
        )
    ).pacing
    sc = Scenario("c", ConstantLink(12e6), (FlowSpec(delay_s=0.02),), duration_s=1.0)
    assert not Simulation(sc, "cubic", seed=0)._any_paced
    assert Simulation(sc, "bbr", seed=0)._any_paced


def test_paced_fallback_keeps_the_link_busy_with_a_small_queue() -> None:
    sc = Scenario(
        "wired",
        ConstantLink(12e6),
        (FlowSpec(delay_s=0.02),),
        buffer=BufferSpec(bdp=2.0),
        duration_s=10.0,
    )
    paced = Simulation(sc, PolicyController(BbrFallback(), pacing=True), seed=0).run()
    unpaced = Simulation(sc, PolicyController(BbrFallback(), pacing=False), seed=0).run()
    assert paced.utilisation > 0.9
    assert paced.flows[0].delay_p95_s <= unpaced.flows[0].delay_p95_s + 0.002
