# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.run: find the host kit, run the module, keep the evidence (or the fleet record) here."""

from __future__ import annotations

import time
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.badsum.kit.plugins.plugin_utils.kit import kit_path, lib_dir, save_evidence

from badsum.fleet import PHASES

ARGS = {
    "tool": {"type": "str", "required": True},
    "action": {"type": "str", "required": True},
    "args": {"type": "dict", "default": {}},
    "argv": {"type": "list", "elements": "str", "default": []},
    "save_to": {"type": "path"},
    "save_as": {"type": "str"},
    "ephemeral": {"type": "bool", "default": False},
    "record": {
        "type": "dict",
        "options": {
            "run_dir": {"type": "path", "required": True},
            # Checked before the host call: a bad phase must not change a host whose record is then lost.
            "phase": {"type": "str", "required": True, "choices": list(PHASES)},
        },
    },
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
        if args["record"] is None:
            result.update(self._execute_module("badsum.kit.run", module_args=module_args, task_vars=task_vars))
        else:
            result.update(self._call_and_record(module_args, task_vars, **args["record"]))
        if args["save_to"] and not result.get("failed") and not result.get("skipped"):
            save_evidence(result, args["save_to"], args["save_as"])
        return result

    def _call_and_record(self, module_args: dict, task_vars: dict, run_dir: str, phase: str) -> dict:
        """The call, and this host's fleet record kept on the controller, whatever the call's outcome.

        Made here, in this host's own worker, as soon as its call returns: no
        later step has to read every host's variables back (a step per batch
        that cost ~20 ms a host, one host after the other). An unreachable host
        is a failed one, with a record that says so (Ansible's max_fail_percentage
        would not count it); so is a host where Ansible itself failed (a wrong
        become password, a transfer that broke), with Ansible's own message.
        """
        # The controller's badsum package, next to Ansible: its light modules only (this runs once a host).
        from badsum.fleet import records

        host = task_vars["inventory_hostname"]
        started = time.monotonic()
        try:
            result = self._execute_module("badsum.kit.run", module_args=module_args, task_vars=task_vars)
        except AnsibleConnectionFailure as exc:
            result = {"unreachable": True, "msg": str(exc)}
        except AnsibleError as exc:  # raised before the module could answer: the host failed, say why
            result = {"failed": True, "changed": False, "msg": str(exc)}
        error = f"{self._task.name}: {result.get('msg') or 'failed'}" if result.get("failed") else ""
        check_mode = bool(task_vars.get("ansible_check_mode"))
        rec = records.record(host, phase, result, error, check_mode, seconds=time.monotonic() - started)
        records.save(Path(run_dir), {host: rec})
        if result.pop("unreachable", False):
            return {**result, "failed": True, "changed": False, "msg": rec["error"]}
        return result
