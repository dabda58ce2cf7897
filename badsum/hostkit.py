"""Build the host kit: the badsum.host package, whole, as one reproducible zipapp.

    python3 badsum-host.pyz TOOL ACTION [--options]

Everything under badsum/host/ goes in (Python modules and the eBPF sources),
so adding a tool is adding a module: no list to keep. The archive is byte for
byte reproducible (fixed timestamps, sorted entries), so installing it again
changes nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import zipfile
from pathlib import Path

HOST_PACKAGE = Path(__file__).parent / "host"
ENTRY = b"""\"\"\"badsum host kit: python3 badsum-host.pyz TOOL ACTION [--options]\"\"\"
import sys

from badsum.host.__main__ import main

sys.exit(main())
"""
PACKAGE_MARKER = b'"""badsum, as shipped to hosts: only the host kit (badsum.host)."""\n'


def entries() -> dict[str, bytes]:
    files = {"__main__.py": ENTRY, "badsum/__init__.py": PACKAGE_MARKER}
    for path in sorted(HOST_PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".c"):
            files[f"badsum/host/{path.relative_to(HOST_PACKAGE).as_posix()}"] = path.read_bytes()
    return files


def build() -> bytes:
    buf = io.BytesIO()
    # Stored, not deflated: every host call imports from it, and 150 KB is nothing to copy.
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in sorted(entries().items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


@functools.cache
def encoded() -> str:
    """The kit, base64-encoded, built once per controller process (every ephemeral task sends it)."""
    return base64.b64encode(build()).decode()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path) -> bool:
    """Write the kit; True when the file changed."""
    data = build()
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.rename(path)
    return True
