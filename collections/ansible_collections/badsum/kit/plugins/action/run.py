# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.run: find the host kit, run the module, keep the evidence on the controller."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.badsum.kit.plugins.plugin_utils.kit import kit_path, lib_dir, save_evidence

ARGS = {
    "tool": {"type": "str", "required": True},
    "action": {"type": "str", "required": True},
    "args": {"type": "dict", "default": {}},
    "argv": {"type": "list", "elements": "str", "default": []},
    "save_to": {"type": "path"},
    "save_as": {"type": "str"},
    "ephemeral": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(ARGS)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGS)
        module_args = {
            "tool": args["tool"],
            "action": args["action"],
            "args": args["args"],
            "argv": args["argv"],
            "kit": kit_path(self, task_vars),
            "fetch_files": bool(args["save_to"]),
        }
        if args["ephemeral"]:
            # The kit travels with the module and is gone after it: a read-only
            # audit or a check-mode run leaves no file on the host.
            from badsum import hostkit  # the controller's badsum package, next to Ansible

            module_args["kit_content"] = hostkit.encoded()
            module_args["lib_dir"] = lib_dir(self, task_vars)
        result.update(self._execute_module("badsum.kit.run", module_args=module_args, task_vars=task_vars))
        if args["save_to"] and not result.get("failed") and not result.get("skipped"):
            save_evidence(result, args["save_to"], args["save_as"])
        return result
