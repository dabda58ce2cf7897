"""A lab's non-root account: a cloud VM's user (`--user`) or a workshop student's (`--student`).

The account lives in the lab's own /etc files (passwd, group, shadow,
sudoers.d), which every node of the lab mounts over the machine's: the
machine's own /etc is never changed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from badsum.files import write_private
from badsum.lab.spec import MAX_SLOT, LabError, LabSpec

# A lab user's uid and gid: this plus the lab's slot (see lab_uid).
LAB_UID_BASE = 42000


@dataclass(frozen=True)
class Account:
    """A non-root user on every node of a lab.

    `--user NAME`: the shape of a cloud VM - the lab's key, sudo, and root
    does not log in. `--student FILE` (a workshop's): no sudo, a password and
    the student's own keys beside the lab's (the lab's key is never given to
    a student), a home made from a template; root logs in with the lab's key
    as usual, for the trainer's tools.
    """

    name: str
    sudo: bool = True
    password_hash: str | None = None
    keys: tuple[str, ...] = ()
    home: str | None = None

    @classmethod
    def student(cls, path: Path) -> Account:
        try:
            data = json.loads(path.read_text())
            return cls(
                data["name"],
                sudo=False,
                password_hash=data["password_hash"],
                keys=tuple(data["keys"]),
                home=data["home"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LabError(f"--student {path}: want JSON with name, password_hash, keys, home ({exc})") from None

    @property
    def sealed(self) -> bool:
        """A student's: their nodes see nothing of the machine's data (see badsum.lab.nodes)."""
        return not self.sudo

    def __post_init__(self) -> None:
        # A node mounts its own /run, /tmp, /root, /home and /sys: a template there would be out of its sight.
        if self.home and (
            not Path(self.home).is_dir()
            or Path(self.home).is_relative_to("/run")
            or any(Path(self.home).is_relative_to(p) for p in ("/tmp", "/root", "/home", "/sys"))
        ):
            raise LabError(f"home template {self.home!r}: a directory outside /run, /tmp, /root, /home and /sys")


def lab_uid(spec: LabSpec) -> int:
    """The lab user's uid (and gid): one of its own for every lab on this machine, taken from the lab's slot.

    Two labs never share it (slots are unique), so a student of one seat owns
    nothing of another's, and it is no account of the machine's own: files on
    the machine that a node sees are never the lab user's by accident.
    """
    uid = LAB_UID_BASE + spec.slot
    for table in ("passwd", "group"):
        for line in Path(f"/etc/{table}").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2] == str(uid):
                raise LabError(
                    f"uid/gid {uid} (lab slot {spec.slot}) belongs to {fields[0]!r} in this machine's /etc/{table}: "
                    f"lab users take {LAB_UID_BASE}-{LAB_UID_BASE + MAX_SLOT}; free that range or use another slot"
                )
    return uid


def make_etc(spec: LabSpec, account: Account | None) -> None:
    """The nodes' own /etc files: hosts (each node's name resolves), and with an account, its user and sudo."""
    etc = spec.state_dir / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    names = "\n".join(f"{n.mgmt_v4} {n.name}" for n in spec.nodes())
    (etc / "hosts").write_text(Path("/etc/hosts").read_text() + f"\n# badsum lab {spec.lab_id}\n{names}\n")
    if not account:
        return
    user = account.name
    uid = lab_uid(spec)
    (etc / "passwd").write_text(
        Path("/etc/passwd").read_text() + f"{user}:x:{uid}:{uid}:badsum lab user:/home/{user}:/bin/bash\n"
    )
    (etc / "group").write_text(Path("/etc/group").read_text() + f"{user}:x:{uid}:\n")
    # "*": no password to log in with, but not locked (sshd refuses "!" accounts); keys only.
    secret = account.password_hash or "*"
    # The machine's hashes and the student's: root's alone from the first byte.
    write_private(etc / "shadow", Path("/etc/shadow").read_text() + f"{user}:{secret}:20000:0:99999:7:::\n", 0o640)
    sudoers = etc / "sudoers.d"
    if sudoers.exists():
        shutil.rmtree(sudoers)
    shutil.copytree("/etc/sudoers.d", sudoers) if Path("/etc/sudoers.d").is_dir() else sudoers.mkdir()
    if account.sudo:
        write_private(sudoers / "badsum-lab", f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)


def lab_user(spec: LabSpec, account: Account | None) -> tuple[str, int] | None:
    """The account's name and uid as the lab's passwd has them (make_etc wrote it)."""
    if not account:
        return None
    passwd = (spec.state_dir / "etc" / "passwd").read_text().splitlines()
    return account.name, next(int(f[2]) for f in (line.split(":") for line in passwd) if f[0] == account.name)
