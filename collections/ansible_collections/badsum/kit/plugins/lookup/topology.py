# SPDX-License-Identifier: GPL-2.0-only
"""badsum.kit.topology: the topology catalogue's records (tools/badsum/topologies.py), for playbooks and roles."""

from __future__ import annotations

DOCUMENTATION = r"""
name: topology
short_description: Records of badsum's topology catalogue
description:
  - Each topology is declared once, in its role's C(meta/topology.yml)
    (roles/badsum_topology_NAME); this returns those records.
  - With terms, the records of those topologies (an unknown name is an error
    that lists the known ones); with none, every record, in the outcome
    table's order.
  - With O(args=true), for one topology, what the shared topology tasks pass
    to the host kit's C(topology) tool - C(name), C(module), C(mode), C(port)
    and each of the record's options, its value read from the variable the
    record names (the server's inventory, or roles/badsum_topology's defaults).
options:
  _terms:
    description: Topology names.
    required: false
  args:
    description: Return the host call's arguments for the one topology named.
    type: bool
    default: false
  port:
    description: With O(args), the experiment's port.
    type: int
  client:
    description:
      - With O(args), the server's client (host A). A topology with an end on host A (its record's
        C(client_side)) is refused without one.
    type: str
    default: ""
"""

EXAMPLES = r"""
names: "{{ query('badsum.kit.topology') | map(attribute='name') }}"
routed: "{{ query('badsum.kit.topology') | selectattr('exposed', 'equalto', 'always') | map(attribute='name') }}"
args: "{{ lookup('badsum.kit.topology', 'mesos', args=true, port=5001) }}"
"""

RETURN = r"""
_list:
  description: The records (or, with args, one dict of arguments).
  type: list
  elements: dict
"""

import dataclasses  # noqa: E402 - documentation first, as in every Ansible plugin

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible_collections.badsum.kit.plugins.plugin_utils.catalogue import catalogue  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        from badsum import topologies  # the controller's badsum package, next to Ansible

        self.set_options(var_options=variables, direct=kwargs)
        try:
            known = catalogue()
        except topologies.TopologyError as exc:
            raise AnsibleError(str(exc)) from None
        unknown = [str(t) for t in terms if str(t) not in known]
        if unknown:
            raise AnsibleError(f"no topology {', '.join(unknown)} (topologies: {', '.join(known)})")
        records = [known[str(t)] for t in terms] if terms else list(known.values())
        if not self.get_option("args"):
            return [dataclasses.asdict(r) for r in records]
        if len(records) != 1:
            raise AnsibleError("badsum.kit.topology with args=true takes one topology")
        (record,) = records
        if record.client_side and not self.get_option("client"):
            raise AnsibleError(
                f"topology {record.name} has an end on host A (its record's client_side): "
                "badsum_topology_client must name the server's client"
            )
        variables = variables or {}
        args = {"name": record.name, "module": record.module, "mode": record.mode, "port": self.get_option("port")}
        for option, var in record.options.items():
            if var not in variables:
                raise AnsibleError(f"topology {record.name}: {var} (its {option}) is not set on this host")
            args[option] = self._templar.template(variables[var])
        return [args]
