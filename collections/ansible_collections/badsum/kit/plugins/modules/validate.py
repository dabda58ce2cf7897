# SPDX-License-Identifier: GPL-2.0-only
# Documentation only: badsum.kit.validate is an action plugin that runs on the controller.

DOCUMENTATION = r"""
module: validate
short_description: Check every experiment setting and the inventory, before anything changes
description:
  - Runs on the controller, reads no host. Checks every C(badsum_experiment_*)
    setting (type, range, choices and the rules that tie several together, such as
    the corruption window fitting in the traffic), the lab's, and, with
    O(inventory), the inventory's shape (groups, pairing, per-host variables).
  - Fails listing every problem, each naming the variable, the value given and
    what is allowed.
  - With O(inventory), returns the run's C(plan) - which server runs which cells
    with which client and corruptor - that the experiment role keeps as
    C(badsum_experiment_plan) and follows.
options:
  inventory:
    description: Also check the inventory and make the plan (false before the embedded lab exists).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author: badsum
"""

EXAMPLES = r"""
- name: Check the settings and the inventory; make the plan
  badsum.kit.validate:
"""

RETURN = r"""
problems:
  description: What cannot be used, one line each.
  type: list
  elements: str
  returned: failed
settings:
  description: The experiment's settings, checked and normalised.
  type: dict
  returned: success
plan:
  description: The run's id and directory, its hosts, and each server's cells, client and corruptor.
  type: dict
  returned: success, with O(inventory)
"""
