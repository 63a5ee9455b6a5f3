"""gRPC is imported with its polling endpoints (REP 0110), unless the user chose otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from proxy import _grpc_endpoints

ROOT = Path(__file__).resolve().parents[2]

# Records GRPC_EXPERIMENTS at the moment gRPC's core module is imported, then imports `proxy`.
_PROBE = """
import importlib.abc, json, os, sys
seen = {}
class Probe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "grpc._cython.cygrpc" and "at_import" not in seen:
            seen["at_import"] = os.environ.get("GRPC_EXPERIMENTS")
        return None
sys.meta_path.insert(0, Probe())
first = sys.argv[1] if len(sys.argv) > 1 else "proxy"
if first == "grpc-first":
    import grpc  # the program imported gRPC first
    import proxy
elif first == "fed":
    class EagerRay(importlib.abc.MetaPathFinder):  # as a Ray release importing gRPC at its import would
        def find_spec(self, name, path, target=None):
            if name == "ray" and "grpc" not in sys.modules:
                import grpc
            return None
    sys.meta_path.insert(0, EagerRay())
    import fed  # what a program does
    fed.init  # the part of the API that imports Ray
else:
    import proxy
seen["after"] = os.environ.get("GRPC_EXPERIMENTS")
print(json.dumps(seen))
"""


def _probe(*args: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, env=environ, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_proxy_imports_grpc_with_polling_endpoints_and_leaves_no_variable():
    seen = _probe()
    assert seen == {"at_import": _grpc_endpoints.POLLING_ENDPOINTS, "after": None}


def test_importing_fed_and_its_ray_part_imports_grpc_with_polling_endpoints_first():
    assert _probe("fed") == {"at_import": _grpc_endpoints.POLLING_ENDPOINTS, "after": None}


def test_the_command_line_starts_without_importing_ray():
    probe = "import sys, fed._cli; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_users_grpc_experiments_are_left_alone():
    assert _probe(GRPC_EXPERIMENTS="") == {"at_import": "", "after": ""}
    assert _probe(GRPC_EXPERIMENTS="-event_engine_dns") == {"at_import": "-event_engine_dns",
                                                          "after": "-event_engine_dns"}


def test_grpc_imported_before_proxy_is_not_touched():
    assert _probe("grpc-first") == {"at_import": None, "after": None}


def test_only_releases_known_to_have_the_experiments(monkeypatch):
    versions = {"1.59.3": False, "1.60.0": True, "1.85.0": True, "1.99.1": True, "1.100.0": False, "2.0.0": False,
                "garbage": False}
    for version, known in versions.items():
        monkeypatch.setattr(_grpc_endpoints.importlib.metadata, "version", lambda _name, v=version: v)
        assert _grpc_endpoints._known_release() is known, version
