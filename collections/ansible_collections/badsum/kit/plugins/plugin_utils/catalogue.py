"""The topology catalogue as Ansible sees it: the records of the roles on Ansible's own roles path."""

from __future__ import annotations

from pathlib import Path


def catalogue() -> dict:
    """badsum.topologies.catalogue() of the first roles directory Ansible uses that holds topology roles."""
    from ansible import constants as C

    from badsum import topologies  # the controller's badsum package, next to Ansible

    for entry in C.DEFAULT_ROLES_PATH or []:
        roles = Path(entry)
        if any(roles.glob(f"badsum_topology_*/{topologies.RECORD}")):
            return topologies.catalogue(roles)
    return topologies.catalogue()
