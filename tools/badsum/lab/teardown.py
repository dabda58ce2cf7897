"""Taking an embedded lab down: everything it made, found from what exists, not from its record.

`down` works from the namespaces, links, cgroups and files named after the
lab, so it also cleans up after a killed run (whose record may be missing or
half written), and it checks that nothing is left: processes, namespaces,
links, cgroups, and the BPF programs attached in the lab's namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from badsum.host.shared.common import alive
from badsum.lab import cgroups, kernel, nodes, state
from badsum.lab.inventory import remove_inventory
from badsum.lab.networks import LINK_GONE_TIMEOUT, lab_netns, lab_root_links, remove_networks
from badsum.lab.spec import NS_ROOT, LabError, validate_lab_id
from badsum.lab.sysrun import WORKERS, run

# The program types tc and XDP attach: with none loaded on the machine, no lab has one to wait for.
ATTACHABLE = {"sched_cls", "sched_act", "xdp"}


def _ns_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _pids_in_namespaces(inodes: dict[str, set[int]]) -> list[int]:
    """Processes whose network or mount namespace is one of the given inodes."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        for kind, wanted in inodes.items():
            with contextlib.suppress(OSError):  # gone meanwhile, or a kernel thread
                if os.stat(f"/proc/{entry.name}/ns/{kind}").st_ino in wanted:
                    pids.append(int(entry.name))
                    break
    return pids


def lab_pids(lab_id: str) -> list[int]:
    """Every live process of the lab: in its cgroups, or in one of its namespaces (started through it)."""
    names = set(lab_netns(lab_id)) | {p.name.rsplit(".", 1)[0] for p in NS_ROOT.glob(f"{lab_id}-*.mnt")}
    inodes: dict[str, set[int]] = {"net": set(), "mnt": set()}
    for netns in names:
        for kind, path in (("net", Path(f"/run/netns/{netns}")), ("mnt", nodes.ns_files(netns)[0])):
            inode = _ns_inode(path)
            if inode:
                inodes[kind].add(inode)
    pids = set(cgroups.pids(lab_id)) | set(_pids_in_namespaces(inodes))
    pids.discard(os.getpid())
    return sorted(p for p in pids if alive(p))


def _kill(pids: list[int], timeout: float = 2.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in pids if alive(p)]
            if not pids:
                return
            time.sleep(0.02)


def _attachable_loaded() -> bool:
    proc = run(["bpftool", "-j", "prog", "show"], check=False)
    try:
        return proc.returncode != 0 or any(p.get("type") in ATTACHABLE for p in json.loads(proc.stdout or "[]"))
    except json.JSONDecodeError:
        return True  # cannot tell: look in every namespace


def _bpf_programs(lab_id: str) -> set[int]:
    """Ids of the BPF programs attached (tc, xdp) in the lab's namespaces, containers' included."""
    if not _attachable_loaded():
        return set()
    paths: dict[int, str] = {}  # one query per namespace, however many paths lead to it
    candidates = [f"/run/netns/{ns}" for ns in lab_netns(lab_id)]
    candidates += [f"/proc/{pid}/ns/net" for pid in cgroups.pids(lab_id)]
    for path in candidates:
        inode = _ns_inode(Path(path))
        if inode:
            paths.setdefault(inode, path)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        outs = list(pool.map(_bpf_net_show, paths.values()))
    ids: set[int] = set()
    for out in outs:
        with contextlib.suppress(json.JSONDecodeError):
            for entry in json.loads(out or "[]"):
                for kind in ("tc", "xdp"):
                    ids.update(int(p["id"]) for p in entry.get(kind, []) if "id" in p)
    return ids


def _bpf_net_show(netns_path: str) -> str:
    return run(["nsenter", f"--net={netns_path}", "bpftool", "-j", "net", "show"], check=False).stdout


def _wait_released(programs: set[int]) -> list[str]:
    """The kernel frees a deleted namespace's devices, and their programs, a moment later: wait (bounded)."""
    deadline = time.monotonic() + LINK_GONE_TIMEOUT
    left = set(programs)
    while left and time.monotonic() < deadline:
        left = {p for p in left if run(["bpftool", "prog", "show", "id", str(p)], check=False).returncode == 0}
        if left:
            time.sleep(0.05)
    return [f"BPF program {p}" for p in sorted(left)]


def _unbind_namespaces(lab_id: str) -> None:
    """Unmount and remove the lab's namespace files (a killed run may have left some unmounted)."""
    pattern = re.compile(rf"^{re.escape(lab_id)}-(h\d+|sw)\.(mnt|uts|pid)$")
    for path in NS_ROOT.glob(f"{lab_id}-*"):
        if pattern.match(path.name):
            with contextlib.suppress(OSError):  # not mounted
                kernel.umount(str(path))
            path.unlink(missing_ok=True)


def has_traces(lab_id: str, record: dict | None) -> bool:
    """Whether anything of the lab exists: record, namespaces, root links, cgroups, namespace files."""
    return bool(
        record
        or lab_netns(lab_id)
        or lab_root_links(lab_id)
        or cgroups.leftovers(lab_id)
        or any(NS_ROOT.glob(f"{lab_id}-*"))
    )


def down(lab_id: str) -> str:
    """Remove everything the lab created; succeeds when nothing is there."""
    validate_lab_id(lab_id)
    record = state.EMBEDDED.load(lab_id)
    if not has_traces(lab_id, record):
        return f"lab {lab_id} was not up"
    programs = _bpf_programs(lab_id)
    # Processes first: a dockerd or a server still running would keep mounts busy.
    cgroups.kill(lab_id)
    for _ in range(3):
        pids = lab_pids(lab_id)
        if not pids:
            break
        _kill(pids)
    _unbind_namespaces(lab_id)
    remove_networks(lab_id)
    stuck = cgroups.remove(lab_id)
    if record:
        remove_inventory(Path(record["inventory"]))
    if state.EMBEDDED.exists(lab_id):
        shutil.rmtree(state.EMBEDDED.root / lab_id)
    leftovers = lab_netns(lab_id) + lab_root_links(lab_id) + stuck + [str(p) for p in lab_pids(lab_id)]
    leftovers += _wait_released(programs)
    if leftovers:
        raise LabError(f"could not remove {', '.join(leftovers)}: check `ip netns pids` and retry")
    return f"lab {lab_id} is down"
