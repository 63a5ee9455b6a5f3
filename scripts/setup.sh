#!/usr/bin/env bash
# Create (or reuse) the virtual environment $VENV (default .venv) with silofed and its dev extra.
# Sourced by scripts/test.sh and scripts/lint.sh; run alone it just sets up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[dev]"
