# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.fleet_plan: check the fleet settings and the inventory, before any host is touched."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.badsum.kit.plugins.plugin_utils.settings import badsum_names, refuse, resolve

# What the canary cell's plan reads: per host, and the experiment's own settings if the user gave them.
HOST_VARS = (
    "badsum_data_iface",
    "badsum_data_ipv4",
    "badsum_data_ipv6",
    "badsum_embedded_lab",
    "ansible_port",
    "badsum_experiment_client",
    "badsum_experiment_corruptor",
    "badsum_experiment_corruption_iface",
    "badsum_experiment_corruption_hook",
    # what the canary topologies' records read from the server's inventory (their meta/topology.yml: kubernetes'
    # and vxlan-nat's pod CIDR, docker-ipv6's bridges)
    "badsum_pod_cidr",
    "badsum_docker_bip",
    "badsum_docker_ipv6_cidr",
    # a host's own way to be reached (badsum.fleet.settings.PER_HOST)
    "badsum_fleet_transport",
    "badsum_fleet_python",
)
PLAY_VARS = (
    "badsum_experiment_corruptor",
    "badsum_experiment_corruption_iface",
    "badsum_experiment_corruption_hook",
    "badsum_experiment_backend",
    "badsum_experiment_port",
)


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset({"phase", "experiment_defaults", "limit_hosts"})
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        from badsum import specs  # the controller's badsum package, next to Ansible
        from badsum.fleet import PHASES, settings, stats
        from badsum.version import version

        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        phase = self._task.args.get("phase")
        if phase not in PHASES:
            return {**result, "failed": True, "msg": f"phase={phase!r}: allowed: {', '.join(PHASES)}"}
        problems: list[str] = []
        given = badsum_names(task_vars)
        raw = resolve(self._templar, [k for k in given if k.startswith(settings.P)], task_vars, problems)
        checked = settings.fleet_settings(raw, names=given)
        problems += checked.problems
        plan: dict = {}
        limit = self._task.args.get("limit_hosts")
        groups = {
            g: [h for h in hosts if limit is None or h in limit] for g, hosts in task_vars.get("groups", {}).items()
        }
        hostvars = {}
        wanted = set(groups.get("fleet", [])) | set(groups.get("clients", [])) | set(groups.get("switches", []))
        for host in groups.get("all", []):
            if host not in wanted:
                hostvars[host] = {}
                continue
            own = task_vars["hostvars"][host]
            # A host's own misspelt name too: its inventory's, beside the play's (named once, above).
            problems += specs.unknown(badsum_names(own) - given, f" (on {host})", also=stats.KEYS)
            hostvars[host] = resolve(self._templar, HOST_VARS, own, problems, f" (on {host})")
        if not problems:  # the plan needs the settings
            defaults = self._task.args.get("experiment_defaults") or {}
            play_vars = {k: v for k, v in defaults.items() if k in PLAY_VARS}
            play_vars.update(resolve(self._templar, PLAY_VARS, task_vars, problems))
            plan, plan_problems = settings.plan(checked.values, groups, hostvars, play_vars, phase)
            problems += plan_problems
        if problems:
            return refuse(result, problems, "no host was touched")
        result["changed"] = False
        # The reports mark a check-mode run as such (badsum.fleet.junit, metrics).
        # Which badsum planned the run: the records and the report carry it too.
        result["plan"] = {**plan, "check_mode": bool(task_vars.get("ansible_check_mode")), "badsum_version": version()}
        return result
