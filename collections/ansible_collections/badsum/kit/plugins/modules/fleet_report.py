# SPDX-License-Identifier: GPL-2.0-only
# Documentation only: badsum.kit.fleet_report is an action plugin that runs on the controller.

DOCUMENTATION = r"""
module: fleet_report
short_description: Write a fleet run's report from its host records
description:
  - Runs on the controller. Reads C(plan.json) and C(hosts/*.json) of a fleet run
    (audit, remediate or rollback) and writes C(fleet.csv), C(fleet.json),
    C(report.md) and C(report.html) next to them, and for operators' tools
    C(junit.xml) (one test case per host), C(metrics/HOST.prom) per host and
    C(fleet.prom) (Prometheus text format, for node_exporter's textfile collector).
    A targeted host without a record is reported as C(not reached).
  - Returns the table for the terminal, the run's problems (failed or unreached
    hosts, hosts still exposed after remediation) and the fleet counts for
    M(ansible.builtin.set_stats) (AWX shows them as the job's artifacts).
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
stats:
  description:
    - The fleet counts, for M(ansible.builtin.set_stats)
      (C(badsum_fleet_hosts), C(_ok), C(_failed), C(_unreachable), C(_not_reached),
      C(_changed), C(badsum_fleet_risk_CLASS) per risk class and C(unknown)),
      and C(badsum_fleet_run) (run_id, phase, check_mode, run_dir).
  type: dict
  returned: success
files:
  description: The paths of C(junit.xml), C(fleet.prom) and the C(metrics) directory.
  type: dict
  returned: success
"""
