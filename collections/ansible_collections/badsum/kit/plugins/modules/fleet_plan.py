# SPDX-License-Identifier: GPL-2.0-only
# Documentation only: badsum.kit.fleet_plan is an action plugin that runs on the controller.

DOCUMENTATION = r"""
module: fleet_plan
short_description: Check the fleet settings and the inventory, before any host is touched
description:
  - Runs on the controller, reads no host. Checks every C(badsum_fleet_*) setting
    (type, range, choices; unknown names too) and the inventory's shape (a group
    C(fleet); for remediation, a canary that can run the experiment's vulnerable cell).
  - Fails listing every problem, each naming the variable, the value given and what
    is allowed.
  - Returns the C(plan) - the hosts, the canary and the hosts of its cell, the run's
    id and directory, the checked settings - that the fleet playbooks keep as
    C(badsum_fleet_plan) and follow.
options:
  phase:
    description: The playbook this plan is for.
    type: str
    choices: [audit, remediate, rollback]
    required: true
  experiment_defaults:
    description: The experiment role's defaults, for the canary cell's plan (the inventory overrides them).
    type: dict
    default: {}
  limit_hosts:
    description:
      - The hosts a C(--limit) leaves (the playbooks pass the hosts C(ansible_limit) matches).
        Only they are planned, so a host outside the limit is not reported as not reached.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author: badsum
"""

EXAMPLES = r"""
- name: Check the fleet settings and the inventory; plan the run
  badsum.kit.fleet_plan:
    phase: remediate
"""

RETURN = r"""
problems:
  description: What cannot be used, one line each.
  type: list
  elements: str
  returned: failed
plan:
  description: The run's id and directory, its hosts, the canary and its cell's hosts, the checked settings.
  type: dict
  returned: success
"""
