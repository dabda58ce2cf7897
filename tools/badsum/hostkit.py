"""Build the host kit: the badsum.host package, whole, as one reproducible zipapp.

    python3 badsum-host.pyz TOOL ACTION [--options]

Everything under tools/badsum/host/ goes in (Python modules, their bytecode for the
controller's Python, and the eBPF sources), so adding a tool is adding a
module: no list to keep. The archive is byte for
byte reproducible (fixed timestamps, sorted entries), so installing it again
changes nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import sys
from pathlib import Path

HOST_PACKAGE = Path(__file__).parent / "host"
# Built kits, by the digest of their sources, on the controller.
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "badsum"
ENTRY = b"""\"\"\"badsum host kit: python3 badsum-host.pyz TOOL ACTION [--options]\"\"\"
import sys

from badsum.host.__main__ import main

sys.exit(main())
"""
PACKAGE_MARKER = b'"""badsum, as shipped to hosts: only the host kit (badsum.host)."""\n'


def sources() -> dict[str, bytes]:
    files = {"__main__.py": ENTRY, "badsum/__init__.py": PACKAGE_MARKER}
    for path in sorted(HOST_PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".c"):
            files[f"badsum/host/{path.relative_to(HOST_PACKAGE).as_posix()}"] = path.read_bytes()
    return files


def _bytecode(name: str, source: bytes) -> bytes:
    """The module compiled for this controller's Python, as an unchecked hash-based .pyc (PEP 552).

    A host whose Python is the same version imports it without compiling the
    source (half of a short host call's time); any other version finds the
    magic number wrong and compiles the .py next to it. Hash-based, so the
    bytes depend on the source alone: the kit stays reproducible.
    """
    # Imported here: building is rare (the cache), and every ephemeral task imports this module.
    import py_compile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "m.py", Path(tmp) / "m.pyc"
        src.write_bytes(source)
        py_compile.compile(
            str(src),
            cfile=str(out),
            dfile=name,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        return out.read_bytes()


def entries() -> dict[str, bytes]:
    files = sources()
    for name, data in list(files.items()):
        if name.endswith(".py"):
            files[name + "c"] = _bytecode(name, data)
    return files


def _build() -> bytes:
    import io  # here, as in _bytecode
    import zipfile

    buf = io.BytesIO()
    # Stored, not deflated: every host call imports from it, and 300 KB is nothing to copy.
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in sorted(entries().items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


def build() -> bytes:
    """The kit, from a cache keyed by its sources and this Python (compiling it costs ~0.3 s, reading it 1 ms)."""
    h = hashlib.sha256(sys.version.encode())
    for name, data in sorted(sources().items()):  # every ephemeral task computes this: no copies of the bytes
        h.update(f"\0{name}\0{len(data)}\0".encode())
        h.update(data)
    key = h.hexdigest()[:16]
    cached = CACHE / f"badsum-host-{key}.pyz"
    if cached.is_file():
        return cached.read_bytes()
    data = _build()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.rename(cached)  # several Ansible workers may build at once: each rename is whole
    for old in CACHE.glob("badsum-host-*.pyz"):
        if old != cached:
            old.unlink(missing_ok=True)
    return data


@functools.cache
def encoded() -> str:
    """The kit, base64-encoded, once per controller process (every ephemeral task sends it)."""
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
