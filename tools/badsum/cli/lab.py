"""`badsum lab up|down|status`: the labs, through the provider interface (badsum.lab.interface).

`up` goes to the provider `--provider` names (or the one the lab id already
belongs to; the embedded lab by default), everything else to the provider
that owns the lab id. The command knows each provider only by that
interface: which options it takes, and its up/down/status.
"""

# Longer than ~300 lines: up, down and status share the option groups each provider declares; the
#   file is the whole of the command's side of badsum.lab.interface.

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from badsum import ansible
from badsum.cli.common import Parser, command, directory, group, whole_number
from badsum.exitcodes import Exit, UsageError
from badsum.lab import provider as embedded
from badsum.lab.interface import LabProvider, UpRequest
from badsum.lab.inventory import default_dir
from badsum.lab.spec import (
    DEFAULT_HOSTS,
    DEFAULT_LAB,
    MAX_HOSTS,
    MAX_SLOT,
    MIN_LAB_MEMORY,
    MIN_LAB_PIDS,
    LabError,
    validate_lab_id,
)
from badsum.lab.sysrun import require_root
from badsum.vm import guest, kernel
from badsum.vm import provider as qemu
from badsum.vm.spec import DEFAULT_VM_HOSTS

PROVIDERS: dict[str, LabProvider] = {"embedded": embedded.PROVIDER, "qemu": qemu.PROVIDER}
# The option each UpRequest field comes from, to name it in a refusal.
OPTIONS = {
    "hosts": "--hosts",
    "remake": "--remake",
    "slot": "--slot",
    "user": "--user",
    "student": "--student",
    "limits": "--pids-max/--memory-max/--cpu-weight",
    "kernel": "--kernel",
    "init": "--init",
}


def owner(lab_id: str) -> LabProvider | None:
    """The provider a lab id belongs to: another provider's record first (its leftovers look like an embedded
    lab's), then anything of an embedded lab."""
    for provider in PROVIDERS.values():
        if provider is not embedded.PROVIDER and provider.owns(lab_id):
            return provider
    return embedded.PROVIDER if embedded.PROVIDER.owns(lab_id) else None


def _lab_id(text: str) -> str:
    try:
        validate_lab_id(text)
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _user(text: str) -> str:
    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", text) or text == "root":
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: a user name for the lab (lowercase, not root)")
    return text


def _student(text: str) -> Path:
    """A workshop student's account file, read and checked now (before anything changes)."""
    from badsum.lab.accounts import Account

    try:
        Account.student(Path(text))
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--student {text}: ")) from None
    return Path(text)


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


def _limits(args: argparse.Namespace):
    from badsum.lab.cgroups import Limits

    if args.pids_max is None and args.memory_max is None and args.cpu_weight is None:
        return None
    return Limits(pids=args.pids_max, memory=args.memory_max, cpu_weight=args.cpu_weight)


def request(args: argparse.Namespace) -> UpRequest:
    if args.remake and args.hosts is None:
        raise UsageError("--remake: only with --hosts N (the size to make the lab again at)")
    return UpRequest(
        lab_id=args.lab,
        inventory=args.write_inventory or default_dir(args.lab),
        hosts=args.hosts,
        remake=args.remake,
        slot=args.slot,
        user=args.user,
        student=args.student,
        limits=_limits(args),
        kernel=args.kernel,
        init=args.init,
    )


def choose(args: argparse.Namespace, wanted: UpRequest) -> LabProvider:
    """The provider for `up`, after refusing every option it does not take (before anything changes)."""
    found = owner(args.lab)
    provider = PROVIDERS[args.provider] if args.provider else (found or embedded.PROVIDER)
    if found is not None and found is not provider:
        raise UsageError(f"--lab {args.lab}: a {found.name} lab already; --provider {provider.name} cannot bring it up")
    ignored = sorted(OPTIONS[name] for name in wanted.given() - provider.takes)
    if ignored:
        raise UsageError(
            f"{', '.join(ignored)}: not an option of a {provider.name} lab (it takes: "
            f"{', '.join(sorted(OPTIONS[n] for n in provider.takes)) or 'none of these'})"
        )
    missing = sorted(OPTIONS[name] for name in provider.requires - wanted.given())
    if missing:
        raise UsageError(f"--provider {provider.name} needs {', '.join(missing)}")
    return provider


