#!/usr/bin/env bash
# Compiled pass: install oxidize-ml with its packet path compiled by mypyc
# (OXIDIZE_ML_COMPILE=1, non-editable) into .venv-compiled, check that the listed
# modules load as extension modules, then run the test suite against that install.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-compiled/bin/python ]; then
  "$PY" -m venv .venv-compiled
  .venv-compiled/bin/python -m pip install --quiet --upgrade pip
fi
# Uninstall first: pip may keep an installed oxidize-ml of the same version, and the
# compiled modules must be built from this tree.
if .venv-compiled/bin/python -m pip show --quiet oxidize-ml 2>/dev/null; then
  .venv-compiled/bin/python -m pip uninstall --quiet --yes oxidize-ml
fi
OXIDIZE_ML_COMPILE=1 .venv-compiled/bin/python -m pip install --quiet '.[all]'
# Read by tests/test_bench.py: every module in _build/compiled-modules.txt must be
# imported from its extension module in the installed package, never from src/.
export OXIDIZE_ML_EXPECT_COMPILED=1
.venv-compiled/bin/python -m pytest -p no:cacheprovider -p no:xdist -q \
  tests/test_bench.py -k compiled_run
exec .venv-compiled/bin/python -m pytest -n 2 -p no:cacheprovider tests "$@"
