"""The embedded lab: emulated hosts and a switch on one Linux machine.

Each node (host or switch) is a network namespace plus its own mount and UTS
namespace, kept alive by bind mounts under /run/badsum/ns, with a private
/run, /tmp, /root, /home, sysfs and bpffs, running its own sshd on a management
bridge in the root namespace, inside a cgroup of the lab's own. Ansible
reaches the nodes over SSH exactly as it reaches real machines. Hosts' data
NICs are veths into the switch namespace, whose bridge plays the top-of-rack
switch. The nodes are started by badsum.lab.nodes (why it is built the way
it is: a 200-host lab comes up in seconds, and each host costs the same).

Here: bringing a lab up, in order, and the provider interface
(badsum.lab.interface). Each step's own module: the lab's record and slot
(state), its account (accounts), SSH (sshd), networks (networks), teardown
(teardown: `down` works from what exists, not from the record, so it also
cleans up after a killed run) and status (status).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

from badsum import paths
from badsum.lab import cgroups, nodes, sshd, state, teardown
from badsum.lab import status as lab_status
from badsum.lab.accounts import Account, lab_user, make_etc
from badsum.lab.interface import UpRequest
from badsum.lab.inventory import write_inventory
from badsum.lab.networks import make_networks, node_network
from badsum.lab.spec import DEFAULT_HOSTS, NS_ROOT, LabError, LabSpec
from badsum.lab.sysrun import WORKERS, run

SSH_READY_TIMEOUT = 15.0


def ensure_ns_root() -> None:
    """Mount-namespace binds need a private mount to live on (see unshare(1))."""
    NS_ROOT.mkdir(parents=True, exist_ok=True)
    if str(NS_ROOT) not in {point for point, _, _ in nodes.mountinfo()}:
        run(["mount", "--bind", str(NS_ROOT), str(NS_ROOT)])
        run(["mount", "--make-private", str(NS_ROOT)])


def check_owner(spec: LabSpec, inventory_dir: Path, record: dict, user: str | None = None) -> None:
    """One lab, one owner: a lab is used through the inventory it wrote, nowhere else (user: its account's name)."""
    if Path(record["inventory"]) != inventory_dir.resolve():
        raise LabError(
            f"lab {spec.lab_id} is already up, with its inventory in {record['inventory']} (made from "
            f"{record.get('project', '?')}). Use that inventory (-i {record['inventory']}), take the lab down "
            f"first (`badsum lab down --lab {spec.lab_id}`), or use another lab id (`--lab ID`, or "
            f"-e badsum_lab_id=ID with ansible-playbook)"
        )
    if record["hosts"] != spec.hosts or record.get("user") != user:
        was = f"{record['hosts']} hosts" + (f" and user {record['user']}" if record.get("user") else "")
        want = f"{spec.hosts} hosts" + (f" and user {user}" if user else "")
        raise LabError(
            f"lab {spec.lab_id} is up with {was}, not {want}: run `badsum lab down --lab {spec.lab_id}` first"
        )


def fit(lab_id: str, hosts: int | None, inventory: Path, remake: bool) -> tuple[int, str, bool]:
    """The size to bring the lab up with, what to say of a lab of this inventory already up, and
    whether to take it down first.

    No size asked: a lab that is up is used as it is (reproduce.yml runs its
    cells on however many pairs it has, in more rounds on fewer). A size that
    differs from the lab's: with `remake`, the lab is made again at that
    size; without, `up` refuses. A lab of another inventory (another
    checkout) is never touched here: `up` refuses it.
    """
    record = state.EMBEDDED.load(lab_id)
    ours = bool(record) and record.get("complete") and Path(record["inventory"]) == inventory.resolve()
    if not ours:
        return (DEFAULT_HOSTS if hosts is None else hosts), "", False
    if hosts is None or hosts == record["hosts"]:
        pairs = record["hosts"] // 2
        return record["hosts"], f"the run uses it as it is: {pairs} client/server pair{'s' * (pairs != 1)}", False
    if not remake:
        return hosts, "", False
    return hosts, f"remade: it was up with {record['hosts']} hosts, {hosts} were asked for", True


def check_limits(limits: cgroups.Limits | None) -> None:
    """Refuse a limit this machine's cgroups cannot keep (before anything is made)."""
    if limits is None:
        return
    wanted = {"pids": limits.pids, "memory": limits.memory, "cpu": limits.cpu_weight}
    missing = sorted(c for c, v in wanted.items() if v is not None and c not in cgroups.limitable())
    if missing:
        raise LabError(f"this machine's cgroups have no {', '.join(missing)} controller: that limit cannot be kept")


def up(
    spec: LabSpec,
    inventory_dir: Path,
    project_dir: Path = paths.PROJECT,
    user: str | Account | None = None,
    limits: cgroups.Limits | None = None,
) -> str:
    """Create the lab; a no-op when the same lab is already up and healthy.

    With a user, every node also has that (non-root) account (see Account);
    with limits, the kernel holds the whole lab to them from its first process.
    """
    account = Account(user) if isinstance(user, str) else user
    user = account.name if account else None
    # Ansible reaches a cloud-shaped lab as its user; a student's lab as root, as any lab.
    reach = user if account and account.sudo else None
    record = state.EMBEDDED.load(spec.lab_id)
    if record and record.get("complete"):
        check_owner(spec, inventory_dir, record, user)
        if all(s["sshd"] for s in lab_status.status_nodes(LabSpec(spec.lab_id, record["hosts"], record["slot"]))):
            if not (inventory_dir / "hosts.yml").exists():
                write_inventory(spec, inventory_dir, reach, lab_settings=True)
            return f"lab {spec.lab_id} is already up ({record['hosts']} hosts, inventory {record['inventory']})"
    # Anything left by an interrupted run is removed, never trusted.
    if teardown.has_traces(spec.lab_id, record):
        teardown.down(spec.lab_id)
    ensure_ns_root()
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "lab_id": spec.lab_id,
        "hosts": spec.hosts,
        "slot": spec.slot,
        "inventory": str(inventory_dir.resolve()),
        "project": str(project_dir.resolve()),
        "user": user,
        "limits": asdict(limits) if limits else None,
        "created": time.time(),
        "complete": False,
    }
    # Written first: it reserves the slot for labs created at the same time,
    # and tells `down` where this lab's inventory is if we are interrupted.
    with state.EMBEDDED.locked():
        state.check_slot_free(spec)
        state.EMBEDDED.save(record)
    make_etc(spec, account)
    # The networks are one `ip` process: it runs beside the key generation.
    # The pool is gone before the nodes fork (no thread may hold a lock then).
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        networks = pool.submit(make_networks, spec)
        sshd.make_keys(spec, inventory_dir, pool, account)
        networks.result()
    _start_nodes(spec, account, project_dir, limits)
    write_inventory(spec, inventory_dir, reach, lab_settings=True)
    record["complete"] = True
    state.EMBEDDED.save(record)
    return f"lab {spec.lab_id} is up: {spec.hosts} hosts + switch, inventory {inventory_dir}"


