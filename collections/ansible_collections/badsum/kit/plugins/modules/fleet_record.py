# SPDX-License-Identifier: GPL-2.0-only
# Documentation only: badsum.kit.fleet_record is an action plugin that runs on the controller.

DOCUMENTATION = r"""
module: fleet_record
short_description: Keep the hosts' records of a fleet run on the controller
description:
  - Runs on the controller, in one step for a whole batch (once per batch, with
    C(run_once)), so that a rollout that stops half way still has the record of
    every host it reached. Writes C(<run_dir>/hosts/<host>.json), rewriting a file
    only when its record changed.
options:
  run_dir:
    description: The fleet run's directory (C(badsum_fleet_plan.run_dir)).
    type: path
    required: true
  records:
    description: The records, each a mapping with the host's name in C(host).
    type: list
    elements: dict
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author: badsum
"""

EXAMPLES = r"""
- name: Keep this batch's records on the controller
  badsum.kit.fleet_record:
    run_dir: "{{ hostvars['localhost']['badsum_fleet_plan']['run_dir'] }}"
    records: "{{ ansible_play_hosts_all | map('extract', hostvars, 'my_record') | select('defined') | list }}"
  run_once: true
"""

RETURN = r"""
written:
  description: The hosts whose record was written.
  type: list
  elements: str
  returned: success
"""
