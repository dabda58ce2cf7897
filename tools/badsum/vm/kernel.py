"""The lab kernels: Debian's 6.1 source built twice, with and without the two incidents' fixes.

    unfixed   PATCHES["unfixed"] applied, each putting back what a fix removed:
              kernel/veth-unfixed.patch (2016): veth_xmit() marks unverified
              packets verified again, as every kernel before 4.4 did;
              kernel/nat-zero-udp-csum-revert.patch (2020): NAT "updates" a
              zero UDP checksum of a CHECKSUM_PARTIAL skb, as every kernel
              before ea64d8d6c675 (5.7) did
    fixed     the same tree and config without any patch (what Debian ships)

Both come from one source tree and one .config (x86_64 defconfig +
kvm_guest.config + kernel/lab.config), and differ only in the patches and in
the release suffix (-badsum-unfixed / -badsum-fixed), so a guest's `uname -r`
says which one it runs. The first build takes 12-16 min on 2 cores (701-935 s measured); the second
variant reuses the tree and rebuilds the patched objects and the link (71-85 s).

A build is cached under KERNELS/<variant>-<key>/ (bzImage, config,
build.json, build.log), the key being a digest of the source package
version, the config fragment, every patch and the recipe: an unchanged
rebuild is a no-op, a changed input is a new directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from badsum import topologies
from badsum.lab.spec import LabError
from badsum.vm import paths

VARIANTS = ("unfixed", "fixed")
# Each incident's bug (the topology catalogue's `bug`) and the file in kernel/ that reverts its fix.
REVERTS = {"veth": "veth-unfixed.patch", "vxlan-nat": "nat-zero-udp-csum-revert.patch"}
# The patches each variant's tree carries (every other one is reversed): the unfixed kernel lacks
# every incident's fix, so one lab measures both incidents' vulnerable rows for real (a bug
# without a revert here fails tests/unit/test_vm_real.py, not the import).
PATCHES: dict[str, tuple[str, ...]] = {
    "unfixed": tuple(REVERTS[bug] for bug in topologies.BUGS if bug in REVERTS),
    "fixed": (),
}
ALL_PATCHES = tuple(dict.fromkeys(p for names in PATCHES.values() for p in names))
SOURCE_PACKAGE = "linux-source-6.1"
TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
BASE_CONFIGS = ("defconfig", "kvm_guest.config")
# Bump when the steps below change in a way that changes the image.
RECIPE = 1
BUILD_TOOLS = ("make", "gcc", "flex", "bison", "bc", "pahole", "xz", "patch")
APT_HINT = f"apt-get install {SOURCE_PACKAGE} build-essential flex bison bc libelf-dev libssl-dev dwarves xz-utils"
CONFIG_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
UNSET_LINE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass(frozen=True)
class Inputs:
    source_version: str  # the Debian package version, e.g. 6.1.192-2
    fragment: bytes
    patches: tuple[tuple[str, bytes], ...]  # (file name, contents), every patch of every variant

    def patch_digests(self) -> dict[str, str]:
        return {name: hashlib.sha256(text).hexdigest() for name, text in self.patches}

    def key(self, variant: str) -> str:
        # Every patch, applied or not: the fixed tree is the one with all of them reversed.
        parts = {
            "recipe": RECIPE,
            "variant": variant,
            "source": self.source_version,
            "fragment": hashlib.sha256(self.fragment).hexdigest(),
            "patches": self.patch_digests(),
            "applied": list(PATCHES.get(variant, ())),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def has_fix(variant: str) -> bool:
    """The fixed kernel has every incident's fix, the unfixed one none."""
    return not PATCHES[variant]


def source_version() -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", SOURCE_PACKAGE], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise LabError(f"{SOURCE_PACKAGE} is not installed: {APT_HINT}")
    return proc.stdout.strip()


def inputs(kernel_dir: Path = paths.KERNEL_DIR) -> Inputs:
    return Inputs(
        source_version=source_version(),
        fragment=(kernel_dir / "lab.config").read_bytes(),
        patches=tuple((name, (kernel_dir / name).read_bytes()) for name in ALL_PATCHES),
    )


def image_dir(variant: str, given: Inputs) -> Path:
    return paths.KERNELS / f"{variant}-{given.key(variant)}"


def record(variant: str, given: Inputs | None = None) -> dict | None:
    """The build record of the current inputs' image, or None when it is not built."""
    d = image_dir(variant, given or inputs())
    with contextlib.suppress(OSError, ValueError):
        rec = json.loads((d / "build.json").read_text())
        if (d / "bzImage").is_file():
            return rec
    return None


def image(variant: str) -> Path:
    if variant not in VARIANTS:
        raise LabError(f"--kernel {variant!r}: allowed: {', '.join(VARIANTS)}")
    rec = record(variant)
    if rec is None:
        raise LabError(f"the {variant} lab kernel is not built for the current kernel/ files: run `make kernels`")
    return Path(rec["image"])


# -- the shared source tree ---------------------------------------------------


def tree(version: str) -> Path:
    """The unpacked source, once per package version (a marker tells a complete unpack from a killed one)."""
    top = paths.KERNELS / "src" / version
    src = top / "linux-source-6.1"
    if (top / ".unpacked").exists():
        return src
    if not TARBALL.exists():
        raise LabError(f"{TARBALL} is missing: {APT_HINT}")
    shutil.rmtree(src, ignore_errors=True)
    top.mkdir(parents=True, exist_ok=True)
    _run(["tar", "-xJf", str(TARBALL), "-C", str(top)], timeout=1800)
    (top / ".unpacked").write_text(version + "\n")
    return src


