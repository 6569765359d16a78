"""The README's Python examples run as shown (they are the spec's usage, in Python)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_examples():
    assert len(python_blocks()) >= 5


def test_readme_examples_run_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("OXIDIZE_MODEL_DIR", "OXIDIZE_COLLECT_TRAINING", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    namespace: dict[str, object] = {"__name__": "readme"}
    for i, block in enumerate(python_blocks()):
        try:
            # Executing the README's own examples is the point of this test.
            exec(compile(block, f"README.md block {i}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # noqa: BLE001 - any failure of an example is reported
            pytest.fail(f"README block {i} raised {exc!r}:\n{block}")
    out = capsys.readouterr().out
    assert "Action:" in out and "New CWND:" in out
