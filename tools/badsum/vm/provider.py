"""`badsum lab up/down/status --provider qemu`: a lab of QEMU guests booting a lab kernel.

    host1 (client)  mgmt0 ─tap─┐                     ┌─tap─ mgmt0  host2 (server)
                    eth0 ══════╪══ p1 [switch: br0] p2 ╪══════ eth0
                               └── <lab>-mgmt bridge (this machine, 198.18.64+slot.1) ── controller (SSH)

Host N's data NIC and switch port pN are the two ends of one unix datagram
"cable" (network.py says why); corruption is injected at the switch's port
towards the server, like the embedded lab's switch namespace, with the eBPF
or the netem backend (the guest kernel has sch_netem).

Containment: every QEMU process starts inside /badsum/<lab>/<node> (the
embedded lab's cgroups), so `down` finds it after a SIGKILLed `up`; the
taps and the bridge are found by name; the guests' disks are snapshot
overlays that vanish with the process. `down` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import ClassVar

from badsum.host.shared.common import alive
from badsum.lab import cgroups
from badsum.lab.interface import UpRequest
from badsum.lab.spec import LabError, Node
from badsum.lab.state import EMBEDDED, StateStore
from badsum.lab.sysrun import run
from badsum.vm import guest, kernel, network, paths, qemu, rootfs
from badsum.vm.boot import port_open, wait_for_ssh
from badsum.vm.inventory import remove_inventory, write_inventory
from badsum.vm.spec import DEFAULT_VM_HOSTS, MAX_VM_SLOT, VmLabSpec, node_index

# Under TCG a server guest compiles BPF and runs dockerd: it gets the most.
MEMORY_MB = {"server": 2048, "client": 1024, "switch": 1024}
CPUS = {"server": 2, "client": 1, "switch": 1}


# -- state ------------------------------------------------------------------------


def store() -> StateStore:
    """The VM labs' records: apart from the embedded labs', so that neither provider takes the other's labs."""
    return StateStore(paths.STATE_ROOT, paths.STATE_ROOT / ".lock")


def is_vm_lab(lab_id: str) -> bool:
    return store().exists(lab_id)


def _role(spec: VmLabSpec, node: Node) -> str:
    if node.is_switch:
        return "switch"
    return "server" if node_index(node.name) % 2 == 0 else "client"


# -- up ---------------------------------------------------------------------------


def up(
    lab_id: str, variant: str, inventory_dir: Path, hosts: int = DEFAULT_VM_HOSTS, init: str = guest.DEFAULT_INIT
) -> str:
    if init not in guest.INITS:
        raise LabError(f"--init {init!r}: allowed: {', '.join(guest.INITS)}")
    if EMBEDDED.exists(lab_id):
        raise LabError(f"{lab_id} is an embedded lab on this machine: pick another id for the VM lab")
    image = kernel.image(variant)
    kernel_rec = kernel.record(variant) or {}
    disk = rootfs.image()
    accel = qemu.accelerator()
    with store().locked():
        state = store().load(lab_id)
        if state:
            same = state["kernel"] == variant and state.get("init", guest.DEFAULT_INIT) == init
            if state.get("complete") and same and healthy(state):
                return f"lab {lab_id} is already up ({variant} kernel, {init} init), inventory {state['inventory']}"
            raise LabError(
                f"VM lab {lab_id} exists ({state['kernel']} kernel, {state.get('init', 'busybox')} init, "
                f"{'healthy' if healthy(state) else 'not healthy'}): `badsum lab down --lab {lab_id}` first"
            )
        if cgroups.leftovers(lab_id) or network.lab_links(VmLabSpec(lab_id, DEFAULT_VM_HOSTS, 0)):
            down(lab_id)  # what a killed `up` of this lab left
        spec = VmLabSpec(lab_id, hosts, store().free_slot(lab_id, MAX_VM_SLOT))
        state = {
            "lab_id": lab_id,
            "provider": "qemu",
            "hosts": hosts,
            "slot": spec.slot,
            "kernel": variant,
            "init": init,
            "kernel_record": kernel_rec,
            "rootfs": str(disk),
            "accel": accel,
            "inventory": str(inventory_dir.resolve()),
            "created": time.time(),
            "complete": False,
            "nodes": {},
        }
        # Written first: it reserves the slot, and tells `down` where the
        # inventory is if this run is interrupted.
        store().save(state)
    try:
        _prepare_files(spec, inventory_dir)
        network.create_bridge(spec)
        started = {}
        for node in spec.nodes():
            network.create_tap(spec, node.mgmt_link)
            machine = _machine(spec, node, image, disk, init)
            started[node.name] = (qemu.start(machine, lab_id, accel), time.monotonic())
        write_inventory(spec, inventory_dir, kernel_rec, accel, init)
        boot = wait_for_ssh(spec, inventory_dir, kernel_rec["release"], {n: t for n, (_, t) in started.items()})
    except BaseException:
        with contextlib.suppress(Exception):
            down(lab_id)
        raise
    state["nodes"] = {name: {"pid": pid, "boot_seconds": boot[name]} for name, (pid, _) in started.items()}
    state["complete"] = True
    store().save(state)
    slowest = max(boot.values())
    return (
        f"lab {lab_id} is up: {hosts} hosts + switch as QEMU guests ({accel}, {init} init), "
        f"kernel {kernel_rec['release']}, "
        f"SSH on all in {slowest:.1f} s, inventory {inventory_dir}"
    )


