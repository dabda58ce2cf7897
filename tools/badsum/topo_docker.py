"""Docker as the incident met it: IPv6 routed via docker0, and IPv4 published with DNAT.

A private dockerd (Debian's docker.io) runs on the host for badsum alone: its
own data root, exec root, socket and pidfile, its bridge and IPv6 prefix
taken from the lab's ranges (never docker's 172.17.0.0/16 default). The
system's own dockerd, if any, is never used or touched. The client is
Debian's /usr/bin/docker, the same version as the daemon (a newer client may
be first in PATH).

The image is built offline: a static busybox is the whole root filesystem,
imported with `docker import`. The container idles; the server is started in
it with `docker exec -i … nc -l -p PORT`, so the recorder gets nc's output.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

try:
    from badsum import hostnet as hn
except ImportError:  # inside the host kit
    import hostnet as hn  # type: ignore[no-redef]

DOCKER = "/usr/bin/docker"
SOCKET = "/run/badsum/docker.sock"
PIDFILE = "/run/badsum/dockerd.pid"
EXEC_ROOT = "/run/badsum/docker-exec"
# Under /run: private to each emulated host, and gone with it.
DATA_ROOT = "/run/badsum/docker-data"
IMAGE = "badsum/nc:1"
CONTAINER = "badsum-server"
BUSYBOX = "/bin/busybox"


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return hn.sh(DOCKER, "-H", f"unix://{SOCKET}", *args, check=check, timeout=timeout)


def _pid() -> int | None:
    try:
        pid = int(Path(PIDFILE).read_text())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _api_ready() -> bool:
    return (
        Path(SOCKET).exists()
        and docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0
    )


def start_daemon(bip: str, fixed_cidr_v6: str, data_root: str, service_mode: str) -> bool:
    if _pid() and _api_ready():
        return False
    for path in (EXEC_ROOT, data_root):
        Path(path).mkdir(parents=True, exist_ok=True)
    args = [
        "dockerd",
        f"--data-root={data_root}",
        f"--exec-root={EXEC_ROOT}",
        f"--host=unix://{SOCKET}",
        f"--pidfile={PIDFILE}",
        f"--bip={bip}",
        "--ipv6",
        f"--fixed-cidr-v6={fixed_cidr_v6}",
        # no pool from docker's defaults (172.17.0.0/16 and friends), ever
        f"--default-address-pool=base={ipaddress.ip_interface(bip).network},size=28",
        "--storage-driver=vfs",
        "--log-level=warn",
        "--exec-opt=native.cgroupdriver=cgroupfs",
    ]
    if service_mode == "systemd":
        hn.sh("systemd-run", "--unit=badsum-dockerd", "--collect", "--quiet", *args)
    else:
        log = open(hn.STATE / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
        subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
    hn.wait_for(_api_ready, 30, "dockerd answering on its socket")
    return True


def stop_daemon(service_mode: str) -> bool:
    """End dockerd and its containerd (both ours), once the container is gone.

    A graceful dockerd shutdown takes ~2 s, waiting on containerd; with no
    container left there is nothing to save, so after a short grace period
    both are killed. Their state directories are removed by the caller.
    """
    pid = _pid()
    containerd = Path(EXEC_ROOT) / "containerd" / "containerd.pid"
    try:
        child = int(containerd.read_text())
    except (OSError, ValueError):
        child = None
    if service_mode == "systemd":
        hn.sh("systemctl", "kill", "--signal=SIGKILL", "badsum-dockerd", check=False)
    for victim in (pid, child):
        if victim and hn.alive(victim):
            os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 0.5
    while any(v and hn.alive(v) for v in (pid, child)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for victim in (pid, child):
        if victim and hn.alive(victim):
            os.kill(victim, signal.SIGKILL)
    hn.wait_for(lambda: not any(v and hn.alive(v) for v in (pid, child)), 5, "dockerd and containerd to exit")
    for path in (SOCKET, PIDFILE):
        Path(path).unlink(missing_ok=True)
    return pid is not None


def ensure_image() -> bool:
    if docker("image", "inspect", IMAGE, check=False).returncode == 0:
        return False
    tar_path = hn.STATE / "badsum-nc-rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(str(Path(BUSYBOX).resolve()), arcname="bin/busybox")
        for applet in ("sh", "nc", "sleep", "cat", "ip", "ethtool"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    with open(tar_path, "rb") as data:
        subprocess.run(
            [DOCKER, "-H", f"unix://{SOCKET}", "import", "-", IMAGE], stdin=data, check=True,
            capture_output=True, timeout=60,
        )  # fmt: skip
    tar_path.unlink()
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


def up(mode: str, port: int, bip: str, fixed_cidr_v6: str, node_v4: str, node_v6: str,
       service_mode: str = "direct", data_root: str = DATA_ROOT) -> dict:  # fmt: skip
    if not shutil.which("dockerd") or not Path(DOCKER).exists():
        raise hn.HostError("dockerd or /usr/bin/docker is missing: install Debian's docker.io")
    changed = hn.snapshot(f"docker-{mode}")
    changed |= start_daemon(bip, fixed_cidr_v6, data_root, service_mode)
    changed |= ensure_image()
    changed |= ensure_container(mode, port)
    info = json.loads(docker("inspect", CONTAINER).stdout)[0]
    pid = info["State"]["Pid"]
    net = info["NetworkSettings"]
    netns = f"/proc/{pid}/ns/net"
    server = [DOCKER, "-H", f"unix://{SOCKET}", "exec", "-i", CONTAINER, "nc", "-l", "-p", str(port)]
    common = {
        "changed": changed,
        "server_command": server,
        "namespaces": {"host": "self", "container": netns},
        "container_veths": [{"netns": netns, "ifname": "eth0", "host_side": ""}],
        "container": {"pid": pid, "ipv4": net["IPAddress"], "ipv6": net["GlobalIPv6Address"]},
    }
    if mode == "ipv6":
        return {
            **common,
            "name": "docker-ipv6",
            "path": f"routed IPv6 via docker0 into the container ({fixed_cidr_v6}), no NAT",
            "target": net["GlobalIPv6Address"],
            "client_routes": [{"dst": fixed_cidr_v6, "via": node_v6}],
        }
    return {
        **common,
        "name": "docker-nat",
        "path": f"DNAT from {node_v4}:{port} (published port) to {net['IPAddress']}:{port}",
        "target": node_v4,
        "client_routes": [],
    }


def down(mode: str, service_mode: str = "direct", data_root: str = DATA_ROOT) -> dict:
    changed = False
    if _pid() and _api_ready():
        changed |= docker("rm", "-f", CONTAINER, check=False).returncode == 0
    changed |= stop_daemon(service_mode)
    # dockerd leaves its bridge and its iptables chains behind on exit
    changed |= hn.delete_link("docker0")
    for path in (EXEC_ROOT, data_root):
        if Path(path).exists():
            hn.sh("rm", "-rf", "--one-file-system", path)
            changed = True
    (hn.STATE / "dockerd.log").unlink(missing_ok=True)
    changed |= hn.restore(f"docker-{mode}")
    return {"changed": changed}
