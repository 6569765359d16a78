"""Trace windows (a run starting inside a trace) and the trace loader's bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.sim import traces
from oxidize_ml.sim.links import BufferSpec
from oxidize_ml.sim.runner import simulate
from oxidize_ml.sim.scenarios import TraceWindowLink, scenario_from_trace
from oxidize_ml.sim.traces import OpportunitySchedule, load_mahimahi, trace_window_schedule


def write(tmp_path: Path, text: str, name: str = "t.down") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("start_ms", [0, 3, 5, 10, 29, 47, 61])
def test_window_schedule_is_the_trace_seen_from_its_start(start_ms: int) -> None:
    ms = np.array([0, 0, 5, 5, 10, 20, 30])
    full = OpportunitySchedule.from_mahimahi_ms(ms)
    win = trace_window_schedule(ms, start_ms)
    assert win.period_s == full.period_s
    assert win.n_per_period == full.n_per_period
    o = (start_ms % 30) / 1000.0
    # opportunities at the start instant belong to the window (time 0), as at trace start
    got = win.opportunity_times(-1e-9, 0.1)
    want = full.opportunity_times(o - 1e-9, o + 0.1) - o
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_window_schedule_zero_is_the_trace_and_bad_starts_raise() -> None:
    ms = np.array([0, 4, 9])
    np.testing.assert_array_equal(
        trace_window_schedule(ms, 0).times_s, OpportunitySchedule.from_mahimahi_ms(ms).times_s
    )
    with pytest.raises(ValueError, match="start_ms"):
        trace_window_schedule(ms, -1)
    with pytest.raises(TypeError, match="start_ms"):
        trace_window_schedule(ms, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        trace_window_schedule(np.array([0]), 0)


def test_trace_window_link_starts_the_run_inside_the_trace(tmp_path: Path) -> None:
    # 1 s of silence, then 12 Mbit/s for 2 s
    p = write(tmp_path, "\n".join(str(t) for t in range(1000, 3001)) + "\n")
    at_start = scenario_from_trace(p, rtt_s=0.04, duration_s=1.0)
    later = scenario_from_trace(p, rtt_s=0.04, duration_s=1.0, start_s=1.5)
    assert isinstance(later.link, TraceWindowLink) and not isinstance(
        at_start.link, TraceWindowLink
    )
    assert later.name == "trace-t.down@1.5s" and "from 1.5 s" in later.description
    assert later.link.to_dict()["start_s"] == 1.5
    silent = simulate(at_start, "cubic", seed=0, record_series=False)
    busy = simulate(later, "cubic", seed=0, record_series=False)
    assert silent.flows[0].bytes_acked == 0  # the first second delivers nothing
    assert busy.flows[0].bytes_acked > 100 * 1500
    # the buffer is sized from the whole trace's mean rate, the same for every window
    again = scenario_from_trace(
        p, rtt_s=0.04, buffer=BufferSpec(bdp=2.0), start_s=2.0, link=later.link
    )
    assert again.link.path == later.link.path and again.link.start_ms == 2000


def test_scenario_from_trace_validates(tmp_path: Path) -> None:
    p = write(tmp_path, "1\n2\n")
    with pytest.raises(ValueError, match="rtt_s"):
        scenario_from_trace(p, rtt_s=0.0)
    with pytest.raises(ValueError, match="start_s"):
        scenario_from_trace(p, start_s=-1.0)
    with pytest.raises(TypeError, match="start_s"):
        scenario_from_trace(p, start_s="1")  # type: ignore[arg-type]


def test_loader_bounds_size_and_timestamps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="beyond the largest"):
        load_mahimahi(write(tmp_path, f"1\n{traces.MAX_TRACE_MS + 1}\n"))
    with pytest.raises(ValueError, match="beyond the largest"):
        load_mahimahi(write(tmp_path, "1\n" + "9" * 5000 + "\n"))
    with pytest.raises(ValueError, match="is a directory"):
        load_mahimahi(tmp_path)
    monkeypatch.setattr(traces, "MAX_TRACE_FILE_BYTES", 16)
    with pytest.raises(ValueError, match="larger than"):
        load_mahimahi(write(tmp_path, "1\n" * 9))
    assert load_mahimahi(write(tmp_path, "1\n" * 8)).size == 8
