"""`oxidize-ml evaluate ...` end to end on traces and captures built at run time."""

from __future__ import annotations

import importlib
import json
import random
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oxidize_ml.cli import app
from oxidize_ml.evaluation.plots import matplotlib_available

runner = CliRunner()

CONGESTION_KEYS = {
    "goodput_ratio_vs_cubic",
    "queue_delay_ratio_vs_cubic",
    "worst_goodput_ratio_vs_cubic",
    "max_loss",
}


def write_trace(path: Path, stamps: list[int] | range) -> Path:
    path.write_text("\n".join(str(t) for t in stamps) + "\n")
    return path


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("user-traces")
    rng = random.Random(5)
    # a bursty cellular-like trace: 0-3 opportunities per ms for 4 s
    bursty = [t for t in range(1, 4001) for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))]
    return {
        "steady": write_trace(d / "steady.down", range(2, 4001, 2)),
        "silent": write_trace(d / "silent.up", range(700, 4001)),  # 700 ms of nothing first
        "bursty": write_trace(d / "bursty.down", bursty),
    }


def congestion_args(traces: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "congestion",
        "--trace",
        str(traces["steady"]),
        "--trace",
        str(traces["silent"]),
        "--duration",
        "1.5",
        "--windows",
        "2",
        "--bootstrap",
        "200",
        "--controllers",
        "cubic,bbr,engine",
        "--json",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_congestion_end_to_end_with_report(traces: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cong.json"
    rep = tmp_path / "report"
    res = runner.invoke(app, congestion_args(traces, out, "--report", str(rep)))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data["summary"]) == {"default", "controllers"}
    assert data["summary"]["default"] == "engine"
    assert set(data["summary"]["controllers"]) == {"cubic", "bbr", "engine"}
    for v in data["summary"]["controllers"].values():
        assert set(v) == CONGESTION_KEYS
    assert data["summary"]["controllers"]["cubic"]["goodput_ratio_vs_cubic"] == 1.0
    # the silent start is a window of its own, kept and flagged
    silent = [w for w in data["windows"] if w["trace"] == "silent.up" and w["silent_start"]]
    assert len(silent) == 1 and silent[0]["first_opportunity_ms"] == 700
    assert len(data["runs"]) == len(data["units"]) * 3 == 4 * 2 * 3
    assert data["config"]["rtts_ms"] == [40.0, 100.0] and data["config"]["buffer_bdp"] == 2.0
    lo, hi = data["aggregates"]["bbr"]["goodput_ratio_ci"]
    assert lo <= data["summary"]["controllers"]["bbr"]["goodput_ratio_vs_cubic"] <= hi
    assert data["traces"] == [str(traces["steady"]), str(traces["silent"])]
    assert "default" in res.output and "json:" in res.output
    md = (rep / "report.md").read_text()
    assert "| silent.up | 0 | 40 |" in md and "| SO |" in md
    if matplotlib_available():
        assert (rep / "figures" / "congestion-windows.png").read_bytes()[:4] == b"\x89PNG"
        assert "![congestion-windows](figures/congestion-windows.png)" in md


def test_congestion_dqn_defaults_to_the_specs_dqn_shipped_as_a_candidate(
    traces: dict[str, Path], tmp_path: Path
) -> None:
    """``dqn`` without --dqn-model runs models/candidates/dqn (the defaults hold the
    residual DQN, which the engine runs)."""
    out = tmp_path / "dqn.json"
    args = congestion_args(traces, out)
    args[args.index("cubic,bbr,engine")] = "cubic,dqn"
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data["summary"]["controllers"]) == {"cubic", "dqn"}
    assert len(data["runs"]) == len(data["units"]) * 2


