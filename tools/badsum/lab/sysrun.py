"""Running system commands with errors that say what failed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

# Commands run side by side (key generation, teardown queries): a few per core keep both busy.
WORKERS = 2 * (os.cpu_count() or 1)


class CommandError(RuntimeError):
    pass


def run(
    cmd: Sequence[str],
    *,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(cmd),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionError(
            f"{what} needs root (network namespaces, veths and mounts): run it as root, e.g. with sudo"
        )
