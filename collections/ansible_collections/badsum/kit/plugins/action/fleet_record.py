# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.fleet_record: make and keep the hosts' records of a fleet run on the controller."""

from __future__ import annotations

from pathlib import Path

from ansible.plugins.action import ActionBase

ARGS = {
    "run_dir": {"type": "path", "required": True},
    "phase": {"type": "str", "required": True},  # one of badsum.fleet.PHASES, added in run()
    "result_var": {"type": "str", "required": True},
    "error_var": {"type": "str", "required": True},
}


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(ARGS)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        from badsum.fleet import PHASES, records, report  # the controller's badsum package, next to Ansible

        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        spec = {**ARGS, "phase": {**ARGS["phase"], "choices": list(PHASES)}}
        _, args = self.validate_argument_spec(argument_spec=spec)
        hostvars = task_vars["hostvars"]
        made = {}
        # Every host of the play that has made its call by now: this batch's, and the earlier batches' again
        # (their records do not change, so their files are not rewritten).
        for host in task_vars.get("ansible_play_hosts_all", []):
            host_vars = hostvars[host]
            if args["result_var"] not in host_vars:
                continue
            made[host] = records.record(
                host,
                args["phase"],
                host_vars[args["result_var"]],
                str(host_vars.get(args["error_var"]) or ""),
                check_mode=bool(task_vars.get("ansible_check_mode")),
            )
        # On the controller, in check mode too: the records say what check mode found.
        written = report.save_records(Path(args["run_dir"]), made)
        # Only the failures go back to the hosts (a fact every host of the batch gets): the records stay here.
        failed = {host: rec["error"] for host, rec in made.items() if rec["status"] != "ok"}
        return {**result, "changed": False, "written": written, "ansible_facts": {"__badsum_fleet_failed": failed}}
