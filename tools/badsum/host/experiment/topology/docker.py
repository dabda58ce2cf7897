"""Docker as the incident met it: IPv6 routed via docker0 (mode ipv6), IPv4 published with DNAT (mode nat).

A private dockerd (Debian's docker.io) runs on the host for badsum alone: its
own data root, exec root, socket and pidfile, its bridge and IPv6 prefix
taken from the lab's ranges (never docker's 172.17.0.0/16 default), and its
containers under a cgroup of badsum's own (inside the lab's, on the embedded
lab), where teardown finds them. The system's own dockerd, if any, is never
used or touched. The client is Debian's /usr/bin/docker, the same version
as the daemon (a newer client may be first in PATH).

The image is built offline: a static busybox is the whole root filesystem,
imported with `docker import`. The container idles; the server is started in
it with `docker exec -i … nc -l -p PORT`, so the recorder gets nc's output.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from ...shared import net
from ...shared.common import STATE, HostError, alive, kill, read_pid, sh, wait_for, wait_gone
from .. import firewall

OPTIONS = {
    "address": "host B's data IPv4 address",
    "address6": "host B's data IPv6 address",
    "bip": "docker0's address with prefix",
    "ipv6_cidr": "the containers' routed IPv6 prefix",
    "service_mode": "the private dockerd: a process (direct) or a transient systemd unit (systemd)",
}
NEEDS = ("address", "address6", "bip", "ipv6_cidr", "service_mode")
DOCKER = "/usr/bin/docker"
SOCKET = STATE / "docker.sock"
PIDFILE = STATE / "dockerd.pid"
EXEC_ROOT = STATE / "docker-exec"
# Under /run: private to each emulated host, and gone with it.
DATA_ROOT = STATE / "docker-data"
IMAGE = "badsum/nc:1"
CONTAINER = "badsum-server"
BUSYBOX = "/bin/busybox"
UNIT = "badsum-dockerd"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return sh(DOCKER, "-H", f"unix://{SOCKET}", *args, check=check, timeout=timeout)


def cgroup_parent() -> str:
    """Where the containers' cgroups go: under this host's lab cgroup when it has one, else /badsum.

    A process of an emulated host lives in /badsum/<lab>/<host> (the lab put
    its sshd there), so its containers land inside the lab and `badsum lab
    down` kills them with it, even after the controller was SIGKILLed.
    """
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        path = line.split(":", 2)[2]
        if path.startswith("/badsum/"):
            return f"{path}/docker"
    return "/badsum/docker"


def _api_ready() -> bool:
    """dockerd answers its API's ping: a request on its socket, not a docker client started every 20 ms."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(SOCKET))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status.split()[1:2] == [b"200"]


def _running() -> int | None:
    pid = read_pid(PIDFILE)
    return pid if pid and alive(pid) else None


def start_daemon(o) -> bool:
    if _running() and _api_ready():
        return False
    for path in (EXEC_ROOT, DATA_ROOT):
        path.mkdir(parents=True, exist_ok=True)
    args = [
        "dockerd",
        f"--data-root={DATA_ROOT}",
        f"--exec-root={EXEC_ROOT}",
        f"--host=unix://{SOCKET}",
        f"--pidfile={PIDFILE}",
        f"--bip={o.bip}",
        "--ipv6",
        f"--fixed-cidr-v6={o.ipv6_cidr}",
        # no pool from docker's defaults (172.17.0.0/16 and friends), ever
        f"--default-address-pool=base={ipaddress.ip_interface(o.bip).network},size={ipaddress.ip_interface(o.bip).network.prefixlen}",
        "--storage-driver=vfs",
        "--log-level=warn",
        "--exec-opt=native.cgroupdriver=cgroupfs",
        f"--cgroup-parent={cgroup_parent()}",
    ]
    if o.service_mode == "systemd":
        sh("systemd-run", f"--unit={UNIT}", "--collect", "--quiet", *args)
    else:
        with open(STATE / "dockerd.log", "ab") as log:  # the daemon keeps its own copy
            subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(_api_ready, 30, "dockerd answering on its socket")
    except HostError as exc:
        log = (STATE / "dockerd.log").read_text(errors="replace")[-1500:] if (STATE / "dockerd.log").exists() else ""
        raise HostError(f"{exc}; dockerd's log ends with: {log.strip() or '(nothing)'}") from None
    return True


