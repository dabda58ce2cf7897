"""An emulated host of an embedded lab, reached as a fleet host is: over SSH, as root, with the host kit installed.

The fault catalogue (tests/faults) plays the tenant on it - odd interface
names, thousands of namespaces, swapped files - and calls the kit there
exactly as badsum.kit.run does: `python3 <lib_dir>/bin/badsum-host.pyz TOOL
ACTION ...`, one JSON object back.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from badsum import hostkit

ROOT = Path(__file__).resolve().parents[1]


class Host:
    def __init__(self, inventory: Path, name: str) -> None:
        data = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]["badsum_lab"]
        self.name = name
        self.address = data["hosts"][name]["ansible_host"]
        self.lib_dir = Path(data["vars"]["badsum_lib_dir"])
        self.kit_path = self.lib_dir / "bin" / "badsum-host.pyz"
        self.inventory = inventory
        self.ssh_args = [
            "ssh",
            "-i",
            str(inventory / ".ssh" / "id_ed25519"),
            "-o",
            f"UserKnownHostsFile={inventory / '.ssh' / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "KexAlgorithms=curve25519-sha256",
            f"root@{self.address}",
        ]

    def install_kit(self) -> None:
        """This checkout's kit; BADSUM_KIT=FILE installs another (an earlier badsum's: which cases it fails)."""
        other = os.environ.get("BADSUM_KIT")
        self.kit_path.parent.mkdir(parents=True, exist_ok=True)
        self.kit_path.write_bytes(Path(other).read_bytes() if other else hostkit.build())
        self.kit_path.chmod(0o755)

    def sh(self, script: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A bash script run on the host as root."""
        run = subprocess.run(
            [*self.ssh_args, "bash", "-c", shlex.quote(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and run.returncode != 0:
            raise AssertionError(f"on {self.name}: {script!r} exited {run.returncode}: {run.stderr or run.stdout}")
        return run

    def kit(self, *argv: str, prefix: str = "", timeout: float = 120) -> tuple[int, dict]:
        """(exit status, the JSON answer) of one kit call on the host; `prefix` runs it under another command."""
        cmd = " ".join(shlex.quote(a) for a in ("python3", str(self.kit_path), *argv))
        run = self.sh(f"{prefix} {cmd}", timeout=timeout, check=False)
        lines = run.stdout.strip().splitlines()
        try:
            answer = json.loads(lines[-1]) if lines else {"no answer; stderr": run.stderr[-3000:]}
        except ValueError:
            raise AssertionError(f"the kit's answer is not JSON: {run.stdout[-2000:]} / {run.stderr[-2000:]}") from None
        return run.returncode, answer

    def ok(self, *argv: str, **kw) -> dict:
        code, answer = self.kit(*argv, **kw)
        assert code == 0, answer
        return answer

    def write(self, path: str, text: str) -> None:
        """A file on the host with exactly these bytes (its directory made)."""
        data = base64.b64encode(text.encode()).decode()
        self.sh(f"mkdir -p {shlex.quote(str(Path(path).parent))} && echo {data} | base64 -d > {shlex.quote(path)}")

    def read(self, path: str) -> str:
        return self.sh(f"cat {shlex.quote(path)}").stdout

    def rx(self, netns: str, ifname: str) -> str:
        out = self.sh(f"ip netns exec {netns} ethtool -k {shlex.quote(ifname)} | sed -n 's/^rx-checksumming: //p'")
        return out.stdout.split()[0]


def badsum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "badsum", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
