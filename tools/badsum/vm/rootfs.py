"""The guests' root filesystem: Debian 12 from apt (mmdebstrap), as one ext4 image.

Everything the host kit needs on a lab host is installed here once, so the
guests never reach a package mirror (the lab has no route off the machine;
the inventory turns the kit's apt step off). The image is cached under
ROOTFS/<key>/rootfs.img, the key a digest of the suite, the package list and
the files baked in (tools/badsum/vm/guest.py); guests boot it read-only with a
throw-away overlay (QEMU's snapshot=on), so one image serves every lab.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from badsum.lab.spec import LabError
from badsum.vm import guest, paths

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What roles/badsum_common/vars/main.yml asks of every part (client, server,
# corruptor), plus what a guest needs to be a host at all. clang compiles the
# kit's BPF programs in the guest against the guest kernel's own BTF, with
# the kernel UAPI headers from linux-libc-dev.
PACKAGES = (
    "busybox-static",
    "mount",
    "openssh-server",
    "python3",
    "sudo",
    "procps",
    "iproute2",
    "iputils-ping",
    "ethtool",
    "tcpdump",
    "netcat-openbsd",
    "iptables",
    "conntrack",
    "docker.io",
    "containernetworking-plugins",
    "bpftool",
    "clang",
    "llvm",
    "libbpf-dev",
    "libc6-dev",
    "linux-libc-dev",
    # PID 1 of the guests booted with --init systemd (and systemctl's bus); under busybox init
    # neither runs, and bench/persistence.py starts systemd-udevd by hand.
    "systemd",
    "dbus",
    "udev",
)
IMAGE_SIZE = "8G"  # sparse: dockerd's data root and the results grow in the guests' overlays
RECIPE = 1


def key(packages: tuple[str, ...] = PACKAGES) -> str:
    parts = {
        "recipe": RECIPE,
        "suite": SUITE,
        "mirrors": MIRRORS,
        "packages": sorted(packages),
        "files": {p: [c, m] for p, (c, m) in sorted(guest.files().items())},
        "links": guest.links(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def image_dir(k: str | None = None) -> Path:
    return paths.ROOTFS / (k or key())


def record() -> dict | None:
    d = image_dir()
    with contextlib.suppress(OSError, ValueError):
        rec = json.loads((d / "build.json").read_text())
        if (d / "rootfs.img").is_file():
            return rec
    return None


def image() -> Path:
    rec = record()
    if rec is None:
        raise LabError("the VM root filesystem is not built for the current package list: run `badsum kernel build`")
    return Path(rec["image"])


def build() -> dict:
    """Build the image unless it is cached; returns its record plus `changed`."""
    for tool in ("mmdebstrap", "mkfs.ext4"):
        if not shutil.which(tool):
            raise LabError(f"`{tool}` is missing: apt-get install mmdebstrap e2fsprogs")
    k = key()
    out = image_dir(k)
    with _lock():
        if (rec := record()) is not None:
            return {**rec, "changed": False}
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=out) as tmp:
            root = Path(tmp) / "root"
            _debootstrap(root, out / "build.log")
            strap_seconds = round(time.monotonic() - started, 1)
            _customize(root)
            versions = _versions(root)
            img = Path(tmp) / "rootfs.img"
            _run(["mkfs.ext4", "-q", "-L", "badsum-root", "-d", str(root), str(img), IMAGE_SIZE], timeout=1200)
            img.rename(out / "rootfs.img")
        rec = {
            "key": k,
            "image": str(out / "rootfs.img"),
            "suite": SUITE,
            "packages": list(PACKAGES),
            "versions": versions,
            "build_seconds": round(time.monotonic() - started, 1),
            "mmdebstrap_seconds": strap_seconds,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (out / "build.json").write_text(json.dumps(rec, indent=2) + "\n")
        # One image at a time (1 GB each): a guest still running an older one
        # keeps reading it through its open file.
        for old in paths.ROOTFS.iterdir():
            if old.is_dir() and old != out:
                shutil.rmtree(old, ignore_errors=True)
        return {**rec, "changed": True}


def _debootstrap(root: Path, log: Path) -> None:
    cmd = [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root",
        f"--include={','.join(PACKAGES)}",
        # Only what the list asks for (docker.io's recommends are a git and more).
        "--aptopt=APT::Install-Recommends false",
        *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
        SUITE,
        str(root),
        *MIRRORS,
    ]
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, timeout=3600)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise LabError(f"mmdebstrap failed (exit {proc.returncode}); end of {log}:\n{tail}")


def _customize(root: Path) -> None:
    for path, (content, mode) in guest.files().items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)
    for path, target in guest.links().items():
        link = root / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    # Each guest gets its own host key from fw_cfg; none may be shared through the image.
    for old in (root / "etc" / "ssh").glob("ssh_host_*"):
        old.unlink()
    (root / "etc" / "machine-id").write_text("")
    for stale in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (root / stale).glob("*"):
            if f.is_file():
                f.unlink()


def _versions(root: Path) -> dict[str, str]:
    proc = _run(["chroot", str(root), "dpkg-query", "-W", "-f=${Package} ${Version}\n", *PACKAGES])
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    paths.ROOTFS.mkdir(parents=True, exist_ok=True)
    with open(paths.ROOTFS / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _run(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc
