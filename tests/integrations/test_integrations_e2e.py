"""End-to-end: aioquic reno / cubic / oxidize through the emulator on loopback.

Tolerances (documented here, used below):

- ``CAPACITY_SLACK`` 2 %: goodput is payload over the window from the request
  to the last byte, and the capacity is what the emulator's schedule offered
  in that same window, so goodput cannot exceed it (datagram headers make it
  strictly lower); the slack only absorbs the event loop's timer error at
  the window's two ends (asyncio wakes up to ~1 ms late; on a 0.6 s transfer
  that is < 0.5 %) and the first queue fill, which can carry data that was
  already in the queue when the window opened (zero here: the queue is empty
  when the request is sent).
- ``OXIDIZE_VS_CUBIC`` 0.5: the engine's controller (the default `MlEngine`:
  a residual DQN on the BBR-style fallback) must reach at least half of
  CUBIC's goodput on a clean link. Measured at 300 KB / 4 Mbit/s / 20 ms:
  0.88-0.91 over seeds 0-2 (0.95 at 1 MB; a short transfer mostly measures
  start-up, where the fallback's delivery-clocked STARTUP and CUBIC's slow
  start differ). The first connection of a process used to fall to 0.57 while
  the learned compression oracle built its rate tables on the event loop;
  they are now built once per process, off the packet path.
- Agreement with the simulator on the same link (docs/e2e.md has the full
  tables). e2e goodput is payload over 1500-byte link packets that also carry
  QUIC headers, frames and the AEAD tag (about 4 % of each packet), so the
  ratio sits a little below 1 even when both run the same algorithm.
  ``SIM_CLASSIC_CONSTANT`` [0.85, 1.02] and ``SIM_QDELAY_CONSTANT_S`` 5 ms for
  reno / cubic on a constant link (measured 0.92-0.96 and <= 2.2 ms);
  ``SIM_CLASSIC_CELLULAR`` [0.55, 1.15] and ``SIM_QDELAY_CELLULAR_S`` 20 ms on
  a synthetic cellular trace (400 KB: mostly start-up, where aioquic's and the
  simulator's reno / cubic differ most; measured 0.67-1.00 and <= 12.5 ms over
  16 runs of seeds 1-3 on a machine busy with other jobs: on a link that
  changes every 20 ms, a transfer slowed by CPU contention meets different
  capacity). The engine's controller (oxidize) is not bounded against the
  simulator (measured 0.71-0.93 on the six links of docs/e2e.md): in aioquic the engine sees
  acks for every other packet, delayed acks and pacing, which the simulator's
  per-packet acks do not have; that gap is the engine's to close, not the
  harness's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("aioquic")

from oxidize_ml.integrations.e2e import (
    E2eConfig,
    E2eReport,
    run_e2e,
    synthetic_cellular_trace,
)
from oxidize_ml.sim.links import TraceLink
from oxidize_ml.sim.traces import CellularConfig

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "traces" / "mahimahi"
CAPACITY_SLACK = 1.02
OXIDIZE_VS_CUBIC = 0.5
RATE_BPS = 4e6
SIM_CLASSIC_CONSTANT = (0.85, 1.02)
SIM_QDELAY_CONSTANT_S = 0.005
SIM_CLASSIC_CELLULAR = (0.55, 1.15)
SIM_QDELAY_CELLULAR_S = 0.020


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> E2eReport:
    tel = tmp_path_factory.mktemp("telemetry")
    return run_e2e(
        E2eConfig(
            rate_bps=RATE_BPS,
            delay_s=0.020,
            transfer_bytes=300_000,
            seed=0,
            timeout_s=30.0,
            collect_dir=str(tel),
        )
    )


def test_every_controller_completes(report: E2eReport) -> None:
    assert [r.controller for r in report.results] == ["reno", "cubic", "oxidize"]
    for r in report.results:
        assert r.completed, (r.controller, r.error)
        assert r.error is None and r.bytes_received == 300_000
        assert r.transfer_s is not None and r.transfer_s > 0.040  # at least one RTT


def test_goodput_never_exceeds_the_emulated_capacity(report: E2eReport) -> None:
    for r in report.results:
        assert r.capacity_bps == pytest.approx(RATE_BPS, rel=0.02)
        assert 0.0 < r.goodput_bps <= r.capacity_bps * CAPACITY_SLACK, r.controller
        assert r.goodput_bps <= RATE_BPS * CAPACITY_SLACK


def test_oxidize_within_a_factor_of_cubic(report: E2eReport) -> None:
    ox = report.result("oxidize")
    cubic = report.result("cubic")
    assert ox.goodput_bps >= OXIDIZE_VS_CUBIC * cubic.goodput_bps


def test_rtt_is_what_aioquic_measured_and_at_least_the_base_rtt(report: E2eReport) -> None:
    for r in report.results:
        assert r.srtt_p50_s >= 0.040 and r.srtt_p95_s >= r.srtt_p50_s
        assert r.srtt_p95_s < 1.0
        assert len(r.series_t) == len(r.series_srtt) > 10
        assert list(r.series_bytes) == sorted(r.series_bytes)


def test_oxidize_controller_ran_and_telemetry_exported(report: E2eReport) -> None:
    ox = report.result("oxidize")
    stats = ox.controller_stats
    assert stats is not None
    assert stats["decision_errors"] == 0 and stats["decisions"] > 20
    assert stats["packets_acked"] > 200
    assert report.result("reno").controller_stats is None
    assert ox.telemetry_export is not None
    manifest = json.loads((Path(ox.telemetry_export) / "manifest.json").read_text())
    assert manifest["tables"]["congestion"]["rows"] > 20


def test_simulator_column_for_the_same_link(report: E2eReport) -> None:
    for r in report.results:
        assert r.sim is not None, report.sim_note
        assert r.sim.completed
        assert 0.0 < r.sim.goodput_bps <= RATE_BPS * CAPACITY_SLACK


def _constant_link_misses(rep: E2eReport) -> list[tuple[str, float, float]]:
    lo, hi = SIM_CLASSIC_CONSTANT
    return [
        (r.controller, r.goodput_vs_sim, r.qdelay_p95_diff_s)
        for r in rep.results
        # oxidize: the engine's own fidelity gap is reported in docs/e2e.md, not bounded
        if r.controller != "oxidize"
        and not (lo <= r.goodput_vs_sim <= hi and abs(r.qdelay_p95_diff_s) <= SIM_QDELAY_CONSTANT_S)
    ]


def test_agrees_with_the_simulator_on_a_constant_link(report: E2eReport) -> None:
    """aioquic is CPU-bound: under pytest -n 2 one run can be starved of CPU. The band
    must hold in the module's run or in one of two fresh runs of the same link."""
    misses = [_constant_link_misses(report)]
    for _attempt in range(2):
        if not misses[-1]:
            return
        rep = run_e2e(
            E2eConfig(
                rate_bps=RATE_BPS, delay_s=0.020, transfer_bytes=300_000, seed=0, timeout_s=30.0
            )
        )
        misses.append(_constant_link_misses(rep))
    assert not misses[-1], f"outside the agreement band in every run: {misses}"


def test_the_emulator_ran_in_its_own_process(report: E2eReport) -> None:
    for r in report.results:
        assert r.link["stop_reason"] == "stopped"  # the child's report, sent at SIGTERM
        assert r.link["clients"] == 1
        assert 0.0 < r.emulator_cpu_share < 1.0
        # Its timers fire on time: no aioquic work shares its event loop.
        assert r.link["downlink"]["late_mean_s"] < 0.010
        assert 0.0 < r.link_offset_s < 5.0


def test_synthetic_cellular_trace_against_the_simulator(tmp_path: Path) -> None:
    """The e2e table on a cellular link, drawn at run time (no shared traces needed).

    aioquic is CPU-bound: on a machine busy with other tests (pytest -n 2) one
    transfer can be starved of CPU and fall far below the simulator without
    anything being wrong with either. The agreement band must hold in one of
    up to three attempts; every attempt must complete within the link capacity.
    """
    trace = synthetic_cellular_trace(
        tmp_path / "cell.down",
        seed=2,
        duration_s=30.0,
        config=CellularConfig(state_rates_bps=(2e6, 4e6, 6e6, 8e6)),
    )
    lo, hi = SIM_CLASSIC_CELLULAR
    misses = []
    for _attempt in range(3):
        rep = run_e2e(
            E2eConfig(
                trace=str(trace), delay_s=0.020, transfer_bytes=400_000, seed=2, timeout_s=30.0
            )
        )
        assert [r.controller for r in rep.results] == ["reno", "cubic", "oxidize"]
        assert "from where each e2e transfer started" in rep.sim_note
        miss = []
        for r in rep.results:
            assert r.completed, (r.controller, r.error)
            assert r.goodput_bps <= r.capacity_bps * CAPACITY_SLACK
            assert r.sim is not None and r.sim.completed
            if r.controller == "oxidize":
                continue  # the engine's own fidelity gap: reported in docs/e2e.md, not bounded
            if not (
                lo <= r.goodput_vs_sim <= hi and abs(r.qdelay_p95_diff_s) <= SIM_QDELAY_CELLULAR_S
            ):
                miss.append((r.controller, r.goodput_vs_sim, r.qdelay_p95_diff_s))
        if not miss:
            return
        misses.append(miss)
    raise AssertionError(f"outside the agreement band in all attempts: {misses}")