def cmd_up(args: argparse.Namespace) -> Exit:
    wanted = request(args)
    provider = choose(args, wanted)
    require_root("`badsum lab up`")
    print(provider.up(wanted))
    return Exit.OK


def cmd_down(args: argparse.Namespace) -> Exit:
    require_root("`badsum lab down`")
    if args.all:
        # Other providers' labs first: their leftovers would look like an embedded lab's.
        others = [(p, lab) for p in PROVIDERS.values() if p is not embedded.PROVIDER for lab in p.labs()]
        for provider, lab_id in others:
            print(provider.down(lab_id))
        mine = sorted({e["lab_id"] for e in embedded.PROVIDER.status()})
        for lab_id in mine:
            print(embedded.PROVIDER.down(lab_id))
        if not others and not mine:
            print("no lab was up")
    else:
        print((owner(args.lab) or embedded.PROVIDER).down(args.lab))
    for path in ansible.clean_stale_controller_files():  # what killed runs left on this machine
        print(f"removed {path} (left by a killed run)")
    return Exit.OK


def cmd_status(args: argparse.Namespace) -> Exit:
    require_root("`badsum lab status`")
    if args.all:
        others = [e for p in PROVIDERS.values() if p is not embedded.PROVIDER for e in p.status()]
        taken = {e["lab_id"] for e in others}
        report = [e for e in embedded.PROVIDER.status() if e["lab_id"] not in taken] + others
    else:
        report = (owner(args.lab) or embedded.PROVIDER).status(args.lab)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(status_text(report))
    return Exit.OK if all(e["healthy"] for e in report) else Exit.FINDING


def status_text(report: list[dict]) -> str:
    if not report:
        return "no lab is up"
    lines: list[str] = []
    for entry in report:
        lines += _qemu_lines(entry) if entry.get("provider") == "qemu" else _embedded_lines(entry)
    return "\n".join(lines)


def _embedded_lines(entry: dict) -> list[str]:
    health = "healthy" if entry["healthy"] else "NOT healthy"
    if not entry["state_file"]:
        health = "leftovers of an interrupted run (run `badsum lab down --lab ID`)"
    lines = [f"lab {entry['lab_id']}: {health}"]
    if entry.get("inventory"):
        lines.append(f"  inventory: {entry['inventory']}  slot: {entry['slot']}  hosts: {entry['hosts']}")
    if entry.get("limits"):
        held = ", ".join(f"{k}={v}" for k, v in entry["limits"].items() if v is not None)
        lines.append(f"  held to: {held} (the whole lab)")
    for node in entry.get("nodes", []):
        flags = " ".join(f"{k}={'yes' if node[k] else 'NO'}" for k in ("netns", "mount_ns", "sshd"))
        lines.append(f"  {node['name']:<8} {flags}")
    memory = f"{entry['memory_bytes'] / 2**20:.1f} MiB" if entry.get("memory_bytes") is not None else "?"
    lines.append(
        f"  namespaces: {len(entry['netns'])}  root links: {len(entry['links'])}  "
        f"processes: {entry['processes']}  cgroups: {len(entry['cgroups'])}  memory: {memory}"
    )
    return lines


def _qemu_lines(e: dict) -> list[str]:
    health = "healthy" if e["healthy"] else "NOT healthy"
    lines = [f"lab {e['lab_id']} (qemu): {health}"]
    if e["state_file"]:
        lines.append(
            f"  kernel: {e['release']} ({e['kernel']})  init: {e['init']}  accel: {e['accel']}  slot: {e['slot']}"
        )
        lines.append(f"  inventory: {e['inventory']}")
        for n in e["nodes"]:
            boot = f"  booted to SSH in {n['boot_seconds']} s" if n["boot_seconds"] else ""
            flags = " ".join(f"{k}={'yes' if n[k] else 'NO'}" for k in ("qemu", "ssh"))
            lines.append(f"  {n['name']:<8} {flags}{boot}")
    memory = f"{e['memory_bytes'] / 2**20:.0f} MiB" if e.get("memory_bytes") is not None else "?"
    lines.append(f"  processes: {e['processes']}  links: {len(e['links'])}  memory: {memory}")
    return lines


