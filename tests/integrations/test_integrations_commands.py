"""`oxidize-ml emulate` and `oxidize-ml e2e` through the real CLI app."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oxidize_ml.cli import app

runner = CliRunner()


def test_commands_are_registered() -> None:
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    assert "emulate" in out.output and "e2e" in out.output


def test_emulate_runs_for_a_duration_and_reports(tmp_path: Path) -> None:
    js = tmp_path / "emu.json"
    out = runner.invoke(
        app,
        [
            "emulate",
            "--listen",
            "0",
            "--target",
            "127.0.0.1:9",
            "--rate-mbps",
            "4",
            "--delay-ms",
            "5",
            "--duration",
            "0.2",
            "--json",
            str(js),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "link emulator report" in out.output
    data = json.loads(js.read_text())
    assert data["downlink"]["received"] == 0 and data["config"]["target"] == ["127.0.0.1", 9]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "127.0.0.1:9", "--duration", "0.1"], "--trace FILE or --rate-mbps"),
        (["--target", "10.1.2.3:9", "--rate-mbps", "1"], "loopback"),
        (["--target", "nonsense", "--rate-mbps", "1"], "HOST:PORT"),
        (["--target", "127.0.0.1:9", "--trace", "/nonexistent.down"], "does not exist"),
        (
            ["--target", "127.0.0.1:9", "--rate-mbps", "1", "--client-idle-s", "0"],
            "client_idle_timeout_s",
        ),
        (["--target", "127.0.0.1:9", "--rate-mbps", "1", "--max-clients", "0"], "max_clients"),
    ],
)
def test_emulate_errors_are_clear(args: list[str], message: str) -> None:
    out = runner.invoke(app, ["emulate", "--listen", "0", *args])
    assert out.exit_code == 2
    assert message in out.output


def test_e2e_small_run_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("aioquic")
    out = runner.invoke(
        app,
        [
            "e2e",
            "--rate-mbps",
            "6",
            "--delay-ms",
            "10",
            "--bytes",
            "100000",
            "--controllers",
            "oxidize",
            "--no-sim",
            "--no-plot",
            "--out",
            str(tmp_path),
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "e2e.json").read_text())
    (row,) = data["results"]
    assert row["controller"] == "oxidize" and row["completed"]
    assert "oxidize" in out.output and "simulator not run" in out.output


def test_e2e_rejects_unknown_controller(tmp_path: Path) -> None:
    out = runner.invoke(app, ["e2e", "--controllers", "reno,vegas", "--out", str(tmp_path)])
    assert out.exit_code == 2
    assert "vegas" in out.output and "reno" in out.output


def test_missing_aioquic_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hide aioquic and force a fresh import of the modules that need it.
    monkeypatch.setitem(sys.modules, "aioquic.asyncio", None)
    monkeypatch.setitem(sys.modules, "aioquic.quic.congestion.base", None)
    for name in ("oxidize_ml.integrations.e2e", "oxidize_ml.integrations.aioquic"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r"'aioquic' extra"):
        importlib.import_module("oxidize_ml.integrations.aioquic")
    with pytest.raises(ImportError, match=r"'aioquic' extra"):
        importlib.import_module("oxidize_ml.integrations.e2e")
    out = runner.invoke(app, ["e2e", "--controllers", "reno"])
    assert out.exit_code == 2 and "aioquic" in out.output
    # The package itself still imports without aioquic (restore the parent's attribute too).
    import oxidize_ml
    import oxidize_ml.integrations

    monkeypatch.setattr(oxidize_ml, "integrations", oxidize_ml.integrations)
    monkeypatch.delitem(sys.modules, "oxidize_ml.integrations", raising=False)
    pkg = importlib.import_module("oxidize_ml.integrations")
    assert "register_oxidize" in dir(pkg)
