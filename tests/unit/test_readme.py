"""The README's quick start program is the tested example, character for character."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_quickstart_is_examples_quickstart():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start.*?```python\n(.*?)```", readme, re.S).group(1)
    example = (REPO / "examples" / "quickstart.py").read_text()
    assert example.endswith("\n\n" + block)


def test_readme_keeps_the_fresh_machine_commands_first():
    readme = (REPO / "README.md").read_text()
    demo = "    python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/fed demo\n"
    tests = "    bash scripts/test.sh\n"
    assert demo in readme and tests in readme
    assert readme.index(demo) < readme.index("## Quick start")


def test_readme_documents_every_cross_silo_comm_key():
    from fed._config import CrossSiloComm

    text = (REPO / "README.md").read_text()
    missing = [name for name in CrossSiloComm.model_fields if f"| `{name}` |" not in text]
    assert not missing, f"README's configuration table lacks {missing}"