def parse_config(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if m := CONFIG_LINE.match(line.strip()):
            values[m[1]] = m[2]
        elif m := UNSET_LINE.match(line.strip()):
            values[m[1]] = "n"
    return values


def config_mismatches(fragment: str, final: str) -> list[str]:
    """Fragment lines the final .config does not honour: a renamed option, or one whose dependency is off."""
    want, got = parse_config(fragment), parse_config(final)
    return [f"{k}={v} (got {got.get(k, 'n')})" for k, v in want.items() if got.get(k, "n") != v]


def configure(src: Path, fragment: bytes, jobs: int) -> None:
    marker = src / ".badsum-config"
    digest = hashlib.sha256(fragment + str(RECIPE).encode()).hexdigest()
    if marker.exists() and marker.read_text().strip() == digest and (src / ".config").exists():
        return
    for target in BASE_CONFIGS:
        _make(src, [target], jobs)
    config = src / ".config"
    # Later assignments win in Kconfig: the fragment overrides both bases.
    config.write_bytes(config.read_bytes() + b"\n" + fragment)
    _make(src, ["olddefconfig"], jobs)
    wrong = config_mismatches(fragment.decode(), config.read_text())
    if wrong:
        raise LabError("kernel/lab.config asks for options this source does not grant: " + ", ".join(wrong))
    marker.write_text(digest + "\n")


def patch_applied(src: Path, patch: Path) -> bool:
    proc = subprocess.run(
        ["patch", "-p1", "-R", "--dry-run", "-s", "-f", "-i", str(patch)], cwd=src, capture_output=True, check=False
    )
    return proc.returncode == 0


def set_patch(src: Path, patch: Path, applied: bool) -> None:
    if patch_applied(src, patch) == applied:
        return
    _run(["patch", "-p1", "-s", "-f", *([] if applied else ["-R"]), "-i", str(patch)], cwd=src)


def set_patches(src: Path, kernel_dir: Path, variant: str) -> None:
    """The variant's patches applied, every other one reversed (idempotent on the shared tree)."""
    wanted = PATCHES[variant]
    for name in reversed(ALL_PATCHES):
        if name not in wanted:
            set_patch(src, kernel_dir / name, applied=False)
    for name in wanted:
        set_patch(src, kernel_dir / name, applied=True)


# -- building ----------------------------------------------------------------


def localversion(variant: str) -> str:
    return f"-badsum-{variant}"


def build(variant: str, jobs: int = 0, kernel_dir: Path = paths.KERNEL_DIR) -> dict:
    """Build one variant unless its image is cached; returns the build record plus `changed`."""
    if variant not in VARIANTS:
        raise LabError(f"unknown kernel variant {variant!r}: allowed: {', '.join(VARIANTS)}")
    _check_tools()
    given = inputs(kernel_dir)
    jobs = jobs or os.cpu_count() or 1
    with _lock():
        if (rec := record(variant, given)) is not None:
            return {**rec, "changed": False}
        out = image_dir(variant, given)
        out.mkdir(parents=True, exist_ok=True)
        src = tree(given.source_version)
        started = time.monotonic()
        configure(src, given.fragment, jobs)
        set_patches(src, kernel_dir, variant)
        incremental = (src / "vmlinux").exists()
        log = out / "build.log"
        _make(src, [f"LOCALVERSION={localversion(variant)}", "bzImage"], jobs, log=log)
        seconds = round(time.monotonic() - started, 1)
        release = _make(src, [f"LOCALVERSION={localversion(variant)}", "-s", "kernelrelease"], jobs).strip()
        shutil.copyfile(src / ".config", out / "config")
        tmp = out / "bzImage.tmp"
        shutil.copyfile(src / "arch" / "x86" / "boot" / "bzImage", tmp)
        tmp.rename(out / "bzImage")
        rec = {
            "variant": variant,
            "has_fix": has_fix(variant),
            "release": release,
            "image": str(out / "bzImage"),
            "key": given.key(variant),
            "source_package": f"{SOURCE_PACKAGE} {given.source_version}",
            "fragment_sha256": hashlib.sha256(given.fragment).hexdigest(),
            "patches_sha256": given.patch_digests(),
            "patches_applied": list(PATCHES[variant]),
            "config_sha256": hashlib.sha256((out / "config").read_bytes()).hexdigest(),
            "build_seconds": seconds,
            "incremental": incremental,
            "jobs": jobs,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (out / "build.json").write_text(json.dumps(rec, indent=2) + "\n")
        return {**rec, "changed": True}


def _check_tools() -> None:
    missing = [t for t in BUILD_TOOLS if not shutil.which(t)]
    if missing:
        raise LabError(f"missing build tools: {', '.join(missing)}: {APT_HINT}")


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One build at a time: the variants share the tree (and the machine's cores)."""
    paths.KERNELS.mkdir(parents=True, exist_ok=True)
    with open(paths.KERNELS / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _make(src: Path, args: list[str], jobs: int, log: Path | None = None) -> str:
    # nice 19: a kernel build must not starve the labs and tests sharing the machine.
    cmd = ["nice", "-n", "19", "make", "-C", str(src), f"-j{jobs}", *args]
    if log is None:
        return _run(cmd, timeout=600).stdout
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, timeout=4 * 3600)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise LabError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}); end of {log}:\n{tail}")
    return ""


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc
