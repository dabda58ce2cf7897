# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.install: build the host kit on the controller and hand it to the module."""

from __future__ import annotations

import base64

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible_collections.badsum.kit.plugins.plugin_utils.kit import kit_path


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset()

    def run(self, tmp=None, task_vars=None):
        from badsum import hostkit  # the controller's badsum package, next to Ansible

        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        data = hostkit.build()
        # First without the kit: most hosts already have this very one.
        module_args = {"path": kit_path(self, task_vars), "content": "", "sha256": hostkit.digest(data)}
        try:
            answer = self._execute_module("badsum.kit.install", module_args=module_args, task_vars=task_vars)
            if answer.pop("needs_content", False):
                module_args["content"] = base64.b64encode(data).decode()
                answer = self._execute_module("badsum.kit.install", module_args=module_args, task_vars=task_vars)
            result.update(answer)
        except AnsibleConnectionFailure as exc:
            # The first task that reaches a host. Failed, not unreachable: any_errors_fatal
            # then ends the whole run right here (Ansible counts a host that is both
            # unreachable and failed twice, and goes on to the next play).
            host = task_vars.get("inventory_hostname")
            return {**result, "failed": True, "changed": False, "msg": f"{host} cannot be reached: {exc}"}
        return result
