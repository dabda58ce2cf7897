"""`badsum kernel build|status`: the VM labs' kernels (with and without the veth fix) and root filesystem."""

from __future__ import annotations

import argparse
import json
import sys

from badsum.cli.common import command, group, whole_number
from badsum.exitcodes import Exit
from badsum.lab.sysrun import require_root
from badsum.vm import kernel, rootfs


def _variants(args: argparse.Namespace) -> tuple[str, ...]:
    return kernel.VARIANTS if args.variant == "all" else (args.variant,)


def cmd_build(args: argparse.Namespace) -> Exit:
    require_root("`badsum kernel build`")
    say = {"file": sys.stderr} if args.json else {}
    out: dict[str, dict | None] = {}
    for v in _variants(args):
        if kernel.record(v) is None:
            print(
                f"kernel {v}: building (log: {kernel.image_dir(v, kernel.inputs()) / 'build.log'})", flush=True, **say
            )
        out[v] = kernel.build(v, args.jobs)
        print(_kernel_line(v, out[v]), flush=True, **say)
    if not args.no_rootfs:
        if rootfs.record() is None:
            print(f"rootfs: building (log: {rootfs.image_dir() / 'build.log'})", flush=True, **say)
        out["rootfs"] = rootfs.build()
        print(_rootfs_line(out["rootfs"]), flush=True, **say)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return Exit.OK


def cmd_status(args: argparse.Namespace) -> Exit:
    out = {v: kernel.record(v) for v in _variants(args)} | {"rootfs": rootfs.record()}
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for v in _variants(args):
            print(_kernel_line(v, out[v]))
        print(_rootfs_line(out["rootfs"]))
    return Exit.FINDING if None in out.values() else Exit.OK


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


def register(sub: argparse._SubParsersAction) -> None:
    k = group(sub, "kernel", help="the VM labs' kernels (with and without the veth fix) and root filesystem")
    b = command(
        k,
        "build",
        cmd_build,
        help="build what is missing or out of date (cached in /var/cache/badsum; 13-19 min the first time on 2 cores)",
        exits={Exit.OK: "built (or already up to date)", Exit.FAILURE: "a build failed (its log is named)"},
        reports=True,
    )
    b.add_argument("--variant", choices=[*kernel.VARIANTS, "all"], default="all", help="which kernel (default all)")
    b.add_argument("--jobs", type=whole_number(0), default=0, help="make -j (default 0: every core, at nice 19)")
    b.add_argument("--no-rootfs", action="store_true", help="kernels only")
    s = command(
        k,
        "status",
        cmd_status,
        help="which kernels and root filesystem are built",
        exits={Exit.OK: "every one asked for is built", Exit.FINDING: "one is not built (`badsum kernel build`)"},
        reports=True,
    )
    s.add_argument("--variant", choices=[*kernel.VARIANTS, "all"], default="all", help="which kernel (default all)")
