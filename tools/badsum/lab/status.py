"""What exists of the embedded labs, lab by lab, and whether each node answers: `badsum lab status`.

Read from the machine (namespaces, mounts, links, cgroups, processes), not
only from the labs' records: a lab that a killed run left half made shows up
too, as leftovers for `badsum lab down`.
"""

from __future__ import annotations

import re

from badsum.lab import cgroups, nodes, state
from badsum.lab.networks import existing_netns, lab_netns, lab_root_links
from badsum.lab.spec import LAB_ID_RE, LabSpec
from badsum.lab.sshd import answering
from badsum.lab.teardown import lab_pids


def status_nodes(spec: LabSpec) -> list[dict]:
    present = set(existing_netns())
    mounted = {point for point, _, _ in nodes.mountinfo()}
    up = answering([node.mgmt_v4 for node in spec.nodes() if node.netns in present])
    return [
        {
            "name": node.name,
            "netns": node.netns in present,
            "mount_ns": str(nodes.ns_files(node.netns)[0]) in mounted,
            "sshd": node.mgmt_v4 in up,
        }
        for node in spec.nodes()
    ]


def lab_ids() -> set[str]:
    """Every lab something of which exists: a record, a namespace, a cgroup with a lab's name."""
    ids = set(state.EMBEDDED.all())
    for ns in existing_netns():
        m = re.match(r"^([a-z][a-z0-9]{0,5})-(h\d+|sw)$", ns)
        if m:
            ids.add(m.group(1))
    cg_root = [h.mount / cgroups.TOP for h in cgroups.hierarchies()]
    # Only names a lab can have: /badsum/workshop is the workshop service's (`badsum workshop down`).
    ids |= {
        d.name
        for root in cg_root
        if root.is_dir()
        for d in root.iterdir()
        if d.is_dir() and LAB_ID_RE.fullmatch(d.name)
    }
    return ids


def status(lab_id: str | None = None) -> list[dict]:
    """What exists, lab by lab, including leftovers with no record."""
    records = state.EMBEDDED.all()
    ids = lab_ids()
    if lab_id:
        ids &= {lab_id}
    report = []
    for lid in sorted(ids):
        st = records.get(lid)
        entry: dict = {
            "lab_id": lid,
            "provider": "embedded",
            "state_file": bool(st),
            "netns": lab_netns(lid),
            "links": lab_root_links(lid),
            "processes": len(lab_pids(lid)),
            "cgroups": cgroups.leftovers(lid),
            "memory_bytes": cgroups.memory_bytes(lid),
        }
        if st:
            found = status_nodes(LabSpec(lid, st["hosts"], st["slot"]))
            entry.update(
                hosts=st["hosts"],
                slot=st["slot"],
                inventory=st["inventory"],
                limits=st.get("limits"),
                nodes=found,
                healthy=st.get("complete", False) and all(n["sshd"] for n in found),
            )
        else:
            entry["healthy"] = False
        report.append(entry)
    return report
