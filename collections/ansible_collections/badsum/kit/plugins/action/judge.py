# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.judge: one cell's result file, from its evidence, on the controller."""

from __future__ import annotations

import json
from pathlib import Path

from ansible.plugins.action import ActionBase

ARGS = {
    "run_dir": {"type": "path", "required": True},
    "cell": {"type": "str", "required": True},
    "topology": {"type": "dict", "default": {}},
    "condition": {"type": "dict", "default": {}},
    "error": {"type": "str"},
}


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(ARGS)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        from badsum.analysis import results  # the controller's badsum package, next to Ansible

        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGS)
        run_dir = Path(args["run_dir"])
        raw = run_dir / "raw" / args["cell"]
        try:
            meta = results.cell_meta(
                results.load_json(run_dir / "run.json"), args["cell"], args["topology"], args["condition"]
            )
        except (results.ResultError, KeyError) as exc:
            return {**result, "failed": True, "msg": f"cannot describe cell {args['cell']}: {exc}"}
        results.atomic_write(raw / "cell.json", json.dumps(meta, indent=1))
        if args["error"]:
            cell = results.error_result(meta, args["error"])
        else:
            try:
                cell = results.build_cell_result(raw)
            except results.ResultError as exc:
                cell = results.error_result(meta, f"its evidence cannot be used: {exc}")
        path = results.write_result(cell, run_dir)
        result.update(changed=True, result=str(path), verdict=cell["verdict"], reason=cell["verdict_reason"])
        return result
