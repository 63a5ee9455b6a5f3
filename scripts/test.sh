#!/usr/bin/env bash
# Set up a virtual environment with silofed and its dev extra, then run the tests.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
source "$(dirname "$0")/setup.sh"
exec "$VENV/bin/python" -m pytest "$@"
