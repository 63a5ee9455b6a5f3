"""Fixtures shared by every test module (helpers live in ``tests/support.py``)."""

from __future__ import annotations

import pytest

from tests.support import PLACEMENTS


@pytest.fixture(params=PLACEMENTS, ids=list(PLACEMENTS))
def placement(request: pytest.FixtureRequest) -> str:
    """Where the parties run their proxies: "driver" (in the driver process) or "actor" (as Ray actors).

    A test taking this fixture runs once per placement; it passes it to
    ``run_parties(..., placement=placement)``, whose parties place their proxies
    accordingly through ``tests.support.join`` / ``placed``.
    """
    return request.param
