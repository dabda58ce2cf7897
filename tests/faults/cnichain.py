"""A runtime-shaped CNI caller, scratch namespaces and injected faults: for tests/faults and bench/cni_plugin.py.

What libcni does (AddNetworkList, DelNetworkList): each plugin of the list in
order, found in CNI_PATH and run in the runtime's network namespace with
CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH on top of the
runtime's own environment; its stdin is the plugin's configuration with the
list's "name" and "cniVersion" and, from the second plugin on, the previous
plugin's result as "prevResult"; the first error stops the list. DEL runs the
list in reverse, each plugin given the final result of the ADD. Here the
runtime's namespace is a scratch one standing for the node ("host"), and the
pod's is another: this machine's own namespaces are never touched. Root only.

A fault is what a plugin call meets on the host: a program hidden or replaced
(bind mounts in a private mount namespace of that call only), a namespace
gone. Every call is bounded, and whatever it started is killed with it.
"""

import contextlib
import ctypes
import json
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
PLUGIN = "badsum-rx-off"
PREFIX = "bscni"  # every namespace this makes; one left by a dead run is removed by the next
RUN_NETNS = Path("/run/netns")
SUBNET = "198.19.250.0/24"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
CALL_TIMEOUT = 10.0

CLONE_NEWNET, CLONE_NEWNS = 0x40000000, 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: "str | bytes") -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def clean_stale() -> "list[str]":
    """Namespaces an earlier run left (its process is gone): removed, never trusted."""
    removed = []
    for entry in RUN_NETNS.glob(f"{PREFIX}-*") if RUN_NETNS.is_dir() else []:
        pid = entry.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            subprocess.run(["ip", "netns", "del", entry.name], capture_output=True, timeout=10)
            removed.append(entry.name)
    return removed


