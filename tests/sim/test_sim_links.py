"""Link specs and buffer sizing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.sim.links import BufferSpec, CellularLink, ConstantLink, StepLink, TraceLink


def test_buffer_spec_sizes() -> None:
    assert BufferSpec().size_bytes(12e6, 0.04) == 60_000  # 1 BDP
    assert BufferSpec(bdp=0.1).size_bytes(12e6, 0.04) == 6_000
    assert BufferSpec(packets=7).size_bytes(12e6, 0.04) == 10_500
    assert BufferSpec(bytes=100).size_bytes(12e6, 0.04) == 1500  # never below one MTU
    with pytest.raises(ValueError, match="at most one"):
        BufferSpec(bdp=1.0, packets=3)
    with pytest.raises(ValueError, match="bdp"):
        BufferSpec(bdp=0.0)


def test_step_link() -> None:
    link = StepLink(((0, 24e6), (10, 6e6), (20, 18e6)))
    assert link.mean_rate_bps(30.0) == pytest.approx(16e6)
    s = link.schedule(30.0, np.random.default_rng(0))
    assert s.count_between(0.0, 10.0) == 20_000
    assert s.count_between(10.0, 20.0) == 5_000
    with pytest.raises(ValueError, match="start at 0"):
        StepLink(((1.0, 1e6),))
    with pytest.raises(ValueError, match="strictly increasing"):
        StepLink(((0.0, 1e6), (0.0, 2e6)))
    with pytest.raises(ValueError, match="every rate is 0"):
        StepLink(((0.0, 0.0),))


def test_constant_and_cellular_links() -> None:
    assert ConstantLink(12e6).schedule(1.0, np.random.default_rng(0)).mean_rate_bps == 12e6
    with pytest.raises(ValueError, match="rate_bps"):
        ConstantLink(-1.0)
    c = CellularLink()
    a = c.schedule(20.0, np.random.default_rng(4))
    b = c.schedule(20.0, np.random.default_rng(4))
    assert np.array_equal(a.times_s, b.times_s) and a.period_s == 20.0


def test_trace_link_validates_file(tmp_path: Path) -> None:
    p = tmp_path / "x.up"
    p.write_text("")
    with pytest.raises(ValueError, match="empty"):
        TraceLink(str(p))
    p.write_text("1\n2\n")
    link = TraceLink(str(p))
    assert link.period_s == 0.002
    assert link.mean_rate_bps(1.0) == pytest.approx(12e6)
