"""The host kit: badsum's host-side scripts in one zipapp, copied to each host.

One file instead of five saves Ansible a round trip per script per host, and
the archive is byte-for-byte reproducible (fixed timestamps, sorted entries),
so copying it again changes nothing.

    python3 badsum-host.pyz client|recorder|counters|corruptor [ARGS...]

Everything inside uses the standard library only.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

MODULES = (
    "capture", "client", "condition", "corruptor", "counters", "framing", "hostnet", "recorder",
    "topo_cni", "topo_docker", "topo_mesos", "topology",
)  # fmt: skip
TOOLS = ("capture", "client", "condition", "corruptor", "counters", "recorder", "topology")

MAIN = '''"""badsum host kit: {tools}."""
import runpy
import sys

TOOLS = {tools!r}
if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
    sys.exit("usage: badsum-host.pyz {{" + "|".join(TOOLS) + "}} [ARGS...]")
tool = sys.argv.pop(1)
sys.argv[0] = "badsum-" + tool
runpy.run_module(tool, run_name="__main__")
'''


def build() -> bytes:
    here = Path(__file__).parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        entries = {"__main__.py": MAIN.format(tools=TOOLS).encode()}
        entries.update({f"{m}.py": (here / f"{m}.py").read_bytes() for m in MODULES})
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


def write(path: Path) -> bool:
    """Write the kit; True when the file changed."""
    data = build()
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.rename(path)
    return True
