"""A VM lab's guests booting: until each answers a root login over SSH, into the kernel it was given.

A guest that dies, panics or does not answer in time is named with the tail
of its console, so a failed `lab up --provider qemu` says why.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from badsum.host.shared.common import alive
from badsum.lab.spec import LabError, Node
from badsum.vm import qemu
from badsum.vm.spec import VmLabSpec

BOOT_TIMEOUT = float(os.environ.get("BADSUM_VM_BOOT_TIMEOUT", "300"))


def ssh_argv(inventory_dir: Path, address: str, *command: str, timeout: int = 5) -> list[str]:
    ssh = inventory_dir / ".ssh"
    return [
        "ssh",
        "-i",
        str(ssh / "id_ed25519"),
        "-o",
        f"UserKnownHostsFile={ssh / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "KexAlgorithms=curve25519-sha256",  # as the inventory's (badsum.lab.inventory): cheap under TCG
        "-o",
        f"ConnectTimeout={timeout}",
        f"root@{address}",
        *command,
    ]


def port_open(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=timeout):
        return True
    return False


def wait_for_ssh(spec: VmLabSpec, inventory_dir: Path, release: str, started: dict[str, float]) -> dict[str, float]:
    """Seconds from each QEMU start to a root login over SSH into the expected kernel."""
    deadline = time.monotonic() + BOOT_TIMEOUT

    def wait(node: Node) -> float:
        pidfile = spec.state_dir / node.name / "qemu.pid"
        while time.monotonic() < deadline:
            pid = int(pidfile.read_text())
            if not alive(pid):
                raise LabError(f"{node.name}'s QEMU exited while booting:\n{console_tail(spec, node)}")
            if panicked(spec, node):  # panic=0: the guest halts, QEMU stays
                raise LabError(f"{node.name}'s kernel panicked while booting:\n{console_tail(spec, node, 40)}")
            if port_open(node.mgmt_v4):
                proc = subprocess.run(
                    ssh_argv(inventory_dir, node.mgmt_v4, "uname", "-r"),
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if proc.returncode == 0:
                    if proc.stdout.strip() != release:
                        raise LabError(f"{node.name} runs {proc.stdout.strip()!r}, expected {release!r}")
                    return round(time.monotonic() - started[node.name], 1)
            time.sleep(0.5)
        raise LabError(
            f"{node.name} did not answer SSH within {BOOT_TIMEOUT:.0f} s "
            f"(BADSUM_VM_BOOT_TIMEOUT); its console:\n{console_tail(spec, node)}"
        )

    nodes = spec.nodes()
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return dict(zip((n.name for n in nodes), pool.map(wait, nodes), strict=True))


def panicked(spec: VmLabSpec, node: Node) -> bool:
    with contextlib.suppress(OSError):
        return qemu.PANIC in (spec.state_dir / node.name / "console.log").read_text(errors="replace")
    return False


def console_tail(spec: VmLabSpec, node: Node, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        text = (spec.state_dir / node.name / "console.log").read_text(errors="replace")
        return "".join(text.splitlines(keepends=True)[-lines:])
    return "(no console output)"
