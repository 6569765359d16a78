#!/usr/bin/env bash
# Create .venv in the repo root (if missing) and install oxidize-ml with all extras.
# torch is pinned to 2.13.0 in pyproject: its CPU build is on the build machines' disk.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.oxidize-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[all]'
  touch "$stamp"
fi
