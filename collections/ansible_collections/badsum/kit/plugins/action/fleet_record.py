# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.fleet_record: keep the hosts' records of a fleet run on the controller."""

from __future__ import annotations

from pathlib import Path

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset({"run_dir", "records"})
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        from badsum.fleet import report  # the controller's badsum package, next to Ansible

        result = super().run(tmp, task_vars)
        records = self._task.args.get("records") or []
        if not isinstance(records, list) or not all(isinstance(r, dict) and r.get("host") for r in records):
            return {**result, "failed": True, "msg": "records must be a list of records, each with its host"}
        # On the controller, in check mode too: the records say what check mode found.
        written = report.save_records(Path(str(self._task.args.get("run_dir"))), {r["host"]: r for r in records})
        return {**result, "changed": False, "written": written}
