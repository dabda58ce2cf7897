# SPDX-License-Identifier: GPL-2.0-only
# Documentation only: badsum.kit.fleet_record is an action plugin that runs on the controller.

DOCUMENTATION = r"""
module: fleet_record
short_description: Make and keep the hosts' records of a fleet run on the controller
description:
  - Runs on the controller, in one step for a whole batch (once per batch, with
    C(run_once)), so that a rollout that stops half way still has the record of
    every host it reached. Each record is made from the host's registered
    host-kit call and its rescued error, if any. Writes
    C(<run_dir>/hosts/<host>.json), rewriting a file only when its record
    changed, and sets C(__badsum_fleet_failed) (host -> why it failed, for the
    hosts that failed only) on every host of the batch.
options:
  run_dir:
    description: The fleet run's directory (C(badsum_fleet_plan.run_dir)).
    type: path
    required: true
  phase:
    description: Which playbook the records are of; it decides the records' fields (C(badsum.fleet.records)).
    type: str
    choices: [audit, remediate, rollback]
    required: true
  result_var:
    description: The variable each host registered its host-kit call in.
    type: str
    required: true
  error_var:
    description: The variable a host's rescue put the failing step's own message in.
    type: str
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author: badsum
"""

EXAMPLES = r"""
- name: Make and keep this batch's records on the controller
  badsum.kit.fleet_record:
    run_dir: "{{ hostvars['localhost']['badsum_fleet_plan']['run_dir'] }}"
    phase: audit
    result_var: my_audit
    error_var: my_error
  run_once: true
"""

RETURN = r"""
written:
  description: The hosts whose record was written.
  type: list
  elements: str
  returned: success
ansible_facts:
  description: C(__badsum_fleet_failed), why each host that failed failed, by its name.
  type: dict
  returned: success
"""
