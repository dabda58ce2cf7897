"""The outcome tables of the incidents (2016: Pandurangan; 2020: VXLAN + NAT), for comparisons.

Used by the report and by `badsum reproduce` to say whether a run matched the
incident; never by the code that decides a cell's verdict (verdict.py). Each
topology's row comes from its record in the topology catalogue (whether
corrupt data reached the server on a kernel without the fix).
"""

from __future__ import annotations

from badsum import topologies

SOURCE = "Linux kernel bug delivers corrupt TCP/IP data to Mesos, Kubernetes, Docker containers (2016)"
SOURCES = {
    "2016": SOURCE,
    "2020": (
        "kubernetes#88986, flannel#1279, calico#3145: VXLAN + kube-proxy MASQUERADE --random-fully, NAT wrote a wrong "
        "outer UDP checksum and the receiving node dropped valid data; fixed by ea64d8d6c675 (Linux 5.7) (2020)"
    ),
}


SUMMARIES = {
    "2016": "The 2016 incident: corrupt data delivered through mesos, kubernetes and docker-ipv6 on a vulnerable "
    "kernel; clean everywhere else.",
    "2020": "The 2020 incident: on a vulnerable kernel, valid data dropped through the VXLAN overlay (a wrong "
    "outer checksum, UdpInCsumErrors at host B, connections waiting for a SYN retransmission); clean with "
    "tx-checksum-ip-generic off and on a patched kernel.",
}


def incidents(topology_names: list[str]) -> list[str]:
    known = topologies.catalogue()
    return sorted({known[t].incident for t in topology_names if t in known}) or ["2016"]


def summaries(topology_names: list[str]) -> str:
    return " ".join(SUMMARIES[i] for i in incidents(topology_names))


def sources(topology_names: list[str]) -> str:
    """The incidents whose tables these rows belong to (the one that ran: 2016 by default, 2020 with the preset)."""
    return "; ".join(SOURCES[i] for i in incidents(topology_names))


def expected(topology: str, condition: str, conntrack_checksum: str = "") -> str:
    """corrupt-delivered for the container paths the bug reached on a vulnerable kernel, clean elsewhere.

    With nf_conntrack_checksum=0 (the knob beyond the article) conntrack no
    longer stops corrupt segments, so Docker's NAT delivers them too.
    """
    return topologies.get(topology).expected(condition, conntrack_checksum)


def real_with_fix(topology: str, condition: str) -> bool:
    """Whether a kernel with the row's bug fixed (True) or without it (False) measures the condition for real."""
    return topologies.get(topology).real_with_fix(condition)


def mismatches(cells: list[dict]) -> list[str]:
    wrong = []
    for c in cells:
        want = expected(c["topology"], c["condition"], c.get("conntrack_checksum", ""))
        if c["verdict"] != want:
            wrong.append(f"{c['topology']}/{c['condition']}: {c['verdict']} (incident: {want})")
    return wrong
