"""Helpers used inside party bodies."""

from __future__ import annotations

from typing import Any

import ray

import fed
from tests.parties.harness import OBJECT_STORE_BYTES
from tests.ray_start import start_local_ray


def start_ray() -> None:
    """Start this party's own small Ray, as the harness expects."""
    start_local_ray(num_cpus=2, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False, log_to_driver=True)


def join(party: str, addresses: dict, **kwargs: Any) -> None:
    """Start Ray and join the job with ``addresses``."""
    start_ray()
    fed.init(addresses=addresses, party=party, **kwargs)


def leave() -> None:
    """Leave the job and stop Ray."""
    fed.shutdown()
    ray.shutdown()
