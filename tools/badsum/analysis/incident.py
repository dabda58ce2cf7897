"""The outcome table of the original incident (Pandurangan, 2016), for comparisons.

Used by the report and by `badsum reproduce` to say whether a run matched the
incident; never by the code that decides a cell's verdict (verdict.py). Each
topology's row comes from its record in the topology catalogue (whether
corrupt data reached the server on a kernel without the fix).
"""

from __future__ import annotations

from badsum import topologies

SOURCE = "Linux kernel bug delivers corrupt TCP/IP data to Mesos, Kubernetes, Docker containers (2016)"


def expected(topology: str, condition: str, conntrack_checksum: str = "") -> str:
    """corrupt-delivered for the container paths the bug reached on a vulnerable kernel, clean elsewhere.

    With nf_conntrack_checksum=0 (the knob beyond the article) conntrack no
    longer stops corrupt segments, so Docker's NAT delivers them too.
    """
    return topologies.get(topology).expected(condition, conntrack_checksum)


def mismatches(cells: list[dict]) -> list[str]:
    wrong = []
    for c in cells:
        want = expected(c["topology"], c["condition"], c.get("conntrack_checksum", ""))
        if c["verdict"] != want:
            wrong.append(f"{c['topology']}/{c['condition']}: {c['verdict']} (incident: {want})")
    return wrong
