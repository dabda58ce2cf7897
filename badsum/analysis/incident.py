"""The outcome table of the original incident (Pandurangan, 2016), for comparisons.

Used by the report and by `badsum reproduce` to say whether a run matched the
incident; never by the code that decides a cell's verdict (verdict.py).
"""

from __future__ import annotations

ROUTED = ("mesos", "kubernetes", "docker-ipv6")
SOURCE = "Linux kernel bug delivers corrupt TCP/IP data to Mesos, Kubernetes, Docker containers (2016)"


def expected(topology: str, condition: str, conntrack_checksum: str = "") -> str:
    """corrupt-delivered for the routed container paths on a vulnerable kernel, clean elsewhere.

    With nf_conntrack_checksum=0 (the knob beyond the article) conntrack no
    longer stops corrupt segments, so Docker's NAT delivers them too.
    """
    routed = ROUTED + (("docker-nat",) if str(conntrack_checksum) == "0" else ())
    return "corrupt-delivered" if condition == "vulnerable" and topology in routed else "clean"


def mismatches(cells: list[dict]) -> list[str]:
    wrong = []
    for c in cells:
        want = expected(c["topology"], c["condition"], c.get("conntrack_checksum", ""))
        if c["verdict"] != want:
            wrong.append(f"{c['topology']}/{c['condition']}: {c['verdict']} (incident: {want})")
    return wrong
