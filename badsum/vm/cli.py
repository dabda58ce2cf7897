"""The VM commands of `badsum`: `kernel build|status`, and `lab ... --provider qemu --kernel fixed|unfixed`.

badsum/cli.py calls register() once; everything else about VM labs stays here.
`lab down` and `lab status` find a VM lab by its id (no --provider needed).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from badsum.lab.spec import DEFAULT_LAB
from badsum.lab.sysrun import require_root
from badsum.vm import guest, kernel, provider, real, rootfs
from badsum.vm.spec import DEFAULT_VM_HOSTS

LabCommand = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction, lab: argparse.ArgumentParser) -> None:
    lab.add_argument(
        "--provider",
        choices=["embedded", "qemu"],
        default="embedded",
        help="up: embedded (namespaces on this machine, default) or qemu (guests booting a lab kernel; "
        f"{DEFAULT_VM_HOSTS} hosts + a switch, lab id vm...)",
    )
    lab.add_argument("--kernel", choices=kernel.VARIANTS, help="up --provider qemu: the lab kernel the guests boot")
    lab.add_argument(
        "--init",
        choices=list(guest.INITS),
        default=guest.DEFAULT_INIT,
        help="up --provider qemu: the guests' PID 1 - busybox (fast) or systemd (as a production host: "
        "the kit's systemd units run for real)",
    )
    lab.set_defaults(func=_routed(lab.get_default("func")))

    k = sub.add_parser("kernel", help="the VM labs' kernels (with and without the veth fix) and root filesystem")
    k.add_argument("action", choices=["build", "status"])
    k.add_argument("--variant", choices=[*kernel.VARIANTS, "all"], default="all", help="build: which kernel")
    k.add_argument("--jobs", type=int, default=0, help="build: make -j (default: every core, at nice 19)")
    k.add_argument("--no-rootfs", action="store_true", help="build: kernels only")
    k.add_argument("--json", action="store_true", help="machine-readable output")
    k.set_defaults(func=cmd_kernel)

    r = sub.add_parser("reproduce-real", help="the 5 x 3 table on real kernels (two VM labs), beside an emulated run")
    r.add_argument(
        "--compare",
        default="latest",
        metavar="RUN",
        help="the emulated run to compare with, cell by cell (default: the latest run; a path or an id)",
    )
    r.add_argument("--no-compare", action="store_true", help="no comparison")
    r.add_argument("--topologies", nargs="+", default=real.TOPOLOGIES, choices=real.TOPOLOGIES)
    r.add_argument("--backend", choices=["ebpf", "netem"], help="the injector (default: the experiment's, ebpf)")
    r.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="K=V|JSON",
        help="passed to both runs of reproduce.yml, as ansible-playbook -e",
    )
    r.add_argument("--results-dir", default=str(real.PROJECT / "results"), help="where the run goes")
    r.set_defaults(func=cmd_reproduce_real)


def cmd_reproduce_real(args: argparse.Namespace) -> int:
    require_root("`badsum reproduce-real`")
    for variant in kernel.VARIANTS:
        if kernel.record(variant) is None:
            raise ValueError(f"the {variant} kernel is not built: `make kernels` first (~16 min)")
    results_dir = Path(args.results_dir)
    compare = None
    if not args.no_compare:
        compare = Path(args.compare) if "/" in args.compare else results_dir / args.compare
        if not (compare / "run.json").exists():
            raise ValueError(f"--compare {args.compare}: no run at {compare} (run reproduce.yml, or --no-compare)")
        compare = compare.resolve()
    from badsum.runner import parse_extravars

    return real.reproduce_real(results_dir, args.topologies, args.backend, compare, parse_extravars(args.extra_vars))


def _routed(embedded: LabCommand) -> LabCommand:
    """The embedded lab command, unless the lab is (or is to be) a VM lab."""

    def cmd(args: argparse.Namespace) -> int:
        if args.provider == "qemu" or (not args.all and provider.is_vm_lab(args.lab)):
            return cmd_vm_lab(args)
        if args.action == "up" and (args.kernel or args.init != guest.DEFAULT_INIT):
            given = f"--kernel {args.kernel}" if args.kernel else f"--init {args.init}"
            raise ValueError(f"{given}: only for VM labs (--provider qemu); an embedded lab runs this machine's kernel")
        if args.all and args.action == "down":  # first, or the embedded down takes them for its leftovers
            for lab_id in provider.all_states():
                print(provider.down(lab_id))
        if args.all and args.action == "status":
            return _status_all(args)
        return embedded(args)

    return cmd


def _status_all(args: argparse.Namespace) -> int:
    """Both providers' labs; a VM lab's cgroups are not an embedded lab's leftovers."""
    from badsum.cli import print_status
    from badsum.lab import provider as embedded_provider

    require_root("`badsum lab status`")
    embedded = [e for e in embedded_provider.status() if not provider.is_vm_lab(e["lab_id"])]
    vms = provider.status()
    if args.json:
        print(json.dumps(embedded + vms, indent=2))
    else:
        print_status(embedded)
        if vms:
            print(_status_text(vms))
    return 0


