"""What a lab can leave behind on this machine, found from the outside: tests and faults use it.

Everything is looked for by the lab's id, the way `badsum lab down` itself
finds it, plus the processes the test saw in the lab before the teardown
(by identity: PIDs are reused quickly here).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from badsum.host.shared.common import identity, present
from badsum.lab import cgroups
from badsum.lab.spec import NS_ROOT, STATE_ROOT


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


def lab_processes(lab_id: str) -> set[tuple[int, int]]:
    """Every process in the lab's cgroups now, containers included, as (pid, start time)."""
    return {i for pid in cgroups.pids(lab_id) if (i := identity(pid))}


def badsum_programs() -> set[int]:
    """Ids of the BPF programs badsum loads (the injector, the emulator) that exist now, in any lab."""
    progs = json.loads(_run("bpftool", "-j", "prog", "show") or "[]")
    return {p["id"] for p in progs if p.get("name") in ("badsum_corrupt", "badsum_vethbug", "badsum_vxlannat")}


def leftovers(
    lab_id: str,
    processes: set[tuple[int, int]] = frozenset(),
    inventory: Path | None = None,
    programs_before: set[int] | None = None,
) -> list[str]:
    found = []
    netns = _run("ip", "netns", "list")
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"{lab_id}-")]
    links = json.loads(_run("ip", "-j", "link") or "[]")
    found += [f"link {link['ifname']}" for link in links if link["ifname"].startswith(f"{lab_id}-")]
    found += [f"ns file {p}" for p in NS_ROOT.glob(f"{lab_id}-*")]
    mounts = Path("/proc/self/mounts").read_text()
    found += [f"mount {line.split()[1]}" for line in mounts.splitlines() if f"/{lab_id}-" in line.split()[1]]
    if (STATE_ROOT / lab_id).exists():
        found.append(f"state {STATE_ROOT / lab_id}")
    found += [f"cgroup {path}" for path in cgroups.leftovers(lab_id)]
    for pid, start in processes:
        if present((pid, start)):
            found.append(f"process {pid} ({_comm(pid)})")
    if inventory is not None:
        found += [f"inventory file {inventory / name}" for name in ("hosts.yml", ".ssh") if (inventory / name).exists()]
    # BPF programs live as long as a device they are attached to: the lab's are gone with its namespaces.
    # Programs that already existed before the test (another lab's) are not this lab's residue.
    found += [f"bpf program {prog}" for prog in sorted(badsum_programs() - (programs_before or set()))]
    return found


def controller_files() -> list[str]:
    """Scratch directories of killed runs on the controller (ansible-runner's, Ansible's): none may stay."""
    from badsum.ansible import stale_controller_files

    return [f"controller file {p}" for p in stale_controller_files()]


def results_intact(results: Path) -> list[str]:
    """Every JSON file under a results directory is whole (written atomically, never half)."""
    broken = []
    for path in results.rglob("*.json"):
        try:
            json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            broken.append(f"{path}: {exc}")
    broken += [f"temporary file {p}" for p in results.rglob(".*.tmp")]
    return broken


# The machine seen whole, not through the lab's own bookkeeping: a container that
# escaped the lab's cgroup (the leak this kit once had) shows up here even when
# every lab-scoped check above is satisfied.
IPTABLES = ("iptables-save", "ip6tables-save")


def _orphan(pid: int, before: set[int]) -> bool:
    """Started during the test and hanging off PID 1 through new processes only (a daemon left running)."""
    while pid > 1:
        if pid in before:
            return False  # a descendant of something that was already there (pytest, a shell...)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
    return True


def _cgroup_dirs() -> set[str]:
    return {str(d) for h in cgroups.hierarchies() for d in h.mount.rglob("*") if d.is_dir()}


def _firewall() -> list[str]:
    """The root namespace's rules, without counters (they move on their own)."""
    rules = []
    for tool in IPTABLES:
        out = _run(tool)
        rules += [f"{tool}: {line.split(' [')[0]}" for line in out.splitlines() if line[:1] in ("-", ":")]
    return rules


def _tc() -> list[str]:
    links = json.loads(_run("ip", "-j", "link") or "[]")
    found = []
    for link in links:
        dev = link["ifname"]
        found += [
            f"qdisc {dev}: {q.get('kind')} {q.get('handle')}"
            for q in json.loads(_run("tc", "-j", "qdisc", "show", "dev", dev) or "[]")
            if q.get("kind") not in ("noqueue", "pfifo_fast", "mq", "fq_codel")
        ]
        for hook in ("ingress", "egress"):
            found += [
                f"filter {dev} {hook}: {f.get('kind')}"
                for f in json.loads(_run("tc", "-j", "filter", "show", "dev", dev, hook) or "[]")
                if f.get("kind")
            ]
    return found


def machine() -> dict:
    """What the whole machine has now: processes, cgroup directories, root-namespace firewall and tc state."""
    procs = {i for p in Path("/proc").iterdir() if p.name.isdigit() and (i := identity(int(p.name)))}
    return {"processes": procs, "cgroups": _cgroup_dirs(), "firewall": set(_firewall()), "tc": set(_tc())}


def machine_residue(before: dict, settle: float = 20.0) -> list[str]:
    """What is on the machine now and was not before: new daemons, cgroup directories, rules, filters.

    Waits up to `settle` seconds for what goes by itself (a killed
    ansible-playbook's SSH control masters end once their server is gone).
    """
    deadline = time.monotonic() + settle
    while True:
        now = machine()
        old_pids = {pid for pid, _ in before["processes"]}
        found = [
            f"process {pid} ({_comm(pid)}) left running"
            for pid, start in sorted(now["processes"] - before["processes"])
            if present((pid, start)) and _orphan(pid, old_pids)
        ]
        found += [f"cgroup {d}" for d in sorted(now["cgroups"] - before["cgroups"])]
        found += [f"firewall {r}" for r in sorted(now["firewall"] - before["firewall"])]
        found += [f"tc {t}" for t in sorted(now["tc"] - before["tc"])]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"
