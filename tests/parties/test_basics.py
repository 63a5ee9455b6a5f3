"""Core programming model across parties: the RayFed example, nesting, returns, actors."""

from __future__ import annotations

import pytest
import ray

import fed
from tests.parties.common import join, leave
from tests.parties.harness import run_parties

pytestmark = pytest.mark.parties


# -- the RayFed README program, unchanged -----------------------------------

@fed.remote
class MyActor:
    def __init__(self, value):
        self.value = value

    def inc(self, num):
        self.value = self.value + num
        return self.value


@fed.remote
def aggregate(val1, val2):
    return val1 + val2


def rayfed_readme(party, addresses):
    ray.init(num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False)
    fed.init(addresses=addresses, party=party)
    actor_alice = MyActor.party("alice").remote(1)
    actor_bob = MyActor.party("bob").remote(1)
    val_alice = actor_alice.inc.remote(1)
    val_bob = actor_bob.inc.remote(2)
    sum_val_obj = aggregate.party("bob").remote(val_alice, val_bob)
    result = fed.get(sum_val_obj)
    fed.shutdown()
    ray.shutdown()
    return result


def test_rayfed_readme_example_gives_5_at_both_parties():
    run = run_parties(rayfed_readme, ("alice", "bob"))
    assert run.value("alice") == 5
    assert run.value("bob") == 5
