"""README shows the two newcomer commands; CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_cmd = next(b for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines(), f"{test_cmd!r} must be a line of .ci/run"


def test_readme_main_command_runs_the_demo():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert blocks[0] == "bash scripts/setup.sh && .venv/bin/rlaif demo"
