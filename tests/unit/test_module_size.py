"""A module a newcomer reads top to bottom: about 300 lines at most, or it says why it is longer.

The reason is a comment near the top, `# Longer than ~300 lines: <why>`;
10% slack over 300 before one is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 330
MODULES = sorted([*(ROOT / "tools").rglob("*.py"), *(ROOT / "collections").rglob("*.py")])


def long_without_reason(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        lines = path.read_text().splitlines()
        if len(lines) > LIMIT and not any(line.startswith("# Longer than ~300 lines: ") for line in lines[:80]):
            found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(lines)} lines")
    return found


def test_every_long_module_says_why() -> None:
    assert len(MODULES) > 100
    assert long_without_reason(MODULES) == []


@pytest.mark.parametrize(("lines", "reason", "flagged"), [(400, False, True), (400, True, False), (300, False, False)])
def test_the_check_finds_a_long_module_without_a_reason(
    tmp_path: Path, lines: int, reason: bool, flagged: bool
) -> None:
    module = tmp_path / "planted.py"
    head = ['"""A planted module."""', *(["# Longer than ~300 lines: planted."] if reason else [])]
    module.write_text("\n".join([*head, *(["x = 1"] * lines)]) + "\n")
    assert bool(long_without_reason([module])) == flagged