class Namespaces:
    """A "host" namespace standing for the node and a "pod" namespace; both removed on exit, also on failure."""

    def __init__(self) -> None:
        base = f"{PREFIX}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.host, self.pod = f"{base}-h", f"{base}-p"
        self.host_fd = -1

    def path(self, name: str) -> str:
        return str(RUN_NETNS / name)

    def __enter__(self) -> "Namespaces":
        clean_stale()
        try:
            ip("netns", "add", self.host)
            ip("netns", "add", self.pod)
            ip("-n", self.host, "link", "set", "lo", "up")
            self.host_fd = os.open(self.path(self.host), os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.host_fd >= 0:
            os.close(self.host_fd)
            self.host_fd = -1
        for name in (self.pod, self.host):
            if (RUN_NETNS / name).exists():
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def rx(netns: str, ifname: bytes) -> "bool | None":
    """rx-checksumming of a device in a namespace, read by this machine's own ethtool; None if there is none."""
    out = subprocess.run(
        ["nsenter", f"--net={netns}", "ethtool", "-k", ifname], capture_output=True, timeout=10, env={"PATH": PATH}
    )
    for line in out.stdout.decode(errors="replace").splitlines():
        if line.startswith("rx-checksumming:"):
            return line.split()[1] == "on"
    return None


class Fault:
    """Programs of the host hidden or replaced for one plugin call (in its own mount namespace)."""

    def __init__(self, name: str, hide: "tuple[str, ...]" = (), replace: "dict[str, str] | None" = None) -> None:
        self.name, self.hide, self.replace = name, hide, replace or {}
        # A fake that puts a child in a session of its own: no plugin can end it (only the caller's cleanup does).
        self.escapes = "escape" in self.replace.values()
        # A sleep no other process on the machine has: what outlives a call is found by it.
        self.marker = f"60.{random.randrange(10**8):08d}"

    def scripts(self) -> "dict[str, str]":
        return {
            "hang": f"#!/bin/sh\nexec sleep {self.marker}\n",
            "fail": "#!/bin/sh\necho 'a fake failing on purpose' >&2\nexit 1\n",
            "garbage": '#!/bin/sh\nprintf \'{"cniVersion": "1.0.0", "ips": [\\n\'\n',
            "escape": f"#!/bin/sh\nsetsid sleep {self.marker} &\nexit 0\n",
        }

    def mounts(self, work: Path) -> "list[tuple[bytes, bytes]]":
        """The bind mounts that make this fault, prepared under work: (source, target), in order."""
        work.mkdir(parents=True, exist_ok=True)
        mounts = []
        for target, kind in self.replace.items():
            fake = work / f"fake-{kind}"
            fake.write_text(self.scripts()[kind])
            fake.chmod(0o755)
            mounts.append((os.fsencode(fake), os.fsencode(target)))
        for directory in sorted({os.path.dirname(h) for h in self.hide}):
            # The directory as it was, under stash; over it, links to each of its entries but the hidden ones.
            stash, shadow = work / f"stash{directory}", work / f"shadow{directory}"
            stash.mkdir(parents=True, exist_ok=True)
            shadow.mkdir(parents=True, exist_ok=True)
            for name in os.listdir(directory):
                if os.path.join(directory, name) not in self.hide:
                    with contextlib.suppress(FileExistsError):
                        os.symlink(stash / name, shadow / name)
            mounts += [(directory.encode(), os.fsencode(stash)), (os.fsencode(shadow), directory.encode())]
        return mounts

    def end_escaped(self) -> None:
        """Kill what an escaping fake left (it may fork late on a loaded machine: until none is left, 3 s at most)."""
        deadline = time.monotonic() + 3
        while self.escapes and time.monotonic() < deadline:
            left = self.leftovers()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def leftovers(self) -> "list[int]":
        """Processes of this fault still running (a hung fake that the plugin did not end)."""
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and _alive(int(proc.name)):
                with contextlib.suppress(OSError):
                    if self.marker.encode() in (proc / "cmdline").read_bytes():
                        found.append(int(proc.name))
        return found


NO_FAULT = Fault("none")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def _setup(host_fd: int, mounts: "list[tuple[bytes, bytes]]"):
    def setup() -> None:  # in the child, before exec
        if mounts:
            _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
            for source, target in mounts:
                _check(_libc.mount(source, target, None, MS_BIND, None), f"bind {source!r} over {target!r}")
        _check(_libc.setns(host_fd, CLONE_NEWNET), "setns into the host namespace")

    return setup


def kill_session(sid: int) -> None:
    """Every process of the call's session, also those in process groups of their own (timeout(1) makes one)."""
    for _ in range(100):
        members = []
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3]) == sid:
                    members.append(int(proc.name))
        members = [p for p in members if _alive(p)]
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


class Call:
    def __init__(self, rc: "int | None", stdout: bytes, stderr: bytes, seconds: float, timed_out: bool) -> None:
        self.rc, self.stdout, self.stderr, self.seconds, self.timed_out = rc, stdout, stderr, seconds, timed_out

    def json(self) -> object:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"Call(rc={self.rc}, {self.seconds:.3f} s, out={self.stdout[:300]!r}, err={self.stderr[:300]!r})"


