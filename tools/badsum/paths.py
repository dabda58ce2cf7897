"""Where the kit's files are: the checkout this package runs from, and what it holds.

One rule, whatever the current directory: the project is the checkout that
holds this package (`make deps` installs it in place, `pip install -e .`),
and a command finds the playbooks, roles, inventories and results there. The
results of a run go to RESULTS unless the command is given `--results DIR`
(or the playbook `-e badsum_experiment_results_dir=DIR`).

Paths of the machine rather than of the checkout (lab state under
/var/lib/badsum, caches under /var/cache/badsum) stay with the code that owns
them (badsum.lab.spec, badsum.vm.paths).
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]  # tools/badsum/paths.py
ANSIBLE_CFG = PROJECT / "ansible.cfg"
REPRODUCE = PROJECT / "reproduce.yml"
PLAYBOOKS = PROJECT / "playbooks"
ROLES = PROJECT / "roles"
INVENTORIES = PROJECT / "inventories"
# The embedded lab's inventory (lab0's), and the settings every embedded lab's inventory carries.
LOCAL_INVENTORY = INVENTORIES / "local"
LAB_SETTINGS = LOCAL_INVENTORY / "group_vars" / "all.yml"
RESULTS = PROJECT / "results"
FLEET_RESULTS = RESULTS / "fleet"
PRESETS = PROJECT / "presets"
EXERCISES = PROJECT / "exercises"
KERNEL = PROJECT / "kernel"
NODE_MODULES = PROJECT / "node_modules"
# The virtualenv's programs (ansible-playbook, ansible, badsum): beside the Python that runs this.
BIN = Path(sys.executable).parent


def role_defaults(role: str) -> Path:
    return ROLES / role / "defaults" / "main.yml"
