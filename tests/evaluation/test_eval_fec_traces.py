"""Tests of evaluate_fec_traces: FEC and loss prediction on traces built at run time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from oxidize_ml.evaluation import fec


def write_trace(path: Path, seed: int, seconds: int = 6) -> Path:
    """A cellular-like Mahimahi trace: capacity changing every 500 ms, with outages."""
    rng = np.random.default_rng(seed)
    lines = []
    for block in range(seconds * 2):
        start = block * 500
        if rng.uniform() < 0.15:
            continue  # a 500-ms outage
        per_ms = float(rng.choice([0.3, 1.0, 2.0, 4.0]))  # packets per ms (3.6-48 Mbit/s)
        n = int(per_ms * 500)
        stamps = np.sort(rng.integers(start + 1, start + 501, size=n))
        lines += [str(int(s)) for s in stamps]
    lines.append(str(seconds * 1000))
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("traces")
    return [write_trace(d / "a.down", 1), write_trace(d / "b.up", 2)]


@pytest.fixture(scope="module")
def result(traces):
    return fec.evaluate_fec_traces(
        traces, rtt_ms=(40.0, 100.0), duration_s=4.0, seed=0, progress=False
    )


def test_summary_has_exactly_the_contract_keys(result):
    s = result["summary"]
    assert set(s) == {"default", "predictors"}
    assert isinstance(s["default"], str)
    assert s["default"] in s["predictors"]
    assert {"ewma", "lstm", "burst"} <= set(s["predictors"])
    for name, v in s["predictors"].items():
        assert set(v) == {"pr_auc", "brier", "residual_ratio_vs_ewma"}, name
        for x in v.values():
            assert x is None or (isinstance(x, float) and math.isfinite(x))
    assert s["predictors"]["ewma"]["residual_ratio_vs_ewma"] == 1.0
    json.dumps(result, allow_nan=False)  # strict JSON


def test_windows_rtts_and_controllers_are_all_run(result, traces):
    runs = result["runs"]
    assert len(runs) == len(traces) * fec.TRACE_WINDOWS * 2 * len(fec.CONTROLLERS)
    assert {r["scenario"].rsplit("rtt", 1)[1] for r in runs} == {"40", "100"}
    assert len({r["scenario"].split("@")[1].split("/")[0] for r in runs}) == fec.TRACE_WINDOWS
    assert set(result["per_rtt"]) == {"40", "100"}
    assert set(result["per_family"]) == {"a", "b"}
    assert result["config"]["rtt_ms"] == [40.0, 100.0]
    # the runs lose packets (the comparison is not vacuous)
    assert result["operating_points"]["none"]["residual"] > 0.0


def test_curves_include_the_baselines_and_the_bound(result):
    curves = result["curves"]
    for name in ("ewma", "lstm", "burst", "burst_policy", "hindsight", "fixed", "webrtc"):
        c = curves[name]
        assert len(c["overhead"]) == len(c["residual"]) == len(c["knobs"])
    # the hindsight bound leaves no more than the EWMA at the EWMA's overhead
    assert result["pooled"]["hindsight"]["residual_ratio_vs_ewma"] <= 1.0 + 1e-9
    assert set(result["ci"]) >= {"lstm", "burst"}


def test_same_seed_same_numbers(result, traces):
    again = fec.evaluate_fec_traces(
        traces, rtt_ms=(40.0, 100.0), duration_s=4.0, seed=0, progress=False
    )
    assert again["summary"] == result["summary"]
    assert again["ci"] == result["ci"]


def test_unreadable_traces_name_the_file(tmp_path, traces):
    bad = tmp_path / "garbage.down"
    bad.write_text("12\nnot-a-number\n", encoding="ascii")
    with pytest.raises(ValueError, match="garbage.down"):
        fec.evaluate_fec_traces([traces[0], bad], duration_s=2.0, progress=False)
    missing = tmp_path / "nope.up"
    with pytest.raises(ValueError, match="nope.up"):
        fec.evaluate_fec_traces([missing], duration_s=2.0, progress=False)
    with pytest.raises(ValueError, match=str(tmp_path.name)):
        fec.evaluate_fec_traces([tmp_path], duration_s=2.0, progress=False)


def test_invalid_arguments(traces):
    with pytest.raises(ValueError, match="trace_paths"):
        fec.evaluate_fec_traces([], progress=False)
    with pytest.raises(TypeError, match="trace_paths"):
        fec.evaluate_fec_traces(traces[0], progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rtt_ms"):
        fec.evaluate_fec_traces(traces, rtt_ms=(), progress=False)
    with pytest.raises(ValueError, match=r"rtt_ms\[1\]"):
        fec.evaluate_fec_traces(traces, rtt_ms=(40.0, -1.0), progress=False)
    with pytest.raises(ValueError, match="duration_s"):
        fec.evaluate_fec_traces(traces, duration_s=0.1, progress=False)
    with pytest.raises(ValueError, match="duration_s"):
        fec.evaluate_fec_traces(traces, duration_s=1e9, progress=False)
    with pytest.raises(TypeError, match="seed"):
        fec.evaluate_fec_traces(traces, seed=0.5, progress=False)  # type: ignore[arg-type]


def test_markdown_and_plot(result, tmp_path):
    md = fec.markdown_traces(result)
    assert "| pooled |" in md and "RTT 40 ms" in md and "| a |" in md
    assert "burst" in md and "bootstrap" in md
    pytest.importorskip("matplotlib")
    paths = fec.plot_traces(result, tmp_path)
    assert [p.name for p in paths] == ["fec-traces-overhead-residual.png"]
    assert paths[0].stat().st_size > 1000


def test_heldout_split_without_the_trace_folder(monkeypatch, tmp_path):
    # No traces: the built-in held-out scenarios alone, with a note.
    monkeypatch.setenv("OXIDIZE_TRACE_DIR", str(tmp_path / "absent"))
    r = fec.evaluate_fec_heldout(seed=0, duration_s=4.0, n_seeds=1)
    assert r["traces"] == []
    assert set(r["per_family"]) == {"step-change", "satellite"}
    assert set(r["per_rtt"]) == {"scenario"}
    assert any("OXIDIZE_TRACE_DIR" in n for n in r["notes"])
    assert set(r["summary"]["predictors"]) >= {"ewma", "lstm", "burst"}


def test_report_section_adapter_renders_markdown_headline_and_figure(result, tmp_path):
    from oxidize_ml.evaluation.fec_windows import FecWindowsResult, plot

    section = FecWindowsResult(result)
    md = section.markdown()
    assert "PR-AUC" in md and "ratio" in md
    (line,) = section.headline()
    assert f"default: {result['summary']['default']}" in line
    assert "burst" in line
    assert section.to_dict() is result
    pytest.importorskip("matplotlib")
    files = plot(section, tmp_path)
    assert files and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
