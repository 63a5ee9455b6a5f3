"""Every benchmark command the docs list runs and prints its figures (tiny sizes, one run).

The commands are listed in benchmarks/README.md (benchmarks and investigation
tools) and docs/performance.md.

The figures themselves are not checked (speed is measured by the scripts, not
by tests); what is checked is that each documented command still works against
the current code, since several reach into silofed's private steps to time or
switch them.
"""

from __future__ import annotations

import re
import sys

import pytest

from tests.support import REPO, run_commands

pytestmark = pytest.mark.parties

# script -> arguments small enough for a smoke run (each starts its own parties and Rays)
SMOKE_ARGS = {
    "tiny_tasks": ["--iters", "20", "--runs", "1"],
    "throughput": ["--sizes", "1M", "--runs", "1"],
    "startup": ["--runs", "1"],
    "tools/proxy_latency": ["--iters", "50", "--runs", "1"],
    "tools/critical_path": ["--iters", "50"],
    "two_rays_floor": ["--iters", "50", "--runs", "1", "--link", "grpc", "--steps"],
    "vs_floor": ["--pairs", "1", "--iters", "50"],
    "chain_floor": ["--iters", "30", "--runs", "1", "--link", "grpc"],
    "tools/ray_idle_cost": ["--calls", "20"],
    "tools/object_wait": ["--blocks", "2", "--calls", "10"],
    "tools/receive_table_memory": ["--messages", "1000", "--runs", "1"],
    "tools/proxy_ab": ["--base", ".", "--blocks", "2", "--rounds", "20"],
    "tools/in_run_ab": ["--toggle", "hand-over", "--iters", "300", "--runs", "1"],
    "tools/loop_tail": ["--iters", "100"],
    "tools/thread_cpu": ["--pairs", "1", "--iters", "50"],
}

# what each prints once it measured something: "median <figure>" unless said here
FIGURE = re.compile(r"median\s+[-+]?[0-9]+\.[0-9]+")
FIGURES = {
    "tools/ray_idle_cost": re.compile(r"^actor call\s+20ms\s+[0-9]+\s+[0-9]+$", re.M),
    "tools/loop_tail": re.compile(r"mean [0-9]+\.[0-9]+\s+p50 [0-9]+\.[0-9]+"),
    "tools/critical_path": re.compile(r"^iteration: median [0-9]+ µs", re.M),
}


LISTS = ("benchmarks/README.md", "docs/performance.md")


def _documented_scripts() -> set[str]:
    """Scripts (relative to benchmarks/) of every `.venv/bin/python benchmarks/...py` command the lists hold."""
    found: set[str] = set()
    for doc in LISTS:
        found |= set(re.findall(r"\.venv/bin/python benchmarks/((?:tools/)?\w+)\.py", (REPO / doc).read_text()))
    return found


def test_every_benchmark_the_docs_list_has_a_smoke_run():
    documented = _documented_scripts()
    assert documented, "the docs list no benchmark command"
    assert documented == set(SMOKE_ARGS), (
        f"{LISTS} list {sorted(documented - set(SMOKE_ARGS))} without a smoke run here; "
        f"smoke runs for unlisted {sorted(set(SMOKE_ARGS) - documented)}")


@pytest.mark.parametrize("script", sorted(SMOKE_ARGS))
def test_benchmark_runs_and_prints_its_figures(script):
    out = run_commands((sys.executable, f"benchmarks/{script}.py", *SMOKE_ARGS[script]), timeout=150)[0]
    assert FIGURES.get(script, FIGURE).search(out), f"benchmarks/{script}.py printed no figure:\n{out}"
