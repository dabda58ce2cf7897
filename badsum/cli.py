"""The `badsum` command: a thin front end over the modules of this package."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from badsum.lab import provider as labmod
from badsum.lab.spec import (
    DEFAULT_HOSTS,
    DEFAULT_LAB,
    MIN_LAB_MEMORY,
    MIN_LAB_PIDS,
    LabError,
    LabSpec,
    validate_lab_id,
)
from badsum.lab.sysrun import CommandError, require_root


def project_dir() -> Path:
    """The checkout this command runs from: the nearest parent holding reproduce.yml."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "reproduce.yml").exists():
            return d
    return here


def default_inventory(lab_id: str) -> Path:
    name = "local" if lab_id == DEFAULT_LAB else f"lab-{lab_id}"
    return project_dir() / "inventories" / name


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _user(text: str) -> str:
    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", text) or text == "root":
        raise argparse.ArgumentTypeError(f"{text!r} is not a user name for the lab (lowercase, not root)")
    return text


def _lab_id(text: str) -> str:
    try:
        validate_lab_id(text)
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def fit_lab(lab_id: str, hosts: int | None, inventory: Path, remake: bool) -> tuple[int, str, bool]:
    """The size to bring the lab up with, what to say of a lab of this inventory already up, and
    whether to take it down first.

    No size asked: a lab that is up is used as it is (reproduce.yml runs its
    cells on however many pairs it has, in more rounds on fewer). A size that
    differs from the lab's: with `remake`, the lab is made again at that
    size; without, the provider refuses. A lab of another inventory (another
    checkout) is never touched here: the provider refuses it.
    """
    state = labmod.load_state(lab_id)
    ours = bool(state) and state.get("complete") and Path(state["inventory"]) == inventory.resolve()
    if not ours:
        return (DEFAULT_HOSTS if hosts is None else hosts), "", False
    if hosts is None or hosts == state["hosts"]:
        pairs = state["hosts"] // 2
        return state["hosts"], f"the run uses it as it is: {pairs} client/server pair{'s' * (pairs != 1)}", False
    if not remake:
        return hosts, "", False
    return hosts, f"remade: it was up with {state['hosts']} hosts, {hosts} were asked for", True


def cmd_lab(args: argparse.Namespace) -> int:
    require_root(f"`badsum lab {args.action}`")
    if args.action == "up":
        inventory = Path(args.inventory) if args.inventory else default_inventory(args.lab)
        if args.user and args.student:
            raise LabError("--user and --student: one account per lab")
        hosts, fitted, down_first = fit_lab(args.lab, args.hosts, inventory, args.remake)
        slot = args.slot if args.slot is not None else labmod.allocate_slot(args.lab)
        spec = LabSpec(args.lab, hosts, slot)  # refuses a bad size before anything changes
        if down_first:
            labmod.down(args.lab)
        account = labmod.Account.student(Path(args.student)) if args.student else args.user
        said = labmod.up(spec, inventory, project_dir(), account, lab_limits(args))
        print(f"{said}; {fitted}" if fitted else said)
    elif args.action == "down":
        ids = sorted({e["lab_id"] for e in labmod.status()}) if args.all else [args.lab]
        for lab_id in ids or [args.lab]:
            print(labmod.down(lab_id))
        from badsum.runner import clean_stale_controller_files  # what killed runs left on this machine

        for path in clean_stale_controller_files():
            print(f"removed {path} (left by a killed run)")
    else:
        report = labmod.status(None if args.all else args.lab)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_status(report)
    return 0


