"""Names and addresses of an embedded lab, derived from its id and slot alone.

Everything the lab creates is named here, so `up`, `down` and `status` agree on
what belongs to a lab even when the state file of a killed run is missing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

# RFC 2544 benchmarking range: never routed on the Internet, never a real LAN.
LAB_V4 = ipaddress.IPv4Network("198.18.0.0/15")
LAB_V6 = ipaddress.IPv6Network("fd00::/8")
MGMT_V4_BASE = ipaddress.IPv4Network("198.18.0.0/16")
DATA_V4_BASE = ipaddress.IPv4Network("198.19.0.0/16")

STATE_ROOT = Path("/var/lib/badsum/labs")
NS_ROOT = Path("/run/badsum/ns")

LAB_ID_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")
# `badsum lab up` with no options makes the lab reproduce.yml uses: this many
# hosts pair up as client and server, so that many cells run side by side.
# Six pairs, not eight: the run is CPU-bound, and on 2 cores eight pairs'
# extra hosts cost more (each prepared, verified, its cells' tasks queued beside
# the others) than their parallelism gains: about a second a run
# (bench/reproduce.py --hosts N, docs/benchmarks.md).
DEFAULT_LAB = "lab0"
DEFAULT_HOSTS = 12
MAX_HOSTS = 200
HOST_OFFSET = 10  # host N gets .(10+N) on both networks
SWITCH_OCTET = 254
# Container prefixes: 198.19.128.0/17 (pods) and 198.18.128.0/17 (docker0)
# give each lab a /22, and each client/server pair in it a /29 - one
# container or pod is all a cell needs. 32 labs can coexist.
MAX_SLOT = 31
PODS_V4 = ipaddress.IPv4Network("198.19.128.0/17")
DOCKER_V4 = ipaddress.IPv4Network("198.18.128.0/17")
LAB_BLOCK = 22
PAIR_BLOCK = 29
# The least a lab can be held to and still run its sshds, Ansible's modules and a dockerd.
MIN_LAB_MEMORY = 256 * 2**20
MIN_LAB_PIDS = 64


class LabError(Exception):
    """A problem the user can fix; the message says how."""


@dataclass(frozen=True)
class Node:
    """One emulated machine: a host or the switch."""

    name: str  # inventory hostname and UTS hostname
    netns: str
    mgmt_v4: str
    mgmt_v6: str
    mgmt_link: str  # root-namespace end of its management veth
    data_v4: str = ""
    data_v6: str = ""
    switch_port: str = ""  # switch-side name of its data link

    @property
    def is_switch(self) -> bool:
        return not self.switch_port


@dataclass(frozen=True)
class LabSpec:
    lab_id: str
    hosts: int
    slot: int
    mgmt_v4: ipaddress.IPv4Network = field(init=False)
    data_v4: ipaddress.IPv4Network = field(init=False)
    mgmt_v6: ipaddress.IPv6Network = field(init=False)
    data_v6: ipaddress.IPv6Network = field(init=False)

    def __post_init__(self) -> None:
        validate_lab_id(self.lab_id)
        if not 1 <= self.hosts <= MAX_HOSTS:
            raise LabError(f"--hosts must be between 1 and {MAX_HOSTS}, got {self.hosts}")
        if not 0 <= self.slot <= MAX_SLOT:
            raise LabError(f"--slot must be between 0 and {MAX_SLOT}, got {self.slot}")
        object.__setattr__(self, "mgmt_v4", ipaddress.IPv4Network(f"198.18.{self.slot}.0/24"))
        object.__setattr__(self, "data_v4", ipaddress.IPv4Network(f"198.19.{self.slot}.0/24"))
        object.__setattr__(self, "mgmt_v6", ipaddress.IPv6Network(f"fd00:b5:{self.slot:x}:0::/64"))
        object.__setattr__(self, "data_v6", ipaddress.IPv6Network(f"fd00:b5:{self.slot:x}:1::/64"))

    # -- names -------------------------------------------------------------
    @property
    def bridge(self) -> str:
        return bridge_name(self.lab_id)

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.lab_id

    def netns_prefix(self) -> str:
        return f"{self.lab_id}-"

    def _v4(self, net: ipaddress.IPv4Network, octet: int) -> str:
        return str(net.network_address + octet)

    def _v6(self, net: ipaddress.IPv6Network, octet: int) -> str:
        return str(net.network_address + octet)

    @property
    def gateway_v4(self) -> str:
        return self._v4(self.mgmt_v4, 1)

    @property
    def gateway_v6(self) -> str:
        return self._v6(self.mgmt_v6, 1)

    def host(self, n: int) -> Node:
        octet = HOST_OFFSET + n
        return Node(
            name=f"host{n}",
            netns=f"{self.lab_id}-h{n}",
            mgmt_v4=self._v4(self.mgmt_v4, octet),
            mgmt_v6=self._v6(self.mgmt_v6, octet),
            mgmt_link=f"{self.lab_id}-m{n}",
            data_v4=self._v4(self.data_v4, octet),
            data_v6=self._v6(self.data_v6, octet),
            switch_port=f"p{n}",
        )

    def containers(self, n: int) -> dict[str, str]:
        """Host n's container prefixes: pod CIDR, docker bridge, docker IPv6.

        The two hosts of a pair share the IPv4 ones: only the server runs
        containers, and no traffic crosses from one pair to another.
        """
        offset = ((n - 1) // 2) * 2 ** (32 - PAIR_BLOCK) + self.slot * 2 ** (32 - LAB_BLOCK)
        pods = PODS_V4.network_address + offset
        docker = DOCKER_V4.network_address + offset
        return {
            "badsum_pod_cidr": f"{pods}/{PAIR_BLOCK}",
            "badsum_docker_bip": f"{docker + 1}/{PAIR_BLOCK}",
            "badsum_docker_ipv6_cidr": f"fd00:b5:{self.slot:x}:{0x100 + n:x}::/64",
        }

    @property
    def switch(self) -> Node:
        return Node(
            name="switch",
            netns=f"{self.lab_id}-sw",
            mgmt_v4=self._v4(self.mgmt_v4, SWITCH_OCTET),
            mgmt_v6=self._v6(self.mgmt_v6, SWITCH_OCTET),
            mgmt_link=f"{self.lab_id}-msw",
        )

    def nodes(self) -> list[Node]:
        return [self.switch] + [self.host(n) for n in range(1, self.hosts + 1)]


def bridge_name(lab_id: str) -> str:
    """The management bridge in the root namespace."""
    return f"{lab_id}-mgmt"


def validate_lab_id(lab_id: str) -> None:
    if not LAB_ID_RE.match(lab_id):
        raise LabError(
            f"lab id {lab_id!r} is not valid: use 1-6 lowercase letters or digits, "
            "starting with a letter (it prefixes interface names, which are limited to 15 characters)"
        )
