"""The tests' Ray start: once more after a node that does not come up, never after another error."""

from __future__ import annotations

import pytest

from tests import support as ray_start

_TIMEOUT = Exception("The current node timed out during startup. This could happen because ...")


class _FakeRay:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.inits = []
        self.shutdowns = 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome

    def shutdown(self):
        self.shutdowns += 1


@pytest.fixture
def fake_ray(monkeypatch):
    def install(*outcomes):
        fake = _FakeRay(*outcomes)
        monkeypatch.setattr(ray_start, "ray", fake)
        return fake
    return install


def test_a_node_that_times_out_is_shut_down_and_started_once_more_with_the_same_arguments(fake_ray, capsys):
    fake = fake_ray(_TIMEOUT, None)
    ray_start.start_local_ray(num_cpus=2)
    assert fake.inits == [{"num_cpus": 2}, {"num_cpus": 2}]
    assert fake.shutdowns == 1
    assert "starting it once more" in capsys.readouterr().err


def test_a_second_timeout_raises_naming_both_attempts(fake_ray):
    fake = fake_ray(_TIMEOUT, _TIMEOUT)
    with pytest.raises(RuntimeError, match="did not start twice"):
        ray_start.start_local_ray(num_cpus=2)
    assert len(fake.inits) == 2


def test_another_error_is_raised_at_once(fake_ray):
    fake = fake_ray(ValueError("bad object_store_memory"), None)
    with pytest.raises(ValueError, match="bad object_store_memory"):
        ray_start.start_local_ray(object_store_memory=-1)
    assert len(fake.inits) == 1 and fake.shutdowns == 0
