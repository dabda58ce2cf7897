# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.validate: check every setting and the inventory, before anything changes."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.badsum.kit.plugins.plugin_utils.settings import badsum_names, refuse, resolve

# Per-host variables the plan reads from the inventory.
HOST_VARS = (
    "badsum_data_iface",
    "badsum_data_ipv4",
    "badsum_data_ipv6",
    "badsum_pod_cidr",
    "badsum_docker_bip",
    "badsum_docker_ipv6_cidr",
    "badsum_embedded_lab",
    "ansible_port",
    "badsum_experiment_client",
    "badsum_experiment_corruptor",
    "badsum_experiment_corruption_iface",
    "badsum_experiment_corruption_hook",
)
PLAY_VARS = ("badsum_experiment_corruptor", "badsum_experiment_corruption_iface", "badsum_experiment_corruption_hook")


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset({"inventory"})
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        from badsum import settings, specs  # the controller's badsum package, next to Ansible

        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        problems: list[str] = []
        given = badsum_names(task_vars)
        names = [k for k in given if k.startswith(("badsum_experiment_", "badsum_corruption_"))]
        names += ["badsum_lab_id", "badsum_lab_hosts"]
        raw = resolve(self._templar, names, task_vars, problems)
        checked = settings.experiment_settings(raw, names=given)
        lab = settings.lab_settings(raw) if task_vars.get("badsum_embedded_lab") else settings.Checked()
        problems += checked.problems + lab.problems
        plan: dict = {}
        if self._task.args.get("inventory", True):
            groups = {g: list(task_vars.get("groups", {}).get(g, [])) for g in ("servers", "clients", "switches")}
            hostvars = {}
            for host in sorted(set(groups["servers"]) | set(groups["clients"]) | set(groups["switches"])):
                where = f" (on {host})"
                own = task_vars["hostvars"][host]
                # A host's own misspelt name too: its inventory's, beside the play's (named once, above).
                problems += specs.unknown(badsum_names(own) - given, where)
                hostvars[host] = resolve(self._templar, HOST_VARS, own, problems, where)
            for host in task_vars.get("groups", {}).get("all", []):
                hostvars.setdefault(host, {})
            if not problems:  # the plan needs the settings
                plan, plan_problems = settings.plan(
                    resolve(self._templar, PLAY_VARS, task_vars, problems), groups, hostvars, checked.values
                )
                problems += plan_problems
        if problems:
            return refuse(result, problems, "nothing was changed")
        result["settings"] = checked.values
        if plan:
            plan.update(
                settings.run_paths(checked.values),
                settings=checked.values,
                window=settings.corruption_window(checked.values),
            )
            result["plan"] = plan
        result["changed"] = False
        return result
