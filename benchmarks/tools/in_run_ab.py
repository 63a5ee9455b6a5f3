"""Two variants of the tiny-task loop compared within one run, in alternating blocks.

Runs RayFed's tiny-task loop (``tiny_tasks.py``) once per ``--runs``, switching
both parties between variant A and variant B every ``--block`` iterations
(the order within each pair of blocks drawn at random, the same at both
parties). Both variants share the processes, the Rays and the minute, so the
machine's drift between runs, which moves the loop by a third between
half-hours here, cancels out; what is left is the block-to-block noise.
Blocks of 150 iterations (~0.4 s) do not line up with Ray's once-a-second
work (task events), which blocks of 200 (~0.5 s) would always put in the
same variant.

Variants (``--toggle``):

* ``switch-interval``: Python's thread switch interval 0.5 ms (A) vs its
  default 5 ms (B), set in both drivers.
* ``hand-over``: a small receive a program waits for hands the interpreter
  lock over at once (A, what silofed does, REP 0060) vs not (B).
* ``ref-getter``: a send gets its Ray object's value with ``ray.get`` on
  a helper thread (A, what silofed does, REP 0140) vs by awaiting the ref
  on the proxy loop (B).
* ``submit-thread``: a call that waited for data is submitted to Ray at once
  in the proxy loop's callback that resolved its input (A, what silofed does
  unless a submission was slow, REP 0190) vs always on the submit thread (B).
* ``spin``: nothing (A) vs a busy wait of ``--spin-us`` in every receive's
  resolution at both parties (B): a known cost on the critical path, to see
  what difference this method can resolve.
* ``spin-after``: the same busy wait once the receive is resolved, where the
  receiver answers the message (B): what the proxy loop's Python costs the
  program woken by that receive.

Prints, per run, each variant's mean ms per iteration and CPU of all
processes per iteration, and the median of the paired block differences;
then the median, min and max over the runs of the difference in means.

Usage: python benchmarks/tools/in_run_ab.py --toggle hand-over [--iters N] [--block B] [--runs R]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import fed  # noqa: E402
from benchmarks import _launch  # noqa: E402
from benchmarks.tiny_tasks import _busy_cpu_s, start_loop  # noqa: E402
from fed import _runtime  # noqa: E402
from fed._hosts import driver_receiver as _receiver_host  # noqa: E402  (private steps are what the toggles switch)
from fed._hosts.ref_getter import RefGetter  # noqa: E402
from proxy._stream_answers import StreamAnswers  # noqa: E402

TOGGLES = ("switch-interval", "hand-over", "ref-getter", "submit-thread", "spin", "spin-after")


def _toggle(name: str, spin_us: float) -> Callable[[str], None]:
    """A function switching this process to variant ``"A"`` or ``"B"`` of toggle ``name``."""
    if name == "switch-interval":
        return lambda which: sys.setswitchinterval(0.0005 if which == "A" else 0.005)
    if name == "hand-over":
        hand_over = _receiver_host._hand_over_interpreter

        def apply(which: str) -> None:
            _receiver_host._hand_over_interpreter = hand_over if which == "A" else (lambda: None)
        return apply
    if name == "ref-getter":
        value = RefGetter.value

        async def awaited(self, ref):
            return await ref

        def apply(which: str) -> None:
            RefGetter.value = value if which == "A" else awaited
        return apply
    if name == "submit-thread":
        def apply(which: str) -> None:  # B: as if a slow submission had turned the back-off on for good
            _runtime.current().job.submitter._helper_until = 0.0 if which == "A" else float("inf")
        return apply
    return _spin_toggle(name, spin_us)


def _busy_wait(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def _spin_toggle(name: str, spin_us: float) -> Callable[[str], None]:
    """Variant B busy-waits ``spin_us`` in every receive: as it is resolved (``spin``) or
    once it is resolved, where the receiver answers it (``spin-after``)."""
    if name == "spin":
        owner, attr = _receiver_host.DriverReceiver, "_resolve"
        original = owner._resolve

        def slowed(self, *args):
            _busy_wait(spin_us / 1e6)
            return original(self, *args)
    else:
        owner, attr = StreamAnswers, "answer"
        original = owner.answer

        async def slowed(self, *args, **kwargs):
            _busy_wait(spin_us / 1e6)
            return await original(self, *args, **kwargs)

    def apply(which: str) -> None:
        setattr(owner, attr, original if which == "A" else slowed)
    return apply


def body(party, addresses, iters, warmup, toggle, block, seed, spin_us):
    one = start_loop(party, addresses)
    apply = _toggle(toggle, spin_us)
    for _ in range(warmup):
        one()
    rng = random.Random(seed)  # the same order at both parties: they switch at the same iteration
    order = [v for _ in range(iters // block // 2) for v in rng.choice((("A", "B"), ("B", "A")))]
    ms = {"A": [], "B": []}
    cpu = {"A": 0.0, "B": 0.0}
    for which in order:
        apply(which)
        cpu0, t0 = _busy_cpu_s(), time.perf_counter()
        for _ in range(block):
            one()
        ms[which].append((time.perf_counter() - t0) / block * 1000)
        cpu[which] += _busy_cpu_s() - cpu0
    apply("A")
    fed.shutdown()
    blocks = len(order) // 2
    return ms, {v: cpu[v] / (blocks * block) * 1000 for v in cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toggle", choices=TOGGLES, required=True)
    ap.add_argument("--iters", type=int, default=9000, help="iterations per run, both variants together")
    ap.add_argument("--block", type=int, default=150)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--spin-us", type=float, default=50.0, help="busy wait per receive in variant B of the spin toggles")
    opts = ap.parse_args()
    if opts.iters < 2 * opts.block:
        ap.error("--iters must be at least two blocks")
    differences = []
    for run in range(opts.runs):
        res = _launch.run(body, ("alice", "bob"), args=dict(
            iters=opts.iters, warmup=100, toggle=opts.toggle, block=opts.block, seed=run, spin_us=opts.spin_us))
        ms, cpu = res["alice"]["value"]
        mean_a, mean_b = statistics.mean(ms["A"]), statistics.mean(ms["B"])
        paired = [x - y for x, y in zip(ms["A"], ms["B"])]
        differences.append(mean_a - mean_b)
        print(f"run {run + 1}: A {mean_a:.3f} ms/iter (CPU {cpu['A']:.2f} ms), B {mean_b:.3f} ms/iter "
              f"(CPU {cpu['B']:.2f} ms); A - B {mean_a - mean_b:+.3f}, paired blocks median "
              f"{statistics.median(paired):+.3f}, A faster in {sum(d < 0 for d in paired)}/{len(paired)}", flush=True)
    print(_launch.summary(f"{opts.toggle}: A - B", differences, "ms/iter"))


if __name__ == "__main__":
    # The parties import the bodies by module name, so run them from the module, not __main__.
    from benchmarks.tools import in_run_ab

    in_run_ab.main()
