#!/usr/bin/env bash
# Quick start, command 1: set up .venv and run the main job on built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/oxidize-ml demo "$@"
