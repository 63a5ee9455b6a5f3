#!/usr/bin/env bash
# Static checks over fed/ and proxy/: the linter (ruff) and the type checker (mypy),
# configured in pyproject.toml. Sets up (or reuses) the same virtual environment as
# scripts/test.sh with silofed and its dev extra, which pins both tools and the stubs.
# Usage: bash scripts/lint.sh        (exit status 0 only if both checks pass)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[dev]"

status=0
echo "== ruff check fed proxy"
"$VENV/bin/python" -m ruff check fed proxy || status=1
echo "== mypy (files and options: [tool.mypy] in pyproject.toml)"
"$VENV/bin/python" -m mypy || status=1
exit "$status"