def test_synthetic_trace_file(tmp_path: Path) -> None:
    a = synthetic_cellular_trace(tmp_path / "a.down", seed=1, duration_s=5.0)
    b = synthetic_cellular_trace(tmp_path / "b.down", seed=1, duration_s=5.0)
    assert a.read_bytes() == b.read_bytes()  # seeded
    ms = [int(x) for x in a.read_text().split()]
    assert ms == sorted(ms) and ms[0] >= 1 and ms[-1] == 5000
    assert TraceLink(str(a)).period_s == 5.0
    with pytest.raises(ValueError, match="duration_s"):
        synthetic_cellular_trace(tmp_path / "c.down", seed=1, duration_s=0.5)


def test_report_files(report: E2eReport, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = report.write(tmp_path)
    data = json.loads((tmp_path / "e2e.json").read_text())
    assert [r["controller"] for r in data["results"]] == ["reno", "cubic", "oxidize"]
    assert data["results"][0]["series"]["t_s"]
    png = (tmp_path / "e2e.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(written.files) == 2


def test_a_run_that_cannot_finish_is_reported_not_hung() -> None:
    # 300 KB at 1 Mbit/s needs > 2.4 s; the bound is 0.8 s.
    rep = run_e2e(
        E2eConfig(
            rate_bps=1e6,
            delay_s=0.010,
            transfer_bytes=300_000,
            controllers=("reno",),
            timeout_s=0.8,
            simulate=False,
        )
    )
    (r,) = rep.results
    assert not r.completed and r.transfer_s is None
    assert r.error is not None and "not completed" in r.error
    assert 0 < r.bytes_received < 300_000
    assert r.goodput_bps <= r.capacity_bps * CAPACITY_SLACK


@pytest.mark.skipif(not TRACES.is_dir(), reason="shared Mahimahi traces not present")
def test_mahimahi_trace_short_transfer() -> None:
    rep = run_e2e(
        E2eConfig(
            trace=str(TRACES / "ATT-LTE-driving-2016.down"),
            delay_s=0.020,
            transfer_bytes=200_000,
            controllers=("cubic", "oxidize"),
            timeout_s=30.0,
            simulate=False,
        )
    )
    for r in rep.results:
        assert r.completed, (r.controller, r.error)
        assert r.goodput_bps <= r.capacity_bps * CAPACITY_SLACK


def test_a_broken_engine_factory_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from oxidize_ml.integrations import e2e

    def broken(cfg: E2eConfig, engines: list[object]) -> object:
        def make() -> object:
            raise RuntimeError("no engine today")

        return make

    monkeypatch.setattr(e2e, "_oxidize_engine_factory", broken)
    rep = run_e2e(
        E2eConfig(
            rate_bps=4e6,
            transfer_bytes=10_000,
            controllers=("oxidize",),
            timeout_s=30.0,
            simulate=False,
        )
    )
    (r,) = rep.results
    assert not r.completed
    assert r.error is not None and "no engine today" in r.error
    assert r.handshake_s is None  # it never tried to connect
