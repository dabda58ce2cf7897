"""Compile badsum's eBPF programs with clang, for this host's kernel.

    bpf build --program corrupt    the corruption injector (tc, direct action)
    bpf build --program vethbug    the veth-bug emulator (CO-RE: needs this kernel's BTF)
    bpf build --program vxlannat   the unfixed-NAT emulator of the 2020 vxlan bug (CO-RE too)
    bpf build --program vethbug --program vxlannat   several in one call

The C sources travel inside the host kit (shared/programs/*.bpf.c). An object is named
after its source's digest and the kernel release, so it is built once per
source and kernel and never goes stale; hosts sharing a filesystem (the
embedded lab's) build it once between them, under a lock.
"""

import argparse
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Tuple

from .common import HostError, Parser, atomic_write, lib_dir, package_data, sh

PROGRAMS = ("corrupt", "vethbug", "vxlannat")
BTF = Path("/sys/kernel/btf/vmlinux")


def source(program: str) -> bytes:
    return package_data(f"shared/programs/{program}.bpf.c")


def object_path(program: str) -> Path:
    digest = hashlib.sha256(source(program)).hexdigest()[:12]
    return lib_dir() / "bpf" / f"{program}-{os.uname().release}-{digest}.bpf.o"


def _compile(program: str, out: Path, workdir: Path) -> None:
    src = workdir / f"{program}.bpf.c"
    src.write_bytes(source(program))
    flags = ["-O2", "-g", "-mcpu=v3", "-target", "bpf", f"-I/usr/include/{os.uname().machine}-linux-gnu"]
    if program in ("vethbug", "vxlannat"):
        # CO-RE: the header is this kernel's own type information.
        if not BTF.exists():
            raise HostError(f"{BTF} is missing: the emulator needs a kernel built with BTF (CONFIG_DEBUG_INFO_BTF)")
        header = sh("bpftool", "btf", "dump", "file", str(BTF), "format", "c", timeout=120).stdout
        (workdir / "vmlinux.h").write_text(header)
        flags.append(f"-I{workdir}")
        # bpf_cast_to_kern_ctx (Linux 6.2+) where the kernel has it; the VM labs' 6.1 kernels do not.
        funcs = sh("bpftool", "btf", "dump", "file", str(BTF), timeout=120).stdout
        if "FUNC 'bpf_cast_to_kern_ctx'" in funcs:
            flags.append("-DBADSUM_KERN_CTX")
    tmp = workdir / "out.o"
    sh("clang", *flags, "-c", str(src), "-o", str(tmp), timeout=300)
    atomic_write(out, tmp.read_bytes())


def build(args: argparse.Namespace) -> dict:
    import shutil  # here, not above: every probe imports this module, few compile (shutil, tempfile: ~3 ms)

    for tool in ("clang", "bpftool"):
        if not shutil.which(tool):
            raise HostError(f"`{tool}` is not installed: the eBPF programs need clang, llvm, libbpf-dev and bpftool")
    built = {program: _build_one(program) for program in dict.fromkeys(args.program)}
    return {
        "changed": any(changed for _, changed in built.values()),
        "objects": {p: str(o) for p, (o, _) in built.items()},
    }


def _build_one(program: str) -> Tuple[Path, bool]:
    """Build one program unless it is built: its object, and whether it was built now."""
    import tempfile

    out = object_path(program)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first host builds; the others find it done
        if out.exists():
            return out, False
        with tempfile.TemporaryDirectory(prefix="badsum-bpf-") as workdir:
            _compile(program, out, Path(workdir))
    for stale in out.parent.glob(f"{program}-{os.uname().release}-*.bpf.o"):
        if stale != out:
            os.unlink(stale)
    return out, True


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    sub.add_parser("build", help="compile a program (no-op when built)").add_argument(
        "--program", choices=PROGRAMS, required=True, action="append", help="repeat it for several"
    )
    return p


def run(args: argparse.Namespace) -> dict:
    return build(args)
