"""Every benchmark command the README lists runs and prints its figures (tiny sizes, one run).

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
    "proxy_latency": ["--iters", "50", "--runs", "1"],
    "critical_path": ["--iters", "50"],
    "two_rays_floor": ["--iters", "50", "--runs", "1", "--link", "grpc", "--steps"],
    "vs_floor": ["--pairs", "1", "--iters", "50"],
    "chain_floor": ["--iters", "30", "--runs", "1", "--link", "grpc"],
    "ray_idle_cost": ["--calls", "20"],
    "object_wait": ["--blocks", "2", "--calls", "10"],
    "receive_table_memory": ["--messages", "1000", "--runs", "1"],
    "proxy_ab": ["--base", ".", "--blocks", "2", "--rounds", "20"],
    "in_run_ab": ["--toggle", "hand-over", "--iters", "300", "--runs", "1"],
    "loop_tail": ["--iters", "100"],
    "thread_cpu": ["--pairs", "1", "--iters", "50"],
}

# what each prints once it measured something: "median <figure>" unless said here
FIGURE = re.compile(r"median\s+[-+]?[0-9]+\.[0-9]+")
FIGURES = {
    "ray_idle_cost": re.compile(r"^actor call\s+20ms\s+[0-9]+\s+[0-9]+$", re.M),
    "loop_tail": re.compile(r"mean [0-9]+\.[0-9]+\s+p50 [0-9]+\.[0-9]+"),
    "critical_path": re.compile(r"^iteration: median [0-9]+ µs", re.M),
}


def _documented_scripts() -> set[str]:
    readme = (REPO / "README.md").read_text()
    return set(re.findall(r"^\s+\.venv/bin/python benchmarks/(\w+)\.py", readme, re.M))


def test_every_benchmark_the_readme_lists_has_a_smoke_run():
    documented = _documented_scripts()
    assert documented, "README lists no benchmark command"
    assert documented == set(SMOKE_ARGS), (
        f"README lists {sorted(documented - set(SMOKE_ARGS))} without a smoke run here; "
        f"smoke runs for unlisted {sorted(set(SMOKE_ARGS) - documented)}")


@pytest.mark.parametrize("script", sorted(SMOKE_ARGS))
def test_benchmark_runs_and_prints_its_figures(script):
    out = run_commands((sys.executable, f"benchmarks/{script}.py", *SMOKE_ARGS[script]), timeout=150)[0]
    assert FIGURES.get(script, FIGURE).search(out), f"benchmarks/{script}.py printed no figure:\n{out}"
