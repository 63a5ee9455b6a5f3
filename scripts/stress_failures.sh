#!/usr/bin/env bash
# Repeat the failure-propagation tests to catch races: error cascade (10 rounds per
# run), kill -9 of a peer, exit codes with exit_on_failure. Prints a tally.
# Usage: bash scripts/stress_failures.sh [RUNS]   (default 10; about 2 minutes a run)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
runs="${1:-10}"
passed=0
failed=0
for i in $(seq "$runs"); do
  if "$PY" -m pytest -q -p no:cacheprovider tests/parties/test_failures.py \
      -k "cascade or kill_9 or exit_codes" >"/tmp/stress_failures_$i.log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "run $i failed: see /tmp/stress_failures_$i.log"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