def call(
    program: Path,
    env: "dict[bytes, bytes]",
    stdin: bytes,
    host_fd: int,
    mounts: "list[tuple[bytes, bytes]]" = (),
    timeout: float = CALL_TIMEOUT,
) -> Call:
    """One plugin execution as libcni makes it, in the host namespace, bounded; its session killed after it."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [os.fsencode(program)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={b"PATH": PATH.encode(), **env},
            preexec_fn=_setup(host_fd, list(mounts)),
            start_new_session=True,
        )
    except OSError as exc:  # the program (or its interpreter) could not be executed at all
        return Call(None, b"", str(exc).encode(), time.monotonic() - started, False)
    timed_out = False
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_session(proc.pid)
        out, err = proc.communicate()
    seconds = time.monotonic() - started
    kill_session(proc.pid)
    return Call(proc.returncode, out, err, seconds, timed_out)


class Step:
    def __init__(self, plugin: str, conf: dict, result: Call) -> None:
        self.plugin, self.conf, self.call = plugin, conf, result


class Chain:
    """A network configuration list, run as a runtime runs it."""

    def __init__(self, name: str, version: str, plugins: "list[dict]", bin_dir: Path) -> None:
        self.name, self.version, self.plugins, self.bin_dir = name, version, plugins, bin_dir

    def _env(self, command: str, container: str, netns: str, ifname: bytes) -> "dict[bytes, bytes]":
        return {
            b"CNI_COMMAND": command.encode(),
            b"CNI_CONTAINERID": container.encode(),
            b"CNI_NETNS": netns.encode(),
            b"CNI_IFNAME": ifname,
            b"CNI_PATH": os.fsencode(self.bin_dir),
        }

    def _conf(self, plugin: dict, prev: object) -> dict:
        conf = {**plugin, "name": self.name, "cniVersion": self.version}
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def add(
        self,
        ns: Namespaces,
        ifname: bytes,
        container: str,
        netns: "str | None" = None,
        mounts: "dict[str, list[tuple[bytes, bytes]]] | None" = None,
        before: "dict[str, object] | None" = None,
    ) -> "list[Step]":
        """ADD, plugin after plugin; mounts and before (a callable) are per plugin type. Stops at the first error."""
        steps, prev = [], None
        for plugin in self.plugins:
            if before and plugin["type"] in before:
                before[plugin["type"]]()
            conf = self._conf(plugin, prev)
            env = self._env("ADD", container, netns or ns.path(ns.pod), ifname)
            done = call(
                self.bin_dir / plugin["type"],
                env,
                json.dumps(conf).encode(),
                ns.host_fd,
                (mounts or {}).get(plugin["type"], []),
            )
            steps.append(Step(plugin["type"], conf, done))
            if done.rc != 0:
                break
            prev = done.json()
        return steps

    def delete(self, ns: Namespaces, ifname: bytes, container: str, result: object, netns: "str | None" = None):
        """DEL in reverse order, each plugin given the ADD's final result; every step, also after an error."""
        steps = []
        for plugin in reversed(self.plugins):
            conf = self._conf(plugin, result)
            env = self._env("DEL", container, netns or ns.path(ns.pod), ifname)
            done = call(self.bin_dir / plugin["type"], env, json.dumps(conf).encode(), ns.host_fd)
            steps.append(Step(plugin["type"], conf, done))
        return steps


def bin_dir(where: Path, plugin_source: bytes) -> Path:
    """A CNI bin dir: Debian's real plugins, and badsum-rx-off as remediation installs it."""
    where.mkdir(parents=True, exist_ok=True)
    for real in CNI_BIN.iterdir():
        with contextlib.suppress(FileExistsError):
            (where / real.name).symlink_to(real)
    (where / PLUGIN).write_bytes(plugin_source)
    (where / PLUGIN).chmod(0o755)
    return where


def ipam(data_dir: Path) -> dict:
    return {"type": "host-local", "subnet": SUBNET, "dataDir": str(data_dir)}


def badsum_entry(log: Path) -> dict:
    return {"type": PLUGIN, "badsum": "chained by badsum remediate", "badsumLog": str(log)}


def faults() -> "dict[str, Fault]":
    """What badsum-rx-off's ADD meets on a host, by name (new markers each time)."""
    return {
        f.name: f
        for f in (
            Fault("nothing broken"),
            Fault("ethtool absent", hide=("/usr/sbin/ethtool",)),
            Fault("ethtool failing", replace={"/usr/sbin/ethtool": "fail"}),
            Fault("ethtool hanging 60 s", replace={"/usr/sbin/ethtool": "hang"}),
            Fault("nsenter absent", hide=("/usr/bin/nsenter",)),
            Fault("python3 absent", hide=("/usr/bin/python3",)),
            Fault("python3 hanging 60 s", replace={"/usr/bin/python3": "hang"}),
            Fault("python3 exits 1", replace={"/usr/bin/python3": "fail"}),
            Fault("python3 prints garbage", replace={"/usr/bin/python3": "garbage"}),
            Fault("python3's child holds its output", replace={"/usr/bin/python3": "escape"}),
        )
    }