def test_congestion_same_seed_same_json(traces: dict[str, Path], tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    assert runner.invoke(app, congestion_args(traces, a, "--seed", "3")).exit_code == 0
    assert runner.invoke(app, congestion_args(traces, b, "--seed", "3")).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    assert runner.invoke(app, congestion_args(traces, c, "--seed", "4")).exit_code == 0
    assert json.loads(c.read_text())["seed"] == 4
    assert (
        json.loads(c.read_text())["units"][0]["seed"]
        != json.loads(a.read_text())["units"][0]["seed"]
    )


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "no such file"),
        ("", "is empty"),
        ("1\n2\nthree\n", "line 3"),
        ("5\n3\n", "non-decreasing"),
        ("0\n", "lasts 0 ms"),
    ],
)
def test_congestion_names_the_bad_trace(tmp_path: Path, content: str | None, match: str) -> None:
    bad = tmp_path / "user.up"
    if content is not None:
        bad.write_text(content)
    res = runner.invoke(
        app,
        [
            "evaluate",
            "congestion",
            "--trace",
            str(bad),
            "--json",
            str(tmp_path / "o.json"),
            "--no-progress",
        ],
    )
    assert res.exit_code == 2
    assert "user.up" in res.output and match in res.output.replace("\n", " ")
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--rtt-ms", "40,abc"], "not a number"),
        (["--rtt-ms", "0"], "out of range"),
        (["--rtt-ms", "40,40"], "twice"),
        (["--rtt-ms", ""], "comma-separated"),
        (["--duration", "0"], "--duration must be > 0"),
        (["--duration", "nan"], "--duration"),
        (["--windows", "0"], "--windows must be >= 1"),
        (["--buffer-bdp", "-1"], "--buffer-bdp"),
        (["--bootstrap", "5"], "--bootstrap"),
        (["--controllers", "cubic,vegas"], "unknown controller"),
        (["--controllers", "cubic,cubic"], "twice"),
        (["--seed", "-1"], "--seed"),
        (["--heldout"], "not both"),
    ],
)
def test_congestion_validates_options(
    traces: dict[str, Path], tmp_path: Path, args: list[str], match: str
) -> None:
    res = runner.invoke(
        app,
        [
            "evaluate",
            "congestion",
            "--trace",
            str(traces["steady"]),
            "--json",
            str(tmp_path / "o.json"),
            "--no-progress",
            *args,
        ],
    )
    assert res.exit_code == 2, res.output
    assert match in res.output.replace("\n", " ")


