# SPDX-License-Identifier: GPL-2.0-only
# Documentation only: badsum.kit.judge is an action plugin that runs on the controller.

DOCUMENTATION = r"""
module: judge
short_description: Judge one experiment cell from its evidence and write its result file
description:
  - Runs on the controller, reads no host. Describes the cell from the run's record
    (C(run.json)) and what its topology and kernel condition reported, writes that as
    C(raw/<cell>/cell.json), then builds the cell's result from the evidence the
    other steps saved in C(raw/<cell>/) and writes C(<run_dir>/<cell>.json).
  - The verdict comes from measurements only (C(badsum.analysis.verdict)).
  - With O(error), records the cell as C(error) with that reason instead.
options:
  run_dir:
    description: The run's directory (C(results/<run-id>)).
    type: path
    required: true
  cell:
    description: The cell's name, C(<topology>-<condition>), as in the run's plan.
    type: str
    required: true
  topology:
    description: What the topology role returned (C(badsum_topology_result)).
    type: dict
    default: {}
  condition:
    description: What the condition role returned (C(badsum_condition_result)).
    type: dict
    default: {}
  error:
    description: Why the cell failed; the failing step's own message.
    type: str
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
author: badsum
"""

EXAMPLES = r"""
- name: Judge the cell
  badsum.kit.judge:
    run_dir: "{{ plan.run_dir }}"
    cell: bare-patched
    topology: "{{ badsum_topology_result }}"
    condition: "{{ badsum_condition_result }}"
"""

RETURN = r"""
verdict:
  description: corrupt-delivered, clean, inconclusive or error.
  type: str
  returned: always
reason:
  description: Why, in words.
  type: str
  returned: always
result:
  description: The result file.
  type: str
  returned: always
"""
