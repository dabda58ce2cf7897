# SPDX-License-Identifier: GPL-2.0-only
"""Action of badsum.kit.install: build the host kit on the controller and hand it to the module."""

from __future__ import annotations

import base64

from ansible.plugins.action import ActionBase
from ansible_collections.badsum.kit.plugins.plugin_utils.kit import kit_path


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset()

    def run(self, tmp=None, task_vars=None):
        from badsum import hostkit  # the controller's badsum package, next to Ansible

        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        data = hostkit.build()
        module_args = {
            "path": kit_path(self, task_vars),
            "content": base64.b64encode(data).decode(),
            "sha256": hostkit.digest(data),
        }
        result.update(self._execute_module("badsum.kit.install", module_args=module_args, task_vars=task_vars))
        return result
