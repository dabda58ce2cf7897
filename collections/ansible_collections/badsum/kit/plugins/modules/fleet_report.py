# SPDX-License-Identifier: GPL-2.0-only
# Documentation only: badsum.kit.fleet_report is an action plugin that runs on the controller.

DOCUMENTATION = r"""
module: fleet_report
short_description: Write a fleet run's report from its host records
description:
  - Runs on the controller. Reads C(plan.json) and C(hosts/*.json) of a fleet run
    (audit, remediate or rollback) and writes C(fleet.csv), C(fleet.json),
    C(report.md) and C(report.html) next to them. A targeted host without a record
    is reported as C(not reached).
  - Returns the table for the terminal and the run's problems (failed or unreached
    hosts, hosts still exposed after remediation).
options:
  run_dir:
    description: The fleet run's directory (C(badsum_fleet_plan.run_dir)).
    type: path
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author: badsum
"""

EXAMPLES = r"""
- name: Write the fleet report
  badsum.kit.fleet_report:
    run_dir: "{{ badsum_fleet_plan.run_dir }}"
"""

RETURN = r"""
table:
  description: The outcome, one host per line, then the totals.
  type: str
  returned: success
problems:
  description: Hosts that failed, were not reached or stay exposed.
  type: list
  elements: str
  returned: success
"""