def _start_nodes(spec: LabSpec, account: Account | None, project_dir: Path, limits: cgroups.Limits | None) -> None:
    lab = nodes.LabPlan(
        etc_dir=spec.state_dir / "etc",
        user=lab_user(spec, account),
        home_template=Path(account.home) if account and account.home else None,
        cgroup_mounts=nodes.cgroup_mounts(),
        sshd_config=sshd.config_file(spec),
        sshd_stderr=spec.state_dir / "sshd.stderr",
        # A student's lab sees nothing of the machine's data: other labs, the workshop, this checkout.
        sealed=spec.state_dir if account and account.sealed else None,
        hidden=(project_dir.resolve(),),
    )
    procs = cgroups.create_nodes(spec.lab_id, [node.name for node in spec.nodes()])
    if limits:
        cgroups.set_limits(spec.lab_id, limits)
    plans = []
    for node in spec.nodes():
        batch, ports = node_network(spec, node)
        plans.append(
            nodes.NodePlan(
                name=node.name,
                netns=node.netns,
                ip_batch=batch,
                ports=ports,
                # Both management addresses: an inventory may reach a node over IPv6 as over IPv4.
                sshd_options=(
                    f"ListenAddress={node.mgmt_v4}",
                    f"ListenAddress={node.mgmt_v6}",
                    f"HostKey={sshd.host_key(spec, node)}",
                ),
                cgroup_procs=tuple(procs[node.name]),
                lab_id=spec.lab_id,
            )
        )
    try:
        nodes.start(lab, plans, SSH_READY_TIMEOUT)
    except LabError as exc:
        raise LabError(
            f"{exc}; see `badsum lab status --lab {spec.lab_id}` and run `badsum lab down --lab {spec.lab_id}`"
        ) from None


class EmbeddedProvider:
    """The embedded lab behind badsum.lab.interface.LabProvider."""

    name: ClassVar[str] = "embedded"
    takes: ClassVar[frozenset[str]] = frozenset({"hosts", "remake", "slot", "user", "student", "limits"})
    requires: ClassVar[frozenset[str]] = frozenset()

    def owns(self, lab_id: str) -> bool:
        return teardown.has_traces(lab_id, state.EMBEDDED.load(lab_id))

    def labs(self) -> list[str]:
        return sorted(state.EMBEDDED.all())

    def up(self, request: UpRequest) -> str:
        hosts, fitted, down_first = fit(request.lab_id, request.hosts, request.inventory, request.remake)
        slot = request.slot if request.slot is not None else state.allocate_slot(request.lab_id)
        spec = LabSpec(request.lab_id, hosts, slot)  # refuses a bad size before anything changes
        check_limits(request.limits)
        account = Account.student(request.student) if request.student else request.user
        if down_first:
            teardown.down(request.lab_id)
        said = up(spec, request.inventory, paths.PROJECT, account, request.limits)
        return f"{said}; {fitted}" if fitted else said

    def down(self, lab_id: str) -> str:
        return teardown.down(lab_id)

    def status(self, lab_id: str | None = None) -> list[dict]:
        return lab_status.status(lab_id)

    def inventory(self, lab_id: str) -> Path | None:
        record = state.EMBEDDED.load(lab_id)
        return Path(record["inventory"]) if record else None


PROVIDER = EmbeddedProvider()
