# SPDX-License-Identifier: GPL-2.0-only
"""badsum.kit.preload: what every badsum.kit.run call needs, made once, in the process that forks the workers.

Ansible runs each task on each host in a worker forked from ansible-playbook,
and a worker's imports and caches die with it. A fleet run sends the host
kit with every call (ephemeral): each worker imported the kit builder, read
and hashed the kit's sources and base64-encoded the kit again - ~10 ms a
host, in a run that is CPU-bound on the controller. Made here once, at the
playbook's start, every worker is forked with it (copy-on-write: nothing is
copied). Without this callback the workers make it themselves, as before.
"""

from __future__ import annotations

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: preload
type: aggregate
short_description: The host kit built once, before Ansible forks its workers
description:
  - Enabled in badsum's ansible.cfg. At the playbook's start, builds (or reads from the
    controller's cache) and encodes the host kit, and imports the fleet's record module,
    in ansible-playbook itself, and reads the roles' defaults and argument specs
    (badsum.specs), so that the workers forked from it have them already.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "badsum.kit.preload"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook) -> None:
        try:
            from badsum import hostkit, specs
            from badsum.fleet import records  # noqa: F401 - imported for the workers
        except ImportError:  # no controller package next to Ansible: the workers will say so
            return
        hostkit.encoded()
        # The roles' defaults and specs (the settings' checks, the transport's default), read once.
        specs.known()