def test_congestion_needs_a_trace(tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", "congestion", "--json", str(tmp_path / "o.json")])
    assert res.exit_code == 2 and "--trace" in res.output
    res = runner.invoke(
        app,
        ["evaluate", "congestion", "--trace", str(tmp_path), "--json", str(tmp_path / "o.json")],
    )
    assert res.exit_code == 2 and "not a regular file" in res.output


# ---------------------------------------------------------------- the other areas


def _has(module: str, name: str) -> bool:
    return callable(getattr(importlib.import_module(module), name, None))


@pytest.mark.parametrize(
    ("command", "module", "name", "flag"),
    [
        ("fec", "oxidize_ml.evaluation.fec", "evaluate_fec_traces", "--trace"),
        ("compression", "oxidize_ml.evaluation.compression", "evaluate_pcaps", "--pcap"),
        ("paths", "oxidize_ml.evaluation.paths", "evaluate_path_traces", "--trace"),
    ],
)
def test_missing_evaluation_says_not_available(
    traces: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    module: str,
    name: str,
    flag: str,
) -> None:
    monkeypatch.delattr(importlib.import_module(module), name, raising=False)
    res = runner.invoke(
        app, ["evaluate", command, flag, str(traces["steady"]), "--json", str(tmp_path / "o.json")]
    )
    assert res.exit_code == 2
    assert "not available in this version" in res.output and name in res.output
    assert not (tmp_path / "o.json").exists()


def test_other_commands_check_their_files_first(tmp_path: Path) -> None:
    for command, flag in (("fec", "--trace"), ("compression", "--pcap"), ("paths", "--trace")):
        missing = tmp_path / f"missing-{command}"
        res = runner.invoke(
            app, ["evaluate", command, flag, str(missing), "--json", str(tmp_path / "o.json")]
        )
        assert res.exit_code == 2 and f"missing-{command}" in res.output
        res = runner.invoke(app, ["evaluate", command, "--json", str(tmp_path / "o.json")])
        assert res.exit_code == 2 and flag in res.output
    res = runner.invoke(
        app,
        [
            "evaluate",
            "compression",
            "--pcap",
            str(tmp_path),
            "--rates-mbps",
            "5,x",
            "--json",
            str(tmp_path / "o.json"),
        ],
    )
    assert res.exit_code == 2


@pytest.mark.skipif(
    not _has("oxidize_ml.evaluation.fec", "evaluate_fec_traces"),
    reason="evaluate_fec_traces is not in this build yet",
)
def test_fec_end_to_end(traces: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fec.json"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "fec",
            "--trace",
            str(traces["bursty"]),
            "--trace",
            str(traces["steady"]),
            "--rtt-ms",
            "40",
            "--duration",
            "2",
            "--json",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    s = json.loads(out.read_text())["summary"]
    assert set(s) == {"default", "predictors"}
    assert "ewma" in s["predictors"] and s["default"] in s["predictors"]
    for v in s["predictors"].values():
        assert set(v) == {"pr_auc", "brier", "residual_ratio_vs_ewma"}
    bad = write_trace(tmp_path / "bad.down", [])
    res = runner.invoke(app, ["evaluate", "fec", "--trace", str(bad), "--json", str(out)])
    assert res.exit_code == 2 and "bad.down" in res.output


def write_pcap(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A classic pcap (Ethernet link type) of IPv4/UDP packets: text and random payloads."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        if i % 2:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(200, 1200)))
        else:
            payload = (b'{"user": "%d", "event": "click", "items": [1, 2, 3]} ' % i) * 12
        udp = struct.pack("!HHHH", 40000 + i % 7, 443, 8 + len(payload), 0) + payload
        ip = (
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(udp),
                i,
                0,
                64,
                17,
                0,
                bytes([10, 0, 0, 1]),
                bytes([10, 0, 0, 2]),
            )
            + udp
        )
        frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip
        records.append(
            struct.pack(
                "<IIII", 1_700_000_000 + i // 10, (i % 10) * 100_000, len(frame), len(frame)
            )
            + frame
        )
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(records))
    return path


@pytest.mark.skipif(
    not _has("oxidize_ml.evaluation.compression", "evaluate_pcaps"),
    reason="evaluate_pcaps is not in this build yet",
)
def test_compression_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "comp.json"
    cap = write_pcap(tmp_path / "user.pcap")
    res = runner.invoke(
        app,
        [
            "evaluate",
            "compression",
            "--pcap",
            str(cap),
            "--rates-mbps",
            "5,20,100",
            "--json",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    s = json.loads(out.read_text())["summary"]
    assert set(s) == {"oracles", "rohc_only_non_udp"}
    for name in ("heuristic", "default", "always_lz4", "always_zstd", "never"):
        assert set(s["oracles"][name]["net_share"]) == {"5", "20", "100"}
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    res = runner.invoke(app, ["evaluate", "compression", "--pcap", str(junk), "--json", str(out)])
    assert res.exit_code == 2 and "junk.pcap" in res.output


@pytest.mark.skipif(
    not _has("oxidize_ml.evaluation.paths", "evaluate_path_traces"),
    reason="evaluate_path_traces is not in this build yet",
)
def test_paths_end_to_end(traces: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "paths.json"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "paths",
            "--trace",
            str(traces["steady"]),
            "--trace",
            str(traces["bursty"]),
            "--steps",
            "20",
            "--episodes",
            "1",
            "--json",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    s = json.loads(out.read_text())["summary"]
    assert set(s) == {"selectors"}
    for name in ("ucb1", "ucb1_stationary", "min_rtt", "round_robin", "learned", "default"):
        assert set(s["selectors"][name]) == {"regret_per_step"}
    # one trace is not a choice of paths
    res = runner.invoke(
        app,
        [
            "evaluate",
            "paths",
            "--trace",
            str(traces["steady"]),
            "--json",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 2


def test_demo_runs_the_held_out_windows_from_the_trace_folder(
    traces: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oxidize_ml.evaluation.splits import ENV_TRACE_DIR, HELDOUT_TRACES

    folder = tmp_path / "mahimahi"
    folder.mkdir()
    # the held-out names, with run-time content (one of them starting silent)
    for name, src in zip(HELDOUT_TRACES, ("steady", "silent", "bursty", "steady"), strict=True):
        (folder / name).write_text(traces[src].read_text())
    monkeypatch.setenv(ENV_TRACE_DIR, str(folder))
    out = tmp_path / "report"
    res = runner.invoke(
        app,
        [
            "demo",
            "--quick",
            "--only",
            "congestion",
            "--duration",
            "0.5",
            "--windows",
            "1",
            "--no-models",
            "--no-progress",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    sec = json.loads((out / "results.json").read_text())["sections"]["congestion"]
    held = sec["result"]["heldout_windows"]
    assert held["config"]["n_windows"] == 1 and held["config"]["duration_s"] == 0.5
    assert [w["trace"] for w in held["windows"]] == list(HELDOUT_TRACES)
    assert held["windows"][1]["silent_start"]
    assert set(held["summary"]["controllers"]) >= {"cubic", "bbr"}
    assert "Held-out Mahimahi trace windows" in (out / "report.md").read_text()