def _size(text: str) -> int:
    from badsum.lab.cgroups import parse_size

    try:
        value = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < MIN_LAB_MEMORY:
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: at least {MIN_LAB_MEMORY // 2**20}M (sshd, a dockerd)")
    return value


def _cpu_weight(text: str) -> int:
    from badsum.lab.cgroups import CPU_WEIGHT_RANGE

    low, high = CPU_WEIGHT_RANGE
    if not text.isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(
            f"{text!r}: allowed: a whole number from {low} to {high} (100: an equal share)"
        )
    return int(text)


def _pids(text: str) -> int:
    if not text.isdigit() or int(text) < MIN_LAB_PIDS:
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: a whole number, at least {MIN_LAB_PIDS}")
    return int(text)


def lab_limits(args: argparse.Namespace):
    from badsum.lab.cgroups import Limits, limitable

    limits = Limits(pids=args.pids_max, memory=args.memory_max, cpu_weight=args.cpu_weight)
    wanted = {"pids": limits.pids, "memory": limits.memory, "cpu": limits.cpu_weight}
    missing = sorted(c for c, v in wanted.items() if v is not None and c not in limitable())
    if missing:
        raise LabError(f"this machine's cgroups have no {', '.join(missing)} controller: that limit cannot be kept")
    return limits if any(v is not None for v in wanted.values()) else None


def print_status(report: list[dict]) -> None:
    if not report:
        print("no lab is up")
        return
    for entry in report:
        health = "healthy" if entry["healthy"] else "NOT healthy"
        if not entry["state_file"]:
            health = "leftovers of an interrupted run (run `badsum lab down --lab ID`)"
        print(f"lab {entry['lab_id']}: {health}")
        if entry.get("inventory"):
            print(f"  inventory: {entry['inventory']}  slot: {entry['slot']}  hosts: {entry['hosts']}")
        if entry.get("limits"):
            held = ", ".join(f"{k}={v}" for k, v in entry["limits"].items() if v is not None)
            print(f"  held to: {held} (the whole lab)")
        for node in entry.get("nodes", []):
            flags = " ".join(f"{k}={'yes' if node[k] else 'NO'}" for k in ("netns", "mount_ns", "sshd"))
            print(f"  {node['name']:<8} {flags}")
        memory = f"{entry['memory_bytes'] / 2**20:.1f} MiB" if entry.get("memory_bytes") is not None else "?"
        print(
            f"  namespaces: {len(entry['netns'])}  root links: {len(entry['links'])}  "
            f"processes: {entry['processes']}  cgroups: {len(entry['cgroups'])}  memory: {memory}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="badsum", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("lab", help="manage the embedded lab (emulated hosts + switch)")
    lab.add_argument("action", choices=["up", "down", "status"])
    lab.add_argument("--lab", type=_lab_id, default=DEFAULT_LAB, help=f"lab id (default {DEFAULT_LAB})")
    lab.add_argument(
        "--hosts",
        type=_positive_int,
        help=f"number of emulated hosts (default: the lab's own when it is up, else {DEFAULT_HOSTS}, "
        "the lab reproduce.yml makes)",
    )
    lab.add_argument(
        "--remake",
        action="store_true",
        help="up: a lab of this inventory that is up with another number of hosts is taken down and made "
        "again with --hosts (without it: refused)",
    )
    lab.add_argument("--slot", type=_positive_int, help="address slot: 198.18.SLOT.0/24 etc. (default: free one)")
    lab.add_argument("--inventory", help="where to write the inventory (default inventories/local)")
    lab.add_argument(
        "--user",
        type=_user,
        help="up: also a non-root user on every node, with the lab's key and sudo; "
        "root does not log in (a cloud VM's shape)",
    )
    lab.add_argument(
        "--student",
        metavar="FILE",
        help="up: a workshop student's account on every node (JSON: name, password_hash, keys, "
        "home); `badsum workshop up` writes it",
    )
    lab.add_argument("--pids-max", type=_pids, help="up: tasks (processes and threads) the whole lab may have at once")
    lab.add_argument("--memory-max", type=_size, help="up: memory the whole lab may use (e.g. 1G; tmpfs included)")
    lab.add_argument("--cpu-weight", type=_cpu_weight, help="up: the lab's share of the CPU (1-10000; 100 is equal)")
    lab.add_argument("--all", action="store_true", help="down/status: every lab on this machine")
    lab.add_argument("--json", action="store_true", help="status: machine-readable output")
    lab.set_defaults(func=cmd_lab)
    from badsum.vm import cli as vm_cli  # `lab up --provider qemu --kernel ...`, `kernel build`

    vm_cli.register(sub, lab)

    from badsum import commands
    from badsum.fleet import cli as fleet_cli
    from badsum.workshop import cli as workshop_cli

    commands.register(sub)
    fleet_cli.register(sub)
    workshop_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (LabError, CommandError, PermissionError, FileNotFoundError, ValueError) as exc:
        print(f"badsum: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `badsum lab status | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
