"""One guest = one QEMU process: its command line, its start inside the lab's cgroup, its end.

KVM where this machine really has it (kvm_intel or kvm_amd loaded); QEMU's
software emulation (TCG) otherwise, e.g. under a PVM-only /dev/kvm, which
cannot boot a normal kernel. BADSUM_VM_ACCEL=kvm|tcg overrides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from badsum.lab import cgroups
from badsum.lab.spec import LabError
from badsum.vm import guest

QEMU = "qemu-system-x86_64"
# mitigations=off: a lab guest runs nothing untrusted, and TCG pays for every
# barrier. panic=0: a panicking kernel halts, and says so on the console,
# which the provider reads while it waits for SSH; a guest may reboot
# (systemctl reboot: what proves a unit comes back) on the same disk overlay.
KERNEL_ARGS = (
    "console=ttyS0,115200",
    "root=/dev/vda",
    "rootfstype=ext4",
    "rw",
    "panic=0",
    "quiet",
    "mitigations=off",
    "8250.nr_uarts=1",
)
PANIC = "Kernel panic"


@dataclass(frozen=True)
class Nic:
    netdev: str  # the -netdev value (tap or dgram)
    mac: str


@dataclass(frozen=True)
class Machine:
    name: str  # QEMU's -name, and the cgroup's
    kernel: Path
    rootfs: Path
    memory_mb: int
    cpus: int
    nics: tuple[Nic, ...]
    fw_cfg: dict[str, Path]  # item name (below guest.FW_CFG_PREFIX) -> file
    workdir: Path  # console.log and the pidfile
    init: str  # a key of guest.INITS


def accelerator() -> str:
    forced = os.environ.get("BADSUM_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced
    if forced:
        raise LabError(f"BADSUM_VM_ACCEL={forced!r}: allowed: kvm, tcg")
    real_kvm = any(Path("/sys/module", m).exists() for m in ("kvm_intel", "kvm_amd"))
    return "kvm" if real_kvm and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


def argv(m: Machine, accel: str) -> list[str]:
    cmd = [
        QEMU,
        "-name",
        m.name,
        "-machine",
        f"pc,accel={accel}",
        "-cpu",
        "host" if accel == "kvm" else "max",
        "-smp",
        str(m.cpus),
        "-m",
        str(m.memory_mb),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{m.workdir / 'console.log'}",
        "-pidfile",
        str(m.workdir / "qemu.pid"),
        "-kernel",
        str(m.kernel),
        "-append",
        " ".join((*KERNEL_ARGS, *guest.INITS[m.init])),
        # snapshot=on: writes go to an unlinked temporary file, so the shared
        # image never changes and a killed guest leaves nothing behind.
        "-drive",
        f"file={m.rootfs},format=raw,if=virtio,snapshot=on,cache=unsafe",
        "-device",
        "virtio-rng-pci",
    ]
    # mrg_rxbuf=off: with mergeable buffers virtio-net puts only the Ethernet
    # header of a full-size frame in the skb's linear part and leaves the rest
    # for GRO to pull - which a switch port (GRO off) never does, so a tc
    # program there could not even read the IP header. Small buffers give
    # whole linear frames, as most physical NICs' drivers do.
    for i, nic in enumerate(m.nics):
        device = f"virtio-net-pci,netdev=n{i},mac={nic.mac},mrg_rxbuf=off"
        cmd += ["-netdev", f"{nic.netdev},id=n{i}", "-device", device]
    for item, path in m.fw_cfg.items():
        cmd += ["-fw_cfg", f"name={guest.FW_CFG_PREFIX}/{item},file={path}"]
    return cmd


def start(m: Machine, lab_id: str, accel: str) -> int:
    """Start the guest in the background, inside /badsum/<lab>/<name> before it runs a single instruction."""
    if not shutil.which(QEMU):
        raise LabError(f"`{QEMU}` is missing: apt-get install qemu-system-x86")
    procs = cgroups.create_node(lab_id, m.name)

    def join_cgroup() -> None:
        for p in procs:
            p.write_text(str(os.getpid()))

    # -daemonize: QEMU returns once the machine is set up (taps opened,
    # sockets bound), with its error if that failed, and the guest runs on
    # outside this process tree; the lab's cgroup is how down finds it.
    proc = subprocess.run(
        [*argv(m, accel), "-daemonize"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=join_cgroup,
    )
    if proc.returncode != 0:
        raise LabError(f"QEMU did not start {m.name} (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return int((m.workdir / "qemu.pid").read_text())
