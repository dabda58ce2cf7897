#!/usr/bin/env python3
"""Read the kernel's checksum-error and conntrack counters in several network namespaces.

Standard library only; the traffic role copies it to the hosts.

    counters.py host=self container=/proc/1234/ns/net pod=/run/netns/pod1

prints {"host": {"TcpInCsumErrors": 0, ..., "ConntrackInvalid": 0}, ...}.
Absolute values: the analyzer subtracts a reading taken before the experiment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys


def _in_ns(path: str, cmd: list[str]) -> str:
    full = cmd if path in ("", "self") else ["nsenter", f"--net={path}", *cmd]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=10, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"badsum-counters: `{' '.join(full)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def read(path: str) -> dict[str, int]:
    # -a absolute, -s leave nstat's history alone, -z include zeros
    kernel = json.loads(_in_ns(path, ["nstat", "-asz", "--json"]))["kernel"]
    counters = {
        k: int(v) for k, v in kernel.items() if "CsumErr" in k or k in ("TcpInSegs", "TcpRetransSegs")
    }
    if shutil.which("conntrack"):
        invalid = 0
        for line in _in_ns(path, ["conntrack", "-S"]).splitlines():
            for field in line.split():
                if field.startswith("invalid="):
                    invalid += int(field.split("=", 1)[1])
        counters["ConntrackInvalid"] = invalid
    return counters


def main(argv: list[str]) -> int:
    if not argv:
        argv = ["host=self"]
    out = {}
    for spec in argv:
        label, _, path = spec.partition("=")
        if not label:
            print(f"badsum-counters: bad namespace spec {spec!r}: want LABEL=PATH", file=sys.stderr)
            return 2
        out[label] = read(path or "self")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