def _keygen(path: Path, comment: str) -> None:
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _prepare_files(spec: VmLabSpec, inventory_dir: Path) -> None:
    """The lab's key, each node's host key and its fw_cfg configuration."""
    (inventory_dir / ".ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
    key = inventory_dir / ".ssh" / "id_ed25519"
    _keygen(key, f"badsum-{spec.lab_id}")
    (spec.state_dir / "links").mkdir(parents=True, exist_ok=True)
    for node in spec.nodes():
        node_dir = spec.state_dir / node.name
        node_dir.mkdir(parents=True, exist_ok=True)
        _keygen(node_dir / "ssh_host_ed25519_key", node.name)
        shutil.copyfile(key.with_suffix(".pub"), node_dir / "authorized_keys")
        (node_dir / "env").write_text(guest.env_file(_guest_env(spec, node)))


def _guest_env(spec: VmLabSpec, node: Node) -> dict[str, str]:
    i = node_index(node.name)
    links = [f"mgmt0={spec.mac(i, 0)}"]
    env = {
        "BADSUM_HOSTNAME": node.name,
        "BADSUM_MGMT_V4": f"{node.mgmt_v4}/{spec.mgmt_v4.prefixlen}",
        "BADSUM_MGMT_V6": f"{node.mgmt_v6}/{spec.mgmt_v6.prefixlen}",
        "BADSUM_DATA_V4": "",
        "BADSUM_DATA_V6": "",
        "BADSUM_SWITCH_PORTS": "",
    }
    if node.is_switch:
        ports = [spec.host(n).switch_port for n in range(1, spec.hosts + 1)]
        links += [f"{port}={spec.mac(0, n)}" for n, port in enumerate(ports, start=1)]
        env["BADSUM_SWITCH_PORTS"] = " ".join(ports)
    else:
        links.append(f"eth0={spec.mac(i, 1)}")
        env["BADSUM_DATA_V4"] = f"{node.data_v4}/{spec.data_v4.prefixlen}"
        env["BADSUM_DATA_V6"] = f"{node.data_v6}/{spec.data_v6.prefixlen}"
    env["BADSUM_LINKS"] = " ".join(links)
    return env


def _cable(spec: VmLabSpec, local: str, remote: str) -> str:
    return (
        f"dgram,local.type=unix,local.path={spec.link_socket(local)},"
        f"remote.type=unix,remote.path={spec.link_socket(remote)}"
    )


def _machine(spec: VmLabSpec, node: Node, image: Path, disk: Path, init: str) -> qemu.Machine:
    i = node_index(node.name)
    nics = [qemu.Nic(f"tap,ifname={node.mgmt_link},script=no,downscript=no", spec.mac(i, 0))]
    if node.is_switch:
        nics += [qemu.Nic(_cable(spec, f"p{n}", f"h{n}"), spec.mac(0, n)) for n in range(1, spec.hosts + 1)]
    else:
        nics.append(qemu.Nic(_cable(spec, f"h{i}", f"p{i}"), spec.mac(i, 1)))
    node_dir = spec.state_dir / node.name
    role = _role(spec, node)
    return qemu.Machine(
        name=node.name,
        kernel=image,
        rootfs=disk,
        memory_mb=MEMORY_MB[role],
        cpus=CPUS[role],
        nics=tuple(nics),
        fw_cfg={item: node_dir / item for item in guest.FW_CFG_ITEMS},
        workdir=node_dir,
        init=init,
    )


# -- down ---------------------------------------------------------------------


def _stray_qemus(lab_id: str) -> list[int]:
    """QEMU processes of this lab outside its cgroups (someone moved or removed them): found by
    the state directory in their command line, which only this lab's guests have."""
    marker = str(paths.STATE_ROOT / lab_id) + "/"
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (d / "cmdline").read_bytes().split(b"\0")
            if cmdline and cmdline[0].endswith(qemu.QEMU.encode()) and any(marker.encode() in a for a in cmdline):
                found.append(int(d.name))
    return found


def down(lab_id: str) -> str:
    state = store().load(lab_id)
    spec = VmLabSpec(lab_id, state["hosts"] if state else DEFAULT_VM_HOSTS, state["slot"] if state else 0)
    present = state or is_vm_lab(lab_id) or cgroups.leftovers(lab_id) or network.lab_links(spec)
    if not present:
        return f"lab {lab_id} was not up"
    cgroups.kill(lab_id)
    for pid in _stray_qemus(lab_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    deadline = time.monotonic() + 5
    while _stray_qemus(lab_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    stuck = network.remove(spec) + cgroups.remove(lab_id)
    if state:
        inventory = Path(state["inventory"])
        remove_inventory(inventory)
        with contextlib.suppress(OSError):  # the directory `up` made for it, once empty
            inventory.rmdir()
    shutil.rmtree(spec.state_dir, ignore_errors=True)
    stuck += [f"QEMU pid {p}" for p in _stray_qemus(lab_id)] + [str(p) for p in cgroups.pids(lab_id)]
    if spec.state_dir.exists():
        stuck.append(str(spec.state_dir))
    if stuck:
        raise LabError(f"could not remove {', '.join(stuck)}")
    return f"lab {lab_id} is down"


# -- status -------------------------------------------------------------------


def healthy(state: dict) -> bool:
    spec = VmLabSpec(state["lab_id"], state["hosts"], state["slot"])
    return all(_node_status(spec, state, node)["ssh"] for node in spec.nodes())


def _node_status(spec: VmLabSpec, state: dict, node: Node) -> dict:
    pid = state.get("nodes", {}).get(node.name, {}).get("pid")
    running = bool(pid) and alive(pid)
    return {
        "name": node.name,
        "qemu": running,
        "ssh": running and port_open(node.mgmt_v4, timeout=0.5),
        "boot_seconds": state.get("nodes", {}).get(node.name, {}).get("boot_seconds"),
    }


def status(lab_id: str | None = None) -> list[dict]:
    states = store().all()
    ids = set(states) if lab_id is None else {lab_id} & (set(states) | ({lab_id} if is_vm_lab(lab_id) else set()))
    report = []
    for lid in sorted(ids):
        st = states.get(lid)
        spec = VmLabSpec(lid, st["hosts"] if st else DEFAULT_VM_HOSTS, st["slot"] if st else 0)
        entry: dict = {
            "lab_id": lid,
            "provider": "qemu",
            "state_file": bool(st),
            "links": network.lab_links(spec),
            "processes": len(cgroups.pids(lid)),
            "cgroups": cgroups.leftovers(lid),
            "memory_bytes": cgroups.memory_bytes(lid),
        }
        if st:
            nodes = [_node_status(spec, st, n) for n in spec.nodes()]
            entry.update(
                hosts=st["hosts"],
                slot=st["slot"],
                kernel=st["kernel"],
                init=st.get("init", guest.DEFAULT_INIT),
                release=st.get("kernel_record", {}).get("release"),
                accel=st["accel"],
                inventory=st["inventory"],
                nodes=nodes,
                healthy=st.get("complete", False) and all(n["ssh"] for n in nodes),
            )
        else:
            entry["healthy"] = False
        report.append(entry)
    return report


class QemuProvider:
    """VM labs behind badsum.lab.interface.LabProvider: two hosts and a switch, booting a lab kernel."""

    name: ClassVar[str] = "qemu"
    takes: ClassVar[frozenset[str]] = frozenset({"kernel", "init"})
    requires: ClassVar[frozenset[str]] = frozenset({"kernel"})

    def owns(self, lab_id: str) -> bool:
        return is_vm_lab(lab_id)

    def labs(self) -> list[str]:
        return sorted(store().all())

    def up(self, request: UpRequest) -> str:
        return up(request.lab_id, request.kernel, request.inventory, init=request.init or guest.DEFAULT_INIT)

    def down(self, lab_id: str) -> str:
        return down(lab_id)

    def status(self, lab_id: str | None = None) -> list[dict]:
        return status(lab_id)

    def inventory(self, lab_id: str) -> Path | None:
        record = store().load(lab_id)
        return Path(record["inventory"]) if record else None


PROVIDER = QemuProvider()
