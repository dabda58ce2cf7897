# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.fleet_report: the fleet run's table, CSV, JSON, Markdown and HTML, from its host records."""

from __future__ import annotations

from pathlib import Path

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset({"run_dir"})
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        from badsum.fleet import report  # the controller's badsum package, next to Ansible

        result = super().run(tmp, task_vars)
        run_dir = Path(str(self._task.args.get("run_dir", "")))
        if not (run_dir / "plan.json").is_file():
            return {**result, "failed": True, "msg": f"run_dir={str(run_dir)!r}: not a fleet run (no plan.json)"}
        # Written on the controller, in check mode too: the report says what check mode found.
        result.update(report.write(run_dir), changed=False)
        return result