def stop_daemon(o) -> bool:
    """End dockerd and its containerd (both ours), once the container is gone.

    A graceful dockerd shutdown takes ~2 s, waiting on containerd; with no
    container left there is nothing to save, so after a short grace period
    (0.1 s) both are killed. Their state directories are removed by the caller.
    """
    pid = read_pid(PIDFILE)
    child = read_pid(EXEC_ROOT / "containerd" / "containerd.pid")
    victims = [p for p in (pid, child) if p and alive(p)]
    if o.service_mode == "systemd" or (not o.service_mode and Path("/run/systemd/system").is_dir()):
        sh("systemctl", "kill", "--signal=SIGKILL", UNIT, check=False)  # down is not told: it looks
    kill(victims, signal.SIGTERM)
    if not wait_gone(victims, 0.1):
        kill(victims, signal.SIGKILL)
    if not wait_gone(victims, 5):
        raise HostError(f"dockerd and containerd ({victims}) did not exit")
    for path in (SOCKET, PIDFILE):
        path.unlink(missing_ok=True)
    return bool(victims)


def ensure_image() -> bool:
    if docker("image", "inspect", IMAGE, check=False).returncode == 0:
        return False
    if not Path(BUSYBOX).exists():
        raise HostError(f"{BUSYBOX} is missing: install Debian's busybox-static (the image is built from it)")
    import tarfile  # only the first time, when the image is built

    tar_path = STATE / "badsum-nc-rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(str(Path(BUSYBOX).resolve()), arcname="bin/busybox")
        for applet in ("sh", "nc", "sleep", "cat", "ip", "ethtool"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    with open(tar_path, "rb") as data:
        proc = subprocess.run(
            [DOCKER, "-H", f"unix://{SOCKET}", "import", "-", IMAGE],
            stdin=data,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    tar_path.unlink()
    if proc.returncode != 0:
        raise HostError(f"`docker import` failed: {proc.stderr.strip()}")
    return True


def ensure_container(mode: str, port: int) -> bool:
    state = docker("inspect", "--format", "{{.State.Running}}", CONTAINER, check=False)
    if state.returncode == 0 and state.stdout.strip() == "true":
        return False
    docker("rm", "-f", CONTAINER, check=False)
    publish = ["--publish", f"{port}:{port}"] if mode == "nat" else []
    # It idles (bounded: a day) until the experiment execs nc in it.
    docker("run", "--detach", "--name", CONTAINER, "--network", "bridge", *publish, IMAGE, "sleep", "86400")
    return True


def up(o) -> dict:
    if not shutil.which("dockerd") or not Path(DOCKER).exists():
        raise HostError("dockerd or /usr/bin/docker is missing: install Debian's docker.io")
    if ipaddress.ip_interface(o.bip).network.overlaps(ipaddress.ip_network("172.16.0.0/12")):
        raise HostError(f"docker0's address {o.bip} is in 172.16.0.0/12: badsum never uses docker's defaults")
    changed = firewall.snapshot(f"docker-{o.mode}")
    changed |= start_daemon(o)
    changed |= ensure_image()
    changed |= ensure_container(o.mode, o.port)
    info = json.loads(docker("inspect", CONTAINER).stdout)[0]
    netns = f"/proc/{info['State']['Pid']}/ns/net"
    settings = info["NetworkSettings"]
    common = {
        "changed": changed,
        "server_command": [DOCKER, "-H", f"unix://{SOCKET}", "exec", "-i", CONTAINER, "nc", "-l", "-p", str(o.port)],
        "namespaces": {"host": "self", "container": netns},
        "container_veths": [{"netns": netns, "ifname": "eth0", "host_side": ""}],
        "container": {
            "pid": info["State"]["Pid"],
            "ipv4": settings["IPAddress"],
            "ipv6": settings["GlobalIPv6Address"],
        },
    }
    if o.mode == "ipv6":
        return {
            **common,
            "path": f"routed IPv6 via docker0 into the container ({o.ipv6_cidr}), no NAT",
            "target": settings["GlobalIPv6Address"],
            "client_routes": [{"dst": o.ipv6_cidr, "via": o.address6}],
        }
    return {
        **common,
        "path": f"DNAT from {o.address}:{o.port} (published port) to {settings['IPAddress']}:{o.port}",
        "target": o.address,
        "client_routes": [],
    }


def _remove_cgroups(parent: str) -> None:
    """rmdir the (now empty) container cgroups under the parent, in every hierarchy, deepest first."""
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        base = hierarchy / parent.lstrip("/")
        if base.is_dir():
            for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                d.rmdir()
            base.rmdir()


def down(o) -> dict:
    changed = False
    if _running() and _api_ready():
        changed |= docker("rm", "-f", CONTAINER, check=False).returncode == 0
    changed |= stop_daemon(o)
    # dockerd leaves its bridge and its iptables chains behind on exit
    changed |= net.delete_link("docker0")
    for path in (EXEC_ROOT, DATA_ROOT):
        if path.exists():
            sh("rm", "-rf", "--one-file-system", str(path))
            changed = True
    (STATE / "dockerd.log").unlink(missing_ok=True)
    try:
        _remove_cgroups(cgroup_parent())
    except OSError as exc:
        raise HostError(f"a container cgroup under {cgroup_parent()} is still busy: {exc}") from None
    changed |= firewall.restore(f"docker-{o.mode}")
    return {"changed": changed}
