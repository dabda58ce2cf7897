"""The exercises' checks: a student's answers (on host A of their lab, read with testinfra) and their runs.

    pytest exercises/checks --ansible-inventory=<the student's lab inventory> --badsum-seat=<their directory>

`badsum workshop check` and `lab check` run this; each test is one
exercise's check. Answers are read as the exercises say: the first lines
only, spaces trimmed, words compared without case. A check with nothing of
its exercise done (no answer file, no run) skips: "not tried".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra

ANSWERS = "/home/student/answers"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--badsum-seat", required=True, help="the student's directory (runs, activity)")


@dataclass
class Cell:
    run: str
    started: float  # the run's record was written when the run began
    settings: dict
    data: dict

    def __getitem__(self, key: str):
        return self.data.get(key)

    def is_(self, topology: str, condition: str, verdict: str | None = None) -> bool:
        return (
            self["topology"] == topology
            and self["condition"] == condition
            and (verdict is None or self["verdict"] == verdict)
        )

    @property
    def article(self) -> bool:
        """Run with the article's preset: one message a second, the whole window corrupted."""
        s = self.settings
        return s.get("badsum_experiment_interval") == 1 and s.get("badsum_experiment_rate") == 100


@pytest.fixture(scope="session")
def seat(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--badsum-seat"))


@pytest.fixture(scope="session")
def cells(seat: Path) -> list[Cell]:
    found = []
    for run_dir in sorted((seat / "results").glob("r*")):
        record = run_dir / "run.json"
        if not record.exists():
            continue
        info = json.loads(record.read_text())
        for path in run_dir.glob("*-*.json"):
            if path.name != "run.json":
                found.append(
                    Cell(run_dir.name, record.stat().st_mtime, info["plan"]["settings"], json.loads(path.read_text()))
                )
    return found


@pytest.fixture(scope="session")
def real_cells(seat: Path) -> list[dict]:
    """The cells of the trainer's run on the real unfixed kernel (`badsum workshop publish`), if any."""
    return [json.loads(p.read_text()) for p in sorted((seat.parent / "real").glob("*.json"))]


@pytest.fixture(scope="session")
def activity(seat: Path) -> list[dict]:
    path = seat / "activity.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


@pytest.fixture(scope="session")
def host_a(request: pytest.FixtureRequest):
    return testinfra.get_host("ansible://host1", ansible_inventory=request.config.getoption("--ansible-inventory"))


class Answer:
    def __init__(self, lines: list[str], mtime: float) -> None:
        self.lines, self.mtime = lines, mtime

    def line(self, n: int) -> str:
        return self.lines[n - 1].strip() if len(self.lines) >= n else ""

    def word(self, n: int) -> str:
        return self.line(n).lower()

    def number(self, n: int) -> int | None:
        try:
            return int(self.line(n))
        except ValueError:
            return None


@pytest.fixture
def answer(host_a):
    def read(exercise: str) -> Answer | None:
        f = host_a.file(f"{ANSWERS}/{exercise}.txt")
        if not f.exists or not f.content_string.strip():
            return None
        return Answer(f.content_string.splitlines(), f.mtime.timestamp())

    return read


def not_tried_unless(*evidence) -> None:
    if not any(evidence):
        pytest.skip("not tried yet")
