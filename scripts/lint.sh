#!/usr/bin/env bash
# Static checks over fed/ and proxy/: the linter (ruff) and the type checker (mypy),
# configured in pyproject.toml. Sets up (or reuses) the same virtual environment as
# scripts/test.sh with silofed and its dev extra, which pins both tools and the stubs.
# Usage: bash scripts/lint.sh        (exit status 0 only if both checks pass)
set -euo pipefail
source "$(dirname "$0")/setup.sh"

status=0
echo "== ruff check fed proxy"
"$VENV/bin/python" -m ruff check fed proxy || status=1
echo "== mypy (files and options: [tool.mypy] in pyproject.toml)"
"$VENV/bin/python" -m mypy || status=1
exit "$status"
