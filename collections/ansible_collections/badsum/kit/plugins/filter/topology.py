# SPDX-License-Identifier: GPL-2.0-only
"""badsum.kit.client_routes: the routes host A has to the servers' container prefixes, by the topology catalogue."""

from __future__ import annotations

DOCUMENTATION = r"""
name: client_routes
short_description: Routes a client may hold to its servers' container prefixes
description:
  - For each topology whose catalogue record has a C(client_route) (a prefix
    variable and a via variable, such as the pod CIDR via host B's address),
    and each server given, C(PREFIX=VIA) from that server's variables; what
    cleanup takes away from host A after a run that may have added them.
positional: _input, hostvars
options:
  _input:
    description: Server host names.
    type: list
    elements: str
    required: true
  hostvars:
    description: Ansible's hostvars.
    type: raw
    required: true
"""

EXAMPLES = r"""
route: "{{ ['host2', 'host4'] | badsum.kit.client_routes(hostvars) }}"
"""

RETURN = r"""
_value:
  description: C(PREFIX=VIA) strings.
  type: list
  elements: str
"""


def client_routes(servers: list, hostvars) -> list[str]:
    from ansible_collections.badsum.kit.plugins.plugin_utils.catalogue import catalogue

    routes = []
    for topology in catalogue().values():
        if topology.client_route:
            prefix, via = topology.client_route
            routes += [f"{hostvars[s][prefix]}={hostvars[s][via]}" for s in servers]
    return routes


class FilterModule:
    def filters(self) -> dict:
        return {"client_routes": client_routes}
