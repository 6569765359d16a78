"""The evaluation report: files, structure, section registry, failures."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from oxidize_ml.evaluation import report
from oxidize_ml.evaluation.plots import matplotlib_available

TINY = {
    "congestion": {
        "scenarios": ["wired-clean"],
        "duration_s": 1.0,
        "controllers": ("reno", "bbr"),
        "include_traces": False,
    }
}


def test_quick_report_writes_markdown_json_and_figures(tmp_path: Path) -> None:
    from rich.console import Console

    out = tmp_path / "rep"
    console = Console(file=io.StringIO(), width=120)
    path = report.build_report(
        out,
        seed=3,
        quick=True,
        progress=True,
        sections=["congestion"],
        options=TINY,
        strict=True,
        console=console,
    )
    assert path == out / "report.md"
    md = path.read_text()
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["seed"] == 3 and data["meta"]["quick"] is True
    assert data["meta"]["version"]
    assert data["meta"]["machine"]["cores"] >= 1
    sec = data["sections"]["congestion"]
    assert sec["status"] == "ok"
    assert {r["controller"] for r in sec["result"]["rows"]} == {"reno", "bbr"}
    assert sec["headline"]
    assert "# oxidize-ml evaluation report" in md
    assert "seed 3" in md and "quick mode" in md
    assert "## Summary: who wins where" in md
    assert sec["headline"][0] in md
    assert "## 1. Congestion control" in md
    if matplotlib_available():
        assert sec["figures"] == [
            "figures/congestion-pantheon.png",
            "figures/congestion-timeseries.png",
        ]
        for f in sec["figures"]:
            assert (out / f).is_file()
            assert f"]({f})" in md
    assert not list(out.glob(".tmp-*"))  # atomic writes left nothing behind


def test_missing_and_failing_sections_are_reported(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "oxml_broken_eval.py").write_text(
        "def run(*, seed, quick):\n    raise RuntimeError('boom ' + str(seed))\n"
        "def plot(result, out_dir):\n    return []\n"
    )
    (pkg / "oxml_ok_eval.py").write_text(
        "class R:\n"
        "    def to_dict(self):\n        return {'x': float('nan'), 'y': 2}\n"
        "    def markdown(self):\n        return 'ok body'\n"
        "    def headline(self):\n        return ['ok wins everywhere']\n"
        "def run(*, seed, quick):\n    return R()\n"
        "def plot(result, out_dir):\n    return []\n"
        "def available():\n    return None\n"
    )
    (pkg / "oxml_skip_eval.py").write_text(
        "def available():\n    return 'no trained model shipped'\n"
        "def run(*, seed, quick):\n    raise AssertionError('must not run')\n"
        "def plot(result, out_dir):\n    return []\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    sections = (
        report.Section("ok", "OK", "oxml_ok_eval"),
        report.Section("broken", "Broken", "oxml_broken_eval"),
        report.Section("skip", "Skipped", "oxml_skip_eval"),
        report.Section("absent", "Absent", "oxml_no_such_module_eval"),
    )
    monkeypatch.setattr(report, "SECTIONS", sections)
    rep = report.build_report_full(tmp_path / "r", progress=False)
    status = {o.section.key: o.status for o in rep.outcomes}
    assert status == {"ok": "ok", "broken": "failed", "skip": "skipped", "absent": "not available"}
    assert "boom 0" in rep.outcome("broken").error
    data = json.loads(rep.results_path.read_text())
    assert data["sections"]["ok"]["result"] == {"x": None, "y": 2}
    md = rep.report_path.read_text()
    assert "- ok wins everywhere" in md
    assert "**Failed**" in md and "no trained model shipped" in md
    with pytest.raises(RuntimeError, match="broken"):
        report.build_report(tmp_path / "r2", progress=False, strict=True)
    assert (tmp_path / "r2" / "report.md").is_file()  # written before raising
    for m in ("oxml_ok_eval", "oxml_broken_eval", "oxml_skip_eval"):
        sys.modules.pop(m, None)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown report sections"):
        report.build_report(tmp_path, sections=["nope"], progress=False)
    with pytest.raises(ValueError, match="options for unknown"):
        report.build_report(tmp_path, options={"nope": {}}, progress=False)
    with pytest.raises(ValueError, match="seed"):
        report.build_report(tmp_path, seed=-1, progress=False)


def test_registry_lists_the_evaluations() -> None:
    keys = [s.key for s in report.SECTIONS]
    assert keys == [
        "congestion",
        "fec",
        "fec-heldout",
        "paths",
        "compression",
        "header-compression",
    ]
    assert len(set(keys)) == len(keys)