def cmd_vm_lab(args: argparse.Namespace) -> int:
    require_root(f"`badsum lab {args.action}`")
    if args.action == "up":
        if not args.kernel:
            raise ValueError("--provider qemu needs --kernel fixed|unfixed")
        from badsum.cli import default_inventory

        inventory = Path(args.inventory) if args.inventory else default_inventory(args.lab)
        print(provider.up(args.lab, args.kernel, inventory, init=args.init))
    elif args.action == "down":
        print(provider.down(args.lab))
    else:
        report = provider.status(None if args.all or args.lab == DEFAULT_LAB else args.lab)
        print(json.dumps(report, indent=2) if args.json else _status_text(report))
    return 0


def _status_text(report: list[dict]) -> str:
    if not report:
        return "no VM lab is up"
    lines = []
    for e in report:
        health = "healthy" if e["healthy"] else "NOT healthy"
        lines.append(f"lab {e['lab_id']} (qemu): {health}")
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
    return "\n".join(lines)


def cmd_kernel(args: argparse.Namespace) -> int:
    require_root("`badsum kernel`")
    variants = kernel.VARIANTS if args.variant == "all" else (args.variant,)
    out: dict[str, dict | None] = {}
    if args.action == "build":
        for v in variants:
            if kernel.record(v) is None:
                print(f"kernel {v}: building (log: {kernel.image_dir(v, kernel.inputs()) / 'build.log'})", flush=True)
            out[v] = kernel.build(v, args.jobs)
            print(_kernel_line(v, out[v]), flush=True)
        if not args.no_rootfs:
            if rootfs.record() is None:
                print(f"rootfs: building (log: {rootfs.image_dir() / 'build.log'})", flush=True)
            out["rootfs"] = rootfs.build()
            print(_rootfs_line(out["rootfs"]), flush=True)
    else:
        out = {v: kernel.record(v) for v in variants} | {"rootfs": rootfs.record()}
        for v in variants:
            print(_kernel_line(v, out[v]))
        print(_rootfs_line(out["rootfs"]))
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def _kernel_line(variant: str, rec: dict | None) -> str:
    if rec is None:
        return f"kernel {variant}: not built"
    how = {False: "cached, ", True: "just "}.get(rec.get("changed"), "")
    kind = "incremental" if rec["incremental"] else "full"
    return f"kernel {variant}: {rec['release']} {rec['image']} ({how}{kind} build: {rec['build_seconds']:.0f} s)"


def _rootfs_line(rec: dict | None) -> str:
    if rec is None:
        return "rootfs: not built"
    how = {False: "cached, ", True: "just "}.get(rec.get("changed"), "")
    return f"rootfs: {rec['image']} ({how}built in {rec['build_seconds']:.0f} s)"
