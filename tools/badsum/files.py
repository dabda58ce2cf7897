"""Writing files so that no reader ever sees half of one, and no other user ever sees a secret (controller side)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Readers (the report, the tests, a second run) never see half a file.

    With a mode, the file has that mode from its first byte (created with it,
    whatever the umask: never readable by others for a moment, as a
    write-then-chmod would leave it), and keeps it when it replaces an older one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    if mode is None:
        tmp.write_bytes(raw)
    else:
        tmp.unlink(missing_ok=True)  # O_EXCL below: never write through a file someone else made
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away; never added any
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(raw)
        finally:
            os.close(fd)
    tmp.rename(path)


def write_private(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """A secret (passwords, tokens, hashes, keys): root's alone from its first byte, written whole."""
    atomic_write(path, data, mode)


def private_dir(path: Path, mode: int = 0o700) -> Path:
    """A directory only root enters, made so from the start (and made so again if it was not)."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    path.chmod(mode)
    return path
