"""docker/docker-compose.yml agrees with configs/docker-3party.yaml, and runs when Docker is there.

The consistency checks need no Docker. The end-to-end run builds the image and
runs ``docker compose up --exit-code-from alice`` only when a Docker engine
answers (``docker info``), else it is skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fed._config import load_file_config, parse_address

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "docker-compose.yml"
CONFIG_REL = "configs/docker-3party.yaml"
DEMO = "examples/logistic_regression.py"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def config():
    return load_file_config(REPO / CONFIG_REL)


def test_services_are_the_parties(compose, config):
    assert set(compose["services"]) == set(config.parties)


def test_each_service_runs_the_demo_as_its_own_party(compose):
    for name, service in compose["services"].items():
        cmd = service["command"]
        assert cmd[:2] == ["fed", "run"], cmd
        assert cmd[cmd.index("--party") + 1] == name, cmd
        assert cmd[cmd.index("--config") + 1] == CONFIG_REL, cmd
        assert cmd[-1] == DEMO and (REPO / DEMO).is_file(), cmd


def test_addresses_are_service_names_and_ports_agree(compose, config):
    for name, party in config.parties.items():
        host, port = parse_address(party.address, name)
        assert host == name, f"{name} must be reached by its service name, not {host}"
        _, listen_port = parse_address(party.listen_address, name)
        assert listen_port == port
        assert str(port) in [str(p) for p in compose["services"][name].get("expose", [])], name


def test_image_builds_from_this_repository(compose):
    dockerfile = REPO / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    assert "FROM python:3.11-slim" in text and "pip install ." in text
    for service in compose["services"].values():
        build = service["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == REPO
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == dockerfile
        assert int(str(service["shm_size"]).rstrip("gb")) >= 1  # room for Ray's object store
    for copied in ("fed", "proxy", "examples", "configs", "pyproject.toml"):
        assert f"COPY {copied}" in text, copied


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.docker
def test_compose_runs_the_demo_to_completion():
    if not _docker_engine():
        pytest.skip("no docker engine")
    base = ["docker", "compose", "-f", str(COMPOSE)]
    try:
        proc = subprocess.run(base + ["up", "--build", "--exit-code-from", "alice"],
                              capture_output=True, text=True, timeout=1200, cwd=REPO)
    finally:
        subprocess.run(base + ["down", "--remove-orphans"], capture_output=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert "final accuracy" in proc.stdout