def _which_lab(parser: Parser, all_too: bool) -> None:
    labs = parser.add_mutually_exclusive_group() if all_too else parser
    labs.add_argument("--lab", type=_lab_id, default=DEFAULT_LAB, help=f"the lab's id (default {DEFAULT_LAB})")
    if all_too:
        labs.add_argument("--all", action="store_true", help="every lab on this machine, of every provider")


def register(sub: argparse._SubParsersAction) -> None:
    lab = group(sub, "lab", help="the labs: emulated hosts and a switch on this machine, or QEMU guests")
    up = command(
        lab,
        "up",
        cmd_up,
        help="bring a lab up (a no-op when it is up as asked); with no options, the lab reproduce.yml uses",
        exits={Exit.OK: "the lab is up", Exit.FAILURE: "it could not be brought up (the message says why)"},
    )
    _which_lab(up, all_too=False)
    up.add_argument(
        "--provider",
        choices=sorted(PROVIDERS),
        help="embedded (namespaces on this machine; the default for a new lab) or qemu (guests booting a lab "
        f"kernel: {DEFAULT_VM_HOSTS} hosts + a switch); default: the provider the lab id already belongs to",
    )
    up.add_argument(
        "--write-inventory",
        type=directory,
        metavar="DIR",
        help="where to write the lab's inventory (default inventories/local for lab0, inventories/lab-ID else); "
        "`badsum lab down` removes what it wrote",
    )
    up.add_argument(
        "--hosts",
        type=whole_number(1, MAX_HOSTS),
        help=f"embedded: the number of emulated hosts (default: the lab's own when it is up, else {DEFAULT_HOSTS}, "
        "the lab reproduce.yml makes)",
    )
    up.add_argument(
        "--remake",
        action="store_true",
        help="embedded, with --hosts: a lab of this inventory that is up with another number of hosts is taken "
        "down and made again (without it: refused)",
    )
    up.add_argument(
        "--slot",
        type=whole_number(0, MAX_SLOT),
        help="embedded: address slot, 198.18.SLOT.0/24 etc. (default: a free one)",
    )
    account = up.add_mutually_exclusive_group()
    account.add_argument(
        "--user",
        type=_user,
        help="embedded: also a non-root user on every node, with the lab's key and sudo; root does not log in "
        "(a cloud VM's shape)",
    )
    account.add_argument(
        "--student",
        type=_student,
        metavar="FILE",
        help="embedded: a workshop student's account on every node (JSON: name, password_hash, keys, home); "
        "`badsum workshop up` writes it",
    )
    up.add_argument("--pids-max", type=_pids, help="embedded: tasks (processes and threads) the whole lab may have")
    up.add_argument("--memory-max", type=_size, help="embedded: memory the whole lab may use (e.g. 1G; tmpfs too)")
    up.add_argument("--cpu-weight", type=_cpu_weight, help="embedded: the lab's share of the CPU (1-10000; 100 equal)")
    up.add_argument("--kernel", choices=kernel.VARIANTS, help="qemu (required): the lab kernel the guests boot")
    up.add_argument(
        "--init",
        choices=list(guest.INITS),
        help=f"qemu: the guests' PID 1 - busybox (fast; the default, {guest.DEFAULT_INIT}) or systemd (as a "
        "production host: the kit's systemd units run for real)",
    )

    down = command(
        lab,
        "down",
        cmd_down,
        help="take a lab down: everything it made is removed, also what a killed run left",
        exits={Exit.OK: "nothing of the lab is left", Exit.FAILURE: "something could not be removed (named)"},
    )
    _which_lab(down, all_too=True)

    status = command(
        lab,
        "status",
        cmd_status,
        help="what exists of a lab (or of every lab), node by node",
        exits={
            Exit.OK: "every lab shown is healthy (or none is up)",
            Exit.FINDING: "a lab shown is not healthy, or is what an interrupted run left",
        },
        reports=True,
    )
    _which_lab(status, all_too=True)
