"""Names and addresses of a VM lab: host1..hostN and a switch, as QEMU guests.

The same shape as an embedded lab (LabSpec: host names, switch ports pN,
container prefixes per client/server pair), so the inventory is written by
the same code. Only the address blocks differ: VM labs use their own slots,
so a VM lab and an embedded lab never share a prefix whatever slots the two
providers pick.

    management   198.18.(64+slot).0/24, fd00:b6:slot::/64   bridge <lab>-mgmt on this machine
    data         198.19.(64+slot).0/24, fd00:b6:slot:1::/64 the switch guest's bridge
    pods         198.19.(96+slot).0/24, one /29 per pair
    docker0      198.18.(96+slot).0/24, one /29 per pair; IPv6 fd00:b6:slot:1nn::/64
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from badsum.lab.spec import PAIR_BLOCK, LabError, LabSpec
from badsum.vm import paths

VM_LAB_PREFIX = "vm"
MGMT_THIRD_OCTET = 64
CONTAINER_THIRD_OCTET = 96
MAX_VM_SLOT = 31
DEFAULT_VM_HOSTS = 2
MAX_VM_HOSTS = 16  # each one a TCG guest: more would not fit the machine anyway


@dataclass(frozen=True)
class VmLabSpec(LabSpec):
    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lab_id.startswith(VM_LAB_PREFIX):
            raise LabError(f"a VM lab's id starts with {VM_LAB_PREFIX!r} (e.g. vm1), got {self.lab_id!r}")
        if self.hosts > MAX_VM_HOSTS:
            raise LabError(f"a VM lab has at most {MAX_VM_HOSTS} hosts, got {self.hosts}")
        if self.hosts % 2:
            raise LabError(f"a VM lab has client/server pairs: --hosts must be even, got {self.hosts}")
        third = MGMT_THIRD_OCTET + self.slot
        object.__setattr__(self, "mgmt_v4", ipaddress.IPv4Network(f"198.18.{third}.0/24"))
        object.__setattr__(self, "data_v4", ipaddress.IPv4Network(f"198.19.{third}.0/24"))
        object.__setattr__(self, "mgmt_v6", ipaddress.IPv6Network(f"fd00:b6:{self.slot:x}:0::/64"))
        object.__setattr__(self, "data_v6", ipaddress.IPv6Network(f"fd00:b6:{self.slot:x}:1::/64"))

    @property
    def state_dir(self) -> Path:
        return paths.STATE_ROOT / self.lab_id

    def containers(self, n: int) -> dict[str, str]:
        third = CONTAINER_THIRD_OCTET + self.slot
        offset = ((n - 1) // 2) * 2 ** (32 - PAIR_BLOCK)
        pods = ipaddress.IPv4Address(f"198.19.{third}.0") + offset
        docker = ipaddress.IPv4Address(f"198.18.{third}.0") + offset
        return {
            "badsum_pod_cidr": f"{pods}/{PAIR_BLOCK}",
            "badsum_docker_bip": f"{docker + 1}/{PAIR_BLOCK}",
            "badsum_docker_ipv6_cidr": f"fd00:b6:{self.slot:x}:{0x100 + n:x}::/64",
        }

    def mac(self, node_index: int, nic: int) -> str:
        """Locally administered, unique per lab slot, node (0 = switch) and NIC (0 = management)."""
        return f"52:54:b6:{self.slot:02x}:{node_index:02x}:{nic:02x}"

    def link_socket(self, end: str) -> Path:
        """One end of a data cable (hN: host N's NIC, pN: switch port N): a unix datagram socket."""
        return self.state_dir / "links" / f"{end}.sock"


def node_index(name: str) -> int:
    return 0 if name == "switch" else int(name.removeprefix("host"))
