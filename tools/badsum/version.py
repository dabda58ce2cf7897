"""Which badsum this is: the package's version, and the commit when it runs from a git checkout.

`badsum --version` prints it, and every record the kit writes carries it
(a run's run.json and report, a fleet run's plan, host records and summary):
an operator reading a unit or a record on a host can tell which badsum wrote it.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata

from badsum import paths


@functools.cache
def version() -> str:
    """'0.1.0', or '0.1.0 (git 588d385-dirty)' from a checkout; never fails (a record must still be written)."""
    try:
        release = metadata.version("badsum")
    except metadata.PackageNotFoundError:
        release = "unknown"
    described = _git_describe()
    return f"{release} (git {described})" if described else release


def _git_describe() -> str:
    if not (paths.PROJECT / ".git").exists():
        return ""
    try:
        proc = subprocess.run(
            ["git", "-C", str(paths.PROJECT), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""
