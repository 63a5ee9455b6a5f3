"""The one seam: ``proxy`` never imports ``fed``, and ``fed`` uses only ``proxy``'s public names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import proxy

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> list[tuple[str, int, str, list[str]]]:
    """``(file, line, module, names)`` of every import in ``package``'s source (names: what ``from`` takes)."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name.endswith("_pb2.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = str(path.relative_to(ROOT))
            if isinstance(node, ast.Import):
                found += [(where, node.lineno, alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((where, node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def test_the_transport_never_imports_the_programming_model():
    offending = [f"{f}:{line} imports {m}" for f, line, m, _ in _imports("proxy") if m.split(".")[0] == "fed"]
    assert offending == []


def test_fed_uses_only_the_public_names_of_proxy():
    offending = []
    for where, line, module, names in _imports("fed"):
        if module.split(".")[0] != "proxy":
            continue
        if _is_private(module):
            offending.append(f"{where}:{line} imports the private module {module}")
        elif module == "proxy":
            offending += [f"{where}:{line} imports proxy.{n}, not in proxy.__all__"
                          for n in names if n not in proxy.__all__]
    assert offending == []


def test_the_check_finds_what_it_forbids(tmp_path, monkeypatch):
    (tmp_path / "fed").mkdir()
    (tmp_path / "fed" / "bad.py").write_text("from proxy._stats import EventLog\nfrom proxy import _wire_pb2\n")
    (tmp_path / "proxy").mkdir()
    (tmp_path / "proxy" / "bad.py").write_text("import fed._api\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="private module proxy._stats"):
        test_fed_uses_only_the_public_names_of_proxy()
    with pytest.raises(AssertionError, match="imports fed._api"):
        test_the_transport_never_imports_the_programming_model()
