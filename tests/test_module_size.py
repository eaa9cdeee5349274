"""No jepa_lit module over 500 lines: a module that grows past it holds more than one idea (issue 21)."""

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jepa_lit"
MAX_LINES = 500


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_at_most_500_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines; split it by concern"
